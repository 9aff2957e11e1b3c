// Stream connections across fork() (docs/MACHNETD.md, "Connections across
// fork").
//
// A fork child gets a copy of its parent's memory, the flows of its stream
// connections included, but not its lease: it runs a stack of its own. The
// copy is only good if the parent's flow did not move on after the fork, so
// the parent freezes its established connections right before fork()
// (segments for them are dropped unanswered, their timers stop). Afterwards
// exactly one process goes on with each, decided by a compare-and-swap on a
// claim word in a MAP_SHARED page both processes see:
//   - the child claims it at its first use and imports the frozen flow on a
//     UDP port of its own; its first segments tell the peer the new port
//     (path migration, docs/PROTOCOL.md), and the parent's copy becomes a
//     silent tombstone;
//   - the parent claims it back at its first use (a child that exec'd, a
//     BGSAVE-style child that never touches sockets), or after
//     kHandoffWaitNs with nobody claiming;
//   - a parent that closes the socket first leaves it to the child (the
//     accept-fork-close pattern of socat and forking servers); if no child
//     takes it by the deadline, the parent closes it as the last holder.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/log.h"
#include "stack/stack.h"

namespace machnet::stack {

using transport::FlowId;
using transport::FlowState;
using transport::Status;

size_t Stack::handoff_freeze(const FlowId* ids, const uint16_t* ports, size_t n) {
  if (n == 0 || down()) return 0;
  size_t len = (n * sizeof(std::atomic<uint32_t>) + 4095) & ~size_t{4095};
  void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    MN_LOG(ENGINE, WARNING,
           "fork: cannot map the connections' claim page (%s); the child cannot use "
           "inherited stream connections",
           strerror(errno));
    return 0;
  }
  auto* words = static_cast<std::atomic<uint32_t>*>(base);
  uint32_t page = static_cast<uint32_t>(claim_pages_.size());
  claim_pages_.push_back({base, len, 0});
  uint64_t now = now_ns();
  size_t frozen = 0;
  for (size_t i = 0; i < n; i++) {
    if (handoffs_.count(ids[i]) != 0 || tp_->freeze(ids[i]) != Status::kOk) continue;
    std::atomic<uint32_t>* w = new (&words[frozen]) std::atomic<uint32_t>(kClaimOpen);
    Handoff h;
    h.port = ports[i];
    h.claim = w;
    h.page = page;
    h.deadline_ns = now + kHandoffWaitNs;
    handoffs_.emplace(ids[i], h);
    frozen++;
  }
  claim_pages_[page].users = static_cast<uint32_t>(frozen);
  if (frozen == 0) drop_claim_page(page);
  counters_.handoffs_frozen += frozen;
  if (next_handoff_check_ns_ == 0 || next_handoff_check_ns_ > now + kHandoffCheckNs)
    next_handoff_check_ns_ = now + kHandoffCheckNs;
  return frozen;
}

std::atomic<uint32_t>* Stack::handoff_claim(FlowId id) const {
  auto it = handoffs_.find(id);
  if (it == handoffs_.end() || it->second.moved) return nullptr;
  return it->second.claim;
}

void Stack::drop_claim_page(uint32_t page) {
  ClaimPage& p = claim_pages_[page];
  if (p.users > 0) p.users--;
  if (p.users == 0 && p.base != nullptr) {
    munmap(p.base, p.len);
    p.base = nullptr;
  }
  // Trailing pages nobody uses any more are forgotten (indexes stay stable).
  while (!claim_pages_.empty() && claim_pages_.back().base == nullptr) claim_pages_.pop_back();
}

// A child took the connection: the flow here stops for good (segments for
// it are dropped while the peer learns the child's port); its port is let
// go once the transport has destroyed it.
void Stack::retire_handoff(uint64_t now, FlowId id, Handoff* h) {
  tp_->retire(now, id, kHandoffTombstoneNs);
  unroute_flow(id);
  release_flow_port(id, h->port);
  drop_claim_page(h->page);
  counters_.handoffs_to_child++;
}

