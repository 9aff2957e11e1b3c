/* Everything machnetd shares with attached processes through hugepage
 * memory: one memzone (MN_SHM_NAME) holding struct mn_shm, plus one rte_ring
 * and one rte_mempool per queue, whose pointers are valid in every process
 * of the daemon's EAL (secondaries map hugepages at the primary's addresses).
 *
 * One header for C and C++ (the daemon, the engine, tests/ipc/ipc_abi.c,
 * which prints this layout as JSON for the Python tests). Fields that change
 * at run time while others read them are plain integers marked "atomic":
 * they are read and written only through the accessors at the end (GCC and
 * Clang __atomic builtins), so the layout is the same in both languages.
 * Every structure's size and key offsets are asserted below.
 *
 * Ownership of every field is stated beside it: "daemon" fields are written
 * only by machnetd; "owner" fields only by the process holding the lease. */
#ifndef MACHNET_IPC_SHM_H
#define MACHNET_IPC_SHM_H

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/control_protocol.h" /* MN_STATIC_ASSERT */

#define MN_SHM_NAME "machnetd_shm"
#define MN_SHM_MAGIC 0x4d4e5348u /* "MNSH" */
/* 2: wake hand-off, active_leases; 3: ring_op, HTS rings; 4: SO_REUSEPORT
 * groups, 40 drop reasons, mn_lease.quiesced and steer_seq; 5: fork-shared
 * ports (mn_port_group.shared, mn_shm.shared_rings, shared_pool); 6: stream
 * services' fork-shared rings (MN_RING_OP_SERVICE_RING); 7:
 * mn_lease.service_rings */
#define MN_SHM_VERSION 7u
#define MN_SHM_MAX_QUEUES 16       /* queue 0 is the daemon's; leases use 1..nb_queues-1 */
#define MN_SHM_NEIGHBOUR_SLOTS 256 /* open addressing on the IPv4 address */
#define MN_SHM_MAX_DROP_REASONS 40
#define MN_SHM_PORTS 65536
#define MN_SHM_GROUPS 256      /* SO_REUSEPORT groups (ports shared by several leases) */
#define MN_GROUP_MAX_MEMBERS 8 /* leases per group */
/* mn_port_entry.queue of a port held by a group: MN_PORT_GROUP | group index. */
#define MN_PORT_GROUP 0x8000u
#define MN_PORT_GROUP_INDEX(v) ((uint16_t)((v)&0x7fffu))
/* Seqlock reads of a group that find it mid-write this many times in a row:
 * the reader gives up and the frame goes to queue 0 (the daemon, the only
 * writer, never races with itself). */
#define MN_GROUP_READ_TRIES 64u
/* Fork-shared ports (a socket inherited through fork() and used by several
 * processes): at most this many at once, each with one multi-consumer ring
 * created by the daemon at start ("mn_shared_<i>"). */
#define MN_SHM_SHARED_RINGS 16
/* steer_target()'s answer for a fork-shared port: copy the frame into
 * mn_shm.shared_pool and enqueue it on the ring of group
 * MN_STEER_SHARED_GROUP(t). Never a queue number (queues < MN_SHM_MAX_QUEUES). */
#define MN_STEER_SHARED 0x8000u
#define MN_STEER_SHARED_GROUP(t) ((uint16_t)((t)&0x7fffu))

struct rte_mempool;
struct rte_ring;

/* Queue q's steering ring: "mn_steer_<q>"; its mempool: "mn_pool_<q>".
 * A packet that lands on queue p but belongs to the owner of queue q is
 * copied into an mbuf of pool q and enqueued on ring q (multi-producer,
 * single-consumer). Pool q's mbufs are thus only ever held by the owner of
 * q, by ring q, or posted in RX queue q by the PMD: that is what lets the
 * daemon sweep a dead owner's mbufs back (see mn_lease.posted_baseline).
 *
 * Both are HTS on their shared sides (the ring: RING_F_MP_HTS_ENQ with a
 * single consumer; the pool: mempool ops "ring_mt_hts", cache 0): at most
 * one enqueue and one dequeue is in flight per ring, so a reservation that
 * was never published ([tail, head) of one side) belongs to exactly one
 * process. A process killed inside it would block every later user of that
 * side; the daemon gives it back (moves head back to tail) when it reclaims
 * the dead lease, see mn_lease.ring_op and docs/MACHNETD.md. */

/* mn_lease.ring_op: the cross-process ring operation the owner is inside
 * (0: none). Owners store it before and clear it after each operation on a
 * ring or pool of another queue (the steering copy path); operations on
 * their own pool and ring are not marked (the daemon repairs those of a
 * dead lease anyway). */
