// Attached mode: the engine as a DPDK secondary of machnetd, polling the
// queue pair the daemon leased to this process. See Engine::Impl (attached
// mode) for what belongs to whom and the mbuf invariant of the crash sweep.
//
// Per frame received on our queue: steer_target() (a few loads) says whose
// it is (for a port an SO_REUSEPORT group shares, the member its flow hash
// picks); ours go through the normal receive path, the others are copied into
// an mbuf of the owner's pool and put on the owner's steering ring (queue 0,
// the daemon, gets ARP, ICMP it answers, fragments, frames for other
// addresses and for ports nobody holds). Each poll also takes what others
// steered to us, including datagrams the daemon reassembled. Control-path
// work (ports, the daemon's health, counters, neighbours learned by the
// daemon) happens on the 1 ms timer tick or in udp_bind/udp_close.
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_memzone.h>
#include <rte_ring.h>
#include <rte_ring_peek.h>

#include <sched.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>

#include "engine/checksum.h"
#include "engine/eal.h"
#include "engine/engine_impl.h"
#include "engine/log.h"
#include "engine/memif_guard.h"
#include "engine/reassembly.h"
#include "engine/steer.h"
#include "ipc/steering.h"

namespace machnet::engine {
namespace {

// What this process joined when it first attached: EAL cannot be joined
// again, so a later attach (another Engine) must find the same daemon.
struct Joined {
  std::mutex mu;
  bool done = false;
  std::string eal_prefix;
  uint16_t lcore_id = 0;
  int32_t daemon_pid = 0;
  pid_t pid = 0;  // the process that joined (a fork child is another)
} g_joined;

std::string errno_text(int neg) {
  return std::strerror(neg < 0 ? -neg : neg);
}

}  // namespace

bool Engine::Impl::open_attached(const EngineConfig& cfg,
                                 std::unique_ptr<ipc::ControlClient> client,
                                 const std::string& path, std::string* err) {
  config = cfg;
  ctl = std::move(client);
  attached = true;
  announced = true;  // the host's address is the daemon's to announce

  mn_ctl_info_reply info{};
  int rc = ctl->info(&info);
  daemon_rendezvous = info.rendezvous_port;
  if (rc != 0) {
    *err = "machnetd at " + path + " does not answer INFO: " + errno_text(rc);
    ctl->close();
    return false;
  }
  char comm[17] = {};
  prctl(PR_GET_NAME, comm, 0, 0, 0);
  mn_ctl_attach_reply r{};
  // The daemon wakes us through this while our lease is parked.
  wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  rc = ctl->attach(comm, &r, 1000, wake_fd);
  if (rc != 0) {
    *err = "machnetd at " + path + " did not lease a queue: " + errno_text(rc) +
           (rc == -EBUSY || rc == -EAGAIN || rc == -ENOSPC
                ? std::string(" (") + kNoFreeQueue + ": machnet-stat lists the holders)"
                : "");
    ctl->close();
    return false;
  }
  if (r.queue == 0 || r.queue >= MN_SHM_MAX_QUEUES || r.lcore_id >= RTE_MAX_LCORE ||
      r.eal_prefix[0] == '\0' || r.device[0] == '\0' || r.shm_name[0] == '\0') {
    *err = "machnetd at " + path + " sent an unusable lease (queue " + std::to_string(r.queue) +
           ", lcore " + std::to_string(r.lcore_id) + ", device '" + r.device + "')";
    ctl->close();
    return false;
  }
  if (config.ip != 0 && config.ip != r.ip) {
    *err = "the configured ip " + wire::format_ipv4(config.ip) + " differs from machnetd's " +
           wire::format_ipv4(r.ip) + " (attached engines use the daemon's address: remove ip or " +
           "make them equal)";
    ctl->close();
    return false;
  }

  {
    // A fork child: the parent's lock may have been held by one of its
    // threads at fork() (none survived).
    if (g_joined.done && g_joined.pid != getpid()) new (&g_joined.mu) std::mutex();
    std::lock_guard<std::mutex> lock(g_joined.mu);
    bool already = false;
    if (!eal_init_secondary_once(config, r.eal_prefix, r.lcore_id, r.device, &already, err)) {
      ctl->close();
      return false;
    }
    if (already && rte_eal_process_type() == RTE_PROC_SECONDARY && g_joined.done &&
        g_joined.pid != getpid() && g_joined.eal_prefix == r.eal_prefix &&
        g_joined.daemon_pid == info.daemon_pid) {
      // A fork() child of a process that joined: it has every mapping of
      // its parent's but cannot run EAL again. It takes no lcore (the
      // parent's per-lcore state, the mempool caches, are the parent's; our
      // pools have no cache anyway) and polls the queue of its own lease.
      RTE_PER_LCORE(_lcore_id) = LCORE_ID_ANY;
      g_joined.pid = getpid();
      g_joined.lcore_id = r.lcore_id;
    } else if (already && rte_eal_process_type() == RTE_PROC_SECONDARY) {
      // A second engine in a process that joined a daemon's EAL before: only
      // the same daemon with the same lcore is safe (mempool caches are per
      // lcore, and a restarted daemon's memory is not mapped here).
      if (!g_joined.done || g_joined.eal_prefix != r.eal_prefix ||
          g_joined.lcore_id != r.lcore_id || g_joined.daemon_pid != info.daemon_pid) {
        *err = "this process joined a machnetd EAL before (prefix " + g_joined.eal_prefix +
               ", lcore " + std::to_string(g_joined.lcore_id) +
               "); attaching again needs the same daemon and lcore: restart the program";
        ctl->close();
        return false;
      }
    } else if (!already) {
      g_joined.done = true;
      g_joined.eal_prefix = r.eal_prefix;
      g_joined.lcore_id = r.lcore_id;
      g_joined.daemon_pid = info.daemon_pid;
      g_joined.pid = getpid();
    }
  }

  if (rte_eth_dev_get_port_by_name(r.device, &port_id) != 0) {
    *err = std::string("machnetd's device '") + r.device +
           "' is not visible in this process (EAL secondary)";
    ctl->close();
    return false;
  }
  if (port_id != r.port_id) {
    *err = std::string("machnetd's device '") + r.device + "' is port " + std::to_string(port_id) +
           " here but port " + std::to_string(r.port_id) + " in the daemon";
    ctl->close();
    return false;
  }
  const rte_memzone* mz = rte_memzone_lookup(r.shm_name);
  if (mz == nullptr || mz->addr == nullptr || mz->len < sizeof(mn_shm)) {
    *err = std::string("machnetd's shared memory '") + r.shm_name +
           (mz == nullptr ? "' was not found" : "' is too small");
    ctl->close();
    return false;
  }
  shm = static_cast<mn_shm*>(mz->addr);
  if (mn_shm_magic(shm) != MN_SHM_MAGIC || shm->version != MN_SHM_VERSION) {
    *err = std::string("machnetd's shared memory '") + r.shm_name + "' has magic " +
           std::to_string(shm->magic) + " version " + std::to_string(shm->version) +
           " (this engine speaks version " + std::to_string(MN_SHM_VERSION) + ")";
    ctl->close();
    return false;
  }
  if (r.queue >= shm->nb_queues) {
    *err = "machnetd leased queue " + std::to_string(r.queue) + " of " +
           std::to_string(shm->nb_queues);
    ctl->close();
    return false;
  }
  lease = &shm->leases[r.queue];
  if (lease->owner_id != r.owner_id || lease->pid != getpid()) {
    *err = "lease of queue " + std::to_string(r.queue) + " names owner " +
           std::to_string(lease->owner_id) + " pid " + std::to_string(lease->pid) +
           ", not this process (owner " + std::to_string(r.owner_id) + " pid " +
           std::to_string(getpid()) + ")";
    ctl->close();
    return false;
  }
  if (lease->pool == nullptr || lease->steer_ring == nullptr) {
    *err = "lease of queue " + std::to_string(r.queue) + " has no mempool or steering ring";
    ctl->close();
    return false;
  }

  pool = lease->pool;
  queue = r.queue;
  lcore_id = r.lcore_id;
  device_name = r.device;
  memif = device_name.rfind("net_memif", 0) == 0;
  config.device = r.device;
  config.ip = r.ip;
  config.prefix_len = r.prefix_len;
  config.gateway = r.gateway;
  config.mtu = r.mtu;
  mtu = r.mtu;
  memcpy(mac.data(), r.mac, 6);
  netmask = config.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - config.prefix_len);
  // Checksum offloads as the daemon configured the port.
  rte_eth_conf conf;
  memset(&conf, 0, sizeof(conf));
  if (rte_eth_dev_conf_get(port_id, &conf) == 0) {
    tx_ip_csum = (conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
    tx_udp_csum = (conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) != 0;
  }
  set_tsc_hz(rte_get_tsc_hz());
  // Processes sharing the address draw IPv4 ids from different places, so
  // their fragments rarely share an id towards one peer.
  ip_id = static_cast<uint16_t>(r.owner_id ^ (r.owner_id >> 16) ^ (r.owner_id >> 32) ^
                                static_cast<uint64_t>(getpid()));

  // net_memif in a secondary maps the peer's regions (a request to the
  // primary over EAL's IPC channel) when it first sees the link up. Done
  // here, and again now and then: a fork child (which inherits these
  // mappings but not a working IPC channel: replies go to its parent) must
  // never have to ask.
  if (memif) {
    rte_eth_link link;
    rte_eth_link_get_nowait(port_id, &link);
  }
  init_datapath();
  start_arp();
  // No telemetry: DPDK 22.11 serves it in primary processes only; machnetd
  // publishes our counters (lease->counters) to machnet-stat instead.
  return true;
}

// Parks the lease: from the store on, the daemon may poll our RX queue and
// wakes us through wake_fd. A frame another process put on our ring before
// the store is seen by the check after it (the daemon sees later ones).
// Not while an address is being resolved: the answer lands in the daemon's
// neighbour table, which only our timer tick looks at.
int Engine::Impl::park() {
  if (parked) return 1;
  if (wake_fd < 0 || shared_waiting != 0 || !usable()) return 0;
  mn_lease_park(lease);
  parked = true;
  if (rte_ring_count(lease->steer_ring) != 0 || shared_ready()) {
    unpark();
    return -1;
  }
  return 1;
}

rte_ring* Engine::Impl::shared_ring_of(uint16_t port, uint16_t* group) const {
  // Detached: the shared memory may be gone with the daemon.
  if (!attached || shm == nullptr || detached.load(std::memory_order_relaxed)) return nullptr;
  uint16_t v = mn_port_queue(&shm->ports[port]);
  if ((v & MN_PORT_GROUP) == 0) return nullptr;
  uint16_t g = MN_PORT_GROUP_INDEX(v) % MN_SHM_GROUPS;
  uint16_t sh = mn_group_shared(&shm->groups[g]);
  if (sh == 0 || sh > MN_SHM_SHARED_RINGS) return nullptr;
  if (group != nullptr) *group = g;
  return shm->shared_rings[sh - 1];
}

bool Engine::Impl::shared_ready() const {
  for (int ring : reader_rings)
    if (rte_ring_count(shm->shared_rings[ring]) != 0) return true;
  for (const UdpSocket* s : bound) {
    rte_ring* r = shared_ring_of(s->port(), nullptr);
    if (r != nullptr && rte_ring_count(r) != 0) return true;
  }
  return false;
}

void Engine::Impl::hand_over_shared(UdpSocket* only) {
  for (UdpSocket* s : bound) {
    if (s->head_ == s->tail_ || (only != nullptr && s != only)) continue;
    uint16_t g = 0;
    rte_ring* r = shared_ring_of(s->port(), &g);
    if (r == nullptr) continue;
    // Behind what the ring already holds: UDP keeps no order, and a holder
    // that peeked at our head (socat's fork mode) finds it there.
    while (s->head_ != s->tail_) {
      UdpSocket::Slot& slot = s->slots_[s->head_ % s->capacity_];
      DatagramAddr a{slot.src_ip, config.ip, slot.src_port, s->port()};
      if (steer_datagram(slot.m, slot.payload_off, slot.payload_len, a, shm->shared_pool, r,
                         port_id, lease, g))
        counters.steered_out++;
      else
        counters.steer_drops++;
      // Counted again by whichever holder reads it.
      s->rx_datagrams_--;
      s->rx_bytes_ -= slot.payload_len;
      counters.udp_rx--;
      socket_gave(s, slot.m->nb_segs);
      rte_pktmbuf_free(slot.m);
      s->head_++;
    }
  }
}

// The ring's head is peeked at (HTS: one consumer operation at a time,
// marked in our lease so a reclaim can give it back if we die inside),
// copied out while it is still in the ring, then taken (or left: MSG_PEEK).
// A reader killed anywhere holds nothing but that marked reservation.
ssize_t Engine::Impl::shared_recv(UdpSocket* sock, rte_ring* ring, uint16_t group, void* buf,
                                  size_t len, uint32_t* src_ip, uint16_t* src_port, bool peek) {
  for (;;) {
    void* obj = nullptr;
    mn_lease_ring_op_begin(lease, MN_RING_OP_SHARED_DEQ, group);
    if (rte_ring_dequeue_bulk_start(ring, &obj, 1, nullptr) == 0) {
      mn_lease_ring_op_end(lease);
      return -EAGAIN;
    }
    auto* m = static_cast<rte_mbuf*>(obj);
    // Ethernet, IPv4, UDP to our port (a frame left from the ring's last
    // use, or an ICMP error about the port, is taken and dropped).
    uint8_t hdr[wire::kEthHdrLen + 60 + sizeof(wire::UdpHdr)];
    ssize_t full = -1;
    uint32_t ip_src = 0;
    uint16_t port_src = 0;
    const auto* p = static_cast<const uint8_t*>(
        rte_pktmbuf_read(m, 0, std::min<uint32_t>(m->pkt_len, sizeof(hdr)), hdr));
    uint32_t have = std::min<uint32_t>(m->pkt_len, sizeof(hdr));
    if (p != nullptr && have >= wire::kEthHdrLen + sizeof(wire::Ipv4Hdr) + sizeof(wire::UdpHdr)) {
      uint16_t et;
      memcpy(&et, p + 12, 2);
      const auto* ip = reinterpret_cast<const wire::Ipv4Hdr*>(p + wire::kEthHdrLen);
      uint32_t l4 = wire::kEthHdrLen + ip->header_len();
      if (et == htons(wire::kEtherTypeIpv4) && ip->version() == 4 && ip->header_len() >= 20 &&
          ip->protocol == wire::kIpProtoUdp && l4 + sizeof(wire::UdpHdr) <= have) {
        wire::UdpHdr udp;
        memcpy(&udp, p + l4, sizeof(udp));
        uint16_t ulen = ntohs(udp.length);
        if (ntohs(udp.dst_port) == sock->port() && ulen >= sizeof(wire::UdpHdr) &&
            l4 + ulen <= m->pkt_len &&
            (udp.checksum == 0 ||
             udp_checksum_ok(m, rte_pktmbuf_mtod_offset(m, const wire::Ipv4Hdr*, wire::kEthHdrLen),
                             l4, ulen))) {
          uint32_t plen = ulen - static_cast<uint32_t>(sizeof(wire::UdpHdr));
          size_t n = std::min<size_t>(len, plen);
          if (n > 0) {
            const void* d =
                rte_pktmbuf_read(m, l4 + sizeof(wire::UdpHdr), static_cast<uint32_t>(n), buf);
            if (d != buf && d != nullptr) memcpy(buf, d, n);
          }
          full = plen;
          ip_src = ntohl(ip->src);
          port_src = ntohs(udp.src_port);
        }
      }
    }
    if (full >= 0 && peek) {
      rte_ring_dequeue_finish(ring, 0);  // leave it for whoever reads it
      mn_lease_ring_op_end(lease);
    } else {
      rte_ring_dequeue_finish(ring, 1);
      mn_lease_ring_op_begin(lease, MN_RING_OP_SHARED_PUT, group);
      rte_pktmbuf_free(m);
      mn_lease_ring_op_end(lease);
    }
    if (full < 0) {
      counters.drops[static_cast<size_t>(DropReason::kNoSocket)]++;
      continue;
    }
    if (src_ip) *src_ip = ip_src;
    if (src_port) *src_port = port_src;
    if (!peek) {
      sock->rx_datagrams_++;
      sock->rx_bytes_ += static_cast<uint64_t>(full);
      counters.udp_rx++;
    }
    return full;
  }
}

// Takes the RX queue back; waits while the daemon is inside a burst on it
// (a few microseconds, longer only if it is preempted meanwhile).
void Engine::Impl::unpark() {
  for (unsigned i = 0;; i++) {
    if (mn_lease_try_unpark(lease)) break;
    if (i % 64 == 63) {
      sched_yield();
      // A daemon killed inside its burst never hands the queue back.
      if (i % 4096 == 4095 && ctl->peer_closed()) {
        go_detached("machnetd closed the control connection (it exited or crashed)");
        break;
      }
    }
  }
  parked = false;
}

size_t Engine::Impl::poll_attached() {
  if (!usable()) return 0;
  if (parked) {
    unpark();
    if (!usable()) return 0;
  }
  rte_mbuf* burst[kRxBurst];
  uint16_t n = memif_guard::rx_burst(port_id, queue, burst, kRxBurst, memif);
  const mn_shm& s = *shm;
  if (n != 0) mn_lease_steer_begin(lease);
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = burst[i];
    queue_rx_packets++;
    queue_rx_bytes += m->pkt_len;
    uint16_t target = ipc::steer_target(s, rte_pktmbuf_mtod(m, const uint8_t*), m->data_len);
    if (target == queue)
      rx_one(m);
    else
      steer_out(m, target);
  }
  if (n != 0) mn_lease_steer_end(lease);
  unsigned k =
      rte_ring_dequeue_burst(lease->steer_ring, reinterpret_cast<void**>(burst), kRxBurst, nullptr);
  counters.steered_in += k;
  for (unsigned i = 0; i < k; i++) rx_steered(burst[i]);
  uint64_t now = now_ns();
  if (now - last_timer_ns >= kTimerPeriodNs) run_attached_timers(now);
  tx_flush();
  return n + k;
}

