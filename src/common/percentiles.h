// Latency percentiles as machnet-echo and machnet-msg-gen print them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace machnet {

// The p-th percentile (0..100) of `samples` by nearest rank; 0 when there are
// none. Reorders `samples` partially (nth_element), so successive calls on
// the same vector cost linear time each.
inline uint64_t percentile(std::vector<uint64_t>& samples, double p) {
  if (samples.empty()) return 0;
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(samples.size() - 1) + 0.5);
  std::nth_element(samples.begin(), samples.begin() + static_cast<long>(i), samples.end());
  return samples[i];
}

struct LatencySummary {
  double p50_us = 0, p99_us = 0, p999_us = 0;
};

// p50, p99 and p99.9 of round trips measured in nanoseconds, in microseconds.
inline LatencySummary summarize_ns(std::vector<uint64_t>& rtt_ns) {
  LatencySummary s;
  s.p50_us = static_cast<double>(percentile(rtt_ns, 50)) / 1000.0;
  s.p99_us = static_cast<double>(percentile(rtt_ns, 99)) / 1000.0;
  s.p999_us = static_cast<double>(percentile(rtt_ns, 99.9)) / 1000.0;
  return s;
}

}  // namespace machnet
