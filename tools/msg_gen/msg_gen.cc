// machnet-msg-gen: Machnet's msg_gen, over the native message API.
//
// Server (no --remote_ip): listens on --local_port and echoes every message
// back on its flow. Client: connects to --remote_ip:--remote_port and keeps
// --msg_window messages of --msg_size bytes in flight; every reply is matched
// to its request by message id (replies come back in order on one flow) and,
// with --verify, compared byte for byte with the seeded pattern the request
// carried. Prints TX/RX rates and RTT percentiles once a second and a final
// summary; exits non-zero on any error or failed flow, naming the error.
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/percentiles.h"
#include "machnet/machnet.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

constexpr size_t kHeader = 16;        // message id, then its complement
constexpr size_t kPatternSpan = 251;  // prime: consecutive ids start at unrelated offsets

struct Options {
  std::string config;
  std::vector<std::string> overrides;
  std::string remote_ip;
  uint16_t local_port = 888;
  uint16_t remote_port = 888;
  size_t msg_size = 64;
  uint32_t msg_window = 8;
  bool verify = false;
  double duration_s = 10;
  double warmup_s = 1;
  uint64_t msg_count = 0;  // 0: run for --duration
  uint64_t seed = 1;
  int connect_timeout_ms = 2000;
};

void usage(FILE* out) {
  fprintf(out,
          "usage: machnet-msg-gen [engine options] [--local_port P]                (server)\n"
          "       machnet-msg-gen [engine options] --remote_ip IP [client options] (client)\n"
          "\n"
          "engine options (also machnet.conf keys / MACHNET_* variables, see machnet(3)):\n"
          "  --config FILE        engine settings file (default: $MACHNET_CONFIG)\n"
          "  --device DEV         DPDK device (net_af_xdp0,iface=..., net_memif0,...)\n"
          "  --local_ip IP[/LEN]  the engine's address (prefix default 24)\n"
          "  --set KEY=VALUE      any other key, e.g. fault.rx_drop=0.01 (repeatable)\n"
          "\n"
          "  --local_port P       server: port to listen on (default 888)\n"
          "  --remote_ip IP       client: the server's address (no --remote_ip: server)\n"
          "  --remote_port P      client: the server's port (default 888)\n"
          "  --msg_size N         message bytes, >= 16 (default 64)\n"
          "  --msg_window W       messages in flight (default 8)\n"
          "  --verify             check every reply byte for byte\n"
          "  --duration S         seconds to run, warmup included (default 10)\n"
          "  --warmup S           first seconds not measured (default 1)\n"
          "  --msg_count N        stop after N replies instead (server: N messages)\n"
          "  --seed N             payload pattern seed (default 1)\n"
          "  --connect_timeout_ms T  (default 2000)\n"
          "Exit status: 0 when every reply came back intact, 1 on any error, 2 on bad usage.\n");
}

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

std::string ip_str(uint32_t a) {
  char b[32];
  snprintf(b, sizeof(b), "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
  return b;
}

std::string flow_str(const machnet_flow_t& f) {
  return ip_str(f.local_ip) + ":" + std::to_string(f.local_port) + " -> " + ip_str(f.remote_ip) +
         ":" + std::to_string(f.remote_port);
}

// The payload of message `id`: its id and complement in the header, then a
// window of a seeded random pattern that starts at an id-dependent offset.
class Pattern {
 public:
  Pattern(uint64_t seed, size_t msg_size) : bytes_(msg_size + kPatternSpan) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (uint8_t& b : bytes_) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      b = static_cast<uint8_t>(s >> 24);
    }
  }
  void fill(uint8_t* buf, size_t len, uint64_t id) const {
    uint64_t inv = ~id;
    memcpy(buf, &id, 8);
    memcpy(buf + 8, &inv, 8);
    memcpy(buf + kHeader, body(id), len - kHeader);
  }
  // Offset of the first wrong byte, or -1.
  long check(const uint8_t* buf, size_t len, uint64_t id) const {
    uint64_t inv = ~id;
    if (memcmp(buf, &id, 8) != 0) return 0;
    if (memcmp(buf + 8, &inv, 8) != 0) return 8;
    const uint8_t* want = body(id);
    if (memcmp(buf + kHeader, want, len - kHeader) == 0) return -1;
    for (size_t i = kHeader; i < len; i++)
      if (buf[i] != want[i - kHeader]) return static_cast<long>(i);
    return -1;
  }

 private:
  const uint8_t* body(uint64_t id) const { return bytes_.data() + (id % kPatternSpan); }
  std::vector<uint8_t> bytes_;
};

