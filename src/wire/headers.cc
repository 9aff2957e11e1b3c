#include "wire/headers.h"

#include <cstdio>

#include "common/conf.h"

namespace machnet::wire {

// Strict dotted quad: exactly four decimal parts of 1..3 digits, each <= 255,
// nothing else. Leading zeros are rejected: inet_aton() reads "010" as octal 8,
// so such input means different addresses to different tools. The parser is
// machnet.conf's (common/conf.h), so configuration and tools agree.
bool parse_ipv4(const std::string& text, uint32_t* host_order_ip) {
  return text.find('\0') == std::string::npos && mn_conf_ipv4(text.c_str(), host_order_ip) == 0;
}

std::string format_ipv4(uint32_t ip) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", (ip >> 24) & 0xff, (ip >> 16) & 0xff,
                (ip >> 8) & 0xff, ip & 0xff);
  return buf;
}

// "aa:bb:cc:dd:ee:ff" (':' or '-' separators, either case), exactly 17 chars.
bool parse_mac(const std::string& text, MacAddr* mac) {
  return text.find('\0') == std::string::npos && mn_conf_mac(text.c_str(), mac->data()) == 0;
}

std::string format_mac(const MacAddr& mac) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return buf;
}

}  // namespace machnet::wire
