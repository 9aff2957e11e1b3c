// Flow plumbing shared by all paths: construction, outgoing header fields,
// the state summary, failure, and timer dispatch.
#include "transport/flow.h"

#include <algorithm>

namespace machnet {
namespace transport {

Flow::Flow(const FlowEnv& env, FlowId id, const Endpoint& local, const Endpoint& remote,
           bool stream)
    : env_(env),
      t_(env.t),
      id_(id),
      local_(local),
      remote_(remote),
      stream_(stream),
      state_(FlowState::kSynSent),
      mss_(env.t->mtu_payload),
      rcvbuf_(env.t->recv_buffer_bytes),
      sndbuf_(env.t->send_buffer_bytes),
      rx_max_msg_(env.t->max_message_bytes),
      ka_idle_ns_(env.t->keepalive_idle_ns),
      ka_interval_ns_(env.t->keepalive_interval_ns),
      ka_max_probes_(env.t->keepalive_probes),
      max_msg_(env.t->max_message_bytes),
      rto_(env.t->rto_initial_ns) {
  ka_asked_.keepalive = ka_idle_ns_ != 0;
  ka_asked_.keepalive_idle_ns = ka_idle_ns_;
  ka_asked_.keepalive_interval_ns = ka_interval_ns_;
  ka_asked_.keepalive_probes = ka_max_probes_;
  if (stream) {
    // A stream travels as chunks of at most stream_chunk_bytes: that is the
    // largest "message" this end accepts, which bounds reassembly memory to
    // the window plus one chunk instead of one max_message_bytes message.
    rx_max_msg_ = std::min({t_->max_message_bytes, t_->stream_chunk_bytes, rcvbuf_});
  }
  // Rings start small and double on demand up to their hard bound.
  sent_.reset(64, t_->max_inflight_segments);
  out_msgs_.reset(16, t_->send_buffer_bytes);
  slots_.reset(64, t_->max_inflight_segments);
  in_msgs_.reset(8, t_->max_reassembly_messages);
  ready_.reset(16, size_t{t_->recv_buffer_bytes} + t_->max_message_bytes);
  rtx_fifo_.reset(16, t_->max_inflight_segments);
  last_adv_wnd_ = rcvbuf_;
}

Flow::Flow(const Flow& snapshot, const FlowEnv& env, const Endpoint& local) : Flow(snapshot) {
  // The copy constructor copied values only (rings and queues copy their
  // vectors); what pointed into the other Transport is replaced here.
  env_ = env;
  t_ = env.t;
  cc_.rebind(env.t);
  local_ = local;
  // Bookkeeping owned by the (new) Transport.
  released = false;
  accept_pending = false;
  accepted = true;
  heap_deadline = kNever;
  in_half_open_index = false;
  in_connecting_index = false;
  reported_events = 0;
  frozen = false;
  retired = false;
  retire_deadline = kNever;
  migrating_ = true;
}

void Flow::set_options(uint64_t now, const FlowOptions& o) {
  const uint32_t lo = t_->min_flow_buffer_bytes;
  uint32_t r = std::min(std::max(o.recv_buffer_bytes, lo), t_->recv_buffer_bytes);
  if (!stream_) r = std::max(r, t_->max_message_bytes);
  if (advertised_) r = std::max(r, rx_max_msg_);  // a message we accepted must still fit
  rcvbuf_ = r;
  if (stream_ && !advertised_) {
    rx_max_msg_ = std::min({t_->max_message_bytes, t_->stream_chunk_bytes, rcvbuf_});
  }
  uint32_t w = std::min(std::max(o.send_buffer_bytes, lo), t_->send_buffer_bytes);
  if (!stream_) w = std::max(w, t_->max_message_bytes);
  sndbuf_ = w;
  ka_asked_.keepalive = o.keepalive;
  ka_asked_.keepalive_idle_ns = o.keepalive_idle_ns;
  ka_asked_.keepalive_interval_ns = o.keepalive_interval_ns;
  ka_asked_.keepalive_probes = o.keepalive_probes;
  ka_asked_.dead_peer_floor = o.dead_peer_floor;
  if (o.keepalive) {
    ka_idle_ns_ = std::max<uint64_t>(o.keepalive_idle_ns, 1000);
    ka_interval_ns_ = std::max<uint64_t>(o.keepalive_interval_ns, 1000);
    ka_max_probes_ = std::max<uint32_t>(o.keepalive_probes, 1);
  } else {
    ka_idle_ns_ = 0;
  }
  if (o.dead_peer_floor && t_->keepalive_idle_ns != 0) {
    const uint64_t own = t_->keepalive_idle_ns + t_->keepalive_probes * t_->keepalive_interval_ns;
    if (ka_idle_ns_ == 0 || ka_idle_ns_ + ka_max_probes_ * ka_interval_ns_ > own) {
      ka_idle_ns_ = t_->keepalive_idle_ns;
      ka_interval_ns_ = t_->keepalive_interval_ns;
      ka_max_probes_ = t_->keepalive_probes;
    }
  }
  nodelay_ = o.nodelay;
  if (cork_ && !o.cork) release_tail();
  cork_ = o.cork;
  quickack_ = o.quickack;
  if (quickack_ && ack_deadline_ != kNever && established_like()) send_pure_ack(now);
  if (established_like()) {
    // A larger window is announced at once (the peer may be waiting for it);
    // uncorking or Nagle off may release a held chunk.
    maybe_window_update(now);
    try_transmit(now);
  }
}

FlowOptions Flow::options() const {
  FlowOptions o;
  o.recv_buffer_bytes = rcvbuf_;
  o.send_buffer_bytes = sndbuf_;
  o.keepalive = ka_asked_.keepalive;
  o.keepalive_idle_ns = ka_asked_.keepalive_idle_ns;
  o.keepalive_interval_ns = ka_asked_.keepalive_interval_ns;
  o.keepalive_probes = ka_asked_.keepalive_probes;
  o.dead_peer_floor = ka_asked_.dead_peer_floor;
  o.nodelay = nodelay_;
  o.cork = cork_;
  o.quickack = quickack_;
  return o;
}

bool Flow::established_like() const {
  switch (state_) {
    case FlowState::kEstablished:
    case FlowState::kFinWait:
    case FlowState::kCloseWait:
    case FlowState::kClosing:
    case FlowState::kTimeWait:
      return true;
    default:
      return false;
  }
}

void Flow::init_established(uint64_t now) {
  state_ = FlowState::kEstablished;
  state_deadline_ = kNever;
  cc_.init(*t_, mss_, now);
  last_rx_ns_ = now;
  ka_probes_ = 0;
  rtx_scan_ = loss_scan_ = snd_una_;
  update_state(now);
}

uint32_t Flow::advertised_window() const {
  uint64_t b = rcvbuf_;
  return held_bytes_ >= b ? 0 : static_cast<uint32_t>(b - held_bytes_);
}

void Flow::fill_ack_fields(uint64_t now, Segment* s) {
  s->src_conn = id_;
  s->dst_conn = peer_id_;
  s->flags |= kFlagAck;
  s->ack = rcv_nxt_;
  s->rwnd = advertised_window();
  s->tsval = static_cast<uint32_t>(now);
  if (have_ts_) {
    s->flags |= kFlagTsEcho;
    s->tsecr = ts_recent_;
    uint64_t d = now - ts_recent_rx_ns_;
    s->ack_delay = d > 0xffffffffu ? 0xffffffffu : static_cast<uint32_t>(d);
  }
  s->sack_count = n_sacks_;
  for (uint8_t i = 0; i < n_sacks_; ++i) s->sack[i] = sacks_[i];
  // Whatever carries the ACK satisfies the delayed-ACK obligation.
  unacked_segs_ = 0;
  ack_deadline_ = kNever;
  last_adv_wnd_ = s->rwnd;
}

void Flow::transmit(uint64_t now, Segment* s, const uint8_t* payload, uint32_t len) {
  (void)now;
  s->payload_len = static_cast<uint16_t>(len);
  if (t_->payload_checksum && len > 0) s->flags |= kFlagPayloadCsum;
  if (migrating_) s->flags |= kFlagMigrated;
  uint8_t hdr[kHeaderSize];
  iovec iov{const_cast<uint8_t*>(payload), len};
  encode_header(*s, &iov, len > 0 ? 1 : 0, hdr);
  if (env_.sink->send(local_, remote_, hdr, kHeaderSize, &iov, len > 0 ? 1 : 0)) {
    ++env_.counters->tx_datagrams;
  } else {
    ++env_.counters->tx_sink_full;
  }
}

void Flow::send_control(uint64_t now, SegType type) {
  Segment s;
  s.type = type;
  fill_ack_fields(now, &s);
  s.seq = snd_nxt_;
  transmit(now, &s, nullptr, 0);
}

void Flow::send_pure_ack(uint64_t now) {
  ++env_.counters->tx_pure_acks;
  ++st_.acks_sent;
  send_control(now, SegType::kAck);
}

void Flow::update_state(uint64_t now) {
  if (!established_like()) return;
  if (state_ == FlowState::kTimeWait) return;
  FlowState next;
  if (fin_acked_ && peer_fin_) {
    next = FlowState::kTimeWait;
  } else if (fin_sent_ && peer_fin_) {
    next = FlowState::kClosing;
  } else if (fin_queued_) {
    next = FlowState::kFinWait;
  } else if (peer_fin_) {
    next = FlowState::kCloseWait;
  } else {
    next = FlowState::kEstablished;
  }
  state_ = next;
  if (state_ == FlowState::kTimeWait) {
    // Both directions are done: nothing is outstanding any more. Linger only
    // to re-ACK a retransmitted FIN whose ACK was lost.
    state_deadline_ = now + t_->time_wait_ns;
    rto_deadline_ = tlp_deadline_ = kNever;
    persist_ = false;
  }
}

void Flow::free_buffers(bool keep_ready) {
  sent_.clear();
  rtx_fifo_.clear();
  out_msgs_.clear();
  slots_.clear();
  send_buffered_ = outstanding_bytes_ = sacked_bytes_ = rtx_pending_bytes_ = 0;
  rtx_pending_segs_ = 0;
  for (size_t i = 0; i < in_msgs_.size(); ++i) reserved_bytes_ -= in_msgs_[i].data.size();
  in_msgs_.clear();
  // What is still held for the reader is what it can still read: bytes of a
  // message that will never complete (a FIN in the middle of it: only a
  // broken or forged sender does that) went with their buffers.
  held_bytes_ = ready_bytes_;
  if (!keep_ready) {
    // Unread messages are dropped only on failure (like TCP on RST).
    ready_.clear();
    held_bytes_ = reserved_bytes_ = ready_bytes_ = 0;
    ready_off_ = 0;
  }
}

void Flow::fail(uint64_t now, FlowError e, bool send_rst) {
  if (done()) return;
  probing_ = false;
  hold_since_ = kNever;
  if (send_rst && state_ != FlowState::kSynSent) {
    ++env_.counters->tx_rst;
    send_control(now, SegType::kRst);
  }
  state_ = FlowState::kFailed;
  error_ = e;
  rto_deadline_ = ack_deadline_ = state_deadline_ = tlp_deadline_ = kNever;
  free_buffers(/*keep_ready=*/false);
}

void Flow::abort(uint64_t now) {
  fail(now, FlowError::kAborted, true);
}

void Flow::resume(uint64_t now) {
  if (done() || !established_like()) return;
  // Like an RTO without its penalty: the pause dropped segments, it did not
  // prove congestion, so neither the window nor the back-off grows.
  if (snd_una_ != snd_nxt_) {
    for (size_t i = 0; i < sent_.size(); ++i)
      mark_lost(sent_[i], snd_una_ + static_cast<uint32_t>(i));
    rtx_scan_ = snd_una_;
    backoff_ = 0;
    dupacks_ = 0;
    persist_ = false;
    rto_deadline_ = tlp_deadline_ = kNever;  // re-armed by try_transmit
    try_transmit(now);
  }
  // The liveness clock restarts: the peer was not silent, we were deaf.
  last_rx_ns_ = now;
  ka_probes_ = 0;
  send_pure_ack(now);
}

bool Flow::accepts_migration(const Segment& s) const {
  // The same proofs on_segment() asks of any segment of the flow, none of
  // them weakened: both connection ids, an ACK that acknowledges nothing
  // unsent (and nothing before snd_una: the moved end's copy cannot be
  // behind what we already got), a sequence number inside the ring.
  if (done() || !established_like()) return false;
  if (s.src_conn != peer_id_) return false;
  if (s.type == SegType::kSyn || s.type == SegType::kSynAck) return false;
  if (!(s.flags & kFlagAck) || seq_gt(s.ack, snd_nxt_) || seq_lt(s.ack, snd_una_)) return false;
  const int32_t max_off = static_cast<int32_t>(t_->max_inflight_segments);
  const int32_t off = seq_diff(s.seq, rcv_nxt_);
  switch (s.type) {
    case SegType::kData:
    case SegType::kFin:
      return off >= -max_off && off < max_off;
    case SegType::kRst:
      return off >= 0 && off < max_off;
    default:  // ACK, KEEPALIVE: seq is the sender's snd_nxt, at or above ours
      return off >= 0 && off <= max_off;
  }
}

uint64_t Flow::keepalive_deadline() const {
  if (ka_idle_ns_ == 0 || !established_like() || state_ == FlowState::kTimeWait) return kNever;
  return ka_probes_ == 0 ? last_rx_ns_ + ka_idle_ns_ : ka_last_probe_ns_ + ka_interval_ns_;
}

uint64_t Flow::next_deadline() const {
  if (done()) return kNever;
  uint64_t d = std::min({rto_deadline_, tlp_deadline_, ack_deadline_, state_deadline_});
  d = std::min(d, keepalive_deadline());
  if (cork_ && hold_since_ != kNever) d = std::min(d, hold_since_ + t_->cork_max_ns);
  return d;
}

void Flow::on_timer(uint64_t now) {
  if (done()) return;
  if (state_ == FlowState::kSynSent || state_ == FlowState::kSynReceived) {
    if (state_deadline_ <= now) on_handshake_timer(now);
    return;
  }
  if (state_ == FlowState::kTimeWait && state_deadline_ <= now) {
    state_ = FlowState::kClosed;
    state_deadline_ = ack_deadline_ = rto_deadline_ = tlp_deadline_ = kNever;
    free_buffers(/*keep_ready=*/true);  // the application may not have read everything yet
    return;
  }
  if (ack_deadline_ <= now) send_pure_ack(now);
  if (tlp_deadline_ <= now) on_tlp_timer(now);
  if (rto_deadline_ <= now) {
    if (persist_) {
      on_persist_timer(now);
    } else {
      on_rto_timer(now);
    }
  }
  if (done()) return;
  if (keepalive_deadline() <= now) on_keepalive_timer(now);
  if (done()) return;
  if (cork_ && hold_since_ != kNever && hold_since_ + t_->cork_max_ns <= now) {
    release_tail();
    try_transmit(now);
  }
}

void Flow::track_high_water() {
  st_.max_send_buffered_bytes = std::max(st_.max_send_buffered_bytes, send_buffered_);
  st_.max_recv_reserved_bytes = std::max(st_.max_recv_reserved_bytes, reserved_bytes_);
  st_.max_recv_held_bytes = std::max(st_.max_recv_held_bytes, held_bytes_);
}

FlowStats Flow::stats() const {
  FlowStats s = st_;
  s.state = state_;
  s.error = error_;
  s.stream_mode = stream_;
  s.mss = mss_;
  s.max_message_bytes = max_msg_;
  s.srtt_ns = srtt_;
  s.rttvar_ns = rttvar_;
  s.rto_ns = current_rto();
  s.cwnd_bytes = cc_.cwnd_bytes();
  s.min_rtt_ns = cc_.min_rtt_ns();
  s.peer_rwnd = peer_rwnd_;
  s.send_buffered_bytes = send_buffered_;
  s.recv_held_bytes = held_bytes_;
  s.recv_reserved_bytes = reserved_bytes_;
  s.backoff = backoff_;
  s.unacked_segments = snd_nxt_ - snd_una_;
  if (state_ == FlowState::kSynSent || state_ == FlowState::kSynReceived) s.unacked_segments = 1;
  if (done()) s.unacked_segments = 0;
  uint32_t sacked = 0;
  for (size_t i = 0; i < sent_.size(); ++i) sacked += sent_[i].sacked;
  s.sacked_segments = sacked;
  s.lost_segments = rtx_pending_segs_;
  s.readable_bytes = readable_bytes();
  s.unacked_bytes = unacked_bytes();
  s.unsent_bytes = unsent_bytes();
  s.recv_buffer_bytes = rcvbuf_;
  s.send_buffer_bytes = sndbuf_;
  s.advertised_window = advertised_window();
  s.service_port = service_port_;
  s.fallback = fallback_;
  return s;
}

}  // namespace transport
}  // namespace machnet
