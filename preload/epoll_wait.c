/* epoll_wait, epoll_pwait, epoll_pwait2. An epoll set with no member the
 * kernel cannot see goes to the kernel untouched. Otherwise the shim adds
 * its members' engine-side readiness to the kernel's events:
 *   - level-triggered: reported while ready;
 *   - EPOLLET: reported when ready and something happened since the last
 *     report (a datagram arrived through the engine, for EPOLLOUT one was
 *     sent, or EPOLL_CTL_ADD/MOD), with every ready bit, as the kernel
 *     does; a nested epoll fd once per change from not ready to ready;
 *   - EPOLLONESHOT: disarmed after one report, from the engine or from the
 *     kernel, until EPOLL_CTL_MOD (the twin is disarmed in the kernel too).
 * A wait spins on the engine for socket.spin_us, then sleeps on the epoll
 * fd and on an eventfd the engine side writes when a datagram reaches a
 * member. The kernel half of a wait uses epoll_pwait (whole milliseconds);
 * epoll_pwait2 only for a finite timeout that is not, and not at all where
 * libc lacks it (glibc before 2.35) or the kernel refuses it (ENOSYS: before
 * 5.11, or a seccomp filter): then such a timeout is rounded up to the next
 * millisecond, as the kernel rounds its own. */
#include "shim.h"

#include <limits.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A sleep slice when the engine cannot wake the wait (nested sets). */
#define EP_SLICE_NS 200000

static __thread struct ep_snap t_snap[EP_MAX_DEPTH + 1] __attribute__((tls_model("initial-exec")));
static _Atomic int g_no_pwait2; /* the kernel said ENOSYS */

/* ---- the kernel half ------------------------------------------------------------- */

static int ep_kernel_wait(int epfd, struct epoll_event* out, int max, int64_t timeout_ns,
                          const sigset_t* mask) {
  if (timeout_ns > 0 && timeout_ns % 1000000 != 0 && REAL(epoll_pwait2) != NULL &&
      !atomic_load_explicit(&g_no_pwait2, memory_order_relaxed)) {
    struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
    int r = REAL(epoll_pwait2)(epfd, out, max, &ts, mask);
    if (r >= 0 || errno != ENOSYS) return r;
    if (!atomic_exchange(&g_no_pwait2, 1))
      LOG(LOG_DEBUG,
          "epoll_pwait2: ENOSYS (a kernel before 5.11, or a seccomp filter): waits "
          "use epoll_pwait");
  }
  int ms = -1;
  if (timeout_ns >= 0) {
    int64_t m = (timeout_ns + 999999) / 1000000;
    ms = m > INT_MAX ? INT_MAX : (int)m;
  }
  return REAL(epoll_pwait)(epfd, out, max, ms, mask);
}

/* The kernel's events now, without waiting. */
static inline int ep_kernel_now(int epfd, struct epoll_event* out, int max) {
  return REAL(epoll_pwait)(epfd, out, max, 0, NULL);
}

/* ---- engine-side readiness ---------------------------------------------------------- */

static int ep_peek(struct ep_set* set, uint32_t gen, int depth, uint64_t* wake);

/* Engine-side readiness of a snapshot (no member state changes). Returns
 * how many entries are ready. */
static int ep_scan(struct ep_snap* s, int depth) {
  int ready = 0;
  if (s->n > 0) {
    g_guard++;
    ready += g_ops->ready_seq(s->h, s->ev, s->rev, s->rx, s->tx, (size_t)s->n);
    g_guard--;
    /* Stream connects that fell back to the kernel's TCP: their fds move
     * to the kernel sets (the registrations with them); the snapshot is
     * stale then. */
    for (int j = 0; j < s->n; j++) {
      if (!(s->rev[j] & MACHNET_POLL_FALLBACK)) continue;
      s->rev[j] = 0;
      ready--;
      struct fd_ent* e = lookup(s->fdv[j]);
      if (e != NULL && atomic_load(&e->kind) == KIND_OFFLOAD && atomic_load(&e->handle) == s->h[j])
        stream_fallback(s->fdv[j], e);
      s->stale = 1;
    }
  }
  for (int j = 0; j < s->nn; j++) {
    s->inner_wake[j] = 0;
    s->inner_ready[j] =
        depth < EP_MAX_DEPTH && ep_peek(s->inner[j], s->inner_gen[j], depth + 1, &s->inner_wake[j]);
    ready += s->inner_ready[j];
  }
  return ready;
}

