// Per-flow options and queries a stream socket maps onto the transport:
// SO_RCVBUF/SO_SNDBUF, keepalive, TCP_NODELAY, TCP_CORK, TCP_QUICKACK,
// MSG_PEEK, FIONREAD, SIOCOUTQ, TCP_INFO, and the readiness bits behind
// EPOLLIN/OUT/RDHUP/HUP/ERR.
#include <gtest/gtest.h>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

struct StreamPair : Pair {
  explicit StreamPair(const Tunables& t = Tunables(), uint64_t seed = 1)
      : Pair(t, t, seed, /*stream=*/true) {
    EXPECT_TRUE(connect(/*stream=*/true));
  }
  size_t write(Transport& tr, FlowId id, const std::vector<uint8_t>& m) {
    size_t acc = 0;
    tr.send_stream(net.now(), id, m.data(), m.size(), &acc);
    return acc;
  }
  // Reads whatever B has; appends to `got`.
  void drain_b(std::vector<uint8_t>* got) {
    uint8_t buf[65536];
    size_t n = 0;
    while (B().recv_stream(net.now(), fb, buf, sizeof(buf), &n) == Status::kOk && n > 0)
      got->insert(got->end(), buf, buf + n);
  }
  FlowOptions opts(Transport& tr, FlowId id) {
    FlowOptions o;
    EXPECT_EQ(tr.get_flow_options(id, &o), Status::kOk);
    return o;
  }
};

uint64_t data_segments(Transport& t) {
  return t.counters().tx_data_segments;
}

TEST(Options, ReceiveBufferSizesTheWindowAndIsClamped) {
  // SO_RCVBUF on the listener before connections arrive, as programs do.
  Pair p(Tunables(), Tunables(), 1, /*stream=*/true);
  FlowOptions o = p.B().default_flow_options();
  o.recv_buffer_bytes = 100 << 10;
  ASSERT_EQ(p.B().set_listen_options(kPortB, o), Status::kOk);
  ASSERT_TRUE(p.connect(/*stream=*/true));
  FlowOptions got;
  ASSERT_EQ(p.B().get_flow_options(p.fb, &got), Status::kOk);
  EXPECT_EQ(got.recv_buffer_bytes, 100u << 10);
  // B does not read: A may have at most B's buffer outstanding.
  auto m = pattern(1, 1 << 20);
  size_t acc = 0;
  ASSERT_EQ(p.A().send_stream(p.net.now(), p.fa, m.data(), m.size(), &acc), Status::kOk);
  EXPECT_EQ(acc, m.size());
  p.net.run_until(p.net.now() + 50 * kMs);
  FlowStats sb = stats(p.B(), p.fb);
  EXPECT_LE(sb.max_recv_held_bytes, 100u << 10);
  EXPECT_GE(sb.max_recv_held_bytes, 64u << 10);  // the window was used, not just respected
  EXPECT_EQ(sb.advertised_window, (100u << 10) - sb.recv_held_bytes);
  EXPECT_EQ(stats(p.A(), p.fa).peer_rwnd, sb.advertised_window);
  EXPECT_EQ(p.B().counters().rx_recv_buffer_full, 0u);
  // Reading everything opens the window again and the rest arrives.
  std::vector<uint8_t> out(m.size());
  size_t have = 0;
  ASSERT_TRUE(p.net.run_until(
      [&] {
        size_t n = 0;
        if (p.B().recv_stream(p.net.now(), p.fb, out.data() + have, out.size() - have, &n) ==
            Status::kOk)
          have += n;
        return have == m.size();
      },
      p.net.now() + kSec));
  EXPECT_EQ(out, m);
  // Clamping on an established flow: not below the chunk size B advertised
  // (64 KiB), not above the configured ceiling.
  o.recv_buffer_bytes = 1;
  ASSERT_EQ(p.B().set_flow_options(p.net.now(), p.fb, o), Status::kOk);
  ASSERT_EQ(p.B().get_flow_options(p.fb, &got), Status::kOk);
  EXPECT_EQ(got.recv_buffer_bytes, 64u << 10);
  o.recv_buffer_bytes = 0xffffffffu;
  ASSERT_EQ(p.B().set_flow_options(p.net.now(), p.fb, o), Status::kOk);
  ASSERT_EQ(p.B().get_flow_options(p.fb, &got), Status::kOk);
  EXPECT_EQ(got.recv_buffer_bytes, p.B().tunables().recv_buffer_bytes);
  // A larger buffer is announced at once (the sender may be waiting for it).
  EXPECT_EQ(stats(p.B(), p.fb).advertised_window, p.B().tunables().recv_buffer_bytes);
}

