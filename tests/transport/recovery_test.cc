// Loss recovery beyond the basic cases: tail loss probe, lost
// retransmissions (RACK), a sender that ignores our window, and several
// flows sharing a bottleneck.
#include <gtest/gtest.h>

#include <algorithm>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

TEST(Recovery, TailLossIsRepairedByProbeNotRto) {
  Tunables t;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  // Drop the last two fragments of the message, once each.
  std::map<uint32_t, int> seen;
  uint32_t total = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && s.type == SegType::kData && pk.from.ip == kIpA) {
      ++total;
      bool tail = s.msg_offset + s.payload_len + 2 * 1400 > s.msg_len;
      if (tail && seen[s.seq]++ == 0) return false;
    }
    return true;
  };
  auto m = pattern(1, 10 * 1400);
  uint64_t t0 = p.net.now();
  ASSERT_EQ(p.A().send_message(t0, p.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  EXPECT_TRUE(got[0] == m);
  FlowStats s = stats(p.A(), p.fa);
  EXPECT_EQ(s.rto_count, 0u);
  EXPECT_EQ(s.tail_loss_probes, 1u);
  EXPECT_LT(p.net.now() - t0, 200 * kUs);  // vs. a 1 ms RTO floor
}

TEST(Recovery, LostRetransmissionIsDetectedWithoutRto) {
  Tunables t;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  int copies = 0;
  uint32_t victim = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && s.type == SegType::kData && pk.from.ip == kIpA &&
        s.msg_offset == 3 * 1400) {
      victim = s.seq;
      return ++copies > 2;  // original and first retransmission lost
    }
    return true;
  };
  auto m = pattern(2, 200 * 1400);
  uint64_t t0 = p.net.now();
  ASSERT_EQ(p.A().send_message(t0, p.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  EXPECT_TRUE(got[0] == m);
  EXPECT_EQ(copies, 3);
  EXPECT_EQ(stats(p.A(), p.fa).rto_count, 0u);
  EXPECT_LT(p.net.now() - t0, 1 * kMs);
  EXPECT_NE(victim, 0u);
}

TEST(Recovery, ReceiverMemoryIsBoundedAgainstAMisbehavingSender) {
  Tunables t;
  t.max_message_bytes = 64 << 10;
  t.recv_buffer_bytes = 128 << 10;
  t.send_buffer_bytes = 128 << 10;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  const Flow* fb = only_flow(p.B());
  uint32_t a_id = fb->peer_id();
  // Learn the next sequence number from a real segment.
  uint32_t next_seq = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && pk.from.ip == kIpA) next_seq = s.seq;
    return true;
  };
  uint8_t one = 1;
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, &one, 1), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  // Now forge: one fragment each of many 64 KiB messages, ignoring the
  // window entirely. Each would need a 64 KiB reassembly buffer.
  std::vector<uint8_t> d(kHeaderSize + 100);
  for (uint32_t i = 0; i < 200; ++i) {
    Segment s;
    s.type = SegType::kData;
    s.src_conn = a_id;
    s.dst_conn = p.fb;
    s.seq = next_seq + 1 + i;
    s.msg_id = 1 + i;
    s.msg_len = 64 << 10;
    s.msg_offset = 1000;  // never completes
    s.payload_len = 100;
    iovec iov{d.data() + kHeaderSize, 100};
    encode_header(s, &iov, 1, d.data());
    p.B().on_datagram(p.net.now(), {kIpA, kPortA}, {kIpB, kPortB}, d.data(), d.size());
    FlowStats st = stats(p.B(), p.fb);
    ASSERT_LE(st.recv_reserved_bytes, uint64_t{t.recv_buffer_bytes} + t.max_message_bytes);
  }
  EXPECT_GT(p.B().counters().rx_recv_buffer_full, 150u);
  // Inconsistent fragments are refused too.
  Segment s;
  s.type = SegType::kData;
  s.src_conn = a_id;
  s.dst_conn = p.fb;
  s.seq = next_seq + 1 + 300;  // a fresh sequence number inside the window
  s.msg_id = 1;
  s.msg_len = 50;  // msg 1 was announced as 64 KiB
  s.msg_offset = 0;
  s.payload_len = 100;  // and longer than the message
  iovec iov{d.data() + kHeaderSize, 100};
  encode_header(s, &iov, 1, d.data());
  uint64_t bad = p.B().counters().rx_bad_fragment;
  p.B().on_datagram(p.net.now(), {kIpA, kPortA}, {kIpB, kPortB}, d.data(), d.size());
  EXPECT_EQ(p.B().counters().rx_bad_fragment, bad + 1);
}