/* Would epoll_wait on this set report an engine-side event now? (What makes
 * an epoll fd readable inside another set.) *wake: a sum of the members'
 * counters, which moves on every arrival or send (an edge for the outer set,
 * as every wake-up of a member reaches the kernel's outer set). */
static int ep_peek(struct ep_set* set, uint32_t gen, int depth, uint64_t* wake) {
  struct ep_snap* s = &t_snap[depth];
  shim_lock(&set->mu);
  int rc = atomic_load(&set->gen) != gen ? -1 : ep_snapshot(set, s, SCRATCH_EP0 + depth);
  shim_unlock(&set->mu);
  if (rc != 0) return 0;
  int any = 0;
  int ready = ep_scan(s, depth);
  for (int j = 0; j < s->n; j++)
    *wake += ((s->m_ev[j] & EPOLLIN) ? s->rx[j] : 0) + ((s->m_ev[j] & EPOLLOUT) ? s->tx[j] : 0);
  for (int j = 0; j < s->nn; j++) *wake += s->inner_wake[j];
  if (ready > 0) {
    for (int j = 0; j < s->n && !any; j++) {
      if (s->rev[j] == 0) continue;
      uint32_t ev = s->m_ev[j];
      any = !(ev & EPOLLET) || s->m_fresh[j] || ((ev & EPOLLIN) && s->rx[j] != s->m_rx[j]) ||
            ((ev & EPOLLOUT) && s->tx[j] != s->m_tx[j]);
    }
    for (int j = 0; j < s->nn && !any; j++) any = s->inner_ready[j];
  }
  return any;
}

/* Adds the events to report to out (merged by data). Returns the new count,
 * -1 when out is full. */
static int ep_put(struct epoll_event* out, int k, int max, uint32_t bits, epoll_data_t data) {
  int at;
  for (at = 0; at < k && out[at].data.u64 != data.u64; at++) {
  }
  if (at < k) {
    out[at].events |= bits;
    return k;
  }
  if (k >= max) return -1;
  out[k].events = bits;
  out[k].data = data;
  return k + 1;
}

/* An EPOLLONESHOT member reported by the engine: disarm its twin in the
 * kernel set too (EPOLL_CTL_MOD re-arms both). */
static void ep_disarm_twin(int epfd, struct ep_member* m) {
  m->disarmed = 1;
  struct epoll_event ev = {.events = EPOLLONESHOT, .data = m->data};
  REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, m->fd, &ev);
}

/* Merges the snapshot's engine-side readiness into the kernel's k events;
 * applies EPOLLET and EPOLLONESHOT. Returns the new count. */
static int ep_merge(int epfd, struct ep_set* set, struct epoll_event* out, int k, int max,
                    const struct ep_snap* s) {
  shim_lock(&set->mu);
  int n = atomic_load(&set->n);
  /* A one-shot member the kernel reported (through its twin) is disarmed. */
  for (int a = 0; a < k; a++) {
    for (int i = 0; i < n; i++) {
      struct ep_member* m = &set->m[i];
      if ((m->events & EPOLLONESHOT) && !m->disarmed && m->data.u64 == out[a].data.u64)
        m->disarmed = 1;
    }
  }
  for (int j = 0; j < s->n; j++) {
    int i = s->idx[j];
    /* Skip members removed or replaced since the snapshot. */
    if (i >= n || set->m[i].handle != s->h[j] || set->m[i].fd != s->fdv[j] || set->m[i].disarmed)
      continue;
    struct ep_member* m = &set->m[i];
    /* EPOLLERR and EPOLLHUP are reported whether asked for or not. */
    uint32_t bits = (uint32_t)(unsigned short)s->rev[j] & (m->events | EPOLLERR | EPOLLHUP);
    if (bits == 0) continue;
    if ((m->events & EPOLLET) && !m->fresh && !((m->events & EPOLLIN) && s->rx[j] != m->rx) &&
        !((m->events & EPOLLOUT) && s->tx[j] != m->tx))
      continue;
    int k2 = ep_put(out, k, max, bits, m->data);
    if (k2 < 0) continue; /* no room: stays pending for the next call */
    k = k2;
    if (m->events & EPOLLET) {
      m->fresh = 0;
      m->rx = s->rx[j];
      m->tx = s->tx[j];
    }
    if (m->events & EPOLLONESHOT) ep_disarm_twin(epfd, m);
  }
  for (int j = 0; j < s->nn; j++) {
    int i = s->inner_idx[j];
    if (i >= n || set->m[i].inner != s->inner[j] || set->m[i].inner_gen != s->inner_gen[j] ||
        set->m[i].disarmed || !s->inner_ready[j])
      continue;
    struct ep_member* m = &set->m[i];
    uint32_t bits = (EPOLLIN | EPOLLRDNORM) & m->events;
    if (bits == 0) continue;
    if ((m->events & EPOLLET) && !m->fresh && m->wake == s->inner_wake[j]) continue;
    int k2 = ep_put(out, k, max, bits, m->data);
    if (k2 < 0) continue;
    k = k2;
    m->fresh = 0;
    m->wake = s->inner_wake[j];
    if (m->events & EPOLLONESHOT) ep_disarm_twin(epfd, m);
  }
  shim_unlock(&set->mu);
  return k;
}

