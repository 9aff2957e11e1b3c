// machnet-stat --pid: one process's engine and transport counters through
// its DPDK telemetry socket (process_stat.h). DPDK's telemetry protocol
// (v2): a SOCK_SEQPACKET unix socket; on connect the server sends
// {"version": ..., "pid": N, "max_output_len": M}; each message sent is a
// command ("/machnet/counters"), each reply {"<command>": value} in one
// message of at most M bytes.
#include "process_stat.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>

#include "transport/types.h"

namespace machnet::stat {

namespace {

constexpr const char* kSocketName = "dpdk_telemetry.v2";
constexpr int kTimeoutMs = 2000;

std::string num(uint64_t v) {
  return std::to_string(v);
}

// "name v, name v" of the keys of obj for which want(key) and the value is
// nonzero; every key listed is added to *shown.
template <class Want>
std::string nonzero(const JVal& obj, Want want, std::set<std::string>* shown,
                    const std::string& strip = "") {
  std::string out;
  for (const auto& kv : obj.obj) {
    if (!want(kv.first)) continue;
    shown->insert(kv.first);
    if (kv.second.u() == 0) continue;
    if (!out.empty()) out += ", ";
    std::string name = kv.first;
    if (!strip.empty() && name.compare(0, strip.size(), strip) == 0)
      name = name.substr(strip.size());
    out += name + " " + num(kv.second.u());
  }
  return out;
}

bool is_rx_drop(const std::string& k) {
  static const std::set<std::string> drops = {
#define MACHNET_X(n) #n,
      MACHNET_TRANSPORT_RX_DROPS(MACHNET_X)
#undef MACHNET_X
  };
  return drops.count(k) != 0;
}

std::string read_comm(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(f, s);
  return s.empty() ? "?" : s;
}

}  // namespace

std::string default_runtime_dir() {
  if (geteuid() == 0) return "/var/run/dpdk";
  const char* x = std::getenv("XDG_RUNTIME_DIR");
  return std::string(x != nullptr && *x != '\0' ? x : "/tmp") + "/dpdk";
}

std::vector<std::string> telemetry_candidates(const std::string& dir, pid_t pid) {
  std::vector<std::string> out;
  const std::string own = "machnet-" + std::to_string(pid);
  out.push_back(dir + "/" + own + "/" + kSocketName);
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  std::vector<std::string> prefixes;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    // Other standalone engines' directories are theirs alone.
    if (n == "." || n == ".." || n == own) continue;
    if (n.compare(0, 8, "machnet-") == 0 &&
        n.find_first_not_of("0123456789", 8) == std::string::npos)
      continue;
    prefixes.push_back(n);
  }
  closedir(d);
  for (const std::string& p : prefixes) {
    DIR* sd = opendir((dir + "/" + p).c_str());
    if (sd == nullptr) continue;
    while (dirent* e = readdir(sd)) {
      std::string n = e->d_name;
      if (n.compare(0, std::strlen(kSocketName), kSocketName) == 0)
        out.push_back(dir + "/" + p + "/" + n);
    }
    closedir(sd);
  }
  return out;
}

std::string secondary_prefix(const std::string& dir, pid_t pid) {
  const std::string mp = "mp_socket_" + std::to_string(pid) + "_";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return "";
  std::string found;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    DIR* sd = opendir((dir + "/" + n).c_str());
    if (sd == nullptr) continue;
    while (dirent* f = readdir(sd)) {
      if (std::strncmp(f->d_name, mp.c_str(), mp.size()) == 0) found = n;
    }
    closedir(sd);
    if (!found.empty()) break;
  }
  closedir(d);
  return found;
}

TelemetryClient::~TelemetryClient() {
  if (fd_ >= 0) close(fd_);
}

int TelemetryClient::connect(const std::string& path, pid_t* pid_out, std::string* err) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sun.sun_path)) {
    *err = path + ": path too long";
    return -ENAMETOOLONG;
  }
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket: ") + std::strerror(errno);
    return -errno;
  }
  timeval tv{kTimeoutMs / 1000, (kTimeoutMs % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    int e = errno;
    close(fd);
    *err = path + ": " + std::strerror(e);
    return -e;
  }
  char buf[1024];
  ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) {
    int e = n < 0 ? errno : ECONNRESET;
    close(fd);
    *err = path + ": no greeting from DPDK telemetry: " + std::strerror(e);
    return -e;
  }
  JVal g;
  if (!JsonParser(std::string(buf, static_cast<size_t>(n))).parse(&g) || !g.has("pid")) {
    close(fd);
    *err = path + ": not a DPDK telemetry greeting";
    return -EPROTO;
  }
  if (g["max_output_len"].u() != 0) max_len_ = g["max_output_len"].u();
  *pid_out = static_cast<pid_t>(g["pid"].i());
  fd_ = fd;
  path_ = path;
  return 0;
}

