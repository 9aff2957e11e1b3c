// Builders of valid test frames and small helpers to mutate them, shared by the
// wire tests. Frames live in std::vector sized exactly to the frame so ASan
// catches any read past the end.
#pragma once

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <vector>

#include "wire/build.h"
#include "wire/checksum.h"
#include "wire/headers.h"
#include "wire/parse.h"

namespace machnet {
// Failure messages show drop reasons by name instead of as raw bytes.
inline void PrintTo(DropReason r, std::ostream* os) {
  *os << drop_reason_name(r);
}
}  // namespace machnet

namespace machnet::test {

using Frame = std::vector<uint8_t>;

constexpr uint32_t kLocalIp = 0x0a000001;  // 10.0.0.1
constexpr uint32_t kPeerIp = 0x0a000002;   // 10.0.0.2
constexpr uint32_t kOtherIp = 0x0a000063;  // 10.0.0.99
constexpr wire::MacAddr kLocalMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr wire::MacAddr kPeerMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
constexpr size_t kL3 = wire::kEthHdrLen;
constexpr size_t kL4 = wire::kEthHdrLen + sizeof(wire::Ipv4Hdr);

inline wire::ParseOptions local_opts() {
  wire::ParseOptions o;
  o.local_ip = kLocalIp;
  return o;
}

inline uint16_t get16(const Frame& f, size_t off) {
  uint16_t v;
  std::memcpy(&v, f.data() + off, 2);
  return ntohs(v);
}
inline void put16(Frame* f, size_t off, uint16_t host) {
  const uint16_t v = htons(host);
  std::memcpy(f->data() + off, &v, 2);
}
inline void put32(Frame* f, size_t off, uint32_t host) {
  const uint32_t v = htonl(host);
  std::memcpy(f->data() + off, &v, 4);
}

inline size_t ip_hl(const Frame& f) {
  return static_cast<size_t>(f[kL3] & 0x0f) * 4;
}

// Recomputes the IPv4 header checksum after a test mutated the header.
inline void fix_ip_checksum(Frame* f) {
  const size_t hl = ip_hl(*f);
  put16(f, kL3 + 10, 0);
  const uint16_t c = wire::internet_checksum(f->data() + kL3, hl);
  std::memcpy(f->data() + kL3 + 10, &c, 2);
}

// Payload byte i is (seed + 7 * i) so every frame has recognisable content.
inline Frame make_udp(size_t payload_len, uint8_t seed = 1, uint16_t sport = 4000,
                      uint16_t dport = 5000) {
  Frame f(wire::kUdpHeadersLen + payload_len);
  wire::UdpFlow flow;
  flow.src_mac = kPeerMac;
  flow.dst_mac = kLocalMac;
  flow.src_ip = kPeerIp;
  flow.dst_ip = kLocalIp;
  flow.src_port = sport;
  flow.dst_port = dport;
  wire::build_udp_headers(f.data(), flow, static_cast<uint16_t>(payload_len), 0x1234, 64, false);
  for (size_t i = 0; i < payload_len; ++i) {
    f[wire::kUdpHeadersLen + i] = static_cast<uint8_t>(seed + 7 * i);
  }
  wire::Ipv4Hdr ip;
  wire::UdpHdr udp;
  std::memcpy(&ip, f.data() + kL3, sizeof(ip));
  std::memcpy(&udp, f.data() + kL4, sizeof(udp));
  const uint16_t c = wire::udp_checksum(ip, udp, f.data() + wire::kUdpHeadersLen, payload_len);
  std::memcpy(f.data() + kL4 + 6, &c, 2);
  return f;
}

// Recomputes the UDP checksum over udp.length bytes after a mutation.
inline void fix_udp_checksum(Frame* f) {
  const size_t l4 = kL3 + ip_hl(*f);
  put16(f, l4 + 6, 0);
  wire::Ipv4Hdr ip;
  wire::UdpHdr udp;
  std::memcpy(&ip, f->data() + kL3, sizeof(ip));
  std::memcpy(&udp, f->data() + l4, sizeof(udp));
  const uint16_t c = wire::udp_checksum(ip, udp, f->data() + l4 + 8, ntohs(udp.length) - 8u);
  std::memcpy(f->data() + l4 + 6, &c, 2);
}

// ICMP checksum over the IP payload (total_length - header length).
inline void fix_icmp_checksum(Frame* f) {
  const size_t hl = ip_hl(*f);
  const size_t l4 = kL3 + hl;
  put16(f, l4 + 2, 0);
  const uint16_t c = wire::internet_checksum(f->data() + l4, get16(*f, kL3 + 2) - hl);
  std::memcpy(f->data() + l4 + 2, &c, 2);
}

// A valid ICMP echo request from the peer to us (no builder exists: the
// engine only ever answers echo requests).
inline Frame make_icmp_echo(size_t payload_len, uint8_t seed = 3, uint8_t ttl = 64) {
  Frame f(kL4 + sizeof(wire::IcmpHdr) + payload_len);
  wire::UdpFlow flow;
  flow.src_mac = kPeerMac;
  flow.dst_mac = kLocalMac;
  flow.src_ip = kPeerIp;
  flow.dst_ip = kLocalIp;
  // Reuse the UDP builder for Ethernet + IPv4, then turn it into ICMP.
  Frame tmp(wire::kUdpHeadersLen);
  wire::build_udp_headers(tmp.data(), flow, 0, 0x4321, ttl, false);
  std::memcpy(f.data(), tmp.data(), kL4);
  f[kL3 + 9] = wire::kIpProtoIcmp;
  put16(&f, kL3 + 2, static_cast<uint16_t>(f.size() - kL3));
  fix_ip_checksum(&f);
  f[kL4] = wire::kIcmpEchoRequest;
  f[kL4 + 1] = 0;
  put16(&f, kL4 + 4, 0xbeef);  // id
  put16(&f, kL4 + 6, 7);       // seq
  for (size_t i = 0; i < payload_len; ++i) f[kL4 + 8 + i] = static_cast<uint8_t>(seed + 13 * i);
  fix_icmp_checksum(&f);
  return f;
}

inline Frame make_arp(uint16_t op, uint32_t spa, uint32_t tpa,
                      const wire::MacAddr& eth_dst = wire::kBroadcastMac,
                      const wire::MacAddr& tha = wire::kZeroMac) {
  Frame f(wire::kArpFrameLen);
  wire::build_arp(f.data(), op, eth_dst, kPeerMac, spa, tha, tpa);
  return f;
}

inline wire::ParsedFrame parse(const Frame& f, const wire::ParseOptions& o = local_opts()) {
  return wire::parse_frame(f.data(), f.size(), o);
}

}  // namespace machnet::test