/* ---- the wait ------------------------------------------------------------------------- */

/* set->mu taken here. Returns 0 or -ENOMEM. */
static int ep_look(struct ep_set* set, struct ep_snap* s) {
  shim_lock(&set->mu);
  int rc = ep_snapshot(set, s, SCRATCH_EP0);
  shim_unlock(&set->mu);
  return rc;
}

/* Spins, then sleeps, until an event or the timeout (timeout_ns != 0; the
 * first look found nothing). Returns the count or -1 (errno). */
static int ep_wait_loop(int epfd, struct ep_set* set, struct ep_snap* s, struct epoll_event* out,
                        int max, int64_t timeout_ns, const sigset_t* mask) {
  int64_t spin_ns = 0, sleep_ns = PENDING_SLICE_NS;
  if (g_ops != NULL) {
    g_ops->wait_params(&spin_ns, &sleep_ns);
    /* A spinner's place: with enough threads of the process spinning
     * already, this one sleeps at once. */
    g_guard++;
    spin_ns = g_ops->spin_begin();
    g_guard--;
  }
  int spinning = spin_ns != 0;
  int64_t start = mono_ns();
  int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
  /* A handler that runs during the spin ends the wait with EINTR, as in
   * the kernel: the spin runs with the caller's mask and watches this
   * thread's handler count (signals.c). epoll_pwait's own mask applies only
   * from the sleep on: its spin blocks every signal. The sleep blocks them
   * until ppoll gives back the caller's mask (or epoll_pwait's) atomically. */
  sigset_t all, old;
  sigfillset(&all);
  int blocked = 0;
  if (mask != NULL) {
    pthread_sigmask(SIG_BLOCK, &all, &old);
    blocked = 1;
  }
  const volatile struct machnet_signal_counts* counts = signal_counts();
  uint32_t ran = counts->ran;
  const sigset_t* sleep_mask = mask != NULL ? mask : &old;
  int k;
  for (unsigned it = 1;; it++) {
    int64_t now = mono_ns();
    if (now >= deadline) {
      k = 0;
      break;
    }
    if (spinning && now >= start + spin_ns) {
      g_ops->spin_done();
      spinning = 0;
    }
    if (!blocked && now >= start + spin_ns) {
      pthread_sigmask(SIG_BLOCK, &all, &old);
      blocked = 1;
    }
    if (counts->ran != ran) {
      errno = EINTR;
      k = -1;
      break;
    }
    if (now >= start + spin_ns) {
      /* Sleep on the epoll fd (kernel members) and on the eventfd the
       * engine side writes when a datagram reaches an offloaded member
       * (nested sets with offloaded members: bounded slices). */
      int efd = -EAGAIN;
      if (s->n > 0 && s->nn == 0 && s->pending == 0) {
        g_guard++;
        efd = g_ops->wait_arm(s->h, s->rx, (size_t)s->n);
        g_guard--;
      }
      int64_t w = deadline - now < sleep_ns ? deadline - now : sleep_ns;
      if (efd < 0 && w > EP_SLICE_NS) w = EP_SLICE_NS;
      struct timespec ts = {w / 1000000000, w % 1000000000};
      if (efd == -EALREADY) {
        k = 0;
      } else if (efd >= 0) {
        struct pollfd p[2] = {{epfd, POLLIN, 0}, {efd, POLLIN, 0}};
        int r = REAL(ppoll)(p, 2, &ts, sleep_mask);
        int saved = errno;
        g_guard++;
        g_ops->wait_disarm();
        g_guard--;
        if (r < 0) {
          errno = saved;
          k = -1;
          break;
        }
        k = r > 0 && (p[0].revents & POLLIN) ? ep_kernel_now(epfd, out, max) : 0;
      } else {
        k = ep_kernel_wait(epfd, out, max, w, sleep_mask);
      }
      if (k < 0) break;
      if (s->pending > 0 && ep_look(set, s) != 0) {
        errno = ENOMEM;
        k = -1;
        break;
      }
    } else if ((it & 15) == 0) {
      k = ep_kernel_now(epfd, out, max);
      if (k < 0) break;
    } else {
      k = 0;
    }
    int ready = ep_scan(s, 0);
    if (ready > 0 || k > 0) {
      k = ep_merge(epfd, set, out, k, max, s);
      if (k > 0) break;
    }
    if (s->stale && ep_look(set, s) != 0) {
      errno = ENOMEM;
      k = -1;
      break;
    }
  }
  int saved = errno;
  if (spinning) g_ops->spin_done();
  if (blocked) pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return k;
}