int TelemetryClient::connect_pid(const std::string& dir, pid_t pid, std::string* err) {
  std::string first_err;
  for (const std::string& c : telemetry_candidates(dir, pid)) {
    pid_t got = 0;
    std::string e;
    if (connect(c, &got, &e) != 0) {
      if (first_err.empty()) first_err = e;
      continue;
    }
    if (got == pid) return 0;
    close(fd_);
    fd_ = -1;
  }
  std::string prefix = secondary_prefix(dir, pid);
  if (!prefix.empty()) {
    // DPDK 22.11 opens no telemetry socket in a secondary process.
    *err = "pid " + std::to_string(pid) + " is attached to machnetd (EAL prefix " + prefix +
           "): DPDK gives a secondary process no telemetry socket; its engine's counters are "
           "in machnet-stat's table of the daemon (its queue), its transport counters are not "
           "published";
    return -EOPNOTSUPP;
  }
  *err = "no DPDK telemetry socket of pid " + std::to_string(pid) + " under " + dir + " (" +
         first_err +
         "); is it running with an engine (machnet-run, a native program), as this user?";
  return -ENOENT;
}

int TelemetryClient::query(const std::string& cmd, std::string* value, std::string* err) {
  if (fd_ < 0) return -ENOTCONN;
  if (send(fd_, cmd.data(), cmd.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(cmd.size())) {
    *err = cmd + ": " + std::strerror(errno);
    return -errno;
  }
  std::string buf(max_len_ + 1, '\0');
  ssize_t n = recv(fd_, &buf[0], buf.size(), 0);
  if (n <= 0) {
    int e = n < 0 ? errno : ECONNRESET;
    *err = cmd + ": no reply: " + std::strerror(e);
    return -e;
  }
  buf.resize(static_cast<size_t>(n));
  // {"<cmd>":X}: X is everything between the first ':' after the key and
  // the final '}' (checked by parsing the whole reply).
  JVal root;
  std::string key = "{\"" + cmd + "\":";
  if (!JsonParser(buf).parse(&root) || root.type != JVal::kObj || root.obj.size() != 1 ||
      buf.compare(0, key.size(), key) != 0) {
    *err = cmd + ": malformed reply";
    return -EPROTO;
  }
  *value = buf.substr(key.size(), buf.size() - key.size() - 1);
  return 0;
}

std::string format_fallbacks(const JVal& t) {
  static const struct {
    const char* key;
    const char* name;
  } kNames[] = {
      {"fallback_icmp", "refused"},
      {"fallback_timeout", "timeout"},
      {"fallback_no_service", "no service"},
      {"fallback_cached", "remembered plain"},
      {"fallback_engine_down", "engine down"},
      {"fallback_no_port", "no port"},
      {"fallback_flow_table_full", "flow table full"},
      {"fallback_error", "other error"},
  };
  uint64_t total = 0;
  std::string out;
  for (const auto& kv : t.obj) {
    if (kv.first.compare(0, 9, "fallback_") != 0) continue;
    std::string name = kv.first.substr(9);
    for (const auto& k : kNames)
      if (kv.first == k.key) name = k.name;
    for (char& c : name)
      if (c == '_') c = ' ';
    total += kv.second.u();
    out += (out.empty() ? "" : ", ") + name + " " + num(kv.second.u());
  }
  return "fallbacks to kernel TCP " + num(total) + (out.empty() ? "" : ": " + out);
}

std::string format_process(pid_t pid, const std::string& comm, const std::string& socket,
                           const JVal& e, const JVal& t) {
  std::string o;
  char line[1024];
  std::snprintf(line, sizeof(line), "process %d (%s)  telemetry %s\n", static_cast<int>(pid),
                comm.c_str(), socket.c_str());
  o += line;
  if (e.type != JVal::kObj || !e.has("device")) {
    o +=
        "  engine: none (no /machnet/counters here; machnetd itself: machnet-stat without --pid)\n";
  } else {
    std::set<std::string> shown;
    std::snprintf(line, sizeof(line),
                  "  engine %s  ip %s\n"
                  "  packets rx %" PRIu64 " (%" PRIu64 " bytes)  tx %" PRIu64 " (%" PRIu64
                  " bytes)  udp rx %" PRIu64 " tx %" PRIu64 "  arp rx %" PRIu64 " tx %" PRIu64
                  "\n"
                  "  icmp echo replies %" PRIu64 "  unreachable rx %" PRIu64 " tx %" PRIu64
                  "  fragments rx %" PRIu64 " reassembled %" PRIu64 " tx %" PRIu64
                  "  steered in %" PRIu64 " out %" PRIu64 " (drops %" PRIu64 ")\n",
                  e["device"].s().c_str(), e["ip"].s().c_str(), e["rx_packets"].u(),
                  e["rx_bytes"].u(), e["tx_packets"].u(), e["tx_bytes"].u(), e["udp_rx"].u(),
                  e["udp_tx"].u(), e["arp_rx"].u(), e["arp_tx"].u(), e["icmp_echo_replies"].u(),
                  e["icmp_unreachable_rx"].u(), e["icmp_unreachable_tx"].u(), e["fragments_rx"].u(),
                  e["reassembled"].u(), e["fragments_tx"].u(), e["steered_in"].u(),
                  e["steered_out"].u(), e["steer_drops"].u());
    o += line;
    uint64_t drops = 0;
    for (const auto& kv : e.obj)
      if (kv.first.compare(0, 5, "drop_") == 0) drops += kv.second.u();
    std::string dr = nonzero(
        e, [](const std::string& k) { return k.compare(0, 5, "drop_") == 0; }, &shown, "drop_");
    o += "  engine drops " + num(drops) + (dr.empty() ? "" : ": " + dr) + "\n";
  }
  if (t.type != JVal::kObj) {
    o += "  transport: none (no /machnet/transport: a UDP-only engine or an older library)\n";
    return o;
  }
  std::set<std::string> shown = {"flows_created",    "flows_destroyed", "stream_connects",
                                 "probes_sent",      "probes_machnet",  "probes_settled_by_peer",
                                 "probes_extended",  "kernel_accepts",  "tx_datagrams",
                                 "tx_data_segments", "tx_retransmits",  "tx_fast_retransmits",
                                 "tx_rto",           "tx_pure_acks",    "tx_syn",
                                 "tx_rst",           "tx_keepalives",   "rx_datagrams",
                                 "rx_accepted",      "rx_rst",          "rx_icmp_unreachable"};
  std::snprintf(line, sizeof(line),
                "  transport flows created %" PRIu64 " destroyed %" PRIu64
                "  stream connects %" PRIu64 " (probes %" PRIu64 ": machnet %" PRIu64
                ", settled by peer %" PRIu64 ", extended %" PRIu64 ")  kernel accepts %" PRIu64
                "\n"
                "  tx datagrams %" PRIu64 "  data segments %" PRIu64 "  retransmits %" PRIu64
                " (fast %" PRIu64 ", rto %" PRIu64 ")  pure acks %" PRIu64 "  syn %" PRIu64
                "  rst %" PRIu64 "  keepalives %" PRIu64 "\n",
                t["flows_created"].u(), t["flows_destroyed"].u(), t["stream_connects"].u(),
                t["probes_sent"].u(), t["probes_machnet"].u(), t["probes_settled_by_peer"].u(),
                t["probes_extended"].u(), t["kernel_accepts"].u(), t["tx_datagrams"].u(),
                t["tx_data_segments"].u(), t["tx_retransmits"].u(), t["tx_fast_retransmits"].u(),
                t["tx_rto"].u(), t["tx_pure_acks"].u(), t["tx_syn"].u(), t["tx_rst"].u(),
                t["tx_keepalives"].u());
  o += line;
  uint64_t rx_dropped = 0;
  for (const auto& kv : t.obj)
    if (is_rx_drop(kv.first)) rx_dropped += kv.second.u();
  std::string dr = nonzero(t, is_rx_drop, &shown, "rx_");
  std::snprintf(line, sizeof(line),
                "  rx datagrams %" PRIu64 "  accepted %" PRIu64 "  rst %" PRIu64
                "  icmp unreachable %" PRIu64 "  dropped %" PRIu64,
                t["rx_datagrams"].u(), t["rx_accepted"].u(), t["rx_rst"].u(),
                t["rx_icmp_unreachable"].u(), rx_dropped);
  o += line + (dr.empty() ? "" : ": " + dr) + "\n";
  o += "  " + format_fallbacks(t) + "\n";
  // Everything else the transport counts (a new counter shows up here).
  std::string other = nonzero(
      t,
      [&shown](const std::string& k) {
        return shown.count(k) == 0 && k.compare(0, 9, "fallback_") != 0;
      },
      &shown);
  if (!other.empty()) o += "  other: " + other + "\n";
  return o;
}

int run_process_stat(pid_t pid, const std::string& runtime_dir, bool json, double watch,
                     long count) {
  TelemetryClient c;
  std::string err;
  if (c.connect_pid(runtime_dir, pid, &err) != 0) {
    std::fprintf(stderr, "machnet-stat: %s\n", err.c_str());
    return 1;
  }
  for (long n = 0; count < 0 || n < count; n++) {
    if (n > 0) {
      timespec ts{static_cast<time_t>(watch), static_cast<long>((watch - std::floor(watch)) * 1e9)};
      nanosleep(&ts, nullptr);
    }
    std::string eng, tp;
    if (c.query("/machnet/counters", &eng, &err) != 0 ||
        c.query("/machnet/transport", &tp, &err) != 0) {
      std::fprintf(stderr, "machnet-stat: pid %d: %s\n", static_cast<int>(pid), err.c_str());
      return 1;
    }
    if (json) {
      std::printf("{\"pid\":%d,\"socket\":\"%s\",\"engine\":%s,\"transport\":%s}\n",
                  static_cast<int>(pid), c.path().c_str(), eng.c_str(), tp.c_str());
      std::fflush(stdout);
      continue;
    }
    JVal e, t;
    if (!JsonParser(eng).parse(&e) || !JsonParser(tp).parse(&t)) {
      std::fprintf(stderr, "machnet-stat: pid %d: cannot parse the telemetry reply\n",
                   static_cast<int>(pid));
      return 1;
    }
    if (watch > 0) std::printf("\033[H\033[2J");
    std::fputs(format_process(pid, read_comm(pid), c.path(), e, t).c_str(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace machnet::stat