TEST(Options, SmallReceiveBufferBeforeTheHandshakeShrinksTheChunk) {
  Tunables t;
  sim::SimNetwork net(3);
  sim::Host* a = net.add_host(kIpA, t);
  sim::Host* b = net.add_host(kIpB, t);
  ASSERT_EQ(b->transport().listen(kPortB, true), Status::kOk);
  FlowOptions o = b->transport().default_flow_options();
  o.recv_buffer_bytes = 1;  // clamped to min_flow_buffer_bytes
  ASSERT_EQ(b->transport().set_listen_options(kPortB, o), Status::kOk);
  FlowId fa, fb = 0;
  ASSERT_EQ(a->transport().connect(0, kPortA, {kIpB, kPortB}, &fa, true), Status::kOk);
  ASSERT_TRUE(
      net.run_until([&] { return b->transport().accept(kPortB, &fb) == Status::kOk; }, kSec));
  FlowStats sa = stats(a->transport(), fa);
  EXPECT_EQ(stats(b->transport(), fb).recv_buffer_bytes, t.min_flow_buffer_bytes);
  EXPECT_EQ(sa.max_message_bytes, t.min_flow_buffer_bytes);  // chunks of 4 KiB
  auto m = pattern(2, 300000);
  size_t acc = 0, sent = 0;
  std::vector<uint8_t> got(m.size());
  size_t have = 0;
  ASSERT_TRUE(net.run_until(
      [&] {
        if (sent < m.size() && a->transport().send_stream(net.now(), fa, m.data() + sent,
                                                          m.size() - sent, &acc) == Status::kOk)
          sent += acc;
        size_t n = 0;
        if (b->transport().recv_stream(net.now(), fb, got.data() + have, got.size() - have, &n) ==
            Status::kOk)
          have += n;
        return have == m.size();
      },
      10 * kSec));
  EXPECT_EQ(got, m);
  EXPECT_LE(stats(b->transport(), fb).max_recv_reserved_bytes, 2u * t.min_flow_buffer_bytes);
}

TEST(Options, SendBufferBoundsWhatAWriteAccepts) {
  StreamPair p;
  FlowOptions o = p.opts(p.A(), p.fa);
  o.send_buffer_bytes = 32 << 10;
  ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, o), Status::kOk);
  auto m = pattern(3, 100 << 10);
  EXPECT_EQ(p.write(p.A(), p.fa, m), 32u << 10);  // partial write
  EXPECT_EQ(p.A().send_space(p.fa), 0u);
  EXPECT_EQ(p.A().events(p.fa) & kEvWritable, 0u);
  EXPECT_EQ(p.A().unacked_bytes(p.fa), 32u << 10);  // SIOCOUTQ
  std::vector<uint8_t> got;
  ASSERT_TRUE(p.net.run_until([&] { return p.A().unacked_bytes(p.fa) == 0; }, p.net.now() + kSec));
  EXPECT_TRUE(p.A().events(p.fa) & kEvWritable);
  EXPECT_LE(stats(p.A(), p.fa).max_send_buffered_bytes, 32u << 10);
  o.send_buffer_bytes = 0;
  ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, o), Status::kOk);
  EXPECT_EQ(p.opts(p.A(), p.fa).send_buffer_bytes, p.A().tunables().min_flow_buffer_bytes);
}

