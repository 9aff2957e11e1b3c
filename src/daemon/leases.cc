#include "daemon/leases.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "daemon/clock.h"
#include "daemon/dataplane.h"
#include "daemon/services.h"
#include "engine/log.h"
#include "engine/memif_guard.h"
#include "engine/steer.h"

namespace machnet::daemon {
namespace {

uint64_t random_u64() {
  uint64_t v = 0;
  if (getrandom(&v, sizeof(v), 0) != sizeof(v))
    v = mono_ns() ^ (static_cast<uint64_t>(getpid()) << 32);
  return v == 0 ? 1 : v;
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

// The parent of pid from /proc/<pid>/stat (field 4, after the parenthesised
// comm, which may itself hold ')' or spaces); 0 when unknown.
int32_t parent_of(int32_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE* f = fopen(path, "re");
  if (f == nullptr) return 0;
  char buf[512];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char* r = strrchr(buf, ')');
  int ppid = 0;
  char state;
  if (r == nullptr || sscanf(r + 1, " %c %d", &state, &ppid) != 2) return 0;
  return ppid;
}

}  // namespace

bool is_descendant(int32_t pid, int32_t ancestor, int32_t (*parent)(int32_t)) {
  if (parent == nullptr) parent = parent_of;
  if (pid <= 1 || ancestor <= 0) return false;
  for (int depth = 0; depth < 64 && pid > 1; depth++) {
    pid = parent(pid);
    if (pid == ancestor) return true;
  }
  return false;
}

LeaseTable::LeaseTable(Daemon* d) : d_(d), ephemeral_(engine_ephemeral_range()) {
  next_ephemeral_ = static_cast<uint16_t>(ephemeral_.first +
                                          random_u64() % (ephemeral_.last - ephemeral_.first + 1));
}

uint16_t LeaseTable::free_leases() const {
  uint16_t n = 0;
  for (uint16_t q = 1; q < d_->nb_queues; q++)
    if (mn_lease_state(&d_->shm->leases[q]) == MN_LEASE_FREE) n++;
  return n;
}

void LeaseTable::publish_active() {
  uint32_t n = 0;
  for (uint16_t q = 1; q < d_->nb_queues; q++)
    if (mn_lease_state(&d_->shm->leases[q]) == MN_LEASE_ACTIVE) n++;
  mn_shm_set_active_leases(d_->shm, n);
}

int LeaseTable::attach(int32_t pid, uint32_t uid, const char* comm) {
  mn_shm& shm = *d_->shm;
  for (uint16_t q = 1; q < d_->nb_queues; q++) {
    mn_lease& l = shm.leases[q];
    if (mn_lease_state(&l) != MN_LEASE_FREE) continue;
    // Nothing may be left in the ring from the previous holder's time.
    d_->dataplane->drain_ring(q);
    l.owner_id = random_u64();
    l.generation++;
    l.pid = pid;
    l.uid = uid;
    memset(l.comm, 0, sizeof(l.comm));
    strncpy(l.comm, comm, sizeof(l.comm) - 1);
    l.attached_ns = real_ns();
    memset(&l.counters, 0, sizeof(l.counters));
    __atomic_store_n(&l.quiesced, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&l.service_rings, 0, __ATOMIC_RELAXED);
    l.wakeups = 0;
    mn_lease_set_wake_state(&l, MN_WAKE_RUNNING);
    d_->set_wake_fd(q, -1);
    held_[q].clear();
    mn_lease_ring_op_end(&l);
    mn_lease_set_state(&l, MN_LEASE_ACTIVE);
    publish_active();
    d_->counters.attaches++;
    return q;
  }
  return -EBUSY;
}

int LeaseTable::bind(uint16_t q, uint32_t ip, uint16_t port, uint8_t proto, uint8_t flags,
                     uint16_t* bound) {
  mn_shm& shm = *d_->shm;
  if (proto != 17 || (flags & ~MN_CTL_BIND_FLAGS) != 0) return -EINVAL;
  if (ip != 0 && ip != d_->cfg.ip) return -EADDRNOTAVAIL;
  const bool reuse = (flags & MN_CTL_BIND_REUSEPORT) != 0;
  const mn_lease& l = shm.leases[q];
  uint16_t p = port;
  if (p == 0) {
    // Rotating cursor over the range, skipping held ports (as Linux does
    // for bind(0), but without reusing a just-released port first).
    const unsigned range = ephemeral_.last - ephemeral_.first + 1u;
    for (unsigned i = 0; i < range; i++) {
      uint16_t c = next_ephemeral_;
      next_ephemeral_ = c == ephemeral_.last ? ephemeral_.first : static_cast<uint16_t>(c + 1);
      if (mn_port_queue(&shm.ports[c]) == 0) {
        p = c;
        break;
      }
    }
    if (p == 0) return -EADDRINUSE;
  } else if (uint16_t v = mn_port_queue(&shm.ports[p]); v != 0) {
    // Held: only an SO_REUSEPORT group of the same uid takes another
    // member (the kernel's rule), up to MN_GROUP_MAX_MEMBERS leases.
    if (!reuse || (v & MN_PORT_GROUP) == 0) return -EADDRINUSE;
    mn_port_group& g = shm.groups[MN_PORT_GROUP_INDEX(v)];
    uint16_t n = mn_group_count(&g);
    if (g.uid != l.uid || n >= MN_GROUP_MAX_MEMBERS) return -EADDRINUSE;
    for (uint16_t i = 0; i < n; i++)
      if (g.members[i] == q) return -EADDRINUSE;  // this process's sockets share it itself
    memset(&g.by_queue[q], 0, sizeof(g.by_queue[q]));
    mn_group_write_begin(&g);
    mn_group_set_member(&g, n, q);
    mn_group_set_count(&g, static_cast<uint16_t>(n + 1));
    g.generation++;
    mn_group_write_end(&g);
    d_->counters.group_joins++;
    held_[q].insert(p);
    *bound = p;
    return 0;
  }
  mn_port_entry& e = shm.ports[p];
  uint16_t value = q;
  if (reuse) {
    // A new group; its slot is searched from after the last one taken, so a
    // reader holding a just-freed group's index finds it empty (it checks
    // the port too).
    int gi = -1;
    for (unsigned i = 0; i < MN_SHM_GROUPS; i++) {
      uint16_t c = static_cast<uint16_t>((next_group_ + i) % MN_SHM_GROUPS);
      if (shm.groups[c].port == 0) {
        gi = c;
        break;
      }
    }
    if (gi < 0) return -ENOMEM;
    next_group_ = static_cast<uint16_t>((gi + 1) % MN_SHM_GROUPS);
    mn_port_group& g = shm.groups[gi];
    memset(g.by_queue, 0, sizeof(g.by_queue));
    mn_group_write_begin(&g);
    g.uid = l.uid;
    mn_group_set_port(&g, p);
    mn_group_set_member(&g, 0, q);
    for (uint16_t i = 1; i < MN_GROUP_MAX_MEMBERS; i++) mn_group_set_member(&g, i, 0);
    mn_group_set_count(&g, 1);
    g.generation++;
    mn_group_write_end(&g);
    groups_used_++;
    value = static_cast<uint16_t>(MN_PORT_GROUP | static_cast<uint16_t>(gi));
  }
  e.generation = static_cast<uint32_t>(l.generation);
  e.rx_datagrams = 0;
  e.rx_bytes = 0;
  e.tx_datagrams = 0;
  // Release: whoever sees the queue (or group) also sees the fields above.
  mn_port_set_queue(&e, value);
  held_[q].insert(p);
  *bound = p;
  return 0;
}

int fork_sharer_check(const mn_shm& shm, uint16_t q, const uint16_t* holders, size_t n) {
  const mn_lease& l = shm.leases[q % MN_SHM_MAX_QUEUES];
  bool related = false, same_uid = false;
  for (size_t i = 0; i < n; i++) {
    const mn_lease& h = shm.leases[holders[i] % MN_SHM_MAX_QUEUES];
    if (h.uid == l.uid) same_uid = true;
    if (h.uid == l.uid && is_descendant(l.pid, h.pid)) related = true;
  }
  return !same_uid ? -EACCES : !related ? -EADDRINUSE : 0;
}

int LeaseTable::join(uint16_t q, uint16_t port, uint8_t proto, uint8_t flags, const char** why) {
  mn_shm& shm = *d_->shm;
  *why = nullptr;
  if (proto != 17 || port == 0 || flags != 0) return -EINVAL;
  const mn_lease& l = shm.leases[q];
  mn_port_entry& e = shm.ports[port];
  uint16_t v = mn_port_queue(&e);
  if (v == 0) {
    *why = "nobody holds the port";
    return -EADDRINUSE;
  }
  if (held_[q].count(port) != 0) {
    *why = "the caller holds the port already";
    return -EADDRINUSE;
  }
  // The holders: one lease, or the members of a fork-shared group.
  uint16_t holders[MN_GROUP_MAX_MEMBERS] = {};
  uint16_t n = 0;
  mn_port_group* grp = nullptr;
  if ((v & MN_PORT_GROUP) != 0) {
    grp = &shm.groups[MN_PORT_GROUP_INDEX(v)];
    if (grp->shared == 0) {
      *why = "an SO_REUSEPORT group holds the port";
      return -EADDRINUSE;
    }
    n = mn_group_count(grp);
    for (uint16_t i = 0; i < n; i++) holders[i] = grp->members[i];
  } else {
    holders[n++] = v;
  }
  if (int rc = fork_sharer_check(shm, q, holders, n); rc != 0) {
    *why = rc == -EACCES ? "the port's holder has another uid"
                         : "no holder of the port is an ancestor of the caller";
    return rc;
  }
  if (grp != nullptr) {
    if (n >= MN_GROUP_MAX_MEMBERS) {
      *why = "the port has the most holders a group takes";
      return -ENOMEM;
    }
    memset(&grp->by_queue[q], 0, sizeof(grp->by_queue[q]));
    mn_group_write_begin(grp);
    mn_group_set_member(grp, n, q);
    mn_group_set_count(grp, static_cast<uint16_t>(n + 1));
    grp->generation++;
    mn_group_write_end(grp);
    d_->counters.shared_joins++;
    held_[q].insert(port);
    return 0;
  }
  // The port becomes fork-shared: a group of {holder, q} with a ring.
  int gi = -1, si = -1;
  for (unsigned i = 0; i < MN_SHM_GROUPS && gi < 0; i++) {
    uint16_t c = static_cast<uint16_t>((next_group_ + i) % MN_SHM_GROUPS);
    if (shm.groups[c].port == 0) gi = c;
  }
  if (gi < 0) {
    *why = "every group slot is in use";
    return -ENOMEM;
  }
  si = take_shared_ring();
  if (si < 0) {
    *why = "every shared ring is in use";
    return -ENOMEM;
  }
  next_group_ = static_cast<uint16_t>((gi + 1) % MN_SHM_GROUPS);
  mn_port_group& g = shm.groups[gi];
  memset(g.by_queue, 0, sizeof(g.by_queue));
  // The holder's figures so far stay its own.
  g.by_queue[v].rx_datagrams = e.rx_datagrams;
  g.by_queue[v].rx_bytes = e.rx_bytes;
  g.by_queue[v].tx_datagrams = e.tx_datagrams;
  mn_group_write_begin(&g);
  g.uid = l.uid;
  mn_group_set_port(&g, port);
  mn_group_set_member(&g, 0, v);
  mn_group_set_member(&g, 1, q);
  for (uint16_t i = 2; i < MN_GROUP_MAX_MEMBERS; i++) mn_group_set_member(&g, i, 0);
  mn_group_set_count(&g, 2);
  mn_group_set_shared(&g, static_cast<uint16_t>(si + 1));
  g.generation++;
  mn_group_write_end(&g);
  // The first holder moves what its socket had queued onto the ring.
  __atomic_store_n(&g.share_epoch, g.share_epoch + 1, __ATOMIC_RELEASE);
  groups_used_++;
  d_->counters.shared_joins++;
  mn_port_set_queue(&e, static_cast<uint16_t>(MN_PORT_GROUP | static_cast<uint16_t>(gi)));
  held_[q].insert(port);
  // A parked first holder looks at its socket again.
  d_->dataplane->wake_parked(v);
  return 0;
}

int LeaseTable::take_shared_ring() {
  for (unsigned i = 0; i < MN_SHM_SHARED_RINGS; i++) {
    uint16_t c = static_cast<uint16_t>((next_shared_ + i) % MN_SHM_SHARED_RINGS);
    if (shared_taken_[c]) continue;
    next_shared_ = static_cast<uint16_t>((c + 1) % MN_SHM_SHARED_RINGS);
    shared_taken_[c] = true;
    shared_used_++;
    // Frames a steerer was still enqueueing when the ring's last use ended.
    engine::drain_ring(d_->shared_rings[c]);
    return c;
  }
  return -1;
}

void LeaseTable::give_shared_ring(int ring) {
  if (ring < 0 || ring >= MN_SHM_SHARED_RINGS || !shared_taken_[ring]) return;
  engine::drain_ring(d_->shared_rings[ring]);
  shared_taken_[ring] = false;
  shared_used_--;
}

void LeaseTable::release(uint16_t q, uint16_t port) {
  mn_shm& shm = *d_->shm;
  mn_port_entry& e = shm.ports[port];
  uint16_t v = mn_port_queue(&e);
  if ((v & MN_PORT_GROUP) == 0) {
    if (v == q) mn_port_set_queue(&e, 0);
    return;
  }
  mn_port_group& g = shm.groups[MN_PORT_GROUP_INDEX(v)];
  uint16_t n = mn_group_count(&g);
  uint16_t at = n;
  for (uint16_t i = 0; i < n; i++)
    if (g.members[i] == q) at = i;
  if (at == n) return;
  uint16_t shared = g.shared;
  if (shared != 0)
    d_->counters.shared_leaves++;
  else
    d_->counters.group_leaves++;
  if (n == 1) {
    // The last member: the port first (new readers see nobody), then the
    // group (readers that read the entry before find it empty).
    mn_port_set_queue(&e, 0);
    mn_group_write_begin(&g);
    mn_group_set_count(&g, 0);
    mn_group_set_member(&g, 0, 0);
    mn_group_set_port(&g, 0);
    mn_group_set_shared(&g, 0);
    g.generation++;
    mn_group_write_end(&g);
    g.uid = 0;
    groups_used_--;
    // Nobody reads the ring any more: what it holds goes back to the shared
    // pool (and anything a steerer still adds is drained when the slot is
    // taken again; readers check the port of every frame).
    if (shared != 0 && shared <= MN_SHM_SHARED_RINGS) give_shared_ring(shared - 1);
    return;
  }
  // The last member takes the leaver's place (as in the kernel's reuseport
  // group); flows spread anew over the members that remain.
  mn_group_write_begin(&g);
  mn_group_set_member(&g, at, g.members[n - 1]);
  mn_group_set_member(&g, static_cast<uint16_t>(n - 1), 0);
  mn_group_set_count(&g, static_cast<uint16_t>(n - 1));
  g.generation++;
  mn_group_write_end(&g);
}

int LeaseTable::unbind(uint16_t q, uint16_t port, uint8_t proto) {
  if (proto != 17 || port == 0 || held_[q].count(port) == 0) return -EINVAL;
  release(q, port);
  held_[q].erase(port);
  return 0;
}

size_t LeaseTable::release_ports(uint16_t q) {
  size_t n = held_[q].size();
  for (uint16_t p : held_[q]) release(q, p);
  held_[q].clear();
  return n;
}

Reclaimer::~Reclaimer() {
  for (auto& p : pending_)
    if (p.timer != nullptr) event_free(p.timer);
}

bool Reclaimer::init(std::string* err) {
  for (uint16_t q = 0; q < MN_SHM_MAX_QUEUES; q++) {
    pending_[q].self = this;
    pending_[q].queue = q;
    pending_[q].timer = evtimer_new(d_->base, on_timer, &pending_[q]);
    if (pending_[q].timer == nullptr) {
      *err = "evtimer_new failed";
      return false;
    }
  }
  return true;
}

void Reclaimer::start(uint16_t q, const char* why) {
  if (q == 0 || q >= d_->nb_queues) return;
  mn_lease& l = d_->shm->leases[q];
  if (mn_lease_state(&l) != MN_LEASE_ACTIVE) return;
  mn_lease_set_state(&l, MN_LEASE_RECLAIMING);
  // The data path no longer looks at the lease: its wake-up state and
  // eventfd go with it.
  d_->set_wake_fd(q, -1);
  mn_lease_set_wake_state(&l, MN_WAKE_RUNNING);
  d_->leases->publish_active();
  Pending& p = pending_[q];
  p.active = true;
  p.pid = l.pid;
  memset(p.comm, 0, sizeof(p.comm));
  memcpy(p.comm, l.comm, sizeof(l.comm));
  // A fork-shared ring or the shared pool the dead holder was inside (named
  // by its ring_op; the group may be gone once its ports are released).
  p.shared_ring = nullptr;
  p.shared_side = -1;
  {
    uint32_t op = mn_lease_ring_op(&l);
    uint16_t t = MN_RING_OP_QUEUE(op);
    switch (MN_RING_OP_KIND(op)) {
      case MN_RING_OP_SHARED_GET:
      case MN_RING_OP_SHARED_PUT:
        p.shared_ring = engine::pool_ring(d_->shared_pool);
        p.shared_side = MN_RING_OP_KIND(op) == MN_RING_OP_SHARED_PUT ? 0 : 1;
        break;
      case MN_RING_OP_SHARED_ENQ:
      case MN_RING_OP_SHARED_DEQ:
        if (t < MN_SHM_GROUPS && d_->shm->groups[t].shared != 0 &&
            d_->shm->groups[t].shared <= MN_SHM_SHARED_RINGS) {
          p.shared_ring = d_->shared_rings[d_->shm->groups[t].shared - 1];
          p.shared_side = MN_RING_OP_KIND(op) == MN_RING_OP_SHARED_ENQ ? 0 : 1;
        } else if (t >= MN_SHM_GROUPS && t < MN_SHM_GROUPS + MN_SHM_SHARED_RINGS) {
          // A stream service's ring, named by index (MN_RING_OP_SERVICE_RING).
          p.shared_ring = d_->shared_rings[t - MN_SHM_GROUPS];
          p.shared_side = MN_RING_OP_KIND(op) == MN_RING_OP_SHARED_ENQ ? 0 : 1;
        }
        break;
      default:
        break;
    }
    if (p.shared_ring != nullptr)
      p.shared_seen = engine::ring_gap(
          p.shared_ring,
          (p.shared_side == 0 ? engine::RingSide::kProducer : engine::RingSide::kConsumer));
  }
  p.ports = d_->leases->release_ports(q) + d_->services->release_all(q);
  p.start_ns = mono_ns();
  p.why = why;
  p.retries = 0;
  snapshot(p.seen);
  // Other processes may be copying into pool q right now (they read the
  // port table a moment ago): the sweep waits until each live one that is
  // inside a steering round now has left it (mn_lease.steer_seq). The fence
  // pairs with their sequentially consistent store at the round's start.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  for (uint16_t i = 0; i < d_->nb_queues; i++)
    p.steer_seen[i] = mn_lease_steer_seq(&d_->shm->leases[i]);
  reaper_.watch(p.pid);
  arm(p);
}

void Reclaimer::arm(Pending& p) {
  timeval tv;
  tv.tv_sec = d_->cfg.reclaim_grace_ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>((d_->cfg.reclaim_grace_ms % 1000) * 1000);
  evtimer_add(p.timer, &tv);
}

void Reclaimer::snapshot(Gaps& g) const {
  using engine::RingSide;
  for (uint16_t i = 0; i < d_->nb_queues; i++) {
    rte_ring* pr = engine::pool_ring(d_->pools[i]);
    g[i][0] = engine::ring_gap(d_->rings[i], RingSide::kProducer);
    g[i][1] = engine::ring_gap(d_->rings[i], RingSide::kConsumer);
    g[i][2] = engine::ring_gap(pr, RingSide::kProducer);
    g[i][3] = engine::ring_gap(pr, RingSide::kConsumer);
  }
}

void Reclaimer::on_timer(int, short, void* arg) {
  auto* p = static_cast<Pending*>(arg);
  p->self->finish(p->queue);
}

void Reclaimer::finish_all() {
  for (uint16_t q = 1; q < MN_SHM_MAX_QUEUES; q++) {
    if (!pending_[q].active) continue;
    evtimer_del(pending_[q].timer);
    finish(q, /*final=*/true);
  }
}

namespace {

struct SweepCtx {
  const std::vector<void*>* free_objs;
  bool by_port;
  std::vector<void*> held;
};

void sweep_cb(rte_mempool*, void* opaque, void* obj, unsigned) {
  auto* ctx = static_cast<SweepCtx*>(opaque);
  if (std::binary_search(ctx->free_objs->begin(), ctx->free_objs->end(), obj)) return;
  auto* m = static_cast<rte_mbuf*>(obj);
  // Posted RX buffers come from rte_pktmbuf_alloc (port invalid); what a
  // PMD received, a steering copy, or what the owner marked carries the port.
  if (ctx->by_port && m->port == RTE_MBUF_PORT_INVALID) return;
  ctx->held.push_back(obj);
}

}  // namespace

SweepResult Reclaimer::sweep(uint16_t q) {
  SweepResult r;
  rte_mempool* mp = d_->pools[q];
  r.ring_freed = d_->dataplane->drain_ring(q);
  r.tx_cleanup = rte_eth_tx_done_cleanup(d_->port_id, q, 0);
  // Frames that arrived since the holder stopped polling (and, on net_ring,
  // what it transmitted, which loops back to RX queue q): out of the PMD.
  rte_mbuf* burst[32];
  for (int i = 0; i < 256; i++) {
    uint16_t n = engine::memif_guard::rx_burst(d_->port_id, q, burst, 32, d_->memif);
    for (uint16_t k = 0; k < n; k++) rte_pktmbuf_free(burst[k]);
    r.rx_freed += n;
    if (n == 0) break;
  }
  r.baseline = d_->shm->leases[q].posted_baseline;
  r.by_port = !(d_->pmd_holds_none && r.baseline == 0);

  // Take every free mbuf out, so that what remains in use can be told apart.
  std::vector<void*> free_objs;
  free_objs.reserve(mp->size);
  void* chunk[256];
  for (;;) {
    unsigned avail = rte_mempool_avail_count(mp);
    if (avail == 0) break;
    unsigned n = std::min<unsigned>(avail, 256);
    if (rte_mempool_get_bulk(mp, chunk, n) != 0) {
      if (rte_mempool_get_bulk(mp, chunk, 1) != 0) break;
      n = 1;
    }
    free_objs.insert(free_objs.end(), chunk, chunk + n);
  }
  std::sort(free_objs.begin(), free_objs.end());
  SweepCtx ctx;
  ctx.free_objs = &free_objs;
  ctx.by_port = r.by_port;
  rte_mempool_obj_iter(mp, sweep_cb, &ctx);
  for (void* obj : ctx.held) {
    // Back to the state rte_pktmbuf_pool_create left it in (refcnt 1, one
    // segment, no next, port invalid), whatever the dead owner did to it.
    rte_pktmbuf_init(mp, nullptr, obj, 0);
    rte_mbuf_refcnt_set(static_cast<rte_mbuf*>(obj), 1);
  }
  if (!ctx.held.empty())
    rte_mempool_put_bulk(mp, ctx.held.data(), static_cast<unsigned>(ctx.held.size()));
  if (!free_objs.empty())
    rte_mempool_put_bulk(mp, free_objs.data(), static_cast<unsigned>(free_objs.size()));
  r.swept = static_cast<unsigned>(ctx.held.size());
  r.in_use = rte_mempool_in_use_count(mp);
  return r;
}

namespace {

const char* const kSideNames[4] = {"enqueue", "dequeue", "put", "get"};

rte_ring* side_ring(const Daemon* d, uint16_t q, int side) {
  return side < 2 ? d->rings[q] : engine::pool_ring(d->pools[q]);
}

engine::RingSide side_of(int side) {
  return side % 2 == 0 ? engine::RingSide::kProducer : engine::RingSide::kConsumer;
}

// The side a lease's ring_op names (-1: none).
int marked_side(uint32_t op) {
  switch (MN_RING_OP_KIND(op)) {
    case MN_RING_OP_STEER_ENQ:
      return 0;
    case MN_RING_OP_POOL_PUT:
      return 2;
    case MN_RING_OP_POOL_GET:
      return 3;
    default:
      return -1;
  }
}

}  // namespace

// The pid of a live holder still inside the steering round it was in when
// q's ports were released (0: none). Holders not active any more (dead,
// being reclaimed themselves) do not count: they touch nothing now.
int32_t Reclaimer::steering_into(uint16_t q, const Pending& p) const {
  for (uint16_t i = 1; i < d_->nb_queues; i++) {
    if (i == q || (p.steer_seen[i] & 1u) == 0) continue;
    const mn_lease& l = d_->shm->leases[i];
    if (mn_lease_state(&l) != MN_LEASE_ACTIVE) continue;
    if (mn_lease_steer_seq(&l) != p.steer_seen[i]) continue;
    if (kill(l.pid, 0) != 0 && errno == ESRCH) continue;
    return l.pid;
  }
  return 0;
}

bool Reclaimer::repair(uint16_t q, Pending& p, std::string* done) {
  bool own_clear = true;
  auto try_side = [&](uint16_t t, int side, bool own) {
    rte_ring* r = side_ring(d_, t, side);
    engine::RingGap now = engine::ring_gap(r, side_of(side));
    if (!now.open()) return;
    // Unchanged for the whole grace period: nobody finished an operation on
    // that side since (HTS: nobody else could start one), so the holder is
    // the dead process. Otherwise a live process is in the middle of one.
    uint32_t n = now == p.seen[t][side] ? engine::ring_give_back(r, side_of(side), now) : 0;
    if (n == 0) {
      if (own) own_clear = false;
      return;
    }
    d_->counters.ring_repairs++;
    d_->counters.ring_repair_slots += n;
    char buf[128];
    std::snprintf(buf, sizeof(buf), "%s%s %s (%u slot%s)", done->empty() ? "" : ", ",
                  kSideNames[side], r->name, n, n == 1 ? "" : "s");
    *done += buf;
  };
  // The dead holder's own ring and pool: nobody else uses them since its
  // ports were released, so any gap left is its own.
  for (int side = 0; side < kSides; side++) try_side(q, side, true);
  // Another queue's ring or pool the holder was inside (marked by it).
  uint32_t op = mn_lease_ring_op(&d_->shm->leases[q]);
  uint16_t t = MN_RING_OP_QUEUE(op);
  int side = marked_side(op);
  if (side >= 0 && t < d_->nb_queues && t != q) try_side(t, side, false);
  // A fork-shared ring or the shared pool: give back a gap unchanged since
  // the reclaim started (HTS: nobody else could move that side).
  if (p.shared_ring != nullptr) {
    engine::RingGap now = engine::ring_gap(
        p.shared_ring,
        (p.shared_side == 0 ? engine::RingSide::kProducer : engine::RingSide::kConsumer));
    if (now.open() && now == p.shared_seen) {
      uint32_t n = engine::ring_give_back(
          p.shared_ring,
          (p.shared_side == 0 ? engine::RingSide::kProducer : engine::RingSide::kConsumer), now);
      if (n != 0) {
        d_->counters.ring_repairs++;
        d_->counters.ring_repair_slots += n;
        char buf[128];
        std::snprintf(buf, sizeof(buf), "%s%s %s (%u slot%s)", done->empty() ? "" : ", ",
                      p.shared_side == 0 ? "enqueue" : "dequeue", p.shared_ring->name, n,
                      n == 1 ? "" : "s");
        *done += buf;
      }
    }
    p.shared_ring = nullptr;
  }
  return own_clear;
}

namespace {

// A gap no reclaim could attribute (a ring side neither HTS nor single
// producer/consumer, or a holder that is not a reclaimed lease): processes
// using that side wait for it. Say so loudly rather than let the hang be a
// mystery.
void check_ring(const rte_ring* r, int32_t pid) {
  if (r == nullptr) return;
  bool prod = engine::ring_gap(r, engine::RingSide::kProducer).open();
  bool cons = engine::ring_gap(r, engine::RingSide::kConsumer).open();
  if (!prod && !cons) return;
  MN_LOG(DAEMON, WARNING,
         "WARNING: ring %s is mid-%s (head != tail) after reclaiming pid %d, not known to be "
         "the dead process's: if it stays so, processes using it wait (machnet-stat: ring_busy)",
         r->name, prod ? "enqueue" : "dequeue", pid);
}

}  // namespace

void Reclaimer::finish(uint16_t q, bool final) {
  Pending& p = pending_[q];
  if (!p.active) return;
  mn_lease& l = d_->shm->leases[q];
  if (!final) {
    int32_t busy_pid = steering_into(q, p);
    if (busy_pid != 0) {
      if (p.retries++ == 0)
        MN_LOG(DAEMON, WARNING,
               "reclaim of queue %u waits: pid %d is still steering a burst it may have "
               "looked up before queue %u's ports were released",
               q, busy_pid, q);
      arm(p);
      return;
    }
  }
  std::string repaired;
  if (!repair(q, p, &repaired) && !final) {
    // Someone is mid-operation on q's own ring or pool: the sweep would
    // wait on it. Look again after another grace period.
    if (p.retries++ == 0)
      MN_LOG(DAEMON, WARNING, "reclaim of queue %u waits: its ring or pool is mid-operation%s%s", q,
             repaired.empty() ? "" : "; gave back ", repaired.c_str());
    snapshot(p.seen);
    arm(p);
    return;
  }
  bool busy = false;
  for (int side = 0; side < kSides; side++)
    busy |= engine::ring_gap(side_ring(d_, q, side), side_of(side)).open();
  SweepResult r;
  if (!busy) r = sweep(q);
  for (uint16_t i = 0; i < d_->nb_queues; i++) {
    check_ring(d_->rings[i], p.pid);
    check_ring(engine::pool_ring(d_->pools[i]), p.pid);
  }
  unsigned unaccounted = r.in_use > r.baseline ? r.in_use - r.baseline : 0;
  d_->counters.reclaims++;
  d_->counters.mbufs_swept += r.swept;
  d_->counters.unaccounted[q] = unaccounted;
  l.pid = 0;
  l.uid = 0;
  l.owner_id = 0;
  mn_lease_ring_op_end(&l);
  l.attached_ns = 0;
  memset(l.comm, 0, sizeof(l.comm));
  mn_lease_set_state(&l, MN_LEASE_FREE);
  p.active = false;
  double ms = static_cast<double>(mono_ns() - p.start_ns) / 1e6;
  char extra[96] = "";
  if (unaccounted != 0) std::snprintf(extra, sizeof(extra), ", %u unaccounted", unaccounted);
  if (busy) std::snprintf(extra, sizeof(extra), ", NOT swept: its ring or pool is mid-operation");
  if (!repaired.empty()) repaired = "; gave back half-done ring operations: " + repaired;
  MN_LOG(DAEMON, NOTICE,
         "reclaimed queue %u of pid %d (%s) after %s: %zu ports released, %u mbufs swept%s + %u "
         "from ring + %u from RX, pool in use %u (baseline %u)%s%s, %.1f ms",
         q, p.pid, p.comm, p.why.c_str(), p.ports, r.swept, r.by_port ? "" : " (all in use)",
         r.ring_freed, r.rx_freed, r.in_use, r.baseline, extra, repaired.c_str(), ms);
}

unsigned remove_secondary_files(const std::string& runtime_dir, int32_t pid) {
  if (runtime_dir.empty() || pid <= 0) return 0;
  DIR* dir = opendir(runtime_dir.c_str());
  if (dir == nullptr) return 0;
  const std::string mp = "mp_socket_" + std::to_string(pid) + "_";
  const std::string suffix = "_" + std::to_string(pid);
  unsigned n = 0;
  while (dirent* e = readdir(dir)) {
    std::string f = e->d_name;
    bool ours = f.compare(0, mp.size(), mp) == 0 ||
                (f.rfind("fbarray_", 0) == 0 && f.size() > suffix.size() &&
                 f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0);
    if (ours && unlinkat(dirfd(dir), e->d_name, 0) == 0) n++;
  }
  closedir(dir);
  return n;
}

FileReaper::~FileReaper() {
  for (Watch* w : watches_) {
    event_free(w->ev);
    close(w->pidfd);
    delete w;
  }
}

void FileReaper::watch(int32_t pid) {
  if (pid <= 0) return;
  for (Watch* w : watches_)
    if (w->pid == pid) return;
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    // Already reaped (or no pidfd support): nothing can still use its files.
    if (errno == ESRCH) {
      unsigned n = remove_secondary_files(d_->runtime_dir, pid);
      if (n != 0) MN_LOG(DAEMON, INFO, "removed %u DPDK runtime files of exited pid %d", n, pid);
    }
    return;
  }
  auto* w = new Watch{this, pid, fd, nullptr};
  w->ev = event_new(d_->base, fd, EV_READ, on_exit, w);
  if (w->ev == nullptr || event_add(w->ev, nullptr) != 0) {
    if (w->ev != nullptr) event_free(w->ev);
    close(fd);
    delete w;
    return;
  }
  watches_.push_back(w);
}

void FileReaper::on_exit(int, short, void* arg) {
  auto* w = static_cast<Watch*>(arg);
  FileReaper* self = w->self;
  unsigned n = remove_secondary_files(self->d_->runtime_dir, w->pid);
  if (n != 0) MN_LOG(DAEMON, INFO, "removed %u DPDK runtime files of exited pid %d", n, w->pid);
  event_free(w->ev);
  close(w->pidfd);
  self->watches_.erase(std::find(self->watches_.begin(), self->watches_.end(), w));
  delete w;
}

}  // namespace machnet::daemon
