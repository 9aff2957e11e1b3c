/* poll, ppoll, select and pselect. A set with no offloaded fd goes to the
 * kernel untouched; one with an offloaded fd goes to the socket layer's
 * poll (spin, then sleep on the twins and an eventfd); one with sockets not
 * decided yet waits in slices until one is offloaded. select and pselect
 * become a poll over the same fds when an offloaded fd is in them. */
#include "shim.h"

#include <stdlib.h>

/* poll over kernel fds and sockets not decided yet: in slices, until one of
 * them is offloaded (then the engine path) or none is pending any more. */
static int poll_pending(struct pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* mask) {
  int64_t deadline = timeout_ns < 0 ? INT64_MAX : mono_ns() + timeout_ns;
  for (;;) {
    int64_t left = deadline == INT64_MAX ? PENDING_SLICE_NS * 2 : deadline - mono_ns();
    if (left < 0) left = 0;
    int64_t w = left > PENDING_SLICE_NS ? PENDING_SLICE_NS : left;
    struct timespec ts = {w / 1000000000, w % 1000000000};
    int r = REAL(ppoll)(fds, n, &ts, mask);
    if (r != 0 || left <= PENDING_SLICE_NS) return r;
    int still = 0, off = 0;
    for (nfds_t i = 0; i < n; i++) {
      uint32_t k = kind_of(fds[i].fd);
      off |= k == KIND_OFFLOAD;
      still |= k == KIND_PENDING;
    }
    if (off || !still || !may_offload()) {
      int64_t rest = deadline == INT64_MAX ? -1 : deadline - mono_ns();
      if (deadline != INT64_MAX && rest < 0) rest = 0;
      struct timespec rt = {rest / 1000000000, rest % 1000000000};
      return poll_common(fds, n, rest, mask, rest < 0 ? NULL : &rt, 1, 0);
    }
  }
}

/* A fork child polling an inherited offloaded UDP socket or stream listener
 * takes them over (fork_adopt); if it cannot, they are polled as kernel
 * fds, as before. */
static void fork_adopt_any(struct pollfd* fds, nfds_t n) {
  for (nfds_t i = 0; i < n; i++) {
    if (fork_adoptable(lookup(fds[i].fd))) {
      fork_adopt();
      return;
    }
  }
}

int poll_common(struct pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* mask,
                const struct timespec* ts, int via_ppoll, int timeout_ms) {
  nfds_t first = n;
  int pending = 0;
  if (!g_guard && atomic_load_explicit(&g_forked_child, memory_order_relaxed))
    fork_adopt_any(fds, n);
  if (!g_guard && !atomic_load_explicit(&g_forked_child, memory_order_relaxed)) {
    for (nfds_t i = 0; i < n; i++) {
      uint32_t k = kind_of(fds[i].fd);
      if (k == KIND_OFFLOAD) {
        first = i;
        break;
      }
      pending |= k == KIND_PENDING;
    }
  }
  if (first == n) {
    if (pending && timeout_ns != 0 && may_offload()) return poll_pending(fds, n, timeout_ns, mask);
    return via_ppoll ? REAL(ppoll)(fds, n, ts, mask) : REAL(poll)(fds, n, timeout_ms);
  }
  close_deferred(); /* a program's offloaded socket (see offloaded) */
  /* The handles beside the fds (0: a kernel fd), in this thread's scratch
   * memory: no allocation per call once warm. */
  uint64_t* h = scratch(SCRATCH_POLL, n * sizeof(*h));
  if (h == NULL) return set_errno(-ENOMEM);
  for (nfds_t i = 0; i < n; i++) {
    struct fd_ent* e = i < first ? NULL : lookup(fds[i].fd);
    h[i] = (e != NULL && atomic_load(&e->kind) == KIND_OFFLOAD) ? atomic_load(&e->handle) : 0;
  }
  int64_t start = timeout_ns > 0 ? mono_ns() : 0;
  g_guard++;
  int rc = g_ops->poll(fds, n, h, timeout_ns, mask);
  g_guard--;
  if (rc < 0) return set_errno(rc);
  /* Stream connects that fell back to the kernel's TCP: move them, then
   * look again with what is left of the timeout. */
  int moved = 0;
  for (nfds_t i = first; i < n && rc > 0; i++) {
    if (!(fds[i].revents & MACHNET_POLL_FALLBACK)) continue;
    struct fd_ent* e = lookup(fds[i].fd);
    if (e != NULL && atomic_load(&e->kind) == KIND_OFFLOAD) stream_fallback(fds[i].fd, e);
    fds[i].revents = 0;
    moved = 1;
  }
  if (!moved) return rc;
  int64_t left = timeout_ns;
  if (timeout_ns > 0) {
    left = timeout_ns - (mono_ns() - start);
    if (left < 0) left = 0;
  }
  struct timespec lt = {left / 1000000000, left % 1000000000};
  return poll_common(fds, n, left, mask, left < 0 ? NULL : &lt, 1, 0);
}

