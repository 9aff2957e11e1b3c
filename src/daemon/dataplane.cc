#include "daemon/dataplane.h"

#include <rte_ethdev.h>
#include <rte_ring.h>

#include <sys/eventfd.h>

#include <cstring>

#include "daemon/clock.h"
#include "daemon/leases.h"
#include "daemon/services.h"
#include "engine/log.h"
#include "engine/memif_guard.h"
#include "engine/ring_repair.h"
#include "engine/rx_parse.h"
#include "engine/steer.h"
#include "ipc/steering.h"

namespace machnet::daemon {
namespace {

constexpr unsigned kBurst = 32;
// How long the daemon waits for another process's operation on a ring or
// pool it is about to use (rte_pause each: tens of microseconds).
constexpr unsigned kQuietSpins = 4096;
// A deferred frame's retry, every round: a short look, not a wait.
constexpr unsigned kRetrySpins = 64;
constexpr uint64_t kLinkCheckNs = 100'000'000;
constexpr uint64_t kGatewayArpNs = 1'000'000'000;

size_t reason(DropReason r) {
  return static_cast<size_t>(r);
}

}  // namespace

bool Dataplane::init(std::string* err) {
  tx_.init(d_->port_id, 0, d_->memif, &d_->counters.tx_packets, &d_->counters.tx_bytes,
           &d_->counters.drops[reason(DropReason::kTxRingFull)]);
  // Replies from pool 0, padded to the Ethernet minimum.
  responder_.init(d_->pools[0], d_->port_id, d_->mac, d_->cfg.ip, /*pad_frames=*/true);
  return reassembly_.init(d_->cfg, d_->counters.drops, err);
}

// Leases copy frames for the daemon into pool 0 (and free copies there when
// ring 0 is full): one killed inside such an operation leaves a gap in pool
// 0's ring that every later get or put waits for, including the daemon's
// own inside the PMD's RX refill and its frees. The daemon then skips its
// data path (its event loop, which runs the reclaim that repairs the gap,
// keeps going); a live lease's operation ends within the wait.
bool Dataplane::pool0_quiet() {
  if (engine::ring_wait_quiet(engine::pool_ring(d_->pools[0]), kQuietSpins)) return true;
  d_->counters.ring_busy++;
  return false;
}

unsigned Dataplane::poll() {
  if (!pool0_quiet()) return 0;
  if (deferred_n_ != 0) retry_deferred();
  unsigned total = 0;
  rte_mbuf* burst[kBurst];
  for (uint16_t q = 0; q < d_->nb_queues; q++) {
    if (q != 0 && !polls(q)) continue;
    uint16_t n = engine::memif_guard::rx_burst(d_->port_id, q, burst, kBurst, d_->memif);
    for (uint16_t i = 0; i < n; i++) {
      d_->counters.rx_packets++;
      d_->counters.rx_bytes += burst[i]->pkt_len;
      handle(burst[i]);
    }
    total += n;
  }
  for (uint16_t q = 1; q < d_->nb_queues; q++) total += poll_parked(q);
  unsigned n =
      rte_ring_sc_dequeue_burst(d_->rings[0], reinterpret_cast<void**>(burst), kBurst, nullptr);
  d_->counters.ring_rx += n;
  for (unsigned i = 0; i < n; i++) handle(burst[i]);
  total += n;
  tx_.flush();
  // Frames waiting for a busy ring: not idle (no sleep in the event loop).
  return total + (deferred_n_ != 0 ? 1 : 0);
}

// Queue 0, every free queue, and a queue under reclaim. The reclaimed
// holder is gone and its ports are released, but frames for live processes
// keep landing on its RX queue (memif pairs the queues of the two ends, RSS
// spreads flows): steered now, they are neither held up for the reclaim's
// grace periods (long enough, on a loaded host, for their flows to give up)
// nor dropped by its drain of the RX queue. Not while the dead holder left
// an operation on pool q half done (the refill would wait on it; the
// reclaim repairs it). The sweep runs on this thread, between rounds, and
// this round holds no mbuf of pool q beyond itself (pool invariant).
bool Dataplane::polls(uint16_t q) const {
  uint32_t s = mn_lease_state(&d_->shm->leases[q]);
  if (s == MN_LEASE_FREE) return true;
  return s == MN_LEASE_RECLAIMING && engine::ring_wait_quiet(engine::pool_ring(d_->pools[q]), 0);
}

// A parked lease (its holder's threads sleep): the daemon polls RX queue q
// for it, puts the holder's frames on ring q (they are already mbufs of
// pool q: no copy) and steers the others, then wakes the holder with one
// eventfd write when ring q holds anything — frames from this burst, or
// ones other processes steered there. See mn_wake_state in ipc/shm.h.
unsigned Dataplane::poll_parked(uint16_t q) {
  mn_lease& l = d_->shm->leases[q];
  if (d_->wake_fds[q] < 0 || mn_lease_state(&l) != MN_LEASE_ACTIVE) return 0;
  polite_ = true;  // a holder that may sleep: see take_polite()
  if (mn_lease_wake_state(&l) == MN_WAKE_PARKED) parked_ = true;
  if (mn_lease_wake_state(&l) != MN_WAKE_PARKED) return 0;
  // The RX burst refills from pool q, which other processes use too: one
  // killed inside an operation on it blocks the pool until its reclaim.
  if (!engine::ring_wait_quiet(engine::pool_ring(d_->pools[q]), kQuietSpins)) {
    d_->counters.ring_busy++;
    return 0;
  }
  if (!mn_lease_daemon_claim(&l)) return 0;
  rte_mbuf* burst[kBurst];
  uint16_t n = engine::memif_guard::rx_burst(d_->port_id, q, burst, kBurst, d_->memif);
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = burst[i];
    d_->counters.parked_rx++;
    uint16_t t = ipc::steer_target(*d_->shm, rte_pktmbuf_mtod(m, const uint8_t*), m->data_len);
    if (t == q) {
      if (deferred_n_ != 0 || !engine::ring_wait_quiet(d_->rings[q], kQuietSpins)) {
        deliver(m, {q, q, d_->rings[q]});  // behind what waits, or waits itself
      } else if (rte_ring_enqueue(d_->rings[q], m) != 0) {
        d_->counters.steer_drops++;
        rte_pktmbuf_free(m);
      }
      continue;
    }
    handle(m);
  }
  if (rte_ring_count(d_->rings[q]) == 0 && !shared_ready(q)) {
    mn_lease_daemon_release(&l, MN_WAKE_PARKED);
    parked_ = true;
    return n;
  }
  mn_lease_daemon_release(&l, MN_WAKE_RUNNING);
  eventfd_write(d_->wake_fds[q], 1);
  l.wakeups++;
  d_->counters.wakeups++;
  return n + 1;
}

