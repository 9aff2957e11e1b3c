#include "daemon/dataplane.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstring>

#include "daemon/log.h"
#include "engine/memif_guard.h"
#include "ipc/steering.h"
#include "wire/build.h"
#include "wire/checksum.h"
#include "wire/parse.h"

namespace machnet::daemon {
namespace {

constexpr unsigned kBurst = 32;
constexpr uint64_t kIcmpTokensPerSec = 1000;
constexpr uint64_t kIcmpBurst = 50;
constexpr uint64_t kLinkCheckNs = 100'000'000;
constexpr uint64_t kGatewayArpNs = 1'000'000'000;

}  // namespace

Dataplane::~Dataplane() {
  if (frag_tbl_ != nullptr) {
    rte_ip_frag_table_destroy(frag_tbl_);
    rte_ip_frag_free_death_row(&death_row_, 0);
  }
}

bool Dataplane::init(std::string* err) {
  // Reassembly is bounded: frag.max_flows datagrams in flight, each for at
  // most frag.timeout_ms; the table is the only place fragments wait.
  uint32_t bucket_entries = 8;
  uint32_t buckets = (d_->cfg.frag_max_flows + bucket_entries - 1) / bucket_entries;
  uint64_t max_cycles = rte_get_tsc_hz() / 1000 * d_->cfg.frag_timeout_ms;
  frag_tbl_ = rte_ip_frag_table_create(buckets, bucket_entries, buckets * bucket_entries,
                                       max_cycles, static_cast<int>(rte_socket_id()));
  if (frag_tbl_ == nullptr) {
    *err = std::string("cannot create the IPv4 reassembly table: ") + rte_strerror(rte_errno);
    return false;
  }
  return true;
}

unsigned Dataplane::poll() {
  mn_shm& shm = *d_->shm;
  unsigned total = 0;
  rte_mbuf* burst[kBurst];
  for (uint16_t q = 0; q < d_->nb_queues; q++) {
    if (q != 0 && mn_lease_state(&shm.leases[q]) != MN_LEASE_FREE) continue;
    if (d_->memif) engine::memif_guard::enter();
    uint16_t n = rte_eth_rx_burst(d_->port_id, q, burst, kBurst);
    if (d_->memif) engine::memif_guard::leave();
    for (uint16_t i = 0; i < n; i++) {
      d_->counters.rx_packets++;
      d_->counters.rx_bytes += burst[i]->pkt_len;
      handle(burst[i]);
    }
    total += n;
  }
  unsigned n =
      rte_ring_sc_dequeue_burst(d_->rings[0], reinterpret_cast<void**>(burst), kBurst, nullptr);
  d_->counters.ring_rx += n;
  for (unsigned i = 0; i < n; i++) handle(burst[i]);
  total += n;
  if (death_row_.cnt != 0) rte_ip_frag_free_death_row(&death_row_, 0);
  tx_flush();
  return total;
}

void Dataplane::handle(rte_mbuf* m) {
  const mn_shm& shm = *d_->shm;
  const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
  uint16_t t = ipc::steer_target(shm, data, m->data_len);
  if (t != 0 && t < d_->nb_queues && mn_lease_state(&shm.leases[t]) == MN_LEASE_ACTIVE) {
    steer(m, t);
    return;
  }
  wire::ParseOptions opts;
  opts.local_ip = d_->cfg.ip;
  opts.accept_broadcast_ip = true;
  opts.prefix_len = d_->cfg.prefix_len;
  opts.ip_checksum_ok = (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
  opts.l4_checksum_ok = (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
  wire::ParsedFrame pf = wire::parse_frame(data, m->data_len, opts);
  switch (pf.kind) {
    case wire::FrameKind::kDrop:
      drop(m, pf.drop);
      return;
    case wire::FrameKind::kArp:
      handle_arp(m, pf.arp_op, pf.arp_sha.data(), pf.arp_spa, pf.arp_tpa);
      return;
    case wire::FrameKind::kIcmpEcho:
      handle_echo(m, pf.l3_offset, pf.l4_offset, pf.ip_total_len, pf.dst_ip);
      return;
    case wire::FrameKind::kIpv4Fragment:
      if (pf.dst_ip != d_->cfg.ip) {
        drop(m, DropReason::kIpNotForUs);
        return;
      }
      handle_fragment(m, pf.l3_offset, pf.l4_offset);
      return;
    case wire::FrameKind::kUdp: {
      // Broadcasts, and unicast that raced with a bind, end up here.
      uint16_t q = mn_port_queue(&shm.ports[pf.dst_port]);
      if (q != 0 && q < d_->nb_queues && mn_lease_state(&shm.leases[q]) == MN_LEASE_ACTIVE) {
        steer(m, q);
        return;
      }
      if (pf.dst_ip == d_->cfg.ip)
        port_unreachable(data + 6, data + pf.l3_offset, m->data_len - pf.l3_offset);
      drop(m, DropReason::kNoSocket);
      return;
    }
    case wire::FrameKind::kIcmpUnreachable: {
      uint16_t q = mn_port_queue(&shm.ports[pf.src_port]);
      if (q != 0 && q < d_->nb_queues && mn_lease_state(&shm.leases[q]) == MN_LEASE_ACTIVE) {
        steer(m, q);
        return;
      }
      drop(m, DropReason::kIcmpUnhandled);
      return;
    }
  }
  drop(m, DropReason::kUnknownEtherType);
}

bool Dataplane::steer(rte_mbuf* m, uint16_t target) {
  // Copy, never hand over: m belongs to the pool of the queue it came in on,
  // and the owner of `target` may only hold mbufs of its own pool.
  rte_mbuf* c = rte_pktmbuf_copy(m, d_->pools[target], 0, UINT32_MAX);
  rte_pktmbuf_free(m);
  if (c == nullptr) {
    d_->counters.steer_drops++;
    return false;
  }
  // A valid port on every segment marks it as handed out (the sweep relies
  // on that); rte_pktmbuf_copy sets it on the first segment only.
  for (rte_mbuf* s = c; s != nullptr; s = s->next) s->port = d_->port_id;
  if (rte_ring_mp_enqueue(d_->rings[target], c) != 0) {
    rte_pktmbuf_free(c);
    d_->counters.steer_drops++;
    return false;
  }
  d_->counters.steered++;
  return true;
}

void Dataplane::handle_arp(rte_mbuf* m, uint16_t op, const uint8_t* sha, uint32_t spa,
                           uint32_t tpa) {
  d_->counters.arp_rx++;
  const uint32_t our = d_->cfg.ip;
  if (spa != 0 && spa != our) {
    // Addressed to us: the sender will talk to us (or answers our request),
    // so it is worth an entry. Others (gratuitous ARP) only refresh.
    learn(spa, sha, /*create=*/tpa == our);
  }
  if (op == wire::kArpOpRequest && tpa == our && spa != our) {
    uint8_t dst[6];
    memcpy(dst, sha, 6);
    rte_pktmbuf_free(m);
    send_arp(wire::kArpOpReply, dst, dst, spa);
    return;
  }
  rte_pktmbuf_free(m);
}

void Dataplane::learn(uint32_t ip, const uint8_t* mac, bool create) {
  mn_shm& shm = *d_->shm;
  uint32_t home = mn_neighbour_slot(ip);
  int found = -1, empty = -1;
  for (uint32_t i = 0; i < MN_SHM_NEIGHBOUR_SLOTS; i++) {
    uint32_t s = (home + i) % MN_SHM_NEIGHBOUR_SLOTS;
    if (shm.neighbours[s].ip == ip) {
      found = static_cast<int>(s);
      break;
    }
    if (shm.neighbours[s].ip == 0) {
      empty = static_cast<int>(s);
      break;
    }
  }
  uint32_t slot;
  if (found >= 0) {
    slot = static_cast<uint32_t>(found);
    if (memcmp(shm.neighbours[slot].mac, mac, 6) == 0) return;
  } else {
    if (!create) return;
    // Full table: the home slot is overwritten (no slot ever becomes empty,
    // so lookups of the other entries still probe past it).
    slot = empty >= 0 ? static_cast<uint32_t>(empty) : home;
  }
  mn_neighbour_write(&shm.neighbours[slot], ip, mac);
  d_->counters.arp_learned++;
}

void Dataplane::send_arp(uint16_t op, const uint8_t* eth_dst, const uint8_t* tha, uint32_t tpa) {
  rte_mbuf* r = rte_pktmbuf_alloc(d_->pools[0]);
  if (r == nullptr) {
    d_->counters.drops[static_cast<size_t>(DropReason::kNoMbuf)]++;
    return;
  }
  auto* buf = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(r, 60));
  memset(buf, 0, 60);
  wire::MacAddr dst, th;
  memcpy(dst.data(), eth_dst, 6);
  memcpy(th.data(), tha, 6);
  wire::build_arp(buf, op, dst, d_->mac, d_->cfg.ip, th, tpa);
  d_->counters.arp_tx++;
  tx(r);
}

rte_mbuf* Dataplane::to_pool0(rte_mbuf* m) {
  if (m->pool == d_->pools[0] && m->nb_segs == 1) return m;
  rte_mbuf* c = rte_pktmbuf_copy(m, d_->pools[0], 0, UINT32_MAX);
  rte_pktmbuf_free(m);
  if (c == nullptr) d_->counters.drops[static_cast<size_t>(DropReason::kNoMbuf)]++;
  return c;
}

void Dataplane::handle_echo(rte_mbuf* m, uint16_t l3, uint16_t l4, uint16_t ip_len, uint32_t dst) {
  if (dst != d_->cfg.ip) {
    // Echo to a broadcast address: ignored, as Linux does by default.
    drop(m, DropReason::kIcmpUnhandled);
    return;
  }
  m = to_pool0(m);
  if (m == nullptr) return;
  uint32_t len = static_cast<uint32_t>(l3) + ip_len;
  if (m->nb_segs != 1 || m->data_len < len) {
    drop(m, DropReason::kTruncatedIcmp);
    return;
  }
  wire::icmp_echo_request_to_reply(rte_pktmbuf_mtod(m, uint8_t*), l3, l4, ip_len);
  if (m->pkt_len > len) rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - len));
  m->ol_flags = 0;
  d_->counters.icmp_echo_replies++;
  tx(m);
}

