// One connection: handshake state machine, send path (segmentation, windows),
// receive path (reassembly, delayed/selective ACKs), loss recovery (RTO, SACK
// fast retransmit) and the per-flow timers. Implementation is split by concern
// over handshake.cc, send_path.cc, receive_path.cc, loss_recovery.cc, flow.cc.
#pragma once

#include <cstdint>
#include <vector>

#include "transport/congestion_control.h"
#include "transport/ring.h"
#include "transport/tunables.h"
#include "transport/types.h"
#include "transport/wire_format.h"

namespace machnet {
namespace transport {

// What a flow needs from its Transport.
class PeerCache;
class KernelRoutes;

struct FlowEnv {
  const Tunables* t = nullptr;
  DatagramSink* sink = nullptr;
  Counters* counters = nullptr;
  Rng* rng = nullptr;
  // What the transport knows of peers (a probe to a host that answered as
  // machnet a moment ago is not given up for silence). May be null (tests).
  const PeerCache* peers = nullptr;
  // Whether kernel TCP could reach a host at all (a silent probe to a host
  // it cannot reach is not a fallback). May be null: it can.
  const KernelRoutes* routes = nullptr;
};

// Per-flow options: the transport's side of the socket options a stream
// socket maps (docs/PROTOCOL.md, "Per-flow options"). Start from
// Transport::default_flow_options() or get_flow_options(); set_flow_options
// clamps, and get_flow_options returns what is in effect.
struct FlowOptions {
  // SO_RCVBUF: bytes held for the reader, i.e. the receive window. Clamped
  // to [min_flow_buffer_bytes, Tunables::recv_buffer_bytes], and never below
  // the largest message this end advertised (so a message always fits).
  uint32_t recv_buffer_bytes = 0;
  // SO_SNDBUF: queued + unacknowledged bytes. Clamped to
  // [min_flow_buffer_bytes, Tunables::send_buffer_bytes] (message mode: at
  // least max_message_bytes).
  uint32_t send_buffer_bytes = 0;
  // SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT: probe after
  // `idle` without a valid segment, every `interval`, fail with kDeadPeer
  // after `probes` unanswered ones.
  bool keepalive = false;
  uint64_t keepalive_idle_ns = 0;
  uint64_t keepalive_interval_ns = 0;
  uint32_t keepalive_probes = 0;
  // Detect a dead peer whatever `keepalive` says, no later than the
  // transport's own keepalive (Tunables keepalive_*; nothing when
  // keepalive_idle_ns is 0) would: the flow probes with the earlier of that
  // bound and the one asked for above. For a socket layer: a machnet peer
  // killed with its engine goes silent (no kernel outlives it to reset its
  // connections), so an end that only receives would wait forever.
  bool dead_peer_floor = false;
  // TCP_NODELAY. false (Nagle): a stream chunk shorter than the MSS waits
  // while data is unacknowledged, and later writes join it.
  bool nodelay = true;
  // TCP_CORK: a partial stream chunk waits until it is full
  // (stream_chunk_bytes), uncorked, shut down, or cork_max_ns passed.
  bool cork = false;
  // TCP_QUICKACK: acknowledge every segment at once (no delayed ACK).
  // Setting it sends a pending delayed ACK now.
  bool quickack = false;
};

// Per-flow numbers, for tests, machnet-stat and the socket layer (TCP_INFO,
// FIONREAD, SIOCOUTQ).
struct FlowStats {
  FlowState state = FlowState::kClosed;
  FlowError error = FlowError::kNone;
  bool stream_mode = false;
  uint32_t mss = 0;
  uint32_t max_message_bytes = 0;  // negotiated: the smaller of both ends
  uint64_t srtt_ns = 0;
  uint64_t rttvar_ns = 0;
  uint64_t rto_ns = 0;
  uint64_t cwnd_bytes = 0;
  uint64_t min_rtt_ns = 0;
  uint32_t peer_rwnd = 0;
  // memory (all bounded: see Tunables)
  uint64_t send_buffered_bytes = 0;      // queued + unacknowledged
  uint64_t recv_held_bytes = 0;          // in order, not yet read
  uint64_t recv_reserved_bytes = 0;      // reassembly buffers allocated
  uint64_t max_send_buffered_bytes = 0;  // high-water marks
  uint64_t max_recv_reserved_bytes = 0;
  uint64_t max_recv_held_bytes = 0;
  // traffic
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_acked = 0;
  uint64_t segments_sent = 0;
  uint64_t retransmits = 0;
  uint64_t fast_retransmits = 0;  // losses found by SACK/dup-ACK/RACK, not by timeout
  uint64_t tail_loss_probes = 0;
  uint64_t rto_count = 0;
  uint64_t acks_sent = 0;  // pure ACKs
  uint64_t segments_received = 0;
  uint64_t keepalives_sent = 0;
  uint64_t zero_window_probes = 0;
  // what TCP_INFO and the socket layer's ioctls need
  uint32_t backoff = 0;           // consecutive RTOs/probes without progress (tcpi_backoff)
  uint32_t unacked_segments = 0;  // in flight (tcpi_unacked)
  uint32_t sacked_segments = 0;   // tcpi_sacked
  uint32_t lost_segments = 0;     // declared lost, not resent yet (tcpi_lost)
  uint64_t bytes_sent = 0;        // payload transmitted, retransmissions included
  uint64_t bytes_retrans = 0;
  uint64_t bytes_received = 0;  // in-order payload received
  uint64_t last_data_sent_ns = 0;
  uint64_t last_data_recv_ns = 0;
  uint64_t last_ack_recv_ns = 0;
  uint64_t readable_bytes = 0;     // FIONREAD: what a read returns now
  uint64_t unacked_bytes = 0;      // SIOCOUTQ: queued, not yet acknowledged
  uint64_t unsent_bytes = 0;       // SIOCOUTQNSD / tcpi_notsent_bytes
  uint32_t recv_buffer_bytes = 0;  // in effect (FlowOptions)
  uint32_t send_buffer_bytes = 0;
  uint32_t advertised_window = 0;  // rwnd we announce now (tcpi_rcv_space)
  // service connects
  uint16_t service_port = 0;
  FallbackReason fallback = FallbackReason::kNone;
};

class Flow {
 public:
  Flow(const FlowEnv& env, FlowId id, const Endpoint& local, const Endpoint& remote, bool stream);
  // Adoption (Transport::adopt): a copy of `snapshot`, a flow of another
  // Transport instance (the fork-time copy of the parent's), rebound to
  // `env` and running on `local`. Every member is a value (rings copy their
  // vectors) except the environment pointers, which are replaced here. The
  // Transport-owned bookkeeping is reset; the copy announces the move
  // (kFlagMigrated) until the peer answers at the new port.
  Flow(const Flow& snapshot, const FlowEnv& env, const Endpoint& local);

