// Moving a flow to another process (fork hand-off): freeze, adopt into a
// second Transport on the same IP (another UDP port), retire the original as
// a tombstone, and the peer's path migration (kFlagMigrated).
// docs/PROTOCOL.md, "Moving a flow to another process".
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

constexpr uint16_t kPortB2 = 7001;   // the child's port on B's host
constexpr uint16_t kPortA2 = 40001;  // the child's port on A's host

// After every event: each flow's invariants, and every datagram counted
// exactly once, on every transport watched.
struct Watch {
  std::vector<Transport*> ts;
  std::string failure;
  uint64_t checks = 0;
  void install(sim::SimNetwork* net) {
    net->after_event = [this] { check(); };
  }
  void check() {
    ++checks;
    for (Transport* t : ts) {
      const Counters& c = t->counters();
      if (c.rx_datagrams != c.rx_accepted + c.rx_dropped()) note("rx identity broken");
      if (c.timer_stalls != 0) note("timer stall");
      t->for_each_flow([&](const Flow& f) {
        if (const char* w = f.check_invariants()) note(w);
      });
    }
  }
  void note(const std::string& w) {
    if (failure.empty()) failure = w;
  }
};

// One direction of a byte stream: writes what the send buffer takes, reads
// whatever arrived. The ends can be repointed (a moved flow).
struct StreamDir {
  Transport* tx;
  FlowId txid;
  Transport* rx;
  FlowId rxid;
  std::vector<uint8_t> data;
  size_t sent = 0;
  std::vector<uint8_t> got;
  void pump(uint64_t now) {
    while (sent < data.size()) {
      size_t acc = 0;
      if (tx->send_stream(now, txid, data.data() + sent, data.size() - sent, &acc) != Status::kOk)
        break;
      sent += acc;
    }
    uint8_t buf[65536];
    size_t n = 0;
    while (rx->recv_stream(now, rxid, buf, sizeof(buf), &n) == Status::kOk && n > 0)
      got.insert(got.end(), buf, buf + n);
  }
  bool done() const { return got.size() >= data.size(); }
};

// One direction of a message exchange, queued a few messages at a time.
struct MsgDir {
  Transport* tx;
  FlowId txid;
  Transport* rx;
  FlowId rxid;
  std::vector<std::vector<uint8_t>> msgs;
  size_t sent = 0;
  std::vector<std::vector<uint8_t>> got;
  void pump(uint64_t now) {
    while (sent < msgs.size() && tx->unsent_bytes(txid) < 100000 &&
           tx->send_message(now, txid, msgs[sent].data(), msgs[sent].size()) == Status::kOk)
      ++sent;
    std::vector<uint8_t> m;
    while (rx->recv_message(now, rxid, &m) == Status::kOk) got.push_back(std::move(m));
  }
  bool done() const { return got.size() >= msgs.size(); }
};

// Both directions of one connection, one round: true once both are done.
template <class Dir>
bool pump_both(Dir& a, Dir& b, uint64_t now) {
  a.pump(now);
  b.pump(now);
  return a.done() && b.done();
}

std::vector<std::vector<uint8_t>> messages(uint64_t seed, size_t n, size_t len) {
  std::vector<std::vector<uint8_t>> v;
  for (size_t i = 0; i < n; ++i) v.push_back(pattern(seed * 1000 + i, len + i));
  return v;
}

Endpoint remote_of(Transport& t, FlowId id) {
  Endpoint l, r;
  EXPECT_TRUE(t.endpoints(id, &l, &r));
  return r;
}

// A stream pair, connected, with invariant checks on both ends.
struct StreamPair {
  Tunables t;
  Pair p;
  Watch w;
  explicit StreamPair(uint64_t seed) : p(t, t, seed, /*stream=*/true) {
    w.ts = {&p.A(), &p.B()};
    w.install(&p.net);
  }
  uint64_t now() { return p.net.now(); }
};