// Whether a fork-shared port lease q holds got datagrams on its ring since
// q was last woken for them. Edge, not level: a holder never parks while a
// ring it reads holds anything (Engine::Impl::park checks), so one wake per
// arrival is enough, and a holder that leaves a ring to the others (a
// rendezvous port's SYNs in a process that does not accept) is not woken
// again and again while they sit there.
bool Dataplane::shared_ready(uint16_t q) {
  if (d_->leases->shared_in_use() == 0 || q >= MN_SHM_MAX_QUEUES) return false;
  uint64_t arrivals = 0;
  bool any = false;
  auto look = [&](const rte_ring* r) {
    arrivals += engine::ring_gap(r, engine::RingSide::kProducer).tail;
    any = any || rte_ring_count(r) != 0;
  };
  for (uint16_t p : d_->leases->ports_of(q)) {
    uint16_t v = mn_port_queue(&d_->shm->ports[p]);
    if ((v & MN_PORT_GROUP) == 0) continue;
    uint16_t sh = mn_group_shared(&d_->shm->groups[MN_PORT_GROUP_INDEX(v)]);
    if (sh != 0 && sh <= MN_SHM_SHARED_RINGS) look(d_->shared_rings[sh - 1]);
  }
  d_->services->for_each_ring_of(q, [&](int ring) { look(d_->shared_rings[ring]); });
  if (!any || arrivals == shared_woken_[q]) return false;
  shared_woken_[q] = arrivals;
  return true;
}