  // --- handshake.cc ---------------------------------------------------------
  void start_connect(uint64_t now);
  // A service connect (docs/PROTOCOL.md 2.1): remote() is (peer, rendezvous
  // port) until the SYN-ACK names the accepting endpoint's port. Bounded by
  // probe_timeout_ns.
  void start_service_connect(uint64_t now, uint16_t service_port);
  // Server side: this flow answers a service SYN (before start_accept).
  void set_service(uint16_t service_port) { service_port_ = service_port; }
  // Server side: a SYN arrived for a listener; becomes SYN_RECEIVED.
  void start_accept(uint64_t now, const Segment& syn);
  // A retransmitted SYN for this half-open flow: answer again.
  void on_duplicate_syn(uint64_t now, const Segment& syn);
  void on_icmp_unreachable(uint64_t now);
  // Service probes: what this flow learned about its peer, for the
  // Transport's per-peer cache (taken once).
  enum class ProbeNews : uint8_t { kNone, kMachnet, kPlainIcmp, kPlainTimeout, kNoService };
  ProbeNews take_probe_news() {
    ProbeNews n = news_;
    news_ = ProbeNews::kNone;
    return n;
  }
  // SYN_SENT service connect still under its probe bound.
  bool probing() const { return probing_ && state_ == FlowState::kSynSent; }
  // ICMP port unreachable for the rendezvous port: the peer has no machnet.
  void on_probe_refused(uint64_t now);
  // Another probe to the same peer reached a verdict that settles this one.
  void settle_probe(uint64_t now, FallbackReason reason);
  // Half-open flow dropped to admit a newer SYN (no RST: likely spoofed).
  void evict(uint64_t now);
  // Whether a datagram from `from` may belong to this flow: the peer's
  // address, or for a service connect whose SYN-ACK has not come yet any
  // port of the peer (the SYN-ACK comes from the accepting endpoint's port).
  bool accepts_source(const Endpoint& from) const {
    return from == remote_ ||
           (service_port_ != 0 && !passive && !adopted_ && from.ip == remote_.ip);
  }
  // --- receive_path.cc --------------------------------------------------------
  // `s` passed header validation and dst_conn == id(); it came from UDP
  // port `from_port` of the peer (adopted by a service connect's SYN-ACK).
  void on_segment(uint64_t now, const Segment& s, uint16_t from_port = 0);
  Status recv_message(uint64_t now, std::vector<uint8_t>* out);
  Status recv_stream(uint64_t now, uint8_t* buf, size_t cap, size_t* got);
  // MSG_PEEK: copies what recv_stream would return without consuming it.
  Status peek_stream(uint8_t* buf, size_t cap, size_t* got) const;
  uint64_t readable_bytes() const;  // FIONREAD
  bool readable() const;
  // Moves on every in-order arrival and every acknowledgement: an edge for
  // edge-triggered readiness even when the events mask stays the same.
  uint64_t activity() const { return st_.bytes_received + st_.bytes_acked + st_.segments_received; }
  uint32_t events() const;  // FlowEvents mask

