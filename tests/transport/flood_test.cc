// Floods (issue 14 item 8): 100,000 SYNs per second from random sources with
// random ids at a listener, and blind injection of segments with guessed ids
// at an established flow, while that flow transfers. Asserted: the transfer
// completes intact, memory stays within the configured bounds, every
// datagram is counted by reason, and a legitimate connect during the flood
// still succeeds (half-open eviction). Goodput is printed by
// bench_flood, never asserted here.
#include <gtest/gtest.h>

#include "flood_util.h"
#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

constexpr uint32_t kIpC = 0x0a000003;
constexpr uint16_t kService = 80;
constexpr uint16_t kServerPort = 9000;

struct Bulk {
  explicit Bulk(std::vector<uint8_t> d) : data(std::move(d)), got(data.size()) {}
  std::vector<uint8_t> data;
  std::vector<uint8_t> got;
  size_t sent = 0, have = 0;
  // One step of the application: write what fits, read what arrived.
  bool pump(sim::SimNetwork& net, Transport& a, FlowId fa, Transport& b, FlowId fb) {
    size_t acc = 0;
    if (sent < data.size() &&
        a.send_stream(net.now(), fa, data.data() + sent, data.size() - sent, &acc) == Status::kOk)
      sent += acc;
    size_t n = 0;
    if (have < data.size() &&
        b.recv_stream(net.now(), fb, got.data() + have, data.size() - have, &n) == Status::kOk)
      have += n;
    return have == data.size();
  }
};

struct Net {
  explicit Net(const Tunables& t, uint64_t seed) : net(seed) {
    net.drop_unroutable = true;  // answers to spoofed sources go nowhere
    sim::LinkParams lp;
    lp.delay_ns = 10 * kUs;
    lp.bandwidth_bps = 10e9;
    net.set_links(lp);
    a = net.add_host(kIpA, t);
    b = net.add_host(kIpB, t);
    c = net.add_host(kIpC, t);
    EXPECT_EQ(B().listen_service(kService, kServerPort), Status::kOk);
  }
  Transport& A() { return a->transport(); }
  Transport& B() { return b->transport(); }
  Transport& C() { return c->transport(); }
  bool connect(Transport& from, uint16_t port, FlowId* fc, FlowId* fs) {
    EXPECT_EQ(from.connect_service(net.now(), port, {kIpB, kService}, fc), Status::kOk);
    return net.run_until(
               [&] {
                 if (from.state(*fc) == FlowState::kFailed) return true;
                 return from.state(*fc) == FlowState::kEstablished &&
                        B().accept_service(kService, fs) == Status::kOk;
               },
               net.now() + kSec) &&
           from.state(*fc) == FlowState::kEstablished;
  }
  sim::SimNetwork net;
  sim::Host *a, *b, *c;
};

void check_accounting(Transport& t) {
  const Counters& c = t.counters();
  EXPECT_EQ(c.rx_datagrams, c.rx_accepted + c.rx_dropped());
}

struct FloodResult {
  bool legit_connected = false;
  FlowError legit_error = FlowError::kNone;
};

FloodResult syn_flood_during_transfer(uint64_t evict_ns) {
  Tunables t;
  t.half_open_evict_ns = evict_ns;
  Net n(t, 11);
  FlowId fa = 0, fb = 0;
  EXPECT_TRUE(n.connect(n.A(), kPortA, &fa, &fb));
  const Counters before = n.B().counters();
  const uint64_t t0 = n.net.now(), flood_end = t0 + 200 * kMs;
  Rng r(42);
  const uint64_t syns =
      flood::syn_flood(n.net, r, t0, flood_end, 100000, {kIpB, t.rendezvous_port}, kService);
  EXPECT_EQ(syns, 20000u);
  // Bounds, after every event of the run.
  size_t max_half_open = 0, max_flows = 0;
  bool invariants_ok = true;
  uint64_t events = 0;
  n.net.after_event = [&] {
    max_half_open = std::max(max_half_open, n.B().half_open_count());
    max_flows = std::max(max_flows, n.B().flow_count());
    if (++events % 32 != 0) return;  // the full scan is O(flows)
    n.B().for_each_flow([&](const Flow& f) {
      if (f.check_invariants() != nullptr) invariants_ok = false;
    });
  };
  Bulk bulk(pattern(5, 64 << 20));
  // A new client connects 20 ms into the flood (the table is full by then).
  FlowId fc = 0, fcs = 0;
  bool c_started = false;
  FloodResult res;
  EXPECT_TRUE(n.net.run_until(
      [&] {
        if (!c_started && n.net.now() >= t0 + 20 * kMs) {
          c_started = true;
          EXPECT_EQ(n.C().connect_service(n.net.now(), kPortA, {kIpB, kService}, &fc), Status::kOk);
        }
        if (c_started && fcs == 0 && n.B().accept_service(kService, &fcs) != Status::kOk) fcs = 0;
        return bulk.pump(n.net, n.A(), fa, n.B(), fb) && c_started &&
               n.C().state(fc) != FlowState::kSynSent;
      },
      t0 + 10 * kSec));
  n.net.run_until(flood_end);  // every flood SYN delivered
  res.legit_connected = n.C().state(fc) == FlowState::kEstablished;
  res.legit_error = n.C().error(fc);

  EXPECT_TRUE(bulk.got == bulk.data);
  EXPECT_EQ(n.A().state(fa), FlowState::kEstablished);
  EXPECT_TRUE(invariants_ok);
  // Memory: never more half-open flows than configured, nor flows.
  EXPECT_LE(max_half_open, t.max_half_open);
  EXPECT_EQ(max_half_open, t.max_half_open);  // the flood did fill it
  EXPECT_LE(max_flows, t.max_half_open + 2u);
  FlowStats sb = stats(n.B(), fb);
  EXPECT_LE(sb.max_recv_reserved_bytes, uint64_t{t.recv_buffer_bytes} + t.stream_chunk_bytes);
  // Every SYN accounted for: a half-open flow, or dropped by reason.
  const Counters& c = n.B().counters();
  const uint64_t legit_syns = n.C().counters().tx_syn;
  EXPECT_EQ((c.flows_created - before.flows_created) +
                (c.rx_syn_half_open_full - before.rx_syn_half_open_full),
            syns + legit_syns);
  EXPECT_EQ(c.rx_syn_backlog_full, 0u);
  EXPECT_EQ(c.rx_syn_flow_table_full, 0u);
  check_accounting(n.B());
  check_accounting(n.A());
  if (evict_ns != 0) {
    EXPECT_GT(c.syn_evicted, 0u);
    EXPECT_EQ(c.rx_syn_half_open_full - before.rx_syn_half_open_full, 0u);
  } else {
    EXPECT_EQ(c.syn_evicted, 0u);
  }
  return res;
}