void Dataplane::wake_parked(uint16_t q) {
  if (q == 0 || q >= d_->nb_queues || d_->wake_fds[q] < 0) return;
  mn_lease& l = d_->shm->leases[q];
  if (!mn_lease_daemon_claim(&l)) return;
  mn_lease_daemon_release(&l, MN_WAKE_RUNNING);
  eventfd_write(d_->wake_fds[q], 1);
  l.wakeups++;
  d_->counters.wakeups++;
}

bool Dataplane::active(uint16_t q) const {
  return q != 0 && q < d_->nb_queues && mn_lease_state(&d_->shm->leases[q]) == MN_LEASE_ACTIVE;
}

uint16_t Dataplane::owner_of(uint16_t port, uint32_t hash) const {
  // The daemon is the groups' only writer, on this thread: its seqlock read
  // never retries.
  uint16_t q = mn_port_target(d_->shm, port, hash);
  return active(q) || (q & MN_STEER_SHARED) != 0 ? q : 0;
}

void Dataplane::handle(rte_mbuf* m) {
  uint16_t t = ipc::steer_target(*d_->shm, rte_pktmbuf_mtod(m, const uint8_t*), m->data_len);
  if (active(t) || (t & MN_STEER_SHARED) != 0) {
    steer(m, t);
    return;
  }
  engine::receive(*this, m, d_->cfg.ip, d_->cfg.prefix_len);
}

// A frame for a fork-shared port: a copy in the shared pool onto the
// port's ring, which every holder reads. As in steer(): never while another
// process is inside an operation on that pool or ring.
void Dataplane::steer_shared(rte_mbuf* m, uint16_t g) {
  uint16_t sh = g < MN_SHM_GROUPS ? mn_group_shared(&d_->shm->groups[g]) : 0;
  steer_ring(m, sh != 0 && sh <= MN_SHM_SHARED_RINGS ? d_->shared_rings[sh - 1] : nullptr, g);
}

void Dataplane::steer_ring(rte_mbuf* m, rte_ring* ring, uint16_t marker) {
  if (ring == nullptr) {
    d_->counters.shared_drops++;
    rte_pktmbuf_free(m);
    return;
  }
  deliver(m, {0, marker, ring});
}

bool Dataplane::steer_to_owner(rte_mbuf* m, uint16_t port, uint32_t hash) {
  uint16_t q = owner_of(port, hash);
  if (q == 0) return false;
  steer(m, q);
  return true;
}

