// Property tests: thousands of seeded scenarios, each a random mix of message
// sizes in both directions over a randomly impaired network. Properties:
//  * every message is delivered exactly once, in order, intact, OR the flow
//    fails -- and failure is only allowed when a permanent partition makes it
//    inevitable, in which case it must be detected within a bound;
//  * per-flow memory never exceeds the configured limits;
//  * a graceful close always completes and leaves no flow behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

enum class Mix { kClean, kLossy, kChaos, kPartition, kLarge };

struct Scenario {
  Tunables t;
  sim::LinkParams ab, ba;
  std::vector<size_t> sizes_ab, sizes_ba;
  bool permanent_cut = false;
  uint64_t cut_at = 0;
  bool slow_reader = false;
  std::string describe() const {
    std::ostringstream o;
    o << "mss=" << t.mtu_payload << " rbuf=" << t.recv_buffer_bytes
      << " ack_every=" << t.ack_every_segments << " loss=" << ab.loss << " dup=" << ab.duplicate
      << " corrupt=" << ab.corrupt << " reorder=" << ab.reorder << " jitter=" << ab.jitter_ns
      << " bw=" << ab.bandwidth_bps << " q=" << ab.queue_bytes << " cuts=" << ab.cuts.size() << "/"
      << ba.cuts.size() << " permanent=" << permanent_cut << " slow_reader=" << slow_reader
      << " msgs=" << sizes_ab.size() << "+" << sizes_ba.size();
    return o.str();
  }
};

size_t log_uniform(Rng& r, size_t lo, size_t hi) {
  double x = std::log(static_cast<double>(lo)) +
             r.uniform() * (std::log(static_cast<double>(hi)) - std::log(static_cast<double>(lo)));
  return std::max(lo, std::min(hi, static_cast<size_t>(std::exp(x))));
}

Scenario make_scenario(uint64_t seed, Mix mix) {
  Rng r(seed * 7919 + static_cast<uint64_t>(mix));
  Scenario s;
  Tunables& t = s.t;
  const uint32_t mtus[] = {512, 1400, 1400, 8900};
  t.mtu_payload = mtus[r.below(4)];
  t.ack_every_segments = 1 + static_cast<uint32_t>(r.below(4));
  t.syn_rto_ns = 1 * kMs;
  t.rto_max_ns = 50 * kMs;
  t.max_retransmits = 8;
  t.keepalive_idle_ns = 20 * kMs;
  t.keepalive_interval_ns = 5 * kMs;
  // 8 probes: with 5% loss each way a live peer misses all of them with
  // probability ~1e-8, so a failure here really means a dead peer.
  t.keepalive_probes = 8;
  t.time_wait_ns = 100 * kMs;  // covers several backed-off peer retransmissions
  t.max_message_bytes = 1 << 20;
  // Small buffers in a third of the runs so flow control is exercised.
  if (r.below(3) == 0) {
    t.max_message_bytes = 128 << 10;
    t.recv_buffer_bytes = static_cast<uint32_t>(128 << 10) << r.below(2);
    t.send_buffer_bytes = static_cast<uint32_t>(128 << 10) << r.below(2);
    t.max_inflight_segments = 64 << r.below(4);
  } else {
    t.recv_buffer_bytes = t.send_buffer_bytes = 2 << 20;
  }
  sim::LinkParams& lp = s.ab;
  lp.delay_ns = (2 + r.below(50)) * kUs;
  switch (mix) {
    case Mix::kClean:
      break;
    case Mix::kLossy: {
      const double losses[] = {0.001, 0.01, 0.02, 0.05};
      lp.loss = losses[r.below(4)];
      break;
    }
    case Mix::kChaos:
    case Mix::kLarge:
      lp.loss = r.uniform() * 0.03;
      if (r.below(2)) lp.duplicate = r.uniform() * 0.03;
      if (r.below(2)) lp.corrupt = r.uniform() * 0.03;
      if (r.below(2)) lp.reorder = r.uniform() * 0.1;
      lp.reorder_delay_ns = (1 + r.below(100)) * kUs;
      if (r.below(2)) lp.jitter_ns = r.below(30) * kUs;
      if (r.below(2)) {
        lp.bandwidth_bps = 1e9 * static_cast<double>(1 + r.below(100));
        lp.queue_bytes = (16 + r.below(1024)) << 10;
      }
      break;
    case Mix::kPartition:
      lp.loss = r.uniform() * 0.01;
      if (r.below(4) == 0) {
        s.permanent_cut = true;
        s.cut_at = r.below(2000) * kUs;  // usually mid-transfer
      }
      break;
  }
  s.ba = s.ab;
  if (mix == Mix::kPartition) {
    // Temporary cuts heal well inside every failure bound; a permanent cut
    // may hit one direction or both.
    int cuts = static_cast<int>(r.below(3));
    for (int i = 0; i < cuts; ++i) {
      uint64_t at = r.below(5000) * kUs, len = (1 + r.below(15)) * kMs;
      (r.below(2) ? s.ab : s.ba).cuts.push_back({at, at + len});
    }
    if (s.permanent_cut) {
      int dir = static_cast<int>(r.below(3));
      if (dir != 1) s.ab.cuts.push_back({s.cut_at, kNever});
      if (dir != 0) s.ba.cuts.push_back({s.cut_at, kNever});
    }
  }
  s.slow_reader = r.below(4) == 0;
  int n_ab = static_cast<int>(1 + r.below(8)), n_ba = static_cast<int>(r.below(6));
  if (mix == Mix::kLarge) {
    t.max_message_bytes = 8 << 20;
    t.send_buffer_bytes = t.recv_buffer_bytes = 16 << 20;
    t.max_inflight_segments = 16384;
    s.sizes_ab = {8u << 20, log_uniform(r, 1, 1 << 20), 8u << 20};
    s.sizes_ba = {log_uniform(r, 1, 1 << 16)};
    return s;
  }
  auto pick = [&] {
    if (r.below(8) == 0) return log_uniform(r, 64 << 10, t.max_message_bytes);
    return log_uniform(r, 1, 64 << 10);
  };
  for (int i = 0; i < n_ab; ++i) s.sizes_ab.push_back(pick());
  for (int i = 0; i < n_ba; ++i) s.sizes_ba.push_back(pick());
  return s;
}

