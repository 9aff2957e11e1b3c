// Nanoseconds per checksum on the engine's software path, before (src/wire's
// portable code, which the engine used until it moved to DPDK's helpers) and
// after (engine/checksum.h: rte_ipv4_cksum, rte_ipv4_udptcp_cksum,
// rte_raw_cksum), for 64 B and 1400 B datagrams. Printed, never asserted
// (shared machines); the best of several rounds is reported.
//
//   tests/engine/bench_checksum [rounds]
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/checksum.h"
#include "wire/build.h"
#include "wire/checksum.h"
#include "wire/parse.h"

namespace {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

volatile uint32_t g_sink;

// Best ns per call of fn over `rounds` rounds of `iters` calls.
template <typename Fn>
double best_ns(int rounds, int iters, Fn fn) {
  double best = 1e18;
  for (int r = 0; r < rounds; r++) {
    uint64_t t0 = now_ns();
    uint32_t acc = 0;
    for (int i = 0; i < iters; i++) acc += fn(i);
    uint64_t t1 = now_ns();
    g_sink = g_sink + acc;
    double ns = static_cast<double>(t1 - t0) / iters;
    if (ns < best) best = ns;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace machnet;
  int rounds = argc > 1 ? std::atoi(argv[1]) : 7;
  const int iters = 200000;
  std::printf("%-28s %8s %10s %10s\n", "checksum (ns per call)", "bytes", "wire", "dpdk");
  for (size_t payload : {64, 1400}) {
    std::vector<uint8_t> f(wire::kUdpHeadersLen + payload);
    for (size_t i = 0; i < f.size(); i++) f[i] = static_cast<uint8_t>(i * 7 + 3);
    wire::UdpFlow flow;
    flow.src_ip = 0x0a000001;
    flow.dst_ip = 0x0a000002;
    flow.src_port = 4000;
    flow.dst_port = 5000;
    wire::build_udp_headers(f.data(), flow, static_cast<uint16_t>(payload), 1, 64, true);
    auto* ip = reinterpret_cast<wire::Ipv4Hdr*>(f.data() + wire::kEthHdrLen);
    auto* udp = reinterpret_cast<wire::UdpHdr*>(f.data() + wire::kEthHdrLen + sizeof(*ip));
    uint8_t* data = f.data() + wire::kUdpHeadersLen;

    // TX: IPv4 header checksum.
    double ip_w = best_ns(rounds, iters, [&](int i) {
      ip->id = static_cast<uint16_t>(i);
      ip->checksum = 0;
      return ip->checksum = wire::internet_checksum(ip, sizeof(*ip));
    });
    double ip_d = best_ns(rounds, iters, [&](int i) {
      ip->id = static_cast<uint16_t>(i);
      ip->checksum = 0;
      return ip->checksum = engine::ipv4_checksum(ip);
    });
    // TX: UDP checksum over pseudo-header, header and payload.
    double udp_w = best_ns(rounds, iters, [&](int i) {
      data[0] = static_cast<uint8_t>(i);
      udp->checksum = 0;
      return udp->checksum = wire::udp_checksum(*ip, *udp, data, payload);
    });
    double udp_d = best_ns(rounds, iters, [&](int i) {
      data[0] = static_cast<uint8_t>(i);
      udp->checksum = 0;
      return udp->checksum = engine::udp_checksum(ip, udp);
    });
    // RX: parse and verify the whole frame (IPv4 and UDP checksums).
    udp->checksum = 0;
    udp->checksum = engine::udp_checksum(ip, udp);
    ip->checksum = 0;
    ip->checksum = engine::ipv4_checksum(ip);
    wire::ParseOptions ow;
    ow.local_ip = 0x0a000002;
    wire::ParseOptions od = ow;
    od.raw_sum = engine::raw_checksum;
    double rx_w = best_ns(rounds, iters, [&](int) {
      return static_cast<uint32_t>(wire::parse_frame(f.data(), f.size(), ow).kind);
    });
    double rx_d = best_ns(rounds, iters, [&](int) {
      return static_cast<uint32_t>(wire::parse_frame(f.data(), f.size(), od).kind);
    });
    if (wire::parse_frame(f.data(), f.size(), od).kind != wire::FrameKind::kUdp) {
      std::fprintf(stderr, "bench_checksum: the frame does not verify\n");
      return 1;
    }
    std::printf("%-28s %8zu %10.1f %10.1f\n", "tx ipv4 header", payload, ip_w, ip_d);
    std::printf("%-28s %8zu %10.1f %10.1f\n", "tx udp (pseudo+hdr+data)", payload, udp_w, udp_d);
    std::printf("%-28s %8zu %10.1f %10.1f\n", "rx parse + verify ip, udp", payload, rx_w, rx_d);
  }
  return 0;
}
