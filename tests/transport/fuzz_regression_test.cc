// Regression tests for what the transport fuzzer (tests/fuzz/fuzz_transport)
// found. Each reproduces the finding with forged segments on the simulated
// network and checks the flow's invariants afterwards.
#include <gtest/gtest.h>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

// Delivers a segment to B as if A's flow had sent it (right ids, right
// addresses: what an on-path forger or a broken sender can do).
void forge_to_b(Pair& p, Segment s, const std::vector<uint8_t>& payload = {}) {
  s.src_conn = p.fa;
  s.dst_conn = p.fb;
  s.flags |= kFlagAck;
  s.payload_len = static_cast<uint16_t>(payload.size());
  std::vector<uint8_t> d(kHeaderSize);
  iovec iov{const_cast<uint8_t*>(payload.data()), payload.size()};
  encode_header(s, &iov, payload.empty() ? 0 : 1, d.data());
  d.insert(d.end(), payload.begin(), payload.end());
  p.B().on_datagram(p.net.now(), {kIpA, kPortA}, {kIpB, kPortB}, d.data(), d.size());
}

const Flow* flow_of(Transport& t, FlowId id) {
  const Flow* out = nullptr;
  t.for_each_flow([&](const Flow& f) {
    if (f.id() == id) out = &f;
  });
  return out;
}

// Found by fuzz_transport: data above a FIN stayed SACKed after the FIN was
// consumed and that data discarded (CLOSE_WAIT with a SACK block starting at
// rcv_nxt).
TEST(FuzzRegression, NothingStaysSackedAboveAFin) {
  Pair p;
  ASSERT_TRUE(p.connect());
  uint32_t next_seq = 0, ack = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && pk.from.ip == kIpA) {
      next_seq = s.seq;
      ack = s.ack;
    }
    return true;
  };
  auto m = pattern(1, 10);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
  p.net.run_until(p.net.now() + kMs);
  ++next_seq;  // B expects this one next
  // Data two above the next expected sequence number: SACKed.
  Segment d;
  d.type = SegType::kData;
  d.seq = next_seq + 2;
  d.ack = ack;
  d.msg_id = 2;
  d.msg_len = 5;
  forge_to_b(p, d, {1, 2, 3, 4, 5});
  // Then a FIN in order.
  std::vector<Segment> acks;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && pk.from.ip == kIpB) acks.push_back(s);
    return true;
  };
  Segment fin;
  fin.type = SegType::kFin;
  fin.seq = next_seq;
  fin.ack = ack;
  forge_to_b(p, fin);
  EXPECT_EQ(p.B().state(p.fb), FlowState::kCloseWait);
  const Flow* f = flow_of(p.B(), p.fb);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->check_invariants(), nullptr);
  ASSERT_FALSE(acks.empty());
  EXPECT_EQ(acks.back().sack_count, 0u);
  EXPECT_EQ(acks.back().ack, next_seq + 1);
}

// Found by fuzz_transport: a FIN in the middle of a message (forged) left
// the message's in-order bytes counted as held after the flow closed and
// the unfinished message was freed (held > reserved, and a receive window
// that never reopened to its full size).
TEST(FuzzRegression, ClosedFlowHoldsOnlyWhatIsReadable) {
  Tunables t;
  t.time_wait_ns = 1 * kMs;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  // A two-segment message; the second segment is lost for good.
  std::vector<Segment> from_a;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (!parse(pk, &s) || pk.from.ip != kIpA) return true;
    from_a.push_back(s);
    return !(s.type == SegType::kData && s.msg_offset > 0);
  };
  auto m = pattern(4, t.mtu_payload + 100);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
  p.net.run_until(p.net.now() + 100 * kUs);
  ASSERT_GE(from_a.size(), 2u);
  // A forged FIN where the second segment should be.
  Segment fin;
  fin.type = SegType::kFin;
  fin.seq = from_a[1].seq;
  fin.ack = from_a[1].ack;
  forge_to_b(p, fin);
  ASSERT_EQ(p.B().state(p.fb), FlowState::kCloseWait);
  EXPECT_EQ(stats(p.B(), p.fb).recv_held_bytes, t.mtu_payload);  // the first fragment
  // B finishes too; after TIME_WAIT the half message is gone, and so is its
  // count.
  ASSERT_EQ(p.B().shutdown_send(p.net.now(), p.fb), Status::kOk);
  ASSERT_TRUE(
      p.net.run_until([&] { return p.B().state(p.fb) == FlowState::kClosed; }, p.net.now() + kSec));
  const Flow* f = flow_of(p.B(), p.fb);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->check_invariants(), nullptr);
  FlowStats sb = stats(p.B(), p.fb);
  EXPECT_EQ(sb.recv_held_bytes, 0u);
  EXPECT_EQ(sb.recv_reserved_bytes, 0u);
  EXPECT_EQ(sb.readable_bytes, 0u);
}

// Found by fuzz_transport (a hang): a corked chunk whose cork time ran out
// while the peer's window was closed kept its expired cork deadline, so the
// timer fired forever at the same instant. Now the chunk is released once
// and waits for the window; a timer that stays due is counted
// (timer_stalls) instead of spinning.
TEST(FuzzRegression, ExpiredCorkWithAClosedWindowDoesNotSpin) {
  Pair p(Tunables(), Tunables(), 1, /*stream=*/true);
  FlowOptions o = p.B().default_flow_options();
  o.recv_buffer_bytes = 64 << 10;
  ASSERT_EQ(p.B().set_listen_options(kPortB, o), Status::kOk);
  ASSERT_TRUE(p.connect(/*stream=*/true));
  FlowOptions oa = p.A().default_flow_options();
  oa.cork = true;
  ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, oa), Status::kOk);
  // A full chunk fills B's window (B does not read)...
  auto full = pattern(2, 64 << 10);
  size_t acc = 0;
  ASSERT_EQ(p.A().send_stream(p.net.now(), p.fa, full.data(), full.size(), &acc), Status::kOk);
  ASSERT_TRUE(
      p.net.run_until([&] { return stats(p.A(), p.fa).peer_rwnd == 0; }, p.net.now() + kSec));
  // ...then a partial one is corked, and its cork time runs out.
  auto tail = pattern(3, 100);
  ASSERT_EQ(p.A().send_stream(p.net.now(), p.fa, tail.data(), tail.size(), &acc), Status::kOk);
  p.net.run_until(p.net.now() + 2 * p.A().tunables().cork_max_ns);
  EXPECT_EQ(p.A().counters().timer_stalls, 0u);
  EXPECT_EQ(p.A().unsent_bytes(p.fa), 100u);  // waiting for the window, not the cork
  // Reading opens the window and the tail follows.
  std::vector<uint8_t> got(full.size() + tail.size());
  size_t have = 0;
  ASSERT_TRUE(p.net.run_until(
      [&] {
        size_t n = 0;
        if (p.B().recv_stream(p.net.now(), p.fb, got.data() + have, got.size() - have, &n) ==
            Status::kOk)
          have += n;
        return have == got.size();
      },
      p.net.now() + kSec));
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), got.begin() + full.size()));
  EXPECT_EQ(p.A().counters().timer_stalls, 0u);
  EXPECT_EQ(p.B().counters().timer_stalls, 0u);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
