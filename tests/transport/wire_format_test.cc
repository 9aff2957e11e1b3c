#include "transport/wire_format.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

Segment sample() {
  Segment s;
  s.type = SegType::kData;
  s.flags = kFlagAck | kFlagTsEcho | kFlagPayloadCsum;
  s.src_conn = 0x11223344;
  s.dst_conn = 0x55667788;
  s.seq = 0xfffffff0;
  s.ack = 7;
  s.rwnd = 1 << 20;
  s.msg_id = 9;
  s.msg_len = 5000;
  s.msg_offset = 1400;
  s.ack_delay = 123;
  s.tsval = 0xdeadbeef;
  s.tsecr = 42;
  s.sack_count = 2;
  s.sack[0] = {10, 20};
  s.sack[1] = {0xfffffffe, 3};  // wraps
  return s;
}

std::vector<uint8_t> build(const Segment& s, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> d(kHeaderSize + payload.size());
  iovec iov{const_cast<uint8_t*>(payload.data()), payload.size()};
  Segment t = s;
  t.payload_len = static_cast<uint16_t>(payload.size());
  encode_header(t, &iov, 1, d.data());
  if (!payload.empty()) std::memcpy(d.data() + kHeaderSize, payload.data(), payload.size());
  return d;
}

TEST(WireFormat, HeaderIs88BytesAndRoundTrips) {
  static_assert(sizeof(WireHeader) == 88, "layout");
  std::vector<uint8_t> payload = pattern(1, 37);
  std::vector<uint8_t> d = build(sample(), payload);
  Segment o;
  ASSERT_EQ(decode_header(d.data(), d.size(), &o), DecodeResult::kOk);
  Segment s = sample();
  EXPECT_EQ(o.type, s.type);
  EXPECT_EQ(o.flags, s.flags);
  EXPECT_EQ(o.src_conn, s.src_conn);
  EXPECT_EQ(o.dst_conn, s.dst_conn);
  EXPECT_EQ(o.seq, s.seq);
  EXPECT_EQ(o.ack, s.ack);
  EXPECT_EQ(o.rwnd, s.rwnd);
  EXPECT_EQ(o.msg_id, s.msg_id);
  EXPECT_EQ(o.msg_len, s.msg_len);
  EXPECT_EQ(o.msg_offset, s.msg_offset);
  EXPECT_EQ(o.ack_delay, s.ack_delay);
  EXPECT_EQ(o.tsval, s.tsval);
  EXPECT_EQ(o.tsecr, s.tsecr);
  EXPECT_EQ(o.sack_count, 2);
  EXPECT_EQ(o.sack[1].start, 0xfffffffeu);
  EXPECT_EQ(o.sack[1].end, 3u);
  EXPECT_EQ(o.payload_len, 37);
  EXPECT_EQ(0, std::memcmp(o.payload, payload.data(), 37));
  // Big-endian on the wire: magic "MN" first, seq at offset 16.
  EXPECT_EQ(d[0], 0x4d);
  EXPECT_EQ(d[1], 0x4e);
  EXPECT_EQ(d[2], kWireVersion);
  EXPECT_EQ(d[16], 0xff);
  EXPECT_EQ(d[19], 0xf0);
}

TEST(WireFormat, RejectsEachKindOfMalformedHeader) {
  std::vector<uint8_t> good = build(sample(), pattern(2, 10));
  Segment o;
  EXPECT_EQ(decode_header(good.data(), kHeaderSize - 1, &o), DecodeResult::kShort);
  EXPECT_EQ(decode_header(good.data(), 0, &o), DecodeResult::kShort);
  auto d = good;
  d[0] ^= 1;
  EXPECT_EQ(decode_header(d.data(), d.size(), &o), DecodeResult::kBadMagic);
  d = good;
  d[2] = 2;
  EXPECT_EQ(decode_header(d.data(), d.size(), &o), DecodeResult::kBadVersion);
  Segment s = sample();
  s.type = static_cast<SegType>(0);
  d = build(s, {});
  EXPECT_EQ(decode_header(d.data(), d.size(), &o), DecodeResult::kBadType);
  s.type = static_cast<SegType>(99);
  d = build(s, {});
  EXPECT_EQ(decode_header(d.data(), d.size(), &o), DecodeResult::kBadType);
  // Truncated payload: length field disagrees with the datagram.
  d = good;
  EXPECT_EQ(decode_header(d.data(), d.size() - 1, &o), DecodeResult::kBadLength);
  s = sample();
  s.sack_count = 5;
  d = build(s, {});
  EXPECT_EQ(decode_header(d.data(), d.size(), &o), DecodeResult::kBadSack);
  s = sample();
  s.sack[0] = {20, 20};  // empty block
  d = build(s, {});
  EXPECT_EQ(decode_header(d.data(), d.size(), &o), DecodeResult::kBadSack);
}