TEST(Handoff, MoveServerFlowToChildMidTransfer) {
  StreamPair sp(7);
  Pair& p = sp.p;
  ASSERT_TRUE(p.connect(true));
  // Warm-up: data both ways.
  StreamDir ab{&p.A(), p.fa, &p.B(), p.fb, pattern(11, 300000)};
  StreamDir ba{&p.B(), p.fb, &p.A(), p.fa, pattern(12, 200000)};
  ASSERT_TRUE(p.net.run_until(
      [&] {
        ab.pump(sp.now());
        ba.pump(sp.now());
        return ab.done() && ba.done();
      },
      sp.now() + 2 * kSec));
  EXPECT_TRUE(ab.got == ab.data);
  EXPECT_TRUE(ba.got == ba.data);

  // A large transfer both ways, frozen in the middle.
  StreamDir up{&p.A(), p.fa, &p.B(), p.fb, pattern(21, 3 << 20)};
  StreamDir down{&p.B(), p.fb, &p.A(), p.fa, pattern(22, 2 << 20)};
  auto pump = [&] { return pump_both(up, down, sp.now()); };
  ASSERT_TRUE(p.net.run_until(
      [&] {
        pump();
        return up.got.size() > (1u << 20) && down.got.size() > (512u << 10);
      },
      sp.now() + 5 * kSec));
  ASSERT_FALSE(up.done() || down.done());
  EXPECT_GT(p.A().unacked_bytes(p.fa), 0u);
  const Counters b0 = p.B().counters();
  FlowStats sb0 = stats(p.B(), p.fb);
  ASSERT_EQ(p.B().freeze(p.fb), Status::kOk);
  EXPECT_EQ(p.B().freeze(p.fb), Status::kOk);  // idempotent
  EXPECT_TRUE(p.B().frozen(p.fb));
  EXPECT_EQ(p.B().next_timer_ns(), kNever);
  // The fork happens here. A keeps sending to B's port meanwhile.
  p.net.run_until(
      [&] {
        pump();
        return false;
      },
      sp.now() + 3 * kMs);
  EXPECT_EQ(p.B().counters().tx_datagrams, b0.tx_datagrams);  // frozen: silent
  EXPECT_GT(p.B().counters().rx_drop_frozen, 0u);
  EXPECT_EQ(p.B().counters().tx_rst, 0u);
  FlowStats sb1 = stats(p.B(), p.fb);
  EXPECT_EQ(sb1.segments_sent, sb0.segments_sent);
  EXPECT_EQ(sb1.rto_count, sb0.rto_count);

  sim::Host* b2 = p.net.add_process(kIpB, kPortB2, sp.t);
  Transport& B2 = b2->transport();
  sp.w.ts.push_back(&B2);
  size_t migrated_flagged = 0, b2_sent = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (pk.from.ip == kIpB && pk.from.port == kPortB2 && parse(pk, &s)) {
      ++b2_sent;
      if (s.flags & kFlagMigrated) ++migrated_flagged;
    }
    return true;
  };
  FlowId moved = 0;
  ASSERT_EQ(B2.adopt(sp.now(), *p.B().find_flow(p.fb), kPortB2, &moved), Status::kOk);
  EXPECT_EQ(moved, p.fb);
  EXPECT_TRUE(B2.find_flow(moved)->migrating());
  EXPECT_GT(migrated_flagged, 0u);  // ACK and resends went out at once
  ASSERT_EQ(p.B().retire(sp.now(), p.fb, 200 * kMs), Status::kOk);
  EXPECT_EQ(p.B().flow_count(), 1u);  // the tombstone
  size_t n = 0;
  EXPECT_EQ(p.B().send_stream(sp.now(), p.fb, "x", 1, &n), Status::kNoSuchFlow);

  up.rx = &B2;
  down.tx = &B2;
  ASSERT_TRUE(p.net.run_until(pump, sp.now() + 10 * kSec));
  EXPECT_TRUE(up.got == up.data);
  EXPECT_TRUE(down.got == down.data);
  EXPECT_EQ(remote_of(p.A(), p.fa).port, kPortB2);
  EXPECT_EQ(p.A().counters().path_migrations, 1u);
  EXPECT_EQ(p.A().counters().rx_bad_migration, 0u);
  EXPECT_FALSE(B2.find_flow(moved)->migrating());  // the peer answered at the new port
  EXPECT_LT(migrated_flagged, b2_sent);
  EXPECT_EQ(p.A().counters().tx_rst + p.B().counters().tx_rst + B2.counters().tx_rst, 0u);
  EXPECT_EQ(p.B().counters().tx_datagrams, b0.tx_datagrams);  // the tombstone never spoke
  EXPECT_EQ(p.A().state(p.fa), FlowState::kEstablished);
  EXPECT_EQ(B2.state(moved), FlowState::kEstablished);

  // The tombstone goes away on its own after its hold time.
  p.net.run_until(sp.now() + 250 * kMs);
  EXPECT_EQ(p.B().flow_count(), 0u);
  EXPECT_EQ(p.B().next_timer_ns(), kNever);
  EXPECT_EQ(p.B().counters().flows_destroyed, b0.flows_destroyed + 1);

  // The moved connection closes gracefully.
  ASSERT_EQ(p.A().close(sp.now(), p.fa), Status::kOk);
  ASSERT_EQ(B2.close(sp.now(), moved), Status::kOk);
  p.net.run_until(sp.now() + kSec);
  EXPECT_EQ(p.A().flow_count(), 0u);
  EXPECT_EQ(B2.flow_count(), 0u);
  EXPECT_EQ(p.A().counters().tx_rst + B2.counters().tx_rst, 0u);
  EXPECT_EQ(sp.w.failure, "");
  EXPECT_GT(sp.w.checks, 0u);
}

