// Loss recovery: cumulative ACK processing, SACK scoreboard, loss detection
// (RFC 6675 style: a hole with dupack_threshold SACKed segments above it is
// lost; also classic duplicate ACKs), RTT estimation from echoed timestamps
// (RFC 6298 estimator with datacenter constants), RTO with exponential
// back-off and a retry bound, zero-window probing and keepalive.
#include <algorithm>

#include "transport/flow.h"

namespace machnet {
namespace transport {

uint64_t Flow::current_rto() const {
  uint32_t shift = std::min<uint32_t>(backoff_, 30);
  uint64_t r = rto_ << shift;
  if ((r >> shift) != rto_ || r > t_->rto_max_ns) r = t_->rto_max_ns;
  return r;
}

void Flow::update_rtt(uint64_t r) {
  if (srtt_ == 0) {
    srtt_ = r;
    rttvar_ = r / 2;
  } else {
    uint64_t err = srtt_ > r ? srtt_ - r : r - srtt_;
    rttvar_ = (3 * rttvar_ + err) / 4;
    srtt_ = (7 * srtt_ + r) / 8;
  }
  uint64_t rto = srtt_ + std::max(t_->rto_granularity_ns, 4 * rttvar_);
  rto_ = std::min(std::max(rto, t_->rto_min_ns), t_->rto_max_ns);
}

void Flow::mark_lost(SentSeg& g, uint32_t seq) {
  g.loss_marked = true;
  if (g.needs_rtx || g.sacked) return;
  g.needs_rtx = true;
  ++rtx_pending_segs_;
  rtx_pending_bytes_ += g.len;
  if (seq_lt(seq, rtx_scan_)) rtx_scan_ = seq;
}

void Flow::process_sack(const Segment& s, uint64_t* newly) {
  for (uint8_t b = 0; b < s.sack_count; ++b) {
    uint32_t start = s.sack[b].start, end = s.sack[b].end;
    if (seq_gt(end, snd_nxt_) || seq_le(end, snd_una_)) continue;  // stale or bogus
    if (seq_lt(start, snd_una_)) start = snd_una_;
    auto mark = [&](SentSeg& g) {
      g.sacked = true;
      sacked_bytes_ += g.len;
      *newly += g.len;
      if (g.needs_rtx) {
        g.needs_rtx = false;
        --rtx_pending_segs_;
        rtx_pending_bytes_ -= g.len;
      }
    };
    // Blocks grow at their edges between ACKs, so walk in from both ends and
    // stop at the part already marked: O(new) per ACK, not O(block).
    uint32_t q = end;
    while (seq_gt(q, start)) {
      --q;
      SentSeg& g = sent_[q - snd_una_];
      if (g.sacked) break;
      mark(g);
    }
    for (uint32_t p = start; seq_lt(p, q); ++p) {
      SentSeg& g = sent_[p - snd_una_];
      if (g.sacked) break;
      mark(g);
    }
    if (!have_sacked_ || seq_gt(end, highest_sacked_)) highest_sacked_ = end;
    have_sacked_ = true;
  }
}

// RACK (RFC 8985), simplified: a segment sent more than a reordering window
// before the most recently delivered one is lost. Catches lost
// retransmissions and tail losses (after a probe) without waiting for an RTO.
void Flow::rack_detect() {
  if (rack_xmit_ns_ == 0) return;
  uint64_t reo = std::max<uint64_t>(cc_.min_rtt_ns() / 4, 1000);
  if (rack_xmit_ns_ <= reo) return;
  uint64_t limit = rack_xmit_ns_ - reo;
  // Retransmissions, oldest first (FIFO in send order, so stop at the first
  // one that is still young enough).
  while (!rtx_fifo_.empty()) {
    uint32_t seq = rtx_fifo_.front();
    if (seq_lt(seq, snd_una_) || seq_ge(seq, snd_nxt_)) {
      rtx_fifo_.pop_front();
      continue;
    }
    SentSeg& g = sent_[seq - snd_una_];
    if (g.sacked || g.needs_rtx) {
      rtx_fifo_.pop_front();
      continue;
    }
    if (g.sent_ns >= limit) break;
    rtx_fifo_.pop_front();
    mark_lost(g, seq);
    ++st_.fast_retransmits;
    ++env_.counters->tx_fast_retransmits;
  }
  // Original transmissions go out in sequence order.
  if (seq_lt(loss_scan_, snd_una_)) loss_scan_ = snd_una_;
  while (seq_lt(loss_scan_, snd_nxt_)) {
    SentSeg& g = sent_[loss_scan_ - snd_una_];
    if (!g.sacked && !g.loss_marked) {
      if (g.sent_ns >= limit) break;
      mark_lost(g, loss_scan_);
      ++st_.fast_retransmits;
      ++env_.counters->tx_fast_retransmits;
    }
    ++loss_scan_;
  }
}

void Flow::arm_tlp(uint64_t now) {
  tlp_deadline_ = kNever;
  if (snd_nxt_ == snd_una_ || srtt_ == 0) return;
  // Two RTTs plus the peer's delayed ACK without any ACK: probe the tail.
  uint64_t pto = 2 * srtt_ + t_->delayed_ack_ns;
  if (now + pto < rto_deadline_) tlp_deadline_ = now + pto;
}

void Flow::on_tlp_timer(uint64_t now) {
  tlp_deadline_ = kNever;
  if (snd_nxt_ == snd_una_) return;
  // Resend the highest unSACKed segment: its ACK carries SACK information
  // that lets RACK/fast retransmit repair the rest of the tail.
  for (size_t i = sent_.size(); i-- > 0;) {
    SentSeg& g = sent_[i];
    if (g.sacked) continue;
    ++st_.tail_loss_probes;
    send_segment(now, g, snd_una_ + static_cast<uint32_t>(i), true);
    return;
  }
}

void Flow::detect_losses(uint64_t now) {
  bool newly_lost = false;
  uint32_t before = rtx_pending_segs_;
  rack_detect();
  if (have_sacked_ && seq_gt(highest_sacked_, snd_una_)) {
    if (seq_lt(loss_scan_, snd_una_)) loss_scan_ = snd_una_;
    // Find the dupack_threshold-th SACKed segment from the top; every
    // un-SACKed segment below it is lost.
    uint32_t cnt = 0, q = highest_sacked_;
    bool found = false;
    while (seq_gt(q, loss_scan_)) {
      --q;
      if (sent_[q - snd_una_].sacked && ++cnt >= t_->dupack_threshold) {
        found = true;
        break;
      }
    }
    if (found) {
      for (uint32_t r = loss_scan_; seq_lt(r, q); ++r) {
        SentSeg& g = sent_[r - snd_una_];
        if (!g.sacked && !g.loss_marked) {
          mark_lost(g, r);
          ++st_.fast_retransmits;
          ++env_.counters->tx_fast_retransmits;
        }
      }
      loss_scan_ = q;
    }
  } else {
    have_sacked_ = false;
  }
  if (dupacks_ >= t_->dupack_threshold && !sent_.empty() && !sent_.front().sacked &&
      !sent_.front().loss_marked) {
    mark_lost(sent_.front(), snd_una_);
    ++st_.fast_retransmits;
    ++env_.counters->tx_fast_retransmits;
  }
  newly_lost = rtx_pending_segs_ > before;
  if (newly_lost && !in_recovery_) {
    // One window reduction per recovery episode.
    in_recovery_ = true;
    recovery_point_ = snd_nxt_;
    cc_.on_fast_loss(now);
  }
}

void Flow::on_ack_fields(uint64_t now, const Segment& s, bool has_data) {
  if (state_ == FlowState::kSynReceived || state_ == FlowState::kSynSent) return;
  if (seq_lt(s.ack, snd_una_)) return;  // reordered old ACK: its window is stale too
  bool window_changed = s.rwnd != peer_rwnd_;
  peer_rwnd_ = s.rwnd;
  st_.last_ack_recv_ns = now;
  probe_unanswered_ = 0;
  uint64_t acked = 0;
  bool progress = false;
  while (seq_lt(snd_una_, s.ack) && !sent_.empty()) {
    SentSeg& g = sent_.front();
    outstanding_bytes_ -= g.len;
    if (g.sacked) {
      sacked_bytes_ -= g.len;
    } else {
      acked += g.len;
    }
    if (g.needs_rtx) {
      --rtx_pending_segs_;
      rtx_pending_bytes_ -= g.len;
    }
    if (g.fin) fin_acked_ = true;
    st_.bytes_acked += g.len;
    sent_.pop_front();
    ++snd_una_;
    progress = true;
  }
  // Free messages whose last segment is acknowledged.
  while (!out_msgs_.empty() && out_msgs_.front().segmented &&
         seq_lt(out_msgs_.front().last_seq, snd_una_)) {
    send_buffered_ -= out_msgs_.front().data.size();
    out_msgs_.pop_front();
    ++out_base_id_;
  }
  uint64_t newly_sacked = 0;
  if (s.sack_count > 0) process_sack(s, &newly_sacked);
  if (progress) {
    backoff_ = 0;
    dupacks_ = 0;
  } else if (!has_data && s.type == SegType::kAck && !window_changed && snd_una_ != snd_nxt_) {
    ++dupacks_;
  }
  uint64_t cc_delay = 0;
  if ((s.flags & kFlagTsEcho) && (progress || newly_sacked > 0)) {
    uint32_t rtt = static_cast<uint32_t>(now) - s.tsecr;
    if (static_cast<int32_t>(rtt) > 0) {
      update_rtt(rtt);  // RTO must cover the peer's ACK delay too
      cc_delay = rtt > s.ack_delay ? rtt - s.ack_delay : 1;
      // The echoed timestamp says exactly which transmission was delivered
      // (no retransmission ambiguity): RACK's reference time.
      if (now > rtt) rack_xmit_ns_ = std::max(rack_xmit_ns_, now - rtt);
    }
  }
  if (in_recovery_ && seq_ge(snd_una_, recovery_point_)) in_recovery_ = false;
  detect_losses(now);
  cc_.on_ack(now, cc_delay, acked + newly_sacked);
  if (progress) {
    // RFC 6298 5.3: restart the timer when new data is acknowledged.
    rto_deadline_ = snd_una_ == snd_nxt_ ? kNever : now + current_rto();
    persist_ = false;
    arm_tlp(now);
  }
  if (persist_ && window_changed) {
    persist_ = false;
    rto_deadline_ = kNever;
  }
  update_state(now);
  try_transmit(now);
}

void Flow::on_rto_timer(uint64_t now) {
  rto_deadline_ = kNever;
  tlp_deadline_ = kNever;
  if (snd_una_ == snd_nxt_) return;
  if (backoff_ >= t_->max_retransmits) {
    fail(now, FlowError::kRetransmitTimeout, true);
    return;
  }
  ++backoff_;
  ++env_.counters->tx_rto;
  ++st_.rto_count;
  // Everything not SACKed is presumed lost; SACKed data is never reneged by
  // our receiver, so it is not resent.
  for (size_t i = 0; i < sent_.size(); ++i)
    mark_lost(sent_[i], snd_una_ + static_cast<uint32_t>(i));
  rtx_scan_ = snd_una_;
  cc_.on_rto(now);
  in_recovery_ = true;
  recovery_point_ = snd_nxt_;
  dupacks_ = 0;
  try_transmit(now);
  rto_deadline_ = now + current_rto();
  tlp_deadline_ = kNever;
}

bool Flow::expedite(uint64_t now) {
  if (done() || snd_una_ == snd_nxt_) return false;
  backoff_ = 0;
  rto_deadline_ = now;
  return true;
}

void Flow::on_persist_timer(uint64_t now) {
  rto_deadline_ = kNever;
  if (probe_unanswered_ >= t_->max_retransmits) {
    fail(now, FlowError::kRetransmitTimeout, true);
    return;
  }
  ++probe_unanswered_;
  ++st_.zero_window_probes;
  ++env_.counters->tx_keepalives;
  send_control(now, SegType::kKeepalive);
  if (backoff_ < 30) ++backoff_;
  rto_deadline_ = now + current_rto();
}

void Flow::on_keepalive_timer(uint64_t now) {
  if (ka_probes_ >= ka_max_probes_) {
    fail(now, FlowError::kDeadPeer, true);
    return;
  }
  ++ka_probes_;
  ka_last_probe_ns_ = now;
  ++st_.keepalives_sent;
  ++env_.counters->tx_keepalives;
  send_control(now, SegType::kKeepalive);
}

}  // namespace transport
}  // namespace machnet
