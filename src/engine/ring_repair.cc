#include "engine/ring_repair.h"

#include <rte_pause.h>

#include <cstring>

namespace machnet::engine {
namespace {

const rte_ring_headtail* legacy_side(const rte_ring* r, RingSide side) {
  return side == RingSide::kProducer ? &r->prod : &r->cons;
}

rte_ring_sync_type sync_type(const rte_ring* r, RingSide side) {
  return legacy_side(r, side)->sync_type;
}

}  // namespace

RingGap ring_gap(const rte_ring* r, RingSide side) {
  RingGap g;
  if (r == nullptr) return g;
  if (sync_type(r, side) == RTE_RING_SYNC_MT_HTS) {
    const rte_ring_hts_headtail* ht = side == RingSide::kProducer ? &r->hts_prod : &r->hts_cons;
    __rte_ring_hts_pos p;
    p.raw = __atomic_load_n(&ht->ht.raw, __ATOMIC_ACQUIRE);
    g.head = p.pos.head;
    g.tail = p.pos.tail;
    return g;
  }
  // Legacy and RTS: head and tail are the first two words (RTS keeps a
  // counter beside each; its gap is not repaired anyway).
  const rte_ring_headtail* ht = legacy_side(r, side);
  g.tail = __atomic_load_n(&ht->tail, __ATOMIC_ACQUIRE);
  g.head = __atomic_load_n(&ht->head, __ATOMIC_ACQUIRE);
  return g;
}

bool ring_side_repairable(const rte_ring* r, RingSide side) {
  if (r == nullptr) return false;
  rte_ring_sync_type t = sync_type(r, side);
  return t == RTE_RING_SYNC_MT_HTS || t == RTE_RING_SYNC_ST;
}

uint32_t ring_give_back(rte_ring* r, RingSide side, const RingGap& seen) {
  if (r == nullptr || !seen.open() || !ring_side_repairable(r, side)) return 0;
  if (sync_type(r, side) == RTE_RING_SYNC_MT_HTS) {
    rte_ring_hts_headtail* ht = side == RingSide::kProducer ? &r->hts_prod : &r->hts_cons;
    __rte_ring_hts_pos expect, want;
    expect.pos.head = seen.head;
    expect.pos.tail = seen.tail;
    want.pos.head = seen.tail;
    want.pos.tail = seen.tail;
    uint64_t e = expect.raw;
    // Release: a waiter that sees head == tail then reads the ring as the
    // last completed operation left it.
    if (!__atomic_compare_exchange_n(&ht->ht.raw, &e, want.raw, false, __ATOMIC_RELEASE,
                                     __ATOMIC_RELAXED))
      return 0;
    return seen.slots();
  }
  // Single producer or consumer: nobody else moves head; the caller knows
  // the only one is dead.
  rte_ring_headtail* ht = side == RingSide::kProducer ? &r->prod : &r->cons;
  if (__atomic_load_n(&ht->head, __ATOMIC_ACQUIRE) != seen.head ||
      __atomic_load_n(&ht->tail, __ATOMIC_ACQUIRE) != seen.tail)
    return 0;
  __atomic_store_n(&ht->head, seen.tail, __ATOMIC_RELEASE);
  return seen.slots();
}

rte_ring* pool_ring(const rte_mempool* mp) {
  if (mp == nullptr || mp->ops_index < 0) return nullptr;
  const rte_mempool_ops* ops = rte_mempool_get_ops(mp->ops_index);
  if (ops == nullptr || strncmp(ops->name, "ring_", 5) != 0) return nullptr;
  return static_cast<rte_ring*>(mp->pool_data);
}

bool ring_wait_quiet(const rte_ring* r, unsigned max_spins) {
  if (r == nullptr) return true;
  for (unsigned i = 0;; i++) {
    if (!ring_gap(r, RingSide::kProducer).open() && !ring_gap(r, RingSide::kConsumer).open())
      return true;
    if (i >= max_spins) return false;
    rte_pause();
  }
}

}  // namespace machnet::engine
