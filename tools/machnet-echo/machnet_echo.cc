// machnet-echo: the raw engine as a UDP echo server or a ping-pong client.
// It is the reference the socket layer and the transport are measured
// against: no sockets API, no copies beyond the engine's own.
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/config.h"
#include "common/percentiles.h"
#include "engine/engine.h"
#include "engine/engine_cli.h"
#include "wire/headers.h"

using machnet::Config;
using machnet::engine::Engine;
using machnet::engine::EngineConfig;
using machnet::engine::UdpSocket;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

void usage(FILE* out) {
  fprintf(out,
          "usage: machnet-echo [engine options] --server [--port P] [--count N]\n"
          "       machnet-echo [engine options] --client --peer IP:PORT [client options]\n"
          "\n"
          "engine options (each also a machnet.conf key / MACHNET_* variable):\n"
          "  --config FILE      read engine settings from FILE (default: $MACHNET_CONFIG)\n"
          "  --device DEV       DPDK device, e.g. net_af_xdp0,iface=veth0 or\n"
          "                     net_memif0,role=server,socket=/run/m.sock,socket-abstract=no\n"
          "  --ip ADDR/PREFIX   the engine's IPv4 address\n"
          "  --gateway ADDR     default gateway\n"
          "  --mtu N            (default 1500)\n"
          "  --mac MAC          set the port's MAC (memif, ring)\n"
          "  --no-hugepages     run DPDK on ordinary pages\n"
          "  --set KEY=VALUE    any other engine key (repeatable)\n"
          "\n"
          "server: echoes every datagram to its sender until SIGINT/SIGTERM,\n"
          "  --count N datagrams, or --duration S seconds.\n"
          "  --port P           UDP port (default 7)\n"
          "\n"
          "client: ping-pong, one datagram in flight.\n"
          "  --peer IP:PORT     the echo server\n"
          "  --port P           local port (default: ephemeral)\n"
          "  --size N           payload bytes (default 64); --sizes 1,1472,8000 cycles sizes\n"
          "  --count N          round trips (default 10000) or --duration S\n"
          "  --warmup N         round trips not measured (default 100)\n"
          "  --timeout-ms T     a reply later than this counts as lost (default 1000)\n"
          "  --verify           check every reply byte for byte (default on; --no-verify)\n"
          "  --samples FILE     write every measured round trip (us, one per line) to FILE\n"
          "                     at the end (tools/bench --report plots them)\n"
          "\n"
          "baseline: --kernel runs the same loop over a kernel UDP socket bound to --ip\n"
          "  (blocking receive; --busy-poll spins on non-blocking receives).\n"
          "Exit status: 0 when every reply came back intact, 1 otherwise, 2 on bad usage.\n");
}

bool parse_peer(const std::string& s, uint32_t* ip, uint16_t* port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  unsigned long p = std::strtoul(s.c_str() + colon + 1, nullptr, 10);
  if (p == 0 || p > 65535) return false;
  *port = static_cast<uint16_t>(p);
  return machnet::wire::parse_ipv4(s.substr(0, colon), ip);
}

// Payload pattern: a function of the sequence number and offset, so a reply
// from an earlier round trip or a corrupted byte is caught.
void fill(uint8_t* buf, size_t len, uint64_t seq) {
  for (size_t i = 0; i < len; i++) buf[i] = static_cast<uint8_t>((seq * 131 + i * 7 + 1) & 0xff);
  if (len >= 8) memcpy(buf, &seq, 8);
}

// The two datapaths machnet-echo measures with the same loop: the engine, and
// kernel UDP sockets (--kernel) as the baseline.
class EchoIo {
 public:
  virtual ~EchoIo() = default;
  virtual int bind(uint16_t port) = 0;  // 0 or -errno
  virtual int send(uint32_t ip, uint16_t port, const uint8_t* data, size_t len) = 0;
  // Returns the datagram length, or -EAGAIN when nothing came (soon).
  virtual ssize_t recv(uint8_t* buf, size_t len, uint32_t* ip, uint16_t* port) = 0;
  virtual void poll() {}
  virtual uint64_t now_ns() = 0;
  virtual uint32_t local_ip() const = 0;
  virtual void print_stats(FILE*) {}
  virtual void close() = 0;
};

