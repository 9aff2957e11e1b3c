// machnet-kv-server: a UDP key-value server (the binary format of
// kv_proto.h). Three datapaths, one store and one request handler:
//   default   the sockets API, one recvmsg and one sendmsg per request (what
//             an ordinary program does; run it under machnet-run to offload)
//   --batch N recvmmsg/sendmmsg, up to N requests per call
//   --raw     the engine's own API (no sockets): poll, udp_recvfrom,
//             udp_sendv batched until the burst is answered
// Single-threaded: the figures are per server core.
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/config.h"
#include "engine/engine.h"
#include "engine/engine_cli.h"
#include "machnet-kv/kv_proto.h"
#include "wire/headers.h"

using machnet::Config;
using machnet::engine::Engine;
using machnet::engine::EngineConfig;
using machnet::engine::UdpSocket;
namespace kv = machnet::kv;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

void usage(FILE* out) {
  fprintf(out,
          "usage: machnet-kv-server [--listen IP:PORT] [--batch N] [store options]\n"
          "       machnet-kv-server --raw [engine options] [--listen IP:PORT] [store options]\n"
          "\n"
          "  --listen IP:PORT   address to serve (default 0.0.0.0:7400; --raw: the port)\n"
          "  --batch N          recvmmsg/sendmmsg with up to N datagrams per call\n"
          "                     (default: one recvmsg and one sendmsg per request)\n"
          "  --raw              the engine's own API instead of sockets\n"
          "  --keys N           store up to N keys (default 100000; N x --max-value bytes\n"
          "                     are allocated at start)\n"
          "  --max-value B      largest value in bytes (default 1024)\n"
          "  --duration S       stop after S seconds (default: at SIGINT/SIGTERM)\n"
          "\n"
          "engine options (--raw; each also a machnet.conf key / MACHNET_* variable):\n"
          "  --config FILE, --device DEV, --ip ADDR/PREFIX, --gateway ADDR, --mtu N,\n"
          "  --mac MAC, --no-hugepages, --set KEY=VALUE (see machnet-echo(1))\n"
          "Exit status: 0 after a clean stop, 1 on a runtime error, 2 on bad usage.\n");
}

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

struct Totals {
  kv::ServerCounters c;
  uint64_t replies = 0, send_errors = 0;
};

void print_totals(const Totals& t) {
  printf(
      "machnet-kv-server: gets %" PRIu64 " (hits %" PRIu64 ", misses %" PRIu64 "), sets %" PRIu64
      ", errors %" PRIu64 ", dropped %" PRIu64 ", replies %" PRIu64 ", send errors %" PRIu64 "\n",
      t.c.gets, t.c.hits, t.c.misses, t.c.sets, t.c.errors, t.c.dropped, t.replies, t.send_errors);
}

int open_socket(uint32_t ip, uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return -errno;
  int sz = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  // Wake up now and then to see --duration (a signal ends a wait at once).
  timeval tv{0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(ip);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

// One recvmsg and one sendmsg per request.
int serve_sockets(int fd, kv::Store& store, uint64_t deadline, Totals* t) {
  size_t cap = kv::kHeaderLen + store.max_value();
  std::vector<uint8_t> in(65536), out(cap);
  sockaddr_in peer{};
  iovec riov{in.data(), in.size()};
  iovec wiov{out.data(), 0};
  while (!g_stop) {
    msghdr m{};
    m.msg_name = &peer;
    m.msg_namelen = sizeof(peer);
    m.msg_iov = &riov;
    m.msg_iovlen = 1;
    ssize_t n = recvmsg(fd, &m, 0);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        fprintf(stderr, "machnet-kv-server: recvmsg: %s\n", strerror(errno));
        return 1;
      }
      if (deadline != 0 && mono_ns() > deadline) break;
      continue;
    }
    size_t r = kv::handle(store, in.data(), static_cast<size_t>(n), out.data(), cap, &t->c);
    if (r == 0) continue;
    wiov.iov_len = r;
    msghdr w{};
    w.msg_name = &peer;
    w.msg_namelen = sizeof(peer);
    w.msg_iov = &wiov;
    w.msg_iovlen = 1;
    if (sendmsg(fd, &w, 0) < 0)
      t->send_errors++;
    else
      t->replies++;
    if (deadline != 0 && (t->replies & 1023) == 0 && mono_ns() > deadline) break;
  }
  return 0;
}

