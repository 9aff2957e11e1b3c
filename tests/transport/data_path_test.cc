// Data transfer: segmentation/reassembly, ACK policy, loss recovery timers,
// flow control and input validation on established flows.
#include <gtest/gtest.h>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

TEST(DataPath, MessagesOfAllSizesKeepBoundaries) {
  Pair p;
  ASSERT_TRUE(p.connect());
  std::vector<size_t> sizes = {1, 2, 1399, 1400, 1401, 2800, 65536, 1 << 20, 8u << 20};
  std::vector<std::vector<uint8_t>> sent;
  for (size_t i = 0; i < sizes.size(); ++i) {
    sent.push_back(pattern(i, sizes[i]));
    ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, sent[i].data(), sent[i].size()), Status::kOk)
        << i;
  }
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(sizes.size(), &got, 10 * kSec));
  ASSERT_EQ(got.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_TRUE(got[i] == sent[i]) << "message " << i;
  FlowStats s = stats(p.A(), p.fa);
  EXPECT_EQ(s.retransmits, 0u);
  EXPECT_EQ(s.messages_sent, sizes.size());
  // Everything acknowledged: the send buffer is empty again.
  ASSERT_TRUE(p.net.run_until([&] { return stats(p.A(), p.fa).send_buffered_bytes == 0; }, kSec));
}

TEST(DataPath, InvalidSendsAreRejected) {
  Tunables t;
  t.max_message_bytes = 1 << 20;
  t.send_buffer_bytes = t.recv_buffer_bytes = 2 << 20;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  std::vector<uint8_t> big((1 << 20) + 1);
  EXPECT_EQ(p.A().send_message(0, p.fa, big.data(), big.size()), Status::kMessageTooLarge);
  EXPECT_EQ(p.A().send_message(0, p.fa, big.data(), 0), Status::kInvalidArgument);
  size_t acc;
  EXPECT_EQ(p.A().send_stream(0, p.fa, big.data(), 10, &acc), Status::kWrongMode);
  EXPECT_EQ(p.A().send_message(0, 12345, big.data(), 1), Status::kNoSuchFlow);
  std::vector<uint8_t> out;
  EXPECT_EQ(p.B().recv_message(p.net.now(), p.fb, &out), Status::kAgain);
}

TEST(DataPath, JumboSegments) {
  Tunables t;
  t.mtu_payload = 8900;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  auto m = pattern(7, 1 << 20);
  ASSERT_EQ(p.A().send_message(0, p.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  EXPECT_TRUE(got[0] == m);
  EXPECT_EQ(stats(p.A(), p.fa).segments_sent, (m.size() + 8899) / 8900);
}

TEST(DataPath, MssIsTheSmallerOfBothEnds) {
  Tunables ta, tb;
  ta.mtu_payload = 8900;
  tb.mtu_payload = 1400;
  Pair p(ta, tb);
  ASSERT_TRUE(p.connect());
  EXPECT_EQ(stats(p.A(), p.fa).mss, 1400u);
  EXPECT_EQ(stats(p.B(), p.fb).mss, 1400u);
}

TEST(DataPath, MaxMessageSizeIsNegotiated) {
  Tunables ta, tb;
  tb.max_message_bytes = 1 << 20;
  tb.recv_buffer_bytes = tb.send_buffer_bytes = 2 << 20;
  Pair p(ta, tb);
  ASSERT_TRUE(p.connect());
  EXPECT_EQ(stats(p.A(), p.fa).max_message_bytes, 1u << 20);
  std::vector<uint8_t> m((1 << 20) + 1, 1);
  EXPECT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kMessageTooLarge);
  EXPECT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size() - 1), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  EXPECT_EQ(got[0].size(), 1u << 20);
}

TEST(DataPath, MessageQueuedBeforeConnectOverPeerLimitFailsClearly) {
  Tunables ta, tb;
  tb.max_message_bytes = 1 << 20;
  tb.recv_buffer_bytes = tb.send_buffer_bytes = 2 << 20;
  Pair p(ta, tb);
  FlowId fa;
  ASSERT_EQ(p.A().connect(0, kPortA, {kIpB, kPortB}, &fa), Status::kOk);
  std::vector<uint8_t> m(2 << 20, 1);
  ASSERT_EQ(p.A().send_message(0, fa, m.data(), m.size()), Status::kOk);  // limit unknown yet
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(p.A().error(fa), FlowError::kPeerMessageLimit);
  p.net.run_until(p.net.now() + kMs);
  EXPECT_EQ(p.B().flow_count(), 0u);  // the server's flow was reset, not left hanging
}

