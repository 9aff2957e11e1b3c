// Graceful close (FIN both ways), TIME_WAIT, keepalive / dead-peer detection.
#include <gtest/gtest.h>

#include <tuple>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

TEST(Close, FinBothWaysDeliversEverythingThenEof) {
  Tunables t;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  auto ma = pattern(1, 100000), mb = pattern(2, 5000);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, ma.data(), ma.size()), Status::kOk);
  ASSERT_EQ(p.A().shutdown_send(p.net.now(), p.fa), Status::kOk);  // half close
  EXPECT_EQ(p.A().send_message(p.net.now(), p.fa, ma.data(), 1), Status::kShutdown);
  EXPECT_EQ(p.A().state(p.fa), FlowState::kFinWait);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  EXPECT_TRUE(got[0] == ma);
  std::vector<uint8_t> m;
  ASSERT_TRUE(p.net.run_until(
      [&] { return p.B().recv_message(p.net.now(), p.fb, &m) == Status::kEof; }, kSec));
  EXPECT_EQ(p.B().state(p.fb), FlowState::kCloseWait);
  // B can still send after A's FIN.
  ASSERT_EQ(p.B().send_message(p.net.now(), p.fb, mb.data(), mb.size()), Status::kOk);
  ASSERT_EQ(p.B().close(p.net.now(), p.fb), Status::kOk);
  EXPECT_EQ(p.B().close(p.net.now(), p.fb), Status::kNoSuchFlow);  // handle released
  ASSERT_TRUE(p.net.run_until(
      [&] { return p.A().recv_message(p.net.now(), p.fa, &m) == Status::kOk; }, kSec));
  EXPECT_TRUE(m == mb);
  ASSERT_TRUE(p.net.run_until(
      [&] { return p.A().recv_message(p.net.now(), p.fa, &m) == Status::kEof; }, kSec));
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(p.fa) == FlowState::kTimeWait; }, kSec));
  // TIME_WAIT ends on its own; B (released) is gone, A is closed until released.
  p.net.run_until(p.net.now() + t.time_wait_ns + kMs);
  EXPECT_EQ(p.A().state(p.fa), FlowState::kClosed);
  EXPECT_EQ(p.A().error(p.fa), FlowError::kNone);
  EXPECT_EQ(p.B().flow_count(), 0u);
  EXPECT_EQ(p.A().close(p.net.now(), p.fa), Status::kOk);
  EXPECT_EQ(p.A().flow_count(), 0u);
  EXPECT_EQ(p.A().counters().tx_rst + p.B().counters().tx_rst, 0u);
  EXPECT_EQ(p.A().next_timer_ns(), kNever);
  EXPECT_EQ(p.B().next_timer_ns(), kNever);
}

TEST(Close, CloseWithQueuedDataStillDeliversIt) {
  Pair p;
  ASSERT_TRUE(p.connect());
  std::vector<std::vector<uint8_t>> sent;
  for (int i = 0; i < 10; ++i) {
    sent.push_back(pattern(i, 50000));
    ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, sent.back().data(), sent.back().size()),
              Status::kOk);
  }
  ASSERT_EQ(p.A().close(p.net.now(), p.fa), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(10, &got, kSec));
  EXPECT_TRUE(got == sent);
  ASSERT_EQ(p.B().close(p.net.now(), p.fb), Status::kOk);
  p.net.run_until(p.net.now() + kSec);
  EXPECT_EQ(p.A().flow_count(), 0u);
  EXPECT_EQ(p.B().flow_count(), 0u);
}

TEST(Close, LostFinAndLostFinAckAreRecovered) {
  Tunables t;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  int fins = 0, last_acks = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (!parse(pk, &s)) return true;
    if (s.type == SegType::kFin && pk.from.ip == kIpA) return ++fins > 1;  // first FIN lost
    // The ACK for B's FIN is lost once: B retransmits its FIN, A re-ACKs from TIME_WAIT.
    if (s.type == SegType::kAck && pk.from.ip == kIpA && fins > 1 &&
        p.B().state(p.fb) == FlowState::kClosing)
      return ++last_acks > 1;
    return true;
  };
  ASSERT_EQ(p.A().shutdown_send(p.net.now(), p.fa), Status::kOk);
  std::vector<uint8_t> m;
  ASSERT_TRUE(p.net.run_until(
      [&] { return p.B().recv_message(p.net.now(), p.fb, &m) == Status::kEof; }, kSec));
  ASSERT_EQ(p.B().shutdown_send(p.net.now(), p.fb), Status::kOk);
  ASSERT_TRUE(p.net.run_until(
      [&] {
        return p.A().state(p.fa) >= FlowState::kTimeWait &&
               p.B().state(p.fb) >= FlowState::kTimeWait;
      },
      kSec));
  EXPECT_EQ(fins, 2);
  EXPECT_EQ(p.A().error(p.fa), FlowError::kNone);
  EXPECT_EQ(p.B().error(p.fb), FlowError::kNone);
}

