// Vocabulary shared by every part of the transport: endpoints, status and error
// codes, sequence arithmetic, counters and the packet I/O interface the engine
// implements. No DPDK types: the same code runs over DPDK and the simulator.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>

namespace machnet {
namespace transport {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

// IPv4 address + UDP port, both in host byte order.
struct Endpoint {
  uint32_t ip = 0;
  uint16_t port = 0;
  bool operator==(const Endpoint& o) const { return ip == o.ip && port == o.port; }
  bool operator!=(const Endpoint& o) const { return !(*this == o); }
};

struct EndpointHash {
  size_t operator()(const Endpoint& e) const {
    return std::hash<uint64_t>()((uint64_t{e.ip} << 16) | e.port);
  }
};

// Handle the application holds: the local connection id (random, never 0).
using FlowId = uint32_t;

// Outcome of an API call (errno-like; the socket layer maps them to errno).
#define MACHNET_TRANSPORT_STATUSES(X)                                     \
  X(kOk, "ok")                                                            \
  X(kAgain, "would block (EAGAIN)")                                       \
  X(kEof, "peer closed its sending side (EOF)")                           \
  X(kInvalidArgument, "invalid argument (EINVAL)")                        \
  X(kMessageTooLarge, "message larger than max_message_bytes (EMSGSIZE)") \
  X(kNoSuchFlow, "no such flow (EBADF)")                                  \
  X(kNotConnected, "flow not connected yet (ENOTCONN)")                   \
  X(kFlowFailed, "flow failed; see flow error")                           \
  X(kShutdown, "sending side already shut down (EPIPE)")                  \
  X(kTooManyFlows, "flow table full (ENOBUFS)")                           \
  X(kAddressInUse, "port already listening (EADDRINUSE)")                 \
  X(kNotListening, "no listener on that port")                            \
  X(kWrongMode, "call does not match the flow's message/stream mode")     \
  X(kNotMachnet, "peer known to have no machnet service there: use kernel TCP")

enum class Status : uint8_t {
#define MACHNET_X(n, s) n,
  MACHNET_TRANSPORT_STATUSES(MACHNET_X)
#undef MACHNET_X
};
const char* status_string(Status s);

// Why a flow failed. Reported once the flow is in kFailed.
#define MACHNET_FLOW_ERRORS(X)                                                                \
  X(kNone, "no error")                                                                        \
  X(kConnectTimeout, "connect timed out: peer never answered the handshake")                  \
  X(kConnectionRefused, "connection refused: RST or ICMP port unreachable")                   \
  X(kReset, "connection reset by peer")                                                       \
  X(kRetransmitTimeout, "peer stopped acknowledging: retransmission limit reached")           \
  X(kDeadPeer, "peer dead: keepalive probes unanswered")                                      \
  X(kAborted, "aborted locally")                                                              \
  X(kPeerMessageLimit, "a message queued before connect exceeds the peer's max message size") \
  X(kNotMachnet, "peer does not run machnet (probe refused or unanswered): use kernel TCP")   \
  X(kNoService, "peer runs machnet but offers no transport service on that port: use kernel TCP")

enum class FlowError : uint8_t {
#define MACHNET_X(n, s) n,
  MACHNET_FLOW_ERRORS(MACHNET_X)
#undef MACHNET_X
};
const char* flow_error_string(FlowError e);

// True for the errors that end a service probe (connect_service) with "use
// kernel TCP instead": the socket layer falls back rather than failing.
inline bool falls_back_to_kernel(FlowError e) {
  return e == FlowError::kNotMachnet || e == FlowError::kNoService;
}

// Why a service connect ended on kernel TCP (counted per reason; FlowStats).
enum class FallbackReason : uint8_t {
  kNone,
  kIcmpRefused,  // the peer's kernel answered the probe with ICMP port unreachable
  kTimeout,      // no answer within probe_timeout_ns (silently dropped)
  kNoService,    // a machnet host without a listener on the service port (RST)
  kCachedPlain,  // the peer was remembered as plain: no probe sent at all
};
const char* fallback_reason_name(FallbackReason r);

// What the per-peer cache knows (Transport::peer_verdict).
enum class PeerVerdict : uint8_t {
  kUnknown,    // nothing remembered: a connect probes
  kMachnet,    // answered a probe recently
  kPlain,      // refused or ignored a probe recently: connects go to kernel TCP
  kNoService,  // runs machnet, but nothing listens on that service port
};
const char* peer_verdict_name(PeerVerdict v);

enum class FlowState : uint8_t {
  kSynSent,      // client: SYN sent, waiting for SYN-ACK
  kSynReceived,  // server: SYN-ACK sent, waiting for the first ACK (half-open)
  kEstablished,  // both directions open
  kFinWait,      // our FIN sent (or queued); peer may still send
  kCloseWait,    // peer's FIN received; we may still send
  kClosing,      // both FINs sent, ours not acknowledged yet
  kTimeWait,     // both directions closed; lingering to re-ACK a lost FIN
  kClosed,       // done, nothing left to do
  kFailed,       // see FlowError
};
const char* flow_state_name(FlowState s);

// Transport-wide counters. Every received datagram ends in exactly one of
// rx_accepted or one drop counter of MACHNET_TRANSPORT_RX_DROPS, so
// rx_datagrams == rx_accepted + the sum of the drops: nothing is dropped
// silently, nothing is counted twice (checked by the tests and the fuzzer).
#define MACHNET_TRANSPORT_RX_DROPS(X)                                     \
  X(rx_malformed_short) /* shorter than the header */                     \
  X(rx_bad_magic)                                                         \
  X(rx_bad_version)                                                       \
  X(rx_bad_type)                                                          \
  X(rx_bad_length) /* payload_len disagrees with the datagram */          \
  X(rx_bad_checksum)                                                      \
  X(rx_bad_fragment)     /* msg_len/offset inconsistent */                \
  X(rx_bad_sack)         /* SACK block count or range invalid */          \
  X(rx_no_flow)          /* unknown connection id (answered by RST) */    \
  X(rx_bad_conn_id)      /* known dst id, wrong src id: spoof or stale */ \
  X(rx_out_of_window)    /* seq or ack outside the window */              \
  X(rx_duplicate)        /* already received segment */                   \
  X(rx_recv_buffer_full) /* sender ignored our window */                  \
  X(rx_syn_no_listener)                                                   \
  X(rx_syn_half_open_full)                                                \
  X(rx_syn_backlog_full)                                                  \
  X(rx_syn_flow_table_full)                                               \
  X(rx_syn_no_service)     /* service SYN, nobody offers it (RST) */      \
  X(rx_syn_not_rendezvous) /* service SYN to a port other than R */       \
  X(rx_flow_finished)      /* segment for a closed or failed flow */      \
  X(rx_drop_frozen)        /* flow frozen or retired (hand-off) */        \
  X(rx_bad_migration)      /* MIGRATED, new port, failed the checks */    \
  X(rx_unexpected)         /* valid header, wrong type for the flow's state */

#define MACHNET_TRANSPORT_COUNTERS(X)                                                  \
  X(rx_datagrams)                                                                      \
  X(rx_accepted) /* processed by a flow or a listener */                               \
  MACHNET_TRANSPORT_RX_DROPS(X)                                                        \
  X(rx_rst)                                                                            \
  X(rx_icmp_unreachable)                                                               \
  X(tx_datagrams)                                                                      \
  X(tx_sink_full) /* sink refused: treated as a loss */                                \
  X(tx_data_segments)                                                                  \
  X(tx_retransmits)                                                                    \
  X(tx_fast_retransmits)                                                               \
  X(tx_rto)                                                                            \
  X(tx_pure_acks)                                                                      \
  X(tx_rst)                                                                            \
  X(tx_rst_suppressed) /* RST replies over the rate limit */                           \
  X(tx_keepalives)                                                                     \
  X(tx_syn)                                                                            \
  X(syn_evicted)    /* half-open flow dropped to admit a newer SYN */                  \
  X(half_open_peak) /* most SYN_RECEIVED flows at once (a high-water mark) */          \
  X(flows_peak)     /* most flows at once (a high-water mark) */                       \
  X(timer_stalls)   /* a timer fired and stayed due: a bug, never expected */          \
  X(flows_created)                                                                     \
  X(flows_destroyed)                                                                   \
  X(path_migrations) /* the peer's flow moved to another UDP port (kFlagMigrated) */   \
  /* service probes (connect_service) and their fallbacks to kernel TCP */             \
  X(probes_sent)                                                                       \
  X(probes_machnet)         /* answered by a machnet SYN-ACK */                        \
  X(probes_settled_by_peer) /* ended by another probe's verdict */                     \
  X(probes_extended)        /* silent, but the peer is machnet: a plain connect */     \
  X(probes_no_route)        /* silent, but kernel TCP has no route: a plain connect */ \
  X(fallback_icmp)          /* peer's kernel refused the probe */                      \
  X(fallback_timeout)       /* no answer within probe_timeout_ns */                    \
  X(fallback_no_service)    /* machnet host, no listener on the port */                \
  X(fallback_cached)        /* peer remembered as plain: no probe */

struct Counters {
#define MACHNET_X(n) uint64_t n = 0;
  MACHNET_TRANSPORT_COUNTERS(MACHNET_X)
#undef MACHNET_X
  // Sum of the MACHNET_TRANSPORT_RX_DROPS counters.
  uint64_t rx_dropped() const {
    uint64_t s = 0;
#define MACHNET_X(n) s += n;
    MACHNET_TRANSPORT_RX_DROPS(MACHNET_X)
#undef MACHNET_X
    return s;
  }
};

// Readiness of a flow, for the socket layer's poll/epoll and wake-ups.
// How a stream socket maps them onto TCP's poll bits is in
// docs/PROTOCOL.md ("Readiness"): a failed flow reports only
// kEvError | kEvReadable, and stands for EPOLLIN | EPOLLOUT | EPOLLERR |
// EPOLLHUP | EPOLLRDHUP, as a reset or refused TCP socket does.
enum FlowEvents : uint32_t {
  kEvReadable = 1u << 0,      // a message/bytes to read, EOF, or an error to report
  kEvWritable = 1u << 1,      // connected and the send buffer has room
  kEvConnected = 1u << 2,     // handshake completed (stays set)
  kEvPeerClosed = 1u << 3,    // peer's FIN received (EPOLLRDHUP)
  kEvError = 1u << 4,         // flow failed; see FlowError
  kEvSendShutdown = 1u << 5,  // our sending side is shut (FIN queued): writes fail (EPIPE)
  kEvHangup = 1u << 6,        // both directions shut down gracefully (EPOLLHUP)
  // Listener notifications only (flow == 0): the port is a service port
  // (listen_service), not a UDP port (listen).
  kEvService = 1u << 7,
};

// Packet output. The engine implements it over DPDK (UDP/IPv4 from `local`
// to `remote`); the simulator over its virtual links. The header and payload
// are separate so the engine can chain the payload as an external mbuf
// without copying it. Returning false means "not sent" (TX ring full); the
// transport treats that as a loss and recovers through retransmission.
class DatagramSink {
 public:
  virtual ~DatagramSink() = default;
  virtual bool send(const Endpoint& local, const Endpoint& remote, const uint8_t* hdr,
                    size_t hdr_len, const iovec* payload, size_t n_payload) = 0;
};

// 32-bit sequence numbers wrap; compare through signed distance (RFC 1982).
inline int32_t seq_diff(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a - b);
}
inline bool seq_lt(uint32_t a, uint32_t b) {
  return seq_diff(a, b) < 0;
}
inline bool seq_le(uint32_t a, uint32_t b) {
  return seq_diff(a, b) <= 0;
}
inline bool seq_gt(uint32_t a, uint32_t b) {
  return seq_diff(a, b) > 0;
}
inline bool seq_ge(uint32_t a, uint32_t b) {
  return seq_diff(a, b) >= 0;
}

// Small deterministic PRNG (splitmix64). Seeded by the owner: from a fixed
// seed in tests, from the OS (getrandom/rte_rand) in the engine.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint32_t next32() { return static_cast<uint32_t>(next() >> 32); }
  // Uniform in [0, n).
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_;
};

}  // namespace transport
}  // namespace machnet