void Engine::Impl::steer_out(rte_mbuf* m, uint16_t target) {
  if ((target & MN_STEER_SHARED) != 0) {
    // A fork-shared port (ours too): a copy onto the ring all holders read.
    uint16_t g = MN_STEER_SHARED_GROUP(target) % MN_SHM_GROUPS;
    uint16_t sh = mn_group_shared(&shm->groups[g]);
    rte_ring* r = sh != 0 && sh <= MN_SHM_SHARED_RINGS ? shm->shared_rings[sh - 1] : nullptr;
    if (r != nullptr && steer_copy(m, shm->shared_pool, r, port_id, lease, g, true))
      counters.steered_out++;
    else if (r != nullptr)
      counters.steer_drops++;
    else
      rte_pktmbuf_free(m), counters.steer_drops++;
    return;
  }
  if (target >= shm->nb_queues || target >= MN_SHM_MAX_QUEUES) target = 0;
  mn_lease& l = shm->leases[target];
  if (steer_copy(m, l.pool, l.steer_ring, port_id, lease, target))
    counters.steered_out++;
  else
    counters.steer_drops++;
}

void Engine::Impl::rx_steered(rte_mbuf* m) {
  if (m->nb_segs > 1) {
    rx_chain(m);
    return;
  }
  // A datagram a machnetd built on DPDK's ip_frag reassembled carries a zero
  // IPv4 header checksum: computed here (a frame with a checksum, as ours
  // reassembles them, is left alone).
  uint16_t et = 0;
  if (m->data_len >= wire::kEthHdrLen) memcpy(&et, rte_pktmbuf_mtod_offset(m, uint8_t*, 12), 2);
  if (et == htons(wire::kEtherTypeIpv4)) fix_reassembled_ip_checksum(m, wire::kEthHdrLen);
  rx_one(m);
}

