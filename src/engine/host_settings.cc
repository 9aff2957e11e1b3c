#include "engine/host_settings.h"

#include "common/conf.h"

namespace machnet::engine {

const std::vector<std::string>& HostSettings::keys() {
  static const std::vector<std::string> k = {
      "device",
      "ip",
      "gateway",
      "mtu",
      "mac",
      "log_level",
      "frag.timeout_ms",
      "frag.max_flows",
      "frag.max_mbufs",
      "frag.max_bytes",
  };
  return k;
}

bool HostSettings::load(const Config& c, std::string* err) {
  for (const std::string& k : keys()) {
    if (!c.check(k, err)) return false;
  }
  // Every value present has passed the schema: the parsers cannot fail.
  char why[256];
  device = c.get("device", device);
  if (const auto* e = c.find("ip"))
    mn_conf_ip_prefix(e->value.c_str(), &ip, &prefix_len, why, sizeof(why));
  if (const auto* e = c.find("gateway")) {
    gateway = 0;
    if (!e->value.empty()) mn_conf_ipv4(e->value.c_str(), &gateway);
  }
  mac = c.get("mac", mac);
  log_level = c.get("log_level", log_level);
  return take_uint(c, "mtu", &mtu, err) && take_uint(c, "frag.timeout_ms", &frag_timeout_ms, err) &&
         take_uint(c, "frag.max_flows", &frag_max_flows, err) &&
         take_uint(c, "frag.max_mbufs", &frag_max_mbufs, err) &&
         take_uint(c, "frag.max_bytes", &frag_max_bytes, err);
}

}  // namespace machnet::engine
