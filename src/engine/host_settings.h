// The keys the engine (machnet.conf) and machnetd (machnetd.conf) share, with
// the same meaning in both: the device, the host's address, MTU and MAC, the
// log level and the reassembly bounds. One file can serve the daemon and the
// applications. What each value may be is the schema's
// (common/conf_schema.c), for these readers and the preload shim alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"

namespace machnet::engine {

struct HostSettings {
  // DPDK device: a vdev string ("net_af_xdp0,iface=veth0", "net_memif0,role=server,...")
  // or a PCI address for a real NIC ("0000:00:04.0").
  std::string device;
  uint32_t ip = 0;  // host order
  uint8_t prefix_len = 24;
  uint32_t gateway = 0;  // host order, 0 = none
  uint16_t mtu = 1500;
  std::string mac;  // optional override ("02:00:00:00:00:01"), "" = the port's
  // rte_log level of DPDK and machnet (engine/log.h): quiet unless something fails
  std::string log_level = "error";
  uint32_t frag_timeout_ms = 2000;
  uint32_t frag_max_flows = 4096;

  // "device", "ip", "gateway", "mtu", "mac", "log_level", "frag.timeout_ms",
  // "frag.max_flows".
  static const std::vector<std::string>& keys();
  // Reads the keys present in `c`, each checked against the schema; false
  // with an error naming the origin (file:line, variable or option) of the
  // bad value.
  bool load(const Config& c, std::string* err);
};

// Integer key `key` of the schema into *field when it is set, in units of
// `unit` (arp.retry_ms into nanoseconds: 1000000), within the schema's
// range; false with an error naming the origin of a bad value.
template <typename T>
bool take_uint(const Config& c, const char* key, T* field, std::string* err, uint64_t unit = 1) {
  uint64_t v = static_cast<uint64_t>(*field) / unit;
  if (!c.get_uint(key, &v, err)) return false;
  *field = static_cast<T>(v * unit);
  return true;
}

}  // namespace machnet::engine
