// Receive path: classify each frame, answer ARP and ICMP echo, reassemble
// fragments, queue UDP datagrams on their socket. Every drop is counted.
#include <cerrno>
#include <cstring>

#include "engine/checksum.h"
#include "engine/engine_impl.h"
#include "engine/rx_parse.h"

namespace machnet::engine {

void Engine::Impl::rx_one(rte_mbuf* m) {
  counters.rx_packets++;
  counters.rx_bytes += m->pkt_len;
  if (config.fault_rx_drop > 0 && fault_dist(fault_rng) < config.fault_rx_drop) {
    drop_mbuf(m, DropReason::kInjected);
    return;
  }
  receive(*this, m, config.ip, config.prefix_len);
}

void Engine::Impl::rx_udp(rte_mbuf* m, const wire::ParsedFrame& pf) {
  deliver_udp(m, pf.l3_offset, pf.dst_ip, pf.src_ip, pf.src_port, pf.dst_port, pf.payload_offset,
              pf.payload_len);
}

void Engine::Impl::rx_arp(rte_mbuf* m, const wire::ParsedFrame& pf) {
  counters.rx_arp++;
  uint64_t now = now_ns();
  ArpVerdict v = arp_verdict(pf, config.ip);
  if (attached) {
    // machnetd answers ARP for the host (ARP is steered to it): never reply,
    // only refresh what we know.
    if (v.learn) arp->learn(pf.arp_spa, pf.arp_sha, now, /*create=*/false);
    rte_pktmbuf_free(m);
    return;
  }
  // A request addressed to us creates an entry; a reply completes our own
  // resolution (an entry the cache already has).
  if (v.learn)
    arp->learn(pf.arp_spa, pf.arp_sha, now,
               /*create=*/v.addressed && pf.arp_op == wire::kArpOpRequest);
  if (v.reply) send_arp(wire::kArpOpReply, pf.arp_sha, pf.arp_sha, pf.arp_spa);
  rte_pktmbuf_free(m);
}

void Engine::Impl::rx_echo(rte_mbuf* m, const wire::ParsedFrame& pf) {
  if (attached || pf.dst_ip != config.ip) {
    // Attached: machnetd answers echo for the host. Standalone: echo to a
    // broadcast address: ignored, as Linux does by default
    // (icmp_echo_ignore_broadcasts), and a reply would carry that address.
    drop_mbuf(m, DropReason::kIcmpUnhandled);
    return;
  }
  if (!Responder::echo_reply(m, pf)) {
    drop_mbuf(m, DropReason::kTruncatedIcmp);
    return;
  }
  counters.icmp_echo_replies++;
  tx_enqueue(m);
}

void Engine::Impl::rx_fragment(rte_mbuf* m, const wire::ParsedFrame& pf) {
  counters.rx_fragments++;
  if (!reassembly.ready()) {
    // Attached: machnetd reassembles (fragments are steered to it) and hands
    // us whole datagrams; a fragment here was misrouted.
    drop_mbuf(m, DropReason::kBadFragment);
    return;
  }
  rte_mbuf* whole = reassembly.add(m, pf.l3_offset, pf.l4_offset);
  if (whole == nullptr) return;  // waiting for more, or dropped (counted)
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
  if (udp->checksum != 0 && !udp_checksum_ok(m, ip, l4, udp_len)) {
    drop_mbuf(m, DropReason::kBadUdpChecksum);
    return;
  }
  deliver_udp(m, l3, ntohl(ip->dst), ntohl(ip->src), ntohs(udp->src_port), ntohs(udp->dst_port),
              static_cast<uint16_t>(l4 + sizeof(wire::UdpHdr)),
              static_cast<uint16_t>(udp_len - sizeof(wire::UdpHdr)));
}

void Engine::Impl::rx_unreachable(rte_mbuf* m, const wire::ParsedFrame& pf) {
  counters.icmp_unreachable_rx++;
  // The socket that sent the quoted datagram: the one a reply from its
  // destination would reach.
  UdpSocket* s = lookup_udp(pf.src_port, config.ip, pf.inner_dst_ip, pf.dst_port);
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
  rte_mbuf* r = responder.port_unreachable(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, l3_off,
                                           now_ns());
  if (r == nullptr) return;  // not to our unicast address, rate-limited, or no mbuf
  counters.icmp_unreachable_tx++;
  tx_enqueue(r);
}

void Engine::Impl::deliver_udp(rte_mbuf* m, uint16_t l3_off, uint32_t dst_ip, uint32_t src_ip,
                               uint16_t src_port, uint16_t dst_port, uint16_t payload_off,
                               uint16_t payload_len) {
  UdpSocket* s = lookup_udp(dst_port, dst_ip, src_ip, src_port);
  if (s == nullptr) {
    // No socket, or only sockets connected to someone else (the kernel
    // answers those with port unreachable too). Attached: port unreachable
    // is machnetd's job (datagrams for ports nobody holds are steered to
    // it); one here raced with our unbind or its sender is not our peer.
    if (!attached) send_port_unreachable(m, l3_off);
    drop_mbuf(m, DropReason::kNoSocket);
    return;
  }
  // As the kernel's SO_RCVBUF check: a queue below its bound takes the
  // datagram even if it goes over (so one of any size always fits an empty
  // queue); a queue at or over it takes nothing.
  if (s->tail_ - s->head_ >= s->capacity_ || s->queued_mbufs_ >= s->capacity_) {
    drop_mbuf(m, DropReason::kSocketQueueFull);
    return;
  }
  // All queues together past their budget: one holding more than its fair
  // share takes nothing (an empty one always takes a datagram).
  if (socket_mbufs >= socket_budget &&
      static_cast<uint64_t>(s->queued_mbufs_) * sockets_nonempty >= socket_budget) {
    drop_mbuf(m, DropReason::kSocketPoolShare);
    return;
  }
  socket_took(s, m->nb_segs);
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