// One direction of application traffic with content verification.
struct Direction {
  uint64_t seed;
  const std::vector<size_t>* sizes;
  size_t sent = 0, received = 0;
  bool sender_closed = false, saw_eof = false;
  std::vector<uint8_t> next;  // content of message `sent`, built once
  uint64_t content_key(size_t i) const { return seed * 1000003 + i; }
};

struct Outcome {
  bool ok = true;
  std::string why;
  bool failed_as_allowed = false;  // permanent partition, detected in time
  uint64_t bytes = 0, messages = 0, virtual_ns = 0;
};

Outcome run(uint64_t seed, Mix mix) {
  Scenario sc = make_scenario(seed, mix);
  Outcome out;
  auto failf = [&](const std::string& w) {
    if (out.ok) {
      out.ok = false;
      out.why = w + " [" + sc.describe() + "]";
    }
  };
  Pair p(sc.t, sc.t, seed);
  p.net.set_link(kIpA, kIpB, sc.ab);
  p.net.set_link(kIpB, kIpA, sc.ba);
  const uint64_t mem_recv = uint64_t{sc.t.recv_buffer_bytes} + sc.t.max_message_bytes;
  p.net.after_event = [&] {
    for (Transport* tr : {&p.A(), &p.B()}) {
      tr->for_each_flow([&](const Flow& f) {
        FlowStats s = f.stats();
        if (s.recv_held_bytes > sc.t.recv_buffer_bytes) failf("recv window overrun");
        if (s.recv_reserved_bytes > mem_recv) failf("reassembly memory over bound");
        if (s.send_buffered_bytes > sc.t.send_buffer_bytes) failf("send buffer over bound");
        if (const char* why = f.check_invariants()) failf(std::string("flow invariant: ") + why);
      });
      const Counters& c = tr->counters();
      if (c.rx_datagrams != c.rx_accepted + c.rx_dropped()) failf("rx counters do not add up");
    }
  };
  // Debugging aid: TRACE_SEED=<seed> prints every datagram of that run.
  if (getenv("TRACE_SEED") && std::to_string(seed) == getenv("TRACE_SEED")) {
    p.net.filter = [&](const sim::Packet& pk) {
      Segment s;
      bool ok = parse(pk, &s);
      fprintf(stderr,
              "%10llu %s ok=%d type=%d fl=%x seq=%u ack=%u rwnd=%u len=%u sacks=%u stA=%s stB=%s\n",
              (unsigned long long)p.net.now(), pk.from.ip == kIpA ? "A>B" : "B>A", ok, (int)s.type,
              s.flags, s.seq, s.ack, s.rwnd, s.payload_len, s.sack_count,
              flow_state_name(p.A().state(p.fa)), flow_state_name(p.B().state(p.fb)));
      return true;
    };
  }
  if (p.A().connect(0, kPortA, {kIpB, kPortB}, &p.fa) != Status::kOk) {
    failf("connect call");
    return out;
  }
  Direction ab{seed * 2, &sc.sizes_ab}, ba{seed * 2 + 1, &sc.sizes_ba};
  std::vector<uint8_t> msg;
  auto pump_send = [&](Transport& tr, FlowId id, Direction& d) {
    while (d.sent < d.sizes->size()) {
      if (d.next.size() != (*d.sizes)[d.sent])
        d.next = pattern(d.content_key(d.sent), (*d.sizes)[d.sent]);
      Status st = tr.send_message(p.net.now(), id, d.next.data(), d.next.size());
      if (st != Status::kOk) return;
      ++d.sent;
      d.next.clear();
    }
    if (!d.sender_closed) {
      d.sender_closed = true;
      tr.shutdown_send(p.net.now(), id);
    }
  };
  auto pump_recv = [&](Transport& tr, FlowId id, Direction& d) {
    // A slow reader only reads during one millisecond out of four.
    if (sc.slow_reader && (p.net.now() / kMs) % 4 != 0) return;
    for (;;) {
      Status st = tr.recv_message(p.net.now(), id, &msg);
      if (st == Status::kEof) {
        if (d.received != d.sizes->size()) failf("EOF before all messages");
        d.saw_eof = true;
        return;
      }
      if (st != Status::kOk) return;
      if (d.received >= d.sizes->size()) {
        failf("extra message delivered");
        return;
      }
      size_t want = (*d.sizes)[d.received];
      if (msg.size() != want || msg != pattern(d.content_key(d.received), want)) {
        failf("message " + std::to_string(d.received) + " corrupt or out of order");
        return;
      }
      ++d.received;
    }
  };
  const uint64_t deadline = 120 * kSec;
  auto finished = [&](Transport& tr, FlowId id) {
    FlowState s = tr.state(id);
    return s == FlowState::kFailed || s == FlowState::kTimeWait || s == FlowState::kClosed;
  };
  bool accepted = false;
  uint64_t a_fail_at = 0, b_fail_at = 0;
  auto app = [&] {
    if (!out.ok) return true;
    if (!accepted && p.B().accept(kPortB, &p.fb) == Status::kOk) accepted = true;
    if (p.A().state(p.fa) == FlowState::kFailed && a_fail_at == 0) a_fail_at = p.net.now();
    if (p.A().state(p.fa) != FlowState::kFailed) {
      pump_send(p.A(), p.fa, ab);
      pump_recv(p.A(), p.fa, ba);
    }
    if (accepted) {
      if (p.B().state(p.fb) == FlowState::kFailed && b_fail_at == 0) b_fail_at = p.net.now();
      if (p.B().state(p.fb) != FlowState::kFailed) {
        pump_send(p.B(), p.fb, ba);
        pump_recv(p.B(), p.fb, ab);
      }
    }
    bool a_failed = p.A().state(p.fa) == FlowState::kFailed;
    bool b_failed = accepted && p.B().state(p.fb) == FlowState::kFailed;
    if (a_failed || b_failed) {
      // Wait (bounded) for the other side to detect it too.
      return (a_failed || finished(p.A(), p.fa)) &&
             (!accepted || b_failed || finished(p.B(), p.fb));
    }
    // Success: both readers saw every message and EOF, both FINs acked.
    return accepted && ab.saw_eof && ba.saw_eof && finished(p.A(), p.fa) && finished(p.B(), p.fb);
  };
  // Time slices of 1 ms: the (slow) application also acts when the network
  // is quiet, like a real reader waking up.
  while (!app() && p.net.now() < deadline) p.net.run_until(app, p.net.now() + kMs);
  if (!out.ok) return out;
  bool a_failed = p.A().state(p.fa) == FlowState::kFailed;
  bool b_failed = accepted && p.B().state(p.fb) == FlowState::kFailed;
  if (a_failed || b_failed) {
    if (!sc.permanent_cut) {
      failf(std::string("flow failed without a permanent partition: A=") +
            flow_error_string(p.A().error(p.fa)) +
            " B=" + (accepted ? flow_error_string(p.B().error(p.fb)) : "not accepted"));
      return out;
    }
    // Dead peer detected within the bound: RTO chain or keepalive, whichever
    // applies, plus a handshake in progress.
    const Tunables& t = sc.t;
    uint64_t rto_chain = (t.max_retransmits + 1) * t.rto_max_ns;
    uint64_t ka = t.keepalive_idle_ns + t.keepalive_probes * t.keepalive_interval_ns;
    uint64_t syn = t.syn_rto_ns * ((2ull << t.syn_max_retries) - 1);
    uint64_t bound = sc.cut_at + std::max({rto_chain, ka, syn}) + ka;
    uint64_t last = std::max(a_fail_at, b_fail_at);
    if (last > bound)
      failf("failure detected too late: " + std::to_string(last) + " > " + std::to_string(bound));
    out.failed_as_allowed = true;
    return out;
  }
  if (p.net.now() >= deadline) {
    failf("did not finish by the deadline");
    return out;
  }
  // Everything delivered both ways and both FINs exchanged.
  if (ab.received != sc.sizes_ab.size() || ba.received != sc.sizes_ba.size())
    failf("closed without delivering everything");
  if (!ab.saw_eof || !ba.saw_eof) failf("no EOF seen");
  out.messages = ab.received + ba.received;
  for (size_t x : sc.sizes_ab) out.bytes += x;
  for (size_t x : sc.sizes_ba) out.bytes += x;
  out.virtual_ns = p.net.now();
  // Release both handles; no flow may outlive TIME_WAIT.
  p.A().close(p.net.now(), p.fa);
  p.B().close(p.net.now(), p.fb);
  p.net.run_until(p.net.now() + 10 * kSec);
  if (p.A().flow_count() != 0 || p.B().flow_count() != 0) failf("flows left after close");
  if (p.A().next_timer_ns() != kNever || p.B().next_timer_ns() != kNever) failf("timers left");
  return out;
}

