// ArpCache on a fake clock with a recording ArpEvents sink.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "net/arp_cache.h"

namespace machnet::net {
namespace {

using wire::MacAddr;

constexpr uint32_t kIp = 0x0a000002;
constexpr uint32_t kIp2 = 0x0a000003;
constexpr MacAddr kMac1 = {0x02, 0, 0, 0, 0, 0x11};
constexpr MacAddr kMac2 = {0x02, 0, 0, 0, 0, 0x22};
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000'000'000;

struct Released {
  void* pkt;
  MacAddr mac;
  bool operator==(const Released& o) const { return pkt == o.pkt && mac == o.mac; }
  bool operator<(const Released& o) const { return std::tie(pkt, mac) < std::tie(o.pkt, o.mac); }
};
struct Dropped {
  void* pkt;
  DropReason reason;
  bool operator==(const Dropped& o) const { return pkt == o.pkt && reason == o.reason; }
  bool operator<(const Dropped& o) const {
    return std::tie(pkt, reason) < std::tie(o.pkt, o.reason);
  }
};

class Recorder : public ArpEvents {
 public:
  void send_request(uint32_t ip) override { requests.push_back(ip); }
  void release(void* pkt, const MacAddr& mac) override { released.push_back({pkt, mac}); }
  void drop(void* pkt, DropReason reason) override { dropped.push_back({pkt, reason}); }
  void clear() {
    requests.clear();
    released.clear();
    dropped.clear();
  }
  std::vector<uint32_t> requests;
  std::vector<Released> released;
  std::vector<Dropped> dropped;
};

void* H(uintptr_t i) {
  return reinterpret_cast<void*>(i * 16);
}  // fake packet handles

ArpConfig small_config() {
  ArpConfig c;
  c.reachable_ns = 30 * kSec;
  c.stale_ns = 300 * kSec;
  c.retry_ns = 100 * kMs;
  c.max_requests = 3;
  c.max_entries = 8;
  c.max_pending_per_entry = 4;
  return c;
}

class ArpCacheTest : public ::testing::Test {
 protected:
  ArpConfig cfg = small_config();
  Recorder ev;
  uint64_t now = 1000 * kSec;  // the fake clock
};

TEST_F(ArpCacheTest, FirstUseSendsExactlyOneRequest) {
  ArpCache c(cfg, &ev);
  EXPECT_EQ(c.state(kIp, now), ArpState::kNone);
  MacAddr mac = kMac2;
  EXPECT_EQ(c.resolve(kIp, now, H(1), &mac), ArpLookup::kPending);
  EXPECT_EQ(ev.requests, std::vector<uint32_t>{kIp});
  EXPECT_EQ(c.state(kIp, now), ArpState::kIncomplete);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.requests_sent(), 1u);
  EXPECT_EQ(mac, kMac2);  // untouched unless kHit
  // More packets while resolving: queued, no more requests.
  EXPECT_EQ(c.resolve(kIp, now + kMs, H(2), &mac), ArpLookup::kPending);
  EXPECT_EQ(c.resolve(kIp, now + 2 * kMs, H(3), &mac), ArpLookup::kPending);
  EXPECT_EQ(ev.requests.size(), 1u);
  EXPECT_TRUE(ev.released.empty());
  EXPECT_TRUE(ev.dropped.empty());
}

TEST_F(ArpCacheTest, PureLookupStartsResolution) {
  ArpCache c(cfg, &ev);
  EXPECT_EQ(c.resolve(kIp, now, nullptr, nullptr), ArpLookup::kPending);
  EXPECT_EQ(ev.requests.size(), 1u);
  c.learn(kIp, kMac1, now + kMs, false);
  EXPECT_TRUE(ev.released.empty());  // nothing was queued
  MacAddr mac{};
  EXPECT_EQ(c.resolve(kIp, now + 2 * kMs, nullptr, &mac), ArpLookup::kHit);
  EXPECT_EQ(mac, kMac1);
}

TEST_F(ArpCacheTest, RetriesEveryRetryNs) {
  ArpCache c(cfg, &ev);
  c.resolve(kIp, now, H(1), nullptr);
  c.tick(now + cfg.retry_ns - 1);
  EXPECT_EQ(ev.requests.size(), 1u);
  c.tick(now + cfg.retry_ns);
  EXPECT_EQ(ev.requests.size(), 2u);
  c.tick(now + cfg.retry_ns + 1);  // not again until another retry_ns
  EXPECT_EQ(ev.requests.size(), 2u);
  c.tick(now + 2 * cfg.retry_ns);
  EXPECT_EQ(ev.requests, (std::vector<uint32_t>{kIp, kIp, kIp}));
  EXPECT_EQ(c.requests_sent(), 3u);
  EXPECT_EQ(c.state(kIp, now + 2 * cfg.retry_ns), ArpState::kIncomplete);
  EXPECT_TRUE(ev.dropped.empty());
}

TEST_F(ArpCacheTest, FailsAfterMaxRequestsDroppingEachPacketOnce) {
  ArpCache c(cfg, &ev);
  for (uintptr_t i = 1; i <= 4; ++i) c.resolve(kIp, now, H(i), nullptr);
  uint64_t t = now;
  for (uint32_t k = 1; k < cfg.max_requests; ++k) {
    t += cfg.retry_ns;
    c.tick(t);
    EXPECT_TRUE(ev.dropped.empty());
  }
  EXPECT_EQ(ev.requests.size(), cfg.max_requests);
  c.tick(t + cfg.retry_ns - 1);
  EXPECT_TRUE(ev.dropped.empty());
  c.tick(t + cfg.retry_ns);
  EXPECT_EQ(ev.requests.size(), cfg.max_requests);  // no extra request
  const std::vector<Dropped> want = {{H(1), DropReason::kNoArpEntry},
                                     {H(2), DropReason::kNoArpEntry},
                                     {H(3), DropReason::kNoArpEntry},
                                     {H(4), DropReason::kNoArpEntry}};
  EXPECT_EQ(ev.dropped, want);
  EXPECT_TRUE(ev.released.empty());
  EXPECT_EQ(c.state(kIp, t + cfg.retry_ns), ArpState::kNone);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.resolutions_failed(), 1u);
  // Nothing comes back twice, and the next use starts over.
  c.tick(t + 10 * cfg.retry_ns);
  EXPECT_EQ(ev.dropped.size(), 4u);
  EXPECT_EQ(c.resolve(kIp, t + 10 * cfg.retry_ns, H(5), nullptr), ArpLookup::kPending);
  EXPECT_EQ(ev.requests.size(), cfg.max_requests + 1);
}

