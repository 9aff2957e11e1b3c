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

// Frees every mbuf waiting on a steering ring; returns how many.
unsigned drain_ring(rte_ring* ring);

}  // namespace machnet::engine
