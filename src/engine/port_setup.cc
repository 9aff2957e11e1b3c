#include "engine/port_setup.h"

#include <rte_errno.h>

#include <cstring>

namespace machnet::engine {

uint16_t frame_data_room(uint16_t mtu, bool fixed_buffers) {
  uint32_t frame = static_cast<uint32_t>(mtu) + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
  uint16_t room = RTE_MBUF_DEFAULT_BUF_SIZE;
  if (!fixed_buffers && frame + RTE_PKTMBUF_HEADROOM > room)
    room = static_cast<uint16_t>(frame + RTE_PKTMBUF_HEADROOM);
  return room;
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