TEST_F(ArpCacheTest, LearnReleasesPendingInFifoOrder) {
  ArpCache c(cfg, &ev);
  for (uintptr_t i = 1; i <= 4; ++i) c.resolve(kIp, now + i, H(i), nullptr);
  c.resolve(kIp2, now, H(9), nullptr);               // another neighbour's packet stays queued
  c.learn(kIp, kMac1, now + kMs, /*create=*/false);  // a reply updates the existing entry
  const std::vector<Released> want = {{H(1), kMac1}, {H(2), kMac1}, {H(3), kMac1}, {H(4), kMac1}};
  EXPECT_EQ(ev.released, want);
  EXPECT_TRUE(ev.dropped.empty());
  EXPECT_EQ(c.state(kIp, now + kMs), ArpState::kReachable);
  EXPECT_EQ(c.state(kIp2, now + kMs), ArpState::kIncomplete);
  MacAddr mac{};
  EXPECT_EQ(c.resolve(kIp, now + 2 * kMs, H(5), &mac), ArpLookup::kHit);
  EXPECT_EQ(mac, kMac1);
  EXPECT_EQ(ev.released.size(), 4u);  // a hit does not go through release()
  // No retries for a resolved entry.
  c.tick(now + 10 * cfg.retry_ns);
  EXPECT_EQ(std::count(ev.requests.begin(), ev.requests.end(), kIp), 1);
}

