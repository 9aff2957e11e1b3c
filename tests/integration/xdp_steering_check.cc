// Test driver for machnet::engine::XdpSteering and the XDP steering program
// (tools/xdp/machnet_xdp.bpf.c). Run inside the namespace of the interface:
//
//   xdp_steering_check selftest IFACE ENGINE_IP KERNEL_IP
//       attach to the program on IFACE, check map updates, and check the
//       program's verdicts on crafted frames with BPF_PROG_TEST_RUN (no AF_XDP
//       socket bound: a steered frame falls back to XDP_PASS and counts as
//       "no_socket"). Leaves steering unconfigured (engine IP 0).
//   xdp_steering_check config IFACE ENGINE_IP own|shared [PORT...]
//   xdp_steering_check stats IFACE     prints "redirected=N passed=N no_socket=N"
//   xdp_steering_check detach IFACE    detach_stale_program()
//   xdp_steering_check attach IFACE    only attach (exit 1 with the message)
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/xdp_steering.h"

using machnet::engine::XdpSteering;

namespace {

int g_failures = 0;

#define CHECK(cond, ...)                                        \
  do {                                                          \
    if (!(cond)) {                                              \
      std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                        \
      std::fprintf(stderr, "\n");                               \
      g_failures++;                                             \
    }                                                           \
  } while (0)

uint32_t parse_ip(const char* s) {
  in_addr a{};
  if (inet_pton(AF_INET, s, &a) != 1) {
    std::fprintf(stderr, "bad IPv4 address '%s'\n", s);
    std::exit(2);
  }
  return ntohl(a.s_addr);
}

// ---- frame builders -------------------------------------------------------

void put16(std::vector<uint8_t>* f, uint16_t v) {
  f->push_back(static_cast<uint8_t>(v >> 8));
  f->push_back(static_cast<uint8_t>(v));
}
void put32(std::vector<uint8_t>* f, uint32_t v) {
  put16(f, static_cast<uint16_t>(v >> 16));
  put16(f, static_cast<uint16_t>(v));
}
void eth(std::vector<uint8_t>* f, uint16_t type) {
  for (int i = 0; i < 6; i++) f->push_back(0xff);
  for (int i = 0; i < 6; i++) f->push_back(static_cast<uint8_t>(0x02 + i));
  put16(f, type);
}

std::vector<uint8_t> arp(uint32_t sender, uint32_t target) {
  std::vector<uint8_t> f;
  eth(&f, 0x0806);
  put16(&f, 1);       // htype Ethernet
  put16(&f, 0x0800);  // ptype IPv4
  f.push_back(6);
  f.push_back(4);
  put16(&f, 1);  // request
  for (int i = 0; i < 6; i++) f.push_back(static_cast<uint8_t>(0x02 + i));
  put32(&f, sender);
  for (int i = 0; i < 6; i++) f.push_back(0);
  put32(&f, target);
  while (f.size() < 60) f.push_back(0);
  return f;
}

// IPv4 packet; proto 17 adds a UDP header to dport unless truncate_l4.
std::vector<uint8_t> ipv4(uint32_t src, uint32_t dst, uint8_t proto, uint16_t dport,
                          uint16_t frag_off = 0, int option_words = 0, bool truncate_l4 = false) {
  std::vector<uint8_t> f;
  eth(&f, 0x0800);
  f.push_back(static_cast<uint8_t>(0x40 | (5 + option_words)));
  f.push_back(0);
  put16(&f, 20 + option_words * 4 + 8 + 4);
  put16(&f, 1);
  put16(&f, frag_off);
  f.push_back(64);
  f.push_back(proto);
  put16(&f, 0);
  put32(&f, src);
  put32(&f, dst);
  for (int i = 0; i < option_words; i++) put32(&f, 0x01010101);  // NOPs
  if (truncate_l4) return f;
  put16(&f, 40000);  // sport (or ICMP type/code)
  put16(&f, dport);
  put16(&f, 12);
  put16(&f, 0);
  put32(&f, 0xdeadbeef);
  while (f.size() < 60) f.push_back(0);
  return f;
}

std::vector<uint8_t> ipv6() {
  std::vector<uint8_t> f;
  eth(&f, 0x86dd);
  for (int i = 0; i < 48; i++) f.push_back(0);
  f[14] = 0x60;
  return f;
}

// Runs the frame through the program; returns true if the program chose to
// steer it (no_socket counter went up by one). Checks the verdict is XDP_PASS.
bool steered(int prog_fd, const XdpSteering& s, std::vector<uint8_t> frame, const char* what) {
  uint64_t before = 0, after = 0;
  if (!s.read_stats(nullptr, nullptr, &before)) {
    CHECK(false, "%s: read_stats failed", what);
    return false;
  }
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()), .repeat = 1);
  int rc = bpf_prog_test_run_opts(prog_fd, &opts);
  CHECK(rc == 0, "%s: bpf_prog_test_run_opts: %s", what, std::strerror(-rc));
  CHECK(opts.retval == XDP_PASS, "%s: verdict %u, expected XDP_PASS (%u)", what, opts.retval,
        XDP_PASS);
  s.read_stats(nullptr, nullptr, &after);
  CHECK(after - before <= 1, "%s: no_socket went up by %llu", what,
        static_cast<unsigned long long>(after - before));
  return after == before + 1;
}