void Dataplane::handle_fragment(rte_mbuf* m, uint16_t l3, uint16_t l4) {
  d_->counters.fragments_rx++;
  // Waiting fragments must not hold mbufs of a pool a lease may take over.
  m = to_pool0(m);
  if (m == nullptr) return;
  m->l2_len = l3;
  m->l3_len = static_cast<uint16_t>(l4 - l3);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l3);
  uint32_t before = death_row_.cnt;
  rte_mbuf* whole =
      rte_ipv4_frag_reassemble_packet(frag_tbl_, &death_row_, m, rte_get_tsc_cycles(), ip);
  if (death_row_.cnt != before)
    d_->counters.drops[static_cast<size_t>(DropReason::kBadFragment)] += death_row_.cnt - before;
  if (whole == nullptr) return;
  d_->counters.reassembled++;
  handle_reassembled(whole);
}

void Dataplane::handle_reassembled(rte_mbuf* m) {
  uint16_t l3 = m->l2_len;
  if (m->data_len < l3 + sizeof(wire::Ipv4Hdr)) {
    drop(m, DropReason::kTruncatedIp);
    return;
  }
  auto* ip = rte_pktmbuf_mtod_offset(m, wire::Ipv4Hdr*, l3);
  size_t hl = ip->header_len();
  if (m->data_len < l3 + hl) {
    drop(m, DropReason::kBadIhl);
    return;
  }
  // DPDK rewrote total_length and the fragment field and zeroed the header
  // checksum: make it a valid header again for the owner's parser.
  ip->checksum = 0;
  ip->checksum = wire::internet_checksum(ip, hl);
  if (ip->protocol != wire::kIpProtoUdp) {
    drop(m, ip->protocol == wire::kIpProtoIcmp ? DropReason::kIcmpUnhandled
                                               : DropReason::kUnknownIpProto);
    return;
  }
  wire::UdpHdr copy;
  const auto* udp =
      static_cast<const wire::UdpHdr*>(rte_pktmbuf_read(m, l3 + hl, sizeof(copy), &copy));
  if (udp == nullptr) {
    drop(m, DropReason::kTruncatedUdp);
    return;
  }
  const mn_shm& shm = *d_->shm;
  uint16_t q = mn_port_queue(&shm.ports[ntohs(udp->dst_port)]);
  if (q != 0 && q < d_->nb_queues && mn_lease_state(&shm.leases[q]) == MN_LEASE_ACTIVE) {
    steer(m, q);
    return;
  }
  const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
  port_unreachable(data + 6, data + l3, m->data_len - l3);
  drop(m, DropReason::kNoSocket);
}