// At process exit nothing can resend later: expedite() resends a released
// flow's unacknowledged data and FIN at once and restarts the back-off,
// where the backed-off RTO would have come long after the owner was gone.
TEST(Close, ExpediteResendsTheFinNowAfterABackedOffRto) {
  Tunables t;
  t.keepalive_idle_ns = 0;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  bool cut = true;
  int fins = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && s.type == SegType::kFin && pk.from.ip == kIpA) ++fins;
    return !(cut && pk.from.ip == kIpA);  // A's packets vanish while cut
  };
  auto m = pattern(4, 3000);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
  ASSERT_EQ(p.A().close(p.net.now(), p.fa), Status::kOk);
  // Several RTOs: the next one is now 32 ms or more away.
  p.net.run_until(p.net.now() + 40 * kMs);
  ASSERT_GE(fins, 1);
  uint64_t next_rto = p.A().next_timer_ns();
  ASSERT_GT(next_rto, p.net.now() + 10 * kMs);
  cut = false;
  int before = fins;
  uint64_t t0 = p.net.now();
  EXPECT_TRUE(p.A().expedite(t0, p.fa));
  EXPECT_EQ(p.A().next_timer_ns(), t0);
  std::vector<uint8_t> got;
  ASSERT_TRUE(p.net.run_until(
      [&] { return p.B().recv_message(p.net.now(), p.fb, &got) == Status::kEof || !got.empty(); },
      kSec));
  ASSERT_TRUE(p.net.run_until(
      [&] { return p.B().recv_message(p.net.now(), p.fb, &got) == Status::kEof; }, kSec));
  EXPECT_LT(p.net.now(), next_rto);  // EOF before the backed-off RTO was due
  EXPECT_GT(fins, before);
  // Nothing outstanding once acknowledged; unknown flows: false.
  p.net.run_until(p.net.now() + 5 * kMs);
  EXPECT_FALSE(p.A().expedite(p.net.now(), p.fa));
  EXPECT_FALSE(p.A().expedite(p.net.now(), 12345));
}

TEST(Close, KeepaliveDetectsADeadPeerWithinTheConfiguredTime) {
  Tunables t;
  t.keepalive_idle_ns = 10 * kMs;
  t.keepalive_interval_ns = 2 * kMs;
  t.keepalive_probes = 3;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  uint64_t last_rx = p.net.now();  // the handshake ACK was the last thing A heard... or B
  p.b->down = true;                // B crashes silently
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(p.fa) == FlowState::kFailed; }, 10 * kSec));
  EXPECT_EQ(p.A().error(p.fa), FlowError::kDeadPeer);
  uint64_t bound = t.keepalive_idle_ns + t.keepalive_probes * t.keepalive_interval_ns;
  EXPECT_LE(p.net.now() - last_rx, bound);
  EXPECT_GE(p.net.now() - last_rx, bound - 20 * kUs);
}

TEST(Close, KeepaliveKeepsAnIdleLiveFlowOpen) {
  Tunables t;
  t.keepalive_idle_ns = 10 * kMs;
  t.keepalive_interval_ns = 2 * kMs;
  t.keepalive_probes = 3;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  p.net.run_until(p.net.now() + 2 * kSec);
  EXPECT_EQ(p.A().state(p.fa), FlowState::kEstablished);
  EXPECT_EQ(p.B().state(p.fb), FlowState::kEstablished);
  uint64_t probes = stats(p.A(), p.fa).keepalives_sent + stats(p.B(), p.fb).keepalives_sent;
  EXPECT_GT(probes, 100u);
  EXPECT_LT(probes, 500u);  // one per idle period, not a busy tick
}

