// Everything the engine reads from machnet.conf / MACHNET_* variables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"
#include "engine/host_settings.h"
#include "ipc/control_protocol.h"
#include "net/arp_cache.h"

namespace machnet::engine {

// How the engine finds its device: through machnetd (a DPDK secondary on a
// queue pair the daemon leases) or alone (standalone primary).
enum class MachnetdMode : uint8_t {
  kAuto,  // attach when machnetd answers on machnetd.socket, else standalone
  kOn,    // machnetd only: no daemon is an error
  kOff,   // standalone only: never look for the daemon
};

// The shared keys (HostSettings: device, ip, gateway, mtu, mac, log_level,
// frag.*) and the engine's own.
struct EngineConfig : HostSettings {
  // Empty device with port_id >= 0 when the caller created the port itself
  // (tests: rte_eth_from_rings).
  int port_id = -1;
  bool hugepages = Config::default_bool("hugepages");
  std::string eal_args = Config::default_text("eal_args");  // extra EAL arguments
  uint32_t num_mbufs = static_cast<uint32_t>(Config::default_uint("mbufs"));
  uint16_t rx_desc = static_cast<uint16_t>(Config::default_uint("rx_desc"));
  uint16_t tx_desc = static_cast<uint16_t>(Config::default_uint("tx_desc"));
  // datagrams, and mbufs they hold, buffered per UDP socket
  uint32_t socket_queue_len = static_cast<uint32_t>(Config::default_uint("socket_queue_len"));
  net::ArpConfig arp = default_arp();
  // Neighbours known in advance ("ip@mac,ip@mac"): used as if learned by ARP
  // at start. For peers that do not answer ARP (a raw DPDK reflector).
  std::vector<std::pair<uint32_t, std::string>> static_neighbours;
  // AF_XDP only; "": the installed machnet_xdp.bpf.o
  std::string xdp_prog = Config::default_text("xdp_prog");
  // engine IP == kernel IP: steer only bound UDP ports
  bool xdp_shared_ip = Config::default_bool("xdp_shared_ip");
  // fault injection: probability a received (sent) frame is dropped
  double fault_rx_drop = Config::default_real("fault.rx_drop");
  double fault_tx_drop = Config::default_real("fault.tx_drop");
  MachnetdMode machnetd = mode_of(Config::default_word("machnetd"));
  std::string machnetd_socket = Config::default_text("machnetd.socket");  // its control socket

  // enum mn_machnetd (common/conf.h) as a MachnetdMode.
  static MachnetdMode mode_of(int mn_machnetd);
  // ArpConfig with the schema's arp.* defaults.
  static net::ArpConfig default_arp();
  // Every key the engine understands ("device", "ip", "arp.retry_ms", ...).
  static const std::vector<std::string>& keys();
  // Reads the keys present in `c`; returns false with an error naming the
  // origin (file:line or environment variable) of the bad value.
  bool load(const Config& c, std::string* err);
};

}  // namespace machnet::engine