void Engine::Impl::rx_chain(rte_mbuf* m) {
  counters.rx_packets++;
  counters.rx_bytes += m->pkt_len;
  // A complete IPv4 datagram spanning several segments, as machnetd hands
  // over what it reassembled: Ethernet and IPv4 headers in the first segment,
  // no fragment bits, the total length covering the chain.
  if (m->data_len < wire::kEthHdrLen + sizeof(wire::Ipv4Hdr)) {
    drop_mbuf(m, DropReason::kTruncatedIp);
    return;
  }
  const auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
  uint16_t et;
  memcpy(&et, p + 12, 2);
  if (et != htons(wire::kEtherTypeIpv4)) {
    drop_mbuf(m, DropReason::kUnknownEtherType);
    return;
  }
  const auto* ip = reinterpret_cast<const wire::Ipv4Hdr*>(p + wire::kEthHdrLen);
  size_t ihl = ip->header_len();
  if (ip->version() != 4) {
    drop_mbuf(m, DropReason::kBadIpVersion);
    return;
  }
  if (ihl < sizeof(wire::Ipv4Hdr) || wire::kEthHdrLen + ihl > m->data_len) {
    drop_mbuf(m, DropReason::kBadIhl);
    return;
  }
  if (ip->is_fragment()) {
    drop_mbuf(m, DropReason::kBadFragment);
    return;
  }
  if (ntohl(ip->dst) != config.ip) {
    drop_mbuf(m, DropReason::kIpNotForUs);
    return;
  }
  uint32_t total = ntohs(ip->total_length);
  if (total < ihl + sizeof(wire::UdpHdr) || wire::kEthHdrLen + total > m->pkt_len) {
    drop_mbuf(m, DropReason::kBadIpLength);
    return;
  }
  m->l2_len = wire::kEthHdrLen;
  m->l3_len = static_cast<uint16_t>(ihl);
  rx_reassembled(m);  // UDP length and checksum over the chain, then delivery
}

