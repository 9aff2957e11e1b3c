// Port bring-up: mempool and queue sizing, checksum offloads where the PMD has
// them, MTU, MAC, and AF_XDP steering when the device is an AF_XDP vdev.
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include <cstdio>
#include <cstring>

#include "engine/engine_impl.h"
#include "engine/log.h"
#include "engine/memif_guard.h"
#include "engine/port_setup.h"

namespace machnet::engine {
namespace {

// Up to 2 s for a queue an exited engine's AF_XDP socket still holds.
constexpr int kAfXdpBindRetries = 100;
constexpr unsigned kAfXdpBindRetryUs = 20000;

std::string devarg(const std::string& device, const std::string& key) {
  std::string k = "," + key + "=";
  auto p = device.find(k);
  if (p == std::string::npos) return "";
  p += k.size();
  auto e = device.find(',', p);
  return device.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

}  // namespace

bool Engine::Impl::bring_up_port(std::string* err) {
  device_name = config.device.substr(0, config.device.find(','));
  if (config.port_id >= 0) {
    port_id = static_cast<uint16_t>(config.port_id);
    if (!rte_eth_dev_is_valid_port(port_id)) {
      *err = "port " + std::to_string(port_id) + " does not exist";
      return false;
    }
    char name[RTE_ETH_NAME_MAX_LEN];
    if (rte_eth_dev_get_name_by_port(port_id, name) == 0) device_name = name;
  } else if (rte_eth_dev_get_port_by_name(device_name.c_str(), &port_id) != 0) {
    *err = "DPDK device '" + device_name + "' was not created (check the device string '" +
           config.device + "' and the DPDK log above)";
    return false;
  }
  if (config.port_id < 0) port_probed = true;  // ours to stop and close

  rte_eth_dev_info info;
  int rc = rte_eth_dev_info_get(port_id, &info);
  if (rc != 0) {
    *err = "rte_eth_dev_info_get: " + std::string(rte_strerror(-rc));
    return false;
  }
  bool is_af_xdp = device_name.rfind("net_af_xdp", 0) == 0;
  memif = device_name.rfind("net_memif", 0) == 0;

  uint16_t data_room = frame_data_room(config.mtu, /*fixed_buffers=*/is_af_xdp);
  std::string pool_name = "mn_pool_" + std::to_string(port_id);
  // AF_XDP: objects packed end to end, or net_af_xdp's UMEM misses the last
  // few and the kernel rejects what is sent from them (port_setup.h).
  pool = is_af_xdp ? create_packed_mbuf_pool(pool_name.c_str(), config.num_mbufs, 256, data_room,
                                             static_cast<int>(rte_socket_id()), nullptr)
                   : rte_pktmbuf_pool_create(pool_name.c_str(), config.num_mbufs, 256, 0, data_room,
                                             static_cast<int>(rte_socket_id()));
  if (pool == nullptr) {
    *err = "cannot create the mbuf pool (" + std::to_string(config.num_mbufs) +
           " mbufs): " + rte_strerror(rte_errno) +
           " - are hugepages reserved? (tools/install-deps.sh, or hugepages = no)";
    return false;
  }
  if (is_af_xdp && !af_xdp_umem_covers_pool(pool, err)) {
    rte_mempool_free(pool);  // no queue has it yet
    pool = nullptr;
    return false;
  }

  rte_eth_conf conf;
  memset(&conf, 0, sizeof(conf));
  checksum_offloads(info, &conf);
  tx_ip_csum = (conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
  tx_udp_csum = (conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) != 0;

  rc = rte_eth_dev_configure(port_id, 1, 1, &conf);
  if (rc != 0) {
    *err = "rte_eth_dev_configure: " + std::string(rte_strerror(-rc));
    return false;
  }
  uint16_t nrx = config.rx_desc, ntx = config.tx_desc;
  rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nrx, &ntx);
  int socket = rte_eth_dev_socket_id(port_id);
  if (socket < 0) socket = static_cast<int>(rte_socket_id());
  rc = rte_eth_rx_queue_setup(port_id, 0, nrx, static_cast<unsigned>(socket), nullptr, pool);
  // AF_XDP: the kernel releases an exited engine's socket on the queue
  // asynchronously, so a program started right after another (a shell loop
  // of short-lived clients) can find the queue still bound. Wait for it, a
  // bounded time, rather than leave every socket on the kernel.
  bool af_xdp = device_name.rfind("net_af_xdp", 0) == 0;
  for (int tries = 0; rc != 0 && af_xdp && tries < kAfXdpBindRetries; tries++) {
    rte_delay_us_sleep(kAfXdpBindRetryUs);
    rc = rte_eth_rx_queue_setup(port_id, 0, nrx, static_cast<unsigned>(socket), nullptr, pool);
  }
  if (rc != 0) {
    *err = "rte_eth_rx_queue_setup: " + std::string(rte_strerror(-rc));
    return false;
  }
  rte_eth_txconf txconf = info.default_txconf;
  txconf.offloads = conf.txmode.offloads;
  rc = rte_eth_tx_queue_setup(port_id, 0, ntx, static_cast<unsigned>(socket), &txconf);
  if (rc != 0) {
    *err = "rte_eth_tx_queue_setup: " + std::string(rte_strerror(-rc));
    return false;
  }

  mtu = apply_mtu(port_id, config.mtu, info);
  bool mac_in_software = false;
  if (!config.mac.empty()) {
    wire::MacAddr m;
    wire::parse_mac(config.mac, &m);
    if (!apply_mac(port_id, m, &mac_in_software, err)) return false;
  }

  rc = rte_eth_dev_start(port_id);
  if (rc != 0) {
    *err = "rte_eth_dev_start: " + std::string(rte_strerror(-rc));
    return false;
  }
  if (mac_in_software) {
    wire::parse_mac(config.mac, &mac);
  } else {
    rte_ether_addr addr;
    rte_eth_macaddr_get(port_id, &addr);
    memcpy(mac.data(), addr.addr_bytes, 6);
  }

  if (memif && memif_guard::wrapped_callbacks() == 0) {
    MN_LOG(ENGINE, ERR,
           "memif disconnect guard inactive (libmachnet loaded with RTLD_LOCAL?): a peer "
           "leaving mid-traffic can crash this process");
  }
  if (is_af_xdp) {
    iface = devarg(config.device, "iface");
    xdp = std::make_unique<XdpSteering>();
    if (!xdp->attach(iface, err) || !xdp->configure(config.ip, config.xdp_shared_ip, err)) {
      *err = "AF_XDP steering on " + iface + ": " + *err;
      return false;
    }
    if (config.xdp_shared_ip) {
      kernel_neigh = std::make_unique<KernelNeighbours>();
      if (!kernel_neigh->open(iface, err)) {
        *err = "kernel neighbour table of " + iface + ": " + *err;
        return false;
      }
    }
  }
  return true;
}

}  // namespace machnet::engine
