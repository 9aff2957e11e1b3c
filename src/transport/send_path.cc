// Send side: bounded message queue, segmentation to the negotiated MSS, and
// transmission limited by the congestion window (pipe), the peer's receive
// window (bytes beyond the cumulative ACK) and its ring (segments).
#include <algorithm>
#include <cstring>

#include "transport/flow.h"

namespace machnet {
namespace transport {

size_t Flow::send_space() const {
  return send_buffered_ >= t_.send_buffer_bytes ? 0 : t_.send_buffer_bytes - send_buffered_;
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
  // A stream is carried as a sequence of internal messages of at most
  // stream_chunk_bytes; the receiver ignores their boundaries.
  while (len > 0) {
    size_t n =
        std::min({len, size_t{t_.stream_chunk_bytes}, size_t{t_.max_message_bytes}, send_space()});
    if (n == 0) break;
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
  if (rtx) {
    ++env_.counters->tx_retransmits;
    ++st_.retransmits;
    rtx_fifo_.push_back(seq);  // full only if everything is being resent: RTO covers it
  }
  transmit(now, &s, payload, seg.len);
}

bool Flow::send_new_segment(uint64_t now) {
  if (fin_sent_) return false;
  uint32_t ring = std::min(peer_ring_, t_.max_inflight_segments);
  if (snd_nxt_ - snd_una_ >= ring) return false;
  if (seg_msg_id_ != next_msg_id_) {
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
