// Send side: bounded message queue, segmentation to the negotiated MSS, and
// transmission limited by the congestion window (pipe), the peer's receive
// window (bytes beyond the cumulative ACK) and its ring (segments).
#include <algorithm>
#include <cstring>

#include "transport/flow.h"

namespace machnet {
namespace transport {

size_t Flow::send_space() const {
  return send_buffered_ >= sndbuf_ ? 0 : sndbuf_ - send_buffered_;
}

uint64_t Flow::unsent_bytes() const {
  if (out_msgs_.empty() || seg_msg_id_ == next_msg_id_) return 0;
  // Messages from seg_msg_id_ on, minus what of the first one went out.
  uint64_t n = 0;
  for (uint32_t id = seg_msg_id_; id != next_msg_id_; ++id)
    n += out_msgs_[id - out_base_id_].data.size();
  return n - seg_offset_;
}

uint64_t Flow::unacked_bytes() const {
  if (out_msgs_.empty()) return 0;
  // Everything queued, minus the acknowledged head of the oldest message:
  // up to its oldest unacknowledged segment, or all of it that was sent.
  uint64_t acked = 0;
  if (!sent_.empty() && !sent_[0].fin && sent_[0].msg_id == out_base_id_) {
    acked = sent_[0].offset;
  } else if (seg_msg_id_ == out_base_id_) {
    acked = seg_offset_;
  }
  return send_buffered_ - acked;
}

uint32_t Flow::chunk_limit() const {
  // The peer's limit (its chunk size in stream mode) once known.
  return std::max<uint32_t>(1, std::min(t_->stream_chunk_bytes, max_msg_));
}

void Flow::split_queued_chunks() {
  if (!stream_ || out_msgs_.empty() || seg_offset_ != 0 || seg_msg_id_ != out_base_id_) return;
  const uint32_t lim = chunk_limit();
  bool need = false;
  for (size_t i = 0; i < out_msgs_.size(); ++i) need |= out_msgs_[i].data.size() > lim;
  if (!need) return;
  std::vector<std::vector<uint8_t>> chunks;
  while (!out_msgs_.empty()) {
    std::vector<uint8_t> d = std::move(out_msgs_.front().data);
    out_msgs_.pop_front();
    for (size_t off = 0; off < d.size(); off += lim) {
      size_t n = std::min<size_t>(lim, d.size() - off);
      chunks.emplace_back(d.begin() + static_cast<ptrdiff_t>(off),
                          d.begin() + static_cast<ptrdiff_t>(off + n));
    }
  }
  for (auto& c : chunks) {
    OutMessage m;
    m.data = std::move(c);
    out_msgs_.push_back(std::move(m));  // fits: the ring is bounded by bytes, not chunks
  }
  next_msg_id_ = out_base_id_ + static_cast<uint32_t>(out_msgs_.size());
  seg_msg_id_ = out_base_id_;
}

Status Flow::send_message(uint64_t now, const uint8_t* data, size_t len) {
  if (stream_) return Status::kWrongMode;
  if (state_ == FlowState::kFailed) return Status::kFlowFailed;
  if (fin_queued_ || done()) return Status::kShutdown;
  if (len == 0 || data == nullptr) return Status::kInvalidArgument;
  // Before the handshake completes only our own limit is known; a queued
  // message the peer turns out not to accept fails the send path later.
  if (len > max_msg_) return Status::kMessageTooLarge;
  // All or nothing: a message is queued whole, or the caller retries (EAGAIN).
  if (len > send_space()) return Status::kAgain;
  OutMessage m;
  m.data.assign(data, data + len);
  if (!out_msgs_.push_back(std::move(m))) return Status::kAgain;
  ++next_msg_id_;
  send_buffered_ += len;
  ++st_.messages_sent;
  track_high_water();
  if (established_like()) try_transmit(now);
  return Status::kOk;
}

Status Flow::send_stream(uint64_t now, const uint8_t* data, size_t len, size_t* accepted) {
  *accepted = 0;
  if (!stream_) return Status::kWrongMode;
  if (state_ == FlowState::kFailed) return Status::kFlowFailed;
  if (fin_queued_ || done()) return Status::kShutdown;
  if (len == 0) return Status::kOk;
  if (data == nullptr) return Status::kInvalidArgument;
  // A stream is carried as a sequence of internal messages ("chunks") of at
  // most chunk_limit() bytes; the receiver ignores their boundaries. A write
  // joins the last chunk while that one has not started to leave (window
  // closed, corked, Nagle): fewer, fuller segments.
  const size_t lim = chunk_limit();
  while (len > 0) {
    size_t room = send_space();
    if (room == 0) break;
    const bool tail_unsent =
        seg_msg_id_ != next_msg_id_ &&
        (seg_msg_id_ + 1 != next_msg_id_ || seg_offset_ == 0);  // the last chunk has not started
    if (tail_unsent) {
      std::vector<uint8_t>& tail = out_msgs_[out_msgs_.size() - 1].data;
      if (tail.size() < lim) {
        size_t n = std::min({len, lim - tail.size(), room});
        tail.insert(tail.end(), data, data + n);
        send_buffered_ += n;
        data += n;
        len -= n;
        *accepted += n;
        continue;
      }
    }
    size_t n = std::min({len, lim, room});
    OutMessage m;
    m.data.assign(data, data + n);
    if (!out_msgs_.push_back(std::move(m))) break;
    ++next_msg_id_;
    send_buffered_ += n;
    data += n;
    len -= n;
    *accepted += n;
  }
  track_high_water();
  if (*accepted == 0) return Status::kAgain;
  if (established_like()) try_transmit(now);
  return Status::kOk;
}

Status Flow::shutdown_send(uint64_t now) {
  if (state_ == FlowState::kFailed) return Status::kFlowFailed;
  if (fin_queued_ || done()) return Status::kOk;
  fin_queued_ = true;
  if (established_like()) {
    update_state(now);
    try_transmit(now);
  }
  return Status::kOk;
}

uint64_t Flow::pipe_bytes() const {
  // RFC 6675 "pipe": bytes believed to be in the network.
  uint64_t gone = sacked_bytes_ + rtx_pending_bytes_;
  return outstanding_bytes_ > gone ? outstanding_bytes_ - gone : 0;
}

void Flow::arm_rto(uint64_t now) {
  if (snd_nxt_ == snd_una_) return;
  if (rto_deadline_ == kNever || persist_) {
    // A new flight: one tail probe before the RTO (re-armed only by progress).
    persist_ = false;
    rto_deadline_ = now + current_rto();
    arm_tlp(now);
  }
}

void Flow::send_segment(uint64_t now, SentSeg& seg, uint32_t seq, bool rtx) {
  Segment s;
  fill_ack_fields(now, &s);
  s.seq = seq;
  const uint8_t* payload = nullptr;
  if (seg.fin) {
    s.type = SegType::kFin;
    s.flags |= kFlagAckNow;
  } else {
    s.type = SegType::kData;
    const OutMessage& m = out_msgs_[seg.msg_id - out_base_id_];
    s.msg_id = seg.msg_id;
    s.msg_len = static_cast<uint32_t>(m.data.size());
    s.msg_offset = seg.offset;
    payload = m.data.data() + seg.offset;
    // Ask for an immediate ACK at the end of a burst (last fragment and
    // nothing else queued) so the tail is not held by the delayed-ACK timer.
    bool last = seg.offset + seg.len == m.data.size() && seg_msg_id_ == next_msg_id_;
    if (last || rtx) s.flags |= kFlagAckNow;
  }
  if (rtx) s.flags |= kFlagRetransmit;
  seg.sent_ns = now;
  ++seg.xmits;
  ++env_.counters->tx_data_segments;
  ++st_.segments_sent;
  st_.bytes_sent += seg.len;
  if (rtx) st_.bytes_retrans += seg.len;
  if (!seg.fin) st_.last_data_sent_ns = now;
  if (rtx) {
    ++env_.counters->tx_retransmits;
    ++st_.retransmits;
    rtx_fifo_.push_back(seq);  // full only if everything is being resent: RTO covers it
  }
  transmit(now, &s, payload, seg.len);
}

bool Flow::send_new_segment(uint64_t now) {
  if (fin_sent_) return false;
  uint32_t ring = std::min(peer_ring_, t_->max_inflight_segments);
  if (snd_nxt_ - snd_una_ >= ring) return false;
  if (seg_msg_id_ != next_msg_id_) {
    if (seg_offset_ == 0 && hold_tail(now)) return false;
    OutMessage& m = out_msgs_[seg_msg_id_ - out_base_id_];
    uint32_t len = static_cast<uint32_t>(std::min<size_t>(mss_, m.data.size() - seg_offset_));
    if (outstanding_bytes_ + len > peer_rwnd_) {
      // Receiver window closed. With nothing in flight no ACK will reopen it,
      // so probe (persist timer); probes are answered with the current window.
      if (snd_nxt_ == snd_una_ && !persist_) {
        persist_ = true;
        rto_deadline_ = now + current_rto();
      }
      return false;
    }
    uint64_t pipe = pipe_bytes();
    if (pipe > 0 && pipe + len > cc_.cwnd_bytes()) return false;
    SentSeg seg;
    seg.msg_id = seg_msg_id_;
    seg.offset = seg_offset_;
    seg.len = len;
    if (!sent_.push_back(seg)) return false;
    uint32_t seq = snd_nxt_++;
    outstanding_bytes_ += len;
    if (seg_offset_ == 0) {  // the held chunk (if any) leaves; the next one may be held
      hold_since_ = kNever;
      tail_released_ = false;
    }
    seg_offset_ += len;
    if (seg_offset_ == m.data.size()) {
      m.last_seq = seq;
      m.segmented = true;
      ++seg_msg_id_;
      seg_offset_ = 0;
    }
    send_segment(now, sent_[sent_.size() - 1], seq, false);
    return true;
  }
  if (fin_queued_) {
    SentSeg seg;
    seg.fin = true;
    if (!sent_.push_back(seg)) return false;
    uint32_t seq = snd_nxt_++;
    fin_sent_ = true;
    send_segment(now, sent_[sent_.size() - 1], seq, false);
    return true;
  }
  return false;
}

// TCP_CORK / Nagle for streams: whether the last queued chunk, not started
// yet, should wait for more bytes. Shutting down (FIN queued) flushes.
bool Flow::hold_tail(uint64_t now) {
  if (!stream_ || fin_queued_ || seg_msg_id_ + 1 != next_msg_id_) return false;
  const size_t len = out_msgs_[seg_msg_id_ - out_base_id_].data.size();
  if (len >= chunk_limit()) return false;
  if (cork_ && !tail_released_) {
    if (hold_since_ == kNever) hold_since_ = now;
    if (now < hold_since_ + t_->cork_max_ns) return true;
    release_tail();
  }
  return !nodelay_ && len < mss_ && snd_nxt_ != snd_una_;
}

// The corked chunk has waited cork_max_ns: it goes as soon as the windows
// allow, and its timer stops (it must not fire again while the window is
// closed).
void Flow::release_tail() {
  hold_since_ = kNever;
  tail_released_ = true;
}

void Flow::try_transmit(uint64_t now) {
  if (!established_like() || state_ == FlowState::kTimeWait) return;
  // Retransmissions first: they unblock the receiver's reassembly.
  while (rtx_pending_segs_ > 0) {
    size_t i = seq_lt(rtx_scan_, snd_una_) ? 0 : static_cast<size_t>(rtx_scan_ - snd_una_);
    while (i < sent_.size() && !sent_[i].needs_rtx) ++i;
    if (i == sent_.size()) {  // accounting says pending but none found: resync
      rtx_pending_segs_ = 0;
      rtx_pending_bytes_ = 0;
      break;
    }
    rtx_scan_ = snd_una_ + static_cast<uint32_t>(i);
    SentSeg& g = sent_[i];
    uint64_t pipe = pipe_bytes();
    if (pipe > 0 && pipe + g.len > cc_.cwnd_bytes()) break;
    g.needs_rtx = false;
    --rtx_pending_segs_;
    rtx_pending_bytes_ -= g.len;
    send_segment(now, g, rtx_scan_, true);
  }
  while (send_new_segment(now)) {
  }
  arm_rto(now);
}

}  // namespace transport
}  // namespace machnet
