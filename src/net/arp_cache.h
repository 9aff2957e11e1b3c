// ARP neighbour cache for one interface: resolution with retries, expiry, a
// bounded queue of packets waiting for an answer. Pure logic: time comes in as
// an argument (a fake clock in tests, the TSC in the engine) and every effect
// goes out through ArpEvents, so the state machine is tested without DPDK.
// All storage is allocated in the constructor; no call allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/drop_reason.h"
#include "wire/headers.h"

namespace machnet::net {

struct ArpConfig {
  uint64_t reachable_ns = 30'000'000'000;  // a confirmed entry is used without question this long
  uint64_t stale_ns = 300'000'000'000;     // an unused entry older than this is forgotten
  uint64_t retry_ns = 100'000'000;         // between requests while resolving
  uint32_t max_requests = 5;               // requests sent before resolution fails
  size_t max_entries = 1024;               // table capacity (rounded up internally)
  // Packets held while a neighbour resolves: per neighbour, as the kernel's
  // unres_qlen (whose byte bound holds ~270 small datagrams), so a burst
  // sent to a new neighbour is not cut short; and in all, so unresolved
  // neighbours never hold more than this many of the engine's buffers.
  size_t max_pending_per_entry = 256;
  size_t max_pending_total = 4096;
};

enum class ArpState : uint8_t {
  kNone,        // no entry
  kIncomplete,  // request sent, no answer yet
  kReachable,   // answered within reachable_ns
  kStale,       // older than reachable_ns: still used, refreshed with a request on use
};

// Effects of the cache. Handles are opaque packets owned by the caller
// (mbufs in the engine); every handle given to resolve() comes back exactly
// once, through release() or drop().
class ArpEvents {
 public:
  virtual ~ArpEvents() = default;
  virtual void send_request(uint32_t ip_host) = 0;
  virtual void release(void* pkt, const wire::MacAddr& mac) = 0;  // now sendable
  virtual void drop(void* pkt, DropReason reason) = 0;            // resolution failed / no room
};

enum class ArpLookup : uint8_t {
  kHit,      // *mac filled, send now
  kPending,  // pkt queued (ownership taken), will come back via release()/drop()
  kDropped,  // pkt handed to drop() already (queue or table full)
};

class ArpCache {
 public:
  ArpCache(const ArpConfig& config, ArpEvents* events);
  ~ArpCache();
  ArpCache(const ArpCache&) = delete;
  ArpCache& operator=(const ArpCache&) = delete;

  // Resolves ip for sending pkt (may be nullptr for a pure lookup that still
  // starts resolution). A kStale hit returns kHit and sends one refresh request.
  ArpLookup resolve(uint32_t ip_host, uint64_t now_ns, void* pkt, wire::MacAddr* mac);

  // Information from a received ARP packet (or another trusted source).
  // Updates an existing entry; creates one only if `create` (e.g. a request
  // addressed to us, or a reply to our request). Releases waiting packets.
  void learn(uint32_t ip_host, const wire::MacAddr& mac, uint64_t now_ns, bool create);

  // Retransmits requests, fails resolutions that ran out of retries (dropping
  // their packets with DropReason::kNoArpEntry) and forgets stale entries.
  // Call at least every retry_ns / 2.
  void tick(uint64_t now_ns);

  ArpState state(uint32_t ip_host, uint64_t now_ns) const;
  size_t size() const;

  // Counters
  uint64_t requests_sent() const;
  uint64_t resolutions_failed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace machnet::net
