#include "net/arp_cache.h"

#include <algorithm>
#include <vector>

namespace machnet::net {

namespace {

enum class Slot : uint8_t { kEmpty, kIncomplete, kResolved };

struct Entry {
  uint32_t ip = 0;
  Slot slot = Slot::kEmpty;
  uint32_t requests = 0;  // requests sent in the current resolution
  uint32_t q_head = 0;    // FIFO of waiting packets: a list of pool nodes
  uint32_t q_tail = 0;
  uint32_t q_count = 0;
  wire::MacAddr mac{};
  uint64_t confirmed_ns = 0;   // last learn(); reachable until + reachable_ns
  uint64_t used_ns = 0;        // last resolve() (or creation); forgotten at + stale_ns
  uint64_t next_retry_ns = 0;  // kIncomplete: when tick() sends the next request
  uint64_t refresh_ns = 0;     // resolved: when the last stale refresh was sent
  bool refresh_sent = false;
};

uint64_t elapsed(uint64_t now, uint64_t then) {
  return now > then ? now - then : 0;
}

constexpr uint32_t kNil = 0xffffffffu;  // no node

size_t round_up_pow2(size_t n) {
  size_t p = 2;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

// Linear probing with backward-shift deletion (no tombstones, so lookups stay
// short however many entries come and go). The slot array has at least twice
// max_entries slots, so probes always end at an empty slot. Waiting packets
// live in one pool of max_pending_total nodes shared by all entries (linked
// by index, so entries can move when a neighbour is deleted): a neighbour may
// hold up to max_pending_per_entry of them without every entry reserving as
// many.
struct ArpCache::Impl {
  ArpConfig cfg;
  ArpEvents* events;
  size_t max_entries;
  size_t mask;
  std::vector<Entry> slots;
  std::vector<void*> node_pkt;      // the pending pool: packet of each node
  std::vector<uint32_t> node_next;  // next node of the same queue, or of the free list
  uint32_t free_head = kNil;
  size_t used = 0;
  uint64_t requests_sent = 0;
  uint64_t resolutions_failed = 0;

  Impl(const ArpConfig& c, ArpEvents* e)
      : cfg(c), events(e), max_entries(c.max_entries == 0 ? 1 : c.max_entries) {
    if (cfg.max_requests == 0) cfg.max_requests = 1;  // resolving always sends one
    const size_t n = round_up_pow2(max_entries * 2);
    mask = n - 1;
    slots.resize(n);
    const size_t nodes = std::min(cfg.max_pending_total, size_t{kNil});
    node_pkt.resize(nodes);
    node_next.resize(nodes);
    for (size_t i = nodes; i > 0; --i) {
      node_next[i - 1] = free_head;
      free_head = static_cast<uint32_t>(i - 1);
    }
  }

  size_t home(uint32_t ip) const {
    // Fibonacci hashing: neighbours on one subnet differ in the low bits only.
    return static_cast<size_t>((static_cast<uint64_t>(ip) * 0x9E3779B97F4A7C15ull) >> 32) & mask;
  }

  Entry* find(uint32_t ip) {
    for (size_t i = home(ip);; i = (i + 1) & mask) {
      Entry& e = slots[i];
      if (e.slot == Slot::kEmpty) return nullptr;
      if (e.ip == ip) return &e;
    }
  }
  const Entry* find(uint32_t ip) const { return const_cast<Impl*>(this)->find(ip); }

  // nullptr when the table already holds max_entries.
  Entry* insert(uint32_t ip) {
    if (used >= max_entries) return nullptr;
    size_t i = home(ip);
    while (slots[i].slot != Slot::kEmpty) i = (i + 1) & mask;
    Entry& e = slots[i];
    e = Entry{};
    e.ip = ip;
    ++used;
    return &e;
  }

  void erase(size_t i) {
    slots[i].slot = Slot::kEmpty;
    --used;
    // Pull later members of the probe run back so none sits behind a hole.
    size_t hole = i;
    for (size_t j = (i + 1) & mask; slots[j].slot != Slot::kEmpty; j = (j + 1) & mask) {
      const size_t h = home(slots[j].ip);
      // j may fill the hole unless its home lies cyclically in (hole, j].
      const bool home_after_hole = ((j - h) & mask) < ((j - hole) & mask);
      if (home_after_hole) continue;
      slots[hole] = slots[j];
      slots[j].slot = Slot::kEmpty;
      hole = j;
    }
  }

  // False when the entry already holds max_pending_per_entry packets or the
  // pool is empty.
  bool enqueue(Entry& e, void* pkt) {
    if (e.q_count >= cfg.max_pending_per_entry || free_head == kNil) return false;
    uint32_t n = free_head;
    free_head = node_next[n];
    node_pkt[n] = pkt;
    node_next[n] = kNil;
    if (e.q_count == 0)
      e.q_head = n;
    else
      node_next[e.q_tail] = n;
    e.q_tail = n;
    ++e.q_count;
    return true;
  }

  void* dequeue(Entry& e) {
    uint32_t n = e.q_head;
    void* pkt = node_pkt[n];
    e.q_head = node_next[n];
    --e.q_count;
    node_next[n] = free_head;
    free_head = n;
    return pkt;
  }

  void send_request(uint32_t ip) {
    ++requests_sent;
    events->send_request(ip);
  }

  // Fails resolution of the entry in slot i: its packets go back as drops.
  void fail(size_t i) {
    Entry& e = slots[i];
    ++resolutions_failed;
    while (e.q_count > 0) events->drop(dequeue(e), DropReason::kNoArpEntry);
    erase(i);
  }
};

ArpCache::ArpCache(const ArpConfig& config, ArpEvents* events)
    : impl_(std::make_unique<Impl>(config, events)) {}

// Packets still waiting are handed back so none leaks; `events` must outlive
// the cache.
ArpCache::~ArpCache() {
  for (Entry& e : impl_->slots) {
    if (e.slot == Slot::kEmpty) continue;
    while (e.q_count > 0) impl_->events->drop(impl_->dequeue(e), DropReason::kNoArpEntry);
  }
}

ArpLookup ArpCache::resolve(uint32_t ip_host, uint64_t now_ns, void* pkt, wire::MacAddr* mac) {
  Impl& m = *impl_;
  Entry* e = m.find(ip_host);
  if (e == nullptr) {
    e = m.insert(ip_host);
    if (e == nullptr) {
      if (pkt != nullptr) m.events->drop(pkt, DropReason::kArpQueueFull);
      return ArpLookup::kDropped;
    }
    e->slot = Slot::kIncomplete;
    e->used_ns = now_ns;
    e->requests = 1;
    e->next_retry_ns = now_ns + m.cfg.retry_ns;
    // Queue first: send_request() may be observed by the caller, and the
    // packet must already be held when it is.
    if (pkt != nullptr && !m.enqueue(*e, pkt)) {
      m.events->drop(pkt, DropReason::kArpQueueFull);  // no room at all
      m.send_request(ip_host);
      return ArpLookup::kDropped;
    }
    m.send_request(ip_host);
    return ArpLookup::kPending;
  }
  e->used_ns = now_ns;
  if (e->slot == Slot::kIncomplete) {
    if (pkt != nullptr && !m.enqueue(*e, pkt)) {
      m.events->drop(pkt, DropReason::kArpQueueFull);
      return ArpLookup::kDropped;
    }
    return ArpLookup::kPending;
  }
  if (mac != nullptr) *mac = e->mac;
  // Stale: keep using the old MAC (it is almost always still right) but ask
  // again, at most once per reachable_ns so a busy flow does not flood ARP.
  if (elapsed(now_ns, e->confirmed_ns) >= m.cfg.reachable_ns &&
      (!e->refresh_sent || elapsed(now_ns, e->refresh_ns) >= m.cfg.reachable_ns)) {
    e->refresh_sent = true;
    e->refresh_ns = now_ns;
    m.send_request(ip_host);
  }
  return ArpLookup::kHit;
}

void ArpCache::learn(uint32_t ip_host, const wire::MacAddr& mac, uint64_t now_ns, bool create) {
  Impl& m = *impl_;
  // Broadcast, multicast and all-zero MACs are never valid neighbours, and
  // 0.0.0.0 is the sender address of ARP probes (RFC 5227), not a binding.
  if ((mac[0] & 1) != 0 || mac == wire::kZeroMac || ip_host == 0) return;
  Entry* e = m.find(ip_host);
  if (e == nullptr) {
    if (!create) return;
    e = m.insert(ip_host);
    if (e == nullptr) return;  // full: an unsolicited binding is not worth an eviction
    e->used_ns = now_ns;
  }
  e->slot = Slot::kResolved;
  e->mac = mac;
  e->confirmed_ns = now_ns;
  e->requests = 0;
  e->refresh_sent = false;
  // FIFO, so packets of one flow leave in the order they were sent. The entry
  // is already resolved, so it is consistent whatever release() does.
  while (e->q_count > 0) m.events->release(m.dequeue(*e), mac);
}

void ArpCache::tick(uint64_t now_ns) {
  Impl& m = *impl_;
  size_t i = 0;
  while (i < m.slots.size()) {
    Entry& e = m.slots[i];
    if (e.slot == Slot::kIncomplete) {
      if (now_ns >= e.next_retry_ns) {
        if (e.requests >= m.cfg.max_requests) {
          m.fail(i);
          continue;  // erase() may have moved another entry into slot i
        }
        ++e.requests;
        e.next_retry_ns = now_ns + m.cfg.retry_ns;
        m.send_request(e.ip);
      }
    } else if (e.slot == Slot::kResolved) {
      if (elapsed(now_ns, e.used_ns) >= m.cfg.stale_ns) {
        m.erase(i);
        continue;
      }
    }
    ++i;
  }
}

ArpState ArpCache::state(uint32_t ip_host, uint64_t now_ns) const {
  const Entry* e = impl_->find(ip_host);
  if (e == nullptr) return ArpState::kNone;
  if (e->slot == Slot::kIncomplete) return ArpState::kIncomplete;
  return elapsed(now_ns, e->confirmed_ns) < impl_->cfg.reachable_ns ? ArpState::kReachable
                                                                    : ArpState::kStale;
}

size_t ArpCache::size() const {
  return impl_->used;
}
uint64_t ArpCache::requests_sent() const {
  return impl_->requests_sent;
}
uint64_t ArpCache::resolutions_failed() const {
  return impl_->resolutions_failed;
}

}  // namespace machnet::net
