// Connection setup and teardown-on-error: every handshake transition and
// timer.
#include <gtest/gtest.h>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

TEST(Handshake, ConnectCompletesInOneRttEventDriven) {
  Tunables t;
  Pair p(t, t);
  p.net.set_links(sim::LinkParams{});  // 10 us one way
  FlowId fa;
  ASSERT_EQ(p.A().connect(0, kPortA, {kIpB, kPortB}, &fa), Status::kOk);
  EXPECT_EQ(p.A().state(fa), FlowState::kSynSent);
  bool ok = p.net.run_until([&] { return p.A().state(fa) == FlowState::kEstablished; }, kSec);
  ASSERT_TRUE(ok);
  EXPECT_EQ(p.net.now(), 20 * kUs);  // exactly one RTT: no periodic tick involved
  // The server is half-open until the client's ACK arrives one way later.
  EXPECT_EQ(p.B().half_open_count(), 1u);
  FlowId fb;
  EXPECT_EQ(p.B().accept(kPortB, &fb), Status::kAgain);
  p.net.run_until(30 * kUs);
  EXPECT_EQ(p.B().accept(kPortB, &fb), Status::kOk);
  EXPECT_EQ(p.B().state(fb), FlowState::kEstablished);
  EXPECT_EQ(p.B().half_open_count(), 0u);
  // The handshake measured the RTT already.
  EXPECT_EQ(stats(p.A(), fa).srtt_ns, 20 * kUs);
  EXPECT_EQ(stats(p.A(), fa).rto_ns, t.rto_min_ns);
}

TEST(Handshake, RandomIsnsAndIdsDeterministicPerSeed) {
  auto first_syn = [](uint64_t seed) {
    Pair p(Tunables(), Tunables(), seed);
    Segment syn;
    p.net.filter = [&](const sim::Packet& pk) {
      Segment s;
      if (parse(pk, &s) && s.type == SegType::kSyn) syn = s;
      return true;
    };
    EXPECT_TRUE(p.connect());
    return std::make_pair(syn.seq, syn.src_conn);
  };
  auto a = first_syn(1), b = first_syn(2);
  EXPECT_NE(a.first, b.first);
  EXPECT_NE(a.second, b.second);
  EXPECT_EQ(first_syn(1), a);
}

TEST(Handshake, LostSynIsRetransmittedWithBackoff) {
  Tunables t;
  Pair p(t, t);
  int syns = 0;
  std::vector<uint64_t> syn_times;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && s.type == SegType::kSyn) {
      syn_times.push_back(p.net.now());
      return ++syns > 2;  // drop the first two
    }
    return true;
  };
  ASSERT_TRUE(p.connect());
  ASSERT_EQ(syn_times.size(), 3u);
  EXPECT_EQ(syn_times[1] - syn_times[0], t.syn_rto_ns);
  EXPECT_EQ(syn_times[2] - syn_times[1], 2 * t.syn_rto_ns);
  EXPECT_EQ(p.A().counters().tx_syn, 3u);
}

TEST(Handshake, LostSynAckAndLostAckRecover) {
  Tunables t;
  Pair p(t, t);
  int synacks = 0, acks = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (!parse(pk, &s)) return true;
    if (s.type == SegType::kSynAck) return ++synacks > 1;
    if (s.type == SegType::kAck && pk.from.ip == kIpA) return ++acks > 1;
    return true;
  };
  ASSERT_TRUE(p.connect());
  EXPECT_EQ(p.B().flow_count(), 1u);  // the retransmitted SYN found the half-open flow
  // Data still flows.
  auto m = pattern(1, 5000);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  EXPECT_EQ(got[0], m);
}

TEST(Handshake, ServerHalfOpenCompletedByFirstDataSegment) {
  Tunables t;
  Pair p(t, t);
  // Drop the client's pure handshake ACK: the first data segment carries the
  // same acknowledgement and completes the server side.
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    return !(parse(pk, &s) && s.type == SegType::kAck && pk.from.ip == kIpA);
  };
  FlowId fa;
  ASSERT_EQ(p.A().connect(0, kPortA, {kIpB, kPortB}, &fa), Status::kOk);
  auto m = pattern(2, 100);
  ASSERT_EQ(p.A().send_message(0, fa, m.data(), m.size()), Status::kOk);  // queued in SYN_SENT
  p.fa = fa;
  ASSERT_TRUE(p.net.run_until([&] { return p.B().accept(kPortB, &p.fb) == Status::kOk; }, kSec));
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  EXPECT_EQ(got[0], m);
  EXPECT_LE(p.net.now(), 40 * kUs);  // 1.5 RTT + the data's one-way trip... no timer needed
}

