// Demultiplexing: flows are found by our connection id (the dst_conn field),
// not by the 4-tuple, so many flows can share one local UDP port and the
// engine's steering only has to look at the port. Bounds the number of flows
// and of half-open (SYN_RECEIVED) flows, keeps the half-open ones in arrival
// order (eviction under a SYN flood) and indexes connecting (SYN_SENT) flows
// by peer address (ICMP and probe verdicts find theirs without a scan).
#pragma once

#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "transport/flow.h"

namespace machnet {
namespace transport {

class FlowTable {
 public:
  explicit FlowTable(const Tunables& t);

  Flow* find(FlowId id) const;
  // Random, non-zero, unused id (ids double as the anti-spoofing token).
  FlowId allocate_id(Rng* rng) const;
  void insert(std::unique_ptr<Flow> f);
  void erase(FlowId id);

  // Retransmitted SYNs find their half-open flow by (peer endpoint, peer id).
  Flow* find_by_syn(const Endpoint& remote, uint32_t peer_id) const;

  // Re-derives the half-open and connecting indexes after an event changed a
  // flow's state.
  void refresh(Flow* f);
  // The flow's remote endpoint changed from `old_remote` (path migration):
  // re-keys the duplicate-SYN index.
  void remote_changed(Flow* f, const Endpoint& old_remote);

  // The half-open flow that has waited longest, or nullptr.
  Flow* oldest_half_open() const;
  // Ids of the SYN_SENT flows to `ip` (a copy: callers may change states).
  std::vector<FlowId> connecting_to(uint32_t ip) const;

  size_t size() const { return flows_.size(); }
  size_t half_open() const { return half_open_order_.size(); }
  bool full() const { return flows_.size() >= t_.max_flows; }
  bool half_open_full() const { return half_open() >= t_.max_half_open; }

  template <class Fn>
  void for_each(Fn fn) const {
    for (auto& kv : flows_) fn(kv.second.get());
  }

 private:
  struct SynKey {
    uint32_t ip;
    uint16_t port;
    uint32_t id;
    bool operator==(const SynKey& o) const { return ip == o.ip && port == o.port && id == o.id; }
  };
  struct SynKeyHash {
    size_t operator()(const SynKey& k) const {
      return std::hash<uint64_t>()((uint64_t{k.ip} << 32) ^ (uint64_t{k.port} << 16) ^
                                   (uint64_t{k.id} * 0x9e3779b97f4a7c15ull));
    }
  };

  void unindex_connecting(FlowId id);

  const Tunables& t_;
  std::unordered_map<FlowId, std::unique_ptr<Flow>> flows_;
  std::list<FlowId> half_open_order_;  // oldest first
  std::unordered_map<FlowId, std::list<FlowId>::iterator> half_open_pos_;
  std::unordered_multimap<uint32_t, FlowId> connecting_by_ip_;
  std::unordered_map<FlowId, uint32_t> connecting_;  // id -> ip indexed under
  std::unordered_map<SynKey, FlowId, SynKeyHash> syn_index_;
};

}  // namespace transport
}  // namespace machnet
