// Every knob of the transport in one place, with datacenter defaults. Values
// are per Transport instance; the engine fills them from its config file.
#pragma once

#include <cstdint>
#include <string>

namespace machnet {
namespace transport {

struct Tunables {
  // --- segmentation -------------------------------------------------------
  // Message bytes per datagram (after our header). 1400 fits a 1500 MTU with
  // IPv4+UDP+our header; ~8900 for 9000-byte jumbo frames. The smaller of
  // both ends' values is used.
  uint32_t mtu_payload = 1400;
  uint32_t max_message_bytes = 8u << 20;    // largest message send_message accepts
  uint32_t stream_chunk_bytes = 64u << 10;  // stream mode: bytes per internal message (capped
                                            // at max_message_bytes)

  // --- memory bounds ------------------------------------------------------
  // Bytes the application may queue (sent but unacknowledged + unsent).
  // Must be >= max_message_bytes so any single message fits when empty.
  uint32_t send_buffer_bytes = 16u << 20;
  // Receive window: bytes held for the application (in order, unread). The
  // reassembly memory of a flow is bounded by recv_buffer_bytes +
  // max_message_bytes (one partially received message past the window).
  uint32_t recv_buffer_bytes = 16u << 20;
  // Segments outstanding / tracked per direction (ring sizes). Limits the
  // window in segments too: 16384 * 1400 B = 22 MiB.
  uint32_t max_inflight_segments = 16384;
  uint32_t max_reassembly_messages = 4096;  // messages partially received at once

  // --- flow table -----------------------------------------------------------
  uint32_t max_flows = 65536;
  uint32_t max_half_open = 1024;  // SYN_RECEIVED flows, all listeners together
  uint32_t listen_backlog = 128;  // established, not yet accepted, per listener
  // With the half-open table full, a new SYN evicts the oldest half-open flow
  // once that one has waited this long for the client's ACK (a datacenter
  // handshake takes one RTT: tens of microseconds). A flood of F SYNs/s then
  // leaves every half-open flow max_half_open / F seconds to complete
  // (10 ms at 100,000/s) instead of locking legitimate clients out
  // (docs/PROTOCOL.md, "SYN floods"). 0 = never evict (SYNs over the bound
  // are dropped).
  uint64_t half_open_evict_ns = 5'000'000;

  // --- handshake ----------------------------------------------------------
  uint64_t syn_rto_ns = 5'000'000;  // first SYN/SYN-ACK retransmission, doubles
  // A silent peer fails after rto*(2^(n+1)-1) = 5.1 s (it was 315 ms: a
  // loaded peer missed it; TCP retries for minutes).
  uint32_t syn_max_retries = 9;

  // --- RTT / RTO (RFC 6298 with datacenter constants) -----------------------
  uint64_t rto_initial_ns = 5'000'000;   // before the first RTT sample
  uint64_t rto_min_ns = 1'000'000;       // floor; may be set to e.g. 200 us
  uint64_t rto_max_ns = 200'000'000;     // back-off ceiling
  uint64_t rto_granularity_ns = 10'000;  // G in RFC 6298 (timer granularity)
  // Consecutive RTOs (or unanswered zero-window probes) without progress
  // before the flow fails with kRetransmitTimeout: about 4.7 s of silence
  // with the RTO backing off from 1 ms to rto_max_ns. A peer on a loaded
  // host can be descheduled for a second and more; TCP would wait minutes.
  uint32_t max_retransmits = 30;

  // --- loss recovery --------------------------------------------------------
  uint32_t dupack_threshold = 3;  // SACKed segments above a hole that declare it lost

  // --- acknowledgements -----------------------------------------------------
  uint32_t ack_every_segments = 2;   // delayed ACK: at most this many segments unacked
  uint64_t delayed_ack_ns = 25'000;  // ... or this long
  // A segment that completes a message and asks for an immediate ACK is
  // acknowledged this much later instead, so a reply the application sends
  // in the meantime carries the ACK (request/response: 2 packets, not 4).
  // The ack_delay field lets the sender discount the wait from its RTT.
  // 0 = acknowledge at once.
  uint64_t reply_grace_ns = 5'000;

