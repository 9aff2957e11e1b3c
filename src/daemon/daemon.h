// The daemon's state shared by its parts (port, data path, leases, control
// server, statistics). One instance, owned by main(); everything runs on the
// EAL main thread except the DPDK telemetry callbacks, which only read.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "common/drop_reason.h"
#include "daemon/config.h"
#include "ipc/shm.h"
#include "wire/headers.h"

struct rte_memzone;
struct event_base;

namespace machnet::daemon {

class Dataplane;
class LeaseTable;
class ServiceTable;
class Reclaimer;
class ControlServer;

// Counters of the daemon's own data path (queue 0 and unleased queues).
struct DaemonCounters {
  uint64_t rx_packets = 0;  // frames taken from the RX queues it polls
  uint64_t rx_bytes = 0;
  uint64_t ring_rx = 0;  // frames other processes steered to ring 0
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;
  uint64_t arp_rx = 0;
  uint64_t arp_tx = 0;
  uint64_t arp_learned = 0;  // neighbour table writes
  uint64_t icmp_echo_replies = 0;
  uint64_t icmp_unreachable_tx = 0;
  uint64_t icmp_rate_limited = 0;
  uint64_t fragments_rx = 0;
  uint64_t reassembled = 0;
  uint64_t steered = 0;      // frames copied to an owner's ring
  uint64_t steer_drops = 0;  // owner's ring full or pool empty
  uint64_t drops[kDropReasonCount] = {};
  // Control plane.
  uint64_t ctl_connections = 0;
  uint64_t ctl_requests = 0;
  uint64_t ctl_malformed = 0;  // connections closed for a malformed message
  uint64_t ctl_denied = 0;     // requests refused for want of authority (logged)
  uint64_t attaches = 0;
  uint64_t reclaims = 0;
  uint64_t mbufs_swept = 0;
  // Half-done ring reservations of dead processes given back at a reclaim
  // (ring or pool sides repaired, and their slots), and the times the data
  // path skipped another queue's ring or pool because an operation on it
  // did not finish (a frame dropped or a parked poll deferred).
  uint64_t ring_repairs = 0;
  uint64_t ring_repair_slots = 0;
  uint64_t ring_busy = 0;
  uint64_t steer_deferred = 0;    // frames that waited for a busy pool or ring
  uint64_t deferred_expired = 0;  // ... and were dropped after waiting too long
  uint64_t wakeups = 0;           // eventfd writes to parked leases (all queues)
  uint64_t parked_rx = 0;         // frames taken from parked leases' RX queues
  // SO_REUSEPORT groups: leases that joined an existing group, and members
  // that left one (unbind or reclaim).
  uint64_t group_joins = 0;
  uint64_t group_leaves = 0;
  uint64_t shared_joins = 0;          // leases that joined a port as fork sharers
  uint64_t shared_leaves = 0;         // fork sharers that left (close, reclaim)
  uint64_t shared_copies = 0;         // frames copied onto fork-shared rings
  uint64_t shared_drops = 0;          // ... that found the ring full or the pool empty
  uint64_t service_syns = 0;          // service SYNs steered to a listener of their service
  uint64_t service_syns_unknown = 0;  // ... of a service nobody listens on (answered by RST)
  // Per queue: in use beyond posted_baseline after its last reclaim (mbufs
  // a dead holder kept without marking them with the port: leaked).
  uint64_t unaccounted[MN_SHM_MAX_QUEUES] = {};
};

struct Daemon {
  DaemonConfig cfg;
  std::string eal_prefix;  // --file-prefix
  std::string hugedir;     // hugetlbfs mount EAL uses
  std::string runtime_dir;
  std::string device_name;  // ethdev name (rte_eth_dev_get_name_by_port)
  uint16_t port_id = 0;
  uint16_t nb_queues = 0;
  bool memif = false;
  // The PMD keeps no mbufs of its own between bursts (net_ring, copying
  // net_memif): every in-use mbuf of a dead holder's pool is the holder's.
  bool pmd_holds_none = false;
  wire::MacAddr mac{};
  uint16_t mtu = 1500;
  mn_shm* shm = nullptr;
  const rte_memzone* mz = nullptr;
  rte_mempool* pools[MN_SHM_MAX_QUEUES] = {};
  rte_ring* rings[MN_SHM_MAX_QUEUES] = {};
  // Fork-shared ports: one ring per shared slot and the pool of the copies
  // they hold (mn_shm.shared_rings, shared_pool).
  rte_ring* shared_rings[MN_SHM_SHARED_RINGS] = {};
  rte_mempool* shared_pool = nullptr;
  uint32_t pool_size = 0;
  uint64_t start_mono_ns = 0;
  DaemonCounters counters;

  event_base* base = nullptr;
  Dataplane* dataplane = nullptr;
  LeaseTable* leases = nullptr;
  ServiceTable* services = nullptr;
  Reclaimer* reclaimer = nullptr;
  ControlServer* control = nullptr;

  // Per queue: the holder's wake-up eventfd (ATTACH, SCM_RIGHTS), -1 =
  // none (the holder never parks). Closed when its reclaim starts.
  int wake_fds[MN_SHM_MAX_QUEUES] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                     -1, -1, -1, -1, -1, -1, -1, -1};
  static_assert(MN_SHM_MAX_QUEUES == 16, "wake_fds initialiser");
  void set_wake_fd(uint16_t q, int fd) {
    if (wake_fds[q] >= 0) ::close(wake_fds[q]);
    wake_fds[q] = fd;
  }

  // Set before the port and EAL go away: telemetry callbacks (another
  // thread) then answer without touching shared memory.
  std::atomic<bool> stopping{false};
  // Set once shutdown's DPDK cleanup has returned (the shutdown watchdog).
  std::atomic<bool> cleaned_up{false};
};

}  // namespace machnet::daemon