TEST(Close, IdleFlowWithoutKeepaliveHasNoTimers) {
  Tunables t;
  t.keepalive_idle_ns = 0;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  p.net.run_until(p.net.now() + kMs);
  EXPECT_EQ(p.A().next_timer_ns(), kNever);
  EXPECT_EQ(p.B().next_timer_ns(), kNever);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet

namespace machnet {
namespace transport {
namespace test {
namespace {

struct EventLog {
  std::vector<std::tuple<FlowId, uint16_t, uint32_t>> ev;
  uint32_t last(FlowId f) const {
    for (auto it = ev.rbegin(); it != ev.rend(); ++it)
      if (std::get<0>(*it) == f) return std::get<2>(*it);
    return 0;
  }
};

TEST(Events, ReadinessChangesAreReported) {
  Tunables t;
  t.max_message_bytes = 64 << 10;
  t.send_buffer_bytes = 64 << 10;
  t.recv_buffer_bytes = 64 << 10;
  Pair p(t, t);
  EventLog la, lb;
  p.A().set_event_handler(
      [&](FlowId f, uint16_t port, uint32_t e) { la.ev.emplace_back(f, port, e); });
  p.B().set_event_handler(
      [&](FlowId f, uint16_t port, uint32_t e) { lb.ev.emplace_back(f, port, e); });
  ASSERT_TRUE(p.connect());
  EXPECT_EQ(la.last(p.fa), kEvConnected | kEvWritable);
  ASSERT_FALSE(lb.ev.empty());
  EXPECT_EQ(lb.ev[0], std::make_tuple(FlowId{0}, kPortB, uint32_t{kEvReadable}));  // acceptable
  // Data makes B readable; reading clears it.
  auto m = pattern(1, 64 << 10);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
  EXPECT_EQ(la.last(p.fa) & kEvWritable, 0u);  // send buffer full
  ASSERT_TRUE(p.net.run_until([&] { return lb.last(p.fb) & kEvReadable; }, kSec));
  ASSERT_TRUE(p.net.run_until([&] { return la.last(p.fa) & kEvWritable; }, kSec));  // acked
  std::vector<uint8_t> out;
  ASSERT_EQ(p.B().recv_message(p.net.now(), p.fb, &out), Status::kOk);
  EXPECT_EQ(lb.last(p.fb) & kEvReadable, 0u);
  // FIN: readable (EOF) and peer-closed.
  ASSERT_EQ(p.A().shutdown_send(p.net.now(), p.fa), Status::kOk);
  EXPECT_EQ(la.last(p.fa) & kEvWritable, 0u);
  ASSERT_TRUE(p.net.run_until([&] { return lb.last(p.fb) & kEvPeerClosed; }, kSec));
  EXPECT_TRUE(lb.last(p.fb) & kEvReadable);
  // Abort: the peer sees an error.
  ASSERT_EQ(p.B().abort(p.net.now(), p.fb), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return la.last(p.fa) & kEvError; }, kSec));
  EXPECT_EQ(p.A().events(p.fa), kEvError | kEvReadable);
}

TEST(Events, RstRepliesAreRateLimited) {
  Tunables t;
  t.rst_burst = 10;
  t.rst_rate_per_sec = 1000;
  sim::SimNetwork net(2);
  sim::Host* b = net.add_host(kIpB, t);
  Segment s;
  s.type = SegType::kAck;
  s.flags = kFlagAck;
  s.src_conn = 5;
  s.dst_conn = 6;
  uint8_t hdr[kHeaderSize];
  encode_header(s, nullptr, 0, hdr);
  for (int i = 0; i < 100; ++i)
    b->transport().on_datagram(0, {kIpA, kPortA}, {kIpB, kPortB}, hdr, kHeaderSize);
  EXPECT_EQ(b->transport().counters().tx_rst, 10u);
  EXPECT_EQ(b->transport().counters().tx_rst_suppressed, 90u);
  // 5 ms later five more tokens have accrued.
  for (int i = 0; i < 100; ++i)
    b->transport().on_datagram(5 * kMs, {kIpA, kPortA}, {kIpB, kPortB}, hdr, kHeaderSize);
  EXPECT_EQ(b->transport().counters().tx_rst, 15u);
  EXPECT_EQ(b->transport().counters().rx_no_flow, 200u);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
