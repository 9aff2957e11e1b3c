// Test driver for machnet::engine::KernelNeighbours (src/engine/kernel_neighbours.cc,
// compiled in: no DPDK). Run inside the namespace of the interface.
//
//   kernel_neighbours_check selftest
//       parser robustness on valid, foreign, truncated and mutated netlink
//       messages; open() of a missing interface fails; open/close leaks no fd.
//   kernel_neighbours_check resolve IFACE IP MAC TIMEOUT_MS [auto|netlink|udp] [expect-miss]
//       (expect-miss: lookup(IP) must fail first) request(IP), then poll()
//       until IP is reported usable with MAC within TIMEOUT_MS; lookup(IP)
//       (and the dump path, lookup_dump) must then succeed with MAC. Prints "resolved IP MAC ms=N
//       via=METHOD".
//   kernel_neighbours_check unresolvable IFACE IP WAIT_MS [auto|netlink|udp]
//       lookup(IP) fails; request(IP) returns at once; for WAIT_MS no
//       notification claims a MAC for IP and (kernel gave up) a "lost" one
//       comes; lookup(IP) still fails; a second request() still works.
//   kernel_neighbours_check lookup IFACE IP     exit 0 and print the MAC if usable, else 1
// Exit status: 0 pass, 1 failure, 2 usage.
#include <arpa/inet.h>
#include <dirent.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/kernel_neighbours.h"

using machnet::engine::KernelNeighbours;
using Mac = KernelNeighbours::Mac;

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

Mac parse_mac(const char* s) {
  Mac m{};
  unsigned v[6];
  if (std::sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
    std::fprintf(stderr, "bad MAC address '%s'\n", s);
    std::exit(2);
  }
  for (int i = 0; i < 6; i++) m[i] = static_cast<uint8_t>(v[i]);
  return m;
}

std::string mac_str(const Mac& m) {
  char b[18];
  std::snprintf(b, sizeof(b), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

std::string ip_str(uint32_t ip) {
  char b[16];
  std::snprintf(b, sizeof(b), "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
  return b;
}

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

int count_fds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) n++;
  closedir(d);
  return n;
}

KernelNeighbours::RequestMethod parse_method(const char* s) {
  const std::string m = s;
  if (m == "auto") return KernelNeighbours::RequestMethod::kAuto;
  if (m == "netlink") return KernelNeighbours::RequestMethod::kNetlink;
  if (m == "udp") return KernelNeighbours::RequestMethod::kUdp;
  std::fprintf(stderr, "bad method '%s' (auto|netlink|udp)\n", s);
  std::exit(2);
}

const char* method_name(KernelNeighbours::RequestMethod m) {
  switch (m) {
    case KernelNeighbours::RequestMethod::kNetlink:
      return "netlink";
    case KernelNeighbours::RequestMethod::kUdp:
      return "udp";
    default:
      return "auto";
  }
}

// ---- what poll() reported ---------------------------------------------------

struct Seen {
  uint32_t want = 0;
  bool usable = false;
  bool lost = false;
  Mac mac{};
  int other = 0;  // callbacks for other addresses
};

void on_usable(void* ctx, uint32_t ip, const Mac& mac) {
  auto* s = static_cast<Seen*>(ctx);
  if (ip == s->want) {
    s->usable = true;
    s->mac = mac;
  } else {
    s->other++;
  }
}

void on_lost(void* ctx, uint32_t ip) {
  auto* s = static_cast<Seen*>(ctx);
  if (ip == s->want) {
    s->lost = true;
  } else {
    s->other++;
  }
}

// Polls kn for up to ms, returning early once stop(seen) holds.
template <typename Stop>
void poll_for(KernelNeighbours* kn, Seen* seen, int64_t ms, Stop stop) {
  const int64_t deadline = now_ms() + ms;
  for (;;) {
    kn->poll(on_usable, seen, on_lost);
    if (stop(*seen)) return;
    const int64_t left = deadline - now_ms();
    if (left <= 0) return;
    pollfd p{kn->fd(), POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(left > 50 ? 50 : left));
  }
}

// ---- selftest: the parser on crafted messages -------------------------------

class MsgBuilder {
 public:
  // Appends one neighbour message; dst_len/mac_len let tests make bad ones.
  void neigh(uint16_t type, int ifindex, uint16_t state, uint8_t flags, uint32_t ip,
             const uint8_t* mac, size_t mac_len, uint8_t family = AF_INET, size_t dst_len = 4) {
    const size_t start = buf_.size();
    buf_.resize(start + NLMSG_SPACE(sizeof(ndmsg)));
    auto* nh = reinterpret_cast<nlmsghdr*>(buf_.data() + start);
    nh->nlmsg_type = type;
    nh->nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
    auto* ndm = static_cast<ndmsg*>(NLMSG_DATA(nh));
    ndm->ndm_family = family;
    ndm->ndm_ifindex = ifindex;
    ndm->ndm_state = state;
    ndm->ndm_flags = flags;
    uint8_t dst[16] = {};
    const uint32_t be = htonl(ip);
    std::memcpy(dst, &be, 4);
    attr(start, NDA_DST, dst, dst_len);
    if (mac != nullptr) attr(start, NDA_LLADDR, mac, mac_len);
  }
  std::vector<uint8_t>& bytes() { return buf_; }

 private:
  void attr(size_t start, uint16_t type, const void* data, size_t len) {
    const size_t off = buf_.size();
    buf_.resize(off + RTA_SPACE(len));
    auto* rta = reinterpret_cast<rtattr*>(buf_.data() + off);
    rta->rta_type = type;
    rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(rta), data, len);
    auto* nh = reinterpret_cast<nlmsghdr*>(buf_.data() + start);
    nh->nlmsg_len = static_cast<uint32_t>(buf_.size() - start);
  }
  std::vector<uint8_t> buf_;
};

