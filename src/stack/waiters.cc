#include "stack/waiters.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace machnet::stack {
namespace {

struct ThreadWaiter {
  Waiter w;
  ~ThreadWaiter() {
    if (w.efd >= 0) ::close(w.efd);
  }
};
thread_local ThreadWaiter t_waiter;

}  // namespace

Waiter* Waiters::mine() {
  Waiter* w = &t_waiter.w;
  if (w->efd < 0) {
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) return nullptr;
  }
  return w;
}

void Waiters::add(Waiter* w) {
  // Registration is per sleep, not per packet: growing the table here is
  // fine (it is reserved for the common case).
  uint32_t n = count();
  if (n == table_.size()) table_.push_back(nullptr);
  table_[n] = w;
  count_.store(n + 1, std::memory_order_relaxed);
  w->registered = true;
}

void Waiters::remove(Waiter* w) {
  if (!w->registered) return;
  uint32_t n = count();
  for (uint32_t i = 0; i < n; i++) {
    if (table_[i] != w) continue;
    table_[i] = table_[n - 1];
    count_.store(n - 1, std::memory_order_relaxed);
    break;
  }
  w->registered = false;
}

void Waiters::wake(bool all) {
  uint32_t n = count();
  for (uint32_t i = 0; i < n;) {
    Waiter* w = table_[i];
    if (!all && w->seq(*w) == w->baseline) {
      i++;
      continue;
    }
    eventfd_write(w->efd, 1);
    w->woken = true;
    w->registered = false;
    table_[i] = table_[--n];
  }
  count_.store(n, std::memory_order_relaxed);
}

}  // namespace machnet::stack