void Dataplane::port_unreachable(const uint8_t* eth_src, const uint8_t* ip, size_t avail) {
  uint32_t dst;
  memcpy(&dst, ip + 16, 4);
  if (ntohl(dst) != d_->cfg.ip) return;  // never for broadcasts (RFC 1122 3.2.2)
  uint64_t now = mono_ns();
  uint64_t per_token = 1'000'000'000ull / kIcmpTokensPerSec;
  if (now - icmp_refill_ns_ >= per_token) {
    icmp_tokens_ += (now - icmp_refill_ns_) / per_token;
    if (icmp_tokens_ > kIcmpBurst) icmp_tokens_ = kIcmpBurst;
    icmp_refill_ns_ = now;
  }
  if (icmp_tokens_ == 0) {
    d_->counters.icmp_rate_limited++;
    return;
  }
  rte_mbuf* r = rte_pktmbuf_alloc(d_->pools[0]);
  if (r == nullptr) return;
  auto* frame = reinterpret_cast<uint8_t*>(
      rte_pktmbuf_append(r, static_cast<uint16_t>(wire::kUdpHeadersLen + wire::kIcmpQuoteMax)));
  uint32_t src;
  memcpy(&src, ip + 12, 4);
  wire::MacAddr to;
  memcpy(to.data(), eth_src, 6);
  size_t len = frame == nullptr ? 0
                                : wire::build_icmp_unreachable(frame, 3, d_->mac, to, d_->cfg.ip,
                                                               ntohl(src), ip, avail);
  if (len == 0) {
    rte_pktmbuf_free(r);
    return;
  }
  rte_pktmbuf_trim(r, static_cast<uint16_t>(r->pkt_len - len));
  icmp_tokens_--;
  d_->counters.icmp_unreachable_tx++;
  tx(r);
}