struct Count {
  int usable = 0;
  int lost = 0;
  uint32_t last_ip = 0;
  Mac last_mac{};
};
void count_usable(void* ctx, uint32_t ip, const Mac& mac) {
  auto* c = static_cast<Count*>(ctx);
  c->usable++;
  c->last_ip = ip;
  c->last_mac = mac;
}
void count_lost(void* ctx, uint32_t ip) {
  auto* c = static_cast<Count*>(ctx);
  c->lost++;
  c->last_ip = ip;
}

// Parses from an aligned copy (as poll() does from its own buffer).
Count parse_copy(const uint8_t* data, size_t len, int ifindex) {
  std::vector<uint64_t> aligned((len + 7) / 8 + 1);
  if (len > 0) std::memcpy(aligned.data(), data, len);
  Count c;
  KernelNeighbours::parse(aligned.data(), len, ifindex, count_usable, &c, count_lost);
  return c;
}

int selftest() {
  const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  const uint8_t zero[6] = {};
  const uint32_t ip = 0x0a000102;
  const int ifx = 7;
  {
    MsgBuilder b;
    b.neigh(RTM_NEWNEIGH, ifx, NUD_REACHABLE, 0, ip, mac, 6);
    Count c = parse_copy(b.bytes().data(), b.bytes().size(), ifx);
    CHECK(c.usable == 1 && c.last_ip == ip && c.last_mac[5] == 0x55, "reachable not reported");
    c = parse_copy(b.bytes().data(), b.bytes().size(), ifx + 1);
    CHECK(c.usable == 0 && c.lost == 0, "other interface reported");
  }
  for (uint16_t st : {NUD_STALE, NUD_DELAY, NUD_PROBE, NUD_PERMANENT, NUD_NOARP}) {
    MsgBuilder b;
    b.neigh(RTM_NEWNEIGH, ifx, st, 0, ip, mac, 6);
    const Count c = parse_copy(b.bytes().data(), b.bytes().size(), ifx);
    CHECK(c.usable == 1, "state 0x%x not usable", st);
  }
  for (uint16_t st : {NUD_INCOMPLETE, NUD_NONE}) {
    MsgBuilder b;
    b.neigh(RTM_NEWNEIGH, ifx, st, 0, ip, mac, 6);
    const Count c = parse_copy(b.bytes().data(), b.bytes().size(), ifx);
    CHECK(c.usable == 0 && c.lost == 0, "state 0x%x reported", st);
  }
  {
    MsgBuilder b;  // several in one datagram, some to be ignored
    b.neigh(RTM_NEWNEIGH, ifx, NUD_FAILED, 0, ip, nullptr, 0);               // lost
    b.neigh(RTM_DELNEIGH, ifx, NUD_STALE, 0, ip, mac, 6);                    // lost
    b.neigh(RTM_NEWNEIGH, ifx, NUD_REACHABLE, NTF_PROXY, ip, mac, 6);        // proxy
    b.neigh(RTM_NEWNEIGH, ifx, NUD_REACHABLE, 0, ip, zero, 6);               // zero MAC
    b.neigh(RTM_NEWNEIGH, ifx, NUD_REACHABLE, 0, ip, mac, 4);                // short MAC
    b.neigh(RTM_NEWNEIGH, ifx, NUD_REACHABLE, 0, ip, nullptr, 0);            // no MAC
    b.neigh(RTM_NEWNEIGH, ifx, NUD_REACHABLE, 0, ip, mac, 6, AF_INET6, 16);  // IPv6
    b.neigh(RTM_NEWNEIGH, ifx, NUD_REACHABLE, 0, ip, mac, 6, AF_INET, 16);   // bad dst
    b.neigh(RTM_NEWNEIGH, ifx, NUD_REACHABLE, 0, ip + 1, mac, 6);            // usable
    const Count c = parse_copy(b.bytes().data(), b.bytes().size(), ifx);
    CHECK(c.lost == 2, "lost=%d, want 2", c.lost);
    CHECK(c.usable == 1 && c.last_ip == ip + 1, "usable=%d, want 1", c.usable);
  }
  {
    // Every truncation of a valid datagram: no crash, never more callbacks.
    MsgBuilder b;
    b.neigh(RTM_NEWNEIGH, ifx, NUD_REACHABLE, 0, ip, mac, 6);
    b.neigh(RTM_NEWNEIGH, ifx, NUD_FAILED, 0, ip, nullptr, 0);
    const auto& full = b.bytes();
    for (size_t len = 0; len <= full.size(); len++) {
      const Count c = parse_copy(full.data(), len, ifx);
      CHECK(c.usable + c.lost <= 2, "truncation at %zu gave %d callbacks", len, c.usable + c.lost);
    }
    // Random mutations (fixed seed): lengths, types and bytes corrupted.
    uint64_t x = 0x9e3779b97f4a7c15ull;
    auto rnd = [&x]() {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    for (int i = 0; i < 200000; i++) {
      std::vector<uint8_t> m = full;
      const int edits = 1 + static_cast<int>(rnd() % 4);
      for (int e = 0; e < edits; e++) m[rnd() % m.size()] = static_cast<uint8_t>(rnd());
      const size_t len = rnd() % (m.size() + 1);
      const Count c = parse_copy(m.data(), len, ifx);
      CHECK(c.usable + c.lost <= 2, "mutation %d gave %d callbacks", i, c.usable + c.lost);
    }
    CHECK(KernelNeighbours::parse(nullptr, 100, ifx, count_usable, nullptr, count_lost) == 0,
          "null buffer");
  }

  // open/close: a missing interface fails cleanly; nothing leaks.
  const int fds0 = count_fds();
  {
    KernelNeighbours kn;
    std::string err;
    CHECK(!kn.open("mn-no-such-if0", &err) && !err.empty(), "open of missing interface");
    CHECK(!kn.is_open() && kn.fd() < 0, "half-open after failure");
    CHECK(!kn.open("", &err), "open of empty name");
    CHECK(!kn.open(std::string(40, 'x'), &err), "open of long name");
    Mac m{};
    CHECK(!kn.lookup(ip, &m), "lookup on a closed object");
    CHECK(!kn.lookup_dump(ip, &m), "lookup_dump on a closed object");
    CHECK(!kn.request(ip, &err), "request on a closed object");
    CHECK(kn.poll(count_usable, nullptr, nullptr) == 0, "poll on a closed object");
    for (int i = 0; i < 100; i++) {
      CHECK(kn.open("lo", &err), "open lo: %s", err.c_str());
      CHECK(kn.fd() >= 0 && kn.ifindex() > 0, "fd/ifindex");
      if (i % 2 == 0) kn.close();
    }
  }
  CHECK(count_fds() == fds0, "fd leak: %d -> %d", fds0, count_fds());
  std::printf("selftest: %s\n", g_failures == 0 ? "ok" : "FAILED");
  return g_failures == 0 ? 0 : 1;
}

// ---- against the kernel -----------------------------------------------------

int resolve(const char* ifname, uint32_t ip, const Mac& want, int timeout_ms,
            KernelNeighbours::RequestMethod method, bool expect_miss) {
  const int fds0 = count_fds();
  {
    KernelNeighbours kn;
    std::string err;
    if (!kn.open(ifname, &err)) {
      std::fprintf(stderr, "FAIL open %s: %s\n", ifname, err.c_str());
      return 1;
    }
    kn.set_request_method(method);
    Mac mac{};
    if (expect_miss) {
      CHECK(!kn.lookup(ip, &mac), "lookup(%s) succeeded before any traffic (%s)",
            ip_str(ip).c_str(), mac_str(mac).c_str());
      CHECK(!kn.lookup_dump(ip, &mac), "lookup_dump(%s) succeeded before any traffic (%s)",
            ip_str(ip).c_str(), mac_str(mac).c_str());
    }
    const int64_t t0 = now_ms();
    CHECK(kn.request(ip, &err), "request(%s): %s", ip_str(ip).c_str(), err.c_str());
    const int64_t t_req = now_ms() - t0;
    CHECK(t_req < 500, "request() took %lld ms", static_cast<long long>(t_req));
    Seen seen;
    seen.want = ip;
    poll_for(&kn, &seen, timeout_ms, [](const Seen& s) { return s.usable; });
    const int64_t ms = now_ms() - t0;
    CHECK(seen.usable, "no usable notification for %s within %d ms", ip_str(ip).c_str(),
          timeout_ms);
    CHECK(!seen.usable || seen.mac == want, "notified MAC %s, want %s", mac_str(seen.mac).c_str(),
          mac_str(want).c_str());
    mac = Mac{};
    CHECK(kn.lookup(ip, &mac), "lookup(%s) failed after resolution", ip_str(ip).c_str());
    CHECK(mac == want, "lookup MAC %s, want %s", mac_str(mac).c_str(), mac_str(want).c_str());
    mac = Mac{};
    CHECK(kn.lookup_dump(ip, &mac) && mac == want, "lookup_dump MAC %s, want %s",
          mac_str(mac).c_str(), mac_str(want).c_str());
    CHECK(!kn.lookup_dump(ip + 1000, &mac), "lookup_dump of an absent address");
    // A request on a resolved entry is harmless and a lookup still hits.
    CHECK(kn.request(ip, &err), "second request: %s", err.c_str());
    CHECK(kn.lookup(ip, &mac) && mac == want, "lookup after second request");
    std::printf("resolved %s %s ms=%lld via=%s overruns=%llu\n", ip_str(ip).c_str(),
                mac_str(seen.mac).c_str(), static_cast<long long>(ms),
                method_name(kn.last_request_method()),
                static_cast<unsigned long long>(kn.overruns()));
  }
  CHECK(count_fds() == fds0, "fd leak: %d -> %d", fds0, count_fds());
  return g_failures == 0 ? 0 : 1;
}

int unresolvable(const char* ifname, uint32_t ip, int wait_ms,
                 KernelNeighbours::RequestMethod method) {
  const int fds0 = count_fds();
  {
    KernelNeighbours kn;
    std::string err;
    if (!kn.open(ifname, &err)) {
      std::fprintf(stderr, "FAIL open %s: %s\n", ifname, err.c_str());
      return 1;
    }
    kn.set_request_method(method);
    Mac mac{};
    CHECK(!kn.lookup(ip, &mac), "lookup(%s) succeeded: %s", ip_str(ip).c_str(),
          mac_str(mac).c_str());
    int64_t t0 = now_ms();
    CHECK(kn.request(ip, &err), "request(%s): %s", ip_str(ip).c_str(), err.c_str());
    CHECK(now_ms() - t0 < 500, "request() took %lld ms", static_cast<long long>(now_ms() - t0));
    Seen seen;
    seen.want = ip;
    poll_for(&kn, &seen, wait_ms, [](const Seen& s) { return s.usable || s.lost; });
    CHECK(!seen.usable, "a notification claimed %s for %s", mac_str(seen.mac).c_str(),
          ip_str(ip).c_str());
    CHECK(seen.lost, "no failure notification for %s within %d ms", ip_str(ip).c_str(), wait_ms);
    CHECK(!kn.lookup(ip, &mac), "lookup(%s) succeeded: %s", ip_str(ip).c_str(),
          mac_str(mac).c_str());
    CHECK(!kn.lookup_dump(ip, &mac), "lookup_dump(%s) succeeded: %s", ip_str(ip).c_str(),
          mac_str(mac).c_str());
    // Asking again (the kernel restarts probing from FAILED) is fine too.
    t0 = now_ms();
    CHECK(kn.request(ip, &err), "second request(%s): %s", ip_str(ip).c_str(), err.c_str());
    CHECK(now_ms() - t0 < 500, "second request() took %lld ms",
          static_cast<long long>(now_ms() - t0));
    poll_for(&kn, &seen, 300, [](const Seen& s) { return s.usable; });
    CHECK(!seen.usable, "a notification claimed a MAC for %s", ip_str(ip).c_str());
    std::printf("unresolvable %s: lost=%d via=%s\n", ip_str(ip).c_str(), seen.lost ? 1 : 0,
                method_name(kn.last_request_method()));
  }
  CHECK(count_fds() == fds0, "fd leak: %d -> %d", fds0, count_fds());
  return g_failures == 0 ? 0 : 1;
}

int usage() {
  std::fprintf(stderr,
               "usage: kernel_neighbours_check selftest\n"
               "       kernel_neighbours_check resolve IFACE IP MAC TIMEOUT_MS "
               "[auto|netlink|udp] [expect-miss]\n"
               "       kernel_neighbours_check unresolvable IFACE IP WAIT_MS [auto|netlink|udp]\n"
               "       kernel_neighbours_check lookup IFACE IP\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  if (cmd == "selftest" && argc == 2) return selftest();
  if (cmd == "resolve" && argc >= 6 && argc <= 8) {
    auto method = KernelNeighbours::RequestMethod::kAuto;
    bool expect_miss = false;
    for (int i = 6; i < argc; i++) {
      if (std::string(argv[i]) == "expect-miss") {
        expect_miss = true;
      } else {
        method = parse_method(argv[i]);
      }
    }
    return resolve(argv[2], parse_ip(argv[3]), parse_mac(argv[4]), std::atoi(argv[5]), method,
                   expect_miss);
  }
  if (cmd == "unresolvable" && (argc == 5 || argc == 6)) {
    return unresolvable(argv[2], parse_ip(argv[3]), std::atoi(argv[4]),
                        argc == 6 ? parse_method(argv[5]) : KernelNeighbours::RequestMethod::kAuto);
  }
  if (cmd == "lookup" && argc == 4) {
    KernelNeighbours kn;
    std::string err;
    if (!kn.open(argv[2], &err)) {
      std::fprintf(stderr, "open %s: %s\n", argv[2], err.c_str());
      return 1;
    }
    Mac mac{};
    if (!kn.lookup(parse_ip(argv[3]), &mac)) return 1;
    std::printf("%s\n", mac_str(mac).c_str());
    return 0;
  }
  return usage();
}
