#include "daemon/config.h"

#include <getopt.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/cli.h"
#include "common/config.h"
#include "engine/log.h"
#include "ipc/control_protocol.h"
#include "ipc/shm.h"

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
  // Every value has passed the schema (common/conf_schema.c) in load_config:
  // the shared keys (engine::HostSettings), then machnetd's own.
  if (!d->load(c, err)) return false;
  d->name = c.get("machnetd.name", d->name);
  d->socket = c.get("machnetd.socket", d->socket);
  if (!engine::take_uint(c, "machnetd.queues", &d->queues, err) ||
      !engine::take_uint(c, "machnetd.mbufs_per_queue", &d->mbufs_per_queue, err) ||
      !engine::take_uint(c, "machnetd.base_virtaddr", &d->base_virtaddr, err) ||
      !engine::take_uint(c, "machnetd.idle_sleep_us", &d->idle_sleep_us, err) ||
      !engine::take_uint(c, "machnetd.parked_sleep_us", &d->parked_sleep_us, err) ||
      !engine::take_uint(c, "machnetd.rx_desc", &d->rx_desc, err) ||
      !engine::take_uint(c, "machnetd.tx_desc", &d->tx_desc, err) ||
      !engine::take_uint(c, "machnetd.reclaim_grace_ms", &d->reclaim_grace_ms, err) ||
      !engine::take_uint(c, "machnetd.quiesce_timeout_ms", &d->quiesce_timeout_ms, err) ||
      !engine::take_uint(c, "transport.rendezvous_port", &d->rendezvous_port, err))
    return false;
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
  d->eal_args = c.get("machnetd.eal_args", d->eal_args);

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
  enum { kConfig = 1000, kDevice, kIp, kSocket, kQueues, kName, kForeground };
  static const option opts[] = {
      {"config", required_argument, nullptr, kConfig},
      {"device", required_argument, nullptr, kDevice},
      {"ip", required_argument, nullptr, kIp},
      {"socket", required_argument, nullptr, kSocket},
      {"queues", required_argument, nullptr, kQueues},
      {"name", required_argument, nullptr, kName},
      {"foreground", no_argument, nullptr, kForeground},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, cli::kVersion},
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
      default: {
        std::string abi = "control protocol " + std::to_string(MN_CTL_VERSION) + ", shm version " +
                          std::to_string(MN_SHM_VERSION);
        return cli::standard_option(c, "machnetd", usage, abi.c_str(), argc, argv);
      }
    }
  }
  if (int rc = cli::no_operands("machnetd", argc, argv)) return rc;

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
    MN_LOG(DAEMON, ERR, "%s", err.c_str());
    return 2;
  }
  if (!read_config(conf, out, &err)) {
    MN_LOG(DAEMON, ERR, "%s", err.c_str());
    return 2;
  }
  return -1;
}

}  // namespace machnet::daemon
