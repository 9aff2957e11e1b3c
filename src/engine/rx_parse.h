// Receiving a frame, for the engine and machnetd alike: the wire parser
// (src/wire, no DPDK) told what the NIC already verified, with the checksums
// left to software summed by DPDK (engine/checksum.h), then the frame handed
// to the receiver's handler for its kind.
#pragma once

#include <rte_mbuf.h>

#include "engine/checksum.h"
#include "wire/parse.h"

namespace machnet::engine {

// Frames arrive in one segment (the data room holds a full MTU frame); a PMD
// that scatters anyway gets its first segment parsed, and lengths that run
// past it are rejected by the parser as truncated.
inline wire::ParsedFrame parse_rx(const rte_mbuf* m, uint32_t local_ip, uint8_t prefix_len) {
  wire::ParseOptions opts;
  opts.local_ip = local_ip;
  opts.accept_broadcast_ip = true;
  opts.prefix_len = prefix_len;
  opts.ip_checksum_ok = (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
  opts.l4_checksum_ok = (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
  opts.raw_sum = raw_checksum;
  return wire::parse_frame(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, opts);
}

// Parses m and hands it to the receiver: r.rx_drop(m, reason), r.rx_arp(m,
// pf), r.rx_echo(m, pf), r.rx_fragment(m, pf), r.rx_udp(m, pf) or
// r.rx_unreachable(m, pf). Each takes m over.
template <typename Receiver>
void receive(Receiver& r, rte_mbuf* m, uint32_t local_ip, uint8_t prefix_len) {
  const wire::ParsedFrame pf = parse_rx(m, local_ip, prefix_len);
  switch (pf.kind) {
    case wire::FrameKind::kDrop:
      return r.rx_drop(m, pf.drop);
    case wire::FrameKind::kArp:
      return r.rx_arp(m, pf);
    case wire::FrameKind::kIcmpEcho:
      return r.rx_echo(m, pf);
    case wire::FrameKind::kIpv4Fragment:
      return r.rx_fragment(m, pf);
    case wire::FrameKind::kUdp:
      return r.rx_udp(m, pf);
    case wire::FrameKind::kIcmpUnreachable:
      return r.rx_unreachable(m, pf);
  }
  r.rx_drop(m, DropReason::kUnknownEtherType);
}

}  // namespace machnet::engine
