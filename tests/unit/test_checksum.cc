// Internet checksum: known vectors, and segmentation independence (odd-length
// segments in mbuf chains).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "wire/checksum.h"

namespace machnet::wire {
namespace {

// Straightforward reference: sum big-endian words, pad an odd tail with 0.
uint16_t reference_checksum(const std::vector<uint8_t>& b) {
  uint32_t s = 0;
  for (size_t i = 0; i < b.size(); i += 2) {
    s += static_cast<uint32_t>(b[i]) << 8 | (i + 1 < b.size() ? b[i + 1] : 0);
    s = (s & 0xffff) + (s >> 16);
  }
  return static_cast<uint16_t>(~s & 0xffff);  // host order
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
  const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(ntohs(internet_checksum(data, sizeof(data))), 0xffff - 0xddf2);
  EXPECT_EQ(ntohs(internet_checksum(data, sizeof(data))), 0x220d);
}

TEST(Checksum, KnownIpv4Header) {
  // 192.168.0.1 -> 192.168.0.199, UDP, checksum b861 (a classic capture).
  uint8_t hdr[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                   0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(internet_checksum(hdr, sizeof(hdr)), 0);  // verifies
  hdr[10] = hdr[11] = 0;
  const uint16_t c = internet_checksum(hdr, sizeof(hdr));
  EXPECT_EQ(ntohs(c), 0xb861);
  // finish() is in network order: storing it gives the wire bytes b8 61.
  uint8_t stored[2];
  std::memcpy(stored, &c, 2);
  EXPECT_EQ(stored[0], 0xb8);
  EXPECT_EQ(stored[1], 0x61);
}

TEST(Checksum, EmptyAndSingleByte) {
  EXPECT_EQ(ntohs(internet_checksum(nullptr, 0)), 0xffff);
  const uint8_t one = 0x12;
  EXPECT_EQ(ntohs(internet_checksum(&one, 1)), static_cast<uint16_t>(~0x1200));
  ChecksumAccumulator acc;
  acc.add(&one, 0);  // zero-length segments change nothing
  EXPECT_EQ(ntohs(acc.finish()), 0xffff);
}

TEST(Checksum, AllZeroAndAllOnes) {
  const std::vector<uint8_t> zeros(64, 0), ones(64, 0xff);
  EXPECT_EQ(ntohs(internet_checksum(zeros.data(), zeros.size())), 0xffff);
  // Sum of ffff words is ffff (negative zero); complement is 0.
  EXPECT_EQ(internet_checksum(ones.data(), ones.size()), 0);
}

TEST(Checksum, MatchesReferenceOnRandomData) {
  for (size_t n : {1u, 2u, 3u, 63u, 64u, 1499u, 1500u, 9001u, 65535u}) {
    const auto v = random_bytes(n, static_cast<uint32_t>(n));
    EXPECT_EQ(ntohs(internet_checksum(v.data(), v.size())), reference_checksum(v)) << n;
  }
}

TEST(Checksum, LargeBufferDoesNotOverflow) {
  // 1 MiB of 0xff words: 512Ki * 0xffff would overflow a 32-bit sum many times.
  const std::vector<uint8_t> ones(1 << 20, 0xff);
  EXPECT_EQ(internet_checksum(ones.data(), ones.size()), 0);
  auto v = random_bytes(1 << 20, 99);
  EXPECT_EQ(ntohs(internet_checksum(v.data(), v.size())), reference_checksum(v));
}

TEST(Checksum, SplitAtEveryPositionMatchesOneCall) {
  for (size_t n : {0u, 1u, 2u, 7u, 8u, 33u, 100u}) {
    const auto v = random_bytes(n, 7 + static_cast<uint32_t>(n));
    const uint16_t whole = internet_checksum(v.data(), v.size());
    for (size_t cut = 0; cut <= n; ++cut) {
      ChecksumAccumulator acc;
      acc.add(v.data(), cut);
      acc.add(v.data() + cut, n - cut);
      EXPECT_EQ(acc.finish(), whole) << "n=" << n << " cut=" << cut;
    }
  }
}

TEST(Checksum, ThreeWaySplitsMatchOneCall) {
  const auto v = random_bytes(41, 5);
  const uint16_t whole = internet_checksum(v.data(), v.size());
  for (size_t a = 0; a <= v.size(); ++a) {
    for (size_t b = a; b <= v.size(); ++b) {
      ChecksumAccumulator acc;
      acc.add(v.data(), a);
      acc.add(v.data() + a, b - a);
      acc.add(v.data() + b, v.size() - b);
      ASSERT_EQ(acc.finish(), whole) << a << "," << b;
    }
  }
}

TEST(Checksum, OneByteSegments) {
  const auto v = random_bytes(257, 11);
  ChecksumAccumulator acc;
  for (uint8_t b : v) acc.add(&b, 1);
  EXPECT_EQ(acc.finish(), internet_checksum(v.data(), v.size()));
}

TEST(Checksum, HostOrderWordsMixWithOddSegments) {
  // add_u16/add_u32 are position independent: adding them between two odd
  // segments equals adding their big-endian bytes at an even position.
  const uint8_t odd[3] = {0x12, 0x34, 0x56};
  const uint8_t rest[3] = {0x78, 0x9a, 0xbc};
  ChecksumAccumulator a;
  a.add(odd, 3);
  a.add_u16(0xabcd);
  a.add_u32(0x01020304);
  a.add(rest, 3);
  const uint8_t flat[] = {0xab, 0xcd, 0x01, 0x02, 0x03, 0x04, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc};
  EXPECT_EQ(a.finish(), internet_checksum(flat, sizeof(flat)));
}

TEST(Checksum, FinishIsRepeatable) {
  const auto v = random_bytes(10, 1);
  ChecksumAccumulator acc;
  acc.add(v.data(), v.size());
  EXPECT_EQ(acc.finish(), acc.finish());
}

TEST(Checksum, BufferWithItsChecksumVerifies) {
  auto v = random_bytes(100, 3);
  v[10] = v[11] = 0;
  const uint16_t c = internet_checksum(v.data(), v.size());
  std::memcpy(&v[10], &c, 2);
  EXPECT_EQ(internet_checksum(v.data(), v.size()), 0);
}

}  // namespace
}  // namespace machnet::wire