TEST(Options, KeepaliveIsPerFlow) {
  Tunables t;
  t.keepalive_idle_ns = 0;  // off by default here
  StreamPair p(t);
  EXPECT_FALSE(p.opts(p.A(), p.fa).keepalive);
  // B disappears. Without keepalive an idle flow never notices (no timer).
  p.b->down = true;
  p.net.run_until(p.net.now() + 10 * kSec);
  EXPECT_EQ(p.A().state(p.fa), FlowState::kEstablished);
  EXPECT_EQ(p.A().next_timer_ns(), kNever);
  // SO_KEEPALIVE with TCP_KEEPIDLE 10 ms, TCP_KEEPINTVL 2 ms, TCP_KEEPCNT 3.
  FlowOptions o = p.opts(p.A(), p.fa);
  o.keepalive = true;
  o.keepalive_idle_ns = 10 * kMs;
  o.keepalive_interval_ns = 2 * kMs;
  o.keepalive_probes = 3;
  const uint64_t t0 = p.net.now();
  ASSERT_EQ(p.A().set_flow_options(t0, p.fa, o), Status::kOk);
  FlowOptions got = p.opts(p.A(), p.fa);
  EXPECT_TRUE(got.keepalive);
  EXPECT_EQ(got.keepalive_idle_ns, 10 * kMs);
  EXPECT_EQ(got.keepalive_probes, 3u);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(p.fa) == FlowState::kFailed; }, t0 + kSec));
  EXPECT_EQ(p.A().error(p.fa), FlowError::kDeadPeer);
  EXPECT_EQ(stats(p.A(), p.fa).keepalives_sent, 3u);
  // The idle time counts from the last segment heard (long ago), so the
  // probes start at once: 3 probes 2 ms apart, then the verdict.
  EXPECT_EQ(p.net.now() - t0, 3 * 2 * kMs);
}

TEST(Options, KeepaliveAnsweredKeepsAnIdleFlowAlive) {
  StreamPair p;
  FlowOptions o = p.opts(p.A(), p.fa);
  o.keepalive = true;
  o.keepalive_idle_ns = 5 * kMs;
  o.keepalive_interval_ns = 1 * kMs;
  o.keepalive_probes = 2;
  ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, o), Status::kOk);
  o.keepalive = false;
  ASSERT_EQ(p.B().set_flow_options(p.net.now(), p.fb, o), Status::kOk);
  p.net.run_until(p.net.now() + 100 * kMs);
  EXPECT_EQ(p.A().state(p.fa), FlowState::kEstablished);
  EXPECT_GE(stats(p.A(), p.fa).keepalives_sent, 15u);
  EXPECT_EQ(stats(p.B(), p.fb).keepalives_sent, 0u);
}

