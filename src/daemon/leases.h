// Leases of queue pairs and the UDP port table (both live in struct mn_shm),
// ephemeral port allocation, and the reclaim of a lease whose holder went
// away: release its ports, wait a grace period, drain its steering ring and
// sweep its pool back.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "common/host.h"
#include "daemon/daemon.h"
#include "engine/ring_repair.h"

struct event;

namespace machnet::daemon {

// Whether `ancestor` is on pid's parent chain (parent(pid), its parent...,
// at most 64 steps; parent: /proc/<pid>/stat's ppid when nullptr).
bool is_descendant(int32_t pid, int32_t ancestor, int32_t (*parent)(int32_t) = nullptr);

// Whether queue q's holder may share what `holders` hold as a fork sharer:
// one of them has its uid (else -EACCES) and is an ancestor of its process
// (else -EADDRINUSE). 0 when it may.
int fork_sharer_check(const mn_shm& shm, uint16_t q, const uint16_t* holders, size_t n);

class LeaseTable {
 public:
  explicit LeaseTable(Daemon* d);

  // Leases the lowest free queue to (pid, uid, comm): new random owner_id,
  // generation + 1, counters zeroed, state active. Returns the queue, or
  // -EBUSY when every queue is leased or being reclaimed.
  int attach(int32_t pid, uint32_t uid, const char* comm);
  // Claims `port` (0: an ephemeral port) for the holder of queue q. ip must
  // be 0 or the host address. With MN_CTL_BIND_REUSEPORT in flags, q joins
  // the port's SO_REUSEPORT group (made now if the port is free), as the
  // kernel would let a socket of the same uid join. Returns 0 and *bound, or
  // -EADDRINUSE / -EADDRNOTAVAIL / -EINVAL / -ENOMEM (no free group slot);
  // see mn_ctl_bind_reply.
  int bind(uint16_t q, uint32_t ip, uint16_t port, uint8_t proto, uint8_t flags, uint16_t* bound);
  // Releases a port held by queue q (leaves its group: the last member
  // frees group and port); -EINVAL when q does not hold it.
  int unbind(uint16_t q, uint16_t port, uint8_t proto);
  // Queue q (its holder is process `pid`, uid `uid`) shares `port` as a
  // fork sharer (MN_CTL_JOIN): the port must be held by a lease whose
  // process is an ancestor of pid, of the same uid. The port becomes
  // fork-shared (a group with a shared ring) if it is not yet. 0, or
  // -EINVAL / -EADDRINUSE / -EACCES / -ENOMEM (see mn_ctl_join_request).
  int join(uint16_t q, uint16_t port, uint8_t proto, uint8_t flags, const char** why);
  // Releases every port of queue q (reclaim); returns how many.
  size_t release_ports(uint16_t q);
  // A free fork-shared ring (drained of what a steerer may have added after
  // its last use), taken; -1 when all are in use. give_shared_ring drains
  // it and gives it back.
  int take_shared_ring();
  void give_shared_ring(int ring);
  // Fork-shared rings in use (machnet-stat).
  uint32_t shared_in_use() const { return shared_used_; }
  // Group slots in use (machnet-stat).
  uint32_t groups_in_use() const { return groups_used_; }
  const std::set<uint16_t>& ports_of(uint16_t q) const { return held_[q]; }
  uint16_t free_leases() const;
  // mn_shm.active_leases = the leases in state active.
  void publish_active();

