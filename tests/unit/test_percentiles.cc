// The percentile helper machnet-echo and machnet-msg-gen print with.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "common/percentiles.h"

namespace machnet {
namespace {

TEST(Percentiles, NearestRankOfShuffledSamples) {
  std::vector<uint64_t> v;
  for (uint64_t i = 1; i <= 1000; i++) v.push_back(i * 1000);  // 1..1000 us in ns
  std::shuffle(v.begin(), v.end(), std::mt19937(3));
  EXPECT_EQ(percentile(v, 0), 1000u);
  EXPECT_EQ(percentile(v, 100), 1000000u);
  LatencySummary s = summarize_ns(v);
  EXPECT_DOUBLE_EQ(s.p50_us, 501);
  EXPECT_DOUBLE_EQ(s.p99_us, 990);
  EXPECT_DOUBLE_EQ(s.p999_us, 999);
  EXPECT_EQ(v.size(), 1000u);  // reordered, never dropped
}

TEST(Percentiles, FewOrNoSamples) {
  std::vector<uint64_t> none;
  EXPECT_EQ(percentile(none, 50), 0u);
  EXPECT_DOUBLE_EQ(summarize_ns(none).p999_us, 0);
  std::vector<uint64_t> one = {2500};
  LatencySummary s = summarize_ns(one);
  EXPECT_DOUBLE_EQ(s.p50_us, 2.5);
  EXPECT_DOUBLE_EQ(s.p999_us, 2.5);
}

}  // namespace
}  // namespace machnet