// recvmmsg/sendmmsg: up to batch requests per call each way.
int serve_batched(int fd, kv::Store& store, unsigned batch, uint64_t deadline, Totals* t) {
  size_t cap = kv::kHeaderLen + store.max_value();
  const size_t kIn = 2048;  // requests are at most a header and --max-value
  std::vector<uint8_t> in(batch * kIn), out(batch * cap);
  std::vector<sockaddr_in> peers(batch);
  std::vector<iovec> riov(batch), wiov(batch);
  std::vector<mmsghdr> rm(batch), wm(batch);
  for (unsigned i = 0; i < batch; i++) {
    riov[i] = {&in[i * kIn], kIn};
    wiov[i] = {&out[i * cap], 0};
  }
  while (!g_stop) {
    for (unsigned i = 0; i < batch; i++) {
      rm[i] = {};
      rm[i].msg_hdr.msg_name = &peers[i];
      rm[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      rm[i].msg_hdr.msg_iov = &riov[i];
      rm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, rm.data(), batch, MSG_WAITFORONE, nullptr);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        fprintf(stderr, "machnet-kv-server: recvmmsg: %s\n", strerror(errno));
        return 1;
      }
      if (deadline != 0 && mono_ns() > deadline) break;
      continue;
    }
    unsigned k = 0;
    for (int i = 0; i < n; i++) {
      size_t r = kv::handle(store, static_cast<uint8_t*>(riov[i].iov_base), rm[i].msg_len,
                            &out[k * cap], cap, &t->c);
      if (r == 0) continue;
      wiov[k].iov_base = &out[k * cap];
      wiov[k].iov_len = r;
      wm[k] = {};
      wm[k].msg_hdr.msg_name = &peers[i];
      wm[k].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      wm[k].msg_hdr.msg_iov = &wiov[k];
      wm[k].msg_hdr.msg_iovlen = 1;
      k++;
    }
    for (unsigned done = 0; done < k;) {
      int s = sendmmsg(fd, wm.data() + done, k - done, 0);
      if (s <= 0) {
        t->send_errors += k - done;  // the rest of this batch
        break;
      }
      done += static_cast<unsigned>(s);
      t->replies += static_cast<unsigned>(s);
    }
    if (deadline != 0 && mono_ns() > deadline) break;
  }
  return 0;
}

// The engine's API: a burst in, its replies batched out with one flush.
int serve_raw(Engine& eng, uint16_t port, kv::Store& store, uint64_t deadline, Totals* t) {
  UdpSocket* sock = nullptr;
  int rc = eng.udp_bind(port, &sock);
  if (rc != 0) {
    fprintf(stderr, "machnet-kv-server: bind port %u: %s\n", port, strerror(-rc));
    return 1;
  }
  printf("machnet-kv-server: listening on %s:%u (raw engine)\n",
         machnet::wire::format_ipv4(eng.ip()).c_str(), port);
  fflush(stdout);
  size_t cap = kv::kHeaderLen + store.max_value();
  std::vector<uint8_t> in(65536), out(cap);
  uint64_t iter = 0;
  while (!g_stop) {
    eng.poll();
    uint32_t ip;
    uint16_t p;
    ssize_t n;
    bool any = false;
    while ((n = eng.udp_recvfrom(sock, in.data(), in.size(), &ip, &p)) >= 0) {
      size_t r = kv::handle(store, in.data(), static_cast<size_t>(n), out.data(), cap, &t->c);
      if (r == 0) continue;
      iovec v{out.data(), r};
      int s;
      while ((s = eng.udp_sendv(sock, ip, p, &v, 1, false)) == -EAGAIN) eng.flush_tx();
      if (s != 0)
        t->send_errors++;
      else
        t->replies++;
      any = true;
    }
    if (any) eng.flush_tx();
    if (deadline != 0 && (++iter & 1023) == 0 && eng.now_ns() > deadline) break;
  }
  // Let the last replies (and any ARP they wait on) leave.
  uint64_t drain_until = eng.now_ns() + 50'000'000;
  while (eng.now_ns() < drain_until) eng.poll();
  eng.udp_close(sock);
  return 0;
}

}  // namespace