// A stream receiver whose sender dies mid-transfer (its process killed with
// the engine in it: nothing resets the connection) has nothing of its own in
// flight, so only keepalive can tell. Without SO_KEEPALIVE a socket layer
// still gets the transport's dead-peer bound through dead_peer_floor.
TEST(Options, DeadPeerFloorDetectsASenderThatDiesMidTransfer) {
  Tunables t;
  t.keepalive_idle_ns = 10 * kMs;
  t.keepalive_interval_ns = 2 * kMs;
  t.keepalive_probes = 3;
  const uint64_t bound = t.keepalive_idle_ns + t.keepalive_probes * t.keepalive_interval_ns;
  for (bool floor : {false, true}) {
    SCOPED_TRACE(floor ? "dead_peer_floor" : "no keepalive at all");
    StreamPair p(t);
    FlowOptions o = p.opts(p.B(), p.fb);
    o.keepalive = false;  // the program did not ask for SO_KEEPALIVE
    o.dead_peer_floor = floor;
    ASSERT_EQ(p.B().set_flow_options(p.net.now(), p.fb, o), Status::kOk);
    FlowOptions got = p.opts(p.B(), p.fb);
    EXPECT_FALSE(got.keepalive);  // reported as asked
    EXPECT_EQ(got.dead_peer_floor, floor);
    auto m = pattern(3, 4 << 20);
    EXPECT_GT(p.write(p.A(), p.fa, m), 0u);
    std::vector<uint8_t> in;
    ASSERT_TRUE(p.net.run_until(
        [&] {
          p.drain_b(&in);
          return in.size() >= (1u << 20);
        },
        p.net.now() + kSec));
    const uint64_t t_down = p.net.now();
    p.a->down = true;  // A is killed mid-transfer
    bool failed = p.net.run_until(
        [&] {
          p.drain_b(&in);
          return p.B().state(p.fb) == FlowState::kFailed;
        },
        t_down + 10 * kSec);
    if (!floor) {
      EXPECT_FALSE(failed);  // what the socket layer must not leave a program with
      EXPECT_EQ(p.B().state(p.fb), FlowState::kEstablished);
      continue;
    }
    ASSERT_TRUE(failed);
    EXPECT_EQ(p.B().error(p.fb), FlowError::kDeadPeer);
    EXPECT_LE(p.net.now() - t_down, bound);
    EXPECT_EQ(stats(p.B(), p.fb).keepalives_sent, t.keepalive_probes);
    EXPECT_LT(in.size(), m.size());
  }
}

// With both, the earlier bound wins: the program may ask for a faster
// verdict than the transport's, not for a slower one (or none).
TEST(Options, DeadPeerFloorUsesTheEarlierOfBothBounds) {
  Tunables t;
  t.keepalive_idle_ns = 20 * kMs;
  t.keepalive_interval_ns = 5 * kMs;
  t.keepalive_probes = 4;  // 40 ms
  struct Case {
    bool keepalive;
    uint64_t idle, interval;
    uint32_t probes;
    uint32_t want_probes;
    uint64_t want_ns;  // from the moment B went down (A idle since then)
  } cases[] = {
      {false, 0, 0, 0, 4, 40 * kMs},                   // floor alone
      {true, 7200 * kSec, 75 * kSec, 9, 4, 40 * kMs},  // Linux's defaults: later
      {true, 4 * kMs, 1 * kMs, 2, 2, 6 * kMs},         // the program's: earlier
      {true, 30 * kMs, 1 * kMs, 20, 4, 40 * kMs},      // 50 ms: later
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "keepalive " << c.keepalive << " idle " << c.idle);
    StreamPair p(t);
    FlowOptions o = p.opts(p.A(), p.fa);
    o.keepalive = c.keepalive;
    o.keepalive_idle_ns = c.idle;
    o.keepalive_interval_ns = c.interval;
    o.keepalive_probes = c.probes;
    o.dead_peer_floor = true;
    ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, o), Status::kOk);
    EXPECT_EQ(p.opts(p.A(), p.fa).keepalive_idle_ns, c.idle);  // as asked
    // Fresh traffic, so the idle time starts when B goes down.
    EXPECT_EQ(p.write(p.B(), p.fb, pattern(1, 100)), 100u);
    ASSERT_TRUE(
        p.net.run_until([&] { return stats(p.B(), p.fb).bytes_acked >= 100; }, p.net.now() + kSec));
    p.net.run_until(p.net.now() + kMs);  // B's ACK of nothing: all quiet
    const uint64_t t_down = p.net.now();
    p.b->down = true;
    ASSERT_TRUE(
        p.net.run_until([&] { return p.A().state(p.fa) == FlowState::kFailed; }, t_down + kSec));
    EXPECT_EQ(p.A().error(p.fa), FlowError::kDeadPeer);
    EXPECT_EQ(stats(p.A(), p.fa).keepalives_sent, c.want_probes);
    EXPECT_LE(p.net.now() - t_down, c.want_ns);
    EXPECT_GE(p.net.now() - t_down, c.want_ns - 2 * kMs);
  }
}

