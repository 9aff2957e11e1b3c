// Receive-side parsing of one Ethernet frame held in a contiguous buffer. The
// parser never reads outside [frame, frame + len), never allocates, and turns
// every malformed input into a DropReason the caller counts.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/drop_reason.h"
#include "wire/checksum.h"
#include "wire/headers.h"

namespace machnet::wire {

enum class FrameKind : uint8_t {
  kDrop,             // see ParsedFrame::drop
  kArp,              // arp_* fields valid; request or reply addressed to us
  kIcmpEcho,         // ICMP echo request to us, checksum verified
  kUdp,              // complete (unfragmented) UDP datagram to us, checksum verified
  kIpv4Fragment,     // IPv4 header valid, a fragment for us: hand to reassembly
  kIcmpUnreachable,  // ICMP destination unreachable about a UDP datagram we sent:
                     // src_port/dst_port/inner_dst_ip describe that datagram
};

struct ParseOptions {
  uint32_t local_ip = 0;             // host order; IPv4 packets to other addresses are dropped
  bool accept_broadcast_ip = false;  // accept 255.255.255.255 and local_ip's directed broadcast
  uint8_t prefix_len = 24;           // for the directed broadcast address
  bool ip_checksum_ok = false;       // the NIC verified the IPv4 header checksum
  bool l4_checksum_ok = false;       // the NIC verified the UDP/ICMP checksum
  RawSumFn raw_sum = wire::raw_sum;  // how checksums left to software are summed
};

struct ParsedFrame {
  FrameKind kind = FrameKind::kDrop;
  DropReason drop = DropReason::kCount;  // valid when kind == kDrop
  MacAddr eth_src{};
  // IPv4 (kIcmpEcho, kUdp, kIpv4Fragment)
  uint32_t src_ip = 0;  // host order
  uint32_t dst_ip = 0;  // host order
  uint16_t l3_offset = 0;
  uint16_t l4_offset = 0;     // first byte after the IPv4 header
  uint16_t ip_total_len = 0;  // from the header; frame may carry Ethernet padding after it
  // UDP (kUdp)
  uint16_t src_port = 0;  // host order
  uint16_t dst_port = 0;  // host order
  uint16_t payload_offset = 0;
  uint16_t payload_len = 0;
  // kIcmpUnreachable: the code (3 = port unreachable) and the datagram's
  // destination; src_port is our (local) port, dst_port the remote one.
  uint8_t icmp_code = 0;
  uint32_t inner_dst_ip = 0;  // host order
  // ARP (kArp)
  uint16_t arp_op = 0;
  MacAddr arp_sha{};
  uint32_t arp_spa = 0;  // host order
  uint32_t arp_tpa = 0;  // host order
};

// Classifies and validates one frame. ARP requests whose target is not
// opts.local_ip are dropped as kArpNotForUs (gratuitous ARP from others is kArp
// with arp_spa == arp_tpa, so the caller may refresh an existing cache entry).
ParsedFrame parse_frame(const uint8_t* frame, size_t len, const ParseOptions& opts);

// Validates the UDP header and checksum of a datagram whose IPv4 header starts
// at `ip` and which is contiguous for ip_total_len bytes (a reassembled
// datagram copied out, for instance). Fills the UDP fields of `out`.
// Returns DropReason::kCount when the datagram is good.
DropReason parse_udp(const uint8_t* ip, size_t len, bool l4_checksum_ok, ParsedFrame* out,
                     RawSumFn raw_sum = wire::raw_sum);

// Verifies the UDP checksum of a datagram given as the IPv4 header plus the UDP
// header and payload spread over segments already added to `acc`.
// Helper for mbuf chains: seeds `acc` with the pseudo-header.
void add_udp_pseudo_header(const Ipv4Hdr& ip, uint16_t udp_len, ChecksumAccumulator* acc);

}  // namespace machnet::wire