TEST_F(ArpCacheTest, StaleEntryIsUsedAndRefreshedOnce) {
  ArpCache c(cfg, &ev);
  c.learn(kIp, kMac1, now, true);
  EXPECT_TRUE(ev.requests.empty());
  MacAddr mac{};
  EXPECT_EQ(c.resolve(kIp, now + cfg.reachable_ns - 1, nullptr, &mac), ArpLookup::kHit);
  EXPECT_TRUE(ev.requests.empty());
  const uint64_t stale_at = now + cfg.reachable_ns;
  EXPECT_EQ(c.state(kIp, stale_at), ArpState::kStale);
  EXPECT_EQ(c.resolve(kIp, stale_at, H(1), &mac), ArpLookup::kHit);
  EXPECT_EQ(mac, kMac1);
  EXPECT_EQ(ev.requests, std::vector<uint32_t>{kIp});
  for (int i = 1; i <= 10; ++i) {
    EXPECT_EQ(c.resolve(kIp, stale_at + i * kMs, H(1), &mac), ArpLookup::kHit);
  }
  c.tick(stale_at + cfg.retry_ns * 5);  // stale entries are not retried by tick
  EXPECT_EQ(ev.requests.size(), 1u);
  // The answer makes it reachable again, with the new MAC.
  c.learn(kIp, kMac2, stale_at + kSec, false);
  EXPECT_EQ(c.state(kIp, stale_at + kSec), ArpState::kReachable);
  EXPECT_EQ(c.resolve(kIp, stale_at + kSec, nullptr, &mac), ArpLookup::kHit);
  EXPECT_EQ(mac, kMac2);
  EXPECT_EQ(ev.requests.size(), 1u);
  // Stale again later: one more refresh.
  const uint64_t stale2 = stale_at + kSec + cfg.reachable_ns;
  EXPECT_EQ(c.resolve(kIp, stale2, nullptr, &mac), ArpLookup::kHit);
  EXPECT_EQ(c.resolve(kIp, stale2 + 1, nullptr, &mac), ArpLookup::kHit);
  EXPECT_EQ(ev.requests.size(), 2u);
  EXPECT_TRUE(ev.released.empty());
  EXPECT_TRUE(ev.dropped.empty());
}

TEST_F(ArpCacheTest, UnansweredRefreshIsRepeatedAtMostOncePerReachableNs) {
  ArpCache c(cfg, &ev);
  c.learn(kIp, kMac1, now, true);
  const uint64_t stale_at = now + cfg.reachable_ns;
  c.resolve(kIp, stale_at, nullptr, nullptr);
  c.resolve(kIp, stale_at + cfg.reachable_ns - 1, nullptr, nullptr);
  EXPECT_EQ(ev.requests.size(), 1u);
  c.resolve(kIp, stale_at + cfg.reachable_ns, nullptr, nullptr);
  EXPECT_EQ(ev.requests.size(), 2u);
}

TEST_F(ArpCacheTest, UnusedEntriesExpire) {
  ArpCache c(cfg, &ev);
  c.learn(kIp, kMac1, now, true);
  c.learn(kIp2, kMac2, now, true);
  const uint64_t used_at = now + 100 * kSec;
  EXPECT_EQ(c.resolve(kIp, used_at, nullptr, nullptr), ArpLookup::kHit);
  c.tick(now + cfg.stale_ns - 1);
  EXPECT_EQ(c.size(), 2u);
  c.tick(now + cfg.stale_ns);  // kIp2 was never used
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.state(kIp2, now + cfg.stale_ns), ArpState::kNone);
  EXPECT_EQ(c.state(kIp, now + cfg.stale_ns), ArpState::kStale);
  c.tick(used_at + cfg.stale_ns - 1);
  EXPECT_EQ(c.size(), 1u);
  c.tick(used_at + cfg.stale_ns);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.state(kIp, used_at + cfg.stale_ns), ArpState::kNone);
  EXPECT_TRUE(ev.dropped.empty());
  // Forgotten means resolved again from scratch.
  EXPECT_EQ(c.resolve(kIp, used_at + cfg.stale_ns, H(1), nullptr), ArpLookup::kPending);
  EXPECT_EQ(ev.requests.size(), 2u);  // one stale refresh earlier + this one
}

