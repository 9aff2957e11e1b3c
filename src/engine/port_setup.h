// Port settings the engine (standalone) and machnetd apply the same way:
// mbuf data room for the MTU, checksum offloads where the device has them,
// the MTU, and a MAC override.
#pragma once

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <cstdint>
#include <string>

#include "wire/headers.h"

namespace machnet::engine {

// Data room of an mbuf that holds one frame of `mtu` bytes of IP (datagrams
// above the MTU are fragmented): DPDK's default, or more for jumbo frames
// unless the PMD fixes the buffer size itself (AF_XDP's umem chunks).
uint16_t frame_data_room(uint16_t mtu, bool fixed_buffers);

// An mbuf pool (as rte_pktmbuf_pool_create_by_ops; ops nullptr: the default)
// whose objects lie end to end, none skipped to a page boundary
// (RTE_MEMPOOL_F_NO_IOVA_CONTIG): what net_af_xdp's UMEM needs, see
// af_xdp_umem_covers_pool. Nullptr and rte_errno on failure.
rte_mempool* create_packed_mbuf_pool(const char* name, unsigned n, unsigned cache,
                                     uint16_t data_room, int socket, const char* ops);

// Whether the UMEM that net_af_xdp registers for `mp` holds every object of
// it. The PMD of DPDK before 24.07 registers populated_size * object size
// bytes from the page of the pool's first memory chunk on: it assumes the
// objects packed end to end. A default pool skips to the next hugepage
// wherever an object would cross one (for IOVA-contiguous objects), so its
// last objects lie past the UMEM's end: the kernel rejects every frame sent
// from them (counted as tx_invalid_descs, never sent, while DPDK counts it
// sent) and skips them on the fill ring. A thread without a mempool cache
// (not a DPDK lcore) cycles through the whole pool and meets them every pass.
// False and *err with the figures when some object is outside.
bool af_xdp_umem_covers_pool(const rte_mempool* mp, std::string* err);

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