void Dataplane::drop(rte_mbuf* m, DropReason r) {
  d_->counters.drops[static_cast<size_t>(r)]++;
  rte_pktmbuf_free(m);
}

void Dataplane::tx(rte_mbuf* m) {
  if (ntx_ == kTxMax) tx_flush();
  txbuf_[ntx_++] = m;
}

void Dataplane::tx_flush() {
  if (ntx_ == 0) return;
  uint64_t bytes = 0;
  for (unsigned i = 0; i < ntx_; i++) bytes += txbuf_[i]->pkt_len;
  if (d_->memif) engine::memif_guard::enter();
  uint16_t sent = rte_eth_tx_burst(d_->port_id, 0, txbuf_, static_cast<uint16_t>(ntx_));
  if (d_->memif) engine::memif_guard::leave();
  for (unsigned i = sent; i < ntx_; i++) {
    bytes -= txbuf_[i]->pkt_len;
    drop(txbuf_[i], DropReason::kTxRingFull);
  }
  d_->counters.tx_packets += sent;
  d_->counters.tx_bytes += bytes;
  ntx_ = 0;
}

void Dataplane::tick(uint64_t now) {
  mn_shm_set_heartbeat(d_->shm, now);
  uint32_t before = death_row_.cnt;
  rte_ip_frag_table_del_expired_entries(frag_tbl_, &death_row_, rte_get_tsc_cycles());
  d_->counters.drops[static_cast<size_t>(DropReason::kFragTimeout)] += death_row_.cnt - before;
  if (death_row_.cnt != 0) rte_ip_frag_free_death_row(&death_row_, 0);

  if (now - last_link_check_ns_ >= kLinkCheckNs) {
    last_link_check_ns_ = now;
    rte_eth_link link;
    memset(&link, 0, sizeof(link));
    bool up =
        rte_eth_link_get_nowait(d_->port_id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
    if (up && !link_up_) {
      // Gratuitous ARP: neighbours that knew another MAC for our address
      // (a previous daemon, a previous tap) update it.
      send_arp(wire::kArpOpRequest, wire::kBroadcastMac.data(), wire::kZeroMac.data(), d_->cfg.ip);
      log("link up on %s: gratuitous ARP for %s sent", d_->device_name.c_str(),
          wire::format_ipv4(d_->cfg.ip).c_str());
      last_gw_arp_ns_ = 0;
    }
    link_up_ = up;
  }
  if (link_up_ && d_->cfg.gateway != 0 && now - last_gw_arp_ns_ >= kGatewayArpNs) {
    last_gw_arp_ns_ = now;
    uint8_t mac[6];
    if (!mn_neighbour_lookup(d_->shm, d_->cfg.gateway, mac))
      send_arp(wire::kArpOpRequest, wire::kBroadcastMac.data(), wire::kZeroMac.data(),
               d_->cfg.gateway);
  }
  tx_flush();
}

unsigned Dataplane::drain_ring(uint16_t q) {
  unsigned total = 0;
  void* objs[kBurst];
  unsigned n;
  while ((n = rte_ring_sc_dequeue_burst(d_->rings[q], objs, kBurst, nullptr)) != 0) {
    for (unsigned i = 0; i < n; i++) rte_pktmbuf_free(static_cast<rte_mbuf*>(objs[i]));
    total += n;
  }
  return total;
}

}  // namespace machnet::daemon
