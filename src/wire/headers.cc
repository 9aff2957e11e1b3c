#include "wire/headers.h"

#include <cstdio>
#include <cstdlib>

namespace machnet::wire {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

// Strict dotted quad: exactly four decimal parts of 1..3 digits, each <= 255,
// nothing else. Leading zeros are rejected: inet_aton() reads "010" as octal 8,
// so such input means different addresses to different tools. inet_pton would do, but spelling out
// the grammar keeps the accepted set obvious (no leading '+', no whitespace, no trailing garbage).
bool parse_ipv4(const std::string& text, uint32_t* host_order_ip) {
  uint32_t ip = 0;
  size_t i = 0;
  const size_t n = text.size();
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= n || text[i] != '.') return false;
      ++i;
    }
    uint32_t value = 0;
    size_t digits = 0;
    while (i < n && text[i] >= '0' && text[i] <= '9') {
      if (++digits > 3) return false;
      value = value * 10 + static_cast<uint32_t>(text[i] - '0');
      ++i;
    }
    if (digits == 0 || value > 255) return false;
    if (digits > 1 && text[i - digits] == '0') return false;
    ip = (ip << 8) | value;
  }
  if (i != n) return false;
  *host_order_ip = ip;
  return true;
}

std::string format_ipv4(uint32_t ip) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", (ip >> 24) & 0xff, (ip >> 16) & 0xff,
                (ip >> 8) & 0xff, ip & 0xff);
  return buf;
}

// "aa:bb:cc:dd:ee:ff" (':' or '-' separators, either case), exactly 17 chars.
bool parse_mac(const std::string& text, MacAddr* mac) {
  if (text.size() != 17) return false;
  const char sep = text[2];
  if (sep != ':' && sep != '-') return false;
  MacAddr out{};
  for (size_t b = 0; b < 6; ++b) {
    const size_t at = b * 3;
    if (b > 0 && text[at - 1] != sep) return false;
    const int hi = hex_value(text[at]);
    const int lo = hex_value(text[at + 1]);
    if (hi < 0 || lo < 0) return false;
    out[b] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *mac = out;
  return true;
}

std::string format_mac(const MacAddr& mac) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return buf;
}

bool parse_ip_setting(const std::string& origin, const std::string& value, uint32_t* host_order_ip,
                      uint8_t* prefix_len, std::string* err) {
  std::string v = value;
  unsigned long prefix = 24;
  auto slash = v.find('/');
  if (slash != std::string::npos) {
    char* end = nullptr;
    prefix = std::strtoul(v.c_str() + slash + 1, &end, 10);
    if (*end != '\0' || slash + 1 == v.size() || prefix < 1 || prefix > 32) {
      *err = origin + ": ip: bad prefix length in '" + v + "'";
      return false;
    }
    v.resize(slash);
  }
  if (!parse_ipv4(v, host_order_ip) || *host_order_ip == 0) {
    *err = origin + ": ip: expected an IPv4 address like 10.0.0.1/24, got '" + value + "'";
    return false;
  }
  *prefix_len = static_cast<uint8_t>(prefix);
  return true;
}

}  // namespace machnet::wire
