// Goodput of an established flow under floods, on the simulated network in
// virtual time (not a test: prints a table; never asserted). One stream flow
// sends 128 MiB over a 10 Gbit/s link with 10 us one-way delay; the
// receiver's host serves arriving datagrams at 10 Gbit/s plus 200 ns of
// processing each (a NIC and a CPU that a flood competes for). Attacks:
//   syn      100,000 service SYNs/s from random sources with random ids
//   blind    100,000 segments/s at each end with guessed connection ids
//   both     the two together
// Then the wall-clock cost of the transport's own handling of a flood
// datagram (this machine, one core): what the simulation cannot show.
#include <chrono>
#include <cstdio>
#include <vector>

#include "flood_util.h"
#include "sim_network.h"
#include "transport/transport.h"

using namespace machnet::transport;

namespace {

constexpr uint32_t kA = 0x0a000001, kB = 0x0a000002;
constexpr uint16_t kService = 80, kServerPort = 9000, kClientPort = 40000;

struct Result {
  double gbps = 0;
  bool intact = false;
  uint64_t half_open_max = 0, evicted = 0, no_flow = 0, bad_conn = 0, rst_suppressed = 0;
};

Result run(bool syn, bool blind) {
  Tunables t;
  sim::SimNetwork net(1);
  net.drop_unroutable = true;
  sim::LinkParams lp;
  lp.delay_ns = 10'000;
  lp.bandwidth_bps = 10e9;
  lp.queue_bytes = 2 << 20;
  net.set_links(lp);
  sim::Host* a = net.add_host(kA, t);
  sim::Host* b = net.add_host(kB, t);
  net.set_host_ingress(kB, 10e9, 2 << 20, 200);
  net.set_host_ingress(kA, 10e9, 2 << 20, 200);
  Transport& A = a->transport();
  Transport& B = b->transport();
  B.listen_service(kService, kServerPort);
  FlowId fa = 0, fb = 0;
  A.connect_service(0, kClientPort, {kB, kService}, &fa);
  net.run_until([&] { return B.accept_service(kService, &fb) == Status::kOk; }, 1'000'000'000);
  const uint64_t t0 = net.now(), end = t0 + 1'000'000'000;
  machnet::transport::Rng r(9);
  if (syn) flood::syn_flood(net, r, t0, end, 100000, {kB, t.rendezvous_port}, kService);
  if (blind) {
    flood::blind_injection(net, r, t0, end, 100000, {kA, kClientPort}, {kB, kServerPort}, fb, fa);
    flood::blind_injection(net, r, t0, end, 100000, {kB, kServerPort}, {kA, kClientPort}, fa, fb);
  }
  std::vector<uint8_t> data(128u << 20), got(data.size());
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + (i >> 12));
  size_t sent = 0, have = 0;
  Result res;
  net.after_event = [&] {
    res.half_open_max = std::max<uint64_t>(res.half_open_max, B.half_open_count());
  };
  net.run_until(
      [&] {
        size_t acc = 0, n = 0;
        if (sent < data.size() && A.send_stream(net.now(), fa, data.data() + sent,
                                                data.size() - sent, &acc) == Status::kOk)
          sent += acc;
        if (B.recv_stream(net.now(), fb, got.data() + have, got.size() - have, &n) == Status::kOk)
          have += n;
        return have == data.size();
      },
      t0 + 60'000'000'000ull);
  const double secs = static_cast<double>(net.now() - t0) / 1e9;
  res.gbps = static_cast<double>(have) * 8 / secs / 1e9;
  res.intact = have == data.size() && got == data;
  const Counters& c = B.counters();
  res.evicted = c.syn_evicted;
  res.no_flow = c.rx_no_flow + A.counters().rx_no_flow;
  res.bad_conn = c.rx_bad_conn_id + A.counters().rx_bad_conn_id;
  res.rst_suppressed = c.tx_rst_suppressed + A.counters().tx_rst_suppressed;
  if (secs > 1.0) std::printf("  (transfer outlasted the 1 s attack: ratio understated)\n");
  return res;
}

class NullSink : public DatagramSink {
 public:
  bool send(const Endpoint&, const Endpoint&, const uint8_t*, size_t, const iovec*,
            size_t) override {
    return true;
  }
};

// Wall-clock nanoseconds per datagram of `pkts` handed to one transport.
double cost_ns(const std::vector<sim::Packet>& pkts, Transport* tr) {
  auto t0 = std::chrono::steady_clock::now();
  uint64_t now = 1'000'000'000;
  for (const sim::Packet& p : pkts) {
    now += 10'000;  // 100,000 per second of the transport's clock
    tr->on_datagram(now, p.from, p.to, p.bytes.data(), p.bytes.size());
  }
  auto dt = std::chrono::steady_clock::now() - t0;
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count()) /
         static_cast<double>(pkts.size());
}

}  // namespace

