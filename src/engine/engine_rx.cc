// Receive path: classify each frame, answer ARP and ICMP echo, reassemble
// fragments, queue UDP datagrams on their socket. Every drop is counted.
#include <rte_cycles.h>
#include <rte_ip.h>

#include <cerrno>
#include <cstring>

#include "engine/engine_impl.h"
#include "wire/build.h"
#include "wire/checksum.h"

namespace machnet::engine {

void Engine::Impl::rx_one(rte_mbuf* m) {
  counters.rx_packets++;
  counters.rx_bytes += m->pkt_len;
  if (config.fault_rx_drop > 0 && fault_dist(fault_rng) < config.fault_rx_drop) {
    drop_mbuf(m, DropReason::kInjected);
    return;
  }
  wire::ParseOptions opts;
  opts.local_ip = config.ip;
  opts.accept_broadcast_ip = true;
  opts.prefix_len = config.prefix_len;
  opts.ip_checksum_ok = (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
  opts.l4_checksum_ok = (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
  // Frames arrive in one segment (the data room holds a full MTU frame); a PMD
  // that scatters anyway gets its first segment parsed, and lengths that run
  // past it are rejected by the parser as truncated.
  const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
  wire::ParsedFrame pf = wire::parse_frame(data, m->data_len, opts);
  switch (pf.kind) {
    case wire::FrameKind::kDrop:
      drop_mbuf(m, pf.drop);
      return;
    case wire::FrameKind::kArp:
      rx_arp(m, pf);
      return;
    case wire::FrameKind::kIcmpEcho:
      rx_icmp_echo(m, pf);
      return;
    case wire::FrameKind::kIpv4Fragment:
      rx_fragment(m, pf);
      return;
    case wire::FrameKind::kUdp:
      deliver_udp(m, pf.l3_offset, pf.src_ip, pf.src_port, pf.dst_port, pf.payload_offset,
                  pf.payload_len);
      return;
    case wire::FrameKind::kIcmpUnreachable:
      rx_icmp_unreachable(m, pf);
      return;
  }
}

void Engine::Impl::rx_arp(rte_mbuf* m, const wire::ParsedFrame& pf) {
  counters.rx_arp++;
  uint64_t now = now_ns();
  if (attached) {
    // machnetd answers ARP for the host (ARP is steered to it): never reply,
    // only refresh what we know.
    arp->learn(pf.arp_spa, pf.arp_sha, now, /*create=*/false);
    rte_pktmbuf_free(m);
    return;
  }
  if (pf.arp_tpa == config.ip && pf.arp_spa != config.ip) {
    // Addressed to us: the sender will talk to us, so it is worth an entry
    // (as Linux does); a reply completes our own resolution.
    arp->learn(pf.arp_spa, pf.arp_sha, now, /*create=*/pf.arp_op == wire::kArpOpRequest);
    if (pf.arp_op == wire::kArpOpRequest) {
      send_arp(wire::kArpOpReply, pf.arp_sha, pf.arp_sha, pf.arp_spa);
    }
  } else {
    // Gratuitous ARP or a broadcast reply: refresh only what we already know,
    // so nobody can fill our table by shouting.
    arp->learn(pf.arp_spa, pf.arp_sha, now, /*create=*/false);
  }
  rte_pktmbuf_free(m);
}

void Engine::Impl::rx_icmp_echo(rte_mbuf* m, const wire::ParsedFrame& pf) {
  if (attached || pf.dst_ip != config.ip) {
    // Attached: machnetd answers echo for the host. Standalone: echo to a
    // broadcast address: ignored, as Linux does by default
    // (icmp_echo_ignore_broadcasts), and a reply would carry that address.
    drop_mbuf(m, DropReason::kIcmpUnhandled);
    return;
  }
  uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
  wire::icmp_echo_request_to_reply(frame, pf.l3_offset, pf.l4_offset, pf.ip_total_len);
  // Drop Ethernet padding so the reply is exactly the IP datagram.
  uint32_t len = pf.l3_offset + pf.ip_total_len;
  if (m->pkt_len > len) rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - len));
  m->ol_flags = 0;
  counters.icmp_echo_replies++;
  tx_enqueue(m);
}

void Engine::Impl::rx_fragment(rte_mbuf* m, const wire::ParsedFrame& pf) {
  counters.rx_fragments++;
  if (frag_table == nullptr) {
    // Attached: machnetd reassembles (fragments are steered to it) and hands
    // us whole datagrams; a fragment here was misrouted.
    drop_mbuf(m, DropReason::kBadFragment);
    return;
  }
  m->l2_len = pf.l3_offset;
  m->l3_len = static_cast<uint16_t>(pf.l4_offset - pf.l3_offset);
  // The table keys on (src, dst, id, proto); overlapping, oversized or
  // inconsistent fragments make DPDK put the whole datagram on the death row.
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, pf.l3_offset);
  uint32_t before = death_row.cnt;
  rte_mbuf* whole =
      rte_ipv4_frag_reassemble_packet(frag_table, &death_row, m, rte_get_tsc_cycles(), ip);
  if (death_row.cnt != before)
    counters.drops[static_cast<size_t>(DropReason::kBadFragment)] += death_row.cnt - before;
  if (whole == nullptr) return;  // waiting for more, or dropped above
  counters.reassembled++;
  rx_reassembled(whole);
}

