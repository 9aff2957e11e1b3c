// Transmit path: UDP datagrams (fragmented above the MTU), ARP, neighbour
// resolution, and the TX buffer flushed once per poll or per send.
#include <cerrno>
#include <cstring>

#include "engine/checksum.h"
#include "engine/engine_impl.h"
#include "wire/build.h"

namespace machnet::engine {

constexpr uint8_t kTtl = 64;

void EngineArpEvents::send_request(uint32_t ip_host) {
  if (e_->attached) {
    // ARP replies reach machnetd, which records every neighbour it hears in
    // shared memory: look there first. A hit is learned right after this
    // callback returns (learn_found_now); a miss is looked up on each tick
    // while our own request is out.
    uint8_t mac[6];
    int found =
        e_->learn_now_count < Engine::Impl::kLearnNowMax ? e_->shared_neighbour(ip_host, mac) : 0;
    if (found < 0) return;  // the daemon is gone: the engine is detached
    if (found == 1) {
      auto& slot = e_->learn_now[e_->learn_now_count++];
      slot.first = ip_host;
      memcpy(slot.second.data(), mac, 6);
      return;
    }
    e_->wait_shared_neighbour(ip_host);
  }
  if (e_->kernel_neigh != nullptr) {
    // Shared IP: ARP replies go to the kernel; ask it (next timer tick).
    if (e_->neigh_queued < Engine::Impl::kNeighQueue) e_->neigh_queue[e_->neigh_queued++] = ip_host;
    return;
  }
  e_->send_arp(wire::kArpOpRequest, wire::kBroadcastMac, wire::kZeroMac, ip_host);
}

void EngineArpEvents::release(void* pkt, const wire::MacAddr& mac) {
  auto* m = static_cast<rte_mbuf*>(pkt);
  memcpy(rte_pktmbuf_mtod(m, uint8_t*), mac.data(), mac.size());
  e_->tx_enqueue(m);
}

void EngineArpEvents::drop(void* pkt, DropReason reason) {
  e_->drop_mbuf(static_cast<rte_mbuf*>(pkt), reason);
}

bool Engine::Impl::next_hop(uint32_t dst_ip, uint32_t* nh, bool* broadcast) const {
  uint32_t directed = (config.ip & netmask) | ~netmask;
  *broadcast = dst_ip == 0xffffffffu || (netmask != 0xffffffffu && dst_ip == directed);
  if (*broadcast || (dst_ip & netmask) == (config.ip & netmask)) {
    *nh = dst_ip;
    return true;
  }
  if (config.gateway == 0) return false;
  *nh = config.gateway;
  return true;
}

void Engine::Impl::send_resolved(rte_mbuf* m, uint32_t next_hop_ip, bool broadcast) {
  wire::MacAddr dst;
  if (broadcast) {
    dst = wire::kBroadcastMac;
  } else {
    uint64_t now = now_ns();
    net::ArpLookup r = arp->resolve(next_hop_ip, now, m, &dst);
    if (learn_now_count != 0) learn_found_now(now);  // may release m at once
    if (r != net::ArpLookup::kHit) return;  // queued until the neighbour answers, or dropped
  }
  memcpy(rte_pktmbuf_mtod(m, uint8_t*), dst.data(), dst.size());
  tx_enqueue(m);
}

void Engine::Impl::send_arp(uint16_t op, const wire::MacAddr& eth_dst, const wire::MacAddr& tha,
                            uint32_t tpa) {
  rte_mbuf* m = responder.arp(op, eth_dst, tha, tpa);
  if (m == nullptr) {
    count_drop(DropReason::kNoMbuf);
    return;
  }
  counters.tx_arp++;
  tx_enqueue(m);
}

void Engine::Impl::ipv4_header_checksum(rte_mbuf* m, wire::Ipv4Hdr* ip) const {
  m->l2_len = wire::kEthHdrLen;
  m->l3_len = sizeof(wire::Ipv4Hdr);
  if (tx_ip_csum)
    m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
  else
    ip->checksum = ipv4_checksum(ip);
}

namespace {

// Reads a datagram spread over an iovec array in order, without allocating.
class IovReader {
 public:
  IovReader(const iovec* iov, int n) : iov_(iov), n_(n) {}
  void copy(uint8_t* out, size_t len) {
    while (len > 0) {
      size_t avail = iov_[i_].iov_len - off_;
      size_t take = avail < len ? avail : len;
      memcpy(out, static_cast<const uint8_t*>(iov_[i_].iov_base) + off_, take);
      out += take;
      len -= take;
      off_ += take;
      if (off_ == iov_[i_].iov_len && i_ + 1 < n_) {
        i_++;
        off_ = 0;
      }
    }
  }

