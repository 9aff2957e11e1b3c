#include "engine/engine_config.h"

#include "common/conf.h"
#include "wire/headers.h"

namespace machnet::engine {

const std::vector<std::string>& EngineConfig::keys() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> all = HostSettings::keys();
    for (const char* own :
         {"hugepages", "eal_args", "mbufs", "rx_desc", "tx_desc", "socket_queue_len",
          "arp.retry_ms", "arp.max_requests", "arp.reachable_s", "arp.max_entries", "arp.queue_len",
          "arp.static", "xdp_prog", "xdp_shared_ip", "fault.rx_drop", "fault.tx_drop", "machnetd",
          "machnetd.socket"})
      all.push_back(own);
    return all;
  }();
  return k;
}

namespace {

void add_neighbour(void* user, uint32_t ip, const uint8_t mac[6]) {
  wire::MacAddr m;
  std::copy(mac, mac + 6, m.begin());
  static_cast<EngineConfig*>(user)->static_neighbours.emplace_back(ip, wire::format_mac(m));
}

}  // namespace

MachnetdMode EngineConfig::mode_of(int mn_machnetd) {
  return mn_machnetd == MN_MACHNETD_ON    ? MachnetdMode::kOn
         : mn_machnetd == MN_MACHNETD_OFF ? MachnetdMode::kOff
                                          : MachnetdMode::kAuto;
}

net::ArpConfig EngineConfig::default_arp() {
  net::ArpConfig a;
  a.retry_ns = Config::default_uint("arp.retry_ms") * 1000000;
  a.max_requests = static_cast<uint32_t>(Config::default_uint("arp.max_requests"));
  a.reachable_ns = Config::default_uint("arp.reachable_s") * 1000000000;
  a.max_entries = Config::default_uint("arp.max_entries");
  a.max_pending_per_entry = Config::default_uint("arp.queue_len");
  return a;
}

bool EngineConfig::load(const Config& c, std::string* err) {
  // The schema (common/conf_schema.c) says what each value may be, for the
  // shim and every other reader alike. The shared keys, then the engine's own.
  for (const std::string& k : keys()) {
    if (!c.check(k, err)) return false;
  }
  if (!HostSettings::load(c, err)) return false;
  char why[256];
  if (!c.get_bool("hugepages", &hugepages, err)) return false;
  eal_args = c.get("eal_args", eal_args);
  if (!take_uint(c, "mbufs", &num_mbufs, err) || !take_uint(c, "rx_desc", &rx_desc, err) ||
      !take_uint(c, "tx_desc", &tx_desc, err) ||
      !take_uint(c, "socket_queue_len", &socket_queue_len, err) ||
      !take_uint(c, "arp.retry_ms", &arp.retry_ns, err, 1000000) ||
      !take_uint(c, "arp.max_requests", &arp.max_requests, err) ||
      !take_uint(c, "arp.reachable_s", &arp.reachable_ns, err, 1000000000) ||
      !take_uint(c, "arp.max_entries", &arp.max_entries, err) ||
      !take_uint(c, "arp.queue_len", &arp.max_pending_per_entry, err))
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
  if (m >= 0) machnetd = mode_of(m);
  machnetd_socket = c.get("machnetd.socket", machnetd_socket);
  return true;
}

}  // namespace machnet::engine