// keepalive_idle_ns = 0 turns the transport's detection off: the floor adds
// nothing then (no timer on an idle flow).
TEST(Options, DeadPeerFloorIsOffWhenTheTransportsKeepaliveIs) {
  Tunables t;
  t.keepalive_idle_ns = 0;
  StreamPair p(t);
  FlowOptions o = p.opts(p.A(), p.fa);
  o.keepalive = false;
  o.dead_peer_floor = true;
  ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, o), Status::kOk);
  p.net.run_until(p.net.now() + 10 * kMs);
  EXPECT_EQ(p.A().next_timer_ns(), kNever);
}

TEST(Options, NagleHoldsSmallWritesWhileDataIsUnacknowledged) {
  for (bool nodelay : {true, false}) {
    StreamPair p;
    p.net.set_links(sim::LinkParams{});
    FlowOptions o = p.opts(p.A(), p.fa);
    o.nodelay = nodelay;
    ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, o), Status::kOk);
    const uint64_t before = data_segments(p.A());
    std::vector<uint8_t> all;
    for (int i = 0; i < 11; ++i) {  // one write, then ten more before any ACK
      auto m = pattern(10 + i, 10);
      all.insert(all.end(), m.begin(), m.end());
      ASSERT_EQ(p.write(p.A(), p.fa, m), 10u);
    }
    if (nodelay) {
      EXPECT_EQ(data_segments(p.A()) - before, 11u);
    } else {
      EXPECT_EQ(data_segments(p.A()) - before, 1u);
      EXPECT_EQ(p.A().unsent_bytes(p.fa), 100u);  // coalesced, waiting for the ACK
    }
    std::vector<uint8_t> got;
    ASSERT_TRUE(p.net.run_until(
        [&] {
          p.drain_b(&got);
          return got.size() == all.size();
        },
        p.net.now() + kSec));
    EXPECT_EQ(got, all);
    // Nagle: the held bytes left as one segment once the first was ACKed.
    if (!nodelay) {
      EXPECT_EQ(data_segments(p.A()) - before, 2u);
    }
  }
}

TEST(Options, CorkHoldsAPartialChunkUntilUncorkedFullOrTimedOut) {
  StreamPair p;
  FlowOptions o = p.opts(p.A(), p.fa);
  o.cork = true;
  ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, o), Status::kOk);
  const uint64_t before = data_segments(p.A());
  auto head = pattern(20, 300), body = pattern(21, 5000);
  ASSERT_EQ(p.write(p.A(), p.fa, head), head.size());
  ASSERT_EQ(p.write(p.A(), p.fa, body), body.size());
  p.net.run_until(p.net.now() + 10 * kMs);
  EXPECT_EQ(data_segments(p.A()), before);  // nothing left while corked
  EXPECT_EQ(p.A().unsent_bytes(p.fa), 5300u);
  // Uncork: one chunk (header and body together) leaves.
  o.cork = false;
  ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, o), Status::kOk);
  EXPECT_EQ(p.A().unsent_bytes(p.fa), 0u);
  std::vector<uint8_t> got;
  ASSERT_TRUE(p.net.run_until(
      [&] {
        p.drain_b(&got);
        return got.size() == 5300;
      },
      p.net.now() + kSec));
  EXPECT_TRUE(std::equal(head.begin(), head.end(), got.begin()));
  EXPECT_EQ(stats(p.B(), p.fb).messages_received, 1u);  // one chunk
  // A full chunk is never held.
  o.cork = true;
  ASSERT_EQ(p.A().set_flow_options(p.net.now(), p.fa, o), Status::kOk);
  auto full = pattern(22, p.A().tunables().stream_chunk_bytes);
  ASSERT_EQ(p.write(p.A(), p.fa, full), full.size());
  ASSERT_TRUE(
      p.net.run_until([&] { return p.A().unacked_bytes(p.fa) == 0; }, p.net.now() + 50 * kMs));
  // A partial one waits at most cork_max_ns (Linux: 200 ms).
  const uint64_t t0 = p.net.now();
  ASSERT_EQ(p.write(p.A(), p.fa, pattern(23, 10)), 10u);
  EXPECT_EQ(p.A().unsent_bytes(p.fa), 10u);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().unsent_bytes(p.fa) == 0; }, t0 + 10 * kSec));
  EXPECT_EQ(p.net.now() - t0, p.A().tunables().cork_max_ns);
  // Shutting down the sending side flushes a corked chunk at once.
  ASSERT_EQ(p.write(p.A(), p.fa, head), head.size());
  EXPECT_EQ(p.A().unsent_bytes(p.fa), head.size());
  ASSERT_EQ(p.A().shutdown_send(p.net.now(), p.fa), Status::kOk);
  EXPECT_EQ(p.A().unsent_bytes(p.fa), 0u);
}

