// Receive side: validation (connection ids, sequence window), reassembly of
// message fragments straight into per-message buffers (no per-packet
// allocation), in-order delivery, SACK blocks, delayed ACKs and window
// updates.
#include <algorithm>
#include <cstring>

#include "transport/flow.h"

namespace machnet {
namespace transport {

void Flow::on_segment(uint64_t now, const Segment& s, uint16_t from_port) {
  if (state_ == FlowState::kClosed && s.src_conn == peer_id_ &&
      (s.type == SegType::kFin || s.type == SegType::kData) && seq_lt(s.seq, rcv_nxt_) &&
      seq_diff(rcv_nxt_, s.seq) <= static_cast<int32_t>(t_->max_inflight_segments)) {
    // Closed but not yet released: still re-ACK a retransmission whose ACK
    // was lost so the peer's close completes instead of timing out.
    ++env_.counters->rx_duplicate;
    send_pure_ack(now);
    return;
  }
  if (done()) {
    ++env_.counters->rx_flow_finished;
    return;
  }
  if (state_ == FlowState::kSynSent) {
    on_segment_handshake(now, s, from_port);
    return;
  }
  if (s.src_conn != peer_id_) {  // both ids must match: 64 random bits to guess
    ++env_.counters->rx_bad_conn_id;
    return;
  }
  const int32_t max_off = static_cast<int32_t>(t_->max_inflight_segments);
  if (s.type == SegType::kRst) {
    int32_t off = seq_diff(s.seq, rcv_nxt_);
    if (off < 0 || off >= max_off) {
      ++env_.counters->rx_out_of_window;
      return;
    }
    ++env_.counters->rx_rst;
    if (state_ == FlowState::kSynReceived) {
      fail(now, FlowError::kReset, false);
    } else if ((fin_sent_ && peer_fin_) || state_ == FlowState::kTimeWait) {
      // The peer finished and forgot us before seeing our last ACK: the close
      // was graceful in both directions anyway.
      state_ = FlowState::kClosed;
      rto_deadline_ = ack_deadline_ = state_deadline_ = kNever;
      free_buffers(/*keep_ready=*/true);
    } else {
      fail(now, FlowError::kReset, false);
    }
    return;
  }
  if (state_ == FlowState::kSynReceived) {
    if (on_segment_handshake(now, s, from_port)) return;
  }
  if (s.type == SegType::kSyn) {
    ++env_.counters->rx_unexpected;
    return;
  }
  if (s.type == SegType::kSynAck) {
    // Our handshake ACK was lost and the server retransmitted: ACK again.
    if (s.seq == irs_) {
      ++env_.counters->rx_duplicate;
      last_rx_ns_ = now;
      send_pure_ack(now);
    } else {
      ++env_.counters->rx_unexpected;
    }
    return;
  }
  if (s.flags & kFlagAck) {
    // An ACK for data we never sent, or older than anything we could still
    // have outstanding, is forged or from a previous incarnation.
    if (seq_gt(s.ack, snd_nxt_) || seq_diff(snd_una_, s.ack) > max_off) {
      ++env_.counters->rx_out_of_window;
      return;
    }
  }
  const bool carries_seq = s.type == SegType::kData || s.type == SegType::kFin;
  if (carries_seq) {
    int32_t off = seq_diff(s.seq, rcv_nxt_);
    if (off >= max_off || off < -max_off) {
      ++env_.counters->rx_out_of_window;
      return;
    }
  }
  // Only a validated segment proves the peer is alive, and (adopted flow)
  // that it sends to our new port: the move need not be announced any more.
  migrating_ = false;
  last_rx_ns_ = now;
  ka_probes_ = 0;
  ++st_.segments_received;
  if (s.flags & kFlagAck) on_ack_fields(now, s, carries_seq);
  if (done()) return;
  if (carries_seq) {
    on_data_or_fin(now, s);
  } else if (s.type == SegType::kKeepalive) {
    send_pure_ack(now);  // answers keepalives and zero-window probes
  }
  update_state(now);
  track_high_water();
}

bool Flow::accept_data(const Segment& s, uint32_t off) {
  (void)off;
  if (s.payload_len == 0 || s.payload_len > t_->mtu_payload || s.msg_len == 0 ||
      s.msg_len > rx_max_msg_ || uint64_t{s.msg_offset} + s.payload_len > uint64_t{s.msg_len}) {
    ++env_.counters->rx_bad_fragment;
    return false;
  }
  uint32_t idx = s.msg_id - rcv_msg_base_;
  if (idx >= t_->max_reassembly_messages || !in_msgs_.extend_to(size_t{idx} + 1)) {
    ++env_.counters->rx_out_of_window;
    return false;
  }
  InMessage& m = in_msgs_[idx];
  if (!m.allocated) {
    // Hard memory bound, whatever the sender does: the window (held + rwnd
    // <= the receive buffer) plus one message straddling its right edge.
    if (reserved_bytes_ + s.msg_len > uint64_t{rcvbuf_} + rx_max_msg_) {
      ++env_.counters->rx_recv_buffer_full;
      return false;
    }
    m.data.resize(s.msg_len);
    m.len = s.msg_len;
    m.allocated = true;
    reserved_bytes_ += s.msg_len;
  } else if (m.len != s.msg_len || m.received + s.payload_len > m.len) {
    ++env_.counters->rx_bad_fragment;
    return false;
  }
  std::memcpy(m.data.data() + s.msg_offset, s.payload, s.payload_len);
  m.received += s.payload_len;
  return true;
}

void Flow::on_data_or_fin(uint64_t now, const Segment& s) {
  int32_t off = seq_diff(s.seq, rcv_nxt_);
  if (off < 0 || peer_fin_) {
    // Already have it: our ACK was probably lost, so repeat it now.
    ++env_.counters->rx_duplicate;
    send_pure_ack(now);
    // RFC 793: a retransmitted FIN restarts TIME_WAIT.
    if (state_ == FlowState::kTimeWait) state_deadline_ = now + t_->time_wait_ns;
    return;
  }
  if (!slots_.extend_to(static_cast<size_t>(off) + 1)) {
    ++env_.counters->rx_out_of_window;
    return;
  }
  if (slots_[off].state != 0) {
    ++env_.counters->rx_duplicate;
    send_pure_ack(now);
    return;
  }
  if (s.type == SegType::kData) {
    if (!accept_data(s, static_cast<uint32_t>(off))) return;
    slots_[off].state = 1;
    slots_[off].len = s.payload_len;
    st_.last_data_recv_ns = now;
  } else {
    slots_[off].state = 2;
  }
  have_ts_ = true;
  ts_recent_ = s.tsval;
  ts_recent_rx_ns_ = now;
  const bool had_gap = n_sacks_ > 0;
  if (off == 0) {
    advance_rcv_nxt();
    deliver_complete_messages();
  } else {
    add_sack(s.seq);
  }
  ++unacked_segs_;
  // ACK at once when the sender needs information fast (reordering or loss,
  // a hole just filled, FIN, end of a burst); otherwise coalesce.
  bool urgent = off > 0 || had_gap || s.type == SegType::kFin ||
                unacked_segs_ >= t_->ack_every_segments || quickack_;
  bool ack_now = urgent || (s.flags & kFlagAckNow);
  if (ack_now && !urgent && t_->reply_grace_ns > 0 && !ready_.empty()) {
    // The end of a burst that completed a message: wait briefly for the
    // application's reply to piggyback on.
    const uint64_t d = now + t_->reply_grace_ns;
    if (d < ack_deadline_) ack_deadline_ = d;
  } else if (ack_now) {
    try_transmit(now);  // piggyback on data if we have any
    if (unacked_segs_ > 0) send_pure_ack(now);
  } else if (ack_deadline_ == kNever) {
    ack_deadline_ = now + t_->delayed_ack_ns;
  }
}

void Flow::advance_rcv_nxt() {
  while (!slots_.empty() && slots_[0].state != 0) {
    if (slots_[0].state == 1) {
      held_bytes_ += slots_[0].len;
      st_.bytes_received += slots_[0].len;
    } else {
      peer_fin_ = true;
    }
    slots_.pop_front();
    ++rcv_nxt_;
    if (peer_fin_) {
      // Nothing can follow a FIN: whatever arrived above it (only a broken
      // or forged sender puts it there) is discarded, so it must not stay
      // SACKed either (we would renege on it).
      slots_.clear();
      n_sacks_ = 0;
      break;
    }
  }
  // Drop SACK blocks now covered by the cumulative ACK.
  uint8_t n = 0;
  for (uint8_t i = 0; i < n_sacks_; ++i) {
    SackBlock b = sacks_[i];
    if (seq_le(b.end, rcv_nxt_)) continue;
    if (seq_lt(b.start, rcv_nxt_)) b.start = rcv_nxt_;
    sacks_[n++] = b;
  }
  n_sacks_ = n;
}

void Flow::deliver_complete_messages() {
  while (!in_msgs_.empty() && in_msgs_[0].allocated && in_msgs_[0].received == in_msgs_[0].len) {
    ready_bytes_ += in_msgs_[0].len;
    ready_.push_back(std::move(in_msgs_[0].data));
    in_msgs_.pop_front();
    ++rcv_msg_base_;
    ++st_.messages_received;
  }
}

void Flow::add_sack(uint32_t seq) {
  // Blocks are kept most-recent first (RFC 2018): the first block always
  // covers the segment that triggered the ACK.
  int hit = -1;
  for (int i = 0; i < n_sacks_; ++i) {
    if (sacks_[i].end == seq) {
      ++sacks_[i].end;
      hit = i;
      break;
    }
    if (sacks_[i].start == seq + 1) {
      --sacks_[i].start;
      hit = i;
      break;
    }
  }
  SackBlock b{seq, seq + 1};
  if (hit >= 0) {
    b = sacks_[hit];
    for (int i = hit; i + 1 < n_sacks_; ++i) sacks_[i] = sacks_[i + 1];
    --n_sacks_;
    // Merge with a neighbour the new segment made adjacent.
    for (int j = 0; j < n_sacks_;) {
      if (sacks_[j].start == b.end || sacks_[j].end == b.start) {
        if (sacks_[j].start == b.end) b.end = sacks_[j].end;
        if (sacks_[j].end == b.start) b.start = sacks_[j].start;
        for (int i = j; i + 1 < n_sacks_; ++i) sacks_[i] = sacks_[i + 1];
        --n_sacks_;
      } else {
        ++j;
      }
    }
  }
  int keep = std::min<int>(n_sacks_, kMaxSackBlocks - 1);
  for (int i = keep; i > 0; --i) sacks_[i] = sacks_[i - 1];
  sacks_[0] = b;
  n_sacks_ = static_cast<uint8_t>(keep + 1);
}

void Flow::consume_read(size_t bytes) {
  held_bytes_ -= std::min<uint64_t>(held_bytes_, bytes);
}

void Flow::maybe_window_update(uint64_t now) {
  if (!established_like() || state_ == FlowState::kTimeWait || peer_fin_) return;
  // Receiver-side silly-window avoidance: announce only a worthwhile opening.
  uint64_t wnd = advertised_window();
  uint64_t step = std::max<uint64_t>(2ull * mss_, rcvbuf_ / 4);
  if (wnd >= uint64_t{last_adv_wnd_} + step || (last_adv_wnd_ < mss_ && wnd >= mss_))
    send_pure_ack(now);
}

bool Flow::readable() const {
  return !ready_.empty() || peer_fin_ || state_ == FlowState::kFailed;
}

uint32_t Flow::events() const {
  uint32_t e = 0;
  if (readable()) e |= kEvReadable;
  if (state_ == FlowState::kFailed) return e | kEvError;
  bool connected = state_ != FlowState::kSynSent && state_ != FlowState::kSynReceived;
  if (connected) e |= kEvConnected;
  if (peer_fin_) e |= kEvPeerClosed;
  if (fin_queued_) e |= kEvSendShutdown;
  if (fin_queued_ && peer_fin_) e |= kEvHangup;
  if ((state_ == FlowState::kEstablished || state_ == FlowState::kCloseWait) && !fin_queued_ &&
      send_space() > 0)
    e |= kEvWritable;
  return e;
}

uint64_t Flow::readable_bytes() const {
  return ready_bytes_;
}

Status Flow::recv_message(uint64_t now, std::vector<uint8_t>* out) {
  if (stream_) return Status::kWrongMode;
  if (!ready_.empty()) {
    *out = std::move(ready_.front());
    ready_.pop_front();
    ready_bytes_ -= out->size();
    consume_read(out->size());
    reserved_bytes_ -= std::min<uint64_t>(reserved_bytes_, out->size());
    maybe_window_update(now);
    return Status::kOk;
  }
  if (state_ == FlowState::kFailed) return Status::kFlowFailed;
  if (peer_fin_ || state_ == FlowState::kClosed) return Status::kEof;
  return Status::kAgain;
}

Status Flow::recv_stream(uint64_t now, uint8_t* buf, size_t cap, size_t* got) {
  *got = 0;
  if (!stream_) return Status::kWrongMode;
  while (*got < cap && !ready_.empty()) {
    std::vector<uint8_t>& m = ready_.front();
    size_t n = std::min(cap - *got, m.size() - ready_off_);
    std::memcpy(buf + *got, m.data() + ready_off_, n);
    *got += n;
    ready_off_ += n;
    ready_bytes_ -= n;
    consume_read(n);
    if (ready_off_ == m.size()) {
      reserved_bytes_ -= std::min<uint64_t>(reserved_bytes_, m.size());
      ready_.pop_front();
      ready_off_ = 0;
    }
  }
  if (*got > 0) {
    maybe_window_update(now);
    return Status::kOk;
  }
  if (cap == 0 && !ready_.empty()) return Status::kOk;
  if (state_ == FlowState::kFailed) return Status::kFlowFailed;
  if (peer_fin_ || state_ == FlowState::kClosed) return Status::kEof;
  return Status::kAgain;
}

Status Flow::peek_stream(uint8_t* buf, size_t cap, size_t* got) const {
  *got = 0;
  if (!stream_) return Status::kWrongMode;
  size_t off = ready_off_;
  for (size_t i = 0; i < ready_.size() && *got < cap; ++i) {
    const std::vector<uint8_t>& m = ready_[i];
    size_t n = std::min(cap - *got, m.size() - off);
    std::memcpy(buf + *got, m.data() + off, n);
    *got += n;
    off = 0;
  }
  if (*got > 0 || (cap == 0 && !ready_.empty())) return Status::kOk;
  if (state_ == FlowState::kFailed) return Status::kFlowFailed;
  if (peer_fin_ || state_ == FlowState::kClosed) return Status::kEof;
  return Status::kAgain;
}

}  // namespace transport
}  // namespace machnet
