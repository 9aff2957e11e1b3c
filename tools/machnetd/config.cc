#include "config.h"

#include <getopt.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/config.h"
#include "machnetd/control_protocol.h"
#include "machnetd/shm.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

namespace machnet::machnetd {

const std::vector<std::string>& daemon_keys() {
  static const std::vector<std::string> k = {
      // Shared with machnet.conf, same meaning.
      "device",
      "ip",
      "gateway",
      "mtu",
      "mac",
      "log_level",
      "frag.timeout_ms",
      "frag.max_flows",
      // machnetd's own.
      "machnetd.name",
      "machnetd.socket",
      "machnetd.queues",
      "machnetd.mbufs_per_queue",
      "machnetd.base_virtaddr",
      "machnetd.socket_mode",
      "machnetd.socket_group",
      "machnetd.idle_sleep_us",
      "machnetd.eal_args",
      "machnetd.rx_desc",
      "machnetd.tx_desc",
      "machnetd.reclaim_grace_ms",
  };
  return k;
}

// Engine and preload keys of machnet.conf: accepted so that one file can
// serve the daemon and the applications, and ignored by the daemon.
const std::vector<std::string>& ignored_keys() {
  static const std::vector<std::string> k = {
      "hugepages",     "eal_args",         "mbufs",  "rx_desc", "tx_desc",  "xdp_prog",
      "xdp_shared_ip", "socket_queue_len", "strict", "library", "machnetd",
  };
  return k;
}

const std::vector<std::string>& ignored_prefixes() {
  static const std::vector<std::string> p = {"arp.",    "fault.",     "rules.", "socket.",
                                             "engine.", "transport.", "native."};
  return p;
}

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "Usage: machnetd [OPTIONS]\n"
               "DPDK primary that owns one NIC port and leases its queue pairs to\n"
               "applications running the machnet engine (see machnetd(8)).\n"
               "\n"
               "  --config FILE   configuration file (default %s if it exists)\n"
               "  --device DEV    DPDK device: vdev string (net_tap0,iface=x / net_memif0,... /\n"
               "                  net_ring0) or PCI address              [device]\n"
               "  --ip A.B.C.D/N  host address and prefix               [ip]\n"
               "  --socket PATH   control socket (default %s)           [machnetd.socket]\n"
               "  --queues N      queue pairs, 1..%u; queue 0 is the daemon's [machnetd.queues]\n"
               "  --name NAME     instance name, part of the EAL prefix  [machnetd.name]\n"
               "  --foreground    run in the foreground (always; for init systems)\n"
               "  --help          this text\n"
               "  --version       print the version\n"
               "\n"
               "Every key can also be set by MACHNET_<KEY> ('.' and '-' become '_').\n",
               kDefaultConfigPath, MN_CTL_DEFAULT_SOCKET, kMaxQueues);
}

bool ignored(const std::string& key) {
  for (const auto& k : ignored_keys())
    if (k == key) return true;
  for (const auto& p : ignored_prefixes())
    if (key.rfind(p, 0) == 0) return true;
  return false;
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 24) return false;
  for (char c : n) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