// The client moves (its peer is a server flow, indexed by the peer's
// address); data in flight both ways at the freeze, some of it lost.
TEST(Handoff, InFlightDataWithLossesArrivesExactlyOnceAfterClientMoves) {
  Tunables t;
  Pair p(t, t, 3);
  Watch w;
  w.ts = {&p.A(), &p.B()};
  w.install(&p.net);
  ASSERT_TRUE(p.connect());
  MsgDir ab{&p.A(), p.fa, &p.B(), p.fb, messages(1, 40, 30000)};
  MsgDir ba{&p.B(), p.fb, &p.A(), p.fa, messages(2, 40, 20000)};
  auto pump = [&] { return pump_both(ab, ba, p.net.now()); };
  // Drop a few data segments each way from the moment `lossy` is set.
  int lose_a = 0, lose_b = 0, lost = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (!parse(pk, &s) || s.type != SegType::kData) return true;
    int& k = pk.from.ip == kIpA ? lose_a : lose_b;
    if (k > 0 && --k % 3 == 0) {
      ++lost;
      return false;
    }
    return true;
  };
  ASSERT_TRUE(p.net.run_until(
      [&] {
        pump();
        return ab.got.size() >= 8 && ba.got.size() >= 8;
      },
      p.net.now() + 5 * kSec));
  lose_a = lose_b = 7;  // three of the next seven each way
  ASSERT_TRUE(p.net.run_until(
      [&] {
        pump();
        return lose_a == 0 && lose_b == 0;
      },
      p.net.now() + 5 * kSec));
  EXPECT_GE(lost, 4);
  // Unacknowledged data both ways, and losses not repaired yet.
  EXPECT_GT(p.A().unacked_bytes(p.fa), 0u);
  EXPECT_GT(p.B().unacked_bytes(p.fb), 0u);
  ASSERT_FALSE(ab.done() || ba.done());
  ASSERT_EQ(p.A().freeze(p.fa), Status::kOk);
  // A's reads stop too: nothing is consumed by the frozen copy.
  std::vector<uint8_t> m;
  EXPECT_EQ(p.A().recv_message(p.net.now(), p.fa, &m), Status::kAgain);
  EXPECT_EQ(p.A().send_message(p.net.now(), p.fa, "x", 1), Status::kAgain);
  lose_b = 4;  // and B's retransmissions to the frozen end are lost for a while anyway
  p.net.run_until(
      [&] {
        pump();
        return false;
      },
      p.net.now() + 2 * kMs);

  sim::Host* a2 = p.net.add_process(kIpA, kPortA2, t);
  Transport& A2 = a2->transport();
  w.ts.push_back(&A2);
  FlowId moved = 0;
  ASSERT_EQ(A2.adopt(p.net.now(), *p.A().find_flow(p.fa), kPortA2, &moved), Status::kOk);
  ASSERT_EQ(p.A().retire(p.net.now(), p.fa, 50 * kMs), Status::kOk);
  ab.tx = &A2;
  ab.txid = moved;
  ba.rx = &A2;
  ba.rxid = moved;
  ASSERT_TRUE(p.net.run_until(pump, p.net.now() + 10 * kSec));
  EXPECT_TRUE(ab.got == ab.msgs);  // exactly once, in order
  EXPECT_TRUE(ba.got == ba.msgs);
  EXPECT_EQ(remote_of(p.B(), p.fb).port, kPortA2);
  EXPECT_EQ(p.B().counters().path_migrations, 1u);
  EXPECT_GT(p.A().counters().rx_drop_frozen, 0u);
  EXPECT_EQ(p.A().counters().tx_rst + p.B().counters().tx_rst + A2.counters().tx_rst, 0u);
  // The server's duplicate-SYN index follows the client's new address.
  ASSERT_EQ(A2.close(p.net.now(), moved), Status::kOk);
  ASSERT_EQ(p.B().close(p.net.now(), p.fb), Status::kOk);
  p.net.run_until(p.net.now() + kSec);
  EXPECT_EQ(p.A().flow_count() + p.B().flow_count() + A2.flow_count(), 0u);
  EXPECT_EQ(w.failure, "");
}