TEST_F(ArpCacheTest, PendingQueueFull) {
  ArpCache c(cfg, &ev);
  for (uintptr_t i = 1; i <= cfg.max_pending_per_entry; ++i) {
    EXPECT_EQ(c.resolve(kIp, now, H(i), nullptr), ArpLookup::kPending);
  }
  EXPECT_EQ(c.resolve(kIp, now, H(100), nullptr), ArpLookup::kDropped);
  EXPECT_EQ(ev.dropped, (std::vector<Dropped>{{H(100), DropReason::kArpQueueFull}}));
  c.learn(kIp, kMac1, now + 1, false);
  ASSERT_EQ(ev.released.size(), cfg.max_pending_per_entry);
  for (uintptr_t i = 1; i <= cfg.max_pending_per_entry; ++i)
    EXPECT_EQ(ev.released[i - 1].pkt, H(i));
}

TEST_F(ArpCacheTest, DefaultQueueHoldsABurstOf200) {
  // A burst to a new neighbour waits whole, as the kernel's unres_qlen keeps it.
  ArpCache c(ArpConfig{}, &ev);
  for (uintptr_t i = 1; i <= 200; ++i)
    ASSERT_EQ(c.resolve(kIp, now, H(i), nullptr), ArpLookup::kPending);
  EXPECT_TRUE(ev.dropped.empty());
  c.learn(kIp, kMac1, now + 1, false);
  ASSERT_EQ(ev.released.size(), 200u);
  for (uintptr_t i = 1; i <= 200; ++i) EXPECT_EQ(ev.released[i - 1].pkt, H(i));
}

TEST_F(ArpCacheTest, PendingPoolIsSharedAndBounded) {
  cfg.max_pending_per_entry = 4;
  cfg.max_pending_total = 6;
  ArpCache c(cfg, &ev);
  for (uintptr_t i = 1; i <= 4; ++i)
    EXPECT_EQ(c.resolve(kIp, now, H(i), nullptr), ArpLookup::kPending);
  EXPECT_EQ(c.resolve(kIp2, now, H(11), nullptr), ArpLookup::kPending);
  EXPECT_EQ(c.resolve(kIp2, now, H(12), nullptr), ArpLookup::kPending);
  // The pool is empty: the other neighbour's fifth packet has no room.
  EXPECT_EQ(c.resolve(kIp2, now, H(13), nullptr), ArpLookup::kDropped);
  EXPECT_EQ(ev.dropped, (std::vector<Dropped>{{H(13), DropReason::kArpQueueFull}}));
  // Resolving the first gives its nodes back to everyone.
  c.learn(kIp, kMac1, now + 1, false);
  EXPECT_EQ(ev.released.size(), 4u);
  EXPECT_EQ(c.resolve(kIp2, now, H(14), nullptr), ArpLookup::kPending);
  EXPECT_EQ(c.resolve(kIp2, now, H(15), nullptr), ArpLookup::kPending);
  EXPECT_EQ(c.resolve(kIp2, now, H(16), nullptr), ArpLookup::kDropped);  // its own 4
  c.learn(kIp2, kMac2, now + 2, false);
  ASSERT_EQ(ev.released.size(), 8u);
  EXPECT_EQ(ev.released[4].pkt, H(11));
  EXPECT_EQ(ev.released[7].pkt, H(15));
}

TEST_F(ArpCacheTest, ZeroLengthQueueDropsButStillResolves) {
  cfg.max_pending_per_entry = 0;
  ArpCache c(cfg, &ev);
  EXPECT_EQ(c.resolve(kIp, now, H(1), nullptr), ArpLookup::kDropped);
  EXPECT_EQ(ev.dropped, (std::vector<Dropped>{{H(1), DropReason::kArpQueueFull}}));
  EXPECT_EQ(ev.requests.size(), 1u);
  EXPECT_EQ(c.state(kIp, now), ArpState::kIncomplete);
}