constexpr const char* kProg = "machnet-kv-server";

int main(int argc, char** argv) {
  machnet::cli::EngineOptions engine_opts;
  std::string listen = "0.0.0.0:7400";
  bool raw = false;
  unsigned long batch = 0, keys = 100000, max_value = 1024;
  double duration = 0;
  enum { kListen = 256, kBatch, kRaw, kKeys, kMaxValue, kDuration };
  const std::vector<option> opts =
      machnet::cli::with_engine_options({{"listen", required_argument, nullptr, kListen},
                                         {"batch", required_argument, nullptr, kBatch},
                                         {"raw", no_argument, nullptr, kRaw},
                                         {"keys", required_argument, nullptr, kKeys},
                                         {"max-value", required_argument, nullptr, kMaxValue},
                                         {"duration", required_argument, nullptr, kDuration},
                                         {"help", no_argument, nullptr, 'h'}});
  int c;
  while ((c = getopt_long(argc, argv, "h", opts.data(), nullptr)) != -1) {
    int engine = machnet::cli::engine_option(c, "machnet-kv-server", optarg, &engine_opts);
    if (engine < 0) return 2;
    if (engine > 0) continue;
    switch (c) {
      case kListen:
        listen = optarg;
        break;
      case kBatch:
        if (!machnet::cli::number(kProg, "--batch", optarg, 1, 1024, &batch)) return 2;
        break;
      case kRaw:
        raw = true;
        break;
      case kKeys:
        if (!machnet::cli::number(kProg, "--keys", optarg, 1, 1UL << 26, &keys)) return 2;
        break;
      case kMaxValue:
        if (!machnet::cli::number(kProg, "--max-value", optarg, 1, 8192, &max_value)) return 2;
        break;
      case kDuration:
        if (!machnet::cli::real(kProg, "--duration", optarg, 0.001, 86400, &duration)) return 2;
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "machnet-kv-server: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  uint32_t ip = 0;
  uint16_t port = 0;
  if (kv::parse_endpoint(listen, &ip, &port) != 0) {
    fprintf(stderr, "machnet-kv-server: --listen expects IP:PORT, got '%s'\n", listen.c_str());
    return 2;
  }
  if (raw && batch != 0) {
    fprintf(stderr, "machnet-kv-server: --batch is for sockets; --raw always batches\n");
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: a signal ends a blocking receive
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  kv::Store store(static_cast<uint32_t>(keys), static_cast<uint32_t>(max_value));
  Totals t;
  int rc;
  if (raw) {
    Config cfg;
    EngineConfig ec;
    std::string err;
    if (!machnet::cli::load_engine_config("machnet-kv-server", engine_opts, &cfg, &ec)) return 2;
    std::unique_ptr<Engine> eng = Engine::create(ec, &err);
    if (!eng) {
      fprintf(stderr, "machnet-kv-server: %s\n", err.c_str());
      return 1;
    }
    printf("machnet-kv-server: engine up: %s\n", eng->describe().c_str());
    uint64_t deadline = duration > 0 ? eng->now_ns() + static_cast<uint64_t>(duration * 1e9) : 0;
    rc = serve_raw(*eng, port, store, deadline, &t);
    print_totals(t);
    eng->print_counters(stdout);
  } else {
    if (!engine_opts.overrides.empty()) {
      fprintf(stderr, "machnet-kv-server: engine options need --raw\n");
      return 2;
    }
    int fd = open_socket(ip, port);
    if (fd < 0) {
      fprintf(stderr, "machnet-kv-server: bind %s: %s\n", listen.c_str(), strerror(-fd));
      return 1;
    }
    printf("machnet-kv-server: listening on %s (%s)\n", listen.c_str(),
           batch ? "recvmmsg/sendmmsg" : "recvmsg/sendmsg");
    fflush(stdout);
    uint64_t deadline = duration > 0 ? mono_ns() + static_cast<uint64_t>(duration * 1e9) : 0;
    rc = batch ? serve_batched(fd, store, static_cast<unsigned>(batch), deadline, &t)
               : serve_sockets(fd, store, deadline, &t);
    close(fd);
    print_totals(t);
  }
  fflush(stdout);
  return rc;
}