TEST(Handoff, FreezeThenThawRecoversWhatWasDropped) {
  StreamPair sp(5);
  Pair& p = sp.p;
  ASSERT_TRUE(p.connect(true));
  StreamDir up{&p.A(), p.fa, &p.B(), p.fb, pattern(31, 2 << 20)};
  StreamDir down{&p.B(), p.fb, &p.A(), p.fa, pattern(32, 1 << 20)};
  auto pump = [&] { return pump_both(up, down, sp.now()); };
  ASSERT_TRUE(p.net.run_until(
      [&] {
        pump();
        return up.got.size() > (512u << 10) && down.got.size() > (256u << 10);
      },
      sp.now() + 5 * kSec));
  ASSERT_EQ(p.B().freeze(p.fb), Status::kOk);
  const Counters b0 = p.B().counters();
  const FlowStats s0 = stats(p.B(), p.fb);
  // Application calls wait (kAgain) while frozen; queries still answer.
  size_t n = 0;
  uint8_t buf[16];
  EXPECT_EQ(p.B().send_stream(sp.now(), p.fb, "x", 1, &n), Status::kAgain);
  EXPECT_EQ(p.B().recv_stream(sp.now(), p.fb, buf, sizeof(buf), &n), Status::kAgain);
  EXPECT_EQ(p.B().close(sp.now(), p.fb), Status::kAgain);
  EXPECT_EQ(p.B().abort(sp.now(), p.fb), Status::kAgain);
  EXPECT_EQ(p.B().set_flow_options(sp.now(), p.fb, p.B().default_flow_options()), Status::kAgain);
  EXPECT_FALSE(p.B().expedite(sp.now(), p.fb));
  EXPECT_EQ(p.B().state(p.fb), FlowState::kEstablished);
  // Long enough for several of A's retransmission timeouts (and of B's own,
  // were they running).
  p.net.run_until(
      [&] {
        pump();
        return false;
      },
      sp.now() + 20 * kMs);
  EXPECT_EQ(p.B().next_timer_ns(), kNever);
  EXPECT_EQ(p.B().counters().tx_datagrams, b0.tx_datagrams);
  EXPECT_EQ(p.B().counters().tx_rto, b0.tx_rto);
  EXPECT_EQ(p.B().counters().tx_pure_acks, b0.tx_pure_acks);
  const FlowStats s1 = stats(p.B(), p.fb);
  EXPECT_EQ(s1.rto_count, s0.rto_count);
  EXPECT_EQ(s1.segments_sent, s0.segments_sent);
  EXPECT_GT(p.B().counters().rx_drop_frozen, b0.rx_drop_frozen);
  EXPECT_GT(p.A().counters().tx_rto, 0u);  // A noticed the silence

  ASSERT_EQ(p.B().thaw(sp.now(), p.fb), Status::kOk);
  EXPECT_FALSE(p.B().frozen(p.fb));
  EXPECT_EQ(p.B().thaw(sp.now(), p.fb), Status::kInvalidArgument);  // not frozen
  EXPECT_GT(p.B().counters().tx_datagrams, b0.tx_datagrams);        // resent and ACKed at once
  ASSERT_TRUE(p.net.run_until(pump, sp.now() + 10 * kSec));
  EXPECT_TRUE(up.got == up.data);
  EXPECT_TRUE(down.got == down.data);
  EXPECT_EQ(p.A().counters().path_migrations, 0u);
  EXPECT_EQ(p.A().counters().tx_rst + p.B().counters().tx_rst, 0u);
  EXPECT_EQ(p.A().state(p.fa), FlowState::kEstablished);
  EXPECT_EQ(sp.w.failure, "");
}