TEST(DataPath, DelayedAcksAreCoalesced) {
  Tunables t;
  t.ack_every_segments = 2;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  uint64_t acks0 = p.B().counters().tx_pure_acks;
  auto m = pattern(1, 100 * 1400);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  p.net.run_until(p.net.now() + kMs);
  uint64_t acks = p.B().counters().tx_pure_acks - acks0;
  EXPECT_GE(acks, 50u);
  EXPECT_LE(acks, 51u);  // one per two segments (+ the end-of-burst one)
}

// Request/response: a reply sent within reply_grace_ns carries the ACK of
// the request, so neither side sends pure ACKs; without a reply the ACK
// still leaves once the grace expires.
TEST(DataPath, RepliesCarryTheAckOfTheRequest) {
  Pair p;
  ASSERT_TRUE(p.connect());
  p.net.run_until(p.net.now() + kMs);
  uint64_t a0 = p.A().counters().tx_pure_acks, b0 = p.B().counters().tx_pure_acks;
  for (int i = 0; i < 50; i++) {
    auto req = pattern(i, 64);
    ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, req.data(), req.size()), Status::kOk);
    std::vector<std::vector<uint8_t>> got;
    ASSERT_TRUE(p.recv_b(1, &got, kSec));
    ASSERT_EQ(p.B().send_message(p.net.now(), p.fb, got[0].data(), got[0].size()), Status::kOk);
    std::vector<uint8_t> reply;
    ASSERT_TRUE(p.net.run_until(
        [&] { return p.A().recv_message(p.net.now(), p.fa, &reply) == Status::kOk; },
        p.net.now() + kSec));
    EXPECT_EQ(reply, req);
  }
  EXPECT_EQ(p.B().counters().tx_pure_acks - b0, 0u);  // every ACK rode on a reply
  // The last reply itself is acknowledged by A after the grace (no data to carry it).
  p.net.run_until(p.net.now() + kMs);
  EXPECT_LE(p.A().counters().tx_pure_acks - a0, 50u);
  // With no reply at all, B's ACK comes reply_grace_ns after the request.
  Tunables t;
  Pair q(t, t);
  ASSERT_TRUE(q.connect());
  q.net.run_until(q.net.now() + kMs);
  std::vector<uint64_t> ack_times;
  q.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && pk.from.ip == kIpB && s.type == SegType::kAck)
      ack_times.push_back(q.net.now());
    return true;
  };
  uint64_t t0 = q.net.now();
  auto m = pattern(7, 64);
  ASSERT_EQ(q.A().send_message(t0, q.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(q.recv_b(1, &got, kSec));
  q.net.run_until(q.net.now() + t.delayed_ack_ns);
  ASSERT_EQ(ack_times.size(), 1u);
  EXPECT_GE(ack_times[0] - t0, t.reply_grace_ns);
  EXPECT_LT(ack_times[0] - t0, t.delayed_ack_ns);
}

TEST(DataPath, DelayedAckTimerFiresForAnIncompleteBurst) {
  Tunables t;
  t.ack_every_segments = 1000;  // only the timer (or AckNow) triggers ACKs
  t.initial_cwnd_segments = 8;
  t.cc_slow_start = false;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  std::vector<uint64_t> ack_times;
  uint64_t data_arrival = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && pk.from.ip == kIpB && s.type == SegType::kAck)
      ack_times.push_back(p.net.now());
    return true;
  };
  uint64_t t0 = p.net.now();
  auto m = pattern(1, 20 * 1400);  // 8 segments leave, none is the last one
  ASSERT_EQ(p.A().send_message(t0, p.fa, m.data(), m.size()), Status::kOk);
  data_arrival = t0 + 10 * kUs;
  p.net.run_until(t0 + 10 * kUs + t.delayed_ack_ns);
  ASSERT_EQ(ack_times.size(), 1u);  // one ACK for the whole burst
  EXPECT_EQ(ack_times[0], data_arrival + t.delayed_ack_ns);
}