bool read_config(const Config& c, DaemonConfig* d, std::string* err) {
  d->device = c.get("device", d->device);
  if (const auto* e = c.find("ip")) {
    if (!wire::parse_ip_setting(e->origin, e->value, &d->ip, &d->prefix_len, err)) return false;
  }
  if (const auto* e = c.find("gateway")) {
    if (!e->value.empty() && !wire::parse_ipv4(e->value, &d->gateway)) {
      *err = e->origin + ": gateway: expected an IPv4 address, got '" + e->value + "'";
      return false;
    }
  }
  if (const auto* e = c.find("mac")) {
    if (!e->value.empty()) {
      if (!wire::parse_mac(e->value, &d->mac)) {
        *err = e->origin + ": mac: expected xx:xx:xx:xx:xx:xx, got '" + e->value + "'";
        return false;
      }
      d->has_mac = true;
    }
  }
  uint64_t v = d->mtu;
  if (!c.get_u64("mtu", 576, 9000, &v, err)) return false;
  d->mtu = static_cast<uint16_t>(v);
  d->log_level = c.get("log_level", d->log_level);
  v = d->frag_timeout_ms;
  if (!c.get_u64("frag.timeout_ms", 1, 60000, &v, err)) return false;
  d->frag_timeout_ms = static_cast<uint32_t>(v);
  v = d->frag_max_flows;
  if (!c.get_u64("frag.max_flows", 1, 65536, &v, err)) return false;
  d->frag_max_flows = static_cast<uint32_t>(v);

  if (const auto* e = c.find("machnetd.name")) {
    if (!valid_name(e->value)) {
      *err = e->origin + ": machnetd.name: 1 to 24 characters of [A-Za-z0-9_.-], got '" + e->value +
             "'";
      return false;
    }
    d->name = e->value;
  }
  d->socket = c.get("machnetd.socket", MN_CTL_DEFAULT_SOCKET);
  if (const auto* e = c.find("machnetd.socket")) {
    if (d->socket.empty() || d->socket[0] != '/' || d->socket.size() >= 100) {
      *err = e->origin + ": machnetd.socket: expected an absolute path under 100 bytes, got '" +
             e->value + "'";
      return false;
    }
  }
  v = d->queues;
  if (!c.get_u64("machnetd.queues", 1, kMaxQueues, &v, err)) return false;
  d->queues = static_cast<uint32_t>(v);
  v = d->mbufs_per_queue;
  if (!c.get_u64("machnetd.mbufs_per_queue", 255, 1u << 20, &v, err)) return false;
  d->mbufs_per_queue = static_cast<uint32_t>(v);
  v = d->base_virtaddr;
  if (!c.get_u64("machnetd.base_virtaddr", 0, 0x7fffffffffffull, &v, err)) return false;
  d->base_virtaddr = v;
  if (const auto* e = c.find("machnetd.socket_mode")) {
    char* end = nullptr;
    errno = 0;
    unsigned long m = std::strtoul(e->value.c_str(), &end, 8);
    if (e->value.empty() || *end != '\0' || errno != 0 || m > 0777) {
      *err = e->origin + ": machnetd.socket_mode: expected an octal mode like 0660, got '" +
             e->value + "'";
      return false;
    }
    d->socket_mode = static_cast<uint32_t>(m);
  }
  if (const auto* e = c.find("machnetd.socket_group")) {
    d->socket_group = e->value;
    if (!d->socket_group.empty()) {
      group* g = getgrnam(d->socket_group.c_str());
      if (g == nullptr) {
        *err = e->origin + ": machnetd.socket_group: no such group '" + e->value + "'";
        return false;
      }
      d->socket_gid = g->gr_gid;
    }
  }
  v = d->idle_sleep_us;
  if (!c.get_u64("machnetd.idle_sleep_us", 0, 100000, &v, err)) return false;
  d->idle_sleep_us = static_cast<uint32_t>(v);
  d->eal_args = c.get("machnetd.eal_args", d->eal_args);
  v = d->rx_desc;
  if (!c.get_u64("machnetd.rx_desc", 32, 8192, &v, err)) return false;
  d->rx_desc = static_cast<uint16_t>(v);
  v = d->tx_desc;
  if (!c.get_u64("machnetd.tx_desc", 32, 8192, &v, err)) return false;
  d->tx_desc = static_cast<uint16_t>(v);
  v = d->reclaim_grace_ms;
  if (!c.get_u64("machnetd.reclaim_grace_ms", 1, 1000, &v, err)) return false;
  d->reclaim_grace_ms = static_cast<uint32_t>(v);

  if (d->device.empty()) {
    *err = "no device configured: set 'device' in " +
           (d->config_path.empty() ? std::string(kDefaultConfigPath) : d->config_path) +
           ", MACHNET_DEVICE or --device";
    return false;
  }
  if (d->ip == 0) {
    *err = "no address configured: set 'ip' (a.b.c.d/prefix), MACHNET_IP or --ip";
    return false;
  }
  if (d->mbufs_per_queue < 2u * d->rx_desc) {
    const auto* e = c.find("machnetd.mbufs_per_queue");
    *err = (e ? e->origin + ": " : std::string()) + "machnetd.mbufs_per_queue (" +
           std::to_string(d->mbufs_per_queue) + ") must be at least twice machnetd.rx_desc (" +
           std::to_string(d->rx_desc) + ")";
    return false;
  }
  return true;
}

}  // namespace