void Engine::Impl::run_attached_timers(uint64_t now) {
  last_timer_ns = now;
  if (mn_shm_shutting_down(shm) != 0) {
    go_detached("machnetd is shutting down");
    return;
  }
  if (ctl->peer_closed()) {
    go_detached("machnetd closed the control connection (it exited or crashed)");
    return;
  }
  if (memif && ++memif_link_ticks % 1024 == 0) {
    rte_eth_link link;  // maps the memif regions once the link is up (see open_attached)
    rte_eth_link_get_nowait(port_id, &link);
  }
  if (sockets_nonempty != 0) hand_over_shared();
  learn_shared_neighbours(now);
  arp->tick(now);
  learn_found_now(now);
  publish_counters();
}

int Engine::Impl::shared_neighbour(uint32_t ip, uint8_t mac[6]) {
  // A slot left mid-write: the daemon is gone when the attached path says so
  // anywhere else (shutting down, or its end of the control socket closed).
  auto gone = [](void* arg) -> int {
    auto* e = static_cast<Engine::Impl*>(arg);
    return mn_shm_shutting_down(e->shm) != 0 || e->ctl->peer_closed() ? 1 : 0;
  };
  int rc = mn_neighbour_lookup(shm, ip, mac, gone, this);
  if (rc == -ENETDOWN) {
    go_detached("machnetd died while writing its neighbour table");
    return rc;
  }
  return rc == 1 ? 1 : 0;
}