enum mn_ring_op_kind {
  MN_RING_OP_STEER_ENQ = 1, /* enqueue on steering ring <queue> (producer side) */
  MN_RING_OP_POOL_GET = 2,  /* get from pool <queue> (consumer side of its ring) */
  MN_RING_OP_POOL_PUT = 3,  /* put into pool <queue> (producer side of its ring) */
  /* Fork-shared ports; <queue> is then the group index. */
  MN_RING_OP_SHARED_GET = 4, /* get from the shared pool (consumer side of its ring) */
  MN_RING_OP_SHARED_ENQ = 5, /* enqueue on group <queue>'s shared ring */
  MN_RING_OP_SHARED_DEQ = 6, /* peek/dequeue on group <queue>'s shared ring (consumer side) */
  MN_RING_OP_SHARED_PUT = 7  /* put into the shared pool (producer side of its ring) */
};
#define MN_RING_OP(kind, queue) (((uint32_t)(kind) << 16) | (uint32_t)(queue))
#define MN_RING_OP_KIND(op) ((op) >> 16)
#define MN_RING_OP_QUEUE(op) ((uint16_t)((op)&0xffffu))
/* The <queue> of a SHARED_ENQ/DEQ operation on the fork-shared ring of a
 * stream service, which has no group: its ring's index, past the groups. */
#define MN_RING_OP_SERVICE_RING(i) ((uint16_t)(MN_SHM_GROUPS + (i)))

/* mn_lease.wake_state. RUNNING: the owner polls its RX queue. PARKED: its
 * threads sleep; the daemon may poll RX queue q for it. DAEMON: the daemon
 * is inside an RX burst on queue q (it sets PARKED or RUNNING after).
 *
 * Owner, to sleep (mn_lease_park): store PARKED (sequentially consistent),
 * look at its steering ring once more (a frame another process enqueued
 * before the store is seen now; one after it is the daemon's to see), then
 * sleep on the eventfd. Daemon, on every loop: for each active lease in
 * PARKED, CAS PARKED -> DAEMON, RX burst on q (its frames onto ring q,
 * others steered as usual), then if ring q holds anything store RUNNING and
 * write the eventfd (one write per wake-up), else store PARKED. Owner, to
 * poll again (mn_lease_unpark): CAS PARKED -> RUNNING, waiting while the
 * state is DAEMON. */
enum mn_wake_state { MN_WAKE_RUNNING = 0, MN_WAKE_PARKED = 1, MN_WAKE_DAEMON = 2 };

enum mn_lease_state {
  MN_LEASE_FREE = 0,       /* the daemon polls this queue and steers what it gets */
  MN_LEASE_ACTIVE = 1,     /* the owner polls it */
  MN_LEASE_RECLAIMING = 2, /* owner gone; ports released; daemon draining */
  MN_LEASE_DAEMON = 3      /* queue 0 */
};

/* Counters of one lease, written by its owner only (plain stores, read racily
 * by the daemon for machnet-stat: each is one aligned 64-bit word). */
struct mn_lease_counters {
  uint64_t rx_packets; /* frames taken from the leased RX queue */
  uint64_t rx_bytes;
  uint64_t tx_packets; /* frames handed to the leased TX queue */
  uint64_t tx_bytes;
  uint64_t steered_out;                    /* frames of someone else copied to their ring */
  uint64_t steered_in;                     /* frames taken from our own steering ring */
  uint64_t steer_drops;                    /* the owner's ring or pool was full */
  uint64_t udp_rx;                         /* datagrams queued to a socket */
  uint64_t udp_tx;                         /* datagrams sent */
  uint64_t drops[MN_SHM_MAX_DROP_REASONS]; /* by DropReason */
};

