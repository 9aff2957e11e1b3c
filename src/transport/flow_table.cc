#include "transport/flow_table.h"

#include <iterator>

namespace machnet {
namespace transport {

FlowTable::FlowTable(const Tunables& t) : t_(t) {}

Flow* FlowTable::find(FlowId id) const {
  auto it = flows_.find(id);
  return it == flows_.end() ? nullptr : it->second.get();
}

FlowId FlowTable::allocate_id(Rng* rng) const {
  for (;;) {
    FlowId id = rng->next32();
    if (id != 0 && flows_.find(id) == flows_.end()) return id;
  }
}

void FlowTable::insert(std::unique_ptr<Flow> f) {
  Flow* p = f.get();
  flows_.emplace(p->id(), std::move(f));
  // Kept for the flow's lifetime: a late duplicate SYN must find this flow
  // (and be ignored) rather than open a second connection.
  if (p->passive) syn_index_[SynKey{p->remote().ip, p->remote().port, p->peer_id()}] = p->id();
  refresh(p);
}

void FlowTable::erase(FlowId id) {
  auto it = flows_.find(id);
  if (it == flows_.end()) return;
  Flow* p = it->second.get();
  if (p->passive) {
    auto s = syn_index_.find(SynKey{p->remote().ip, p->remote().port, p->peer_id()});
    if (s != syn_index_.end() && s->second == id) syn_index_.erase(s);
  }
  auto c = half_open_pos_.find(id);
  if (c != half_open_pos_.end()) {
    half_open_order_.erase(c->second);
    half_open_pos_.erase(c);
  }
  unindex_connecting(id);
  flows_.erase(it);
}

void FlowTable::unindex_connecting(FlowId id) {
  auto c = connecting_.find(id);
  if (c == connecting_.end()) return;
  auto range = connecting_by_ip_.equal_range(c->second);
  for (auto i = range.first; i != range.second; ++i) {
    if (i->second == id) {
      connecting_by_ip_.erase(i);
      break;
    }
  }
  connecting_.erase(c);
}

Flow* FlowTable::oldest_half_open() const {
  return half_open_order_.empty() ? nullptr : find(half_open_order_.front());
}

std::vector<FlowId> FlowTable::connecting_to(uint32_t ip) const {
  std::vector<FlowId> out;
  auto range = connecting_by_ip_.equal_range(ip);
  for (auto i = range.first; i != range.second; ++i) out.push_back(i->second);
  return out;
}

Flow* FlowTable::find_by_syn(const Endpoint& remote, uint32_t peer_id) const {
  auto it = syn_index_.find(SynKey{remote.ip, remote.port, peer_id});
  return it == syn_index_.end() ? nullptr : find(it->second);
}

void FlowTable::remote_changed(Flow* f, const Endpoint& old_remote) {
  if (!f->passive) return;
  auto s = syn_index_.find(SynKey{old_remote.ip, old_remote.port, f->peer_id()});
  if (s != syn_index_.end() && s->second == f->id()) syn_index_.erase(s);
  syn_index_[SynKey{f->remote().ip, f->remote().port, f->peer_id()}] = f->id();
}

void FlowTable::refresh(Flow* f) {
  // Called after every event: the flags on the flow avoid hash lookups in
  // the common case (an established flow, in neither index).
  const bool ho = f->half_open();
  if (ho != f->in_half_open_index) {
    if (ho) {
      half_open_order_.push_back(f->id());
      half_open_pos_.emplace(f->id(), std::prev(half_open_order_.end()));
    } else {
      auto c = half_open_pos_.find(f->id());
      half_open_order_.erase(c->second);
      half_open_pos_.erase(c);
    }
    f->in_half_open_index = ho;
  }
  const bool conn = f->state() == FlowState::kSynSent;
  if (conn != f->in_connecting_index) {
    if (conn) {
      connecting_.emplace(f->id(), f->remote().ip);
      connecting_by_ip_.emplace(f->remote().ip, f->id());
    } else {
      unindex_connecting(f->id());
    }
    f->in_connecting_index = conn;
  }
}

}  // namespace transport
}  // namespace machnet