EXPORT int poll(struct pollfd* fds, nfds_t n, int timeout) {
  return poll_common(fds, n, timeout < 0 ? -1 : (int64_t)timeout * 1000000, NULL, NULL, 0, timeout);
}

EXPORT int __poll_chk(struct pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  if (fdslen / sizeof(*fds) < n) abort();
  return poll(fds, n, timeout);
}

EXPORT int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* ts, const sigset_t* mask) {
  return poll_common(fds, n, ts_to_ns(ts), mask, ts, 1, 0);
}

/* True when select/pselect must go through the engine: an offloaded (or
 * about to be offloaded) fd is in the read or write set. */
static int select_needs_engine(int nfds, fd_set* r, fd_set* w) {
  if (!g_guard && atomic_load(&g_forked_child) && nfds > 0 && nfds <= FD_SETSIZE) {
    for (int fd = 0; fd < nfds; fd++) {
      struct fd_ent* e = lookup(fd);
      if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w))) && fork_adoptable(e)) {
        fork_adopt();
        break;
      }
    }
  }
  if (g_guard || atomic_load(&g_forked_child) || nfds <= 0 || nfds > FD_SETSIZE) return 0;
  for (int fd = 0; fd < nfds; fd++) {
    if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w))) {
      uint32_t k = kind_of(fd);
      if (k == KIND_OFFLOAD || (k == KIND_PENDING && may_offload())) return 1;
    }
  }
  return 0;
}

/* select and pselect over offloaded fds: rewritten as a poll (FD_SETSIZE
 * bound); mask is pselect's signal mask (NULL for select). */
static int select_via_poll(int nfds, fd_set* r, fd_set* w, fd_set* x, int64_t timeout_ns,
                           const struct timespec* ts, const sigset_t* mask) {
  /* nfds <= FD_SETSIZE: 8 KiB at most, on the stack (no allocation per call). */
  struct pollfd p[FD_SETSIZE];
  nfds_t n = 0;
  for (int fd = 0; fd < nfds; fd++) {
    short ev = 0;
    if (r && FD_ISSET(fd, r)) ev |= POLLIN;
    if (w && FD_ISSET(fd, w)) ev |= POLLOUT;
    if (x && FD_ISSET(fd, x)) ev |= POLLPRI;
    if (ev) p[n++] = (struct pollfd){fd, ev, 0};
  }
  int rc = poll_common(p, n, timeout_ns, mask, ts, 1, 0);
  if (rc < 0) return -1;
  if (r) FD_ZERO(r);
  if (w) FD_ZERO(w);
  if (x) FD_ZERO(x);
  int count = 0;
  for (nfds_t i = 0; i < n; i++) {
    if (p[i].revents & POLLNVAL) return set_errno(-EBADF);
    if (r && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
      FD_SET(p[i].fd, r);
      count++;
    }
    if (w && (p[i].revents & (POLLOUT | POLLERR))) {
      FD_SET(p[i].fd, w);
      count++;
    }
    if (x && (p[i].revents & POLLPRI)) {
      FD_SET(p[i].fd, x);
      count++;
    }
  }
  return count;
}

EXPORT int select(int nfds, fd_set* r, fd_set* w, fd_set* x, struct timeval* tv) {
  if (!select_needs_engine(nfds, r, w)) return REAL(select)(nfds, r, w, x, tv);
  int64_t t = tv == NULL ? -1 : tv_to_ns(tv);
  struct timespec sts = {tv ? tv->tv_sec : 0, tv ? tv->tv_usec * 1000 : 0};
  int rc = select_via_poll(nfds, r, w, x, t, tv ? &sts : NULL, NULL);
  if (rc >= 0 && tv) tv->tv_sec = 0, tv->tv_usec = 0; /* Linux reports time left: not tracked */
  return rc;
}

EXPORT int pselect(int nfds, fd_set* r, fd_set* w, fd_set* x, const struct timespec* ts,
                   const sigset_t* mask) {
  if (!select_needs_engine(nfds, r, w)) return REAL(pselect)(nfds, r, w, x, ts, mask);
  return select_via_poll(nfds, r, w, x, ts_to_ns(ts), ts, mask);
}