Outcome run_many(uint64_t seed);

void run_seeds(Mix mix, uint64_t first, uint64_t n, bool many = false) {
  // Soak testing: MACHNET_PROPERTY_SCALE=k runs k times as many seeds.
  if (const char* k = std::getenv("MACHNET_PROPERTY_SCALE")) n *= std::max(1, std::atoi(k));
  // Seeds of different mixes must not overlap when scaled up.
  first *= 1000;
  uint64_t bytes = 0, messages = 0, allowed_failures = 0, virtual_ns = 0;
  for (uint64_t seed = first; seed < first + n; ++seed) {
    Outcome o = many ? run_many(seed) : run(seed, mix);
    if (!o.ok) {
      ADD_FAILURE() << "seed " << seed << ": " << o.why;
      return;  // one reproducible seed is enough
    }
    bytes += o.bytes;
    messages += o.messages;
    allowed_failures += o.failed_as_allowed;
    virtual_ns += o.virtual_ns;
  }
  std::printf(
      "  %llu seeds: %llu messages, %.1f MiB verified, %llu failed under a permanent "
      "partition (detected in time), %.1f s virtual time\n",
      static_cast<unsigned long long>(n), static_cast<unsigned long long>(messages),
      static_cast<double>(bytes) / (1 << 20), static_cast<unsigned long long>(allowed_failures),
      static_cast<double>(virtual_ns) / 1e9);
  if (mix != Mix::kPartition && !many) {
    EXPECT_EQ(allowed_failures, 0u);
  }
}