int report_flow_error(machnet_channel_t* ch, const machnet_flow_t& f, const char* what, int err,
                      uint64_t since_ns) {
  fprintf(stderr, "msg_gen: flow %s failed (%s): %s (%s)", flow_str(f).c_str(), what, strerror(err),
          machnet_last_error());
  if (since_ns != 0)
    fprintf(stderr, "; last reply %.3f s ago", static_cast<double>(mono_ns() - since_ns) / 1e9);
  machnet_flow_info_t info;
  if (machnet_flow_info(ch, &f, &info) == 0) {
    fprintf(stderr, "; state %s, error: %s, retransmits %" PRIu64 ", rto timeouts %" PRIu64,
            info.state, info.error, info.retransmits, info.rto_count);
  }
  fprintf(stderr, "\n");
  return 1;
}

int run_server(machnet_channel_t* ch, const Options& o) {
  if (machnet_listen(ch, nullptr, o.local_port) != 0) {
    fprintf(stderr, "msg_gen: listen on port %u: %s (%s)\n", o.local_port, strerror(errno),
            machnet_last_error());
    return 1;
  }
  printf("msg_gen: server listening on %s:%u\n", ip_str(machnet_local_ip()).c_str(), o.local_port);
  fflush(stdout);
  machnet_set_timeout(ch, 100);  // wake up to notice signals and the clock
  std::vector<uint8_t> buf(std::max<size_t>(o.msg_size, 64 << 10));
  uint64_t start = mono_ns(), end = start + static_cast<uint64_t>(o.duration_s * 1e9);
  uint64_t echoed = 0, bytes = 0, tick = start + 1'000'000'000u, tick_msgs = 0, tick_bytes = 0;
  bool timed = o.duration_s > 0 && o.msg_count == 0;
  while (!g_stop && (o.msg_count == 0 || echoed < o.msg_count) && (!timed || mono_ns() < end)) {
    machnet_flow_t f;
    ssize_t n = machnet_recv(ch, buf.data(), buf.size(), &f, 0);
    if (n > 0) {
      if (machnet_send(ch, &f, buf.data(), static_cast<size_t>(n), 0) != 0) {
        report_flow_error(ch, f, "echo", errno, 0);
        machnet_close(ch, &f);
        continue;
      }
      echoed++;
      bytes += static_cast<uint64_t>(n);
    } else if (n == 0) {
      printf("msg_gen: flow %s closed by the peer\n", flow_str(f).c_str());
      machnet_close(ch, &f);
    } else if (errno == EMSGSIZE) {
      ssize_t need = machnet_recv(ch, nullptr, 0, &f, MACHNET_PEEK);
      if (need > 0) buf.resize(static_cast<size_t>(need));
    } else if (errno != EAGAIN) {
      report_flow_error(ch, f, "receive", errno, 0);
      machnet_close(ch, &f);
    }
    uint64_t now = mono_ns();
    if (now >= tick) {
      uint64_t m = echoed - tick_msgs, b = bytes - tick_bytes;
      if (m != 0) {
        printf("msg_gen: echoed %" PRIu64 " msg/s %.3f Gbps\n", m,
               static_cast<double>(b) * 8 / 1e9);
        fflush(stdout);
      }
      tick_msgs = echoed;
      tick_bytes = bytes;
      tick = now + 1'000'000'000u;
    }
  }
  printf("msg_gen: server echoed %" PRIu64 " messages\n", echoed);
  machnet_print_stats(stdout);
  return 0;
}