void Engine::Impl::wait_shared_neighbour(uint32_t ip) {
  for (size_t i = 0; i < shared_waiting; i++)
    if (shared_wait[i].ip == ip) return;
  if (shared_waiting < kSharedWaitMax) shared_wait[shared_waiting++] = {ip, last_timer_ns};
}

void Engine::Impl::learn_shared_neighbours(uint64_t now) {
  size_t keep = 0;
  uint64_t give_up = config.arp.retry_ns * (config.arp.max_requests + 1);
  for (size_t i = 0; i < shared_waiting; i++) {
    SharedNeighbourWait w = shared_wait[i];
    uint8_t m[6];
    int found = shared_neighbour(w.ip, m);
    if (found < 0) return;  // detached: nothing to learn any more
    if (found == 1) {
      wire::MacAddr mac;
      memcpy(mac.data(), m, 6);
      arp->learn(w.ip, mac, now, /*create=*/false);  // as if the ARP reply came to us
      continue;
    }
    net::ArpState st = arp->state(w.ip, now);
    if (st == net::ArpState::kNone || st == net::ArpState::kReachable) continue;
    if (now - w.since_ns > give_up) continue;
    shared_wait[keep++] = w;
  }
  shared_waiting = keep;
}

void Engine::Impl::learn_found_now(uint64_t now) {
  size_t n = learn_now_count;
  learn_now_count = 0;
  std::pair<uint32_t, wire::MacAddr> found[kLearnNowMax];
  std::copy(learn_now, learn_now + n, found);
  for (size_t i = 0; i < n; i++) arp->learn(found[i].first, found[i].second, now, false);
}