TEST(WireFormat, ChecksumCatchesEverySingleBitFlip) {
  std::vector<uint8_t> good = build(sample(), pattern(3, 301));
  Segment o;
  for (size_t bit = 0; bit < good.size() * 8; ++bit) {
    auto d = good;
    d[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    DecodeResult r = decode_header(d.data(), d.size(), &o);
    ASSERT_NE(r, DecodeResult::kOk) << "bit " << bit;
  }
}

TEST(WireFormat, ChecksumIsIndependentOfPayloadSplit) {
  std::vector<uint8_t> p = pattern(4, 1001);
  uint8_t hdr[kHeaderSize];
  Segment s = sample();
  s.payload_len = 1001;
  iovec one{p.data(), p.size()};
  encode_header(s, &one, 1, hdr);
  iovec three[3] = {{p.data(), 3}, {p.data() + 3, 500}, {p.data() + 503, 498}};
  EXPECT_EQ(compute_checksum(hdr, &one, 1, true), compute_checksum(hdr, three, 3, true));
}

TEST(WireFormat, RandomGarbageNeverCrashesAndIsCounted) {
  sim::SimNetwork net(5);
  sim::Host* h = net.add_host(kIpB, Tunables());
  Transport& t = h->transport();
  ASSERT_EQ(t.listen(kPortB), Status::kOk);
  Rng r(77);
  std::vector<uint8_t> good = build(sample(), pattern(5, 64));
  const int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    std::vector<uint8_t> d;
    if (i % 2 == 0) {
      d.resize(r.below(200));
      for (auto& b : d) b = static_cast<uint8_t>(r.next());
    } else {
      d = good;  // mutate a valid datagram: much deeper coverage
      int n = 1 + static_cast<int>(r.below(4));
      for (int k = 0; k < n; ++k) d[r.below(d.size())] = static_cast<uint8_t>(r.next());
      if (r.below(4) == 0) d.resize(r.below(d.size() + 1));
    }
    t.on_datagram(i, {kIpA, kPortA}, {kIpB, kPortB}, d.data(), d.size());
  }
  const Counters& c = t.counters();
  EXPECT_EQ(c.rx_datagrams, uint64_t{kN});
  uint64_t dropped = c.rx_malformed_short + c.rx_bad_magic + c.rx_bad_version + c.rx_bad_type +
                     c.rx_bad_length + c.rx_bad_checksum + c.rx_bad_sack;
  EXPECT_GT(dropped, uint64_t{kN} * 9 / 10);
  EXPECT_GT(c.rx_malformed_short, 0u);
  EXPECT_GT(c.rx_bad_magic, 0u);
  EXPECT_GT(c.rx_bad_checksum, 0u);
  EXPECT_EQ(t.flow_count(), 0u);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet

namespace machnet {
namespace transport {
namespace test {
namespace {

TEST(WireFormat, Crc32cKnownAnswer) {
  const char* v = "123456789";
  EXPECT_EQ(~crc32c(~0u, reinterpret_cast<const uint8_t*>(v), 9), 0xe3069283u);
  // Unaligned tails go through the byte loop.
  std::vector<uint8_t> p = pattern(9, 1003);
  uint32_t whole = crc32c(~0u, p.data(), p.size());
  uint32_t split = crc32c(crc32c(~0u, p.data(), 5), p.data() + 5, p.size() - 5);
  EXPECT_EQ(whole, split);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