TEST(Handshake, SilentPeerFailsWithinBound) {
  Tunables t;
  sim::SimNetwork net(1);
  sim::Host* a = net.add_host(kIpA, t);
  FlowId fa;
  ASSERT_EQ(a->transport().connect(0, kPortA, {kIpNowhere, kPortB}, &fa), Status::kOk);
  bool failed =
      net.run_until([&] { return a->transport().state(fa) == FlowState::kFailed; }, 10 * kSec);
  ASSERT_TRUE(failed);
  EXPECT_EQ(a->transport().error(fa), FlowError::kConnectTimeout);
  uint64_t bound = t.syn_rto_ns * ((2ull << t.syn_max_retries) - 1);
  EXPECT_EQ(net.now(), bound);
  EXPECT_EQ(a->transport().counters().tx_syn, t.syn_max_retries + 1u);
  EXPECT_STREQ(flow_error_string(a->transport().error(fa)),
               "connect timed out: peer never answered the handshake");
  // The application still owns the failed handle until it closes it.
  EXPECT_EQ(a->transport().flow_count(), 1u);
  EXPECT_EQ(a->transport().close(net.now(), fa), Status::kOk);
  EXPECT_EQ(a->transport().flow_count(), 0u);
}

TEST(Handshake, IcmpPortUnreachableRefusesFast) {
  Tunables t;
  Pair p(t, t);
  p.b->icmp_unreachable = true;  // no process on the port: the kernel answers ICMP
  FlowId fa;
  ASSERT_EQ(p.A().connect(0, kPortA, {kIpB, kPortB}, &fa), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(p.A().error(fa), FlowError::kConnectionRefused);
  EXPECT_EQ(p.net.now(), 20 * kUs);
  EXPECT_EQ(p.A().counters().rx_icmp_unreachable, 1u);
}

TEST(Handshake, NoListenerAnswersRstAndConnectIsRefused) {
  Tunables t;
  Pair p(t, t);
  FlowId fa;
  ASSERT_EQ(p.A().connect(0, kPortA, {kIpB, kPortB + 1}, &fa), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(p.A().error(fa), FlowError::kConnectionRefused);
  EXPECT_EQ(p.net.now(), 20 * kUs);
  EXPECT_EQ(p.B().counters().rx_syn_no_listener, 1u);
  EXPECT_EQ(p.B().counters().tx_rst, 1u);
  EXPECT_EQ(p.B().flow_count(), 0u);
}

TEST(Handshake, ModeMismatchIsRefused) {
  Tunables t;
  Pair p(t, t);  // B listens in message mode
  FlowId fa;
  ASSERT_EQ(p.A().connect(0, kPortA, {kIpB, kPortB}, &fa, /*stream=*/true), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(p.A().error(fa), FlowError::kConnectionRefused);
}

TEST(Handshake, IcmpOnEstablishedFlowIsIgnored) {
  Pair p;
  ASSERT_TRUE(p.connect());
  p.A().on_icmp_unreachable(p.net.now(), {kIpA, kPortA}, {kIpB, kPortB});
  EXPECT_EQ(p.A().state(p.fa), FlowState::kEstablished);
}

TEST(Handshake, HalfOpenFlowsAreBoundedAndExpire) {
  Tunables t;
  t.max_half_open = 4;
  sim::SimNetwork net(3);
  sim::Host* b = net.add_host(kIpB, t);
  ASSERT_EQ(b->transport().listen(kPortB), Status::kOk);
  // A SYN flood from spoofed sources that never complete the handshake.
  for (uint32_t i = 0; i < 10; ++i) {
    Segment s;
    s.type = SegType::kSyn;
    s.src_conn = 100 + i;
    s.seq = 1000 * i;
    s.msg_id = 64;
    s.msg_len = 1400;
    uint8_t hdr[kHeaderSize];
    encode_header(s, nullptr, 0, hdr);
    b->transport().on_datagram(0, {kIpNowhere, static_cast<uint16_t>(1000 + i)}, {kIpB, kPortB},
                               hdr, kHeaderSize);
  }
  EXPECT_EQ(b->transport().half_open_count(), 4u);
  EXPECT_EQ(b->transport().counters().rx_syn_half_open_full, 6u);
  net.run_until(10 * kSec);
  EXPECT_EQ(b->transport().half_open_count(), 0u);
  EXPECT_EQ(b->transport().flow_count(), 0u);
  // The SYN-ACK was retried syn_max_retries times per half-open flow.
  EXPECT_EQ(b->transport().counters().tx_syn, 4u * (t.syn_max_retries + 1));
}

TEST(Handshake, ListenBacklogIsBounded) {
  Tunables t;
  t.listen_backlog = 2;
  sim::SimNetwork net(4);
  sim::Host* a = net.add_host(kIpA, t);
  sim::Host* b = net.add_host(kIpB, t);
  ASSERT_EQ(b->transport().listen(kPortB), Status::kOk);
  std::vector<FlowId> ids(4);
  for (auto& id : ids)
    ASSERT_EQ(a->transport().connect(0, kPortA, {kIpB, kPortB}, &id), Status::kOk);
  // All four SYNs find room (the queue is empty when they arrive): all four
  // complete and are queued, none reset (as the kernel: a handshake it took
  // is not refused for a queue that filled meanwhile).
  net.run_until(2 * kMs);
  int reset = 0, established = 0;
  for (auto id : ids) {
    reset += a->transport().error(id) == FlowError::kReset;
    established += a->transport().state(id) == FlowState::kEstablished;
  }
  EXPECT_EQ(reset, 0);
  EXPECT_EQ(established, 4);
  // With the queue full, a new SYN is dropped (counted) and retried by the
  // client's SYN retransmission: it completes once the queue has room.
  FlowId late;
  ASSERT_EQ(a->transport().connect(net.now(), kPortA, {kIpB, kPortB}, &late), Status::kOk);
  net.run_until(net.now() + kMs);
  EXPECT_EQ(a->transport().state(late), FlowState::kSynSent);
  EXPECT_GE(b->transport().counters().rx_syn_backlog_full, 1u);
  FlowId x;
  for (int i = 0; i < 4; i++) EXPECT_EQ(b->transport().accept(kPortB, &x), Status::kOk);
  EXPECT_EQ(b->transport().accept(kPortB, &x), Status::kAgain);
  net.run_until(net.now() + 5000 * kMs);
  EXPECT_EQ(a->transport().state(late), FlowState::kEstablished);
  EXPECT_EQ(b->transport().accept(kPortB, &x), Status::kOk);
}

TEST(Handshake, RstForUnknownFlowResetsThePeer) {
  Pair p;
  ASSERT_TRUE(p.connect());
  // B forgets the flow without telling A (its RST is lost): a crash/restart.
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    return !(parse(pk, &s) && s.type == SegType::kRst);
  };
  ASSERT_EQ(p.B().abort(p.net.now(), p.fb), Status::kOk);
  EXPECT_EQ(p.B().flow_count(), 0u);
  p.net.run_until(p.net.now() + kMs);
  p.net.filter = nullptr;
  EXPECT_EQ(p.A().state(p.fa), FlowState::kEstablished);
  auto m = pattern(3, 3000);
  uint64_t t0 = p.net.now();
  ASSERT_EQ(p.A().send_message(t0, p.fa, m.data(), m.size()), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(p.fa) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(p.A().error(p.fa), FlowError::kReset);
  EXPECT_EQ(p.net.now() - t0, 20 * kUs);  // one RTT, no timeout involved
  EXPECT_GE(p.B().counters().rx_no_flow, 1u);
  std::vector<uint8_t> out;
  EXPECT_EQ(p.A().recv_message(p.net.now(), p.fa, &out), Status::kFlowFailed);
}

TEST(Handshake, AbortResetsThePeer) {
  Pair p;
  ASSERT_TRUE(p.connect());
  ASSERT_EQ(p.A().abort(p.net.now(), p.fa), Status::kOk);
  EXPECT_EQ(p.A().flow_count(), 0u);
  EXPECT_EQ(p.A().abort(p.net.now(), p.fa), Status::kNoSuchFlow);
  ASSERT_TRUE(p.net.run_until([&] { return p.B().state(p.fb) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(p.B().error(p.fb), FlowError::kReset);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