  // --- send_path.cc ---------------------------------------------------------
  Status send_message(uint64_t now, const uint8_t* data, size_t len);
  Status send_stream(uint64_t now, const uint8_t* data, size_t len, size_t* accepted);
  Status shutdown_send(uint64_t now);
  size_t send_space() const;
  uint64_t unacked_bytes() const;  // SIOCOUTQ: queued and not yet acknowledged
  uint64_t unsent_bytes() const;   // SIOCOUTQNSD: queued and never sent

  // --- flow.cc ----------------------------------------------------------------
  void abort(uint64_t now);
  // After a pause in which segments were dropped (thaw, adoption, the peer
  // moved): everything unacknowledged and not SACKed is resent now (as far
  // as the congestion window allows; the rest follows as ACKs come back),
  // the back-off starts over and an ACK goes out. No-op on a finished flow.
  void resume(uint64_t now);
  // Path migration (docs/PROTOCOL.md, "Moving a flow to another process"):
  // whether `s`, which came from the peer's IP but another UDP port with
  // kFlagMigrated, carries every proof a segment of this flow must carry
  // (ids, an ACK within [snd_una, snd_nxt], seq within the ring). Pure check.
  bool accepts_migration(const Segment& s) const;
  void set_remote_port(uint16_t port) { remote_.port = port; }
  // Our segments carry kFlagMigrated (adopted, peer not heard at the new
  // port yet).
  bool migrating() const { return migrating_; }
  // The owner is about to vanish (process exit): what is unacknowledged
  // (data, FIN) is resent at the next poll and the back-off starts over, so
  // the retransmissions fit in the short time left. False if nothing is
  // outstanding.
  bool expedite(uint64_t now);
  uint64_t next_deadline() const;
  void on_timer(uint64_t now);
  // Applies (clamped) options; before the SYN/SYN-ACK they also decide the
  // largest message this end advertises.
  void set_options(uint64_t now, const FlowOptions& o);
  FlowOptions options() const;
  // Internal consistency (sequence space, byte accounting, memory bounds):
  // nullptr when sound, else what is wrong. O(flow size): tests and fuzzing.
  const char* check_invariants() const;

  FlowId id() const { return id_; }
  uint32_t peer_id() const { return peer_id_; }
  const Endpoint& local() const { return local_; }
  const Endpoint& remote() const { return remote_; }
  FlowState state() const { return state_; }
  FlowError error() const { return error_; }
  bool stream_mode() const { return stream_; }
  bool done() const { return state_ == FlowState::kClosed || state_ == FlowState::kFailed; }
  bool half_open() const { return state_ == FlowState::kSynReceived; }
  // Past the handshake and not finished: ESTABLISHED, FIN_WAIT, CLOSE_WAIT,
  // CLOSING, TIME_WAIT.
  bool established_like() const;
  uint16_t service_port() const { return service_port_; }
  uint64_t born_ns() const { return born_ns_; }
  const Tunables& tunables() const { return *t_; }
  FlowStats stats() const;

  // Bookkeeping owned by the Transport.
  bool released = false;        // the application gave the handle up (close/abort)
  bool passive = false;         // created from a SYN (server side)
  bool accept_pending = false;  // server flow established, waiting for the listener
  bool accepted = false;
  uint64_t heap_deadline = kNever;  // earliest entry of this flow in the timer heap
  bool in_half_open_index = false;  // FlowTable's indexes (no lookup per event)
  bool in_connecting_index = false;
  uint32_t reported_events = 0;  // last mask given to the event handler
  // Hand-off to another process (Transport::freeze/retire): a frozen flow
  // is not processed at all; a retired one is a silent tombstone until
  // retire_deadline.
  bool frozen = false;
  bool frozen_drops = false;  // segments dropped while frozen: thaw resends
  bool retired = false;
  uint64_t retire_deadline = kNever;

