#include "engine/steer.h"

namespace machnet::engine {

bool steer_copy(rte_mbuf* m, rte_mempool* pool, rte_ring* ring, uint16_t port_id, mn_lease* self,
                uint16_t target, bool shared) {
  const uint32_t get = shared ? MN_RING_OP_SHARED_GET : MN_RING_OP_POOL_GET;
  const uint32_t enq = shared ? MN_RING_OP_SHARED_ENQ : MN_RING_OP_STEER_ENQ;
  const uint32_t put = shared ? MN_RING_OP_SHARED_PUT : MN_RING_OP_POOL_PUT;
  // Each operation on the target's pool or ring is marked in our lease, so
  // that if we die inside it machnetd knows whose reservation to give back.
  if (self != nullptr) mn_lease_ring_op_begin(self, get, target);
  rte_mbuf* c = pool != nullptr ? rte_pktmbuf_copy(m, pool, 0, UINT32_MAX) : nullptr;
  if (self != nullptr) mn_lease_ring_op_end(self);
  rte_pktmbuf_free(m);
  if (c == nullptr) return false;
  // rte_pktmbuf_copy sets the port on the first segment only.
  for (rte_mbuf* s = c; s != nullptr; s = s->next) s->port = port_id;
  if (self != nullptr) mn_lease_ring_op_begin(self, enq, target);
  // rte_ring_enqueue follows the ring's sync type (HTS for steering rings).
  int rc = ring != nullptr ? rte_ring_enqueue(ring, c) : -ENOBUFS;
  if (rc != 0) {
    if (self != nullptr) mn_lease_ring_op_begin(self, put, target);
    rte_pktmbuf_free(c);
  }
  if (self != nullptr) mn_lease_ring_op_end(self);
  return rc == 0;
}

unsigned drain_ring(rte_ring* ring) {
  unsigned total = 0, n;
  void* objs[32];
  while ((n = rte_ring_dequeue_burst(ring, objs, 32, nullptr)) != 0) {
    for (unsigned i = 0; i < n; i++) rte_pktmbuf_free(static_cast<rte_mbuf*>(objs[i]));
    total += n;
  }
  return total;
}

}  // namespace machnet::engine
