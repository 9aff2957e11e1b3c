#include "engine/engine_config.h"

#include "common/conf.h"
#include "wire/headers.h"

namespace machnet::engine {

const std::vector<std::string>& EngineConfig::keys() {
  static const std::vector<std::string> k = {
      "device",
      "ip",
      "gateway",
      "mtu",
      "mac",
      "hugepages",
      "log_level",
      "eal_args",
      "mbufs",
      "rx_desc",
      "tx_desc",
      "socket_queue_len",
      "arp.retry_ms",
      "arp.max_requests",
      "arp.reachable_s",
      "arp.max_entries",
      "arp.static",
      "frag.timeout_ms",
      "frag.max_flows",
      "xdp_prog",
      "xdp_shared_ip",
      "fault.rx_drop",
      "fault.tx_drop",
      "machnetd",
      "machnetd.socket",
  };
  return k;
}

namespace {

// An integer key of the schema into `field`, given in units of `unit`.
template <typename T>
bool take_uint(const Config& c, const char* key, T* field, std::string* err, uint64_t unit = 1) {
  uint64_t v = static_cast<uint64_t>(*field) / unit;
  if (!c.get_uint(key, &v, err)) return false;
  *field = static_cast<T>(v * unit);
  return true;
}

void add_neighbour(void* user, uint32_t ip, const uint8_t mac[6]) {
  wire::MacAddr m;
  std::copy(mac, mac + 6, m.begin());
  static_cast<EngineConfig*>(user)->static_neighbours.emplace_back(ip, wire::format_mac(m));
}

}  // namespace

bool EngineConfig::load(const Config& c, std::string* err) {
  // The schema (common/conf_schema.c) says what each value may be, for the
  // shim and every other reader alike.
  for (const std::string& k : keys()) {
    if (!c.check(k, err)) return false;
  }
  char why[256];
  device = c.get("device", device);
  if (const auto* e = c.find("ip"))
    mn_conf_ip_prefix(e->value.c_str(), &ip, &prefix_len, why, sizeof(why));
  if (const auto* e = c.find("gateway")) {
    gateway = 0;
    if (!e->value.empty()) mn_conf_ipv4(e->value.c_str(), &gateway);
  }
  mac = c.get("mac", mac);
  if (!take_uint(c, "mtu", &mtu, err) || !c.get_bool("hugepages", &hugepages, err)) return false;
  log_level = c.get("log_level", log_level);
  eal_args = c.get("eal_args", eal_args);
  if (!take_uint(c, "mbufs", &num_mbufs, err) || !take_uint(c, "rx_desc", &rx_desc, err) ||
      !take_uint(c, "tx_desc", &tx_desc, err) ||
      !take_uint(c, "socket_queue_len", &socket_queue_len, err) ||
      !take_uint(c, "arp.retry_ms", &arp.retry_ns, err, 1000000) ||
      !take_uint(c, "arp.max_requests", &arp.max_requests, err) ||
      !take_uint(c, "arp.reachable_s", &arp.reachable_ns, err, 1000000000) ||
      !take_uint(c, "arp.max_entries", &arp.max_entries, err) ||
      !take_uint(c, "frag.timeout_ms", &frag_timeout_ms, err) ||
      !take_uint(c, "frag.max_flows", &frag_max_flows, err))
    return false;
  if (const auto* e = c.find("arp.static")) {
    static_neighbours.clear();
    mn_conf_neighbours(e->value.c_str(), add_neighbour, this, why, sizeof(why));
  }
  xdp_prog = c.get("xdp_prog", xdp_prog);
  if (!c.get_bool("xdp_shared_ip", &xdp_shared_ip, err) ||
      !c.get_real("fault.rx_drop", &fault_rx_drop, err) ||
      !c.get_real("fault.tx_drop", &fault_tx_drop, err))
    return false;
  int m = -1;
  if (!c.get_word("machnetd", &m, err)) return false;
  if (m >= 0) {
    machnetd = m == MN_MACHNETD_ON    ? MachnetdMode::kOn
               : m == MN_MACHNETD_OFF ? MachnetdMode::kOff
                                      : MachnetdMode::kAuto;
  }
  machnetd_socket = c.get("machnetd.socket", machnetd_socket);
  return true;
}

}  // namespace machnet::engine