TEST_F(ArpCacheTest, TableFull) {
  cfg.max_entries = 4;
  ArpCache c(cfg, &ev);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(c.resolve(kIp + i, now, H(i + 1), nullptr), ArpLookup::kPending);
  }
  EXPECT_EQ(c.size(), 4u);
  EXPECT_EQ(c.resolve(kIp + 10, now, H(50), nullptr), ArpLookup::kDropped);
  EXPECT_EQ(ev.dropped, (std::vector<Dropped>{{H(50), DropReason::kArpQueueFull}}));
  EXPECT_EQ(c.resolve(kIp + 11, now, nullptr, nullptr), ArpLookup::kDropped);
  EXPECT_EQ(ev.dropped.size(), 1u);  // no handle, no drop()
  EXPECT_EQ(ev.requests.size(), 4u);
  // Unsolicited bindings do not evict anything either.
  c.learn(kIp + 12, kMac1, now, true);
  EXPECT_EQ(c.state(kIp + 12, now), ArpState::kNone);
  EXPECT_EQ(c.size(), 4u);
  // Existing entries still work.
  c.learn(kIp + 2, kMac2, now, false);
  EXPECT_EQ(ev.released, (std::vector<Released>{{H(3), kMac2}}));
  // Once resolutions fail, the room is usable again.
  for (uint32_t k = 1; k <= cfg.max_requests; ++k) c.tick(now + k * cfg.retry_ns);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.resolutions_failed(), 3u);
  EXPECT_EQ(c.resolve(kIp + 10, now + kSec, H(60), nullptr), ArpLookup::kPending);
}

TEST_F(ArpCacheTest, LearnWithoutCreateOnlyUpdates) {
  ArpCache c(cfg, &ev);
  // An unsolicited reply or a gratuitous ARP from a stranger: ignored.
  c.learn(kIp, kMac1, now, false);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.state(kIp, now), ArpState::kNone);
  // A request addressed to us creates the entry.
  c.learn(kIp, kMac1, now, true);
  EXPECT_EQ(c.state(kIp, now), ArpState::kReachable);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_TRUE(ev.requests.empty());
}

TEST_F(ArpCacheTest, GratuitousArpUpdatesExistingEntry) {
  ArpCache c(cfg, &ev);
  c.learn(kIp, kMac1, now, true);
  const uint64_t later = now + cfg.reachable_ns + kSec;  // stale by now
  EXPECT_EQ(c.state(kIp, later), ArpState::kStale);
  c.learn(kIp, kMac2, later, false);  // failover moved the address
  EXPECT_EQ(c.state(kIp, later), ArpState::kReachable);
  MacAddr mac{};
  EXPECT_EQ(c.resolve(kIp, later, nullptr, &mac), ArpLookup::kHit);
  EXPECT_EQ(mac, kMac2);
  EXPECT_TRUE(ev.requests.empty());  // fresh again, no refresh needed
}

TEST_F(ArpCacheTest, IgnoresBroadcastMulticastAndZeroMacs) {
  ArpCache c(cfg, &ev);
  c.resolve(kIp, now, H(1), nullptr);
  c.learn(kIp, wire::kBroadcastMac, now, true);
  c.learn(kIp, wire::kZeroMac, now, true);
  c.learn(kIp, MacAddr{0x01, 0x00, 0x5e, 0, 0, 1}, now, true);
  EXPECT_EQ(c.state(kIp, now), ArpState::kIncomplete);
  c.learn(0, kMac1, now, true);  // an ARP probe's sender address
  EXPECT_EQ(c.state(0, now), ArpState::kNone);
  EXPECT_TRUE(ev.released.empty());
}

TEST_F(ArpCacheTest, DestructorReturnsPendingPackets) {
  {
    ArpCache c(cfg, &ev);
    c.resolve(kIp, now, H(1), nullptr);
    c.resolve(kIp2, now, H(2), nullptr);
    c.resolve(kIp2, now, H(3), nullptr);
  }
  std::vector<Dropped> got = ev.dropped;
  std::sort(got.begin(), got.end());
  const std::vector<Dropped> want = {{H(1), DropReason::kNoArpEntry},
                                     {H(2), DropReason::kNoArpEntry},
                                     {H(3), DropReason::kNoArpEntry}};
  EXPECT_EQ(got, want);
}