TEST(DataPath, FastRetransmitOnSackWithoutTimeout) {
  Tunables t;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  int data = 0;
  uint32_t dropped_seq = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && s.type == SegType::kData && pk.from.ip == kIpA && ++data == 3) {
      dropped_seq = s.seq;
      return false;
    }
    return true;
  };
  auto m = pattern(2, 30 * 1400);
  uint64_t t0 = p.net.now();
  ASSERT_EQ(p.A().send_message(t0, p.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  EXPECT_TRUE(got[0] == m);
  FlowStats s = stats(p.A(), p.fa);
  EXPECT_EQ(s.fast_retransmits, 1u);
  EXPECT_EQ(s.retransmits, 1u);
  EXPECT_EQ(s.rto_count, 0u);
  // Repaired within about two RTTs, far below the RTO floor.
  EXPECT_LT(p.net.now() - t0, 100 * kUs);
  EXPECT_NE(dropped_seq, 0u);
}

TEST(DataPath, RtoBacksOffExponentiallyThenFails) {
  Tunables t;
  t.max_retransmits = 6;
  t.keepalive_idle_ns = 0;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  std::vector<uint64_t> tx;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && s.type == SegType::kData) tx.push_back(p.net.now());
    return pk.from.ip != kIpA;  // A's packets all vanish from now on
  };
  auto m = pattern(3, 100);
  uint64_t t0 = p.net.now();
  ASSERT_EQ(p.A().send_message(t0, p.fa, m.data(), m.size()), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(p.fa) == FlowState::kFailed; }, 10 * kSec));
  EXPECT_EQ(p.A().error(p.fa), FlowError::kRetransmitTimeout);
  // Original, one tail-loss probe after 2 SRTT + delayed-ACK time, then one
  // retransmission per RTO, doubling from the 1 ms floor.
  ASSERT_EQ(tx.size(), t.max_retransmits + 2u);
  EXPECT_EQ(tx[1] - tx[0], 2 * 20 * kUs + t.delayed_ack_ns);
  tx.erase(tx.begin() + 1);
  uint64_t rto = t.rto_min_ns;  // srtt 20 us -> floor
  EXPECT_EQ(tx[1] - tx[0], rto);
  for (size_t i = 2; i < tx.size(); ++i) {
    EXPECT_EQ(tx[i] - tx[i - 1], std::min(rto << (i - 1), t.rto_max_ns)) << i;
  }
  // Failure comes one more (backed-off) RTO after the last retransmission.
  EXPECT_EQ(p.net.now() - tx.back(), std::min(rto << t.max_retransmits, t.rto_max_ns));
  EXPECT_EQ(stats(p.A(), p.fa).rto_count, t.max_retransmits);
  EXPECT_EQ(stats(p.A(), p.fa).send_buffered_bytes, 0u);  // buffers freed on failure
}

TEST(DataPath, RttIsMeasuredAndRtoFollowsIt) {
  Tunables t;
  t.rto_min_ns = 200 * kUs;
  t.delayed_ack_ns = 20 * kUs;
  Pair p(t, t);
  sim::LinkParams lp;
  lp.delay_ns = 500 * kUs;  // 1 ms RTT
  p.net.set_links(lp);
  ASSERT_TRUE(p.connect());
  for (int i = 0; i < 20; ++i) {
    auto m = pattern(i, 3000);
    ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
    std::vector<std::vector<uint8_t>> got;
    ASSERT_TRUE(p.recv_b(1, &got, kSec));
    p.net.run_until(p.net.now() + 2 * kMs);
  }
  FlowStats s = stats(p.A(), p.fa);
  EXPECT_NEAR(static_cast<double>(s.srtt_ns), 1e6, 0.05e6);
  EXPECT_GE(s.rto_ns, s.srtt_ns);
  EXPECT_LT(s.rto_ns, 2 * kMs);
  EXPECT_NEAR(static_cast<double>(s.min_rtt_ns), 1e6, 0.01e6);
}