// A service SYN (docs/PROTOCOL.md 2.1) to the rendezvous port: type SYN
// (byte 3 is 1) with the SERVICE flag (0x40 in byte 4), the service port in
// bytes 22-23 of the transport header (20-21 zero). Steered to a listener
// of that service; for a service nobody listens on, to any process that
// listens on something, whose transport answers "no such service" (an RST
// the client tells apart from a host without machnet). True when taken.
bool Dataplane::steer_service_syn(rte_mbuf* m, const wire::ParsedFrame& pf) {
  if (pf.dst_port != d_->cfg.rendezvous_port || pf.dst_ip != d_->cfg.ip || pf.payload_len < 24)
    return false;
  uint8_t h[24];
  const auto* p = static_cast<const uint8_t*>(rte_pktmbuf_read(m, pf.payload_offset, 24, h));
  if (p == nullptr || p[3] != 1 || (p[4] & 0x40) == 0 || p[20] != 0 || p[21] != 0) return false;
  uint16_t service = static_cast<uint16_t>(p[22] << 8 | p[23]);
  int ring = -1;
  uint16_t q = d_->services->target(
      service, mn_flow_hash(pf.src_ip, pf.src_port, pf.dst_ip, pf.dst_port), &ring);
  if (ring >= 0 && ring < MN_SHM_SHARED_RINGS) {
    d_->counters.service_syns++;
    steer_ring(m, d_->shared_rings[ring], MN_RING_OP_SERVICE_RING(ring));
    return true;
  }
  if (q == 0 || !active(q)) {
    q = d_->services->any_listener();
    if (q == 0) return false;
    d_->counters.service_syns_unknown++;
  } else {
    d_->counters.service_syns++;
  }
  steer(m, q);
  return true;
}

void Dataplane::rx_udp(rte_mbuf* m, const wire::ParsedFrame& pf) {
  if (steer_service_syn(m, pf)) return;
  // Broadcasts, and unicast that raced with a bind, end up here.
  if (steer_to_owner(m, pf.dst_port, mn_flow_hash(pf.src_ip, pf.src_port, pf.dst_ip, pf.dst_port)))
    return;
  if (pf.dst_ip == d_->cfg.ip) port_unreachable(m, pf.l3_offset);
  drop(m, DropReason::kNoSocket);
}

void Dataplane::rx_unreachable(rte_mbuf* m, const wire::ParsedFrame& pf) {
  // The quoted datagram went from us (src_port) to inner_dst_ip:dst_port:
  // the member of a group that flow's requests go to gets the error.
  uint32_t hash = mn_flow_hash(pf.inner_dst_ip, pf.dst_port, d_->cfg.ip, pf.src_port);
  if (!steer_to_owner(m, pf.src_port, hash)) drop(m, DropReason::kIcmpUnhandled);
}

void Dataplane::rx_fragment(rte_mbuf* m, const wire::ParsedFrame& pf) {
  if (pf.dst_ip != d_->cfg.ip) {
    drop(m, DropReason::kIpNotForUs);
    return;
  }
  d_->counters.fragments_rx++;
  // Waiting fragments must not hold mbufs of a pool a lease may take over.
  m = to_pool0(m);
  if (m == nullptr) return;
  rte_mbuf* whole = reassembly_.add(m, pf.l3_offset, pf.l4_offset);
  if (whole == nullptr) return;
  d_->counters.reassembled++;
  handle_reassembled(whole);
}

void Dataplane::steer(rte_mbuf* m, uint16_t target) {
  if ((target & MN_STEER_SHARED) != 0) {
    steer_shared(m, MN_STEER_SHARED_GROUP(target));
    return;
  }
  deliver(m, {target, target, d_->rings[target]});
}

// Copied into the target's pool (a lease's own, or the shared pool for a
// fork-shared ring): m belongs to the pool of the queue it came in on, and
// the owner of the target may only hold mbufs of its own. Only when nobody
// is inside an operation on that pool or ring: a gap left by a process
// killed there would otherwise wedge this thread, which is the one that
// repairs it (at the reclaim). A live process's operation may outlast
// kQuietSpins when it is preempted (a loaded host): the frame then waits in
// the deferred list and is retried every round, behind nothing else for the
// same target, so it is neither lost nor overtaken.
Dataplane::Attempt Dataplane::try_deliver(rte_mbuf* m, const SteerTo& to, unsigned spins) {
  rte_mempool* pool = to.lease != 0 ? d_->pools[to.lease] : d_->shared_pool;
  if (!engine::ring_wait_quiet(engine::pool_ring(pool), spins) ||
      !engine::ring_wait_quiet(to.ring, spins))
    return Attempt::kBusy;
  bool ok = to.lease != 0
                ? engine::steer_copy(m, pool, to.ring, d_->port_id, nullptr, to.marker)
                : engine::steer_copy(m, pool, to.ring, d_->port_id, nullptr, to.marker, true);
  if (to.lease != 0)
    ++(ok ? d_->counters.steered : d_->counters.steer_drops);
  else
    ++(ok ? d_->counters.shared_copies : d_->counters.shared_drops);
  return Attempt::kDone;
}