 private:
  Daemon* d_;
  // Takes q out of the port's group, or the port from q (the port entry
  // first: readers that still see it pick among what remains).
  void release(uint16_t q, uint16_t port);
  std::set<uint16_t> held_[MN_SHM_MAX_QUEUES];
  uint16_t next_group_ = 0;  // where the search for a free group slot starts
  uint32_t groups_used_ = 0;
  bool shared_taken_[MN_SHM_SHARED_RINGS] = {};
  uint16_t next_shared_ = 0;
  uint32_t shared_used_ = 0;
  // Port 0's ports: outside the kernel's ephemeral range (common/host.h).
  PortRange ephemeral_;
  uint16_t next_ephemeral_;
};

// Unlinks the runtime files a DPDK secondary leaves in the primary's runtime
// directory when it is killed: mp_socket_<pid>_* (its IPC socket) and
// fbarray_*_<pid> (its private copies of the memory maps). Returns how many.
unsigned remove_secondary_files(const std::string& runtime_dir, int32_t pid);

// Removes a process's secondary files once it has exited (a pidfd tells;
// the socket EOF that starts a reclaim comes before the process is gone).
class FileReaper {
 public:
  explicit FileReaper(Daemon* d) : d_(d) {}
  ~FileReaper();
  void watch(int32_t pid);

 private:
  struct Watch {
    FileReaper* self;
    int32_t pid;
    int pidfd;
    event* ev;
  };
  static void on_exit(int fd, short what, void* arg);
  Daemon* d_;
  std::vector<Watch*> watches_;
};

struct SweepResult {
  unsigned ring_freed = 0;  // mbufs drained from the steering ring
  unsigned rx_freed = 0;    // frames drained from RX queue q
  bool by_port = true;      // swept in-use mbufs carrying a port (else all in use)
  unsigned swept = 0;       // held mbufs put back into the pool
  unsigned in_use = 0;      // in use after the sweep
  unsigned baseline = 0;    // posted_baseline of the queue
  int tx_cleanup = 0;       // rte_eth_tx_done_cleanup result
};

class Reclaimer {
 public:
  explicit Reclaimer(Daemon* d) : d_(d) {}
  ~Reclaimer();
  bool init(std::string* err);

  // Starts reclaiming queue q (its holder detached, closed its socket or
  // died): state reclaiming, ports released; finish() runs after the grace
  // period from a timer. No effect unless q is active.
  void start(uint16_t q, const char* why);
  bool reclaiming(uint16_t q) const { return pending_[q].active; }
  // Completes every pending reclaim now (shutdown).
  void finish_all();

  // Drains ring q and sweeps pool q (exposed for tests and shutdown).
  SweepResult sweep(uint16_t q);

 private:
  // The four shared sides of a queue: steering ring producer and consumer,
  // pool ring producer and consumer.
  static constexpr int kSides = 4;
  using Gaps = engine::RingGap[MN_SHM_MAX_QUEUES][kSides];
  struct Pending {
    Reclaimer* self = nullptr;
    uint16_t queue = 0;
    bool active = false;
    event* timer = nullptr;
    int32_t pid = 0;
    char comm[17] = {};
    size_t ports = 0;
    uint64_t start_ns = 0;
    std::string why;
    // Every ring side's head and tail when the reclaim started (or last
    // retried): a gap still the same after the grace period is a dead
    // process's reservation (HTS: nobody else could move that side).
    Gaps seen;
    // Every lease's steer_seq right after the ports were released.
    uint32_t steer_seen[MN_SHM_MAX_QUEUES] = {};
    // A fork-shared ring or the shared pool's ring the holder's ring_op
    // named when the reclaim started, and that side's gap then.
    rte_ring* shared_ring = nullptr;
    int shared_side = -1;
    engine::RingGap shared_seen;
    unsigned retries = 0;
  };
  int32_t steering_into(uint16_t q, const Pending& p) const;
  static void on_timer(int fd, short what, void* arg);
  void finish(uint16_t q, bool final = false);
  void arm(Pending& p);
  void snapshot(Gaps& g) const;
  // Gives back the reservations the dead holder of q left: on q's own ring
  // and pool, and on the ring its lease's ring_op names. Appends what it did
  // to *done; returns false while q's own pool or ring has a gap it cannot
  // attribute yet (the sweep must then wait: it would block on it).
  bool repair(uint16_t q, Pending& p, std::string* done);

  Daemon* d_;
  Pending pending_[MN_SHM_MAX_QUEUES];
  FileReaper reaper_{d_};
};

}  // namespace machnet::daemon