TEST_F(ArpCacheTest, ZeroIpAndCollidingAddressesAreDistinct) {
  cfg.max_entries = 64;
  ArpCache c(cfg, &ev);
  // Key 0 is not an "empty" marker in the table.
  EXPECT_EQ(c.resolve(0, now, nullptr, nullptr), ArpLookup::kPending);
  EXPECT_EQ(c.state(0, now), ArpState::kIncomplete);
  EXPECT_EQ(c.state(1, now), ArpState::kNone);
  EXPECT_EQ(c.size(), 1u);
  for (uint32_t k = 1; k <= cfg.max_requests; ++k) c.tick(now + k * cfg.retry_ns);
  EXPECT_EQ(c.size(), 0u);  // resolution of 0.0.0.0 failed
  // Addresses differing only in the high byte: the hash must still spread them.
  for (uint32_t i = 1; i <= 64; ++i)
    c.learn(i << 24, MacAddr{2, 0, 0, 0, 0, uint8_t(i)}, now, true);
  EXPECT_EQ(c.size(), 64u);
  for (uint32_t i = 1; i <= 64; ++i) {
    MacAddr mac{};
    ASSERT_EQ(c.resolve(i << 24, now, nullptr, &mac), ArpLookup::kHit) << i;
    EXPECT_EQ(mac[5], i);
  }
}

// ---- model-based randomized test -------------------------------------------

// A direct transcription of the documented behaviour with std::map, used to
// check the open-addressing table under churn (insertions, failures, expiry).
class Model {
 public:
  explicit Model(const ArpConfig& c) : cfg_(c) {}

  ArpLookup resolve(uint32_t ip, uint64_t now, void* pkt, MacAddr* mac, Recorder* ev) {
    auto it = m_.find(ip);
    if (it == m_.end()) {
      if (m_.size() >= cfg_.max_entries) {
        if (pkt) ev->drop(pkt, DropReason::kArpQueueFull);
        return ArpLookup::kDropped;
      }
      E& e = m_[ip];
      e.used = now;
      e.requests = 1;
      e.next_retry = now + cfg_.retry_ns;
      ev->send_request(ip);
      if (pkt) return push(e, pkt, ev);
      return ArpLookup::kPending;
    }
    E& e = it->second;
    e.used = now;
    if (!e.resolved) return pkt ? push(e, pkt, ev) : ArpLookup::kPending;
    *mac = e.mac;
    if (now - e.confirmed >= cfg_.reachable_ns &&
        (!e.refresh_sent || now - e.refresh >= cfg_.reachable_ns)) {
      e.refresh_sent = true;
      e.refresh = now;
      ev->send_request(ip);
    }
    return ArpLookup::kHit;
  }

  void learn(uint32_t ip, const MacAddr& mac, uint64_t now, bool create, Recorder* ev) {
    auto it = m_.find(ip);
    if (it == m_.end()) {
      if (!create || m_.size() >= cfg_.max_entries) return;
      m_[ip].used = now;
      it = m_.find(ip);
    }
    E& e = it->second;
    e.resolved = true;
    e.mac = mac;
    e.confirmed = now;
    e.refresh_sent = false;
    for (void* p : e.q) ev->release(p, mac);
    e.q.clear();
  }

  void tick(uint64_t now, Recorder* ev) {
    for (auto it = m_.begin(); it != m_.end();) {
      E& e = it->second;
      if (!e.resolved && now >= e.next_retry) {
        if (e.requests >= cfg_.max_requests) {
          for (void* p : e.q) ev->drop(p, DropReason::kNoArpEntry);
          it = m_.erase(it);
          continue;
        }
        ++e.requests;
        e.next_retry = now + cfg_.retry_ns;
        ev->send_request(it->first);
      } else if (e.resolved && now - e.used >= cfg_.stale_ns) {
        it = m_.erase(it);
        continue;
      }
      ++it;
    }
  }

  ArpState state(uint32_t ip, uint64_t now) const {
    auto it = m_.find(ip);
    if (it == m_.end()) return ArpState::kNone;
    if (!it->second.resolved) return ArpState::kIncomplete;
    return now - it->second.confirmed < cfg_.reachable_ns ? ArpState::kReachable : ArpState::kStale;
  }
  size_t size() const { return m_.size(); }

