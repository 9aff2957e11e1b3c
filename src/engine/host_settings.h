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

// Fields start at the schema's defaults (Config::default_*): the schema is
// the one place that names a key, its range and its default.
struct HostSettings {
  // DPDK device: a vdev string ("net_af_xdp0,iface=veth0", "net_memif0,role=server,...")
  // or a PCI address for a real NIC ("0000:00:04.0").
  std::string device = Config::default_text("device");
  uint32_t ip = 0;  // host order; "ip" has no default
  uint8_t prefix_len = 24;
  uint32_t gateway = 0;  // host order, 0 = none
  uint16_t mtu = static_cast<uint16_t>(Config::default_uint("mtu"));
  std::string mac = Config::default_text("mac");  // override ("02:00:00:00:00:01"), "" = the port's
  // The most verbose level logged by DPDK and machnet (engine/log.h); the
  // preload shim reads the same key with the same default.
  std::string log_level = Config::default_text("log_level");
  uint32_t frag_timeout_ms = static_cast<uint32_t>(Config::default_uint("frag.timeout_ms"));
  uint32_t frag_max_flows = static_cast<uint32_t>(Config::default_uint("frag.max_flows"));
  // Bounds on what fragments awaiting reassembly hold: buffers and bytes.
  uint32_t frag_max_mbufs = static_cast<uint32_t>(Config::default_uint("frag.max_mbufs"));
  uint64_t frag_max_bytes = Config::default_uint("frag.max_bytes");

  // "device", "ip", "gateway", "mtu", "mac", "log_level", "frag.timeout_ms",
  // "frag.max_flows", "frag.max_mbufs", "frag.max_bytes".
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
