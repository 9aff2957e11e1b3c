// The simulator itself must be trustworthy: deterministic, and its
// impairments must do what they claim.
#include <gtest/gtest.h>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

// Counts what one host receives through a raw transport with no flows.
struct Blaster {
  explicit Blaster(uint64_t seed, const sim::LinkParams& lp) : net(seed) {
    a = net.add_host(kIpA, Tunables());
    b = net.add_host(kIpB, Tunables());
    net.set_link(kIpA, kIpB, lp);
    net.set_link(kIpB, kIpA, lp);
  }
  // Sends n garbage-free datagrams A->B (they are answered by RSTs).
  void blast(int n, uint64_t gap_ns) {
    for (int i = 0; i < n; ++i) {
      Segment s;
      s.type = SegType::kAck;
      s.src_conn = 1;
      s.dst_conn = 2;
      s.seq = static_cast<uint32_t>(i);
      uint8_t hdr[kHeaderSize];
      encode_header(s, nullptr, 0, hdr);
      a->send({kIpA, 1}, {kIpB, 2}, hdr, kHeaderSize, nullptr, 0);
      net.run_until(net.now() + gap_ns);
    }
    net.run_until(net.now() + 1 * kSec);
  }
  sim::SimNetwork net;
  sim::Host* a;
  sim::Host* b;
};

TEST(SimNetwork, LossRateIsAsConfigured) {
  sim::LinkParams lp;
  lp.loss = 0.1;
  Blaster x(1, lp);
  x.blast(10000, 1 * kUs);
  const auto& st = x.net.link_stats(kIpA, kIpB);
  EXPECT_EQ(st.sent, 10000u);
  EXPECT_NEAR(static_cast<double>(st.lost) / 10000.0, 0.1, 0.015);
  EXPECT_EQ(st.delivered + st.lost, st.sent);
}

TEST(SimNetwork, CorruptionIsCaughtByTheChecksum) {
  sim::LinkParams lp;
  lp.corrupt = 0.2;
  Blaster x(2, lp);
  x.blast(2000, 1 * kUs);
  const auto& st = x.net.link_stats(kIpA, kIpB);
  EXPECT_GT(st.corrupted, 300u);
  EXPECT_EQ(x.b->transport().counters().rx_bad_checksum + x.b->transport().counters().rx_bad_magic +
                x.b->transport().counters().rx_bad_version +
                x.b->transport().counters().rx_bad_type +
                x.b->transport().counters().rx_bad_length + x.b->transport().counters().rx_bad_sack,
            st.corrupted);
}

TEST(SimNetwork, BandwidthCapSerializesAndTailDrops) {
  sim::LinkParams lp;
  lp.bandwidth_bps = 1e9;  // 88-byte datagram = 704 ns
  lp.queue_bytes = 88 * 10;
  Blaster x(3, lp);
  x.blast(100, 0);  // all at once: 10 fit in the queue
  const auto& st = x.net.link_stats(kIpA, kIpB);
  EXPECT_EQ(st.delivered, 10u);
  EXPECT_EQ(st.queue_drops, 90u);
}

TEST(SimNetwork, PartitionDropsOnlyInsideTheWindow) {
  sim::LinkParams lp;
  lp.cuts = {{100 * kUs, 200 * kUs}};
  Blaster x(4, lp);
  x.blast(300, 1 * kUs);
  const auto& st = x.net.link_stats(kIpA, kIpB);
  EXPECT_NEAR(static_cast<double>(st.cut_drops), 100.0, 12.0);
  EXPECT_EQ(st.delivered + st.cut_drops, 300u);
}

TEST(SimNetwork, SameSeedSameRun) {
  auto run = [](uint64_t seed) {
    Tunables t;
    Pair p(t, t, seed);
    sim::LinkParams lp;
    lp.loss = 0.05;
    lp.jitter_ns = 20 * kUs;
    lp.duplicate = 0.02;
    p.net.set_links(lp);
    EXPECT_TRUE(p.connect());
    auto m = pattern(seed, 300000);
    EXPECT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
    std::vector<std::vector<uint8_t>> got;
    EXPECT_TRUE(p.recv_b(1, &got, 10 * kSec));
    return std::make_pair(p.net.now(), p.net.events());
  };
  EXPECT_EQ(run(9), run(9));
  EXPECT_NE(run(9), run(10));
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