static int epoll_common(int epfd, struct ep_set* set, struct epoll_event* out, int max,
                        int64_t timeout_ns, const sigset_t* mask) {
  struct ep_snap* s = &t_snap[0];
  int64_t end = timeout_ns < 0 ? INT64_MAX : mono_ns() + timeout_ns;
  for (;;) {
    if (ep_look(set, s) != 0) return set_errno(-ENOMEM);
    if (s->n != 0 || s->nn != 0) break;
    int64_t left = end == INT64_MAX ? -1 : end - mono_ns();
    if (end != INT64_MAX && left < 0) left = 0;
    if (s->pending == 0 || left == 0 || !may_offload())
      return ep_kernel_wait(epfd, out, max, left, mask);
    /* Only sockets not decided yet: wait in slices until one is. */
    int last = left >= 0 && left <= PENDING_SLICE_NS;
    int k = ep_kernel_wait(epfd, out, max, last ? left : PENDING_SLICE_NS, mask);
    if (k != 0 || last) return k;
  }
  if (end != INT64_MAX) {
    timeout_ns = end - mono_ns();
    if (timeout_ns < 0) timeout_ns = 0;
  }
  int ready = ep_scan(s, 0);
  int k = ep_kernel_now(epfd, out, max);
  if (k < 0) return k;
  if (ready > 0 || k > 0) k = ep_merge(epfd, set, out, k, max, s);
  if (k > 0 || timeout_ns == 0) return k;
  if (s->stale && ep_look(set, s) != 0) return set_errno(-ENOMEM);
  return ep_wait_loop(epfd, set, s, out, max, timeout_ns, mask);
}

/* The shim's set of epfd when it has members, else NULL (the kernel's). */
static inline struct ep_set* ep_active(int epfd, int max) {
  if (g_guard || max <= 0) return NULL;
  /* A fork child with a set of members: take the inherited sockets over
   * (fork_adopt); if it cannot, the set is the kernel's, as before. */
  if (atomic_load_explicit(&g_forked_child, memory_order_relaxed) &&
      (ep_get(epfd, 0) == NULL || atomic_load(&ep_get(epfd, 0)->n) == 0 || fork_adopt() != 0))
    return NULL;
  struct ep_set* set = ep_get(epfd, 0);
  if (set == NULL || atomic_load(&set->n) == 0) return NULL;
  close_deferred(); /* a program's set (see offloaded) */
  return set;
}

static inline int64_t ms_to_ns(int timeout) {
  return timeout < 0 ? -1 : (int64_t)timeout * 1000000;
}

EXPORT int epoll_wait(int epfd, struct epoll_event* ev, int max, int timeout) {
  struct ep_set* set = ep_active(epfd, max);
  if (set == NULL) return REAL(epoll_wait)(epfd, ev, max, timeout);
  return epoll_common(epfd, set, ev, max, ms_to_ns(timeout), NULL);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event* ev, int max, int timeout,
                       const sigset_t* mask) {
  struct ep_set* set = ep_active(epfd, max);
  if (set == NULL) return REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
  return epoll_common(epfd, set, ev, max, ms_to_ns(timeout), mask);
}

EXPORT int epoll_pwait2(int epfd, struct epoll_event* ev, int max, const struct timespec* ts,
                        const sigset_t* mask) {
  struct ep_set* set = ep_active(epfd, max);
  if (set == NULL) {
    /* The program's own call: the kernel's answer, ENOSYS included. */
    if (REAL(epoll_pwait2) != NULL) return REAL(epoll_pwait2)(epfd, ev, max, ts, mask);
#ifdef SYS_epoll_pwait2
    return (int)syscall(SYS_epoll_pwait2, epfd, ev, max, ts, mask, (size_t)(_NSIG / 8));
#else
    return set_errno(-ENOSYS);
#endif
  }
  return epoll_common(epfd, set, ev, max, ts_to_ns(ts), mask);
}