class EngineIo : public EchoIo {
 public:
  explicit EngineIo(Engine& e) : e_(e) {}
  int bind(uint16_t port) override { return e_.udp_bind(port, &sock_); }
  int send(uint32_t ip, uint16_t port, const uint8_t* data, size_t len) override {
    return e_.udp_sendto(sock_, ip, port, data, len);
  }
  ssize_t recv(uint8_t* buf, size_t len, uint32_t* ip, uint16_t* port) override {
    return e_.udp_recvfrom(sock_, buf, len, ip, port);
  }
  void poll() override { e_.poll(); }
  uint64_t now_ns() override { return e_.now_ns(); }
  uint32_t local_ip() const override { return e_.ip(); }
  void print_stats(FILE* out) override { e_.print_counters(out); }
  void close() override { e_.udp_close(sock_); }

 private:
  Engine& e_;
  UdpSocket* sock_ = nullptr;
};

// Kernel UDP socket. Blocking receive with a short timeout by default (what
// an ordinary program does); --busy-poll spins on non-blocking receives.
class KernelIo : public EchoIo {
 public:
  KernelIo(uint32_t bind_ip, bool busy_poll) : ip_(bind_ip), busy_(busy_poll) {}
  int bind(uint16_t port) override {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd_ < 0) return -errno;
    int sz = 4 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    timeval tv{0, 10000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(ip_);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return -errno;
    return 0;
  }
  int send(uint32_t ip, uint16_t port, const uint8_t* data, size_t len) override {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(ip);
    ssize_t n = sendto(fd_, data, len, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    return n < 0 ? -errno : 0;
  }
  ssize_t recv(uint8_t* buf, size_t len, uint32_t* ip, uint16_t* port) override {
    sockaddr_in a{};
    socklen_t alen = sizeof(a);
    ssize_t n =
        recvfrom(fd_, buf, len, busy_ ? MSG_DONTWAIT : 0, reinterpret_cast<sockaddr*>(&a), &alen);
    if (n < 0) return errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
    *ip = ntohl(a.sin_addr.s_addr);
    *port = ntohs(a.sin_port);
    return n;
  }
  uint64_t now_ns() override {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
  }
  uint32_t local_ip() const override { return ip_; }
  void close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  uint32_t ip_;
  bool busy_;
  int fd_ = -1;
};

int run_server(EchoIo& eng, uint16_t port, uint64_t count, double duration_s) {
  int rc = eng.bind(port);
  if (rc != 0) {
    fprintf(stderr, "machnet-echo: bind port %u: %s\n", port, strerror(-rc));
    return 1;
  }
  printf("machnet-echo: listening on %s:%u\n", machnet::wire::format_ipv4(eng.local_ip()).c_str(),
         port);
  fflush(stdout);
  std::vector<uint8_t> buf(65536);
  uint64_t echoed = 0;
  uint64_t deadline = duration_s > 0 ? eng.now_ns() + static_cast<uint64_t>(duration_s * 1e9) : 0;
  while (!g_stop && (count == 0 || echoed < count)) {
    eng.poll();
    uint32_t ip;
    uint16_t p;
    ssize_t n;
    while ((n = eng.recv(buf.data(), buf.size(), &ip, &p)) >= 0) {
      int s;
      while ((s = eng.send(ip, p, buf.data(), static_cast<size_t>(n))) == -EAGAIN) eng.poll();
      if (s != 0) fprintf(stderr, "machnet-echo: send: %s\n", strerror(-s));
      echoed++;
    }
    if (deadline != 0 && eng.now_ns() > deadline) break;
  }
  // Let the last replies (and any ARP they wait on) leave.
  uint64_t drain_until = eng.now_ns() + 50'000'000;
  while (eng.now_ns() < drain_until) eng.poll();
  printf("machnet-echo: echoed %" PRIu64 " datagrams\n", echoed);
  eng.print_stats(stdout);
  eng.close();
  return 0;
}

int run_client(EchoIo& eng, uint32_t peer_ip, uint16_t peer_port, uint16_t local_port,
               const std::vector<size_t>& sizes, uint64_t count, double duration_s, uint64_t warmup,
               uint64_t timeout_ms, bool verify, const std::string& samples_path) {
  int rc = eng.bind(local_port);
  if (rc != 0) {
    fprintf(stderr, "machnet-echo: bind port %u: %s\n", local_port, strerror(-rc));
    return 1;
  }
  size_t max_size = *std::max_element(sizes.begin(), sizes.end());
  std::vector<uint8_t> tx(std::max<size_t>(max_size, 8)), rx(65536);
  std::vector<uint64_t> rtts;
  rtts.reserve(count > 0 ? count : 1 << 20);
  uint64_t lost = 0, bad = 0, stale = 0, done = 0;
  uint64_t timeout_ns = timeout_ms * 1'000'000;
  uint64_t start = eng.now_ns();
  uint64_t end = duration_s > 0 ? start + static_cast<uint64_t>(duration_s * 1e9) : 0;
  for (uint64_t seq = 0; !g_stop; seq++) {
    if (end != 0 ? eng.now_ns() >= end : done >= count + warmup) break;
    size_t len = sizes[seq % sizes.size()];
    fill(tx.data(), len, seq);
    uint64_t t0 = eng.now_ns();
    while ((rc = eng.send(peer_ip, peer_port, tx.data(), len)) == -EAGAIN) eng.poll();
    if (rc != 0) {
      fprintf(stderr, "machnet-echo: send: %s\n", strerror(-rc));
      return 1;
    }
    bool got = false;
    while (!got && !g_stop) {
      eng.poll();
      uint32_t ip;
      uint16_t port;
      ssize_t n = eng.recv(rx.data(), rx.size(), &ip, &port);
      uint64_t now = eng.now_ns();
      if (n >= 0) {
        uint64_t rseq = ~uint64_t{0};
        if (n >= 8) memcpy(&rseq, rx.data(), 8);
        if (len >= 8 && rseq != seq) {
          stale++;  // a late reply to an earlier, timed-out round trip
          continue;
        }
        got = true;
        if (verify && (static_cast<size_t>(n) != len || ip != peer_ip || port != peer_port ||
                       memcmp(rx.data(), tx.data(), len) != 0)) {
          bad++;
          if (bad <= 5)
            fprintf(stderr, "machnet-echo: reply %" PRIu64 " differs (%zd bytes, sent %zu)\n", seq,
                    n, len);
        }
        if (done >= warmup) rtts.push_back(now - t0);
        done++;
      } else if (now - t0 > timeout_ns) {
        lost++;
        done++;
        if (lost <= 5)
          fprintf(stderr, "machnet-echo: reply %" PRIu64 " lost (%zu bytes)\n", seq, len);
        break;
      }
    }
  }
  double secs = static_cast<double>(eng.now_ns() - start) / 1e9;
  size_t samples = rtts.size();
  double avg = 0;
  for (uint64_t r : rtts) avg += static_cast<double>(r);
  avg = samples ? avg / static_cast<double>(samples) / 1000.0 : 0;
  // Written after the loop, in measurement order: no I/O while measuring.
  if (!samples_path.empty()) {
    FILE* f = fopen(samples_path.c_str(), "w");
    if (f == nullptr) {
      fprintf(stderr, "machnet-echo: --samples %s: %s\n", samples_path.c_str(), strerror(errno));
      return 1;
    }
    for (uint64_t r : rtts) fprintf(f, "%.3f\n", static_cast<double>(r) / 1000.0);
    if (fclose(f) != 0) {
      fprintf(stderr, "machnet-echo: --samples %s: %s\n", samples_path.c_str(), strerror(errno));
      return 1;
    }
  }
  machnet::LatencySummary pct = machnet::summarize_ns(rtts);
  printf("machnet-echo: %" PRIu64 " round trips in %.2f s, sizes", done, secs);
  for (size_t s : sizes) printf(" %zu", s);
  printf(" B, lost %" PRIu64 ", bad %" PRIu64 ", late %" PRIu64 "\n", lost, bad, stale);
  printf("rtt_us samples %zu avg %.2f p50 %.2f p99 %.2f p99.9 %.2f\n", samples, avg, pct.p50_us,
         pct.p99_us, pct.p999_us);
  eng.print_stats(stdout);
  eng.close();
  return (lost == 0 && bad == 0 && done > 0) ? 0 : 1;
}

}  // namespace

