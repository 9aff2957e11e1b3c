// Everything machnetd shares with attached processes through hugepage
// memory: one memzone (kShmName) holding struct Shm, plus one rte_ring and
// one rte_mempool per queue, whose pointers are valid in every process of
// the daemon's EAL (secondaries map hugepages at the primary's addresses).
//
// Ownership of every field is stated beside it: "daemon" fields are written
// only by machnetd; "owner" fields only by the process holding the lease.
// Readers of daemon fields that change at run time use the atomics below.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/drop_reason.h"

struct rte_mempool;
struct rte_ring;

namespace machnet::ipc {

constexpr char kShmName[] = "machnetd_shm";
constexpr uint32_t kShmMagic = 0x4d4e5348;  // "MNSH"
constexpr uint32_t kShmVersion = 1;
constexpr uint32_t kMaxQueues = 16;        // queue 0 is the daemon's; leases use 1..nb_queues-1
constexpr uint32_t kNeighbourSlots = 256;  // open addressing on the IPv4 address
constexpr uint32_t kMaxDropReasons = 32;
static_assert(kDropReasonCount <= kMaxDropReasons, "LeaseCounters::drops is too small");

// Queue q's steering ring: "mn_steer_<q>"; its mempool: "mn_pool_<q>".
// A packet that lands on queue p but belongs to the owner of queue q is
// copied into an mbuf of pool q and enqueued on ring q (multi-producer,
// single-consumer). Pool q's mbufs are thus only ever held by the owner of
// q, by ring q, or posted in RX queue q by the PMD: that is what lets the
// daemon sweep a dead owner's mbufs back (see Lease::posted_baseline).

enum LeaseState : uint32_t {
  kLeaseFree = 0,        // the daemon polls this queue and steers what it gets
  kLeaseActive = 1,      // the owner polls it
  kLeaseReclaiming = 2,  // owner gone; ports released; daemon draining
  kLeaseDaemon = 3,      // queue 0
};

// Counters of one lease, written by its owner only (plain stores, read racily
// by the daemon for machnet-stat: each is one aligned 64-bit word).
struct LeaseCounters {
  uint64_t rx_packets;  // frames taken from the leased RX queue
  uint64_t rx_bytes;
  uint64_t tx_packets;  // frames handed to the leased TX queue
  uint64_t tx_bytes;
  uint64_t steered_out;             // frames of someone else copied to their ring
  uint64_t steered_in;              // frames taken from our own steering ring
  uint64_t steer_drops;             // the owner's ring or pool was full
  uint64_t udp_rx;                  // datagrams queued to a socket
  uint64_t udp_tx;                  // datagrams sent
  uint64_t drops[kMaxDropReasons];  // by DropReason
};
static_assert(sizeof(LeaseCounters) == 9 * 8 + kMaxDropReasons * 8, "no padding");

struct alignas(64) Lease {
  std::atomic<uint32_t> state;  // daemon (LeaseState)
  uint16_t queue;               // daemon, fixed: == index in Shm::leases
  uint16_t lcore_id;            // daemon: EAL lcore id the owner must use
  int32_t pid;                  // daemon
  uint32_t uid;                 // daemon, from SO_PEERCRED
  uint64_t owner_id;            // daemon: random per lease
  uint64_t generation;          // daemon: leases of this queue so far
  uint64_t attached_ns;         // daemon: CLOCK_REALTIME at attach
  char comm[16];                // daemon, from the attach request
  rte_ring* steer_ring;         // daemon, fixed
  rte_mempool* pool;            // daemon, fixed: RX queue pool, owner's TX allocations
  // Mbufs of `pool` the PMD keeps posted in the RX queue while nobody holds
  // any (measured by the daemon when the queue is idle). A dead owner's
  // mbufs are the in-use ones beyond this figure.
  uint32_t posted_baseline;  // daemon
  uint32_t pad0;
  LeaseCounters counters;  // owner
};

// One UDP port of the host. queue 0 = nobody: the daemon answers with ICMP
// port unreachable. Written by the daemon (bind/unbind/reclaim); read on every
// received datagram by whoever polls the queue it landed on.
struct alignas(32) PortEntry {
  std::atomic<uint16_t> queue;  // daemon
  uint16_t pad0;
  uint32_t generation;    // daemon: low 32 bits of the owning lease's generation
  uint64_t rx_datagrams;  // owner: per-socket counters for machnet-stat
  uint64_t rx_bytes;
  uint64_t tx_datagrams;
};

// Neighbour table filled by the daemon from every ARP packet it sees (ARP
// always goes to queue 0's owner, the daemon). Seqlock: odd seq = being
// written; a reader retries until it reads the same even seq around its copy.
struct alignas(16) Neighbour {
  std::atomic<uint32_t> seq;
  uint32_t ip;  // host order, 0 = empty
  uint8_t mac[6];
  uint16_t pad0;
};

struct Shm {
  uint32_t magic;    // kShmMagic
  uint32_t version;  // kShmVersion
  int32_t daemon_pid;
  uint16_t port_id;
  uint16_t nb_queues;
  uint32_t ip;  // host order
  uint32_t gateway;
  uint8_t prefix_len;
  uint8_t mac[6];
  uint8_t pad0;
  uint16_t mtu;
  uint16_t pad1;
  // Set when the daemon shuts down cleanly; attached engines then fail their
  // sockets with ENETDOWN (a crashed daemon is noticed by the control socket's EOF).
  std::atomic<uint32_t> shutting_down;
  std::atomic<uint64_t> heartbeat_ns;  // daemon: CLOCK_MONOTONIC, every timer tick
  alignas(64) Lease leases[kMaxQueues];
  Neighbour neighbours[kNeighbourSlots];
  PortEntry ports[65536];
};

static_assert(sizeof(Lease) == 448, "Lease layout is ABI between machnetd and engines");
static_assert(sizeof(PortEntry) == 32, "PortEntry layout is ABI");
static_assert(sizeof(Neighbour) == 16, "Neighbour layout is ABI");
static_assert(offsetof(Shm, leases) == 64, "Shm layout is ABI");
static_assert(sizeof(Shm) == 64 + kMaxQueues * sizeof(Lease) + kNeighbourSlots * 16 + 65536 * 32,
              "Shm layout is ABI");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "atomics shared between processes");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "atomics shared between processes");
static_assert(std::atomic<uint16_t>::is_always_lock_free, "atomics shared between processes");

inline uint32_t neighbour_slot(uint32_t ip) {
  return (ip * 2654435761u) >> 24;  // 256 slots
}

// Seqlock read of the neighbour table; false when ip is not there.
inline bool neighbour_lookup(const Shm& shm, uint32_t ip, uint8_t mac_out[6]) {
  for (uint32_t i = 0; i < kNeighbourSlots; i++) {
    const Neighbour& n = shm.neighbours[(neighbour_slot(ip) + i) % kNeighbourSlots];
    for (;;) {
      uint32_t s1 = n.seq.load(std::memory_order_acquire);
      if (s1 & 1) continue;
      uint32_t nip = n.ip;
      uint8_t mac[6];
      for (int k = 0; k < 6; k++) mac[k] = n.mac[k];
      std::atomic_thread_fence(std::memory_order_acquire);
      if (n.seq.load(std::memory_order_relaxed) != s1) continue;
      if (nip == 0) return false;
      if (nip != ip) break;
      for (int k = 0; k < 6; k++) mac_out[k] = mac[k];
      return true;
    }
  }
  return false;
}

}  // namespace machnet::ipc