 private:
  struct SentSeg {
    uint32_t msg_id = 0;
    uint32_t offset = 0;
    uint32_t len = 0;
    uint64_t sent_ns = 0;
    bool fin = false;
    bool sacked = false;
    bool needs_rtx = false;    // declared lost, waiting for retransmission
    bool loss_marked = false;  // already declared lost once (SACK/dup-ACK)
    uint16_t xmits = 0;
  };
  struct OutMessage {
    std::vector<uint8_t> data;
    uint32_t last_seq = 0;  // seq of its last segment, once fully segmented
    bool segmented = false;
  };
  struct RecvSlot {
    uint32_t len = 0;
    uint8_t state = 0;  // 0 empty, 1 data, 2 FIN
  };
  struct InMessage {
    std::vector<uint8_t> data;
    uint32_t len = 0;
    uint32_t received = 0;
    bool allocated = false;
  };

  // flow.cc
  void fail(uint64_t now, FlowError e, bool send_rst);
  void update_state(uint64_t now);
  void fill_ack_fields(uint64_t now, Segment* s);
  void transmit(uint64_t now, Segment* s, const uint8_t* payload, uint32_t len);
  void send_pure_ack(uint64_t now);
  void send_control(uint64_t now, SegType type);
  void free_buffers(bool keep_ready);
  void track_high_water();
  uint32_t advertised_window() const;
  void init_established(uint64_t now);
  uint64_t keepalive_deadline() const;

  // handshake.cc
  void send_syn(uint64_t now);
  void send_syn_ack(uint64_t now);
  void on_handshake_timer(uint64_t now);
  bool on_segment_handshake(uint64_t now, const Segment& s, uint16_t from_port);
  void apply_peer_params(const Segment& s);
  void probe_fail(uint64_t now, FallbackReason reason);
  uint64_t probe_rto() const;

  // send_path.cc
  void try_transmit(uint64_t now);
  bool send_new_segment(uint64_t now);
  void send_segment(uint64_t now, SentSeg& seg, uint32_t seq, bool rtx);
  void arm_rto(uint64_t now);
  uint64_t pipe_bytes() const;
  uint32_t chunk_limit() const;
  bool hold_tail(uint64_t now);
  void release_tail();
  void split_queued_chunks();

  // receive_path.cc
  void on_data_or_fin(uint64_t now, const Segment& s);
  bool accept_data(const Segment& s, uint32_t off);
  void advance_rcv_nxt();
  void deliver_complete_messages();
  void add_sack(uint32_t seq);
  void maybe_window_update(uint64_t now);
  void consume_read(size_t bytes);

  // loss_recovery.cc
  void on_ack_fields(uint64_t now, const Segment& s, bool has_data);
  void process_sack(const Segment& s, uint64_t* newly_sacked);
  void detect_losses(uint64_t now);
  void on_rto_timer(uint64_t now);
  void on_persist_timer(uint64_t now);
  void update_rtt(uint64_t sample_ns);
  uint64_t current_rto() const;
  void mark_lost(SentSeg& g, uint32_t seq);
  void rack_detect();
  void arm_tlp(uint64_t now);
  void on_tlp_timer(uint64_t now);
  void on_keepalive_timer(uint64_t now);

  FlowEnv env_;
  const Tunables* t_;  // env_.t (a pointer: an adopted copy is rebound)
  FlowId id_;
  uint32_t peer_id_ = 0;
  Endpoint local_, remote_;
  bool stream_;
  FlowState state_;
  FlowError error_ = FlowError::kNone;
  uint32_t mss_;
  uint64_t born_ns_ = 0;

  // ---- options (FlowOptions) ----
  uint32_t rcvbuf_;
  uint32_t sndbuf_;
  uint32_t rx_max_msg_;      // largest message we accept: advertised in the SYN/SYN-ACK
  bool advertised_ = false;  // rx_max_msg_ is on the wire: fixed from now on
  uint64_t ka_idle_ns_;      // 0: keepalive off (the effective values)
  uint64_t ka_interval_ns_;
  uint32_t ka_max_probes_;
  FlowOptions ka_asked_;  // keepalive_* and dead_peer_floor as set_options was given them
  bool nodelay_ = true;
  bool cork_ = false;
  bool quickack_ = false;
  uint64_t hold_since_ = kNever;  // corked tail chunk waiting since
  bool tail_released_ = false;    // its cork time ran out: send it when the window allows