int open_prog(const std::string& ifname) {
  unsigned ifindex = if_nametoindex(ifname.c_str());
  uint32_t id = 0;
  if (ifindex == 0 || bpf_xdp_query_id(static_cast<int>(ifindex), 0, &id) || id == 0) return -1;
  return bpf_prog_get_fd_by_id(id);
}

void expect(bool got, bool want, const char* what) {
  CHECK(got == want, "%s: %s, expected %s", what, got ? "steered" : "passed",
        want ? "steered" : "passed");
  if (got == want) std::printf("ok   %-46s %s\n", what, got ? "steered" : "passed");
}

int selftest(const std::string& ifname, uint32_t engine_ip, uint32_t kernel_ip) {
  std::string err;
  {
    XdpSteering none;
    CHECK(!none.attach("machnet-nonexistent0", &err), "attach to a missing interface succeeded");
    std::printf("ok   missing interface: %s\n", err.c_str());
    CHECK(!none.configure(1, false, &err), "configure before attach worked");
    CHECK(!none.attach("lo", &err), "attach to lo (no XDP) succeeded");
    std::printf("ok   no program: %s\n", err.c_str());
  }

  XdpSteering s;
  if (!s.attach(ifname, &err)) {
    std::fprintf(stderr, "FAIL attach(%s): %s\n", ifname.c_str(), err.c_str());
    return 1;
  }
  std::printf("ok   attached to %s, prog id %u\n", ifname.c_str(), s.prog_id());
  uint64_t r = 0, p = 0, n = 0;
  CHECK(s.read_stats(&r, &p, &n), "read_stats failed");

  // Ports.
  bool on = true;
  CHECK(s.get_port(7777, &on, &err) && !on, "port 7777 initially marked");
  CHECK(s.set_port(7777, true, &err), "set_port: %s", err.c_str());
  CHECK(s.set_port(65535, true, &err), "set_port: %s", err.c_str());
  CHECK(s.get_port(7777, &on, &err) && on, "port 7777 not marked");
  CHECK(s.set_port(65535, false, &err), "set_port: %s", err.c_str());
  CHECK(s.get_port(65535, &on, &err) && !on, "port 65535 still marked");

  int prog_fd = open_prog(ifname);
  if (prog_fd < 0) {
    std::fprintf(stderr, "FAIL cannot open the program on %s\n", ifname.c_str());
    return 1;
  }
  const uint32_t peer = kernel_ip + 1;

  // Unconfigured: everything passes.
  CHECK(s.configure(0, false, &err), "configure: %s", err.c_str());
  expect(steered(prog_fd, s, arp(peer, engine_ip), "unconfigured ARP"), false,
         "unconfigured: ARP for engine IP");
  expect(steered(prog_fd, s, ipv4(peer, engine_ip, 17, 7777), "x"), false,
         "unconfigured: UDP to engine IP");

  // Own IP.
  CHECK(s.configure(engine_ip, false, &err), "configure: %s", err.c_str());
  expect(steered(prog_fd, s, arp(peer, engine_ip), "x"), true, "own: ARP request for engine IP");
  expect(steered(prog_fd, s, arp(peer, kernel_ip), "x"), false, "own: ARP request for kernel IP");
  expect(steered(prog_fd, s, ipv4(peer, engine_ip, 1, 0), "x"), true, "own: ICMP to engine IP");
  expect(steered(prog_fd, s, ipv4(peer, engine_ip, 17, 1234), "x"), true,
         "own: UDP to engine IP, unmarked port");
  expect(steered(prog_fd, s, ipv4(peer, engine_ip, 6, 80), "x"), true, "own: TCP to engine IP");
  expect(steered(prog_fd, s, ipv4(peer, engine_ip, 17, 0, 0x0010), "x"), true,
         "own: non-first fragment to engine IP");
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 17, 7777), "x"), false,
         "own: UDP to kernel IP, marked port");
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 1, 0), "x"), false, "own: ICMP to kernel IP");
  expect(steered(prog_fd, s, ipv6(), "x"), false, "own: IPv6");
  {
    auto f = ipv4(peer, engine_ip, 17, 7777);
    f.resize(14 + 10);
    expect(steered(prog_fd, s, f, "x"), false, "own: truncated IPv4 header");
  }

  // Shared IP: the engine uses the kernel's address.
  CHECK(s.configure(kernel_ip, true, &err), "configure: %s", err.c_str());
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 17, 7777), "x"), true,
         "shared: UDP to marked port");
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 17, 7777, 0, 2), "x"), true,
         "shared: UDP with IP options to marked port");
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 17, 7778), "x"), false,
         "shared: UDP to unmarked port");
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 17, 7777, 0x2000), "x"), false,
         "shared: first fragment (MF) to marked port");
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 17, 7777, 0x0020), "x"), false,
         "shared: later fragment to marked port");
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 6, 7777), "x"), false,
         "shared: TCP to marked port");
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 1, 0), "x"), false, "shared: ICMP");
  expect(steered(prog_fd, s, arp(peer, kernel_ip), "x"), false, "shared: ARP for the shared IP");
  expect(steered(prog_fd, s, ipv4(peer, peer, 17, 7777), "x"), false,
         "shared: UDP to another IP, marked port");
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 17, 7777, 0, 0, true), "x"), false,
         "shared: truncated UDP header");
  CHECK(s.set_port(7777, false, &err), "set_port: %s", err.c_str());
  expect(steered(prog_fd, s, ipv4(peer, kernel_ip, 17, 7777), "x"), false,
         "shared: UDP to port unmarked again");

  // Back to unconfigured, ports cleared.
  CHECK(s.set_port(9, true, &err), "set_port: %s", err.c_str());
  CHECK(s.clear_ports(&err), "clear_ports: %s", err.c_str());
  CHECK(s.get_port(9, &on, &err) && !on, "clear_ports left port 9 marked");
  CHECK(s.configure(0, false, &err), "configure: %s", err.c_str());
  close(prog_fd);

  uint64_t r2 = 0, p2 = 0, n2 = 0;
  CHECK(s.read_stats(&r2, &p2, &n2), "read_stats failed");
  CHECK(p2 > p && n2 > n, "counters did not move");
  std::printf("stats: redirected=%llu passed=%llu no_socket=%llu\n",
              static_cast<unsigned long long>(r2), static_cast<unsigned long long>(p2),
              static_cast<unsigned long long>(n2));
  if (g_failures) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("selftest passed\n");
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: xdp_steering_check selftest IFACE ENGINE_IP KERNEL_IP\n"
               "       xdp_steering_check config IFACE ENGINE_IP own|shared "
               "[PORT...]\n"
               "       xdp_steering_check stats|detach|attach IFACE\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string cmd = argv[1], ifname = argv[2];
  std::string err;
  if (cmd == "selftest") {
    if (argc != 5) return usage();
    return selftest(ifname, parse_ip(argv[3]), parse_ip(argv[4]));
  }
  if (cmd == "detach") {
    if (!XdpSteering::detach_stale_program(ifname, &err)) {
      std::fprintf(stderr, "detach: %s\n", err.c_str());
      return 1;
    }
    return 0;
  }
  XdpSteering s;
  if (!s.attach(ifname, &err)) {
    std::fprintf(stderr, "attach: %s\n", err.c_str());
    return 1;
  }
  if (cmd == "attach") return 0;
  if (cmd == "stats") {
    uint64_t r = 0, p = 0, n = 0;
    if (!s.read_stats(&r, &p, &n)) {
      std::fprintf(stderr, "read_stats failed\n");
      return 1;
    }
    std::printf("redirected=%llu passed=%llu no_socket=%llu\n", static_cast<unsigned long long>(r),
                static_cast<unsigned long long>(p), static_cast<unsigned long long>(n));
    return 0;
  }
  if (cmd == "config") {
    if (argc < 5) return usage();
    const std::string mode = argv[4];
    if (mode != "own" && mode != "shared") return usage();
    if (!s.clear_ports(&err) || !s.configure(parse_ip(argv[3]), mode == "shared", &err)) {
      std::fprintf(stderr, "config: %s\n", err.c_str());
      return 1;
    }
    for (int i = 5; i < argc; i++) {
      long port = std::strtol(argv[i], nullptr, 10);
      if (port <= 0 || port > 65535) return usage();
      if (!s.set_port(static_cast<uint16_t>(port), true, &err)) {
        std::fprintf(stderr, "config: %s\n", err.c_str());
        return 1;
      }
    }
    return 0;
  }
  return usage();
}
