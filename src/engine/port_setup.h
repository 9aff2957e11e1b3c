// Port settings the engine (standalone) and machnetd apply the same way:
// mbuf data room for the MTU, checksum offloads where the device has them,
// the MTU, and a MAC override.
#pragma once

#include <rte_ethdev.h>

#include <cstdint>
#include <string>

#include "wire/headers.h"

namespace machnet::engine {

// Data room of an mbuf that holds one frame of `mtu` bytes of IP (datagrams
// above the MTU are fragmented): DPDK's default, or more for jumbo frames
// unless the PMD fixes the buffer size itself (AF_XDP's umem chunks).
uint16_t frame_data_room(uint16_t mtu, bool fixed_buffers);

// Asks for the IPv4 and UDP checksum offloads the device has (RX and TX).
void checksum_offloads(const rte_eth_dev_info& info, rte_eth_conf* conf);

// Sets the MTU. Some PMDs (memif, ring) cannot: then the MTU is what we send,
// bounded by what the PMD reports as its maximum. Returns the MTU in use.
uint16_t apply_mtu(uint16_t port, uint16_t mtu, const rte_eth_dev_info& info);

// Sets the port's MAC. Virtual PMDs without MAC filtering (ring) cannot: then
// *software is set and the address only goes into our frames, which is all
// such a port needs. False and *err for any other failure.
bool apply_mac(uint16_t port, const wire::MacAddr& mac, bool* software, std::string* err);

}  // namespace machnet::engine
