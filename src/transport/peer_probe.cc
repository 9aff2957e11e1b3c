#include "transport/peer_probe.h"

namespace machnet {
namespace transport {

PeerCache::PeerCache(uint64_t plain_ttl_ns, uint64_t no_service_ttl_ns, uint64_t machnet_ttl_ns,
                     size_t capacity)
    : plain_ttl_(plain_ttl_ns),
      no_service_ttl_(no_service_ttl_ns),
      machnet_ttl_(machnet_ttl_ns),
      capacity_(capacity) {}

const PeerCache::Entry* PeerCache::find(uint64_t now, uint64_t k) const {
  auto it = map_.find(k);
  if (it == map_.end() || now >= it->second.expires) return nullptr;
  return &it->second;
}

PeerVerdict PeerCache::lookup(uint64_t now, uint32_t ip, uint16_t service) const {
  const Entry* host = find(now, key(ip, 0));
  if (host != nullptr && host->verdict == PeerVerdict::kPlain) return PeerVerdict::kPlain;
  if (service != 0) {
    const Entry* svc = find(now, key(ip, service));
    if (svc != nullptr) return svc->verdict;
  }
  return host != nullptr ? host->verdict : PeerVerdict::kUnknown;
}

bool PeerCache::fresh_machnet(uint64_t now, uint32_t ip) const {
  const Entry* host = find(now, key(ip, 0));
  return host != nullptr && host->verdict == PeerVerdict::kMachnet;
}

void PeerCache::record_machnet(uint64_t now, uint32_t ip) {
  put(now, key(ip, 0), PeerVerdict::kMachnet, machnet_ttl_);
}

void PeerCache::record_plain(uint64_t now, uint32_t ip) {
  put(now, key(ip, 0), PeerVerdict::kPlain, plain_ttl_);
}

void PeerCache::record_no_service(uint64_t now, uint32_t ip, uint16_t service) {
  record_machnet(now, ip);
  if (service != 0) put(now, key(ip, service), PeerVerdict::kNoService, no_service_ttl_);
}

void PeerCache::forget(uint32_t ip) {
  // Rare (tests, administration): a scan is fine.
  for (auto it = map_.begin(); it != map_.end();) {
    if ((it->first >> 16) == ip) {
      it = map_.erase(it);
    } else {
      ++it;
    }
  }
}

void PeerCache::erase(uint64_t k) {
  map_.erase(k);
}

void PeerCache::put(uint64_t now, uint64_t k, PeerVerdict v, uint64_t ttl) {
  if (ttl == 0) {
    // That kind is not remembered, but a stale contrary verdict must go.
    erase(k);
    return;
  }
  if (capacity_ == 0) return;
  uint64_t stamp = next_stamp_++;
  uint64_t expires = now + ttl < now ? kNever : now + ttl;
  auto it = map_.find(k);
  if (it == map_.end()) {
    // Make room: drop the oldest entries (order_ may hold stale pairs for
    // keys refreshed or erased since; they are skipped).
    while (map_.size() >= capacity_ && !order_.empty()) {
      auto old = order_.front();
      order_.pop_front();
      auto o = map_.find(old.first);
      if (o != map_.end() && o->second.stamp == old.second) map_.erase(o);
    }
    map_.emplace(k, Entry{v, expires, stamp});
  } else {
    it->second = Entry{v, expires, stamp};
  }
  order_.emplace_back(k, stamp);
  if (order_.size() > 2 * capacity_ + 16) {
    // Too many stale pairs (one peer refreshed over and over): keep only the
    // live ones, still oldest first.
    std::deque<std::pair<uint64_t, uint64_t>> live;
    for (auto& p : order_) {
      auto o = map_.find(p.first);
      if (o != map_.end() && o->second.stamp == p.second) live.push_back(p);
    }
    order_.swap(live);
  }
}

}  // namespace transport
}  // namespace machnet