int run_client(machnet_channel_t* ch, const Options& o) {
  machnet_flow_t flow;
  char local_ip[32];
  snprintf(local_ip, sizeof(local_ip), "%s", ip_str(machnet_local_ip()).c_str());
  if (machnet_connect(ch, nullptr, o.remote_ip.c_str(), o.remote_port, &flow,
                      o.connect_timeout_ms) != 0) {
    fprintf(stderr, "msg_gen: connect %s -> %s:%u failed: %s (%s)\n", local_ip, o.remote_ip.c_str(),
            o.remote_port, strerror(errno), machnet_last_error());
    return 1;
  }
  machnet_flow_info_t info{};
  machnet_flow_info(ch, &flow, &info);
  printf("msg_gen: flow %s established; msg_size %zu window %u%s; dead-peer bound %.3f s\n",
         flow_str(flow).c_str(), o.msg_size, o.msg_window, o.verify ? " verify" : "",
         static_cast<double>(info.dead_peer_bound_ns) / 1e9);
  fflush(stdout);

  Pattern pat(o.seed, o.msg_size);
  std::vector<uint8_t> tx(o.msg_size), rx(o.msg_size);
  std::vector<uint64_t> sent_at(o.msg_window);
  std::vector<uint64_t> all, tick_rtts;
  all.reserve(1 << 20);
  uint64_t next_id = 0, expect_id = 0, errors = 0, received = 0, measured = 0;
  uint64_t start = mono_ns();
  uint64_t warm_end = start + static_cast<uint64_t>(o.warmup_s * 1e9);
  uint64_t end = start + static_cast<uint64_t>(o.duration_s * 1e9);
  // Without warmup the measurement covers the whole run, first send included.
  uint64_t measure_start = o.warmup_s > 0 ? 0 : start, measure_end = 0, tx_measured = 0;
  uint64_t tick = start + 1'000'000'000u, tick_tx = 0, tick_rx = 0, last_reply = start;
  int rc = 0;
  bool stopping = false;
  unsigned idle_rounds = 0;
  // After the last send, wait for outstanding replies at most this long: a
  // dead peer is reported by the transport well within it.
  uint64_t drain_ns = info.dead_peer_bound_ns + 2'000'000'000u;
  uint64_t drain_end = 0;
  for (;;) {
    uint64_t now = mono_ns();
    if (!stopping && (g_stop || (o.msg_count != 0 ? received >= o.msg_count : now >= end))) {
      stopping = true;
      drain_end = now + drain_ns;
      if (measure_start != 0 && measure_end == 0) measure_end = now;
    }
    if (stopping && (next_id == expect_id || now >= drain_end)) break;
    // Keep the window full.
    while (!stopping && next_id - expect_id < o.msg_window &&
           (o.msg_count == 0 || next_id < o.msg_count)) {
      pat.fill(tx.data(), tx.size(), next_id);
      sent_at[next_id % o.msg_window] = mono_ns();
      if (machnet_send(ch, &flow, tx.data(), tx.size(), MACHNET_DONTWAIT) != 0) {
        if (errno == EAGAIN) break;
        rc = report_flow_error(ch, flow, "send", errno, last_reply);
        goto out;
      }
      if (measure_start != 0) tx_measured++;
      next_id++;
    }
    machnet_flow_t from;
    ssize_t n = machnet_recv(ch, rx.data(), rx.size(), &from, MACHNET_DONTWAIT);
    now = mono_ns();
    if (n < 0 && errno != EAGAIN) {
      rc = report_flow_error(ch, flow, "receive", errno, last_reply);
      goto out;
    }
    if (n == 0) {
      fprintf(stderr,
              "msg_gen: flow %s closed by the server with %" PRIu64 " replies outstanding\n",
              flow_str(flow).c_str(), next_id - expect_id);
      rc = 1;
      goto out;
    }
    if (n < 0) {
      // Nothing yet: give the CPU away now and then, in case the server (or
      // anything else) shares this core; free when nobody else is runnable.
      if ((++idle_rounds & 7) == 0) sched_yield();
    } else {
      last_reply = now;
      uint64_t id = 0;
      if (n >= 8) memcpy(&id, rx.data(), 8);
      if (static_cast<size_t>(n) != o.msg_size || id != expect_id) {
        if (++errors <= 5)
          fprintf(stderr,
                  "msg_gen: reply %" PRIu64 ": %zd bytes with id %" PRIu64
                  " (expected %zu bytes, id %" PRIu64 ")\n",
                  received, n, id, o.msg_size, expect_id);
      } else if (o.verify) {
        long bad = pat.check(rx.data(), rx.size(), id);
        if (bad >= 0 && ++errors <= 5)
          fprintf(stderr, "msg_gen: reply %" PRIu64 " differs from what was sent at byte %ld\n", id,
                  bad);
      }
      uint64_t rtt = now - sent_at[expect_id % o.msg_window];
      expect_id++;
      received++;
      tick_rtts.push_back(rtt);
      if (now >= warm_end) {
        if (measure_start == 0) measure_start = now;
        if (measure_end == 0) {
          all.push_back(rtt);
          measured++;
        }
      }
    }
    if (now >= tick) {
      machnet::LatencySummary pct = machnet::summarize_ns(tick_rtts);
      double secs = static_cast<double>(now - tick + 1'000'000'000u) / 1e9;
      uint64_t t = next_id - tick_tx, r = received - tick_rx;
      double bits = static_cast<double>(o.msg_size) * 8;
      printf(
          "[%6.1fs] TX %10.0f msg/s %7.3f Gbps | RX %10.0f msg/s %7.3f Gbps | RTT us p50 %.1f "
          "p99 %.1f p99.9 %.1f%s\n",
          static_cast<double>(now - start) / 1e9, static_cast<double>(t) / secs,
          static_cast<double>(t) * bits / secs / 1e9, static_cast<double>(r) / secs,
          static_cast<double>(r) * bits / secs / 1e9, pct.p50_us, pct.p99_us, pct.p999_us,
          now < warm_end ? " (warmup)" : "");
      fflush(stdout);
      tick_rtts.clear();
      tick_tx = next_id;
      tick_rx = received;
      tick = now + 1'000'000'000u;
    }
  }
out : {
  uint64_t outstanding = next_id - expect_id;
  if (measure_start != 0 && measure_end == 0) measure_end = mono_ns();
  double secs = measure_start != 0 ? static_cast<double>(measure_end - measure_start) / 1e9 : 0;
  double rate = secs > 0 ? static_cast<double>(measured) / secs : 0;
  double txrate = secs > 0 ? static_cast<double>(tx_measured) / secs : 0;
  double bits = static_cast<double>(o.msg_size) * 8;
  machnet::LatencySummary pct = machnet::summarize_ns(all);
  printf("msg_gen: summary: %" PRIu64 " messages sent, %" PRIu64 " replies, %" PRIu64
         " measured over %.2f s; msg_size %zu window %u\n",
         next_id, received, measured, secs, o.msg_size, o.msg_window);
  printf(
      "msg_gen: summary: TX %.1f msg/s %.3f Gbps | RX %.1f msg/s %.3f Gbps | RTT us p50 %.1f "
      "p99 %.1f p99.9 %.1f (%zu samples)\n",
      txrate, txrate * bits / 1e9, rate, rate * bits / 1e9, pct.p50_us, pct.p99_us, pct.p999_us,
      all.size());
  printf("msg_gen: summary: errors %" PRIu64 ", outstanding %" PRIu64 "%s\n", errors, outstanding,
         o.verify ? " (verified byte for byte)" : " (ids and sizes checked)");
  if (rc == 0 && outstanding != 0) {
    fprintf(stderr, "msg_gen: %" PRIu64 " replies never came back\n", outstanding);
    rc = 1;
  }
  if (errors != 0 || received == 0) rc = 1;
  if (rc == 0 && machnet_flow_info(ch, &flow, &info) == 0) {
    printf("msg_gen: flow srtt %.1f us, retransmits %" PRIu64 ", rto timeouts %" PRIu64 "\n",
           static_cast<double>(info.srtt_ns) / 1e3, info.retransmits, info.rto_count);
  }
  machnet_print_stats(stdout);
  printf("msg_gen: %s\n", rc == 0 ? "OK" : "FAILED");
  if (rc == 0) {
    machnet_close(ch, &flow);
  } else {
    machnet_abort(ch, &flow);
  }
}
  return rc;
}

bool parse_u64(const char* s, uint64_t max, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v > max) return false;
  *out = v;
  return true;
}