 private:
  struct E {
    bool resolved = false;
    MacAddr mac{};
    uint64_t confirmed = 0, used = 0, next_retry = 0, refresh = 0;
    uint32_t requests = 0;
    bool refresh_sent = false;
    std::deque<void*> q;
  };
  ArpLookup push(E& e, void* pkt, Recorder* ev) {
    size_t total = 0;
    for (const auto& kv : m_) total += kv.second.q.size();
    if (e.q.size() >= cfg_.max_pending_per_entry || total >= cfg_.max_pending_total) {
      ev->drop(pkt, DropReason::kArpQueueFull);
      return ArpLookup::kDropped;
    }
    e.q.push_back(pkt);
    return ArpLookup::kPending;
  }
  ArpConfig cfg_;
  std::map<uint32_t, E> m_;
};

template <typename T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(ArpCacheRandom, MatchesModelAndReturnsEveryHandleOnce) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    ArpConfig cfg = small_config();
    cfg.max_entries = 1 + rng() % 16;
    cfg.max_pending_per_entry = rng() % 5;
    cfg.max_pending_total = rng() % 12;
    cfg.max_requests = 1 + rng() % 4;
    cfg.reachable_ns = 1000;
    cfg.stale_ns = 5000;
    cfg.retry_ns = 100;
    const uint32_t ip_range = 4 + rng() % 40;
    Recorder ev, mev;
    Model model(cfg);
    std::set<void*> outstanding;
    std::set<void*> returned;
    uint64_t now = 1'000'000;
    uintptr_t next_handle = 1;
    {
      ArpCache c(cfg, &ev);
      for (int step = 0; step < 5000; ++step) {
        ev.clear();
        mev.clear();
        now += rng() % 60;
        const uint32_t ip = 0x0a000000 + rng() % ip_range;
        const uint32_t op = rng() % 10;
        if (op < 5) {
          void* pkt = (rng() % 8 == 0) ? nullptr : H(next_handle++);
          MacAddr a{}, b{};
          const ArpLookup r = c.resolve(ip, now, pkt, &a);
          const ArpLookup mr = model.resolve(ip, now, pkt, &b, &mev);
          ASSERT_EQ(r, mr) << "step " << step;
          if (r == ArpLookup::kHit) {
            ASSERT_EQ(a, b);
          }
          if (pkt != nullptr) {
            if (r == ArpLookup::kPending) outstanding.insert(pkt);
            if (r == ArpLookup::kHit) returned.insert(pkt);  // caller keeps it
          }
        } else if (op < 8) {
          const MacAddr mac = {0x02, 0, 0, 0, uint8_t(rng() % 3), uint8_t(ip)};
          const bool create = rng() % 2;
          c.learn(ip, mac, now, create);
          model.learn(ip, mac, now, create, &mev);
        } else {
          c.tick(now);
          model.tick(now, &mev);
        }
        ASSERT_EQ(sorted(ev.requests), sorted(mev.requests)) << "step " << step;
        ASSERT_EQ(sorted(ev.dropped), sorted(mev.dropped)) << "step " << step;
        ASSERT_EQ(ev.released, mev.released) << "step " << step;  // FIFO per entry
        ASSERT_EQ(c.size(), model.size());
        for (uint32_t i = 0; i < ip_range; ++i) {
          ASSERT_EQ(c.state(0x0a000000 + i, now), model.state(0x0a000000 + i, now))
              << "step " << step << " ip " << i;
        }
        for (const auto& r : ev.released) {
          ASSERT_EQ(outstanding.erase(r.pkt), 1u) << "released twice or never queued";
          ASSERT_TRUE(returned.insert(r.pkt).second);
        }
        for (const auto& d : ev.dropped) {
          outstanding.erase(d.pkt);  // kDropped from resolve() was never outstanding
          ASSERT_TRUE(returned.insert(d.pkt).second) << "handle came back twice";
        }
      }
      ev.clear();
    }
    // Destruction hands back whatever was still waiting.
    for (const auto& d : ev.dropped) {
      ASSERT_EQ(outstanding.erase(d.pkt), 1u);
      ASSERT_TRUE(returned.insert(d.pkt).second);
    }
    EXPECT_TRUE(outstanding.empty());
    // Every non-null handle ever passed to resolve() came back exactly once.
    EXPECT_EQ(returned.size(), next_handle - 1);
  }
}

}  // namespace
}  // namespace machnet::net
