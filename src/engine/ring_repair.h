// Reservations left half done in a DPDK ring by a process that died inside
// an enqueue or a dequeue: head moved (slots reserved), tail never followed.
// Every later user of that side of the ring then waits for the tail for
// good. On an HTS side (at most one operation in flight) or a single-
// producer/consumer side, such a gap [tail, head) is one operation's, and
// giving it back is exact: head returns to tail. A producer's reserved
// slots were never visible to consumers (the object being enqueued is lost
// to the ring, still in use for the pool's sweep); a consumer's reserved
// objects are still in their slots and become available again.
// machnetd calls these (src/daemon/leases.cc) once it knows the holder of a
// gap is dead; see docs/MACHNETD.md (crash reclaim).
#pragma once

#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstdint>

namespace machnet::engine {

enum class RingSide : uint8_t { kProducer, kConsumer };

// One side's head and tail as read at one moment.
struct RingGap {
  uint32_t head = 0;
  uint32_t tail = 0;
  bool open() const { return head != tail; }
  uint32_t slots() const { return head - tail; }
  bool operator==(const RingGap& o) const { return head == o.head && tail == o.tail; }
};

RingGap ring_gap(const rte_ring* r, RingSide side);

// Whether a gap on this side is one operation's (HTS, or a single
// producer/consumer): the only sides ring_give_back repairs.
bool ring_side_repairable(const rte_ring* r, RingSide side);

// Moves head back to tail if the side still shows exactly `seen` (one CAS of
// head and tail on HTS); returns the slots given back, 0 when the side moved
// on meanwhile, had no gap or cannot be repaired.
uint32_t ring_give_back(rte_ring* r, RingSide side, const RingGap& seen);

// The ring under a mempool of the "ring_*" ops (machnetd's pools), else null.
rte_ring* pool_ring(const rte_mempool* mp);

// Waits up to max_spins for both sides of r to have no reservation in
// flight; true when that was seen. machnetd calls it before its own
// operations on another queue's ring or pool, so that a gap left by a dead
// process costs it a dropped frame, not a wedged event loop (the reclaim
// repairs the gap later).
bool ring_wait_quiet(const rte_ring* r, unsigned max_spins);

}  // namespace machnet::engine