TEST(Options, QuickAckAcknowledgesEverySegmentAtOnce) {
  Tunables t;
  t.ack_every_segments = 8;
  t.delayed_ack_ns = 500 * kUs;
  t.reply_grace_ns = 0;
  for (bool quick : {false, true}) {
    StreamPair p(t);
    FlowOptions o = p.opts(p.B(), p.fb);
    o.quickack = quick;
    ASSERT_EQ(p.B().set_flow_options(p.net.now(), p.fb, o), Status::kOk);
    const uint64_t acks0 = stats(p.B(), p.fb).acks_sent;
    auto m = pattern(30, 4 * p.A().tunables().mtu_payload);
    ASSERT_EQ(p.write(p.A(), p.fa, m), m.size());
    p.net.run_until(p.net.now() + 100 * kUs);  // well inside the delayed-ACK time
    const uint64_t acks = stats(p.B(), p.fb).acks_sent - acks0;
    if (quick) {
      EXPECT_EQ(acks, 4u);  // one per segment
    } else {
      EXPECT_EQ(acks, 1u);  // only the burst's last segment asked for one
    }
  }
  // Turning it on sends a pending delayed ACK now. Two segments, the second
  // (which would ask for an immediate ACK) lost: B holds a delayed ACK.
  StreamPair p(t);
  p.net.filter = [](const sim::Packet& pk) {
    Segment s;
    return !(parse(pk, &s) && s.type == SegType::kData && s.msg_offset > 0);
  };
  const uint64_t acks0 = stats(p.B(), p.fb).acks_sent;
  ASSERT_EQ(p.write(p.A(), p.fa, pattern(31, 2 * p.A().tunables().mtu_payload)),
            2u * p.A().tunables().mtu_payload);
  p.net.run_until(p.net.now() + 15 * kUs);
  EXPECT_EQ(stats(p.B(), p.fb).acks_sent, acks0);
  FlowOptions o = p.opts(p.B(), p.fb);
  o.quickack = true;
  ASSERT_EQ(p.B().set_flow_options(p.net.now(), p.fb, o), Status::kOk);
  EXPECT_EQ(stats(p.B(), p.fb).acks_sent, acks0 + 1);
}

