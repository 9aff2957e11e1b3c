// Stream services: which leases listen for stream connections to which
// service port (docs/MACHNETD.md, "Stream services"). Every host receives
// service SYNs on one UDP port, the rendezvous port R; nobody holds R in the
// port table, so every frame for it reaches the daemon, which reads the
// service port the SYN carries and steers the frame to a listener of that
// service. Everything after the SYN goes to the UDP port of the listener
// that answered, steered by port as usual. Only connection set-ups take
// this extra hop.
//
// A service is held by one lease, by an SO_REUSEPORT group of leases of one
// uid (a SYN goes to members[flow hash % count]: each client flow stays
// with one member), or by a fork family (the leases of processes that
// inherited the listener through fork(): SYNs go to a fork-shared ring that
// every member may read, taken by whichever accepts first). Daemon thread
// only; nothing here is in shared memory except the fork-shared rings.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "daemon/daemon.h"

namespace machnet::daemon {

class ServiceTable {
 public:
  explicit ServiceTable(Daemon* d) : d_(d) {}

  // Queue q (a process of uid `uid`) listens on `service`. reuseport: join
  // the service's SO_REUSEPORT group (made now if the service is free), as
  // a listening socket of the same uid joins the kernel's. 0, -EINVAL
  // (service 0), -EADDRINUSE (held without the flag, by another uid, or by
  // a fork family; q in it already; the group full).
  int bind(uint16_t q, uint16_t service, bool reuseport);
  // Queue q shares `service` as a fork sharer: it must be held by a lease
  // whose process is an ancestor of q's, of the same uid. The service gets a
  // fork-shared ring if it has none yet. 0 and *ring (its index in
  // mn_shm.shared_rings); -EADDRINUSE, -EACCES, -ENOMEM (no free ring), as
  // LeaseTable::join for a UDP port. *why says what refused it.
  int join(uint16_t q, uint16_t service, uint16_t* ring, const char** why);
  // q stops listening on `service`; -EINVAL when it does not.
  int unbind(uint16_t q, uint16_t service);
  // Every service of q (reclaim); returns how many.
  size_t release_all(uint16_t q);

  // Where a SYN for `service` from a flow hashing to `hash` goes: a queue
  // (> 0), or a fork-shared ring (*ring >= 0, queue 0). Neither (0, -1):
  // nobody listens on the service.
  uint16_t target(uint16_t service, uint32_t hash, int* ring) const;
  // A lease with some service, to answer "no such service" for a service
  // nobody listens on (its transport sends the RST that says so); 0 when no
  // lease listens on anything.
  uint16_t any_listener() const;
  const std::set<uint16_t>& services_of(uint16_t q) const { return held_[q]; }
  // The fork-shared rings of q's services (wake-ups of parked holders).
  template <typename F>
  void for_each_ring_of(uint16_t q, F f) const {
    for (uint16_t s : held_[q]) {
      auto it = services_.find(s);
      if (it != services_.end() && it->second.ring >= 0) f(it->second.ring);
    }
  }
  size_t size() const { return services_.size(); }
  // JSON array of the services (machnet-stat).
  std::string json() const;

 private:
  struct Service {
    uint32_t uid = 0;
    bool reuseport = false;
    int ring = -1;  // fork-shared: index of its ring in mn_shm.shared_rings
    std::vector<uint16_t> members;
  };
  void leave(uint16_t q, uint16_t service);
  Daemon* d_;
  std::map<uint16_t, Service> services_;
  std::set<uint16_t> held_[MN_SHM_MAX_QUEUES];
};

}  // namespace machnet::daemon
