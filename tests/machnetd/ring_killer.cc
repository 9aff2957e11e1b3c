// Attaches to a machnetd like an engine does (a lease, then EAL as a
// secondary), reserves ring slots the way an enqueue or a dequeue starts and
// dies with SIGKILL before publishing them: head moved, tail never will.
// Used by test_machnetd_ring_kill.sh.
//   ring_killer SOCKET steer PORT   enqueue on the steering ring of PORT's lease
//   ring_killer SOCKET get PORT     get from the pool of PORT's lease (PORT 0:
//                                   the daemon's pool 0, as a steering copy to it)
//   ring_killer SOCKET put          put an mbuf back into its own pool
//   ring_killer SOCKET stall        stay inside a steering round (steer_seq
//                                   odd) until SIGUSR1 ends it; exit on SIGTERM
//   ring_killer SOCKET hold PORT    as steer, but alive: a holder preempted
//                                   inside the enqueue; SIGUSR1 cancels the
//                                   reservation, SIGTERM then exits
// steer and get mark the lease's ring_op as the engine's steering copy does
// (src/engine/steer.cc); put, like the engine's own frees, does not.
// HTS and single-producer/consumer sides are reserved with DPDK's zero-copy
// API; the multi-producer/consumer sides older machnetds had, through
// DPDK's own head move (so the test shows the hang there too).
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_memzone.h>
#include <rte_ring.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ipc/control_client.h"
#include "ipc/shm.h"

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "ring_killer: %s\n", msg.c_str());
  std::exit(1);
}

const rte_ring_headtail& side(const rte_ring* r, bool prod) {
  return prod ? r->prod : r->cons;
}

void report(const char* what, const rte_ring* r, bool prod) {
  uint32_t head = side(r, prod).head, tail = side(r, prod).tail;
  std::printf("reserved: %s %s, %s head %u tail %u; dying\n", what, r->name,
              prod ? "producer" : "consumer", head, tail);
  std::fflush(stdout);
}

// Reserves one producer slot of r and writes obj into it, as an enqueue
// does before it publishes.
void reserve_enqueue(rte_ring* r, void* obj) {
  rte_ring_sync_type t = r->prod.sync_type;
  if (t == RTE_RING_SYNC_MT_HTS || t == RTE_RING_SYNC_ST) {
    rte_ring_zc_data zcd{};
    if (rte_ring_enqueue_zc_burst_start(r, 1, &zcd, nullptr) != 1) die("ring full");
    *static_cast<void**>(zcd.ptr1) = obj;
    return;
  }
  uint32_t old_head, new_head, free_entries;
  if (__rte_ring_move_prod_head(r, 0, 1, RTE_RING_QUEUE_FIXED, &old_head, &new_head,
                                &free_entries) != 1)
    die("ring full");
  reinterpret_cast<void**>(&r[1])[old_head & r->mask] = obj;
}

