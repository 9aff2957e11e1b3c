// machnetd configuration: machnetd.conf (the machnet.conf grammar and schema,
// src/common/conf.h: every machnet.conf key is accepted and checked, the
// daemon reads its own), MACHNET_* environment variables, then command-line
// options, each overriding the one before.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/host_settings.h"

namespace machnet::daemon {

constexpr char kDefaultConfigPath[] = "/etc/machnet/machnetd.conf";

// The keys shared with machnet.conf (engine::HostSettings: device, ip,
// gateway, mtu, mac, log_level, frag.*) and machnetd's own.
struct DaemonConfig : engine::HostSettings {
  DaemonConfig() {
    log_level = "notice";  // a daemon says what it does
    frag_max_flows = 1024;
  }
  std::string config_path;  // the file read, "" when none
  std::string name = "default";
  std::string socket;  // control socket path
  uint32_t queues = 8;
  uint32_t mbufs_per_queue = 4095;
  uint64_t base_virtaddr = 0x600000000000ull;
  uint32_t socket_mode = 0660;
  std::string socket_group;  // "" = leave the group alone
  gid_t socket_gid = static_cast<gid_t>(-1);
  uint32_t idle_sleep_us = 100;
  std::string eal_args;  // extra EAL arguments, space separated
  uint16_t rx_desc = 512;
  uint16_t tx_desc = 512;
  uint32_t reclaim_grace_ms = 20;
};

// Parses the command line, the configuration file and the environment.
// Returns -1 when the daemon should run, otherwise the exit code (0 after
// --help / --version, 2 on a configuration error, which has been printed
// naming the file and line, the variable or the option).
int load_config(int argc, char** argv, DaemonConfig* out);

}  // namespace machnet::daemon