// A peer accepts a new port only with every proof a segment of the flow
// needs; anything else is dropped, counted, and never answered.
TEST(Handoff, ForgedMigrationIsIgnored) {
  Tunables t;
  Pair p(t, t, 9);
  Watch w;
  w.ts = {&p.A(), &p.B()};
  w.install(&p.net);
  ASSERT_TRUE(p.connect());
  // B's last pure ACK to A: the template of a valid segment.
  std::vector<uint8_t> last_ack;
  size_t to_forged_port = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (pk.to.port == 9999) ++to_forged_port;
    if (pk.from.ip == kIpB && parse(pk, &s) && s.type == SegType::kAck) last_ack = pk.bytes;
    return true;
  };
  auto msg = pattern(5, 50000);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, msg.data(), msg.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  p.net.run_until(p.net.now() + 50 * kMs);  // quiet: everything acknowledged
  ASSERT_FALSE(last_ack.empty());
  Segment tmpl;
  ASSERT_EQ(decode_header(last_ack.data(), last_ack.size(), &tmpl), DecodeResult::kOk);
  ASSERT_EQ(tmpl.dst_conn, p.fa);
  tmpl.flags |= kFlagMigrated;

  const Counters a0 = p.A().counters();
  auto inject = [&](Segment s, const Endpoint& from) {
    uint8_t d[kHeaderSize];
    encode_header(s, nullptr, 0, d);
    p.A().on_datagram(p.net.now(), from, {kIpA, kPortA}, d, sizeof(d));
    EXPECT_EQ(remote_of(p.A(), p.fa).port, kPortB);
  };
  const Endpoint forged{kIpB, 9999};
  Segment s = tmpl;
  s.src_conn ^= 1;  // wrong peer id
  inject(s, forged);
  s = tmpl;
  s.ack += 1;  // acknowledges data never sent
  inject(s, forged);
  s = tmpl;
  s.ack -= 1;  // older than what was acknowledged already
  inject(s, forged);
  s = tmpl;
  s.seq += 2 * t.max_inflight_segments;  // sequence outside the window
  inject(s, forged);
  s = tmpl;
  s.seq -= 1;  // a pure ACK below rcv_nxt: not from the peer's current state
  inject(s, forged);
  s = tmpl;
  s.flags &= static_cast<uint8_t>(~kFlagAck);  // no acknowledgement at all
  inject(s, forged);
  s = tmpl;
  s.type = SegType::kSynAck;
  inject(s, forged);
  EXPECT_EQ(p.A().counters().rx_bad_migration, a0.rx_bad_migration + 7);
  // Without the flag, or from another IP: the ordinary wrong-address drop.
  s = tmpl;
  s.flags &= static_cast<uint8_t>(~kFlagMigrated);
  inject(s, forged);
  inject(tmpl, {kIpNowhere, kPortB});
  EXPECT_EQ(p.A().counters().rx_bad_conn_id, a0.rx_bad_conn_id + 2);
  EXPECT_EQ(p.A().counters().path_migrations, 0u);
  EXPECT_EQ(p.A().counters().tx_rst, a0.tx_rst);
  EXPECT_EQ(p.A().counters().tx_datagrams, a0.tx_datagrams);  // no answer at all
  p.net.run_until(p.net.now() + 10 * kMs);
  EXPECT_EQ(to_forged_port, 0u);
  // The connection is unharmed.
  ASSERT_EQ(p.B().send_message(p.net.now(), p.fb, msg.data(), msg.size()), Status::kOk);
  std::vector<uint8_t> m;
  ASSERT_TRUE(p.net.run_until(
      [&] { return p.A().recv_message(p.net.now(), p.fa, &m) == Status::kOk; }, kSec));
  EXPECT_TRUE(m == msg);
  EXPECT_EQ(w.failure, "");
}