struct __attribute__((aligned(64))) mn_lease {
  uint32_t state;              /* daemon, atomic: enum mn_lease_state */
  uint16_t queue;              /* daemon, fixed: == index in mn_shm.leases */
  uint16_t lcore_id;           /* daemon: EAL lcore id the owner must use */
  int32_t pid;                 /* daemon */
  uint32_t uid;                /* daemon, from SO_PEERCRED */
  uint64_t owner_id;           /* daemon: random per lease */
  uint64_t generation;         /* daemon: leases of this queue so far */
  uint64_t attached_ns;        /* daemon: CLOCK_REALTIME at attach */
  char comm[16];               /* daemon, from the attach request */
  struct rte_ring* steer_ring; /* daemon, fixed */
  struct rte_mempool* pool;    /* daemon, fixed: RX queue pool, owner's TX allocations */
  /* Mbufs of `pool` the PMD keeps posted in the RX queue while nobody holds
   * any (measured by the daemon when the queue is idle). A dead owner's
   * mbufs are the in-use ones beyond this figure. */
  uint32_t posted_baseline; /* daemon */
  uint32_t pad0;
  struct mn_lease_counters counters; /* owner */
  /* Sleep hand-off (enum mn_wake_state): while the owner sleeps, the daemon
   * polls RX queue q for it and writes the eventfd the owner passed at
   * ATTACH when something for it arrives (mn_lease_park and friends). */
  uint32_t wake_state; /* owner and daemon, atomic */
  uint32_t pad1;
  uint64_t wakeups; /* daemon: eventfd writes for this lease */
  /* MN_RING_OP(kind, queue) while the owner is inside that operation on
   * another queue's ring or pool, else 0 (mn_lease_ring_op_begin/end). The
   * daemon reads it once the owner is dead: it names the ring whose
   * half-done reservation the reclaim must give back. */
  uint32_t ring_op; /* owner, atomic */
  /* 1 once the owner, having seen shutting_down (or the daemon gone), will
   * touch no shared memory again: what the daemon's shutdown waits for
   * before it stops the port and frees pools (mn_lease_set_quiesced). */
  uint32_t quiesced; /* owner, atomic */
  /* Odd while the owner steers a burst from its RX queue: it may have read
   * a port-table entry the daemon has since released. A reclaim waits for
   * every live owner seen odd after the release to move on before it
   * sweeps (mn_lease_steer_begin/end). */
  uint32_t steer_seq; /* owner, atomic */
  /* Bit i: shared_rings[i] carries the SYNs of a stream service this lease
   * listens on (it became shared by fork). The original listener learns
   * here that its service's SYNs now go to a ring, and reads it once it
   * accepts (docs/MACHNETD.md, "Stream services"). */
  uint32_t service_rings; /* daemon, atomic */
};

/* One UDP port of the host. queue 0 = nobody: the daemon answers with ICMP
 * port unreachable. Written by the daemon (bind/unbind/reclaim); read on every
 * received datagram by whoever polls the queue it landed on. A port several
 * leases share (SO_REUSEPORT) names its group instead: MN_PORT_GROUP | g,
 * and mn_shm.groups[g] lists the member queues. */
struct __attribute__((aligned(32))) mn_port_entry {
  uint16_t queue; /* daemon, atomic: a queue, or MN_PORT_GROUP | group */
  uint16_t pad0;
  uint32_t generation;   /* daemon: low 32 bits of the owning lease's generation */
  uint64_t rx_datagrams; /* owner: per-socket counters for machnet-stat */
  uint64_t rx_bytes;
  uint64_t tx_datagrams;
};

/* Neighbour table filled by the daemon from every ARP packet it sees (ARP
 * always goes to queue 0's owner, the daemon). Seqlock: odd seq = being
 * written; a reader retries until it reads the same even seq around its copy,
 * a bounded number of times (mn_neighbour_lookup; the daemon writes with
 * mn_neighbour_write). */
struct __attribute__((aligned(16))) mn_neighbour {
  uint32_t seq;   /* daemon, atomic */
  uint32_t ip;    /* daemon, atomic; host order, 0 = empty */
  uint8_t mac[6]; /* daemon, atomic bytes */
  uint16_t pad0;
};

/* A port's figures as one member of its group published them. */
struct mn_port_counters {
  uint64_t rx_datagrams;
  uint64_t rx_bytes;
  uint64_t tx_datagrams;
};

/* An SO_REUSEPORT group: the leases (up to MN_GROUP_MAX_MEMBERS) that share
 * one UDP port, as the kernel's reuseport group shares it between sockets.
 * A datagram goes to members[mn_flow_hash(...) % count], so each flow stays
 * with one member while the membership stays the same. The daemon is the
 * only writer (bind, unbind, reclaim), under the seqlock `seq` (odd: being
 * written); readers (every poller, per frame) use mn_group_pick: bounded,
 * lock-free, no syscall. A member leaving is replaced in its slot by the
 * last one, as in the kernel's reuseport group; with one member fewer the
 * flows are spread anew over those that remain (hash % count, as the
 * kernel's reciprocal_scale over its sockets). */
