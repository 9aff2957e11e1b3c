// machnet-stat: what machnetd knows — attached processes and their queues,
// bound ports, counters, pools (like vma_stats for libvma). Asks the daemon
// for MN_CTL_STATS over its control socket; no DPDK. With --pid, one
// process's own engine and transport counters through its DPDK telemetry
// socket instead (process_stat.cc).
//
//   machnet-stat [--socket PATH] [--json] [-w|--watch SECONDS] [--count N]
//   machnet-stat --pid PID [--runtime-dir DIR] [--json] [-w SECONDS] [--count N]
#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/cli.h"
#include "ipc/control_client.h"
#include "ipc/control_protocol.h"
#include "json.h"
#include "process_stat.h"

namespace {

using machnet::stat::JsonParser;
using machnet::stat::JVal;

// ---- formatting ----

std::string human(double v) {
  const char* units[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (v >= 10000 && u < 4) {
    v /= 1000;
    u++;
  }
  char b[32];
  if (u == 0 && v == std::floor(v))
    std::snprintf(b, sizeof(b), "%.0f", v);
  else
    std::snprintf(b, sizeof(b), "%.1f%s", v, units[u]);
  return b;
}

std::string duration(double s) {
  uint64_t t = static_cast<uint64_t>(s);
  char b[48];
  if (t >= 86400)
    std::snprintf(b, sizeof(b), "%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m", t / 86400,
                  t % 86400 / 3600, t % 3600 / 60);
  else if (t >= 3600)
    std::snprintf(b, sizeof(b), "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", t / 3600, t % 3600 / 60,
                  t % 60);
  else if (t >= 60)
    std::snprintf(b, sizeof(b), "%" PRIu64 "m%02" PRIu64 "s", t / 60, t % 60);
  else
    std::snprintf(b, sizeof(b), "%.1fs", s);
  return b;
}

// Nonzero reasons of a {"name": count} object, "name count, ...".
std::string reasons(const JVal& drops) {
  std::string out;
  for (const auto& kv : drops.obj) {
    if (kv.second.u() == 0) continue;
    if (!out.empty()) out += ", ";
    out += kv.first + " " + std::to_string(kv.second.u());
  }
  return out;
}

struct Sample {
  double t = 0;
  std::map<std::string, uint64_t> v;  // "lease.1.rx_packets" -> value
};

double mono_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Per-second rate of `key` between two samples, or -1 when unknown.
double rate(const Sample* prev, const Sample& cur, const std::string& key) {
  if (prev == nullptr || cur.t <= prev->t) return -1;
  auto a = prev->v.find(key);
  auto b = cur.v.find(key);
  if (a == prev->v.end() || b == cur.v.end() || b->second < a->second) return -1;
  return static_cast<double>(b->second - a->second) / (cur.t - prev->t);
}

std::string rate_col(double r) {
  return r < 0 ? "-" : human(r);
}

void print(const JVal& root, const Sample* prev, Sample* cur) {
  const JVal& d = root["daemon"];
  cur->v["daemon.rx_packets"] = d["rx_packets"].u();
  cur->v["daemon.tx_packets"] = d["tx_packets"].u();
  cur->v["daemon.steered"] = d["steered"].u();
  std::string gw = d["gateway"].s().empty() ? "-" : d["gateway"].s();
  std::printf("machnetd pid %" PRId64 " (%s)  device %s (port %" PRIu64 ")  %s/%" PRIu64
              "  gw %s  mac %s  mtu %" PRIu64 "  up %s\n",
              d["pid"].i(), d["name"].s().c_str(), d["device"].s().c_str(), d["port_id"].u(),
              d["ip"].s().c_str(), d["prefix_len"].u(), gw.c_str(), d["mac"].s().c_str(),
              d["mtu"].u(), duration(d["uptime_s"].d()).c_str());
  std::printf("  socket %s  EAL prefix %s  hugepages free %" PRIu64 "  memzones %" PRIu64 "\n",
              d["socket"].s().c_str(), d["eal_prefix"].s().c_str(), d["hugepages_free"].u(),
              d["memzones"].u());
  std::printf("  heap %" PRIu64 " KiB, %" PRIu64 " KiB in %" PRIu64 " allocations\n",
              d["heap_bytes"].u() / 1024, d["heap_alloc_bytes"].u() / 1024,
              d["heap_alloc_count"].u());
  std::printf("  queues %" PRIu64 ": 1 daemon, %" PRIu64 " active, %" PRIu64 " free\n",
              d["queues"].u(), d["active_leases"].u(), d["free_leases"].u());
  double rx_r = rate(prev, *cur, "daemon.rx_packets");
  double st_r = rate(prev, *cur, "daemon.steered");
  std::printf("  daemon rx %s pkts%s  tx %s  from ring %s  steered %s%s (drops %s)\n",
              human(static_cast<double>(d["rx_packets"].u())).c_str(),
              rx_r >= 0 ? (" (" + human(rx_r) + "/s)").c_str() : "",
              human(static_cast<double>(d["tx_packets"].u())).c_str(),
              human(static_cast<double>(d["ring_rx"].u())).c_str(),
              human(static_cast<double>(d["steered"].u())).c_str(),
              st_r >= 0 ? (" (" + human(st_r) + "/s)").c_str() : "",
              human(static_cast<double>(d["steer_drops"].u())).c_str());
  std::printf("  arp rx %" PRIu64 " tx %" PRIu64 " learned %" PRIu64 "  icmp echo %" PRIu64
              " unreachable %" PRIu64 " (rate-limited %" PRIu64 ")  fragments %" PRIu64
              " reassembled %" PRIu64 "\n",
              d["arp_rx"].u(), d["arp_tx"].u(), d["arp_learned"].u(), d["icmp_echo_replies"].u(),
              d["icmp_unreachable_tx"].u(), d["icmp_rate_limited"].u(), d["fragments_rx"].u(),
              d["reassembled"].u());
  std::string dr = reasons(d["drops"]);
  std::printf("  drops %" PRIu64 "%s%s\n", d["drops_total"].u(), dr.empty() ? "" : ": ",
              dr.c_str());
  std::printf("  control: %" PRIu64 " connections, %" PRIu64 " requests, %" PRIu64
              " malformed, %" PRIu64 " refused; %" PRIu64 " attaches, %" PRIu64
              " reclaims, %" PRIu64 " mbufs swept, %" PRIu64 " unaccounted\n",
              d["ctl_connections"].u(), d["ctl_requests"].u(), d["ctl_malformed"].u(),
              d["ctl_denied"].u(), d["attaches"].u(), d["reclaims"].u(), d["mbufs_swept"].u(),
              d["mbufs_unaccounted"].u());
  std::printf("  crashed ring operations: %" PRIu64 " given back (%" PRIu64 " slots); %" PRIu64
              " times a busy ring or pool was skipped; %" PRIu64
              " frames deferred for one, %" PRIu64 " of them dropped after waiting\n",
              d["ring_repairs"].u(), d["ring_repair_slots"].u(), d["ring_busy"].u(),
              d["steer_deferred"].u(), d["deferred_expired"].u());
  std::printf("  wake-ups: %" PRIu64 " to parked leases, %" PRIu64
              " frames polled for them; %" PRIu64 " active leases\n",
              d["wakeups"].u(), d["parked_rx"].u(), d["active_leases"].u());

  std::printf("\n%-5s %-10s %-7s %-15s %10s %8s %10s %8s %9s %9s %7s  %s\n", "QUEUE", "STATE",
              "PID", "COMM", "RX_PKTS", "RX/s", "TX_PKTS", "TX/s", "STEER_IN", "STEER_OUT", "DROPS",
              "REASONS");
  for (const JVal& l : root["leases"].arr) {
    std::string q = std::to_string(l["queue"].u());
    std::string kr = "lease." + q + ".rx", kt = "lease." + q + ".tx";
    cur->v[kr] = l["rx_packets"].u();
    cur->v[kt] = l["tx_packets"].u();
    bool held = l["state"].s() != "free";
    std::printf(
        "%-5s %-10s %-7s %-15s %10s %8s %10s %8s %9s %9s %7s  %s\n", q.c_str(),
        l["state"].s().c_str(), held ? std::to_string(l["pid"].i()).c_str() : "-",
        held ? l["comm"].s().c_str() : "-", human(static_cast<double>(l["rx_packets"].u())).c_str(),
        rate_col(rate(prev, *cur, kr)).c_str(),
        human(static_cast<double>(l["tx_packets"].u())).c_str(),
        rate_col(rate(prev, *cur, kt)).c_str(),
        human(static_cast<double>(l["steered_in"].u())).c_str(),
        human(static_cast<double>(l["steered_out"].u())).c_str(),
        human(static_cast<double>(l["drops_total"].u())).c_str(), reasons(l["drops"]).c_str());
  }

  const JVal& ports = root["ports"];
  std::printf("\n%-6s %-5s %-7s %-15s %10s %8s %10s %10s\n", "PORT", "QUEUE", "PID", "COMM",
              "RX_DGRAMS", "RX/s", "RX_BYTES", "TX_DGRAMS");
  if (ports.arr.empty()) std::printf("(no ports bound)\n");
  for (const JVal& p : ports.arr) {
    std::string k = "port." + std::to_string(p["port"].u()) + ".rx";
    cur->v[k] = p["rx_datagrams"].u();
    if (p.has("members")) {
      // An SO_REUSEPORT group: a line for the group, one per member.
      std::printf("%-6" PRIu64 " SO_REUSEPORT group %" PRIu64 ": %zu member%s (uid %" PRIu64
                  "), %s datagrams in\n",
                  p["port"].u(), p["group"].u(), p["members"].arr.size(),
                  p["members"].arr.size() == 1 ? "" : "s", p["group_uid"].u(),
                  human(static_cast<double>(p["rx_datagrams"].u())).c_str());
      for (const JVal& m : p["members"].arr) {
        std::string mk = k + "." + std::to_string(m["queue"].u());
        cur->v[mk] = m["rx_datagrams"].u();
        std::printf("%-6" PRIu64 " %-5" PRIu64 " %-7" PRId64 " %-15s %10s %8s %10s %10s\n",
                    p["port"].u(), m["queue"].u(), m["pid"].i(), m["comm"].s().c_str(),
                    human(static_cast<double>(m["rx_datagrams"].u())).c_str(),
                    rate_col(rate(prev, *cur, mk)).c_str(),
                    human(static_cast<double>(m["rx_bytes"].u())).c_str(),
                    human(static_cast<double>(m["tx_datagrams"].u())).c_str());
      }
      continue;
    }
    std::printf("%-6" PRIu64 " %-5" PRIu64 " %-7" PRId64 " %-15s %10s %8s %10s %10s\n",
                p["port"].u(), p["queue"].u(), p["pid"].i(), p["comm"].s().c_str(),
                human(static_cast<double>(p["rx_datagrams"].u())).c_str(),
                rate_col(rate(prev, *cur, k)).c_str(),
                human(static_cast<double>(p["rx_bytes"].u())).c_str(),
                human(static_cast<double>(p["tx_datagrams"].u())).c_str());
  }
  if (root["ports_truncated"].u() != 0)
    std::printf("(%" PRIu64 " more ports not shown)\n", root["ports_truncated"].u());

  if (root.has("services")) {
    // Stream services: who listens (SYNs steered by the daemon).
    const JVal& services = root["services"];
    std::printf("\n%-8s %-22s %s\n", "SERVICE", "HOW", "LISTENERS (queue/pid)");
    if (services.arr.empty()) std::printf("(no stream listeners)\n");
    for (const JVal& sv : services.arr) {
      std::string how = sv.has("shared_ring")
                            ? "fork-shared, ring " + std::to_string(sv["shared_ring"].u())
                        : sv["reuseport"].b ? "SO_REUSEPORT"
                                            : "one listener";
      std::string who;
      for (const JVal& m : sv["members"].arr)
        who += (who.empty() ? "" : " ") + std::to_string(m["queue"].u()) + "/" +
               std::to_string(m["pid"].i());
      std::printf("%-8" PRIu64 " %-22s %s\n", sv["port"].u(), how.c_str(), who.c_str());
    }
  }

  std::printf("\n%-5s %7s %7s %9s %6s %11s\n", "POOL", "SIZE", "IN_USE", "BASELINE", "RING",
              "UNACCOUNTED");
  for (const JVal& p : root["pools"].arr) {
    std::printf("%-5" PRIu64 " %7" PRIu64 " %7" PRIu64 " %9" PRIu64 " %6" PRIu64 " %11" PRIu64 "\n",
                p["queue"].u(), p["size"].u(), p["in_use"].u(), p["baseline"].u(), p["ring"].u(),
                p["unaccounted"].u());
  }
}

void usage(FILE* f) {
  std::fprintf(f,
               "Usage: machnet-stat [--socket PATH] [--json] [-w|--watch SECONDS] [--count N]\n"
               "       machnet-stat --pid PID [--runtime-dir DIR] [--json] [-w SECONDS] "
               "[--count N]\n"
               "Shows what machnetd knows: its device and counters, leased queues and the\n"
               "processes holding them, bound UDP ports, mbuf pools. With --pid: one process's\n"
               "own engine and transport counters, fallbacks to kernel TCP by reason (through\n"
               "its DPDK telemetry socket).\n"
               "  --socket PATH   machnetd control socket (default $MACHNET_MACHNETD_SOCKET or "
               "%s)\n"
               "  --pid PID       a process running an engine (machnet-run, a native program)\n"
               "  --runtime-dir DIR  DPDK runtime directory to look in (default %s)\n"
               "  --json          print the daemon's JSON (--pid: the telemetry dicts) as it is\n"
               "  -w, --watch S   refresh every S seconds (clears the screen; shows rates)\n"
               "  --count N       stop after N reports (with --watch; default: until ^C)\n",
               MN_CTL_DEFAULT_SOCKET, machnet::stat::default_runtime_dir().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = MN_CTL_DEFAULT_SOCKET;
  if (const char* e = std::getenv("MACHNET_MACHNETD_SOCKET")) path = e;
  bool json = false;
  double watch = 0;
  long count = -1;
  long pid = 0;
  std::string runtime_dir = machnet::stat::default_runtime_dir();
  enum { kSocket = 1000, kJson, kCount, kPid, kRuntimeDir };
  static const option opts[] = {
      {"socket", required_argument, nullptr, kSocket},
      {"pid", required_argument, nullptr, kPid},
      {"runtime-dir", required_argument, nullptr, kRuntimeDir},
      {"json", no_argument, nullptr, kJson},
      {"watch", required_argument, nullptr, 'w'},
      {"count", required_argument, nullptr, kCount},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, machnet::cli::kVersion},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "w:h", opts, nullptr)) != -1) {
    char* end = nullptr;
    switch (c) {
      case kSocket:
        path = optarg;
        break;
      case kJson:
        json = true;
        break;
      case kPid:
        pid = std::strtol(optarg, &end, 10);
        if (*end != '\0' || pid < 1 || pid > 0x3fffffff) {
          std::fprintf(stderr, "machnet-stat: --pid: expected a process id, got '%s'\n", optarg);
          return 2;
        }
        break;
      case kRuntimeDir:
        runtime_dir = optarg;
        break;
      case 'w':
        watch = std::strtod(optarg, &end);
        if (*end != '\0' || !(watch > 0)) {
          std::fprintf(stderr, "machnet-stat: --watch: expected seconds > 0, got '%s'\n", optarg);
          return 2;
        }
        break;
      case kCount:
        count = std::strtol(optarg, &end, 10);
        if (*end != '\0' || count < 1) {
          std::fprintf(stderr, "machnet-stat: --count: expected a number >= 1, got '%s'\n", optarg);
          return 2;
        }
        break;
      default:
        return machnet::cli::standard_option(c, "machnet-stat", usage, nullptr, argc, argv);
    }
  }
  if (count > 1 && watch == 0) watch = 1;
  if (count < 0) count = watch > 0 ? -1 : 1;
  if (optind < argc) {
    std::fprintf(stderr, "machnet-stat: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (pid != 0)
    return machnet::stat::run_process_stat(static_cast<pid_t>(pid), runtime_dir, json, watch,
                                           count);

  machnet::ipc::ControlClient client;
  std::string err;
  int rc = client.connect(path, &err);
  if (rc != 0) {
    std::fprintf(
        stderr, "machnet-stat: %s: %s\n",
        rc == -EACCES || rc == -EPERM ? "not allowed to use machnetd" : "no machnetd running",
        err.c_str());
    return 1;
  }
  Sample prev;
  bool have_prev = false;
  for (long n = 0; count < 0 || n < count; n++) {
    if (n > 0) {
      struct timespec ts;
      ts.tv_sec = static_cast<time_t>(watch);
      ts.tv_nsec = static_cast<long>((watch - std::floor(watch)) * 1e9);
      nanosleep(&ts, nullptr);
    }
    std::string text;
    rc = client.stats(&text, 2000);
    if (rc != 0) {
      std::fprintf(stderr, "machnet-stat: STATS from machnetd at %s failed: %s\n", path.c_str(),
                   std::strerror(-rc));
      return 1;
    }
    if (json) {
      std::printf("%s\n", text.c_str());
      std::fflush(stdout);
      continue;
    }
    JVal root;
    if (!JsonParser(text).parse(&root) || root.type != JVal::kObj) {
      std::fprintf(stderr, "machnet-stat: cannot parse the daemon's reply\n");
      return 1;
    }
    if (watch > 0) std::printf("\033[H\033[2J");
    Sample cur;
    cur.t = mono_s();
    print(root, have_prev ? &prev : nullptr, &cur);
    std::fflush(stdout);
    prev = cur;
    have_prev = true;
  }
  return 0;
}