  // --- keepalive / dead peer ------------------------------------------------
  // A flow that hears nothing for keepalive_idle_ns sends a probe every
  // keepalive_interval_ns; after keepalive_probes unanswered probes it fails
  // with kDeadPeer: detection within idle + probes * interval (6 s: a
  // peer stalled for a second or two is not dead). 0 disables.
  uint64_t keepalive_idle_ns = 1'000'000'000;
  uint64_t keepalive_interval_ns = 1'000'000'000;
  uint32_t keepalive_probes = 5;
  uint64_t time_wait_ns = 10'000'000;  // linger after close to re-ACK a lost FIN

  // --- stream services: rendezvous and probes (docs/PROTOCOL.md 2.1) -----
  // Per-host UDP port on which service SYNs (connect_service) arrive. 14700
  // lies in IANA's unassigned range 14501-14935 (neither TCP nor UDP is
  // registered there), below Linux's ephemeral range (32768-60999, so no
  // kernel socket is handed it by accident) and outside Kubernetes'
  // NodePort range (30000-32767).
  uint16_t rendezvous_port = 14700;
  // A service connect that hears nothing (neither SYN-ACK, RST nor ICMP)
  // within this bound ends with kNotMachnet: the socket layer then uses
  // kernel TCP. The SYN is resent every probe_timeout_ns / 3 meanwhile.
  uint64_t probe_timeout_ns = 3'000'000;
  // How long a verdict is remembered per peer. A plain peer (ICMP or
  // silence) is not probed again for probe_plain_ttl_ns; a machnet host
  // without a listener on a service port for probe_no_service_ttl_ns (short:
  // the service may be starting). 0 disables that cache.
  uint64_t probe_plain_ttl_ns = 10'000'000'000ull;
  uint64_t probe_no_service_ttl_ns = 1'000'000'000ull;
  uint64_t probe_machnet_ttl_ns = 10'000'000'000ull;
  uint32_t probe_cache_entries = 4096;  // bound of the per-peer cache (oldest go first)

  // --- stream options ---------------------------------------------------------
  // TCP_CORK holds a partial chunk at most this long (Linux: 200 ms).
  uint64_t cork_max_ns = 200'000'000;
  // Smallest per-flow buffer (SO_RCVBUF / SO_SNDBUF are clamped to
  // [min_flow_buffer_bytes, recv/send_buffer_bytes]).
  uint32_t min_flow_buffer_bytes = 4096;

  // --- congestion control (Swift-style delay-based, see docs/PROTOCOL.md) ---
  uint32_t initial_cwnd_segments = 16;
  uint32_t min_cwnd_segments = 1;
  uint32_t max_cwnd_bytes = 32u << 20;
  // Target delay (Swift): a fixed base target for datacenter paths (same for
  // all flows: fairness), or, on paths whose min RTT exceeds base + scaling +
  // queueing, min RTT + cc_target_queueing_ns. 0 = always use the measured base.
  uint64_t cc_base_target_ns = 50'000;
  uint64_t cc_target_queueing_ns = 25'000;            // queueing delay tolerated above min RTT
  uint64_t cc_flow_scaling_range_ns = 50'000;         // extra target for small windows
  uint64_t cc_min_rtt_window_ns = 10'000'000'000ull;  // base-RTT re-measure period
  double cc_additive_increase = 1.0;                  // segments per RTT
  double cc_beta = 0.8;     // multiplicative decrease per unit of excess delay
  double cc_max_mdf = 0.5;  // largest single decrease
  // On a loss while delay is below target, decrease by only this fraction of
  // cc_max_mdf (random loss is not congestion; delay is the primary signal).
  double cc_low_delay_loss_fraction = 0.25;
  bool cc_slow_start = true;  // double per RTT until delay or loss says stop

  // --- integrity --------------------------------------------------------------
  // The header is always checksummed; this adds the payload (see PROTOCOL.md
  // for why we do not rely on the UDP checksum alone).
  bool payload_checksum = true;

  // --- RST replies to unknown flows: token bucket (no reflection amplifier) ---
  uint32_t rst_rate_per_sec = 10000;
  uint32_t rst_burst = 100;

  // Empty string when the combination is usable, else why not.
  std::string validate() const;
};

}  // namespace transport
}  // namespace machnet
