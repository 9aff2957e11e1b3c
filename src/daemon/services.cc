#include "daemon/services.h"

#include <cerrno>

#include "daemon/leases.h"
#include "ipc/shm.h"

namespace machnet::daemon {

int ServiceTable::bind(uint16_t q, uint16_t service, bool reuseport) {
  if (service == 0 || q == 0 || q >= MN_SHM_MAX_QUEUES) return -EINVAL;
  const mn_lease& l = d_->shm->leases[q];
  auto it = services_.find(service);
  if (it == services_.end()) {
    Service& s = services_[service];
    s.uid = l.uid;
    s.reuseport = reuseport;
    s.members.push_back(q);
    held_[q].insert(service);
    return 0;
  }
  // Held: only an SO_REUSEPORT group of the same uid takes another member,
  // as the kernel's listening sockets.
  Service& s = it->second;
  if (!reuseport || !s.reuseport || s.ring >= 0 || s.uid != l.uid ||
      s.members.size() >= MN_SHM_MAX_QUEUES || held_[q].count(service) != 0)
    return -EADDRINUSE;
  s.members.push_back(q);
  held_[q].insert(service);
  d_->counters.group_joins++;
  return 0;
}

int ServiceTable::join(uint16_t q, uint16_t service, uint16_t* ring, const char** why) {
  *why = nullptr;
  if (service == 0 || q == 0 || q >= MN_SHM_MAX_QUEUES) return -EINVAL;
  auto it = services_.find(service);
  if (it == services_.end()) {
    *why = "nobody listens on the service";
    return -EADDRINUSE;
  }
  Service& s = it->second;
  if (held_[q].count(service) != 0) {
    *why = "the caller listens on the service already";
    return -EADDRINUSE;
  }
  if (s.reuseport && s.ring < 0) {
    *why = "an SO_REUSEPORT group listens on the service";
    return -EADDRINUSE;
  }
  if (int rc = fork_sharer_check(*d_->shm, q, s.members.data(), s.members.size()); rc != 0) {
    *why = rc == -EACCES ? "the service's listener has another uid"
                         : "no listener of the service is an ancestor of the caller";
    return rc;
  }
  if (s.ring < 0) {
    s.ring = d_->leases->take_shared_ring();
    if (s.ring < 0) {
      *why = "every shared ring is in use";
      return -ENOMEM;
    }
  }
  s.members.push_back(q);
  held_[q].insert(service);
  d_->counters.shared_joins++;
  *ring = static_cast<uint16_t>(s.ring);
  // Every member reads the ring, the listener that bound it first too: it
  // learns of the ring from its lease (mn_lease.service_rings).
  for (uint16_t m : s.members)
    __atomic_fetch_or(&d_->shm->leases[m].service_rings, 1u << s.ring, __ATOMIC_RELEASE);
  return 0;
}

void ServiceTable::leave(uint16_t q, uint16_t service) {
  auto it = services_.find(service);
  if (it == services_.end()) return;
  Service& s = it->second;
  for (size_t i = 0; i < s.members.size(); i++) {
    if (s.members[i] != q) continue;
    // The last member takes the leaver's place, as in a reuseport group:
    // the flows spread anew over those that remain.
    s.members[i] = s.members.back();
    s.members.pop_back();
    if (s.ring >= 0) {
      __atomic_fetch_and(&d_->shm->leases[q].service_rings, ~(1u << s.ring), __ATOMIC_RELEASE);
      d_->counters.shared_leaves++;
    } else if (s.reuseport) {
      d_->counters.group_leaves++;
    }
    break;
  }
  if (!s.members.empty()) return;
  // Nobody reads the ring any more: what it holds goes back to the shared
  // pool (LeaseTable drains it again when the slot is taken next).
  if (s.ring >= 0) d_->leases->give_shared_ring(s.ring);
  services_.erase(it);
}

int ServiceTable::unbind(uint16_t q, uint16_t service) {
  if (q >= MN_SHM_MAX_QUEUES || held_[q].count(service) == 0) return -EINVAL;
  leave(q, service);
  held_[q].erase(service);
  return 0;
}

size_t ServiceTable::release_all(uint16_t q) {
  if (q >= MN_SHM_MAX_QUEUES) return 0;
  size_t n = held_[q].size();
  for (uint16_t s : held_[q]) leave(q, s);
  held_[q].clear();
  return n;
}

uint16_t ServiceTable::target(uint16_t service, uint32_t hash, int* ring) const {
  *ring = -1;
  auto it = services_.find(service);
  if (it == services_.end() || it->second.members.empty()) return 0;
  const Service& s = it->second;
  if (s.ring >= 0) {
    *ring = s.ring;
    return 0;
  }
  return s.members[hash % s.members.size()];
}

uint16_t ServiceTable::any_listener() const {
  for (uint16_t q = 1; q < MN_SHM_MAX_QUEUES; q++)
    if (!held_[q].empty() && mn_lease_state(&d_->shm->leases[q]) == MN_LEASE_ACTIVE) return q;
  return 0;
}

std::string ServiceTable::json() const {
  std::string out = "[";
  bool first = true;
  for (const auto& [port, s] : services_) {
    out += first ? "" : ",";
    first = false;
    out += "{\"port\":" + std::to_string(port) + ",\"uid\":" + std::to_string(s.uid) +
           ",\"reuseport\":" + (s.reuseport ? "true" : "false");
    if (s.ring >= 0) out += ",\"shared_ring\":" + std::to_string(s.ring);
    out += ",\"members\":[";
    for (size_t i = 0; i < s.members.size(); i++) {
      const mn_lease& l = d_->shm->leases[s.members[i]];
      out += (i ? "," : "") + std::string("{\"queue\":") + std::to_string(s.members[i]) +
             ",\"pid\":" + std::to_string(l.pid) + "}";
    }
    out += "]}";
  }
  return out + "]";
}

}  // namespace machnet::daemon