TEST(DataPath, SlowReaderBackPressuresAndResumes) {
  Tunables t;
  t.max_message_bytes = 16 << 10;
  t.recv_buffer_bytes = 64 << 10;
  t.send_buffer_bytes = 64 << 10;
  Pair p(t, t);
  ASSERT_TRUE(p.connect());
  const int kMsgs = 40;
  int queued = 0;
  // Writer: queue as much as the transport takes.
  auto pump = [&] {
    while (queued < kMsgs) {
      auto m = pattern(queued, 16 << 10);
      Status s = p.A().send_message(p.net.now(), p.fa, m.data(), m.size());
      if (s == Status::kAgain) return;
      ASSERT_EQ(s, Status::kOk);
      ++queued;
    }
  };
  pump();
  p.net.run_until(p.net.now() + 50 * kMs);  // reader asleep
  pump();                                   // refills the send buffer
  p.net.run_until(p.net.now() + 50 * kMs);
  // Stalled: the receiver holds a full window, the sender a full buffer.
  FlowStats rb = stats(p.B(), p.fb), sa = stats(p.A(), p.fa);
  EXPECT_EQ(rb.recv_held_bytes, t.recv_buffer_bytes);
  EXPECT_EQ(sa.send_buffered_bytes, t.send_buffer_bytes);
  EXPECT_EQ(queued, 8);
  EXPECT_EQ(sa.peer_rwnd, 0u);
  EXPECT_GT(sa.zero_window_probes, 0u);  // persist timer kept asking
  EXPECT_EQ(p.A().state(p.fa), FlowState::kEstablished);
  // Reader drains slowly; everything arrives in order.
  int read = 0;
  while (read < kMsgs) {
    std::vector<uint8_t> m;
    Status s = p.B().recv_message(p.net.now(), p.fb, &m);
    if (s == Status::kOk) {
      ASSERT_TRUE(m == pattern(read, 16 << 10)) << read;
      ++read;
    } else {
      ASSERT_EQ(s, Status::kAgain);
      ASSERT_TRUE(p.net.step(p.net.now() + kSec)) << "stuck after " << read;
    }
    pump();
    FlowStats r = stats(p.B(), p.fb);
    ASSERT_LE(r.recv_held_bytes, t.recv_buffer_bytes);
    ASSERT_LE(r.recv_reserved_bytes, uint64_t{t.recv_buffer_bytes} + t.max_message_bytes);
    ASSERT_LE(stats(p.A(), p.fa).send_buffered_bytes, t.send_buffer_bytes);
  }
  EXPECT_EQ(queued, kMsgs);
  EXPECT_EQ(p.A().counters().tx_rto, 0u);
}

TEST(DataPath, OutOfWindowAndSpoofedSegmentsAreIgnored) {
  Pair p;
  ASSERT_TRUE(p.connect());
  const Flow* fb = only_flow(p.B());
  ASSERT_NE(fb, nullptr);
  uint32_t a_id = fb->peer_id();
  auto inject = [&](uint32_t src, uint32_t dst, uint32_t seq_delta, SegType type) {
    // Learn the next expected seq from a real segment.
    Segment s;
    s.type = type;
    s.src_conn = src;
    s.dst_conn = dst;
    s.seq = seq_delta;
    s.msg_id = 0;
    s.msg_len = 10;
    s.payload_len = 10;
    uint8_t d[kHeaderSize + 10] = {};
    iovec iov{d + kHeaderSize, 10};
    encode_header(s, &iov, 1, d);
    p.B().on_datagram(p.net.now(), {kIpA, kPortA}, {kIpB, kPortB}, d, sizeof(d));
  };
  Counters before = p.B().counters();
  // Right ids, sequence far outside the window.
  inject(a_id, p.fb, 0x40000000, SegType::kData);
  EXPECT_EQ(p.B().counters().rx_out_of_window, before.rx_out_of_window + 1);
  // Wrong source id (blind injection must guess 32 more bits).
  inject(a_id ^ 1, p.fb, 0, SegType::kData);
  inject(a_id ^ 1, p.fb, 0, SegType::kRst);
  EXPECT_EQ(p.B().counters().rx_bad_conn_id, before.rx_bad_conn_id + 2);
  // RST with right ids but a sequence outside the window.
  inject(a_id, p.fb, 12345, SegType::kRst);
  EXPECT_EQ(p.B().state(p.fb), FlowState::kEstablished);
  EXPECT_TRUE(!p.B().readable(p.fb));
  // The real flow is unharmed.
  auto m = pattern(5, 5000);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, kSec));
  EXPECT_TRUE(got[0] == m);
}

