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
#include "socket/stream.h"

namespace machnet::socket {
namespace {

// Engine-side readiness of an offloaded pollfd (lock held).
short engine_revents(Sock* s, short events) {
  if (s->kind != Kind::kUdp) return stream_revents(s, events);
  short r = 0;
  // machnetd is gone: readable (a receive reports ENETDOWN) and in error.
  if (eng().failure() != 0) return static_cast<short>(POLLERR | (events & (POLLIN | POLLRDNORM)));
  // A pending ICMP error: POLLERR, and the receive that follows reports it.
  if (icmp_error_pending(s)) r |= static_cast<short>(POLLERR | (events & (POLLIN | POLLRDNORM)));
  if ((events & (POLLIN | POLLRDNORM)) && eng().udp_pending(s->us) != 0)
    r |= events & (POLLIN | POLLRDNORM);
  if (events & (POLLOUT | POLLWRNORM)) r |= events & (POLLOUT | POLLWRNORM);
  return r;
}

// One look at the engine side of every offloaded entry. *seq: the sum of
// their event sequences at this look (a later wait arms against it, so an
// arrival between the look and the sleep is not lost). no_kernel[i]: the
// entry is a stream connection, whose placeholder fd the kernel must not be
// asked about (an unconnected TCP socket polls POLLOUT|POLLHUP).
int engine_scan(pollfd* fds, nfds_t n, const uint64_t* handles, short* eng_rev, bool* no_kernel,
                uint64_t* seq) {
  stack::Lock lock(mu());
  *seq = 0;
  if (g.stack->down()) return 0;
  g.stack->poll_locked();
  int ready = 0;
  for (nfds_t i = 0; i < n; i++) {
    eng_rev[i] = 0;
    no_kernel[i] = false;
    if (handles[i] == 0) continue;
    Sock* s = live_sock(handles[i]);
    if (s == nullptr) continue;
    no_kernel[i] = s->kind == Kind::kStream;
    eng_rev[i] = engine_revents(s, fds[i].events);
    *seq += rx_seq(s);
    if (eng_rev[i] != 0) ready++;
  }
  return ready;
}

// Hides (and shows again) the fds the kernel must not be asked about:
// poll(2) ignores negative fds.
void hide(pollfd* fds, nfds_t n, const bool* no_kernel) {
  for (nfds_t i = 0; i < n; i++) {
    if (no_kernel[i] && fds[i].fd >= 0) fds[i].fd = -fds[i].fd - 1;
  }
}
void unhide(pollfd* fds, nfds_t n, const bool* no_kernel) {
  for (nfds_t i = 0; i < n; i++) {
    if (no_kernel[i] && fds[i].fd < 0) fds[i].fd = -fds[i].fd - 1;
  }
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
  bool stack_nk[64];
  std::unique_ptr<short[]> heap_eng;
  std::unique_ptr<bool[]> heap_nk;
  short* erev = stack_eng;
  bool* nk = stack_nk;
  if (n > 64) {
    heap_eng.reset(new (std::nothrow) short[n]);
    heap_nk.reset(new (std::nothrow) bool[n]);
    if (!heap_eng || !heap_nk) return -ENOMEM;
    erev = heap_eng.get();
    nk = heap_nk.get();
  }
  uint64_t seq = 0;
  const timespec zero{0, 0};
  auto kernel_check = [&](const timespec* ts, const sigset_t* mask) -> int {
    hide(fds, n, nk);
    int r = g.libc.ppoll(fds, n, ts, mask);
    int saved = errno;
    unhide(fds, n, nk);
    if (r < 0) return -saved;
    return r;
  };
  engine_scan(fds, n, handles, erev, nk, &seq);
  int r = kernel_check(&zero, nullptr);
  if (r < 0) return r;
  int ready = merge(fds, n, erev);
  if (ready > 0 || timeout_ns == 0) return ready;
  int64_t start = now_ns();
  int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
  // poll/select/epoll are never restarted after a handler. A call with a
  // mask of its own (ppoll, pselect, epoll_pwait) spins with every signal
  // blocked: its mask applies only once it sleeps.
  SignalGuard sig;
  sig.begin(sigmask != nullptr);
  SpinSlot spin;
  int64_t spin_end = start + spin.ns();
  // Spin on the engine; look at the kernel fds every few rounds only, so
  // the spin is not one syscall per iteration.
  for (unsigned i = 1; now_ns() < std::min(spin_end, deadline); i++) {
    if (int e = sig.check(true)) return e;
    if (engine_scan(fds, n, handles, erev, nk, &seq) == 0 && (i & 15) != 0) continue;
    r = kernel_check(&zero, nullptr);
    if (r < 0) return r;
    ready = merge(fds, n, erev);
    if (ready > 0) return ready;
  }
  spin.release();
  sig.arm();
  // A handler that ran between the last look and arm().
  if (int e = sig.check(true)) return e;
  const sigset_t* sleep_mask = sigmask != nullptr ? sigmask : &sig.old;
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
    int efd = arm_set(handles, n, &seq);
    if (efd != -EALREADY) {
      int64_t wait = std::min(efd >= 0 ? g.stack->config().wait.sleep_ns : kSliceNs, deadline - t);
      timespec ts{static_cast<time_t>(wait / 1'000'000'000),
                  static_cast<long>(wait % 1'000'000'000)};
      memcpy(sleep_fds, fds, n * sizeof(pollfd));
      hide(sleep_fds, n, nk);
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
    engine_scan(fds, n, handles, erev, nk, &seq);
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
    // Stream sockets: every event of the flow counts for EPOLLET.
    tx_seq[i] = s->kind == Kind::kUdp ? s->tx_count : rx_seq(s);
    if (revents[i] != 0) ready++;
  }
  return ready;
}

}  // namespace machnet::socket