struct __attribute__((aligned(64))) mn_port_group {
  uint32_t seq;                           /* daemon, atomic: seqlock */
  uint16_t port;                          /* daemon, atomic: 0 = free slot */
  uint16_t count;                         /* daemon, atomic: members in use */
  uint32_t uid;                           /* daemon: uid of the lease that made the group */
  uint32_t generation;                    /* daemon: membership changes so far */
  uint16_t members[MN_GROUP_MAX_MEMBERS]; /* daemon, atomic: member queues */
  /* Fork-shared port (a socket inherited through fork()): 1 + the index of
   * its ring in mn_shm.shared_rings, 0 for an SO_REUSEPORT group. Every
   * datagram for the port goes to that one ring, which every member reads
   * (first reader takes it); no flow hash. */
  uint16_t shared; /* daemon, atomic */
  uint16_t pad1;
  /* Bumped by the daemon when the port becomes fork-shared: a member that
   * still has datagrams queued on its own socket moves them to the ring. */
  uint32_t share_epoch; /* daemon, atomic */
  uint8_t pad0[24];
  /* by_queue[q]: written by the holder of queue q while it is a member
   * (plain stores, read racily for machnet-stat); zeroed by the daemon
   * before q joins. */
  struct mn_port_counters by_queue[MN_SHM_MAX_QUEUES];
};

struct mn_shm {
  uint32_t magic;   /* MN_SHM_MAGIC, stored last */
  uint32_t version; /* MN_SHM_VERSION */
  int32_t daemon_pid;
  uint16_t port_id;
  uint16_t nb_queues;
  uint32_t ip; /* host order */
  uint32_t gateway;
  uint8_t prefix_len;
  uint8_t mac[6];
  uint8_t pad0;
  uint16_t mtu;
  uint16_t pad1;
  /* Set when the daemon shuts down cleanly; attached engines then fail their
   * sockets with ENETDOWN (a crashed daemon is noticed by the control
   * socket's EOF). */
  uint32_t shutting_down; /* daemon, atomic */
  uint64_t heartbeat_ns;  /* daemon, atomic: CLOCK_MONOTONIC, every timer tick */
  /* Active leases: processes that may poll the port. Engines shorten their
   * spinning when the host has more of them than CPUs. */
  uint32_t active_leases; /* daemon, atomic */
  uint8_t pad2[12];
  struct mn_lease leases[MN_SHM_MAX_QUEUES];
  struct mn_neighbour neighbours[MN_SHM_NEIGHBOUR_SLOTS];
  struct mn_port_entry ports[MN_SHM_PORTS];
  struct mn_port_group groups[MN_SHM_GROUPS];
  /* Fork-shared ports: the rings (multi-producer and multi-consumer, both
   * HTS: readers peek with rte_ring_dequeue_bulk_start/finish) and the pool
   * of the copies they hold (ops ring_mt_hts, no cache). Daemon, fixed. */
  struct rte_ring* shared_rings[MN_SHM_SHARED_RINGS];
  struct rte_mempool* shared_pool;
  uint8_t pad3[56];
};

/* The layout is ABI between machnetd and engines of the same MN_SHM_VERSION. */
MN_STATIC_ASSERT(sizeof(struct mn_lease_counters) == (9 + MN_SHM_MAX_DROP_REASONS) * 8,
                 "mn_lease_counters has no padding");
MN_STATIC_ASSERT(sizeof(struct mn_lease) == 512, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, owner_id) == 16, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, comm) == 40, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, steer_ring) == 56, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, pool) == 64, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, posted_baseline) == 72, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, counters) == 80, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, wake_state) == 472, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, wakeups) == 480, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, ring_op) == 488, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, quiesced) == 492, "shm ABI: mn_lease");
MN_STATIC_ASSERT(offsetof(struct mn_lease, steer_seq) == 496, "shm ABI: mn_lease");
MN_STATIC_ASSERT(sizeof(struct mn_port_entry) == 32, "shm ABI: mn_port_entry");
MN_STATIC_ASSERT(offsetof(struct mn_port_entry, generation) == 4, "shm ABI: mn_port_entry");
MN_STATIC_ASSERT(offsetof(struct mn_port_entry, rx_datagrams) == 8, "shm ABI: mn_port_entry");
MN_STATIC_ASSERT(sizeof(struct mn_neighbour) == 16, "shm ABI: mn_neighbour");
MN_STATIC_ASSERT(offsetof(struct mn_neighbour, ip) == 4, "shm ABI: mn_neighbour");
MN_STATIC_ASSERT(offsetof(struct mn_neighbour, mac) == 8, "shm ABI: mn_neighbour");
MN_STATIC_ASSERT(offsetof(struct mn_shm, ip) == 16, "shm ABI: mn_shm");
MN_STATIC_ASSERT(offsetof(struct mn_shm, mac) == 25, "shm ABI: mn_shm");
MN_STATIC_ASSERT(offsetof(struct mn_shm, mtu) == 32, "shm ABI: mn_shm");
MN_STATIC_ASSERT(offsetof(struct mn_shm, shutting_down) == 36, "shm ABI: mn_shm");
MN_STATIC_ASSERT(offsetof(struct mn_shm, heartbeat_ns) == 40, "shm ABI: mn_shm");
MN_STATIC_ASSERT(offsetof(struct mn_shm, active_leases) == 48, "shm ABI: mn_shm");
MN_STATIC_ASSERT(offsetof(struct mn_shm, leases) == 64, "shm ABI: mn_shm");
MN_STATIC_ASSERT(offsetof(struct mn_shm, neighbours) == 64 + MN_SHM_MAX_QUEUES * 512,
                 "shm ABI: mn_shm");
