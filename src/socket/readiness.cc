// Readiness of offloaded sockets for poll/select and the shim's epoll:
// the engine side of each offloaded fd, merged with the kernel's answer for
// the rest (and for the twins), spinning then sleeping like every blocking
// call (wait.cc).
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <new>

#include "socket/socket_internal.h"
#include "socket/socket_layer.h"

namespace machnet::socket {
namespace {

// Engine-side readiness of an offloaded pollfd (lock held).
short engine_revents(Sock* s, short events) {
  short r = 0;
  // machnetd is gone: readable (a receive reports ENETDOWN) and in error.
  if (eng().failure() != 0) return static_cast<short>(POLLERR | (events & (POLLIN | POLLRDNORM)));
  // A pending ICMP error: POLLERR, and the receive that follows reports it.
  if (icmp_error_pending(s)) r |= static_cast<short>(POLLERR | (events & (POLLIN | POLLRDNORM)));
  if ((events & (POLLIN | POLLRDNORM)) && (s->has_stash || eng().udp_pending(s->us) != 0))
    r |= events & (POLLIN | POLLRDNORM);
  if (events & (POLLOUT | POLLWRNORM)) r |= events & (POLLOUT | POLLWRNORM);
  return r;
}

int engine_scan(pollfd* fds, nfds_t n, const uint64_t* handles, short* eng_rev) {
  stack::Lock lock(mu());
  if (g.stack->down()) return 0;
  g.stack->poll_locked();
  int ready = 0;
  for (nfds_t i = 0; i < n; i++) {
    eng_rev[i] = 0;
    if (handles[i] == 0) continue;
    Sock* s = slot_ptr(handle_slot(handles[i]));
    // Under the lock a socket whose generation still matches cannot be finalized.
    if (s == nullptr || static_cast<uint32_t>(s->state.load() >> 32) != handle_gen(handles[i]))
      continue;
    eng_rev[i] = engine_revents(s, fds[i].events);
    if (eng_rev[i] != 0) ready++;
  }
  return ready;
}

int merge(pollfd* fds, nfds_t n, const short* eng_rev) {
  int ready = 0;
  for (nfds_t i = 0; i < n; i++) {
    fds[i].revents |= eng_rev[i];
    if (fds[i].revents != 0) ready++;
  }
  return ready;
}

}  // namespace

int op_poll(pollfd* fds, nfds_t n, const uint64_t* handles, int64_t timeout_ns,
            const sigset_t* sigmask) {
  // Engine readiness per entry; on the stack for the usual handful of fds.
  short stack_eng[64];
  std::unique_ptr<short[]> heap_eng;
  short* erev = stack_eng;
  if (n > 64) {
    heap_eng.reset(new (std::nothrow) short[n]);
    if (!heap_eng) return -ENOMEM;
    erev = heap_eng.get();
  }
  const timespec zero{0, 0};
  auto kernel_check = [&](const timespec* ts, const sigset_t* mask) -> int {
    int r = g.libc.ppoll(fds, n, ts, mask);
    if (r < 0) return -errno;
    return r;
  };
  engine_scan(fds, n, handles, erev);
  int r = kernel_check(&zero, nullptr);
  if (r < 0) return r;
  int ready = merge(fds, n, erev);
  if (ready > 0 || timeout_ns == 0) return ready;
  int64_t start = now_ns();
  int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
  SignalGuard sig;
  sig.arm();
  const sigset_t* sleep_mask = sigmask != nullptr ? sigmask : &sig.old;
  int64_t spin_end = start + g.stack->config().wait.spin_ns;
  // Spin on the engine; look at the kernel fds every few rounds only, so
  // the spin is not one syscall per iteration.
  for (unsigned i = 1; now_ns() < std::min(spin_end, deadline); i++) {
    if (engine_scan(fds, n, handles, erev) == 0 && (i & 15) != 0) continue;
    r = kernel_check(&zero, nullptr);
    if (r < 0) return r;
    ready = merge(fds, n, erev);
    if (ready > 0) return ready;
  }
  // The sleep polls the caller's fds plus this thread's wake-up eventfd.
  pollfd stack_sleep[65];
  std::unique_ptr<pollfd[]> heap_sleep;
  pollfd* sleep_fds = stack_sleep;
  if (n + 1 > 65) {
    heap_sleep.reset(new (std::nothrow) pollfd[n + 1]);
    if (!heap_sleep) return -ENOMEM;
    sleep_fds = heap_sleep.get();
  }
  for (;;) {
    int64_t t = now_ns();
    if (t >= deadline) {
      // Report what the last look saw (nothing), as the kernel would.
      for (nfds_t i = 0; i < n; i++) fds[i].revents = 0;
      return 0;
    }
    int efd = arm_set(handles, n, nullptr);
    if (efd != -EALREADY) {
      int64_t wait = std::min(efd >= 0 ? g.stack->config().wait.sleep_ns : kSliceNs, deadline - t);
      timespec ts{static_cast<time_t>(wait / 1'000'000'000),
                  static_cast<long>(wait % 1'000'000'000)};
      memcpy(sleep_fds, fds, n * sizeof(pollfd));
      sleep_fds[n] = pollfd{efd, POLLIN, 0};
      r = g.libc.ppoll(sleep_fds, efd >= 0 ? n + 1 : n, &ts, sleep_mask);
      int saved = errno;
      if (efd >= 0) disarm();
      if (r < 0) return -saved;
      for (nfds_t i = 0; i < n; i++) fds[i].revents = sleep_fds[i].revents;
    } else {
      r = kernel_check(&zero, nullptr);
      if (r < 0) return r;
    }
    engine_scan(fds, n, handles, erev);
    ready = merge(fds, n, erev);
    if (ready > 0) return ready;
  }
}

int op_ready(const uint64_t* handles, const short* events, short* revents, size_t n) {
  stack::Lock lock(mu());
  if (g.stack->down()) return 0;
  g.stack->poll_locked();
  int ready = 0;
  for (size_t i = 0; i < n; i++) {
    revents[i] = 0;
    Sock* s = slot_ptr(handle_slot(handles[i]));
    if (s == nullptr || static_cast<uint32_t>(s->state.load() >> 32) != handle_gen(handles[i]))
      continue;
    revents[i] = engine_revents(s, events[i]);
    if (revents[i] != 0) ready++;
  }
  return ready;
}

// op_ready plus, per socket, counters that move on every arrival and every
// send through the engine (epoll's edge-triggered mode in the shim).
int op_ready_seq(const uint64_t* handles, const short* events, short* revents, uint64_t* rx_seqs,
                 uint64_t* tx_seq, size_t n) {
  stack::Lock lock(mu());
  if (g.stack->down()) {
    for (size_t i = 0; i < n; i++) revents[i] = 0, rx_seqs[i] = tx_seq[i] = 0;
    return 0;
  }
  g.stack->poll_locked();
  int ready = 0;
  for (size_t i = 0; i < n; i++) {
    revents[i] = 0;
    rx_seqs[i] = tx_seq[i] = 0;
    Sock* s = slot_ptr(handle_slot(handles[i]));
    if (s == nullptr || static_cast<uint32_t>(s->state.load() >> 32) != handle_gen(handles[i]))
      continue;
    revents[i] = engine_revents(s, events[i]);
    rx_seqs[i] = rx_seq(s);
    tx_seq[i] = s->tx_count;
    if (revents[i] != 0) ready++;
  }
  return ready;
}

}  // namespace machnet::socket