static_assert(kDropReasonCount <= MN_SHM_MAX_DROP_REASONS, "mn_lease_counters.drops is too small");

void Engine::Impl::publish_counters() {
  mn_lease_counters& lc = lease->counters;
  lc.rx_packets = queue_rx_packets;
  lc.rx_bytes = queue_rx_bytes;
  lc.tx_packets = counters.tx_packets;
  lc.tx_bytes = counters.tx_bytes;
  lc.steered_out = counters.steered_out;
  lc.steered_in = counters.steered_in;
  lc.steer_drops = counters.steer_drops;
  lc.udp_rx = counters.udp_rx;
  lc.udp_tx = counters.udp_tx;
  for (size_t i = 0; i < kDropReasonCount; i++) lc.drops[i] = counters.drops[i];
  for (UdpSocket* s : bound) {
    // A port's figures are its sockets' sums, published with its first.
    if (sockets[s->port()] != s) continue;
    uint64_t rx = 0, rx_bytes = 0, tx = 0;
    for (const UdpSocket* o = s; o != nullptr; o = o->next_) {
      rx += o->rx_datagrams_;
      rx_bytes += o->rx_bytes_;
      tx += o->tx_datagrams_;
    }
    if (rx == s->published_rx_ && tx == s->published_tx_) continue;
    mn_port_entry& pe = shm->ports[s->port()];
    uint16_t holder = mn_port_queue(&pe);
    if ((holder & MN_PORT_GROUP) != 0) {
      // A group's port: each member has its own figures in the group.
      mn_port_counters& pc =
          shm->groups[MN_PORT_GROUP_INDEX(holder) % MN_SHM_GROUPS].by_queue[queue];
      pc.rx_datagrams = rx;
      pc.rx_bytes = rx_bytes;
      pc.tx_datagrams = tx;
    } else {
      pe.rx_datagrams = rx;
      pe.rx_bytes = rx_bytes;
      pe.tx_datagrams = tx;
    }
    s->published_rx_ = rx;
    s->published_tx_ = tx;
  }
}