TEST(Flood, SynFloodLeavesTheTransferAndNewConnectsWorking) {
  FloodResult r = syn_flood_during_transfer(Tunables().half_open_evict_ns);
  EXPECT_TRUE(r.legit_connected) << flow_error_string(r.legit_error);
}

// Why half-open eviction exists: with the bound alone, the flood holds every
// half-open slot for the SYN-ACK retry time and a legitimate client cannot
// get in (its probe times out and it falls back to kernel TCP).
TEST(Flood, WithoutEvictionTheHalfOpenBoundLocksLegitimateClientsOut) {
  FloodResult r = syn_flood_during_transfer(0);
  EXPECT_FALSE(r.legit_connected);
  EXPECT_EQ(r.legit_error, FlowError::kNotMachnet);
}

TEST(Flood, BlindInjectionIsCountedAndHarmless) {
  Tunables t;
  Net n(t, 12);
  FlowId fa = 0, fb = 0;
  ASSERT_TRUE(n.connect(n.A(), kPortA, &fa, &fb));
  const Flow* flow_a = nullptr;
  n.A().for_each_flow([&](const Flow& f) {
    if (f.id() == fa) flow_a = &f;
  });
  ASSERT_NE(flow_a, nullptr);
  const uint32_t peer_of_a = flow_a->peer_id();  // == fb
  ASSERT_EQ(peer_of_a, fb);
  const Counters a0 = n.A().counters(), b0 = n.B().counters();
  const uint64_t t0 = n.net.now(), end = t0 + 100 * kMs;
  Rng r(7);
  // 100,000 per second at each end, with the other end's addresses.
  const Endpoint ea{kIpA, kPortA}, eb{kIpB, kServerPort};
  flood::BlindCounts to_b = flood::blind_injection(n.net, r, t0, end, 100000, ea, eb, fb, fa);
  flood::BlindCounts to_a = flood::blind_injection(n.net, r, t0, end, 100000, eb, ea, fa, fb);
  Bulk bulk(pattern(6, 64 << 20));
  ASSERT_TRUE(
      n.net.run_until([&] { return bulk.pump(n.net, n.A(), fa, n.B(), fb); }, t0 + 10 * kSec));
  n.net.run_until(end + kMs);  // every injected segment and every reply delivered
  EXPECT_TRUE(bulk.got == bulk.data);
  EXPECT_EQ(n.A().state(fa), FlowState::kEstablished);
  EXPECT_EQ(n.B().state(fb), FlowState::kEstablished);
  EXPECT_EQ(n.A().flow_count(), 1u);
  EXPECT_EQ(n.B().flow_count(), 1u);
  const Counters &a = n.A().counters(), &b = n.B().counters();
  // Guessed destination ids: unknown flow. Each end also receives the
  // (rate-limited) RSTs the other sent in reply to the guesses that carried
  // its address, also for unknown ids.
  EXPECT_EQ(b.rx_no_flow - b0.rx_no_flow, to_b.guessed_dst + (a.tx_rst - a0.tx_rst));
  EXPECT_EQ(a.rx_no_flow - a0.rx_no_flow, to_a.guessed_dst + (b.tx_rst - b0.tx_rst));
  // The right destination id but a guessed source id, or the wrong address.
  EXPECT_EQ(b.rx_bad_conn_id - b0.rx_bad_conn_id, to_b.guessed_src + to_b.wrong_address);
  EXPECT_EQ(a.rx_bad_conn_id - a0.rx_bad_conn_id, to_a.guessed_src + to_a.wrong_address);
  // RST replies stayed within their token bucket; the rest were counted.
  const double secs = static_cast<double>(n.net.now() - t0) / 1e9;
  EXPECT_LE(b.tx_rst - b0.tx_rst, t.rst_burst + t.rst_rate_per_sec * secs + 1);
  EXPECT_GT(b.tx_rst_suppressed - b0.tx_rst_suppressed, 0u);
  EXPECT_EQ(b.rx_rst - b0.rx_rst, 0u);  // no injected RST was taken
  check_accounting(n.A());
  check_accounting(n.B());
  FlowStats sb = stats(n.B(), fb);
  EXPECT_LE(sb.max_recv_reserved_bytes, uint64_t{t.recv_buffer_bytes} + t.stream_chunk_bytes);
  EXPECT_EQ(n.B().flow_count() + n.B().half_open_count(), 1u);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