TEST(Handoff, RetiredFlowIsASilentTombstoneUntilItsHoldEnds) {
  StreamPair sp(13);
  Pair& p = sp.p;
  ASSERT_TRUE(p.connect(true));
  std::vector<uint8_t> a_to_b;  // a segment of A's, to replay at the tombstone
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (pk.from.ip == kIpA && parse(pk, &s) && s.type == SegType::kData) a_to_b = pk.bytes;
    return true;
  };
  StreamDir up{&p.A(), p.fa, &p.B(), p.fb, pattern(41, 100000)};
  ASSERT_TRUE(p.net.run_until(
      [&] {
        up.pump(sp.now());
        return up.done();
      },
      sp.now() + kSec));
  ASSERT_FALSE(a_to_b.empty());
  // Not frozen: nothing to retire.
  EXPECT_EQ(p.B().retire(sp.now(), p.fb, kMs), Status::kInvalidArgument);
  ASSERT_EQ(p.B().freeze(p.fb), Status::kOk);
  sim::Host* b2 = p.net.add_process(kIpB, kPortB2, sp.t);
  sp.w.ts.push_back(&b2->transport());
  FlowId moved = 0;
  ASSERT_EQ(b2->transport().adopt(sp.now(), *p.B().find_flow(p.fb), kPortB2, &moved), Status::kOk);
  const uint64_t hold = 30 * kMs;
  ASSERT_EQ(p.B().retire(sp.now(), p.fb, hold), Status::kOk);
  const uint64_t retired_at = sp.now();
  // Gone for the application; still there for the wire.
  EXPECT_EQ(p.B().freeze(p.fb), Status::kInvalidArgument);
  EXPECT_EQ(p.B().thaw(sp.now(), p.fb), Status::kInvalidArgument);
  EXPECT_EQ(p.B().retire(sp.now(), p.fb, hold), Status::kInvalidArgument);
  EXPECT_EQ(p.B().close(sp.now(), p.fb), Status::kNoSuchFlow);
  EXPECT_NE(p.B().find_flow(p.fb), nullptr);
  EXPECT_EQ(p.B().flow_count(), 1u);
  EXPECT_EQ(p.B().next_timer_ns(), retired_at + hold);
  const Counters b0 = p.B().counters();
  p.B().on_datagram(sp.now(), {kIpA, kPortA}, {kIpB, kPortB}, a_to_b.data(), a_to_b.size());
  EXPECT_EQ(p.B().counters().rx_drop_frozen, b0.rx_drop_frozen + 1);
  EXPECT_EQ(p.B().counters().tx_rst, b0.tx_rst);
  EXPECT_EQ(p.B().counters().tx_datagrams, b0.tx_datagrams);
  p.net.run_until(retired_at + hold - 1);
  EXPECT_EQ(p.B().flow_count(), 1u);
  p.B().on_datagram(sp.now(), {kIpA, kPortA}, {kIpB, kPortB}, a_to_b.data(), a_to_b.size());
  EXPECT_EQ(p.B().counters().rx_drop_frozen, b0.rx_drop_frozen + 2);
  p.net.run_until(retired_at + hold + 1);
  EXPECT_EQ(p.B().flow_count(), 0u);
  EXPECT_EQ(p.B().find_flow(p.fb), nullptr);
  EXPECT_EQ(p.B().counters().flows_destroyed, b0.flows_destroyed + 1);
  EXPECT_EQ(p.B().counters().tx_datagrams, b0.tx_datagrams);  // destroyed silently
  EXPECT_EQ(p.B().next_timer_ns(), kNever);
  // The moved flow is still fine.
  EXPECT_EQ(b2->transport().state(moved), FlowState::kEstablished);
  EXPECT_EQ(remote_of(p.A(), p.fa).port, kPortB2);
  EXPECT_EQ(sp.w.failure, "");
}