TEST(Options, PeekDoesNotConsumeAndCountsMatch) {
  StreamPair p;
  auto m = pattern(40, 150000);  // three chunks
  ASSERT_EQ(p.write(p.A(), p.fa, m), m.size());
  ASSERT_TRUE(
      p.net.run_until([&] { return p.B().readable_bytes(p.fb) == m.size(); }, p.net.now() + kSec));
  EXPECT_EQ(stats(p.B(), p.fb).readable_bytes, m.size());
  std::vector<uint8_t> peek(100000), read(100000);
  size_t n = 0;
  ASSERT_EQ(p.B().peek_stream(p.fb, peek.data(), peek.size(), &n), Status::kOk);
  EXPECT_EQ(n, peek.size());  // across chunk boundaries
  EXPECT_TRUE(std::equal(peek.begin(), peek.end(), m.begin()));
  EXPECT_EQ(p.B().readable_bytes(p.fb), m.size());
  // Read part, then peek again from the new position.
  ASSERT_EQ(p.B().recv_stream(p.net.now(), p.fb, read.data(), 70000, &n), Status::kOk);
  EXPECT_EQ(n, 70000u);
  EXPECT_EQ(p.B().readable_bytes(p.fb), m.size() - 70000);
  ASSERT_EQ(p.B().peek_stream(p.fb, peek.data(), 10, &n), Status::kOk);
  EXPECT_TRUE(std::equal(peek.begin(), peek.begin() + 10, m.begin() + 70000));
  ASSERT_EQ(p.B().recv_stream(p.net.now(), p.fb, read.data(), read.size(), &n), Status::kOk);
  EXPECT_EQ(n, m.size() - 70000);
  EXPECT_EQ(p.B().readable_bytes(p.fb), 0u);
  EXPECT_EQ(p.B().peek_stream(p.fb, peek.data(), 10, &n), Status::kAgain);
  ASSERT_EQ(p.A().shutdown_send(p.net.now(), p.fa), Status::kOk);
  ASSERT_TRUE(
      p.net.run_until([&] { return p.B().events(p.fb) & kEvPeerClosed; }, p.net.now() + kSec));
  EXPECT_EQ(p.B().peek_stream(p.fb, peek.data(), 10, &n), Status::kEof);
  std::vector<uint8_t> msg;
  EXPECT_EQ(p.B().recv_message(p.net.now(), p.fb, &msg), Status::kWrongMode);
}

TEST(Options, OutqCountsUnsentAndUnacknowledgedBytes) {
  Pair p(Tunables(), Tunables(), 1, /*stream=*/true);
  FlowOptions o = p.B().default_flow_options();
  o.recv_buffer_bytes = 64 << 10;
  ASSERT_EQ(p.B().set_listen_options(kPortB, o), Status::kOk);
  ASSERT_TRUE(p.connect(/*stream=*/true));
  auto m = pattern(50, 300000);
  size_t acc = 0;
  ASSERT_EQ(p.A().send_stream(p.net.now(), p.fa, m.data(), m.size(), &acc), Status::kOk);
  EXPECT_EQ(p.A().unacked_bytes(p.fa), m.size());
  // The first flight left (in flight: unacknowledged but not unsent).
  const FlowStats s0 = stats(p.A(), p.fa);
  EXPECT_EQ(s0.unsent_bytes, m.size() - s0.bytes_sent);
  EXPECT_LT(s0.unsent_bytes, s0.unacked_bytes);
  p.net.run_until(p.net.now() + 10 * kMs);  // B does not read: the window closes
  FlowStats s = stats(p.A(), p.fa);
  EXPECT_EQ(s.bytes_acked, 64u << 10);  // exactly the window
  EXPECT_EQ(s.unacked_bytes, m.size() - s.bytes_acked);
  // Everything sent was acknowledged; the rest waits for the window.
  EXPECT_EQ(s.unsent_bytes, s.unacked_bytes);
  std::vector<uint8_t> got(m.size());
  size_t have = 0;
  ASSERT_TRUE(p.net.run_until(
      [&] {
        size_t n = 0;
        if (p.B().recv_stream(p.net.now(), p.fb, got.data() + have, got.size() - have, &n) ==
            Status::kOk)
          have += n;
        return p.A().unacked_bytes(p.fa) == 0;
      },
      p.net.now() + kSec));
  EXPECT_EQ(p.A().unsent_bytes(p.fa), 0u);
}