TEST(Recovery, FlowsShareABottleneckFairlyWithoutFillingItsQueue) {
  // B serves four clients through one 10 Gb/s uplink with a 512 KiB queue.
  Tunables t;
  sim::SimNetwork net(11);
  sim::Host* b = net.add_host(kIpB, t);
  ASSERT_EQ(b->transport().listen(kPortB), Status::kOk);
  sim::LinkParams lp;
  lp.delay_ns = 5 * kUs;
  net.set_links(lp);
  net.set_host_egress(kIpB, 10e9, 512 << 10);
  const int kFlows = 4;
  std::vector<sim::Host*> clients;
  std::vector<FlowId> ids(kFlows);
  std::map<FlowId, int> client_of;
  for (int i = 0; i < kFlows; ++i) {
    clients.push_back(net.add_host(kIpA + 10 + i, t));
    ASSERT_EQ(clients[i]->transport().connect(0, kPortA, {kIpB, kPortB}, &ids[i]), Status::kOk);
  }
  ASSERT_TRUE(net.run_until(
      [&] {
        FlowId id;
        // All server flows share local port kPortB: told apart by connection id.
        while (b->transport().accept(kPortB, &id) == Status::kOk)
          client_of[id] = static_cast<int>(client_of.size());
        return client_of.size() == kFlows;
      },
      kSec));
  // Map server flows to clients by remote address.
  std::vector<FlowId> sid(kFlows);
  b->transport().for_each_flow([&](const Flow& f) { sid[f.remote().ip - (kIpA + 10)] = f.id(); });
  const size_t kMsgs = 16;
  std::vector<uint8_t> m(1 << 20, 7);
  std::vector<size_t> sent(kFlows, 0), recvd(kFlows, 0);
  std::vector<uint64_t> done_at(kFlows, 0);
  uint64_t t0 = net.now();
  ASSERT_TRUE(net.run_until(
      [&] {
        bool all = true;
        for (int i = 0; i < kFlows; ++i) {
          while (sent[i] < kMsgs &&
                 b->transport().send_message(net.now(), sid[i], m.data(), m.size()) == Status::kOk)
            ++sent[i];
          std::vector<uint8_t> out;
          while (clients[i]->transport().recv_message(net.now(), ids[i], &out) == Status::kOk)
            ++recvd[i];
          if (recvd[i] == kMsgs && done_at[i] == 0) done_at[i] = net.now() - t0;
          all = all && recvd[i] == kMsgs;
        }
        return all;
      },
      60 * kSec));
  double secs = static_cast<double>(net.now() - t0) / 1e9;
  double gbps = static_cast<double>(kFlows * kMsgs * m.size()) * 8 / secs / 1e9;
  EXPECT_GT(gbps, 0.85 * 10 * 1400.0 / 1488.0);  // the uplink stays busy
  EXPECT_LT(net.egress_drops(kIpB), 50u);        // ...without overflowing its queue
  // Fair share: every flow finishes within 1.5x of the first one.
  uint64_t first = *std::min_element(done_at.begin(), done_at.end());
  uint64_t last = *std::max_element(done_at.begin(), done_at.end());
  EXPECT_LT(static_cast<double>(last), 1.5 * static_cast<double>(first));
}

TEST(Recovery, CongestedBottleneckDelayStaysNearTarget) {
  // One sender, a 1 Gb/s bottleneck with a deep 4 MiB queue (32 ms of
  // buffer): a loss-based sender would fill it; ours keeps the queueing
  // delay near its target.
  Tunables t;
  Pair p(t, t);
  sim::LinkParams lp;
  lp.delay_ns = 10 * kUs;
  lp.bandwidth_bps = 1e9;
  lp.queue_bytes = 4 << 20;
  p.net.set_links(lp);
  ASSERT_TRUE(p.connect());
  std::vector<uint8_t> m(1 << 20, 3);
  uint64_t max_srtt = 0;
  size_t sent = 0, got = 0;
  uint64_t t0 = p.net.now();
  ASSERT_TRUE(p.net.run_until(
      [&] {
        while (sent < 32 &&
               p.A().send_message(p.net.now(), p.fa, m.data(), m.size()) == Status::kOk)
          ++sent;
        std::vector<uint8_t> out;
        while (p.B().recv_message(p.net.now(), p.fb, &out) == Status::kOk) ++got;
        if (p.net.now() - t0 > 20 * kMs) max_srtt = std::max(max_srtt, stats(p.A(), p.fa).srtt_ns);
        return got == 32;
      },
      10 * kSec));
  double secs = static_cast<double>(p.net.now() - t0) / 1e9;
  double gbps = 32.0 * (1 << 20) * 8 / secs / 1e9;
  EXPECT_GT(gbps, 0.85 * 1400.0 / 1488.0);
  EXPECT_EQ(p.net.link_stats(kIpA, kIpB).queue_drops, 0u);
  // Base RTT ~ 32 us (+ serialization); target adds 25-75 us of queueing.
  EXPECT_LT(max_srtt, 300 * kUs);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
