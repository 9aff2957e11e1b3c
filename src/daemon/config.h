// machnetd configuration: machnetd.conf (the machnet.conf grammar and schema,
// src/common/conf.h: every machnet.conf key is accepted and checked, the
// daemon reads its own), MACHNET_* environment variables, then command-line
// options, each overriding the one before.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "wire/headers.h"

namespace machnet::daemon {

constexpr char kDefaultConfigPath[] = "/etc/machnet/machnetd.conf";

struct DaemonConfig {
  std::string config_path;  // the file read, "" when none
  std::string device;       // vdev string or PCI address
  uint32_t ip = 0;          // host order
  uint8_t prefix_len = 24;
  uint32_t gateway = 0;  // host order, 0 = none
  uint16_t mtu = 1500;
  bool has_mac = false;
  wire::MacAddr mac{};
  std::string name = "default";
  std::string socket;  // control socket path
  uint32_t queues = 8;
  uint32_t mbufs_per_queue = 4095;
  uint64_t base_virtaddr = 0x600000000000ull;
  uint32_t socket_mode = 0660;
  std::string socket_group;  // "" = leave the group alone
  gid_t socket_gid = static_cast<gid_t>(-1);
  uint32_t idle_sleep_us = 100;
  std::string log_level = "error";  // DPDK log level
  std::string eal_args;             // extra EAL arguments, space separated
  uint16_t rx_desc = 512;
  uint16_t tx_desc = 512;
  uint32_t frag_timeout_ms = 2000;
  uint32_t frag_max_flows = 1024;
  uint32_t reclaim_grace_ms = 20;
};

// Parses the command line, the configuration file and the environment.
// Returns -1 when the daemon should run, otherwise the exit code (0 after
// --help / --version, 2 on a configuration error, which has been printed
// naming the file and line, the variable or the option).
int load_config(int argc, char** argv, DaemonConfig* out);

}  // namespace machnet::daemon
