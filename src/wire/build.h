// Transmit-side header construction into caller-provided buffers (an mbuf's
// data area in the engine, a byte array in tests). No allocation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire/headers.h"

namespace machnet::wire {

// A complete 42-byte ARP frame. For a request, tha is zero and eth_dst is
// broadcast; a gratuitous ARP is a request with spa == tpa.
size_t build_arp(uint8_t* buf, uint16_t op, const MacAddr& eth_dst, const MacAddr& sha,
                 uint32_t spa_host, const MacAddr& tha, uint32_t tpa_host);

struct UdpFlow {
  MacAddr src_mac{};
  MacAddr dst_mac{};
  uint32_t src_ip = 0;  // host order
  uint32_t dst_ip = 0;  // host order
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
};

// Writes Ethernet + IPv4 + UDP headers (kUdpHeadersLen bytes) for a datagram of
// payload_len bytes. The IPv4 header checksum is computed unless
// ip_csum_offload; the UDP checksum field is left 0 for the caller to fill
// (software: udp_checksum(); offload: udp_pseudo_header_checksum()).
size_t build_udp_headers(uint8_t* buf, const UdpFlow& flow, uint16_t payload_len, uint16_t ip_id,
                         uint8_t ttl, bool ip_csum_offload);

// Full UDP checksum over the pseudo-header, UDP header (checksum field 0) and
// payload. Returns the value to store (0 is sent as 0xffff, per RFC 768).
uint16_t udp_checksum(const Ipv4Hdr& ip, const UdpHdr& udp, const void* payload,
                      size_t payload_len);

// Pseudo-header-only sum, as NICs with UDP checksum offload expect in the field.
uint16_t udp_pseudo_header_checksum(const Ipv4Hdr& ip, uint16_t udp_len);

// Turns a received ICMP echo request frame into the echo reply in place: swaps
// MACs and IPs, sets type 0, fixes both checksums. `frame` must have passed
// parse_frame() as kIcmpEcho with the given ParsedFrame offsets.
void icmp_echo_request_to_reply(uint8_t* frame, uint16_t l3_offset, uint16_t l4_offset,
                                uint16_t ip_total_len);

// ICMP destination unreachable (type 3, `code`) about the received datagram
// whose IPv4 header starts at orig_ip (orig_len bytes available: its header
// and at least 8 bytes are quoted, up to kIcmpQuoteMax). Writes a complete
// frame to buf (at least kUdpHeadersLen + kIcmpQuoteMax bytes) and returns its
// length, or 0 when orig_len is too short to quote.
constexpr size_t kIcmpQuoteMax = 548;  // keeps the error within 576 bytes (RFC 1812)
size_t build_icmp_unreachable(uint8_t* buf, uint8_t code, const MacAddr& src_mac,
                              const MacAddr& dst_mac, uint32_t src_ip_host, uint32_t dst_ip_host,
                              const uint8_t* orig_ip, size_t orig_len);

}  // namespace machnet::wire
