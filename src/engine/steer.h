// Software steering between the processes that share a machnetd port (no
// virtual device here has rte_flow): a frame that landed on one queue but
// belongs to the owner of another is copied into an mbuf of the owner's pool
// and put on the owner's steering ring (src/ipc/shm.h). Copied, never handed
// over: pool q's mbufs are only ever held by q's owner, ring q or RX queue q,
// which is what lets machnetd sweep a dead owner's mbufs back.
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstdint>

#include "ipc/shm.h"

namespace machnet::engine {

// Copies m into `pool` and enqueues the copy on `ring`; every segment of the
// copy carries port_id (the sweep's mark of a handed-out mbuf). m is freed
// either way. False when the pool or the ring was full (the copy is freed).
// A lease holder passes its lease and the target queue: each operation on
// the target's pool and ring is marked in self->ring_op (shm.h); machnetd
// passes null. shared: the pool is mn_shm.shared_pool and the ring group
// `target`'s fork-shared ring (marked with the MN_RING_OP_SHARED_* kinds).
bool steer_copy(rte_mbuf* m, rte_mempool* pool, rte_ring* ring, uint16_t port_id, mn_lease* self,
                uint16_t target, bool shared = false);

// The addresses of a datagram rebuilt by steer_datagram (host order).
struct DatagramAddr {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
};

// A datagram queued on one of our sockets, handed to the other holders of a
// fork-shared port: rebuilt as a frame in `pool` (Ethernet, IPv4 and UDP
// headers, UDP checksum 0 since it was verified on arrival, then len bytes
// of src from offset off, over as many segments as needed) and put on
// `ring`, every segment marked with port_id and every pool and ring
// operation marked in self's lease as steer_copy marks them. src is left
// alone. False when the pool or the ring was full (nothing is left behind).
bool steer_datagram(const rte_mbuf* src, uint32_t off, uint32_t len, const DatagramAddr& a,
                    rte_mempool* pool, rte_ring* ring, uint16_t port_id, mn_lease* self,
                    uint16_t group);

// Frees every mbuf waiting on a steering ring; returns how many.
unsigned drain_ring(rte_ring* ring);

}  // namespace machnet::engine