TEST(Handoff, RetireWithoutHoldDestroysAtOnce) {
  StreamPair sp(17);
  Pair& p = sp.p;
  ASSERT_TRUE(p.connect(true));
  ASSERT_EQ(p.B().freeze(p.fb), Status::kOk);
  const Counters b0 = p.B().counters();
  ASSERT_EQ(p.B().retire(sp.now(), p.fb, 0), Status::kOk);
  EXPECT_EQ(p.B().flow_count(), 0u);
  EXPECT_EQ(p.B().counters().tx_datagrams, b0.tx_datagrams);
  EXPECT_EQ(p.B().freeze(p.fb), Status::kInvalidArgument);
  EXPECT_FALSE(p.B().frozen(p.fb));
}

TEST(Handoff, AdoptRefusesHandshakeStatesDuplicatesAndStrangers) {
  Tunables t;
  Pair p(t, t, 21);
  // SYN_SENT: a connect nobody answers.
  FlowId syn_sent = 0;
  ASSERT_EQ(p.A().connect(p.net.now(), kPortA, {kIpNowhere, 1}, &syn_sent), Status::kOk);
  ASSERT_EQ(p.A().state(syn_sent), FlowState::kSynSent);
  sim::Host* a2 = p.net.add_process(kIpA, kPortA2, t);
  FlowId out = 0;
  EXPECT_EQ(a2->transport().adopt(p.net.now(), *p.A().find_flow(syn_sent), kPortA2, &out),
            Status::kInvalidArgument);
  EXPECT_EQ(p.A().freeze(syn_sent), Status::kOk);  // freezing a connect is allowed
  EXPECT_EQ(p.A().thaw(p.net.now(), syn_sent), Status::kOk);
  ASSERT_EQ(p.A().abort(p.net.now(), syn_sent), Status::kOk);

  // SYN_RECEIVED: the handshake's last ACK never reaches B.
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    return !(pk.from.ip == kIpA && parse(pk, &s) && s.type != SegType::kSyn);
  };
  FlowId fa = 0;
  ASSERT_EQ(p.A().connect(p.net.now(), kPortA, {kIpB, kPortB}, &fa), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.B().half_open_count() == 1; }, kSec));
  const Flow* half = only_flow(p.B());
  ASSERT_NE(half, nullptr);
  ASSERT_EQ(half->state(), FlowState::kSynReceived);
  sim::Host* b2 = p.net.add_process(kIpB, kPortB2, t);
  Transport& B2 = b2->transport();
  EXPECT_EQ(B2.adopt(p.net.now(), *half, kPortB2, &out), Status::kInvalidArgument);
  // A server flow not accepted yet is nobody's handle: it cannot be frozen.
  EXPECT_EQ(p.B().freeze(half->id()), Status::kInvalidArgument);
  EXPECT_EQ(p.B().freeze(12345), Status::kInvalidArgument);  // unknown

  // Established: adopted once; a second time (or where the id lives) the id
  // is taken; another host's copy or other tunables are refused.
  p.net.filter = nullptr;
  FlowId fb = 0;
  ASSERT_TRUE(p.net.run_until(
      [&] {
        return p.B().accept(kPortB, &fb) == Status::kOk &&
               p.B().state(fb) == FlowState::kEstablished;
      },
      p.net.now() + kSec));
  const Flow& snap = *p.B().find_flow(fb);
  EXPECT_EQ(p.B().adopt(p.net.now(), snap, kPortB2, &out), Status::kAddressInUse);
  EXPECT_EQ(a2->transport().adopt(p.net.now(), snap, kPortA2, &out), Status::kInvalidArgument);
  Tunables other = t;
  other.max_inflight_segments /= 2;
  sim::Host* b3 = p.net.add_process(kIpB, kPortB2 + 1, other);
  EXPECT_EQ(b3->transport().adopt(p.net.now(), snap, kPortB2 + 1, &out), Status::kInvalidArgument);
  ASSERT_EQ(B2.adopt(p.net.now(), snap, kPortB2, &out), Status::kOk);
  EXPECT_EQ(out, fb);
  EXPECT_EQ(B2.adopt(p.net.now(), snap, kPortB2, &out), Status::kAddressInUse);
  EXPECT_EQ(B2.flow_count(), 1u);
  EXPECT_EQ(b3->transport().flow_count(), 0u);
}

