#include "transport/congestion_control.h"

#include <algorithm>
#include <cmath>

namespace machnet {
namespace transport {

void CongestionControl::init(const Tunables& t, uint32_t mss, uint64_t now_ns) {
  t_ = &t;
  mss_ = mss;
  cwnd_ = static_cast<double>(t.initial_cwnd_segments) * mss;
  slow_start_ = t.cc_slow_start;
  min_rtt_ = min_rtt_cur_ = 0;
  min_rtt_window_start_ = now_ns;
  clamp();
}

void CongestionControl::clamp() {
  double lo = std::max<double>(1.0, t_->min_cwnd_segments) * mss_;
  double hi = std::max<double>(lo, t_->max_cwnd_bytes);
  cwnd_ = std::min(std::max(cwnd_, lo), hi);
}

uint64_t CongestionControl::target_delay_ns() const {
  // Flow scaling (Swift 3.2): target grows as 1/sqrt(cwnd) so flows with a
  // small window tolerate more delay and the bottleneck converges to fairness.
  double segs = std::max(1.0, cwnd_ / mss_);
  const double kMin = 1.0, kMax = 100.0;
  double a = 1.0 / std::sqrt(kMin) - 1.0 / std::sqrt(kMax);
  double f = (1.0 / std::sqrt(segs) - 1.0 / std::sqrt(kMax)) / a;
  f = std::min(1.0, std::max(0.0, f));
  uint64_t fs = static_cast<uint64_t>(f * static_cast<double>(t_->cc_flow_scaling_range_ns));
  // Swift's fixed base target: every flow on a short path aims at the same
  // delay, which is what makes them converge to a fair share. A flow that
  // measured its minimum RTT while a queue was standing would otherwise set
  // itself a higher target and crowd the others out (the "latecomer" problem
  // of LEDBAT-style min-RTT targets). Only a path whose minimum RTT is clearly
  // longer than anything our own queueing produces uses the measured base.
  uint64_t fixed_limit =
      t_->cc_base_target_ns + t_->cc_flow_scaling_range_ns + t_->cc_target_queueing_ns;
  if (t_->cc_base_target_ns != 0 && min_rtt_ <= fixed_limit) return t_->cc_base_target_ns + fs;
  return min_rtt_ + t_->cc_target_queueing_ns + fs;
}

bool CongestionControl::can_decrease(uint64_t now_ns) const {
  return !decreased_ || now_ns - last_decrease_ns_ >= std::max<uint64_t>(srtt_ns_, 1);
}

void CongestionControl::on_ack(uint64_t now_ns, uint64_t delay_ns, uint64_t acked_bytes) {
  consecutive_rto_ = 0;
  if (delay_ns > 0) {
    last_delay_ns_ = delay_ns;
    srtt_ns_ = srtt_ns_ == 0 ? delay_ns : (7 * srtt_ns_ + delay_ns) / 8;
    // Windowed min: keep the min of the current and the previous window so a
    // route change that raises the base RTT is picked up within two windows.
    if (now_ns - min_rtt_window_start_ > t_->cc_min_rtt_window_ns) {
      min_rtt_ = min_rtt_cur_;
      min_rtt_cur_ = 0;
      min_rtt_window_start_ = now_ns;
    }
    if (min_rtt_cur_ == 0 || delay_ns < min_rtt_cur_) min_rtt_cur_ = delay_ns;
    if (min_rtt_ == 0 || delay_ns < min_rtt_) min_rtt_ = delay_ns;
  }
  if (acked_bytes == 0) return;
  uint64_t target = target_delay_ns();
  if (delay_ns == 0 || delay_ns < target) {
    if (slow_start_) {
      cwnd_ += static_cast<double>(acked_bytes);
    } else {
      // Additive increase: cc_additive_increase segments per window's worth of ACKs.
      cwnd_ += t_->cc_additive_increase * mss_ * static_cast<double>(acked_bytes) / cwnd_;
    }
  } else {
    slow_start_ = false;
    if (can_decrease(now_ns)) {
      double excess = static_cast<double>(delay_ns - target) / static_cast<double>(delay_ns);
      double factor = std::max(1.0 - t_->cc_beta * excess, 1.0 - t_->cc_max_mdf);
      cwnd_ *= factor;
      last_decrease_ns_ = now_ns;
      decreased_ = true;
    }
  }
  clamp();
}

void CongestionControl::on_fast_loss(uint64_t now_ns) {
  slow_start_ = false;
  if (!can_decrease(now_ns)) return;
  // Loss without queueing delay is most likely not congestion (corruption,
  // a flaky link): back off gently. Loss with delay above target is.
  double mdf = last_delay_ns_ != 0 && last_delay_ns_ < target_delay_ns()
                   ? t_->cc_max_mdf * t_->cc_low_delay_loss_fraction
                   : t_->cc_max_mdf;
  cwnd_ *= 1.0 - mdf;
  last_decrease_ns_ = now_ns;
  decreased_ = true;
  clamp();
}

void CongestionControl::on_rto(uint64_t now_ns) {
  slow_start_ = false;
  // Swift: the first timeout is treated like a loss, repeated ones reset.
  if (++consecutive_rto_ >= 2) {
    cwnd_ = 0;
  } else {
    cwnd_ *= 1.0 - t_->cc_max_mdf;
  }
  last_decrease_ns_ = now_ns;
  decreased_ = true;
  clamp();
}

}  // namespace transport
}  // namespace machnet
