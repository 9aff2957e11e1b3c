// The KV benchmark's shared pieces (tools/machnet-kv/kv_proto.h): IP:PORT
// parsing, the binary format and the server's handler, memcached's frame,
// the value pattern the load generator checks, Zipf and the histogram.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "machnet-kv/kv_proto.h"

namespace machnet::kv {
namespace {

TEST(KvEndpoint, Parses) {
  uint32_t ip = 0;
  uint16_t port = 0;
  ASSERT_EQ(parse_endpoint("10.1.2.3:7400", &ip, &port), 0);
  EXPECT_EQ(ip, 0x0a010203u);
  EXPECT_EQ(port, 7400);
  ASSERT_EQ(parse_endpoint("0.0.0.0:65535", &ip, &port), 0);
  EXPECT_EQ(ip, 0u);
  EXPECT_EQ(port, 65535);
  ASSERT_EQ(parse_endpoint("1.2.3.4:0", &ip, &port, true), 0);
  EXPECT_EQ(port, 0);
}

TEST(KvEndpoint, RejectsWithEinval) {
  uint32_t ip = 7;
  uint16_t port = 9;
  for (const char* bad :
       {"", "10.1.2.3", "10.1.2.3:", ":80", "10.1.2.3:0", "10.1.2.3:65536", "10.1.2.3:80x",
        "10.1.2.3:-1", "10.1.2.300:80", "host:80", "10.1.2.3:1234567", "10.1.2.3: 80"}) {
    EXPECT_EQ(parse_endpoint(bad, &ip, &port), -EINVAL) << bad;
  }
  EXPECT_EQ(ip, 7u);  // untouched on error
  EXPECT_EQ(port, 9);
}

TEST(KvHeader, RoundTripBigEndian) {
  Header h;
  h.op = kOpSet;
  h.status = 0;
  h.id = 0x01020304;
  h.key = 0x1122334455667788ULL;
  h.vlen = 0x0102;
  uint8_t b[kHeaderLen];
  put_header(b, h);
  const uint8_t want[kHeaderLen] = {0x4b, 0x56, 2,    0,    1,    2,    3,    4,    0x11, 0x22,
                                    0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x01, 0x02, 0,    0};
  EXPECT_EQ(memcmp(b, want, kHeaderLen), 0);
  Header g;
  ASSERT_TRUE(get_header(b, kHeaderLen, &g));
  EXPECT_EQ(g.op, h.op);
  EXPECT_EQ(g.id, h.id);
  EXPECT_EQ(g.key, h.key);
  EXPECT_EQ(g.vlen, h.vlen);
  EXPECT_FALSE(get_header(b, kHeaderLen - 1, &g));
  b[0] = 0;
  EXPECT_FALSE(get_header(b, kHeaderLen, &g));
}

std::vector<uint8_t> request(uint8_t op, uint64_t key, const std::string& value, uint32_t id = 9) {
  std::vector<uint8_t> r(kHeaderLen + value.size());
  Header h;
  h.op = op;
  h.id = id;
  h.key = key;
  h.vlen = static_cast<uint16_t>(value.size());
  put_header(r.data(), h);
  memcpy(r.data() + kHeaderLen, value.data(), value.size());
  return r;
}

TEST(KvHandle, SetGetMissAndErrors) {
  Store store(2, 8);
  ServerCounters c;
  std::vector<uint8_t> out(kHeaderLen + 8);
  Header h;

  auto req = request(kOpGet, 5, "");
  ASSERT_EQ(handle(store, req.data(), req.size(), out.data(), out.size(), &c), kHeaderLen);
  ASSERT_TRUE(get_header(out.data(), kHeaderLen, &h));
  EXPECT_EQ(h.op, kOpGet | kReplyBit);
  EXPECT_EQ(h.status, kNotFound);
  EXPECT_EQ(h.id, 9u);
  EXPECT_EQ(h.key, 5u);

  req = request(kOpSet, 5, "hello");
  ASSERT_EQ(handle(store, req.data(), req.size(), out.data(), out.size(), &c), kHeaderLen);
  ASSERT_TRUE(get_header(out.data(), kHeaderLen, &h));
  EXPECT_EQ(h.status, kOk);
  EXPECT_EQ(h.vlen, 0);

  req = request(kOpGet, 5, "");
  ASSERT_EQ(handle(store, req.data(), req.size(), out.data(), out.size(), &c), kHeaderLen + 5);
  ASSERT_TRUE(get_header(out.data(), kHeaderLen, &h));
  EXPECT_EQ(h.status, kOk);
  EXPECT_EQ(h.vlen, 5);
  EXPECT_EQ(memcmp(out.data() + kHeaderLen, "hello", 5), 0);

  // Overwrite with a shorter value.
  req = request(kOpSet, 5, "yo");
  handle(store, req.data(), req.size(), out.data(), out.size(), &c);
  req = request(kOpGet, 5, "");
  ASSERT_EQ(handle(store, req.data(), req.size(), out.data(), out.size(), &c), kHeaderLen + 2);
  EXPECT_EQ(memcmp(out.data() + kHeaderLen, "yo", 2), 0);

  req = request(kOpSet, 6, "123456789");  // over max_value 8
  handle(store, req.data(), req.size(), out.data(), out.size(), &c);
  ASSERT_TRUE(get_header(out.data(), kHeaderLen, &h));
  EXPECT_EQ(h.status, kTooLarge);

  req = request(kOpSet, 6, "b");
  handle(store, req.data(), req.size(), out.data(), out.size(), &c);
  req = request(kOpSet, 7, "c");  // a third key in a store of 2
  handle(store, req.data(), req.size(), out.data(), out.size(), &c);
  ASSERT_TRUE(get_header(out.data(), kHeaderLen, &h));
  EXPECT_EQ(h.status, kFull);
  EXPECT_EQ(store.size(), 2u);

  // vlen that disagrees with the datagram, unknown op: BAD_REQUEST.
  req = request(kOpSet, 5, "abc");
  req.pop_back();
  handle(store, req.data(), req.size(), out.data(), out.size(), &c);
  ASSERT_TRUE(get_header(out.data(), kHeaderLen, &h));
  EXPECT_EQ(h.status, kBadRequest);
  req = request(9, 5, "");
  handle(store, req.data(), req.size(), out.data(), out.size(), &c);
  ASSERT_TRUE(get_header(out.data(), kHeaderLen, &h));
  EXPECT_EQ(h.status, kBadRequest);

  // No request at all: no reply.
  uint8_t junk[10] = {};
  EXPECT_EQ(handle(store, junk, sizeof(junk), out.data(), out.size(), &c), 0u);
  EXPECT_EQ(c.dropped, 1u);
  EXPECT_EQ(c.gets, 3u);
  EXPECT_EQ(c.hits, 2u);
  EXPECT_EQ(c.misses, 1u);
}

TEST(KvStore, ManyKeysCollide) {
  Store store(1000, 16);
  uint8_t v[16];
  for (uint64_t k = 0; k < 1000; k++) {
    memcpy(v, &k, 8);
    ASSERT_EQ(store.set(k * 4096, v, 8), kOk);
  }
  for (uint64_t k = 0; k < 1000; k++) {
    uint16_t len = 0;
    const uint8_t* g = store.get(k * 4096, &len);
    ASSERT_NE(g, nullptr);
    ASSERT_EQ(len, 8);
    uint64_t x;
    memcpy(&x, g, 8);
    EXPECT_EQ(x, k);
  }
  uint16_t len;
  EXPECT_EQ(store.get(1, &len), nullptr);
}

TEST(KvMemcached, Frame) {
  uint8_t b[8];
  mc_put_frame(b, 0xbeef);
  const uint8_t want[8] = {0xbe, 0xef, 0, 0, 0, 1, 0, 0};
  EXPECT_EQ(memcmp(b, want, 8), 0);
  uint16_t id = 0;
  ASSERT_TRUE(mc_get_frame(b, 8, &id));
  EXPECT_EQ(id, 0xbeef);
  EXPECT_FALSE(mc_get_frame(b, 7, &id));
  b[5] = 2;  // a reply in two datagrams
  EXPECT_FALSE(mc_get_frame(b, 8, &id));
  char k[32];
  EXPECT_EQ(mc_key(42, k, sizeof(k)), 5u);
  EXPECT_STREQ(k, "kv:42");
}

TEST(KvValue, CheckFindsVersionAndCorruption) {
  std::vector<uint8_t> v(40);
  fill_value(v.data(), v.size(), 77, 123456, 0xabcdef01);
  for (uint8_t b : v) EXPECT_TRUE(b >= '0' && b <= 'z') << int(b);  // printable for memcached
  EXPECT_EQ(check_value(v.data(), v.size(), 77, 0xabcdef01), 123456);
  EXPECT_EQ(check_value(v.data(), v.size(), 78, 0xabcdef01), -1);  // another key's value
  EXPECT_EQ(check_value(v.data(), v.size(), 77, 0xabcdef02), -1);  // an earlier run's
  v[30] ^= 1;
  EXPECT_EQ(check_value(v.data(), v.size(), 77, 0xabcdef01), -1);
  EXPECT_EQ(check_value(v.data(), 15, 77, 0xabcdef01), -1);
}

TEST(KvZipf, SkewAndRange) {
  Zipf z(1000, 0.99, 42);
  std::vector<uint64_t> hits(1000, 0);
  for (int i = 0; i < 200000; i++) {
    uint64_t k = z.next();
    ASSERT_LT(k, 1000u);
    hits[k]++;
  }
  // Rank 0 is the most popular, roughly twice rank 1, far above the tail.
  EXPECT_GT(hits[0], hits[1]);
  EXPECT_GT(hits[0], 10 * hits[500]);
  Zipf u(10, 0, 7);
  std::vector<uint64_t> uh(10, 0);
  for (int i = 0; i < 100000; i++) uh[u.next()]++;
  for (uint64_t h : uh) EXPECT_NEAR(static_cast<double>(h), 10000.0, 600.0);
}

TEST(KvHistogram, Percentiles) {
  Histogram h;
  EXPECT_EQ(h.percentile_us(50), 0);
  for (uint64_t i = 1; i <= 1000; i++) h.add(i * 1000);  // 1..1000 us
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_NEAR(h.percentile_us(50), 500.0, 0.1);
  EXPECT_NEAR(h.percentile_us(99), 990.0, 0.1);
  EXPECT_NEAR(h.percentile_us(99.9), 999.0, 0.1);
  h.add(60'000'000);  // beyond the buckets: the maximum
  EXPECT_NEAR(h.percentile_us(100), 60000.0, 0.1);
}

}  // namespace
}  // namespace machnet::kv