void Dataplane::deliver(rte_mbuf* m, const SteerTo& to) {
  if (deferred_n_ == 0 || !waiting(to)) {
    if (try_deliver(m, to, kQuietSpins) == Attempt::kDone) return;
    d_->counters.ring_busy++;
  }
  defer(m, to);
}

bool Dataplane::waiting(const SteerTo& to) const {
  for (size_t i = 0; i < deferred_n_; i++)
    if (deferred_[i].to.ring == to.ring) return true;
  return false;
}

void Dataplane::defer(rte_mbuf* m, const SteerTo& to) {
  auto lost = [&]() { ++(to.lease != 0 ? d_->counters.steer_drops : d_->counters.shared_drops); };
  if (deferred_n_ == kDeferMax) {
    lost();
    rte_pktmbuf_free(m);
    return;
  }
  // Kept in pool 0: the sweep of a queue under reclaim may count on no
  // mbuf of its pool being held by the daemon between rounds.
  m = to_pool0(m);
  if (m == nullptr) {
    lost();
    return;
  }
  deferred_[deferred_n_++] = {m, to, mono_ns()};
  d_->counters.steer_deferred++;
}

void Dataplane::retry_deferred() {
  uint64_t now = mono_ns();
  size_t kept = 0;
  for (size_t i = 0; i < deferred_n_; i++) {
    Deferred e = deferred_[i];
    bool behind = false;  // an older frame for the same ring still waits
    for (size_t k = 0; k < kept && !behind; k++) behind = deferred_[k].to.ring == e.to.ring;
    if (!behind) {
      if (e.to.lease != 0 && !active(e.to.lease)) {
        // Its holder is gone (the reclaim released its ports): as a frame
        // for a port nobody holds.
        d_->counters.steer_drops++;
        rte_pktmbuf_free(e.m);
        continue;
      }
      if (try_deliver(e.m, e.to, kRetrySpins) == Attempt::kDone) continue;
      if (now - e.since_ns > kDeferNs) {
        ++(e.to.lease != 0 ? d_->counters.steer_drops : d_->counters.shared_drops);
        d_->counters.deferred_expired++;
        rte_pktmbuf_free(e.m);
        continue;
      }
    }
    deferred_[kept++] = e;
  }
  deferred_n_ = kept;
}

void Dataplane::drop_deferred() {
  for (size_t i = 0; i < deferred_n_; i++) rte_pktmbuf_free(deferred_[i].m);
  deferred_n_ = 0;
}

