// Flow::check_invariants: the flow's bookkeeping recomputed from scratch and
// compared with its running totals, plus the memory bounds the protocol
// promises whatever the peer sends. Used by the property tests and the
// transport fuzzer after every event; never on the data path.
#include "transport/flow.h"

namespace machnet {
namespace transport {

const char* Flow::check_invariants() const {
#define MACHNET_CHECK(cond) \
  if (!(cond)) return #cond
  MACHNET_CHECK(rcvbuf_ >= t_->min_flow_buffer_bytes && rcvbuf_ <= t_->recv_buffer_bytes);
  MACHNET_CHECK(sndbuf_ >= t_->min_flow_buffer_bytes && sndbuf_ <= t_->send_buffer_bytes);
  MACHNET_CHECK(rx_max_msg_ >= 1 && rx_max_msg_ <= t_->max_message_bytes);
  MACHNET_CHECK(!advertised_ || rcvbuf_ >= rx_max_msg_);
  MACHNET_CHECK(!fin_sent_ || fin_queued_);
  MACHNET_CHECK(!fin_acked_ || fin_sent_);
  MACHNET_CHECK(!probing_ || (service_port_ != 0 && !passive));

  // ---- send side ----
  MACHNET_CHECK(sent_.size() <= t_->max_inflight_segments);
  if (state_ == FlowState::kSynSent || state_ == FlowState::kSynReceived) {
    MACHNET_CHECK(sent_.empty() && snd_nxt_ - snd_una_ == 1);
  } else if (!done()) {
    MACHNET_CHECK(sent_.size() == size_t{snd_nxt_ - snd_una_});
  }
  uint64_t outstanding = 0, sacked = 0, rtx_bytes = 0;
  uint32_t rtx_segs = 0;
  for (size_t i = 0; i < sent_.size(); ++i) {
    const SentSeg& g = sent_[i];
    MACHNET_CHECK(!(g.sacked && g.needs_rtx));
    outstanding += g.len;
    if (g.sacked) sacked += g.len;
    if (g.needs_rtx) {
      rtx_bytes += g.len;
      ++rtx_segs;
    }
    if (g.fin) {
      MACHNET_CHECK(g.len == 0 && i + 1 == sent_.size());
      continue;
    }
    MACHNET_CHECK(g.len >= 1 && g.len <= mss_);
    MACHNET_CHECK(g.msg_id - out_base_id_ < out_msgs_.size());
    MACHNET_CHECK(uint64_t{g.offset} + g.len <= out_msgs_[g.msg_id - out_base_id_].data.size());
  }
  MACHNET_CHECK(outstanding == outstanding_bytes_);
  MACHNET_CHECK(sacked == sacked_bytes_);
  MACHNET_CHECK(rtx_bytes == rtx_pending_bytes_ && rtx_segs == rtx_pending_segs_);
  uint64_t queued = 0;
  for (size_t i = 0; i < out_msgs_.size(); ++i) {
    const size_t n = out_msgs_[i].data.size();
    MACHNET_CHECK(n >= 1);
    if (established_like()) MACHNET_CHECK(n <= (stream_ ? chunk_limit() : max_msg_));
    queued += n;
  }
  MACHNET_CHECK(queued == send_buffered_);
  MACHNET_CHECK(send_buffered_ <= t_->send_buffer_bytes);
  if (!done()) {  // a finished flow has dropped its send queue, ids and all
    MACHNET_CHECK(size_t{next_msg_id_ - out_base_id_} == out_msgs_.size());
    MACHNET_CHECK(seg_msg_id_ - out_base_id_ <= next_msg_id_ - out_base_id_);
    if (seg_msg_id_ == next_msg_id_) {
      MACHNET_CHECK(seg_offset_ == 0);
    } else {
      MACHNET_CHECK(seg_offset_ < out_msgs_[seg_msg_id_ - out_base_id_].data.size());
    }
    MACHNET_CHECK(unsent_bytes() <= unacked_bytes() && unacked_bytes() <= send_buffered_);
  } else {
    MACHNET_CHECK(out_msgs_.empty() && sent_.empty() && send_buffered_ == 0);
  }

  // ---- receive side ----
  MACHNET_CHECK(slots_.size() <= t_->max_inflight_segments);
  MACHNET_CHECK(in_msgs_.size() <= t_->max_reassembly_messages);
  MACHNET_CHECK(n_sacks_ <= kMaxSackBlocks);
  if (established_like()) {
    MACHNET_CHECK(slots_.empty() || slots_[0].state == 0);
    for (uint8_t i = 0; i < n_sacks_; ++i) {
      MACHNET_CHECK(seq_gt(sacks_[i].start, rcv_nxt_) && seq_lt(sacks_[i].start, sacks_[i].end));
      MACHNET_CHECK(sacks_[i].end - rcv_nxt_ <= t_->max_inflight_segments);
    }
  }
  uint64_t reserved = 0, ready = 0;
  for (size_t i = 0; i < in_msgs_.size(); ++i) {
    const InMessage& m = in_msgs_[i];
    MACHNET_CHECK(m.allocated ? m.data.size() == m.len && m.received <= m.len : m.data.empty());
    MACHNET_CHECK(m.len <= rx_max_msg_);
    reserved += m.data.size();
  }
  for (size_t i = 0; i < ready_.size(); ++i) {
    reserved += ready_[i].size();
    ready += ready_[i].size();
  }
  MACHNET_CHECK(ready_.empty() ? ready_off_ == 0 : ready_off_ < ready_[0].size());
  MACHNET_CHECK(reserved == reserved_bytes_);
  MACHNET_CHECK(ready - ready_off_ == ready_bytes_);
  MACHNET_CHECK(held_bytes_ <= reserved_bytes_);
  // The hard memory bound of docs/PROTOCOL.md section 4.
  MACHNET_CHECK(reserved_bytes_ <= uint64_t{t_->recv_buffer_bytes} + rx_max_msg_);
#undef MACHNET_CHECK
  return nullptr;
}

}  // namespace transport
}  // namespace machnet