// A flow moved in CLOSE_WAIT (the peer has shut down its side) still sends
// its reply and closes gracefully from the new process.
TEST(Handoff, MoveInCloseWaitThenCloseGracefully) {
  StreamPair sp(23);
  Pair& p = sp.p;
  ASSERT_TRUE(p.connect(true));
  StreamDir up{&p.A(), p.fa, &p.B(), p.fb, pattern(51, 200000)};
  ASSERT_TRUE(p.net.run_until(
      [&] {
        up.pump(sp.now());
        return up.sent == up.data.size();
      },
      sp.now() + kSec));
  ASSERT_EQ(p.A().shutdown_send(sp.now(), p.fa), Status::kOk);
  // B has not read everything when it is frozen: the unread bytes move too.
  ASSERT_TRUE(p.net.run_until([&] { return p.B().state(p.fb) == FlowState::kCloseWait; }, kSec));
  ASSERT_EQ(p.B().freeze(p.fb), Status::kOk);
  sim::Host* b2 = p.net.add_process(kIpB, kPortB2, sp.t);
  Transport& B2 = b2->transport();
  sp.w.ts.push_back(&B2);
  FlowId moved = 0;
  ASSERT_EQ(B2.adopt(sp.now(), *p.B().find_flow(p.fb), kPortB2, &moved), Status::kOk);
  ASSERT_EQ(p.B().retire(sp.now(), p.fb, 100 * kMs), Status::kOk);
  EXPECT_EQ(B2.state(moved), FlowState::kCloseWait);
  up.rx = &B2;
  std::vector<uint8_t> buf(4096);
  size_t n = 0;
  ASSERT_TRUE(p.net.run_until(
      [&] {
        up.pump(sp.now());
        return up.done() &&
               B2.recv_stream(sp.now(), moved, buf.data(), buf.size(), &n) == Status::kEof;
      },
      sp.now() + kSec));
  EXPECT_TRUE(up.got == up.data);
  auto reply = pattern(52, 70000);
  size_t acc = 0;
  ASSERT_EQ(B2.send_stream(sp.now(), moved, reply.data(), reply.size(), &acc), Status::kOk);
  ASSERT_EQ(acc, reply.size());
  ASSERT_EQ(B2.close(sp.now(), moved), Status::kOk);
  StreamDir down{&B2, moved, &p.A(), p.fa, reply};
  down.sent = reply.size();
  ASSERT_TRUE(p.net.run_until(
      [&] {
        down.pump(sp.now());
        return down.done() &&
               p.A().recv_stream(sp.now(), p.fa, buf.data(), buf.size(), &n) == Status::kEof;
      },
      sp.now() + kSec));
  EXPECT_TRUE(down.got == reply);
  ASSERT_EQ(p.A().close(sp.now(), p.fa), Status::kOk);
  p.net.run_until(sp.now() + kSec);
  EXPECT_EQ(p.A().flow_count() + p.B().flow_count() + B2.flow_count(), 0u);
  EXPECT_EQ(p.A().counters().path_migrations, 1u);
  EXPECT_EQ(p.A().counters().tx_rst + p.B().counters().tx_rst + B2.counters().tx_rst, 0u);
  EXPECT_EQ(sp.w.failure, "");
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