MN_STATIC_ASSERT(offsetof(struct mn_shm, ports) ==
                     64 + MN_SHM_MAX_QUEUES * 512 + MN_SHM_NEIGHBOUR_SLOTS * 16,
                 "shm ABI: mn_shm");
MN_STATIC_ASSERT(sizeof(struct mn_port_counters) == 24, "shm ABI: mn_port_counters");
MN_STATIC_ASSERT(sizeof(struct mn_port_group) == 64 + MN_SHM_MAX_QUEUES * 24,
                 "shm ABI: mn_port_group");
MN_STATIC_ASSERT(offsetof(struct mn_port_group, port) == 4, "shm ABI: mn_port_group");
MN_STATIC_ASSERT(offsetof(struct mn_port_group, count) == 6, "shm ABI: mn_port_group");
MN_STATIC_ASSERT(offsetof(struct mn_port_group, uid) == 8, "shm ABI: mn_port_group");
MN_STATIC_ASSERT(offsetof(struct mn_port_group, members) == 16, "shm ABI: mn_port_group");
MN_STATIC_ASSERT(offsetof(struct mn_port_group, by_queue) == 64, "shm ABI: mn_port_group");
MN_STATIC_ASSERT(MN_SHM_GROUPS <= MN_PORT_GROUP && MN_SHM_MAX_QUEUES < MN_PORT_GROUP,
                 "a port entry tells queues and groups apart");
MN_STATIC_ASSERT(offsetof(struct mn_shm, groups) ==
                     64 + MN_SHM_MAX_QUEUES * 512 + MN_SHM_NEIGHBOUR_SLOTS * 16 + MN_SHM_PORTS * 32,
                 "shm ABI: mn_shm");
MN_STATIC_ASSERT(offsetof(struct mn_port_group, shared) == 32, "shm ABI: mn_port_group");
MN_STATIC_ASSERT(offsetof(struct mn_port_group, share_epoch) == 36, "shm ABI: mn_port_group");
MN_STATIC_ASSERT(sizeof(struct mn_shm) == 64 + MN_SHM_MAX_QUEUES * 512 +
                                              MN_SHM_NEIGHBOUR_SLOTS * 16 + MN_SHM_PORTS * 32 +
                                              MN_SHM_GROUPS * (64 + MN_SHM_MAX_QUEUES * 24) +
                                              MN_SHM_SHARED_RINGS * 8 + 64,
                 "shm ABI: mn_shm");
MN_STATIC_ASSERT(__atomic_always_lock_free(8, 0) && __atomic_always_lock_free(4, 0) &&
                     __atomic_always_lock_free(2, 0),
                 "atomics shared between processes must be lock-free");

/* ---- Atomic accessors: the only way the "atomic" fields are touched ---- */

static inline uint32_t mn_lease_state(const struct mn_lease* l) {
  return __atomic_load_n(&l->state, __ATOMIC_ACQUIRE);
}
static inline void mn_lease_set_state(struct mn_lease* l, uint32_t state) {
  __atomic_store_n(&l->state, state, __ATOMIC_RELEASE);
}

/* The queue whose owner holds a port (0: nobody). A reader that sees a queue
 * also sees the fields the daemon wrote before publishing it. */
static inline uint16_t mn_port_queue(const struct mn_port_entry* e) {
  return __atomic_load_n(&e->queue, __ATOMIC_ACQUIRE);
}
static inline void mn_port_set_queue(struct mn_port_entry* e, uint16_t queue) {
  __atomic_store_n(&e->queue, queue, __ATOMIC_RELEASE);
}

/* ---- SO_REUSEPORT groups (mn_port_group) ---- */

/* The flow hash that picks a group member: the remote end (the datagram's
 * source) and the local one (its destination), all in host order. Any
 * process computes the same value for the same flow. */
static inline uint32_t mn_flow_hash(uint32_t remote_ip, uint16_t remote_port, uint32_t local_ip,
                                    uint16_t local_port) {
  uint64_t h = ((uint64_t)remote_ip << 32 | local_ip) * 0x9e3779b97f4a7c15ull;
  h ^= ((uint64_t)remote_port << 16 | local_port) * 0xc2b2ae3d27d4eb4full;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return (uint32_t)h;
}