TEST(DataPath, MalformedDatagramsOnAFlowAreCountedAndHarmless) {
  Pair p;
  ASSERT_TRUE(p.connect());
  Rng r(3);
  std::vector<uint8_t> last;
  // Corrupt every 3rd data segment in flight; checksum catches them.
  int n = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    if (pk.from.ip == kIpA && ++n % 3 == 0) {
      sim::Packet bad = pk;
      bad.bytes[r.below(bad.bytes.size())] ^= 0x10;
      p.B().on_datagram(p.net.now(), bad.from, bad.to, bad.bytes.data(), bad.bytes.size());
      return false;
    }
    return true;
  };
  auto m = pattern(6, 200000);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, 10 * kSec));
  EXPECT_TRUE(got[0] == m);
  const Counters& c = p.B().counters();
  EXPECT_GT(c.rx_bad_checksum + c.rx_bad_magic + c.rx_bad_version + c.rx_bad_type +
                c.rx_bad_length + c.rx_bad_sack,
            10u);
}

TEST(DataPath, StreamModeIgnoresWriteBoundaries) {
  Tunables t;
  t.stream_chunk_bytes = 4096;
  t.max_message_bytes = 64 << 10;
  t.send_buffer_bytes = 64 << 10;
  t.recv_buffer_bytes = 64 << 10;
  Pair p(t, t, 1, /*stream=*/true);
  ASSERT_TRUE(p.connect(/*stream=*/true));
  auto data = pattern(11, 300000);
  size_t written = 0;
  std::vector<uint8_t> out;
  Rng r(5);
  while (out.size() < data.size()) {
    if (written < data.size()) {
      size_t want = std::min<size_t>(data.size() - written, 1 + r.below(20000));
      size_t acc = 0;
      Status s = p.A().send_stream(p.net.now(), p.fa, data.data() + written, want, &acc);
      ASSERT_TRUE(s == Status::kOk || s == Status::kAgain);
      written += acc;
    }
    uint8_t buf[777];
    size_t got = 0;
    Status s = p.B().recv_stream(p.net.now(), p.fb, buf, 1 + r.below(sizeof(buf)), &got);
    if (s == Status::kOk) {
      out.insert(out.end(), buf, buf + got);
    } else {
      ASSERT_EQ(s, Status::kAgain);
      ASSERT_TRUE(p.net.step(p.net.now() + kSec));
    }
  }
  EXPECT_TRUE(out == data);
  ASSERT_EQ(p.A().shutdown_send(p.net.now(), p.fa), Status::kOk);
  size_t got = 0;
  uint8_t buf[16];
  ASSERT_TRUE(p.net.run_until(
      [&] { return p.B().recv_stream(p.net.now(), p.fb, buf, sizeof(buf), &got) == Status::kEof; },
      kSec));
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet

namespace machnet {
namespace transport {
namespace test {
namespace {

// Finds a network seed whose client ISN lies just below 2^32, replaying the
// simulator's seeding (host A is added first; its transport draws the
// connection id, then the ISN).
uint64_t seed_with_isn_near_wrap(uint32_t margin) {
  for (uint64_t seed = 1;; ++seed) {
    Rng net(seed ^ 0x5eed5eed5eedull);
    Rng host(net.next());
    uint32_t id;
    do {
      id = host.next32();
    } while (id == 0);
    uint32_t isn = host.next32();
    if (isn > 0xffffffffu - margin) return seed;
  }
}

TEST(DataPath, SequenceNumbersWrapAround) {
  uint64_t seed = seed_with_isn_near_wrap(2000);
  Pair p(Tunables(), Tunables(), seed);
  uint32_t isn = 0, max_seq = 0;
  bool wrapped = false;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && pk.from.ip == kIpA) {
      if (s.type == SegType::kSyn) isn = s.seq;
      if (s.type == SegType::kData && s.seq < isn) wrapped = true;
      max_seq = std::max(max_seq, s.seq);
    }
    return true;
  };
  ASSERT_TRUE(p.connect());
  EXPECT_GT(isn, 0xffffffffu - 2000);
  sim::LinkParams lp;
  lp.loss = 0.01;  // exercise SACK and retransmission across the wrap
  p.net.set_links(lp);
  auto m = pattern(3, 8 << 20);
  ASSERT_EQ(p.A().send_message(p.net.now(), p.fa, m.data(), m.size()), Status::kOk);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(p.recv_b(1, &got, 10 * kSec));
  EXPECT_TRUE(got[0] == m);
  EXPECT_TRUE(wrapped);
  EXPECT_GT(stats(p.A(), p.fa).retransmits, 0u);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