constexpr const char* kProg = "machnet-echo";

int main(int argc, char** argv) {
  Config cfg;
  std::string err;
  machnet::cli::EngineOptions engine_opts;
  bool server = false, client = false, verify = true, kernel = false, busy_poll = false;
  std::string peer, samples_path;
  uint16_t port = 0;
  bool port_set = false;
  uint64_t count = 0, warmup = 100, timeout_ms = 1000;
  bool count_set = false;
  double duration = 0;
  std::vector<size_t> sizes = {64};

  enum {
    kPeer = 256,
    kSizes,
    kWarmup,
    kTimeout,
    kNoVerify,
    kDuration,
    kKernel,
    kBusyPoll,
    kSamples
  };
  const std::vector<option> opts =
      machnet::cli::with_engine_options({{"server", no_argument, nullptr, 's'},
                                         {"client", no_argument, nullptr, 'c'},
                                         {"peer", required_argument, nullptr, kPeer},
                                         {"port", required_argument, nullptr, 'p'},
                                         {"size", required_argument, nullptr, kSizes},
                                         {"sizes", required_argument, nullptr, kSizes},
                                         {"count", required_argument, nullptr, 'n'},
                                         {"duration", required_argument, nullptr, kDuration},
                                         {"warmup", required_argument, nullptr, kWarmup},
                                         {"timeout-ms", required_argument, nullptr, kTimeout},
                                         {"verify", no_argument, nullptr, 'v'},
                                         {"no-verify", no_argument, nullptr, kNoVerify},
                                         {"kernel", no_argument, nullptr, kKernel},
                                         {"busy-poll", no_argument, nullptr, kBusyPoll},
                                         {"samples", required_argument, nullptr, kSamples},
                                         {"help", no_argument, nullptr, 'h'}});
  int c;
  while ((c = getopt_long(argc, argv, "scp:n:vh", opts.data(), nullptr)) != -1) {
    int engine = machnet::cli::engine_option(c, "machnet-echo", optarg, &engine_opts);
    if (engine < 0) return 2;
    if (engine > 0) continue;
    switch (c) {
      case kSamples:
        samples_path = optarg;
        break;
      case 's':
        server = true;
        break;
      case 'c':
        client = true;
        break;
      case kPeer:
        peer = optarg;
        break;
      case 'p':
        if (!machnet::cli::number(kProg, "--port", optarg, 0, 65535, &port)) return 2;
        port_set = true;
        break;
      case kSizes: {
        sizes.clear();
        std::string s = optarg;
        for (size_t b = 0; b <= s.size();) {
          size_t e = s.find(',', b);
          if (e == std::string::npos) e = s.size();
          size_t v = 0;
          if (!machnet::cli::number(kProg, "--sizes", s.substr(b, e - b).c_str(), 0,
                                    machnet::wire::kMaxUdpPayload, &v))
            return 2;
          sizes.push_back(v);
          b = e + 1;
        }
        break;
      }
      case 'n':
        if (!machnet::cli::number(kProg, "--count", optarg, 0, UINT64_MAX, &count)) return 2;
        count_set = true;
        break;
      case kDuration:
        if (!machnet::cli::real(kProg, "--duration", optarg, 0.001, 86400, &duration)) return 2;
        break;
      case kWarmup:
        if (!machnet::cli::number(kProg, "--warmup", optarg, 0, UINT64_MAX, &warmup)) return 2;
        break;
      case kTimeout:
        if (!machnet::cli::number(kProg, "--timeout-ms", optarg, 1, 3600000, &timeout_ms)) return 2;
        break;
      case 'v':
        verify = true;
        break;
      case kNoVerify:
        verify = false;
        break;
      case kKernel:
        kernel = true;
        break;
      case kBusyPoll:
        busy_poll = true;
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (server == client) {
    fprintf(stderr, "machnet-echo: say --server or --client\n");
    usage(stderr);
    return 2;
  }
  EngineConfig ec;
  if (!machnet::cli::load_engine_config("machnet-echo", engine_opts, &cfg, &ec)) return 2;
  uint32_t peer_ip = 0;
  uint16_t peer_port = 0;
  if (client && !parse_peer(peer, &peer_ip, &peer_port)) {
    fprintf(stderr, "machnet-echo: --client needs --peer IP:PORT, got '%s'\n", peer.c_str());
    return 2;
  }

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  std::unique_ptr<Engine> eng;
  std::unique_ptr<EchoIo> io;
  if (kernel) {
    // Baseline: the same loop over a kernel socket bound to --ip (or any).
    io = std::make_unique<KernelIo>(ec.ip, busy_poll);
    printf("machnet-echo: kernel UDP socket%s\n", busy_poll ? " (busy polling)" : "");
  } else {
    eng = Engine::create(ec, &err);
    if (!eng) {
      fprintf(stderr, "machnet-echo: %s\n", err.c_str());
      return 1;
    }
    printf("machnet-echo: engine up: %s\n", eng->describe().c_str());
    io = std::make_unique<EngineIo>(*eng);
  }
  fflush(stdout);
  int rc;
  if (server) {
    rc = run_server(*io, port_set ? port : 7, count, duration);
  } else {
    if (!count_set && duration == 0) count = 10000;
    rc = run_client(*io, peer_ip, peer_port, port, sizes, count, duration, warmup, timeout_ms,
                    verify, samples_path);
  }
  fflush(stdout);
  return rc;
}