int Stack::handoff_take(FlowId id) {
  auto it = handoffs_.find(id);
  if (it == handoffs_.end()) return 0;
  Handoff& h = it->second;
  if (h.moved) {
    handoffs_.erase(it);
    return -EBADFD;
  }
  uint64_t now = now_ns();
  uint32_t v = kClaimOpen;
  if (h.claim->compare_exchange_strong(v, kClaimParent)) {
    tp_->thaw(now, id);
    drop_claim_page(h.page);
    handoffs_.erase(it);
    counters_.handoffs_kept++;
    return 0;
  }
  retire_handoff(now, id, &h);
  handoffs_.erase(it);
  return -EBADFD;
}

bool Stack::handoff_release(FlowId id, uint16_t port) {
  auto it = handoffs_.find(id);
  if (it == handoffs_.end()) return false;
  Handoff& h = it->second;
  h.port = port;
  if (h.moved) {
    handoffs_.erase(it);
    return true;
  }
  uint64_t now = now_ns();
  uint32_t v = kClaimOpen;
  if (h.claim->compare_exchange_strong(v, kClaimReleased)) {
    // The child may still take it: it stays frozen until then, or until
    // the deadline, when this process closes it as the last holder.
    h.released = true;
    h.deadline_ns = now + kHandoffWaitNs;
    unroute_flow(id);
    return true;
  }
  retire_handoff(now, id, &h);
  handoffs_.erase(it);
  return true;
}

void Stack::check_handoffs(uint64_t now) {
  next_handoff_check_ns_ = handoffs_.empty() ? 0 : now + kHandoffCheckNs;
  for (auto it = handoffs_.begin(); it != handoffs_.end();) {
    FlowId id = it->first;
    Handoff& h = it->second;
    if (h.moved) {
      ++it;
      continue;
    }
    uint32_t v = h.claim->load(std::memory_order_acquire);
    if (v == kClaimChild) {
      retire_handoff(now, id, &h);
      if (h.released) {
        it = handoffs_.erase(it);
      } else {
        // The socket learns it at its next call (EBADFD there).
        h.moved = true;
        if (auto t = flow_targets_.find(id); t != flow_targets_.end()) t->second->seq++;
        ++it;
      }
      continue;
    }
    if (now < h.deadline_ns) {
      ++it;
      continue;
    }
    uint32_t want = h.released ? kClaimReleased : kClaimOpen;
    if (!h.claim->compare_exchange_strong(want, kClaimParent)) {
      ++it;  // a child claimed it just now: retired next round
      continue;
    }
    tp_->thaw(now, id);
    drop_claim_page(h.page);
    counters_.handoffs_kept++;
    if (h.released) {
      // Nobody took it: this process was the last holder. As a close would
      // have: FIN after what is queued, or a reset when data went unread.
      bool reset = tp_->readable_bytes(id) != 0;
      uint16_t port = h.port;
      it = handoffs_.erase(it);
      stream_release(id, port, reset);
    } else {
      it = handoffs_.erase(it);
    }
  }
}

int Stack::handoff_adopt(const transport::Flow& snapshot, std::atomic<uint32_t>* claim,
                         bool closing, EventTarget* t, FlowId* id, uint16_t* port) {
  if (down()) return -ENETDOWN;
  uint32_t v = claim->load(std::memory_order_acquire);
  if (closing && v != kClaimReleased) return -EBADFD;  // the parent still holds it
  if ((v != kClaimOpen && v != kClaimReleased) || !claim->compare_exchange_strong(v, kClaimChild))
    return -EBADFD;
  uint16_t p = 0;
  int rc = acquire_port(0, &p);
  if (rc != 0) {
    MN_LOG(ENGINE, WARNING,
           "fork child: no transport port for an inherited connection (%s); it is lost",
           strerror(-rc));
    return -EBADFD;
  }
  FlowId f = 0;
  Status st = tp_->adopt(now_ns(), snapshot, p, &f);
  if (st != Status::kOk) {
    unref_port(p);
    MN_LOG(ENGINE, WARNING,
           "fork child: the transport refused an inherited connection (%s); it is lost",
           transport::status_string(st));
    return -EBADFD;
  }
  route_flow(f, t);
  counters_.handoffs_adopted++;
  *id = f;
  *port = p;
  return 0;
}

}  // namespace machnet::stack
