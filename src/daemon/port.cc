#include "daemon/port.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memzone.h>
#include <rte_ring.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "daemon/clock.h"
#include "daemon/eal_setup.h"
#include "engine/log.h"
#include "engine/port_setup.h"

namespace machnet::daemon {
namespace {

bool find_port(Daemon* d, std::string* err) {
  const std::string& dev = d->cfg.device;
  std::string name = dev.substr(0, dev.find(','));
  if (rte_eth_dev_get_port_by_name(name.c_str(), &d->port_id) == 0) return true;
  if (is_pci_address(dev)) {
    // Some PMDs name their ports differently from the PCI address: the
    // allow-list holds only this device, so its first port is the one.
    uint16_t p = rte_eth_find_next_owned_by(0, RTE_ETH_DEV_NO_OWNER);
    if (p < RTE_MAX_ETHPORTS) {
      d->port_id = p;
      return true;
    }
  }
  *err = "DPDK device '" + name + "' was not created (check the device string '" + dev +
         "' and the DPDK log above)";
  return false;
}

}  // namespace

bool setup_port(Daemon* d, std::string* err) {
  const DaemonConfig& cfg = d->cfg;
  if (!find_port(d, err)) return false;
  char name[RTE_ETH_NAME_MAX_LEN];
  if (rte_eth_dev_get_name_by_port(d->port_id, name) == 0) d->device_name = name;
  d->memif = d->device_name.rfind("net_memif", 0) == 0;
  d->pmd_holds_none = d->device_name.rfind("net_ring", 0) == 0 ||
                      (d->memif && cfg.device.find("zero-copy=yes") == std::string::npos);

  rte_eth_dev_info info;
  int rc = rte_eth_dev_info_get(d->port_id, &info);
  if (rc != 0) {
    *err = "rte_eth_dev_info_get: " + std::string(rte_strerror(-rc));
    return false;
  }
  uint32_t nq = cfg.queues;
  if (d->device_name.rfind("net_tap", 0) == 0 && nq * 2 > RTE_MP_MAX_FD_NUM) {
    // DPDK 22.11's tap PMD hands all queue fds to secondaries in one IPC
    // message of at most RTE_MP_MAX_FD_NUM fds (and overflows its stack in
    // dev_start beyond that): more queue pairs cannot be shared.
    MN_LOG(DAEMON, WARNING,
           "net_tap: using %u queue pairs, not %u (a DPDK tap port passes at most %d queue fds to "
           "other processes)",
           RTE_MP_MAX_FD_NUM / 2, nq, RTE_MP_MAX_FD_NUM);
    nq = RTE_MP_MAX_FD_NUM / 2;
  }
  if (nq > info.max_rx_queues || nq > info.max_tx_queues) {
    *err = "device " + d->device_name + " supports at most " +
           std::to_string(std::min(info.max_rx_queues, info.max_tx_queues)) +
           " queue pairs; machnetd.queues is " + std::to_string(nq);
    return false;
  }
  d->nb_queues = static_cast<uint16_t>(nq);

  rte_eth_conf conf;
  memset(&conf, 0, sizeof(conf));
  engine::checksum_offloads(info, &conf);
  // Hardware NICs spread flows over the queues by RSS; every poller steers
  // what is not its own. Virtual devices spread by themselves (tap) or not.
  if (nq > 1 && is_pci_address(cfg.device) && info.flow_type_rss_offloads != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
  }
  rc = rte_eth_dev_configure(d->port_id, d->nb_queues, d->nb_queues, &conf);
  if (rc != 0) {
    *err = "rte_eth_dev_configure(" + std::to_string(nq) +
           " queues): " + std::string(rte_strerror(-rc));
    return false;
  }
  uint16_t nrx = cfg.rx_desc, ntx = cfg.tx_desc;
  rte_eth_dev_adjust_nb_rx_tx_desc(d->port_id, &nrx, &ntx);
  int socket = rte_eth_dev_socket_id(d->port_id);
  if (socket < 0) socket = static_cast<int>(rte_socket_id());

  uint16_t data_room = engine::frame_data_room(cfg.mtu, /*fixed_buffers=*/false);
  d->pool_size = cfg.mbufs_per_queue;
  // The ring holds every mbuf of the pool: it is never the reason a copy fails.
  unsigned ring_size = rte_align32pow2(cfg.mbufs_per_queue + 1);
  rte_eth_txconf txconf = info.default_txconf;
  txconf.offloads = conf.txmode.offloads;
  rte_eth_rxconf rxconf = info.default_rxconf;
  rxconf.offloads = conf.rxmode.offloads;
  for (uint16_t q = 0; q < d->nb_queues; q++) {
    std::string pn = "mn_pool_" + std::to_string(q);
    // HTS ring under the pool and HTS producers on the steering ring: one
    // operation in flight per side, so the reservation of a process killed
    // inside one is attributable and the reclaim can give it back (shm.h).
    d->pools[q] = rte_pktmbuf_pool_create_by_ops(pn.c_str(), cfg.mbufs_per_queue, 0, 0, data_room,
                                                 socket, "ring_mt_hts");
    if (d->pools[q] == nullptr) {
      *err = "cannot create mbuf pool " + pn + " (" + std::to_string(cfg.mbufs_per_queue) +
             " mbufs): " + rte_strerror(rte_errno) +
             " - are enough hugepages reserved? (/sys/kernel/mm/hugepages/*/nr_hugepages)";
      return false;
    }
    std::string rn = "mn_steer_" + std::to_string(q);
    d->rings[q] = rte_ring_create(rn.c_str(), ring_size, socket, RING_F_MP_HTS_ENQ | RING_F_SC_DEQ);
    if (d->rings[q] == nullptr) {
      *err = "cannot create ring " + rn + ": " + rte_strerror(rte_errno);
      return false;
    }
    rc = rte_eth_rx_queue_setup(d->port_id, q, nrx, static_cast<unsigned>(socket), &rxconf,
                                d->pools[q]);
    if (rc != 0) {
      *err = "rte_eth_rx_queue_setup(queue " + std::to_string(q) +
             "): " + std::string(rte_strerror(-rc));
      return false;
    }
    rc = rte_eth_tx_queue_setup(d->port_id, q, ntx, static_cast<unsigned>(socket), &txconf);
    if (rc != 0) {
      *err = "rte_eth_tx_queue_setup(queue " + std::to_string(q) +
             "): " + std::string(rte_strerror(-rc));
      return false;
    }
  }
  // Fork-shared ports: every holder reads one ring (first reader takes the
  // datagram; a peek leaves it there), so both sides are HTS: a reader
  // peeks with rte_ring_dequeue_bulk_start/finish, and a process killed
  // inside an operation leaves an attributable gap (ring_op).
  d->shared_pool = rte_pktmbuf_pool_create_by_ops("mn_pool_shared", cfg.mbufs_per_queue, 0, 0,
                                                  data_room, socket, "ring_mt_hts");
  if (d->shared_pool == nullptr) {
    *err = std::string("cannot create mbuf pool mn_pool_shared: ") + rte_strerror(rte_errno);
    return false;
  }
  for (unsigned i = 0; i < MN_SHM_SHARED_RINGS; i++) {
    std::string rn = "mn_shared_" + std::to_string(i);
    d->shared_rings[i] = rte_ring_create(rn.c_str(), rte_align32pow2(cfg.rx_desc + 1), socket,
                                         RING_F_MP_HTS_ENQ | RING_F_MC_HTS_DEQ);
    if (d->shared_rings[i] == nullptr) {
      *err = "cannot create ring " + rn + ": " + rte_strerror(rte_errno);
      return false;
    }
  }

  d->mtu = engine::apply_mtu(d->port_id, cfg.mtu, info);
  bool mac_in_software = false;
  wire::MacAddr mac{};
  if (!cfg.mac.empty()) {
    wire::parse_mac(cfg.mac, &mac);  // validated by HostSettings::load
    if (!engine::apply_mac(d->port_id, mac, &mac_in_software, err)) return false;
  }

  d->mz = rte_memzone_reserve(MN_SHM_NAME, sizeof(mn_shm), socket, 0);
  if (d->mz == nullptr) {
    *err = std::string("cannot reserve memzone ") + MN_SHM_NAME + ": " + rte_strerror(rte_errno);
    return false;
  }
  memset(d->mz->addr, 0, sizeof(mn_shm));
  mn_shm* shm = new (d->mz->addr) mn_shm;
  d->shm = shm;

  rc = rte_eth_dev_start(d->port_id);
  if (rc != 0) {
    *err = "rte_eth_dev_start: " + std::string(rte_strerror(-rc));
    return false;
  }
  if (mac_in_software) {
    d->mac = mac;
  } else {
    rte_ether_addr addr;
    rte_eth_macaddr_get(d->port_id, &addr);
    memcpy(d->mac.data(), addr.addr_bytes, 6);
  }
  if (d->mac == wire::kZeroMac) {
    // net_ring and some vdevs have no address: make up a locally
    // administered one, so neighbours can tell us apart.
    uint8_t r[6] = {};
    if (getrandom(r, sizeof(r), 0) != static_cast<ssize_t>(sizeof(r))) {
      uint64_t v = mono_ns() ^ static_cast<uint64_t>(getpid());
      memcpy(r, &v, sizeof(r));
    }
    r[0] = static_cast<uint8_t>((r[0] & 0xfe) | 0x02);
    memcpy(d->mac.data(), r, 6);
    rte_ether_addr a;
    memcpy(a.addr_bytes, r, 6);
    rte_eth_dev_default_mac_addr_set(d->port_id, &a);  // in software when the PMD cannot
  }
  // Promiscuous mode is not needed: unicast to our MAC, broadcast ARP.

  shm->version = MN_SHM_VERSION;
  shm->daemon_pid = getpid();
  shm->port_id = d->port_id;
  shm->nb_queues = d->nb_queues;
  shm->ip = cfg.ip;
  shm->gateway = cfg.gateway;
  shm->prefix_len = cfg.prefix_len;
  memcpy(shm->mac, d->mac.data(), 6);
  shm->mtu = d->mtu;
  for (uint16_t q = 0; q < MN_SHM_MAX_QUEUES; q++) {
    mn_lease& l = shm->leases[q];
    l.queue = q;
    l.lcore_id = q;
    if (q >= d->nb_queues) continue;
    l.steer_ring = d->rings[q];
    l.pool = d->pools[q];
    // Nobody holds an mbuf yet: what is in use is what the PMD posted.
    l.posted_baseline = rte_mempool_in_use_count(d->pools[q]);
    mn_lease_set_state(&l, q == 0 ? MN_LEASE_DAEMON : MN_LEASE_FREE);
  }
  for (unsigned i = 0; i < MN_SHM_SHARED_RINGS; i++) shm->shared_rings[i] = d->shared_rings[i];
  shm->shared_pool = d->shared_pool;
  mn_shm_publish(shm);  // the magic, last
  return true;
}

void close_port(Daemon* d) {
  if (d->port_id >= RTE_MAX_ETHPORTS || !rte_eth_dev_is_valid_port(d->port_id)) return;
  rte_eth_dev_stop(d->port_id);
  rte_eth_dev_close(d->port_id);
}

}  // namespace machnet::daemon
