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
// gateway, mtu, mac, log_level, frag.*) and machnetd's own, every field at
// the schema's default (common/conf_schema.c) until the configuration says.
struct DaemonConfig : engine::HostSettings {
  std::string config_path;  // the file read, "" when none
  std::string name = Config::default_text("machnetd.name");
  std::string socket = Config::default_text("machnetd.socket");  // control socket path
  uint32_t queues = static_cast<uint32_t>(Config::default_uint("machnetd.queues"));
  uint32_t mbufs_per_queue =
      static_cast<uint32_t>(Config::default_uint("machnetd.mbufs_per_queue"));
  uint64_t base_virtaddr = Config::default_uint("machnetd.base_virtaddr");
  uint32_t socket_mode = static_cast<uint32_t>(Config::default_uint("machnetd.socket_mode"));
  std::string socket_group = Config::default_text("machnetd.socket_group");  // "" = leave it
  gid_t socket_gid = static_cast<gid_t>(-1);
  uint32_t idle_sleep_us = static_cast<uint32_t>(Config::default_uint("machnetd.idle_sleep_us"));
  // The same while some holder is parked (its wake-up waits for this loop).
  uint32_t parked_sleep_us =
      static_cast<uint32_t>(Config::default_uint("machnetd.parked_sleep_us"));
  std::string eal_args = Config::default_text("machnetd.eal_args");  // extra EAL arguments
  uint16_t rx_desc = static_cast<uint16_t>(Config::default_uint("machnetd.rx_desc"));
  uint16_t tx_desc = static_cast<uint16_t>(Config::default_uint("machnetd.tx_desc"));
  uint32_t reclaim_grace_ms =
      static_cast<uint32_t>(Config::default_uint("machnetd.reclaim_grace_ms"));
  // The UDP port on which this host's stream services receive their SYNs
  // (docs/PROTOCOL.md 2.1); the daemon steers them by service port.
  uint32_t rendezvous_port =
      static_cast<uint32_t>(Config::default_uint("transport.rendezvous_port"));
  // Shutdown: how long to wait for attached holders to stop using the port.
  uint32_t quiesce_timeout_ms =
      static_cast<uint32_t>(Config::default_uint("machnetd.quiesce_timeout_ms"));
};

// Parses the command line, the configuration file and the environment.
// Returns -1 when the daemon should run, otherwise the exit code (0 after
// --help / --version, 2 on a configuration error, which has been printed
// naming the file and line, the variable or the option).
int load_config(int argc, char** argv, DaemonConfig* out);

}  // namespace machnet::daemon
