#include "daemon/config.h"

#include <getopt.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/conf.h"
#include "common/config.h"
#include "ipc/control_protocol.h"
#include "ipc/shm.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

namespace machnet::daemon {

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
               kDefaultConfigPath, MN_CTL_DEFAULT_SOCKET, MN_SHM_MAX_QUEUES);
}

bool read_config(const Config& c, DaemonConfig* d, std::string* err) {
  d->device = c.get("device", d->device);
  // Every value has passed the schema (common/conf_schema.c) in load_config.
  char why[256];
  if (const auto* e = c.find("ip")) {
    mn_conf_ip_prefix(e->value.c_str(), &d->ip, &d->prefix_len, why, sizeof(why));
  }
  if (const auto* e = c.find("gateway")) {
    if (!e->value.empty()) mn_conf_ipv4(e->value.c_str(), &d->gateway);
  }
  if (const auto* e = c.find("mac")) {
    d->has_mac = !e->value.empty() && mn_conf_mac(e->value.c_str(), d->mac.data()) == 0;
  }
  uint64_t v = d->mtu;
  if (!c.get_uint("mtu", &v, err)) return false;
  d->mtu = static_cast<uint16_t>(v);
  d->log_level = c.get("log_level", d->log_level);
  v = d->frag_timeout_ms;
  if (!c.get_uint("frag.timeout_ms", &v, err)) return false;
  d->frag_timeout_ms = static_cast<uint32_t>(v);
  v = d->frag_max_flows;
  if (!c.get_uint("frag.max_flows", &v, err)) return false;
  d->frag_max_flows = static_cast<uint32_t>(v);

  d->name = c.get("machnetd.name", d->name);
  d->socket = c.get("machnetd.socket", MN_CTL_DEFAULT_SOCKET);
  v = d->queues;
  if (!c.get_uint("machnetd.queues", &v, err)) return false;
  d->queues = static_cast<uint32_t>(v);
  v = d->mbufs_per_queue;
  if (!c.get_uint("machnetd.mbufs_per_queue", &v, err)) return false;
  d->mbufs_per_queue = static_cast<uint32_t>(v);
  v = d->base_virtaddr;
  if (!c.get_uint("machnetd.base_virtaddr", &v, err)) return false;
  d->base_virtaddr = v;
  if (const auto* e = c.find("machnetd.socket_mode")) {
    d->socket_mode = static_cast<uint32_t>(std::strtoul(e->value.c_str(), nullptr, 8));
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
  if (!c.get_uint("machnetd.idle_sleep_us", &v, err)) return false;
  d->idle_sleep_us = static_cast<uint32_t>(v);
  d->eal_args = c.get("machnetd.eal_args", d->eal_args);
  v = d->rx_desc;
  if (!c.get_uint("machnetd.rx_desc", &v, err)) return false;
  d->rx_desc = static_cast<uint16_t>(v);
  v = d->tx_desc;
  if (!c.get_uint("machnetd.tx_desc", &v, err)) return false;
  d->tx_desc = static_cast<uint16_t>(v);
  v = d->reclaim_grace_ms;
  if (!c.get_uint("machnetd.reclaim_grace_ms", &v, err)) return false;
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
  std::vector<Config::Override> overrides;
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
                    MN_CTL_VERSION, MN_SHM_VERSION);
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
  out->config_path = config_path;
  // The file, MACHNET_* variables, then the options; every key of
  // machnet.conf is accepted (one file may serve the daemon and the
  // applications) and checked, then read_config takes the daemon's.
  if (!conf.load(config_path, overrides, &err)) {
    std::fprintf(stderr, "machnetd: %s\n", err.c_str());
    return 2;
  }
  if (!read_config(conf, out, &err)) {
    std::fprintf(stderr, "machnetd: %s\n", err.c_str());
    return 2;
  }
  return -1;
}

}  // namespace machnet::daemon