/* The member queue of group g that takes the flow with hash `hash` on `port`
 * (a seqlock read, at most MN_GROUP_READ_TRIES tries). 0 when the group is
 * empty, no longer holds `port` (freed and reused since the port entry was
 * read), or stayed mid-write: queue 0, the daemon, then handles the frame. */
static inline uint16_t mn_group_pick(const struct mn_shm* shm, uint16_t g, uint16_t port,
                                     uint32_t hash) {
  if (g >= MN_SHM_GROUPS) return 0;
  const struct mn_port_group* grp = &shm->groups[g];
  for (uint32_t i = 0; i < MN_GROUP_READ_TRIES; i++) {
    uint32_t s1 = __atomic_load_n(&grp->seq, __ATOMIC_ACQUIRE);
    if ((s1 & 1) != 0) continue;
    uint16_t gport = __atomic_load_n(&grp->port, __ATOMIC_RELAXED);
    uint16_t n = __atomic_load_n(&grp->count, __ATOMIC_RELAXED);
    uint16_t shared = __atomic_load_n(&grp->shared, __ATOMIC_RELAXED);
    uint16_t q = 0;
    if (n > MN_GROUP_MAX_MEMBERS) n = 0;
    if (n != 0) q = __atomic_load_n(&grp->members[hash % n], __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&grp->seq, __ATOMIC_RELAXED) != s1) continue;
    if (gport != port || n == 0) return 0;
    /* A fork-shared port: its one ring, whoever's the frame. */
    if (shared != 0 && shared <= MN_SHM_SHARED_RINGS) return (uint16_t)(MN_STEER_SHARED | g);
    return q < MN_SHM_MAX_QUEUES ? q : 0;
  }
  return 0;
}

/* The queue that takes a datagram of the given flow to local port `port`:
 * the port's holder, a member of its group, or 0 (nobody; or ask the daemon). */
static inline uint16_t mn_port_target(const struct mn_shm* shm, uint16_t port, uint32_t hash) {
  uint16_t v = mn_port_queue(&shm->ports[port]);
  if ((v & MN_PORT_GROUP) == 0) return v;
  return mn_group_pick(shm, MN_PORT_GROUP_INDEX(v), port, hash);
}

/* Daemon: a seqlock write of group g's membership (the only writer). */
static inline void mn_group_write_begin(struct mn_port_group* grp) {
  uint32_t seq = __atomic_load_n(&grp->seq, __ATOMIC_RELAXED);
  __atomic_store_n(&grp->seq, seq + 1, __ATOMIC_RELAXED); /* odd: being written */
  __atomic_thread_fence(__ATOMIC_RELEASE);
}
static inline void mn_group_write_end(struct mn_port_group* grp) {
  uint32_t seq = __atomic_load_n(&grp->seq, __ATOMIC_RELAXED);
  __atomic_store_n(&grp->seq, seq + 1, __ATOMIC_RELEASE);
}
static inline void mn_group_set_member(struct mn_port_group* grp, uint16_t i, uint16_t q) {
  __atomic_store_n(&grp->members[i], q, __ATOMIC_RELAXED);
}
static inline void mn_group_set_count(struct mn_port_group* grp, uint16_t n) {
  __atomic_store_n(&grp->count, n, __ATOMIC_RELAXED);
}
static inline void mn_group_set_port(struct mn_port_group* grp, uint16_t port) {
  __atomic_store_n(&grp->port, port, __ATOMIC_RELAXED);
}
static inline void mn_group_set_shared(struct mn_port_group* grp, uint16_t shared) {
  __atomic_store_n(&grp->shared, shared, __ATOMIC_RELAXED);
}
static inline uint16_t mn_group_shared(const struct mn_port_group* grp) {
  return __atomic_load_n(&grp->shared, __ATOMIC_ACQUIRE);
}
static inline uint32_t mn_group_share_epoch(const struct mn_port_group* grp) {
  return __atomic_load_n(&grp->share_epoch, __ATOMIC_ACQUIRE);
}
static inline uint16_t mn_group_count(const struct mn_port_group* grp) {
  return __atomic_load_n(&grp->count, __ATOMIC_ACQUIRE);
}