// Several flows at once between the same two hosts, all sharing one local
// port on each side (demultiplexed by connection id), mixing message mode
// and byte-stream mode, over a chaotic network.
Outcome run_many(uint64_t seed) {
  Rng r(seed * 104729 + 17);
  Scenario sc = make_scenario(seed, r.below(3) == 0 ? Mix::kPartition : Mix::kChaos);
  Outcome out;
  auto failf = [&](const std::string& w) {
    if (out.ok) {
      out.ok = false;
      out.why = w + " [" + sc.describe() + "]";
    }
  };
  Pair p(sc.t, sc.t, seed);
  if (p.B().listen(kPortB + 1, /*stream=*/true) != Status::kOk) failf("listen");
  p.net.set_link(kIpA, kIpB, sc.ab);
  p.net.set_link(kIpB, kIpA, sc.ba);
  const uint64_t mem_recv = uint64_t{sc.t.recv_buffer_bytes} + sc.t.max_message_bytes;
  p.net.after_event = [&] {
    for (Transport* tr : {&p.A(), &p.B()}) {
      tr->for_each_flow([&](const Flow& f) {
        FlowStats st = f.stats();
        if (st.recv_held_bytes > sc.t.recv_buffer_bytes) failf("recv window overrun");
        if (st.recv_reserved_bytes > mem_recv) failf("reassembly memory over bound");
        if (st.send_buffered_bytes > sc.t.send_buffer_bytes) failf("send buffer over bound");
        if (const char* why = f.check_invariants()) failf(std::string("flow invariant: ") + why);
      });
      const Counters& c = tr->counters();
      if (c.rx_datagrams != c.rx_accepted + c.rx_dropped()) failf("rx counters do not add up");
    }
  };
  struct Side {
    std::vector<uint8_t> data;  // everything this side sends (stream mode: one stream)
    std::vector<size_t> sizes;  // message sizes (message mode)
    size_t sent_msgs = 0, sent_bytes = 0, recv_msgs = 0, recv_bytes = 0;
    bool closed = false, eof = false;
  };
  struct F {
    bool stream;
    FlowId a = 0, b = 0;
    Side ab, ba;  // ab: A sends, B receives
  };
  int n = 2 + static_cast<int>(r.below(4));
  std::vector<F> flows(n);
  for (int i = 0; i < n; ++i) {
    F& f = flows[i];
    f.stream = r.below(2) == 0;
    for (Side* sd : {&f.ab, &f.ba}) {
      int msgs = static_cast<int>(r.below(5));
      for (int k = 0; k < msgs; ++k) {
        size_t len = log_uniform(r, 1, std::min<size_t>(256 << 10, sc.t.max_message_bytes));
        std::vector<uint8_t> m = pattern(seed * 977 + i * 31 + k + (sd == &f.ba ? 500 : 0), len);
        sd->sizes.push_back(len);
        sd->data.insert(sd->data.end(), m.begin(), m.end());
      }
    }
    if (p.A().connect(0, kPortA, {kIpB, static_cast<uint16_t>(kPortB + (f.stream ? 1 : 0))}, &f.a,
                      f.stream) != Status::kOk)
      failf("connect");
  }
  std::vector<uint8_t> buf(100000), msg;
  auto pump = [&](Transport& tx, FlowId id, Side& sd, bool stream) {
    if (stream) {
      while (sd.sent_bytes < sd.data.size()) {
        size_t acc = 0;
        Status st = tx.send_stream(p.net.now(), id, sd.data.data() + sd.sent_bytes,
                                   sd.data.size() - sd.sent_bytes, &acc);
        if (st != Status::kOk) break;
        sd.sent_bytes += acc;
      }
      if (sd.sent_bytes == sd.data.size() && !sd.closed) {
        sd.closed = true;
        tx.shutdown_send(p.net.now(), id);
      }
      return;
    }
    while (sd.sent_msgs < sd.sizes.size()) {
      Status st =
          tx.send_message(p.net.now(), id, sd.data.data() + sd.sent_bytes, sd.sizes[sd.sent_msgs]);
      if (st != Status::kOk) break;
      sd.sent_bytes += sd.sizes[sd.sent_msgs++];
    }
    if (sd.sent_msgs == sd.sizes.size() && !sd.closed) {
      sd.closed = true;
      tx.shutdown_send(p.net.now(), id);
    }
  };
  auto drain = [&](Transport& rx, FlowId id, Side& sd, bool stream) {
    for (;;) {
      Status st;
      if (stream) {
        size_t got = 0;
        st = rx.recv_stream(p.net.now(), id, buf.data(), 1 + r.below(buf.size()), &got);
        if (st == Status::kOk) {
          if (sd.recv_bytes + got > sd.data.size() ||
              std::memcmp(buf.data(), sd.data.data() + sd.recv_bytes, got) != 0) {
            failf("stream bytes corrupt, duplicated or out of order");
            return;
          }
          sd.recv_bytes += got;
          continue;
        }
      } else {
        st = rx.recv_message(p.net.now(), id, &msg);
        if (st == Status::kOk) {
          if (sd.recv_msgs >= sd.sizes.size() || msg.size() != sd.sizes[sd.recv_msgs] ||
              std::memcmp(msg.data(), sd.data.data() + sd.recv_bytes, msg.size()) != 0) {
            failf("message corrupt, duplicated or out of order");
            return;
          }
          sd.recv_bytes += msg.size();
          ++sd.recv_msgs;
          continue;
        }
      }
      if (st == Status::kEof) {
        if (sd.recv_bytes != sd.data.size()) failf("EOF before all data");
        sd.eof = true;
      }
      return;
    }
  };
  auto term = [](FlowState st) {
    return st == FlowState::kFailed || st == FlowState::kTimeWait || st == FlowState::kClosed;
  };
  bool any_failed = false;
  auto app = [&] {
    if (!out.ok) return true;
    for (uint16_t port : {kPortB, static_cast<uint16_t>(kPortB + 1)}) {
      FlowId id;
      while (p.B().accept(port, &id) == Status::kOk) {
        // B's flow knows A's connection id: that pairs the two ends.
        p.B().for_each_flow([&](const Flow& bf) {
          if (bf.id() != id) return;
          for (F& f : flows)
            if (f.a == bf.peer_id()) f.b = id;
        });
      }
    }
    bool all_done = true;
    for (F& f : flows) {
      FlowState sa = p.A().state(f.a);
      FlowState sb = f.b ? p.B().state(f.b) : FlowState::kSynReceived;
      if (sa == FlowState::kFailed || sb == FlowState::kFailed) any_failed = true;
      if (sa != FlowState::kFailed) {
        pump(p.A(), f.a, f.ab, f.stream);
        drain(p.A(), f.a, f.ba, f.stream);
      }
      if (f.b && sb != FlowState::kFailed) {
        pump(p.B(), f.b, f.ba, f.stream);
        drain(p.B(), f.b, f.ab, f.stream);
      }
      bool ok_done = f.b && f.ab.eof && f.ba.eof && term(sa) && term(sb);
      bool fail_done =
          (sa == FlowState::kFailed || sb == FlowState::kFailed) && term(sa) && (!f.b || term(sb));
      all_done = all_done && (ok_done || fail_done);
    }
    return all_done;
  };
  const uint64_t deadline = 120 * kSec;
  while (!app() && p.net.now() < deadline) p.net.run_until(app, p.net.now() + kMs);
  if (!out.ok) return out;
  if (any_failed && !sc.permanent_cut) {
    failf("a flow failed without a permanent partition");
    return out;
  }
  if (p.net.now() >= deadline) {
    std::string st;
    for (F& f : flows) {
      FlowStats sa = stats(p.A(), f.a), sb;
      if (f.b) p.B().flow_stats(f.b, &sb);
      st += std::string(" {") + (f.stream ? "stream " : "msg ") + flow_state_name(sa.state) + "/" +
            (f.b ? flow_state_name(sb.state) : "unaccepted") +
            " ab=" + std::to_string(f.ab.recv_bytes) + "/" + std::to_string(f.ab.data.size()) +
            " ba=" + std::to_string(f.ba.recv_bytes) + "/" + std::to_string(f.ba.data.size()) +
            " eof=" + std::to_string(f.ab.eof) + std::to_string(f.ba.eof) + "}";
    }
    failf("did not finish by the deadline:" + st);
    return out;
  }
  out.failed_as_allowed = any_failed;
  for (F& f : flows) {
    out.bytes += f.ab.recv_bytes + f.ba.recv_bytes;
    out.messages += f.ab.recv_msgs + f.ba.recv_msgs;
    p.A().close(p.net.now(), f.a);
    if (f.b) p.B().close(p.net.now(), f.b);
  }
  out.virtual_ns = p.net.now();
  p.net.run_until(p.net.now() + 10 * kSec);
  if (p.A().flow_count() != 0 || p.B().flow_count() != 0) failf("flows left after close");
  return out;
}

TEST(Property, CleanNetwork) {
  run_seeds(Mix::kClean, 1, 200);
}
TEST(Property, LossyNetwork) {
  run_seeds(Mix::kLossy, 1000, 700);
}
TEST(Property, ChaosNetwork) {
  run_seeds(Mix::kChaos, 2000, 700);
}
TEST(Property, Partitions) {
  run_seeds(Mix::kPartition, 3000, 400);
}
TEST(Property, ManyFlowsMixedModes) {
  run_seeds(Mix::kChaos, 5000, 300, /*many=*/true);
}
TEST(Property, LargeMessages) {
  run_seeds(Mix::kLarge, 4000, 8);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
