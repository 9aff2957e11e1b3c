// Goodput vs. random loss on the simulated network, in virtual time (not a
// test: prints a table). One flow sends 64 MiB as 1 MiB messages over a
// 10 Gbit/s bottleneck with a 10 us one-way delay.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "sim_network.h"
#include "transport/transport.h"

using namespace machnet::transport;

namespace {

constexpr uint32_t kA = 0x0a000001, kB = 0x0a000002;

struct Result {
  double gbps;
  uint64_t retransmits, rtos;
  double seconds;
};

Result run(double loss, double bw_bps, uint64_t seed) {
  Tunables t;
  sim::SimNetwork net(seed);
  sim::Host* a = net.add_host(kA, t);
  sim::Host* b = net.add_host(kB, t);
  sim::LinkParams lp;
  lp.delay_ns = 10'000;
  lp.loss = loss;
  lp.bandwidth_bps = bw_bps;
  lp.queue_bytes = 1 << 20;
  net.set_links(lp);
  b->transport().listen(7000);
  FlowId fa = 0, fb = 0;
  a->transport().connect(0, 40000, {kB, 7000}, &fa);
  net.run_until([&] { return b->transport().accept(7000, &fb) == Status::kOk; }, 1'000'000'000);
  const size_t kMsg = 1 << 20, kCount = 64;
  std::vector<uint8_t> m(kMsg, 0x5a);
  size_t sent = 0, got = 0;
  uint64_t start = net.now();
  std::vector<uint8_t> out;
  net.run_until(
      [&] {
        while (sent < kCount &&
               a->transport().send_message(net.now(), fa, m.data(), m.size()) == Status::kOk)
          ++sent;
        while (b->transport().recv_message(net.now(), fb, &out) == Status::kOk) ++got;
        return got == kCount;
      },
      start + 600'000'000'000ull);
  FlowStats s;
  a->transport().flow_stats(fa, &s);
  double secs = static_cast<double>(net.now() - start) / 1e9;
  return {static_cast<double>(got * kMsg) * 8 / secs / 1e9, s.retransmits, s.rto_count, secs};
}

// Request/response of 64-byte messages: round-trip time percentiles, which is
// where loss recovery speed (RACK, tail probe vs. RTO) shows.
struct Latency {
  double p50_us, p99_us, max_us;
};

Latency rpc(double loss, uint64_t seed) {
  Tunables t;
  sim::SimNetwork net(seed);
  sim::Host* a = net.add_host(kA, t);
  sim::Host* b = net.add_host(kB, t);
  sim::LinkParams lp;
  lp.delay_ns = 10'000;
  lp.loss = loss;
  net.set_links(lp);
  b->transport().listen(7000);
  FlowId fa = 0, fb = 0;
  a->transport().connect(0, 40000, {kB, 7000}, &fa);
  net.run_until([&] { return b->transport().accept(7000, &fb) == Status::kOk; }, 1'000'000'000);
  std::vector<uint8_t> req(64, 1), out;
  std::vector<uint64_t> rtts;
  for (int i = 0; i < 20000; ++i) {
    uint64_t t0 = net.now();
    a->transport().send_message(t0, fa, req.data(), req.size());
    net.run_until(
        [&] {
          if (b->transport().recv_message(net.now(), fb, &out) == Status::kOk)
            b->transport().send_message(net.now(), fb, out.data(), out.size());
          return a->transport().recv_message(net.now(), fa, &out) == Status::kOk;
        },
        t0 + 10'000'000'000ull);
    rtts.push_back(net.now() - t0);
  }
  std::sort(rtts.begin(), rtts.end());
  return {rtts[rtts.size() / 2] / 1e3, rtts[rtts.size() * 99 / 100] / 1e3, rtts.back() / 1e3};
}

}  // namespace

int main() {
  const double losses[] = {0, 0.001, 0.01, 0.05};
  std::printf("machnet transport goodput, simulated 10 Gbit/s link, 20 us RTT, 64 MiB\n");
  std::printf("%8s %12s %12s %8s %12s\n", "loss", "goodput", "retransmits", "RTOs", "virtual s");
  for (double l : losses) {
    Result r = run(l, 10e9, 42);
    std::printf("%7.1f%% %8.2f Gb/s %12llu %8llu %12.4f\n", l * 100, r.gbps,
                static_cast<unsigned long long>(r.retransmits),
                static_cast<unsigned long long>(r.rtos), r.seconds);
  }
  std::printf("\n64-byte request/response, 20 us base RTT, 20000 round trips\n");
  std::printf("%8s %10s %10s %10s\n", "loss", "p50 us", "p99 us", "max us");
  for (double l : losses) {
    Latency r = rpc(l, 7);
    std::printf("%7.1f%% %10.1f %10.1f %10.1f\n", l * 100, r.p50_us, r.p99_us, r.max_us);
  }
  return 0;
}