void Dataplane::rx_arp(rte_mbuf* m, const wire::ParsedFrame& pf) {
  d_->counters.arp_rx++;
  engine::ArpVerdict v = engine::arp_verdict(pf, d_->cfg.ip);
  // The shared table has no pending entries: whatever is addressed to us
  // (requests, and replies to the daemon's or an engine's request) creates
  // one; gratuitous ARP only refreshes.
  if (v.learn) learn(pf.arp_spa, pf.arp_sha.data(), /*create=*/v.addressed);
  if (v.reply) send_arp(wire::kArpOpReply, pf.arp_sha, pf.arp_sha, pf.arp_spa);
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

void Dataplane::send_arp(uint16_t op, const wire::MacAddr& eth_dst, const wire::MacAddr& tha,
                         uint32_t tpa) {
  rte_mbuf* r = responder_.arp(op, eth_dst, tha, tpa);
  if (r == nullptr) {
    d_->counters.drops[reason(DropReason::kNoMbuf)]++;
    return;
  }
  d_->counters.arp_tx++;
  tx_.add(r);
}

rte_mbuf* Dataplane::to_pool0(rte_mbuf* m) {
  if (m->pool == d_->pools[0] && m->nb_segs == 1) return m;
  rte_mbuf* c = rte_pktmbuf_copy(m, d_->pools[0], 0, UINT32_MAX);
  rte_pktmbuf_free(m);
  if (c == nullptr) d_->counters.drops[reason(DropReason::kNoMbuf)]++;
  return c;
}

void Dataplane::rx_echo(rte_mbuf* m, const wire::ParsedFrame& pf) {
  if (pf.dst_ip != d_->cfg.ip) {
    // Echo to a broadcast address: ignored, as Linux does by default.
    drop(m, DropReason::kIcmpUnhandled);
    return;
  }
  m = to_pool0(m);
  if (m == nullptr) return;
  if (!engine::Responder::echo_reply(m, pf)) {
    drop(m, DropReason::kTruncatedIcmp);
    return;
  }
  d_->counters.icmp_echo_replies++;
  tx_.add(m);
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
  // Reassembly rewrote total_length and the fragment field and recomputed
  // the header checksum: a valid header for the owner's parser.
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
  if (steer_to_owner(
          m, ntohs(udp->dst_port),
          mn_flow_hash(ntohl(ip->src), ntohs(udp->src_port), ntohl(ip->dst), ntohs(udp->dst_port))))
    return;
  port_unreachable(m, l3);
  drop(m, DropReason::kNoSocket);
}

void Dataplane::port_unreachable(const rte_mbuf* m, uint16_t l3) {
  uint64_t limited = responder_.rate_limited();
  rte_mbuf* r =
      responder_.port_unreachable(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, l3, mono_ns());
  d_->counters.icmp_rate_limited += responder_.rate_limited() - limited;
  if (r == nullptr) return;
  d_->counters.icmp_unreachable_tx++;
  tx_.add(r);
}

void Dataplane::drop(rte_mbuf* m, DropReason r) {
  d_->counters.drops[reason(r)]++;
  rte_pktmbuf_free(m);
}

void Dataplane::tick(uint64_t now) {
  mn_shm_set_heartbeat(d_->shm, now);
  if (!pool0_quiet()) return;
  reassembly_.expire();

  if (now - last_link_check_ns_ >= kLinkCheckNs) {
    last_link_check_ns_ = now;
    rte_eth_link link;
    memset(&link, 0, sizeof(link));
    bool up =
        rte_eth_link_get_nowait(d_->port_id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
    if (up && !link_up_) {
      // Gratuitous ARP: neighbours that knew another MAC for our address
      // (a previous daemon, a previous tap) update it.
      send_arp(wire::kArpOpRequest, wire::kBroadcastMac, wire::kZeroMac, d_->cfg.ip);
      MN_LOG(DAEMON, NOTICE, "link up on %s: gratuitous ARP for %s sent", d_->device_name.c_str(),
             wire::format_ipv4(d_->cfg.ip).c_str());
      last_gw_arp_ns_ = 0;
    }
    link_up_ = up;
  }
  if (link_up_ && d_->cfg.gateway != 0 && now - last_gw_arp_ns_ >= kGatewayArpNs) {
    last_gw_arp_ns_ = now;
    uint8_t mac[6];
    // The daemon is the only writer: it never finds a slot mid-write.
    if (mn_neighbour_lookup(d_->shm, d_->cfg.gateway, mac, nullptr, nullptr) != 1)
      send_arp(wire::kArpOpRequest, wire::kBroadcastMac, wire::kZeroMac, d_->cfg.gateway);
  }
  tx_.flush();
}

unsigned Dataplane::drain_ring(uint16_t q) {
  return engine::drain_ring(d_->rings[q]);
}

}  // namespace machnet::daemon