void Engine::Impl::go_detached(const char* why) {
  if (detached.exchange(true)) return;
  // From here on nothing touches the port, the rings or any mbuf: a daemon
  // that shut down may have freed (and unmapped) them.
  tx.forget();
  learn_now_count = 0;
  shared_waiting = 0;
  ctl->close();
  // Every engine call runs under the caller's lock (one at a time), and all
  // of them check `detached` first: from here on this process touches no
  // shared memory, which a shutting-down daemon waits to hear.
  if (lease != nullptr) mn_lease_set_quiesced(lease);
  MN_LOG(ENGINE, ERR, "%s: the engine on %s queue %u stops; offloaded sockets fail with ENETDOWN",
         why, device_name.c_str(), queue);
}

int Engine::Impl::attached_bind(uint16_t port, const UdpBindOptions& opt, UdpSocket** out) {
  if (!usable()) return -ENETDOWN;
  if (port != 0 && sockets[port] != nullptr) {
    // Ours already: the daemon holds one claim per port for this process.
    if (!may_share(sockets[port], opt)) return -EADDRINUSE;
    *out = new_socket(port, opt);
    bound.push_back(*out);
    return 0;
  }
  if (opt.local_only) {
    if (port == 0) return -EINVAL;
    *out = new_socket(port, opt);
    bound.push_back(*out);
    return 0;
  }
  uint16_t got = 0;
  // SO_REUSEPORT on the socket: the port may be shared with other processes
  // (a group in the daemon, same uid, flows split by hash).
  int rc = opt.fork_join
               ? ctl->join_udp(port)
               : ctl->bind_udp(config.ip, port, &got, opt.reuseport ? MN_CTL_BIND_REUSEPORT : 0);
  if (opt.fork_join && rc == 0) got = port;
  if (!ctl->connected()) {
    go_detached("machnetd closed the control connection (it exited or crashed)");
    return -ENETDOWN;
  }
  if (rc < 0) return rc;
  if (sockets[got] != nullptr) return -EADDRINUSE;  // the daemon lost track: keep ours
  UdpSocket* s = new_socket(got, opt);
  bound.push_back(s);
  *out = s;
  return 0;
}