bool parse_secs(const char* s, double* out) {
  char* end = nullptr;
  double v = strtod(s, &end);
  if (*s == '\0' || *end != '\0' || !(v >= 0) || v > 1e6) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  enum {
    kConfig = 256,
    kDevice,
    kLocalIp,
    kSet,
    kLocalPort,
    kRemoteIp,
    kRemotePort,
    kMsgSize,
    kWindow,
    kVerify,
    kDuration,
    kWarmup,
    kCount,
    kSeed,
    kConnTimeout,
    kHelp
  };
  static const option opts[] = {{"config", required_argument, nullptr, kConfig},
                                {"device", required_argument, nullptr, kDevice},
                                {"local_ip", required_argument, nullptr, kLocalIp},
                                {"ip", required_argument, nullptr, kLocalIp},
                                {"set", required_argument, nullptr, kSet},
                                {"local_port", required_argument, nullptr, kLocalPort},
                                {"remote_ip", required_argument, nullptr, kRemoteIp},
                                {"remote_port", required_argument, nullptr, kRemotePort},
                                {"msg_size", required_argument, nullptr, kMsgSize},
                                {"msg_window", required_argument, nullptr, kWindow},
                                {"verify", no_argument, nullptr, kVerify},
                                {"duration", required_argument, nullptr, kDuration},
                                {"warmup", required_argument, nullptr, kWarmup},
                                {"msg_count", required_argument, nullptr, kCount},
                                {"seed", required_argument, nullptr, kSeed},
                                {"connect_timeout_ms", required_argument, nullptr, kConnTimeout},
                                {"help", no_argument, nullptr, kHelp},
                                {nullptr, 0, nullptr, 0}};
  int c;
  uint64_t v = 0;
  while ((c = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
    bool ok = true;
    switch (c) {
      case kConfig:
        o.config = optarg;
        break;
      case kDevice:
        o.overrides.push_back(std::string("device=") + optarg);
        break;
      case kLocalIp: {
        std::string ip = optarg;
        if (ip.find('/') == std::string::npos) ip += "/24";
        o.overrides.push_back("ip=" + ip);
        break;
      }
      case kSet:
        ok = strchr(optarg, '=') != nullptr;
        if (ok) o.overrides.push_back(optarg);
        break;
      case kLocalPort:
        ok = parse_u64(optarg, 65535, &v) && v != 0;
        o.local_port = static_cast<uint16_t>(v);
        break;
      case kRemoteIp:
        o.remote_ip = optarg;
        break;
      case kRemotePort:
        ok = parse_u64(optarg, 65535, &v) && v != 0;
        o.remote_port = static_cast<uint16_t>(v);
        break;
      case kMsgSize:
        ok = parse_u64(optarg, 1u << 30, &v) && v >= kHeader;
        o.msg_size = v;
        break;
      case kWindow:
        ok = parse_u64(optarg, 1u << 20, &v) && v != 0;
        o.msg_window = static_cast<uint32_t>(v);
        break;
      case kVerify:
        o.verify = true;
        break;
      case kDuration:
        ok = parse_secs(optarg, &o.duration_s);
        break;
      case kWarmup:
        ok = parse_secs(optarg, &o.warmup_s);
        break;
      case kCount:
        ok = parse_u64(optarg, UINT64_MAX, &o.msg_count);
        break;
      case kSeed:
        ok = parse_u64(optarg, UINT64_MAX, &o.seed);
        break;
      case kConnTimeout:
        ok = parse_u64(optarg, 3'600'000, &v);
        o.connect_timeout_ms = static_cast<int>(v);
        break;
      case kHelp:
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
    if (!ok) {
      const char* name = "?";
      for (const option* op = opts; op->name != nullptr; op++)
        if (op->val == c) name = op->name;
      fprintf(stderr, "msg_gen: bad value '%s' for --%s\n", optarg, name);
      return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "msg_gen: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  std::vector<const char*> ov;
  for (const std::string& s : o.overrides) ov.push_back(s.c_str());
  ov.push_back(nullptr);
  if (machnet_init_config(o.config.empty() ? nullptr : o.config.c_str(), ov.data()) != 0) {
    fprintf(stderr, "msg_gen: %s (%s)\n", machnet_last_error(), strerror(errno));
    return errno == EINVAL ? 2 : 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  machnet_channel_t* ch = machnet_attach();
  if (ch == nullptr) {
    fprintf(stderr, "msg_gen: attach: %s\n", machnet_last_error());
    return 1;
  }
  int rc = o.remote_ip.empty() ? run_server(ch, o) : run_client(ch, o);
  machnet_detach(ch);
  fflush(stdout);
  return rc;
}
