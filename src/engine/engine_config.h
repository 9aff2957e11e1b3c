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
  bool hugepages = true;
  std::string eal_args;  // extra EAL arguments, space separated
  uint32_t num_mbufs = 16383;
  uint16_t rx_desc = 1024;
  uint16_t tx_desc = 1024;
  uint32_t socket_queue_len = 1024;  // datagrams buffered per UDP socket
  net::ArpConfig arp;
  // Neighbours known in advance ("ip@mac,ip@mac"): used as if learned by ARP
  // at start. For peers that do not answer ARP (a raw DPDK reflector).
  std::vector<std::pair<uint32_t, std::string>> static_neighbours;
  std::string xdp_prog;        // AF_XDP only; default: the installed machnet_xdp.bpf.o
  bool xdp_shared_ip = false;  // engine IP == kernel IP: steer only bound UDP ports
  double fault_rx_drop = 0.0;  // fault injection: probability a received frame is dropped
  double fault_tx_drop = 0.0;
  MachnetdMode machnetd = MachnetdMode::kAuto;
  std::string machnetd_socket = MN_CTL_DEFAULT_SOCKET;  // machnetd's control socket

  // Every key the engine understands ("device", "ip", "arp.retry_ms", ...).
  static const std::vector<std::string>& keys();
  // Reads the keys present in `c`; returns false with an error naming the
  // origin (file:line or environment variable) of the bad value.
  bool load(const Config& c, std::string* err);
};

}  // namespace machnet::engine