// Reserves one consumer slot of r, as a dequeue does before it publishes.
void reserve_dequeue(rte_ring* r) {
  rte_ring_sync_type t = r->cons.sync_type;
  if (t == RTE_RING_SYNC_MT_HTS || t == RTE_RING_SYNC_ST) {
    rte_ring_zc_data zcd{};
    if (rte_ring_dequeue_zc_burst_start(r, 1, &zcd, nullptr) != 1) die("ring empty");
    return;
  }
  uint32_t old_head, new_head, entries;
  if (__rte_ring_move_cons_head(r, 0, 1, RTE_RING_QUEUE_FIXED, &old_head, &new_head, &entries) != 1)
    die("ring empty");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) die("usage: ring_killer SOCKET steer|get|hold PORT | ring_killer SOCKET put|stall");
  std::string mode = argv[2];
  if ((mode == "steer" || mode == "get" || mode == "hold") != (argc == 4) ||
      (mode == "put" || mode == "stall") != (argc == 3))
    die("bad arguments");
  machnet::ipc::ControlClient ctl;
  std::string err;
  if (ctl.connect(argv[1], &err) != 0) die(err);
  mn_ctl_attach_reply r{};
  int rc = ctl.attach("ring_killer", &r);
  if (rc != 0) die("attach: " + std::to_string(rc));
  std::string prefix = std::string("--file-prefix=") + r.eal_prefix;
  std::string lcores = std::to_string(r.lcore_id) + "@(0)";
  std::vector<std::string> args = {
      "ring_killer", "--proc-type=secondary", prefix, "--no-pci", "--lcores",
      lcores,        "--log-level=error"};
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argp.size()), argp.data()) < 0) die("rte_eal_init failed");
  const rte_memzone* mz = rte_memzone_lookup(r.shm_name);
  if (mz == nullptr) die("no shared memory");
  auto* shm = static_cast<mn_shm*>(mz->addr);
  if (mn_shm_magic(shm) != MN_SHM_MAGIC) die("bad shared memory");
  // Older daemons (version 2) had padding where ring_op is: marking it there
  // is harmless, and lets the test show what they did.
  if (shm->version != MN_SHM_VERSION)
    std::printf("note: shared memory version %u, this program's %u\n", shm->version,
                MN_SHM_VERSION);
  mn_lease* self = &shm->leases[r.queue];
  std::printf("attached: queue %u pid %d\n", r.queue, static_cast<int>(getpid()));

  if (mode == "stall") {
    // A holder preempted in the middle of steering a burst: it may have read
    // port-table entries before a reclaim released them.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    mn_lease_steer_begin(self);
    std::printf("stalled: inside a steering round\n");
    std::fflush(stdout);
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig != SIGTERM) {
      if ((mn_lease_steer_seq(self) & 1u) != 0) mn_lease_steer_end(self);
      std::printf("resumed: the steering round ended\n");
      std::fflush(stdout);
    }
    return 0;
  }
  if (mode == "put") {
    rte_mempool* mp = self->pool;
    rte_mbuf* m = rte_pktmbuf_alloc(mp);
    if (m == nullptr) die("own pool empty");
    m->port = shm->port_id;  // handed out, as the engine marks what it holds
    auto* ring = static_cast<rte_ring*>(mp->pool_data);
    reserve_enqueue(ring, m);
    report("put into own pool", ring, true);
  } else {
    uint16_t port = static_cast<uint16_t>(std::atoi(argv[3]));
    uint16_t t = mn_port_queue(&shm->ports[port]);
    if ((port != 0 && t == 0) || t == r.queue)
      die("port " + std::to_string(port) + " has no other owner");
    mn_lease* target = &shm->leases[t];
    std::printf("target: queue %u pid %d\n", t, target->pid);
    if (mode == "hold") {
      rte_ring* ring = target->steer_ring;
      if (ring->prod.sync_type != RTE_RING_SYNC_MT_HTS) die("the steering ring is not HTS");
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGUSR1);
      sigaddset(&set, SIGTERM);
      sigprocmask(SIG_BLOCK, &set, nullptr);
      mn_lease_ring_op_begin(self, MN_RING_OP_STEER_ENQ, t);
      rte_ring_zc_data zcd{};
      if (rte_ring_enqueue_zc_burst_start(ring, 1, &zcd, nullptr) != 1) die("ring full");
      std::printf("held: enqueue on steering ring %s open\n", ring->name);
      std::fflush(stdout);
      int sig = 0;
      if (sigwait(&set, &sig) != 0 || sig == SIGTERM) return 0;
      rte_ring_enqueue_zc_finish(ring, 0);  // nothing enqueued: the reservation ends
      mn_lease_ring_op_end(self);
      std::printf("released: the enqueue ended\n");
      std::fflush(stdout);
      while (sigwait(&set, &sig) == 0 && sig != SIGTERM) {
      }
      return 0;
    }
    if (mode == "steer") {
      // What steer_copy enqueues: a copy from the target's pool.
      mn_lease_ring_op_begin(self, MN_RING_OP_POOL_GET, t);
      rte_mbuf* c = rte_pktmbuf_alloc(target->pool);
      mn_lease_ring_op_end(self);
      if (c == nullptr) die("target pool empty");
      c->port = shm->port_id;
      mn_lease_ring_op_begin(self, MN_RING_OP_STEER_ENQ, t);
      reserve_enqueue(target->steer_ring, c);
      report("enqueue on steering ring", target->steer_ring, true);
    } else {
      auto* ring = static_cast<rte_ring*>(target->pool->pool_data);
      mn_lease_ring_op_begin(self, MN_RING_OP_POOL_GET, t);
      reserve_dequeue(ring);
      report("get from pool", ring, false);
    }
  }
  kill(getpid(), SIGKILL);
  return 1;
}