void Engine::Impl::rx_reassembled(rte_mbuf* m) {
  // Headers are in the first segment (DPDK keeps the first fragment's
  // headers there); the UDP header may not be, so copy it out.
  uint16_t l3 = m->l2_len;
  auto* ip = rte_pktmbuf_mtod_offset(m, wire::Ipv4Hdr*, l3);
  if (ip->protocol != wire::kIpProtoUdp) {
    drop_mbuf(m, DropReason::kUnknownIpProto);
    return;
  }
  uint16_t l4 = static_cast<uint16_t>(l3 + ip->header_len());
  uint32_t ip_len = m->pkt_len - l3;
  uint32_t udp_len_avail = m->pkt_len - l4;
  wire::UdpHdr udp_copy;
  const auto* udp =
      static_cast<const wire::UdpHdr*>(rte_pktmbuf_read(m, l4, sizeof(udp_copy), &udp_copy));
  if (udp == nullptr) {
    drop_mbuf(m, DropReason::kTruncatedUdp);
    return;
  }
  uint16_t udp_len = ntohs(udp->length);
  if (udp_len < sizeof(wire::UdpHdr) || udp_len > udp_len_avail || ip_len > 65535) {
    drop_mbuf(m, DropReason::kBadUdpLength);
    return;
  }
  if (udp->checksum != 0) {
    wire::ChecksumAccumulator acc;
    wire::add_udp_pseudo_header(*ip, udp_len, &acc);
    uint32_t off = l4, left = udp_len;
    for (rte_mbuf* seg = m; seg != nullptr && left > 0; seg = seg->next) {
      if (off >= seg->data_len) {
        off -= seg->data_len;
        continue;
      }
      uint32_t n = seg->data_len - off;
      if (n > left) n = left;
      acc.add(rte_pktmbuf_mtod_offset(seg, const uint8_t*, off), n);
      left -= n;
      off = 0;
    }
    if (acc.finish() != 0) {
      drop_mbuf(m, DropReason::kBadUdpChecksum);
      return;
    }
  }
  deliver_udp(m, l3, ntohl(ip->src), ntohs(udp->src_port), ntohs(udp->dst_port),
              static_cast<uint16_t>(l4 + sizeof(wire::UdpHdr)),
              static_cast<uint16_t>(udp_len - sizeof(wire::UdpHdr)));
}

void Engine::Impl::rx_icmp_unreachable(rte_mbuf* m, const wire::ParsedFrame& pf) {
  counters.icmp_unreachable_rx++;
  UdpSocket* s = sockets[pf.src_port];
  if (s != nullptr) {
    // RFC 1122 4.1.3.3: report to the application (the kernel does so on
    // connected sockets; the socket layer decides, we keep the latest).
    s->error_ = pf.icmp_code == 3 ? ECONNREFUSED : pf.icmp_code == 0 ? ENETUNREACH : EHOSTUNREACH;
    s->error_ip_ = pf.inner_dst_ip;
    s->error_port_ = pf.dst_port;
  }
  rte_pktmbuf_free(m);
}

void Engine::Impl::send_port_unreachable(rte_mbuf* m, uint16_t l3_off) {
  auto* ip = rte_pktmbuf_mtod_offset(m, const wire::Ipv4Hdr*, l3_off);
  if (ntohl(ip->dst) != config.ip) return;  // never for broadcasts (RFC 1122 3.2.2)
  uint64_t now = now_ns();
  if (now - icmp_refill_ns >= 1'000'000) {
    icmp_tokens += (now - icmp_refill_ns) / (1'000'000'000 / kIcmpTokensPerSec);
    if (icmp_tokens > kIcmpBurst) icmp_tokens = kIcmpBurst;
    icmp_refill_ns = now;
  }
  if (icmp_tokens == 0) return;
  rte_mbuf* r = alloc_mbuf();
  if (r == nullptr) return;
  auto* frame = reinterpret_cast<uint8_t*>(
      rte_pktmbuf_append(r, static_cast<uint16_t>(wire::kUdpHeadersLen + wire::kIcmpQuoteMax)));
  const auto* eth = rte_pktmbuf_mtod(m, const wire::EthHdr*);
  size_t avail = m->data_len - l3_off;
  size_t len = wire::build_icmp_unreachable(frame, 3, mac, eth->src, config.ip, ntohl(ip->src),
                                            reinterpret_cast<const uint8_t*>(ip), avail);
  if (len == 0) {
    rte_pktmbuf_free(r);
    return;
  }
  rte_pktmbuf_trim(r, static_cast<uint16_t>(r->pkt_len - len));
  icmp_tokens--;
  counters.icmp_unreachable_tx++;
  tx_enqueue(r);
}

void Engine::Impl::deliver_udp(rte_mbuf* m, uint16_t l3_off, uint32_t src_ip, uint16_t src_port,
                               uint16_t dst_port, uint16_t payload_off, uint16_t payload_len) {
  UdpSocket* s = sockets[dst_port];
  if (s == nullptr) {
    // Attached: port unreachable is machnetd's job (datagrams for ports
    // nobody holds are steered to it); one here raced with our unbind.
    if (!attached) send_port_unreachable(m, l3_off);
    drop_mbuf(m, DropReason::kNoSocket);
    return;
  }
  if (s->tail_ - s->head_ >= s->capacity_) {
    drop_mbuf(m, DropReason::kSocketQueueFull);
    return;
  }
  UdpSocket::Slot& slot = s->slots_[s->tail_ % s->capacity_];
  slot.m = m;
  slot.src_ip = src_ip;
  slot.src_port = src_port;
  slot.payload_off = payload_off;
  slot.payload_len = payload_len;
  s->tail_++;
  s->rx_datagrams_++;
  s->rx_bytes_ += payload_len;
  counters.udp_rx++;
}

}  // namespace machnet::engine
