// Swift-style delay-based congestion control (Kumar et al., SIGCOMM 2020),
// adapted to a host without NIC timestamps: the target is the flow's own
// windowed minimum RTT plus a tolerated queueing delay, plus Swift's flow
// scaling term so small windows get a larger target (fairness). See
// docs/PROTOCOL.md for why delay-based and not loss-based (Reno/CUBIC).
#pragma once

#include <cstdint>

#include "transport/tunables.h"

namespace machnet {
namespace transport {

class CongestionControl {
 public:
  void init(const Tunables& t, uint32_t mss, uint64_t now_ns);
  // A copy moved to another Transport (Flow adoption): same state, that
  // transport's tunables (identical values). Not initialised stays so.
  void rebind(const Tunables* t) {
    if (t_ != nullptr) t_ = t;
  }

  // An ACK newly acknowledged or SACKed `acked_bytes`; `delay_ns` is the RTT
  // sample with the receiver's ACK delay removed (0 if no sample).
  void on_ack(uint64_t now_ns, uint64_t delay_ns, uint64_t acked_bytes);
  // Loss detected by SACK/dup-ACKs (at most one decrease per RTT).
  void on_fast_loss(uint64_t now_ns);
  // Retransmission timeout.
  void on_rto(uint64_t now_ns);

  uint64_t cwnd_bytes() const { return static_cast<uint64_t>(cwnd_); }
  uint64_t min_rtt_ns() const { return min_rtt_; }
  uint64_t target_delay_ns() const;
  bool in_slow_start() const { return slow_start_; }

 private:
  bool can_decrease(uint64_t now_ns) const;
  void clamp();

  const Tunables* t_ = nullptr;
  double mss_ = 1400;
  double cwnd_ = 0;  // bytes
  bool slow_start_ = true;
  uint64_t last_decrease_ns_ = 0;
  bool decreased_ = false;
  uint64_t srtt_ns_ = 0;
  uint64_t last_delay_ns_ = 0;  // smoothed delay, paces decreases to once per RTT
  uint64_t min_rtt_ = 0;        // windowed minimum: current and previous window
  uint64_t min_rtt_cur_ = 0;
  uint64_t min_rtt_window_start_ = 0;
  uint32_t consecutive_rto_ = 0;
};

}  // namespace transport
}  // namespace machnet