int main() {
  std::printf("Goodput of one stream flow under floods (simulated, virtual time)\n");
  std::printf("%-8s %8s %8s %7s %14s %8s %10s %10s %14s\n", "attack", "Gbit/s", "ratio", "intact",
              "half_open_max", "evicted", "no_flow", "bad_conn", "rst_suppressed");
  double base = 0;
  const struct {
    const char* name;
    bool syn, blind;
  } rows[] = {
      {"none", false, false}, {"syn", true, false}, {"blind", false, true}, {"both", true, true}};
  for (auto& row : rows) {
    Result r = run(row.syn, row.blind);
    if (!row.syn && !row.blind) base = r.gbps;
    std::printf("%-8s %8.2f %8.3f %7s %14llu %8llu %10llu %10llu %14llu\n", row.name, r.gbps,
                r.gbps / base, r.intact ? "yes" : "NO", (unsigned long long)r.half_open_max,
                (unsigned long long)r.evicted, (unsigned long long)r.no_flow,
                (unsigned long long)r.bad_conn, (unsigned long long)r.rst_suppressed);
  }

  // Wall clock: the transport's cost per flood datagram on this machine.
  Tunables t;
  NullSink sink;
  {
    std::vector<sim::Packet> syns;
    machnet::transport::Rng r(5);
    for (int i = 0; i < 200000; ++i) {
      Segment s;
      s.type = SegType::kSyn;
      s.flags = kFlagStream | kFlagService;
      s.ack = kService;
      s.src_conn = r.next32() | 1;
      s.seq = r.next32();
      s.msg_id = 1024;
      s.msg_len = 1400;
      s.msg_offset = 1 << 16;
      sim::Packet p;
      p.from = {flood::random_source(r), static_cast<uint16_t>(1024 + r.below(60000))};
      p.to = {kB, t.rendezvous_port};
      p.bytes = flood::encode(s, {});
      syns.push_back(std::move(p));
    }
    Transport tr(t, &sink, kB, 1);
    tr.listen_service(kService, kServerPort);
    double ns = cost_ns(syns, &tr);
    std::printf(
        "\nwall clock, one core: %.0f ns per flood SYN (half-open table full, oldest "
        "evicted; %llu evicted)\n",
        ns, (unsigned long long)tr.counters().syn_evicted);
  }
  {
    std::vector<sim::Packet> blind;
    machnet::transport::Rng r(6);
    for (int i = 0; i < 200000; ++i) {
      Segment s;
      s.type = i % 2 ? SegType::kData : SegType::kAck;
      s.flags = kFlagAck;
      s.src_conn = r.next32();
      s.dst_conn = r.next32();
      s.seq = r.next32();
      s.ack = r.next32();
      std::vector<uint8_t> payload;
      if (s.type == SegType::kData) {
        payload.assign(100, 0x5a);
        s.msg_len = 100;
      }
      sim::Packet p;
      p.from = {kA, kClientPort};
      p.to = {kB, kServerPort};
      p.bytes = flood::encode(s, payload);
      blind.push_back(std::move(p));
    }
    Transport tr(t, &sink, kB, 1);
    double ns = cost_ns(blind, &tr);
    std::printf(
        "wall clock, one core: %.0f ns per blind segment with a guessed id (RST replies "
        "rate-limited: %llu sent, %llu suppressed)\n",
        ns, (unsigned long long)tr.counters().tx_rst,
        (unsigned long long)tr.counters().tx_rst_suppressed);
  }
  return 0;
}