  // ---- service connect / probe ----
  uint16_t service_port_ = 0;
  bool probing_ = false;  // SYN_SENT under the probe bound
  bool adopted_ = false;  // remote port taken from the SYN-ACK
  // ---- hand-off ----
  bool migrating_ = false;  // adopted: send kFlagMigrated until the peer answers
  uint64_t probe_deadline_ = kNever;
  FallbackReason fallback_ = FallbackReason::kNone;
  ProbeNews news_ = ProbeNews::kNone;

  // ---- send side ----
  uint32_t iss_ = 0;
  uint32_t snd_una_ = 0;       // oldest unacknowledged
  uint32_t snd_nxt_ = 0;       // next new sequence number
  Ring<SentSeg> sent_;         // [snd_una_, snd_nxt_)
  Ring<OutMessage> out_msgs_;  // messages not fully acknowledged; front id = out_base_id_
  uint32_t out_base_id_ = 0;
  uint32_t next_msg_id_ = 0;  // id of the next message queued
  uint32_t seg_msg_id_ = 0;   // message being segmented
  uint32_t seg_offset_ = 0;   // next byte of it to send
  uint64_t send_buffered_ = 0;
  uint64_t outstanding_bytes_ = 0;  // payload in [una, nxt)
  uint64_t sacked_bytes_ = 0;
  uint64_t rtx_pending_bytes_ = 0;
  uint32_t rtx_pending_segs_ = 0;
  uint32_t probe_unanswered_ = 0;
  uint32_t rtx_scan_ = 0;        // no needs_rtx segment below this
  uint32_t highest_sacked_ = 0;  // one past the highest SACKed seq (if any)
  bool have_sacked_ = false;
  uint32_t loss_scan_ = 0;  // segments below were examined for loss
  uint32_t dupacks_ = 0;
  bool in_recovery_ = false;
  uint32_t recovery_point_ = 0;
  uint32_t peer_rwnd_ = 0;
  uint32_t peer_ring_ = 0;
  uint32_t max_msg_;  // min(ours, the peer's max_message_bytes)
  bool fin_queued_ = false;
  bool fin_sent_ = false;
  bool fin_acked_ = false;
  CongestionControl cc_;

  // RTT / RTO
  uint64_t srtt_ = 0, rttvar_ = 0, rto_;
  uint32_t backoff_ = 0;  // consecutive RTOs / probes without progress
  uint64_t rto_deadline_ = kNever;
  uint64_t tlp_deadline_ = kNever;  // tail loss probe (one per flight)
  uint64_t rack_xmit_ns_ = 0;       // send time of the most recently delivered segment
  Ring<uint32_t> rtx_fifo_;         // retransmitted seqs in send order (RACK for them)
  bool persist_ = false;            // rto_deadline_ is a zero-window probe

  // ---- receive side ----
  uint32_t irs_ = 0;
  uint32_t rcv_nxt_ = 0;
  Ring<RecvSlot> slots_;     // [rcv_nxt_, ...)
  Ring<InMessage> in_msgs_;  // messages being reassembled; front id = rcv_msg_base_
  uint32_t rcv_msg_base_ = 0;
  Ring<std::vector<uint8_t>> ready_;  // complete, unread
  size_t ready_off_ = 0;              // stream mode: bytes of ready_.front() already read
  uint64_t held_bytes_ = 0;           // in order, unread (drives the window)
  uint64_t ready_bytes_ = 0;          // bytes of ready_ not read yet (FIONREAD)
  uint64_t reserved_bytes_ = 0;       // allocated reassembly + ready buffers
  bool peer_fin_ = false;
  SackBlock sacks_[kMaxSackBlocks];  // most recent first
  uint8_t n_sacks_ = 0;
  uint32_t ts_recent_ = 0;
  uint64_t ts_recent_rx_ns_ = 0;
  bool have_ts_ = false;
  uint32_t unacked_segs_ = 0;
  uint64_t ack_deadline_ = kNever;
  uint32_t last_adv_wnd_ = 0;

  // ---- liveness ----
  uint64_t last_rx_ns_ = 0;
  uint32_t ka_probes_ = 0;
  uint64_t ka_last_probe_ns_ = 0;
  uint64_t state_deadline_ = kNever;  // TIME_WAIT end, SYN retransmit
  uint32_t syn_retries_ = 0;
  uint64_t syn_sent_ns_ = 0;

  FlowStats st_;
};

}  // namespace transport
}  // namespace machnet
