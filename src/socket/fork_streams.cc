// Stream connections inherited through fork() (docs/MACHNETD.md,
// "Connections across fork"): the socket layer's side. The parent freezes
// its connections right before fork(); each socket settles the hand-off at
// its next call, in whichever process makes it (Stack::handoff_*).
#include <atomic>
#include <cerrno>
#include <vector>

#include "engine/log.h"
#include "socket/socket_internal.h"
#include "socket/stream.h"

namespace machnet::socket {

using transport::FlowState;

namespace {

bool movable(FlowState st) {
  return st == FlowState::kEstablished || st == FlowState::kFinWait ||
         st == FlowState::kCloseWait || st == FlowState::kClosing;
}

void say_moved(const Sock* s) {
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    MN_LOG(ENGINE, WARNING,
           "a stream connection inherited through fork() went on in another process (the first "
           "to use it takes it); here its calls fail with EBADFD (port %u)",
           s->local_port);
}

}  // namespace

void op_fork_prepare() {
  if (g.stack == nullptr || g.stack->down() || !g.stack->engine().attached()) return;
  stack::Lock lock(mu());
  std::vector<transport::FlowId> ids;
  std::vector<uint16_t> ports;
  std::vector<Sock*> socks;
  transport::Transport& tp = g.stack->transport();
  for (uint32_t slot = 0; slot < g.next_slot; slot++) {
    Sock* s = slot_ptr(slot);
    if (s == nullptr || s->kind != Kind::kStream || s->fd_refs <= 0 || s->flow == 0) continue;
    if (s->connecting || s->fallback || s->moved || s->handoff) continue;
    if (!movable(tp.state(s->flow)) || tp.frozen(s->flow)) continue;
    ids.push_back(s->flow);
    ports.push_back(s->tp_port);
    socks.push_back(s);
  }
  if (ids.empty()) return;
  g.stack->handoff_freeze(ids.data(), ports.data(), ids.size());
  for (Sock* s : socks) s->handoff = g.stack->handoff_claim(s->flow) != nullptr;
}

void fork_child_keep_stream(Sock* s, stack::Stack* parent) {
  std::atomic<uint32_t>* claim = s->handoff ? parent->handoff_claim(s->flow) : nullptr;
  if (claim == nullptr) {
    // Connecting, fallen back, or not frozen at this fork: the parent's.
    s->handoff = false;
    s->moved = s->flow != 0;
    s->flow = 0;
    s->tp_port = 0;
    return;
  }
  s->handoff_claim = claim;
  s->handoff_snapshot = parent->transport().find_flow(s->flow);
  if (s->handoff_snapshot == nullptr) {
    s->handoff = false;
    s->moved = true;
  }
  s->tp_port = 0;  // the parent's port; the child runs the flow on its own
}

void settle_handoff(Sock* s, bool closing) {
  if (!s->handoff) return;
  int rc;
  if (s->handoff_snapshot != nullptr) {
    rc = g.stack->handoff_adopt(*s->handoff_snapshot, s->handoff_claim, closing, &s->ev, &s->flow,
                                &s->tp_port);
    if (rc != 0 && closing) {
      // Closed unused while the parent holds it: nothing to do here.
      s->handoff = false;
      s->flow = 0;
      return;
    }
  } else {
    rc = g.stack->handoff_take(s->flow);
  }
  s->handoff = false;
  s->handoff_claim = nullptr;
  s->handoff_snapshot = nullptr;
  if (rc != 0) {
    s->moved = true;
    s->flow = 0;
    s->tp_port = 0;
    if (!closing) say_moved(s);
  }
}

}  // namespace machnet::socket