static inline uint32_t mn_shm_shutting_down(const struct mn_shm* s) {
  return __atomic_load_n(&s->shutting_down, __ATOMIC_ACQUIRE);
}
static inline void mn_shm_set_shutting_down(struct mn_shm* s, uint32_t v) {
  __atomic_store_n(&s->shutting_down, v, __ATOMIC_RELEASE);
}
static inline uint64_t mn_shm_heartbeat(const struct mn_shm* s) {
  return __atomic_load_n(&s->heartbeat_ns, __ATOMIC_ACQUIRE);
}
static inline void mn_shm_set_heartbeat(struct mn_shm* s, uint64_t ns) {
  __atomic_store_n(&s->heartbeat_ns, ns, __ATOMIC_RELEASE);
}

static inline uint32_t mn_lease_wake_state(const struct mn_lease* l) {
  return __atomic_load_n(&l->wake_state, __ATOMIC_ACQUIRE);
}
/* Owner: RUNNING -> PARKED with a full fence: the ring check that follows
 * cannot be ordered before the store. */
static inline void mn_lease_park(struct mn_lease* l) {
  __atomic_store_n(&l->wake_state, MN_WAKE_PARKED, __ATOMIC_SEQ_CST);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
/* Owner: PARKED -> RUNNING. 0 when the daemon is in a burst on the queue
 * (the caller retries); 1 once the owner polls again (also when the daemon
 * had already set RUNNING to wake it). */
static inline int mn_lease_try_unpark(struct mn_lease* l) {
  uint32_t expect = MN_WAKE_PARKED;
  if (__atomic_compare_exchange_n(&l->wake_state, &expect, MN_WAKE_RUNNING, 0, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE))
    return 1;
  return expect != MN_WAKE_DAEMON;
}
/* Daemon: PARKED -> DAEMON; 1 when it may poll the queue. */
static inline int mn_lease_daemon_claim(struct mn_lease* l) {
  uint32_t expect = MN_WAKE_PARKED;
  return __atomic_compare_exchange_n(&l->wake_state, &expect, MN_WAKE_DAEMON, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED);
}
/* Daemon: DAEMON -> PARKED (nothing for the owner) or RUNNING (woken). */
static inline void mn_lease_daemon_release(struct mn_lease* l, uint32_t state) {
  __atomic_store_n(&l->wake_state, state, __ATOMIC_SEQ_CST);
}
static inline void mn_lease_set_wake_state(struct mn_lease* l, uint32_t state) {
  __atomic_store_n(&l->wake_state, state, __ATOMIC_RELEASE);
}
/* Owner, around a ring or pool operation on another queue. The release store
 * is ordered before the operation's reservation (a CAS with release order),
 * so a process killed holding a reservation has its marker in memory. */
static inline void mn_lease_ring_op_begin(struct mn_lease* l, uint32_t kind, uint16_t queue) {
  __atomic_store_n(&l->ring_op, MN_RING_OP(kind, queue), __ATOMIC_RELEASE);
}
static inline void mn_lease_ring_op_end(struct mn_lease* l) {
  __atomic_store_n(&l->ring_op, 0, __ATOMIC_RELEASE);
}
/* Owner, around the port-table lookups and steering of one RX burst. The
 * sequentially consistent store pairs with the daemon's fence after it
 * releases ports: either the daemon sees the odd value, or the owner's
 * lookups see the release. */
static inline void mn_lease_steer_begin(struct mn_lease* l) {
  __atomic_store_n(&l->steer_seq, l->steer_seq + 1, __ATOMIC_SEQ_CST);
}
static inline void mn_lease_steer_end(struct mn_lease* l) {
  __atomic_store_n(&l->steer_seq, l->steer_seq + 1, __ATOMIC_RELEASE);
}
static inline uint32_t mn_lease_steer_seq(const struct mn_lease* l) {
  return __atomic_load_n(&l->steer_seq, __ATOMIC_ACQUIRE);
}
/* The fork-shared rings of the lease's stream services (bit i: ring i). */
static inline uint32_t mn_lease_service_rings(const struct mn_lease* l) {
  return __atomic_load_n(&l->service_rings, __ATOMIC_ACQUIRE);
}
/* Owner: it touches no shared memory from here on (detached). */
static inline void mn_lease_set_quiesced(struct mn_lease* l) {
  __atomic_store_n(&l->quiesced, 1, __ATOMIC_RELEASE);
}
static inline uint32_t mn_lease_quiesced(const struct mn_lease* l) {
  return __atomic_load_n(&l->quiesced, __ATOMIC_ACQUIRE);
}
static inline uint32_t mn_lease_ring_op(const struct mn_lease* l) {
  return __atomic_load_n(&l->ring_op, __ATOMIC_ACQUIRE);
}
static inline uint32_t mn_shm_active_leases(const struct mn_shm* s) {
  return __atomic_load_n(&s->active_leases, __ATOMIC_RELAXED);
}
static inline void mn_shm_set_active_leases(struct mn_shm* s, uint32_t n) {
  __atomic_store_n(&s->active_leases, n, __ATOMIC_RELAXED);
}

/* Publishes the magic last: a reader that sees it sees the whole header. */
static inline uint32_t mn_shm_magic(const struct mn_shm* s) {
  return __atomic_load_n(&s->magic, __ATOMIC_ACQUIRE);
}
static inline void mn_shm_publish(struct mn_shm* s) {
  __atomic_store_n(&s->magic, MN_SHM_MAGIC, __ATOMIC_RELEASE);
}

static inline uint32_t mn_neighbour_slot(uint32_t ip) {
  return (ip * 2654435761u) >> 24; /* 256 slots */
}

/* Seqlock write of one slot (the daemon, the only writer). */
static inline void mn_neighbour_write(struct mn_neighbour* n, uint32_t ip, const uint8_t mac[6]) {
  uint32_t seq = __atomic_load_n(&n->seq, __ATOMIC_RELAXED);
  __atomic_store_n(&n->seq, seq + 1, __ATOMIC_RELAXED); /* odd: being written */
  __atomic_thread_fence(__ATOMIC_RELEASE);
  __atomic_store_n(&n->ip, ip, __ATOMIC_RELAXED);
  for (int k = 0; k < 6; k++) __atomic_store_n(&n->mac[k], mac[k], __ATOMIC_RELAXED);
  __atomic_store_n(&n->seq, seq + 2, __ATOMIC_RELEASE);
}

/* Whether the daemon is gone for good: it shut down, or its pid is no
 * more. One kill(2): only for slow paths. (A reader attached through the
 * control socket has a better test, the socket's EOF; see below.) */
static inline int mn_daemon_gone(const struct mn_shm* shm) {
  if (mn_shm_shutting_down(shm) != 0) return 1;
  return kill(shm->daemon_pid, 0) != 0 && errno == ESRCH;
}

/* A slot the reader finds mid-write (odd seq, or changed under its copy)
 * this many times in a row: the reader asks whether the daemon is still
 * there. A write is a few stores by the daemon, its only writer: a slot
 * mid-write for that long was left by a writer preempted, or killed. */
#define MN_NEIGHBOUR_SPINS 4096u
/* Liveness checks, each after MN_NEIGHBOUR_SPINS more failed reads, before
 * a reader facing a live but stalled writer gives up for now (-EAGAIN). */
#define MN_NEIGHBOUR_CHECKS 64u

/* Seqlock read of the neighbour table: 1 and the MAC when ip is there, 0 when
 * it is not. Never spins unbounded: when a slot on ip's probe path stays
 * mid-write (see MN_NEIGHBOUR_SPINS), daemon_gone(ctx) is asked (NULL:
 * mn_daemon_gone(shm)); nonzero: -ENETDOWN, the write will never finish
 * (the caller fails as on any other sign of a dead daemon); zero: the read
 * goes on, and after MN_NEIGHBOUR_CHECKS such checks -EAGAIN (the entry is
 * unknown for now: look again later). */
static inline int mn_neighbour_lookup(const struct mn_shm* shm, uint32_t ip, uint8_t mac_out[6],
                                      int (*daemon_gone)(void* ctx), void* ctx) {
  for (uint32_t i = 0; i < MN_SHM_NEIGHBOUR_SLOTS; i++) {
    const struct mn_neighbour* n =
        &shm->neighbours[(mn_neighbour_slot(ip) + i) % MN_SHM_NEIGHBOUR_SLOTS];
    uint32_t spins = 0, checks = 0;
    for (;;) {
      uint32_t s1 = __atomic_load_n(&n->seq, __ATOMIC_ACQUIRE);
      uint32_t nip = __atomic_load_n(&n->ip, __ATOMIC_RELAXED);
      uint8_t mac[6];
      for (int k = 0; k < 6; k++) mac[k] = __atomic_load_n(&n->mac[k], __ATOMIC_RELAXED);
      __atomic_thread_fence(__ATOMIC_ACQUIRE);
      if ((s1 & 1) != 0 || __atomic_load_n(&n->seq, __ATOMIC_RELAXED) != s1) {
        if (++spins < MN_NEIGHBOUR_SPINS) continue;
        spins = 0;
        if (daemon_gone != NULL ? daemon_gone(ctx) : mn_daemon_gone(shm)) return -ENETDOWN;
        if (++checks >= MN_NEIGHBOUR_CHECKS) return -EAGAIN;
        continue;
      }
      if (nip == 0) return 0;
      if (nip != ip) break;
      for (int k = 0; k < 6; k++) mac_out[k] = mac[k];
      return 1;
    }
  }
  return 0;
}

#endif