int load_config(int argc, char** argv, DaemonConfig* out) {
  enum { kConfig = 1000, kDevice, kIp, kSocket, kQueues, kName, kForeground, kHelp, kVersion };
  static const option opts[] = {
      {"config", required_argument, nullptr, kConfig},
      {"device", required_argument, nullptr, kDevice},
      {"ip", required_argument, nullptr, kIp},
      {"socket", required_argument, nullptr, kSocket},
      {"queues", required_argument, nullptr, kQueues},
      {"name", required_argument, nullptr, kName},
      {"foreground", no_argument, nullptr, kForeground},
      {"help", no_argument, nullptr, kHelp},
      {"version", no_argument, nullptr, kVersion},
      {nullptr, 0, nullptr, 0},
  };
  std::string config_path;
  bool config_given = false;
  struct Override {
    std::string key, value, option;
  };
  std::vector<Override> overrides;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, nullptr)) != -1) {
    switch (c) {
      case kConfig:
        config_path = optarg;
        config_given = true;
        break;
      case kDevice:
        overrides.push_back({"device", optarg, "option --device"});
        break;
      case kIp:
        overrides.push_back({"ip", optarg, "option --ip"});
        break;
      case kSocket:
        overrides.push_back({"machnetd.socket", optarg, "option --socket"});
        break;
      case kQueues:
        overrides.push_back({"machnetd.queues", optarg, "option --queues"});
        break;
      case kName:
        overrides.push_back({"machnetd.name", optarg, "option --name"});
        break;
      case kForeground:
        break;
      case 'h':
      case kHelp:
        usage(stdout);
        return 0;
      case kVersion:
        std::printf("machnetd (machnet) %s, control protocol %d, shm version %u\n", PACKAGE_VERSION,
                    MN_CTL_VERSION, kShmVersion);
        return 0;
      default:
        std::fprintf(stderr, "machnetd: unknown option or missing value: '%s' (try --help)\n",
                     optind > 0 && optind <= argc ? argv[optind - 1] : "?");
        return 2;
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "machnetd: unexpected argument '%s' (try --help)\n", argv[optind]);
    return 2;
  }

  Config conf;
  std::string err;
  if (!config_given) {
    struct stat st;
    if (stat(kDefaultConfigPath, &st) == 0) config_path = kDefaultConfigPath;
  }
  if (!config_path.empty()) {
    if (!conf.load_file(config_path, &err)) {
      std::fprintf(stderr, "machnetd: %s\n", err.c_str());
      return 2;
    }
    out->config_path = config_path;
    std::vector<std::string> known = daemon_keys();
    std::string first;
    for (const auto& key : conf.unknown_keys(known, &first)) {
      if (ignored(key)) continue;
      const Config::Entry* e = conf.find(key);
      std::fprintf(stderr, "machnetd: %s: unknown key '%s' (see machnetd(8) for the keys)\n",
                   e ? e->origin.c_str() : config_path.c_str(), key.c_str());
      return 2;
    }
  }
  conf.apply_env(daemon_keys());
  for (const auto& o : overrides) conf.set(o.key, o.value, o.option);
  if (!read_config(conf, out, &err)) {
    std::fprintf(stderr, "machnetd: %s\n", err.c_str());
    return 2;
  }
  return -1;
}

}  // namespace machnet::machnetd
