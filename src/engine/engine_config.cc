#include "engine/engine_config.h"

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

bool EngineConfig::load(const Config& c, std::string* err) {
  device = c.get("device", device);
  if (const auto* e = c.find("ip")) {
    if (!wire::parse_ip_setting(e->origin, e->value, &ip, &prefix_len, err)) return false;
  }
  if (const auto* e = c.find("gateway")) {
    if (!e->value.empty() && !wire::parse_ipv4(e->value, &gateway)) {
      *err = e->origin + ": gateway: expected an IPv4 address, got '" + e->value + "'";
      return false;
    }
  }
  if (const auto* e = c.find("mac")) {
    wire::MacAddr m;
    if (!wire::parse_mac(e->value, &m)) {
      *err = e->origin + ": mac: expected xx:xx:xx:xx:xx:xx, got '" + e->value + "'";
      return false;
    }
    mac = e->value;
  }
  uint64_t v = 0;
  if (c.has("mtu")) {
    if (!c.get_u64("mtu", 576, 9000, &v, err)) return false;
    mtu = static_cast<uint16_t>(v);
  }
  if (!c.get_bool("hugepages", &hugepages, err)) return false;
  log_level = c.get("log_level", log_level);
  eal_args = c.get("eal_args", eal_args);
  v = num_mbufs;
  if (!c.get_u64("mbufs", 1023, 1u << 22, &v, err)) return false;
  num_mbufs = static_cast<uint32_t>(v);
  v = rx_desc;
  if (!c.get_u64("rx_desc", 64, 16384, &v, err)) return false;
  rx_desc = static_cast<uint16_t>(v);
  v = tx_desc;
  if (!c.get_u64("tx_desc", 64, 16384, &v, err)) return false;
  tx_desc = static_cast<uint16_t>(v);
  v = socket_queue_len;
  if (!c.get_u64("socket_queue_len", 16, 1u << 20, &v, err)) return false;
  socket_queue_len = static_cast<uint32_t>(v);
  v = arp.retry_ns / 1000000;
  if (!c.get_u64("arp.retry_ms", 1, 60000, &v, err)) return false;
  arp.retry_ns = v * 1000000;
  v = arp.max_requests;
  if (!c.get_u64("arp.max_requests", 1, 100, &v, err)) return false;
  arp.max_requests = static_cast<uint32_t>(v);
  v = arp.reachable_ns / 1000000000;
  if (!c.get_u64("arp.reachable_s", 1, 86400, &v, err)) return false;
  arp.reachable_ns = v * 1000000000;
  v = arp.max_entries;
  if (!c.get_u64("arp.max_entries", 16, 1u << 20, &v, err)) return false;
  arp.max_entries = v;
  if (const auto* e = c.find("arp.static")) {
    static_neighbours.clear();
    std::string list = e->value + ",";
    for (size_t b = 0, comma; (comma = list.find(',', b)) != std::string::npos; b = comma + 1) {
      std::string item = list.substr(b, comma - b);
      if (item.empty()) continue;
      auto at = item.find('@');
      uint32_t nip = 0;
      wire::MacAddr m;
      if (at == std::string::npos || !wire::parse_ipv4(item.substr(0, at), &nip) ||
          !wire::parse_mac(item.substr(at + 1), &m)) {
        *err = e->origin + ": arp.static: expected ip@mac[,ip@mac...], got '" + item + "'";
        return false;
      }
      static_neighbours.emplace_back(nip, item.substr(at + 1));
    }
  }
  v = frag_timeout_ms;
  if (!c.get_u64("frag.timeout_ms", 10, 60000, &v, err)) return false;
  frag_timeout_ms = static_cast<uint32_t>(v);
  v = frag_max_flows;
  if (!c.get_u64("frag.max_flows", 16, 1u << 20, &v, err)) return false;
  frag_max_flows = static_cast<uint32_t>(v);
  xdp_prog = c.get("xdp_prog", xdp_prog);
  if (!c.get_bool("xdp_shared_ip", &xdp_shared_ip, err)) return false;
  if (!c.get_double("fault.rx_drop", 0.0, 1.0, &fault_rx_drop, err)) return false;
  if (!c.get_double("fault.tx_drop", 0.0, 1.0, &fault_tx_drop, err)) return false;
  if (const auto* e = c.find("machnetd")) {
    const std::string& m = e->value;
    if (m == "auto") {
      machnetd = MachnetdMode::kAuto;
    } else if (m == "on" || m == "yes" || m == "true" || m == "1") {
      machnetd = MachnetdMode::kOn;
    } else if (m == "off" || m == "no" || m == "false" || m == "0") {
      machnetd = MachnetdMode::kOff;
    } else {
      *err = e->origin + ": machnetd: expected auto, on or off, got '" + m + "'";
      return false;
    }
  }
  if (const auto* e = c.find("machnetd.socket")) {
    if (e->value.empty() || e->value.size() >= 108) {
      *err = e->origin + ": machnetd.socket: expected a unix socket path (< 108 bytes), got '" +
             e->value + "'";
      return false;
    }
    machnetd_socket = e->value;
  }
  return true;
}

}  // namespace machnet::engine