TEST(Options, FlowStatsCarryWhatTcpInfoNeeds) {
  StreamPair p;
  p.net.link(kIpA, kIpB).loss = 0.02;
  auto m = pattern(60, 2 << 20);
  size_t sent = 0;
  std::vector<uint8_t> got;
  ASSERT_TRUE(p.net.run_until(
      [&] {
        size_t acc = 0;
        if (sent < m.size() && p.A().send_stream(p.net.now(), p.fa, m.data() + sent,
                                                 m.size() - sent, &acc) == Status::kOk)
          sent += acc;
        p.drain_b(&got);
        return got.size() == m.size() && p.A().unacked_bytes(p.fa) == 0;
      },
      p.net.now() + 10 * kSec));
  FlowStats a = stats(p.A(), p.fa), b = stats(p.B(), p.fb);
  EXPECT_EQ(a.state, FlowState::kEstablished);
  EXPECT_GT(a.srtt_ns, 0u);
  EXPECT_GT(a.rto_ns, 0u);
  EXPECT_GT(a.cwnd_bytes, 0u);
  EXPECT_GT(a.retransmits, 0u);
  EXPECT_EQ(a.bytes_acked, m.size());
  EXPECT_EQ(a.bytes_sent, m.size() + a.bytes_retrans);
  EXPECT_EQ(b.bytes_received, m.size());
  EXPECT_EQ(a.unacked_segments, 0u);
  EXPECT_GT(a.last_data_sent_ns, 0u);
  EXPECT_GT(a.last_ack_recv_ns, 0u);
  EXPECT_GT(b.last_data_recv_ns, 0u);
  EXPECT_EQ(b.recv_buffer_bytes, p.B().tunables().recv_buffer_bytes);
  EXPECT_EQ(a.send_buffer_bytes, p.A().tunables().send_buffer_bytes);
  EXPECT_EQ(b.advertised_window, b.recv_buffer_bytes);
}

// The FlowEvents a stream socket turns into TCP's poll bits
// (docs/PROTOCOL.md, "Readiness").
TEST(Options, ReadinessFollowsTcpThroughHalfCloseAndReset) {
  StreamPair p;
  EXPECT_EQ(p.A().events(p.fa), uint32_t{kEvConnected | kEvWritable});
  // Our SHUT_WR: EPOLLOUT stays (writes fail with EPIPE), no EPOLLHUP.
  ASSERT_EQ(p.A().shutdown_send(p.net.now(), p.fa), Status::kOk);
  EXPECT_EQ(p.A().events(p.fa), uint32_t{kEvConnected | kEvSendShutdown});
  size_t acc;
  uint8_t x = 1;
  EXPECT_EQ(p.A().send_stream(p.net.now(), p.fa, &x, 1, &acc), Status::kShutdown);
  // The peer sees EOF: EPOLLIN | EPOLLRDHUP, and can still write.
  ASSERT_TRUE(
      p.net.run_until([&] { return p.B().events(p.fb) & kEvPeerClosed; }, p.net.now() + kSec));
  EXPECT_EQ(p.B().events(p.fb), uint32_t{kEvConnected | kEvReadable | kEvPeerClosed | kEvWritable});
  ASSERT_EQ(p.B().send_stream(p.net.now(), p.fb, &x, 1, &acc), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().readable_bytes(p.fa) == 1; }, p.net.now() + kSec));
  // Both directions shut: EPOLLHUP on both ends.
  ASSERT_EQ(p.B().shutdown_send(p.net.now(), p.fb), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().events(p.fa) & kEvHangup; }, p.net.now() + kSec));
  EXPECT_TRUE(p.A().events(p.fa) & kEvPeerClosed);
  EXPECT_TRUE(p.B().events(p.fb) & kEvHangup);
  // A reset: only kEvError | kEvReadable (EPOLLIN|OUT|ERR|HUP|RDHUP in TCP).
  StreamPair q;
  ASSERT_EQ(q.B().abort(q.net.now(), q.fb), Status::kOk);
  ASSERT_TRUE(q.net.run_until([&] { return q.A().events(q.fa) & kEvError; }, q.net.now() + kSec));
  EXPECT_EQ(q.A().events(q.fa), uint32_t{kEvError | kEvReadable});
  EXPECT_EQ(q.A().error(q.fa), FlowError::kReset);
  // A connect in progress has no readiness at all.
  FlowId c;
  ASSERT_EQ(q.A().connect(q.net.now(), kPortA + 1, {kIpB, kPortB}, &c, true), Status::kOk);
  EXPECT_EQ(q.A().events(c), 0u);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
