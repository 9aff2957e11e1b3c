#include "engine/port_setup.h"

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace machnet::engine {

uint16_t frame_data_room(uint16_t mtu, bool fixed_buffers) {
  uint32_t frame = static_cast<uint32_t>(mtu) + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
  uint16_t room = RTE_MBUF_DEFAULT_BUF_SIZE;
  if (!fixed_buffers && frame + RTE_PKTMBUF_HEADROOM > room)
    room = static_cast<uint16_t>(frame + RTE_PKTMBUF_HEADROOM);
  return room;
}

rte_mempool* create_packed_mbuf_pool(const char* name, unsigned n, unsigned cache,
                                     uint16_t data_room, int socket, const char* ops) {
  // rte_pktmbuf_pool_create_by_ops, with the flag it cannot take.
  rte_pktmbuf_pool_private priv;
  memset(&priv, 0, sizeof(priv));
  priv.mbuf_data_room_size = data_room;
  unsigned elt_size = static_cast<unsigned>(sizeof(rte_mbuf)) + data_room;
  rte_mempool* mp = rte_mempool_create_empty(name, n, elt_size, cache, sizeof(priv), socket,
                                             RTE_MEMPOOL_F_NO_IOVA_CONTIG);
  if (mp == nullptr) return nullptr;
  int rc =
      rte_mempool_set_ops_byname(mp, ops != nullptr ? ops : rte_mbuf_best_mempool_ops(), nullptr);
  if (rc == 0) {
    rte_pktmbuf_pool_init(mp, &priv);
    rc = rte_mempool_populate_default(mp);
    rc = rc < 0 ? rc : 0;
  }
  if (rc != 0) {
    rte_mempool_free(mp);
    rte_errno = -rc;
    return nullptr;
  }
  rte_mempool_obj_iter(mp, rte_pktmbuf_init, nullptr);
  return mp;
}

namespace {

struct UmemSpan {
  uintptr_t start;  // the UMEM: [start, end)
  uintptr_t end;
  uint32_t header;       // mempool object header before each element
  uint32_t frame;        // UMEM chunk: header + element + trailer
  unsigned outside = 0;  // objects not wholly inside
  uintptr_t last_end = 0;
};

void check_object(rte_mempool*, void* arg, void* obj, unsigned) {
  auto* s = static_cast<UmemSpan*>(arg);
  uintptr_t lo = reinterpret_cast<uintptr_t>(obj) - s->header;
  uintptr_t hi = lo + s->frame;
  if (lo < s->start || hi > s->end) s->outside++;
  if (hi > s->last_end) s->last_end = hi;
}

}  // namespace

bool af_xdp_umem_covers_pool(const rte_mempool* mp, std::string* err) {
  auto* pool = const_cast<rte_mempool*>(mp);
  rte_mempool_memhdr* first = STAILQ_FIRST(&pool->mem_list);
  if (first == nullptr) {
    *err = std::string("mbuf pool ") + mp->name + " has no memory";
    return false;
  }
  // As rte_eth_af_xdp.c (22.11) computes it: get_base_addr, xdp_umem_configure.
  uintptr_t addr = reinterpret_cast<uintptr_t>(first->addr);
  uintptr_t page = static_cast<uintptr_t>(getpagesize());
  UmemSpan s;
  s.start = addr & ~(page - 1);
  s.frame = rte_mempool_calc_obj_size(mp->elt_size, mp->flags, nullptr);
  s.end = addr + static_cast<uintptr_t>(mp->populated_size) * s.frame;
  s.header = mp->header_size;
  rte_mempool_obj_iter(pool, check_object, &s);
  if (s.outside == 0) return true;
  char buf[256];
  snprintf(buf, sizeof(buf),
           "%u of the %u mbufs of pool %s lie outside the AF_XDP UMEM (%zu bytes, objects up to "
           "%zu): its memory is not one run of packed objects",
           s.outside, mp->populated_size, mp->name, static_cast<size_t>(s.end - s.start),
           static_cast<size_t>(s.last_end - s.start));
  *err = buf;
  return false;
}

void checksum_offloads(const rte_eth_dev_info& info, rte_eth_conf* conf) {
  conf->txmode.offloads |=
      info.tx_offload_capa & (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
  conf->rxmode.offloads |=
      info.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
}

uint16_t apply_mtu(uint16_t port, uint16_t mtu, const rte_eth_dev_info& info) {
  if (rte_eth_dev_set_mtu(port, mtu) != 0 && info.max_mtu != 0 && info.max_mtu < mtu)
    return info.max_mtu;
  return mtu;
}

bool apply_mac(uint16_t port, const wire::MacAddr& mac, bool* software, std::string* err) {
  rte_ether_addr a;
  memcpy(a.addr_bytes, mac.data(), 6);
  int rc = rte_eth_dev_default_mac_addr_set(port, &a);
  *software = rc == -ENOTSUP;
  if (rc != 0 && !*software) {
    *err = "cannot set MAC " + wire::format_mac(mac) + ": " + rte_strerror(-rc);
    return false;
  }
  return true;
}

}  // namespace machnet::engine
