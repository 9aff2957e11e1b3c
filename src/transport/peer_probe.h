// Per-peer memory of service probes (docs/PROTOCOL.md 2.2): which peers were
// found to run no machnet ("plain": the probe was refused by ICMP or went
// unanswered), which machnet hosts offer no listener on a service port, and
// which answered as machnet. Pure logic: the caller passes the time; entries
// expire after their kind's TTL. Bounded: at most `capacity` entries, the
// oldest going first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <utility>

#include "transport/types.h"

namespace machnet {
namespace transport {

// Whether the kernel could carry a connection to a host: a fallback to
// kernel TCP is only worth making if it can. Asked only when a probe goes
// unanswered (the caller may make a system call); pure logic gets a fake.
class KernelRoutes {
 public:
  virtual ~KernelRoutes() = default;
  virtual bool reachable(uint32_t ip) const = 0;
};

class PeerCache {
 public:
  // A TTL of 0 disables remembering that kind of verdict.
  PeerCache(uint64_t plain_ttl_ns, uint64_t no_service_ttl_ns, uint64_t machnet_ttl_ns,
            size_t capacity);

  // What a connect to (ip, service) should expect now: kPlain and kNoService
  // mean "go to kernel TCP without probing".
  PeerVerdict lookup(uint64_t now, uint32_t ip, uint16_t service) const;
  // The host answered a probe as machnet (fresh evidence: clears "plain").
  void record_machnet(uint64_t now, uint32_t ip);
  // The host refused (ICMP) or ignored a probe.
  void record_plain(uint64_t now, uint32_t ip);
  // A machnet host (so also recorded as machnet) without a listener on
  // `service`.
  void record_no_service(uint64_t now, uint32_t ip, uint16_t service);
  // The host answered as machnet within its TTL.
  bool fresh_machnet(uint64_t now, uint32_t ip) const;
  void forget(uint32_t ip);
  size_t size() const { return map_.size(); }

 private:
  struct Entry {
    PeerVerdict verdict;
    uint64_t expires;
    uint64_t stamp;  // insertion order, matches the order_ entry still valid
  };
  static uint64_t key(uint32_t ip, uint16_t service) { return (uint64_t{ip} << 16) | service; }
  const Entry* find(uint64_t now, uint64_t k) const;
  void put(uint64_t now, uint64_t k, PeerVerdict v, uint64_t ttl);
  void erase(uint64_t k);

  uint64_t plain_ttl_, no_service_ttl_, machnet_ttl_;
  size_t capacity_;
  std::unordered_map<uint64_t, Entry> map_;
  std::deque<std::pair<uint64_t, uint64_t>> order_;  // (key, stamp), oldest first
  uint64_t next_stamp_ = 1;
};

}  // namespace transport
}  // namespace machnet