void Engine::Impl::attached_close(UdpSocket* sock) {
  uint16_t port = sock->port();
  bool last = sockets[port] == sock && sock->next_ == nullptr && !sock->local_only_;
  // Queued datagrams of a port other processes hold go to them, not away
  // with the socket (socat's fork mode closes the parent's after a peek).
  if (usable() && sock->head_ != sock->tail_) hand_over_shared(sock);
  if (last && usable()) {
    publish_counters();
    ctl->unbind_udp(port);  // errors: the port goes back with the lease anyway
    if (!ctl->connected())
      go_detached("machnetd closed the control connection (it exited or crashed)");
  }
  bound.erase(std::remove(bound.begin(), bound.end(), sock), bound.end());
  if (!unlink_socket(sock)) {
    // Other sockets of ours keep the port and its claim: its figures stay.
    UdpSocket* keep = sockets[port];
    keep->rx_datagrams_ += sock->rx_datagrams_;
    keep->rx_bytes_ += sock->rx_bytes_;
    keep->tx_datagrams_ += sock->tx_datagrams_;
  }
  socket_forget(sock);
  if (detached.load()) sock->head_ = sock->tail_;  // forget, never free (see `detached`)
  delete sock;
}

std::string Engine::Impl::describe_attached() const {
  std::string s = "attached to machnetd pid " + std::to_string(shm->daemon_pid) + " (" +
                  config.machnetd_socket + "), queue " + std::to_string(queue) + " (lcore " +
                  std::to_string(lcore_id) + ") on " + device_name + " (port " +
                  std::to_string(port_id) + "), ip " + wire::format_ipv4(config.ip) + "/" +
                  std::to_string(config.prefix_len) + " mac " + wire::format_mac(mac) + " mtu " +
                  std::to_string(mtu) + ", checksums: ip " +
                  (tx_ip_csum ? "offloaded" : "software") + ", udp " +
                  (tx_udp_csum ? "offloaded" : "software") + ", software steering";
  if (detached.load()) s += "; DETACHED: machnetd is gone";
  return s;
}

// ---- stream services (the daemon steers their SYNs) ------------------------

int Engine::service_listen(uint16_t service, bool reuseport) {
  Impl& e = *impl_;
  if (!e.attached) return -ENOTSUP;
  if (!e.usable()) return -ENETDOWN;
  int rc = e.ctl->bind_service(service, reuseport ? MN_CTL_BIND_REUSEPORT : 0);
  if (!e.ctl->connected()) {
    e.go_detached("machnetd closed the control connection (it exited or crashed)");
    return -ENETDOWN;
  }
  return rc;
}

int Engine::service_join(uint16_t service, int* ring) {
  Impl& e = *impl_;
  if (!e.attached) return -ENOTSUP;
  if (!e.usable()) return -ENETDOWN;
  uint16_t r = 0;
  int rc = e.ctl->join_service(service, &r);
  if (!e.ctl->connected()) {
    e.go_detached("machnetd closed the control connection (it exited or crashed)");
    return -ENETDOWN;
  }
  if (rc == 0) *ring = r;
  return rc;
}

void Engine::service_unlisten(uint16_t service) {
  Impl& e = *impl_;
  if (!e.attached || !e.usable()) return;
  e.ctl->unbind_service(service);  // errors: the service goes with the lease anyway
  if (!e.ctl->connected())
    e.go_detached("machnetd closed the control connection (it exited or crashed)");
}

uint16_t Engine::rendezvous_port() const {
  return impl_->attached ? impl_->daemon_rendezvous : 0;
}

ssize_t Engine::ring_recv(int ring, UdpSocket* sock, void* buf, size_t len, uint32_t* src_ip,
                          uint16_t* src_port) {
  Impl& e = *impl_;
  if (!e.usable()) return -ENETDOWN;
  if (!e.attached || ring < 0 || ring >= MN_SHM_SHARED_RINGS) return -EAGAIN;
  return e.shared_recv(sock, e.shm->shared_rings[ring], MN_RING_OP_SERVICE_RING(ring), buf, len,
                       src_ip, src_port, false);
}

void Engine::set_ring_reader(int ring, bool on) {
  Impl& e = *impl_;
  if (ring < 0 || ring >= MN_SHM_SHARED_RINGS) return;
  auto it = std::find(e.reader_rings.begin(), e.reader_rings.end(), ring);
  if (on && it == e.reader_rings.end()) e.reader_rings.push_back(ring);
  if (!on && it != e.reader_rings.end()) e.reader_rings.erase(it);
}

uint32_t Engine::service_rings() const {
  Impl& e = *impl_;
  if (!e.attached || !e.usable() || e.lease == nullptr) return 0;
  return mn_lease_service_rings(e.lease) & ((1u << MN_SHM_SHARED_RINGS) - 1);
}

}  // namespace machnet::engine
