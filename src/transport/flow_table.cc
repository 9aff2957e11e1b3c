#include "transport/flow_table.h"

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
  auto c = counted_half_open_.find(id);
  if (c != counted_half_open_.end()) {
    --half_open_;
    counted_half_open_.erase(c);
  }
  flows_.erase(it);
}

Flow* FlowTable::find_by_syn(const Endpoint& remote, uint32_t peer_id) const {
  auto it = syn_index_.find(SynKey{remote.ip, remote.port, peer_id});
  return it == syn_index_.end() ? nullptr : find(it->second);
}

void FlowTable::refresh(Flow* f) {
  bool ho = f->half_open();
  auto c = counted_half_open_.find(f->id());
  bool counted = c != counted_half_open_.end();
  if (ho && !counted) {
    counted_half_open_.emplace(f->id(), true);
    ++half_open_;
  } else if (!ho && counted) {
    counted_half_open_.erase(c);
    --half_open_;
  }
}

}  // namespace transport
}  // namespace machnet