 private:
  const iovec* iov_;
  int n_;
  int i_ = 0;
  size_t off_ = 0;
};

}  // namespace

int Engine::Impl::udp_sendv(UdpSocket* sock, uint32_t dst_ip, uint16_t dst_port, const iovec* iov,
                            int iovcnt, bool flush) {
  size_t len = 0;
  for (int i = 0; i < iovcnt; i++) len += iov[i].iov_len;
  if (len > wire::kMaxUdpPayload) return -EMSGSIZE;
  if (dst_port == 0 || dst_ip == 0 || iovcnt < 0) return -EINVAL;
  uint32_t nh;
  bool bcast;
  if (!next_hop(dst_ip, &nh, &bcast)) return -ENETUNREACH;

  // Room in the TX batch for every frame first: with the ring full the
  // datagram is refused whole (-EAGAIN, nothing built, nothing lost), and the
  // socket layer waits as the kernel waits for send-buffer space.
  constexpr size_t kIpUdp = sizeof(wire::Ipv4Hdr) + sizeof(wire::UdpHdr);
  size_t chunk = (mtu - sizeof(wire::Ipv4Hdr)) & ~size_t{7};
  size_t frames = len + kIpUdp <= mtu ? 1 : (sizeof(wire::UdpHdr) + len + chunk - 1) / chunk;
  if (tx.room() < frames) {
    tx_flush();
    if (tx.room() < frames) return -EAGAIN;
  }

  wire::UdpFlow flow;
  flow.src_mac = mac;
  flow.src_ip = config.ip;
  flow.dst_ip = dst_ip;
  flow.src_port = sock->port();
  flow.dst_port = dst_port;
  uint16_t id = ip_id++;
  IovReader reader(iov, iovcnt);

  if (len + kIpUdp <= mtu) {
    rte_mbuf* m = alloc_mbuf();
    if (m == nullptr) {
      count_drop(DropReason::kNoMbuf);
      return -ENOBUFS;
    }
    auto* p = reinterpret_cast<uint8_t*>(
        rte_pktmbuf_append(m, static_cast<uint16_t>(wire::kUdpHeadersLen + len)));
    // Headers without checksums: the NIC or DPDK's helpers fill them in.
    wire::build_udp_headers(p, flow, static_cast<uint16_t>(len), id, kTtl,
                            /*ip_csum_offload=*/true);
    reader.copy(p + wire::kUdpHeadersLen, len);
    auto* ip = reinterpret_cast<wire::Ipv4Hdr*>(p + wire::kEthHdrLen);
    auto* udp = reinterpret_cast<wire::UdpHdr*>(p + wire::kEthHdrLen + sizeof(wire::Ipv4Hdr));
    ipv4_header_checksum(m, ip);
    if (tx_udp_csum) {
      udp->checksum = udp_offload_seed(ip);
      m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_UDP_CKSUM;
    } else {
      udp->checksum = udp_checksum(ip, udp);
    }
    send_resolved(m, nh, bcast);
  } else {
    // Fragment straight from the caller's buffers: one copy per byte, and
    // every fragment a single-segment mbuf, which every PMD (AF_XDP included)
    // can send. DPDK's rte_ipv4_fragment_packet would need a chained or
    // contiguous copy of the whole datagram first.
    wire::Ipv4Hdr ip_whole;
    wire::UdpHdr udp;
    uint8_t hdrs[wire::kUdpHeadersLen];
    wire::build_udp_headers(hdrs, flow, static_cast<uint16_t>(len), id, kTtl, true);
    memcpy(&ip_whole, hdrs + wire::kEthHdrLen, sizeof(ip_whole));
    memcpy(&udp, hdrs + wire::kEthHdrLen + sizeof(ip_whole), sizeof(udp));
    udp.checksum = udp_checksum_iov(&ip_whole, &udp, iov, iovcnt);

    size_t l4_total = sizeof(wire::UdpHdr) + len;
    for (size_t off = 0; off < l4_total; off += chunk) {
      size_t n = l4_total - off < chunk ? l4_total - off : chunk;
      rte_mbuf* m = alloc_mbuf();
      if (m == nullptr) {
        count_drop(DropReason::kNoMbuf);
        return -ENOBUFS;
      }
      auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(
          m, static_cast<uint16_t>(wire::kEthHdrLen + sizeof(wire::Ipv4Hdr) + n)));
      memcpy(p, hdrs, wire::kEthHdrLen);
      auto* ip = reinterpret_cast<wire::Ipv4Hdr*>(p + wire::kEthHdrLen);
      *ip = ip_whole;
      ip->total_length = htons(static_cast<uint16_t>(sizeof(wire::Ipv4Hdr) + n));
      bool more = off + n < l4_total;
      ip->frag_off =
          htons(static_cast<uint16_t>((off / 8) | (more ? wire::kIpFlagMoreFragments : 0)));
      ip->checksum = 0;
      ipv4_header_checksum(m, ip);
      uint8_t* out = p + wire::kEthHdrLen + sizeof(wire::Ipv4Hdr);
      if (off == 0) {
        memcpy(out, &udp, sizeof(udp));
        reader.copy(out + sizeof(udp), n - sizeof(udp));
      } else {
        reader.copy(out, n);
      }
      counters.tx_fragments++;
      send_resolved(m, nh, bcast);
    }
  }
  counters.udp_tx++;
  sock->tx_datagrams_++;
  if (flush) tx_flush();
  return 0;
}

void Engine::Impl::tx_enqueue(rte_mbuf* m) {
  if (config.fault_tx_drop > 0 && fault_dist(fault_rng) < config.fault_tx_drop) {
    drop_mbuf(m, DropReason::kInjected);
    return;
  }
  tx.add(m);
}

void Engine::Impl::tx_flush(bool keep) {
  if (detached.load(std::memory_order_relaxed)) {
    tx.forget();  // machnetd is gone: its mbufs are not ours to free
    return;
  }
  tx.flush(keep);
}

}  // namespace machnet::engine
