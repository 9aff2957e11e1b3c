#include "engine/steer.h"

namespace machnet::engine {

bool steer_copy(rte_mbuf* m, rte_mempool* pool, rte_ring* ring, uint16_t port_id) {
  rte_mbuf* c = pool != nullptr ? rte_pktmbuf_copy(m, pool, 0, UINT32_MAX) : nullptr;
  rte_pktmbuf_free(m);
  if (c == nullptr) return false;
  // rte_pktmbuf_copy sets the port on the first segment only.
  for (rte_mbuf* s = c; s != nullptr; s = s->next) s->port = port_id;
  if (ring == nullptr || rte_ring_mp_enqueue(ring, c) != 0) {
    rte_pktmbuf_free(c);
    return false;
  }
  return true;
}

unsigned drain_ring(rte_ring* ring) {
  unsigned total = 0, n;
  void* objs[32];
  while ((n = rte_ring_sc_dequeue_burst(ring, objs, 32, nullptr)) != 0) {
    for (unsigned i = 0; i < n; i++) rte_pktmbuf_free(static_cast<rte_mbuf*>(objs[i]));
    total += n;
  }
  return total;
}

}  // namespace machnet::engine
