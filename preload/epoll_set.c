/* epoll sets: epoll_create, epoll_ctl, the shim's member list beside each
 * kernel epoll set (shim.h explains which fds are members), and the
 * snapshot of the live members one epoll_wait looks at. */
#include "shim.h"

#include <stdlib.h>
#include <string.h>

/* ---- sets ------------------------------------------------------------------------
 * A free list with lock-free pushes (ep_free runs in close(), which may be
 * called from a signal handler) and pops serialised by g_decide_mu. */
static struct ep_set* _Atomic g_ep_free;
/* Every set ever made: a stream socket that moves between the engine and
 * the kernel visits them all (rare: once per connect that falls back). */
static struct ep_set* _Atomic g_ep_all;

static struct ep_set* ep_alloc(void) {
  struct ep_set* set = atomic_load(&g_ep_free);
  while (set != NULL && !atomic_compare_exchange_weak(&g_ep_free, &set, set->next_free)) {
  }
  if (set != NULL) {
    shim_lock(&set->mu);
    atomic_store(&set->n, 0);
    shim_unlock(&set->mu);
    return set;
  }
  set = calloc(1, sizeof(*set));
  if (set == NULL) return NULL;
  pthread_mutex_init(&set->mu, NULL);
  struct ep_set* head = atomic_load(&g_ep_all);
  do {
    set->all_next = head;
  } while (!atomic_compare_exchange_weak(&g_ep_all, &head, set));
  return set;
}

void ep_free(struct ep_set* set) {
  if (set == NULL) return;
  /* A new generation: enclosing sets drop it, and a reuse starts empty. */
  atomic_fetch_add(&set->gen, 1);
  struct ep_set* head = atomic_load(&g_ep_free);
  do {
    set->next_free = head;
  } while (!atomic_compare_exchange_weak(&g_ep_free, &head, set));
}

struct ep_set* ep_get(int epfd, int create) {
  struct fd_ent* e = lookup(epfd);
  if (e != NULL && atomic_load(&e->kind) == KIND_EPOLL) return atomic_load(&e->ep);
  if (!create || e != NULL) return NULL;
  /* Two threads adding the first offloaded fds to one epoll set at once
   * must not make two lists: creation is serialised (it is rare). */
  shim_lock(&g_decide_mu);
  struct ep_set* set = NULL;
  e = lookup(epfd);
  if (e != NULL) {
    if (atomic_load(&e->kind) == KIND_EPOLL) set = atomic_load(&e->ep);
  } else if ((e = entry_make(epfd)) != NULL && (set = ep_alloc()) != NULL) {
    set->epfd = epfd;
    atomic_fetch_add(&e->gen, 1);
    atomic_store(&e->ep, set);
    atomic_store_explicit(&e->kind, KIND_EPOLL, memory_order_release);
  }
  shim_unlock(&g_decide_mu);
  return set;
}

/* Every epoll fd is known from its creation, so that one put inside another
 * epoll set before it holds an offloaded fd is still seen as nested. */
static int ep_track_new(int fd) {
  if (fd >= 0 && !g_guard) {
    if (lookup(fd) != NULL) forget(fd); /* a stale entry of an fd closed behind our back */
    ep_get(fd, 1);
  }
  return fd;
}

EXPORT int epoll_create(int size) {
  return ep_track_new(REAL(epoll_create)(size));
}

EXPORT int epoll_create1(int flags) {
  return ep_track_new(REAL(epoll_create1)(flags));
}

/* ---- members ------------------------------------------------------------------------ */

static void member_remove(struct ep_set* set, int i) {
  int n = atomic_load(&set->n);
  set->m[i] = set->m[n - 1];
  atomic_store(&set->n, n - 1);
}

/* set->mu held. Drops the members that left (closed), and turns members not
 * decided yet into offloaded ones once decided (or drops them: the kernel's). */
static void ep_prune(struct ep_set* set) {
  for (int i = 0; i < atomic_load(&set->n);) {
    struct ep_member* m = &set->m[i];
    int gone = 0;
    if (m->sock != NULL) {
      gone = atomic_load(&m->sock->gen) != m->sock_gen;
    } else if (m->inner != NULL) {
      gone = atomic_load(&m->inner->gen) != m->inner_gen;
    } else if (m->pend) {
      struct fd_ent* e = fd_slot(m->fd);
      uint32_t k = e != NULL ? atomic_load(&e->kind) : KIND_NONE;
      struct shim_sock* sock = e != NULL ? atomic_load(&e->sock) : NULL;
      if (e == NULL || atomic_load(&e->gen) != m->fd_gen) {
        gone = 1; /* closed while not decided */
      } else if (k == KIND_OFFLOAD && sock != NULL) {
        m->sock = sock;
        m->sock_gen = atomic_load(&sock->gen);
        m->handle = atomic_load(&e->handle);
        m->pend = 0;
        /* A stream connection's placeholder twin has no place there. */
        if (atomic_load(&e->flags) & FL_CONN)
          REAL(epoll_ctl)(set->epfd, EPOLL_CTL_DEL, m->fd, NULL);
      } else if (k != KIND_PENDING) {
        gone = 1; /* decided for the kernel: its set alone reports it */
      }
    } else {
      gone = 1;
    }
    if (gone)
      member_remove(set, i);
    else
      i++;
  }
}

/* Is member m the registration of fd as it is now (kind k, entry e)? An fd
 * closed while a dup kept its socket alive is another registration, as in
 * the kernel, where it is keyed by fd and open file. */
static int member_is(const struct ep_member* m, int fd, struct fd_ent* e, uint32_t k) {
  if (m->fd != fd || e == NULL) return 0;
  if (k == KIND_OFFLOAD) return m->sock != NULL && m->sock == atomic_load(&e->sock);
  if (k == KIND_EPOLL) return m->inner != NULL && m->inner == atomic_load(&e->ep);
  if (k == KIND_PENDING) return m->pend && m->fd_gen == atomic_load(&e->gen);
  return 0;
}

/* epoll_ctl for an offloaded stream connection: the shim's set only (its
 * twin is a placeholder the kernel must not report), with the kernel's
 * errors. */
static int conn_ctl(int epfd, int op, int fd, struct fd_ent* e, struct epoll_event* ev) {
  struct ep_set* set = ep_get(epfd, 0);
  if (set == NULL) {
    /* Not an epoll fd we know: let the kernel say what is wrong with it. */
    int rc = REAL(epoll_ctl)(epfd, op, fd, ev);
    return rc != 0 ? rc : set_errno(-EINVAL);
  }
  if (epfd == fd) return set_errno(-EINVAL);
  if (op != EPOLL_CTL_DEL && ev == NULL) return set_errno(-EFAULT);
  if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD && op != EPOLL_CTL_DEL) return set_errno(-EINVAL);
  struct shim_sock* sock = atomic_load(&e->sock);
  shim_lock(&set->mu);
  ep_prune(set);
  int n = atomic_load(&set->n), i;
  for (i = 0; i < n && !(set->m[i].fd == fd && set->m[i].sock == sock); i++) {
  }
  int rc = 0;
  if (op == EPOLL_CTL_ADD && i < n) {
    rc = -EEXIST;
  } else if (op != EPOLL_CTL_ADD && i == n) {
    rc = -ENOENT;
  } else if (op == EPOLL_CTL_DEL) {
    member_remove(set, i);
  } else if (op == EPOLL_CTL_MOD) {
    set->m[i].events = ev->events;
    set->m[i].data = ev->data;
    set->m[i].disarmed = 0;
    set->m[i].fresh = 1;
  } else {
    if (n == set->cap) {
      int cap = set->cap ? set->cap * 2 : 8;
      struct ep_member* m = realloc(set->m, sizeof(*m) * (size_t)cap);
      if (m == NULL) {
        shim_unlock(&set->mu);
        return set_errno(-ENOMEM);
      }
      set->m = m;
      set->cap = cap;
    }
    set->m[n] = (struct ep_member){.fd = fd,
                                   .fd_gen = atomic_load(&e->gen),
                                   .sock = sock,
                                   .sock_gen = atomic_load(&sock->gen),
                                   .handle = atomic_load(&e->handle),
                                   .events = ev->events,
                                   .data = ev->data,
                                   .fresh = 1};
    atomic_store(&set->n, n + 1);
  }
  shim_unlock(&set->mu);
  return set_errno(rc);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) {
  if (!g_guard) {
    struct fd_ent* c = lookup(fd);
    if (c != NULL && atomic_load(&c->kind) == KIND_OFFLOAD && (atomic_load(&c->flags) & FL_CONN) &&
        atomic_load(&c->sock) != NULL && !atomic_load(&g_forked_child) && !stream_moved(fd, c))
      return conn_ctl(epfd, op, fd, c, ev);
  }
  /* A fork child adding an inherited socket it can take over (a pre-fork
   * server's worker registering the master's listener): take it over first,
   * so the set watches the engine's side, not only the kernel twin. */
  if (!g_guard && op != EPOLL_CTL_DEL && atomic_load(&g_forked_child) && fork_adoptable(lookup(fd)))
    fork_adopt();
  int rc = REAL(epoll_ctl)(epfd, op, fd, ev);
  if (rc != 0 || g_guard) return rc;
  struct fd_ent* e = lookup(fd);
  uint32_t kind = e != NULL ? atomic_load(&e->kind) : KIND_NONE;
  int off = kind == KIND_OFFLOAD && !atomic_load(&g_forked_child);
  int pend = kind == KIND_PENDING && may_offload();
  struct ep_set* inner = kind == KIND_EPOLL ? atomic_load(&e->ep) : NULL;
  struct shim_sock* sock = off ? atomic_load(&e->sock) : NULL;
  if (off && sock == NULL) off = 0;
  struct ep_set* set = ep_get(epfd, (off || pend || inner != NULL) && op == EPOLL_CTL_ADD);
  if (set == NULL) return rc;
  shim_lock(&set->mu);
  ep_prune(set);
  int n = atomic_load(&set->n);
  int i;
  for (i = 0; i < n && !member_is(&set->m[i], fd, e, kind); i++) {
  }
  if (op == EPOLL_CTL_DEL) {
    if (i < n) member_remove(set, i);
  } else if (op == EPOLL_CTL_MOD && i < n) {
    set->m[i].events = ev->events;
    set->m[i].data = ev->data;
    set->m[i].disarmed = 0;
    set->m[i].fresh = 1;
  } else if (op == EPOLL_CTL_ADD && (off || pend || inner != NULL)) {
    if (i == n && n == set->cap) {
      int cap = set->cap ? set->cap * 2 : 8;
      struct ep_member* m = realloc(set->m, sizeof(*m) * (size_t)cap);
      if (m == NULL) {
        shim_unlock(&set->mu);
        REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, fd, NULL);
        return set_errno(-ENOMEM);
      }
      set->m = m;
      set->cap = cap;
    }
    set->m[i] = (struct ep_member){.fd = fd,
                                   .fd_gen = atomic_load(&e->gen),
                                   .sock = sock,
                                   .sock_gen = sock != NULL ? atomic_load(&sock->gen) : 0,
                                   .handle = off ? atomic_load(&e->handle) : 0,
                                   .inner = inner,
                                   .inner_gen = inner != NULL ? atomic_load(&inner->gen) : 0,
                                   .events = ev->events,
                                   .data = ev->data,
                                   .pend = pend,
                                   .fresh = 1};
    if (i == n) atomic_store(&set->n, n + 1);
  }
  shim_unlock(&set->mu);
  return rc;
}

/* ---- snapshots ------------------------------------------------------------------------ */

/* Carves the snapshot's arrays for cap members out of scratch memory. */
static int snap_reserve(struct ep_snap* s, int cap, int slot) {
  if (cap < 8) cap = 8;
  if (s->cap >= cap && s->h != NULL) return 0;
  size_t per = 7 * sizeof(uint64_t) + 6 * sizeof(int) + 2 * sizeof(uint32_t) + 2 * sizeof(short);
  char* p = scratch(slot, per * (size_t)cap);
  if (p == NULL) return -ENOMEM;
  size_t c = (size_t)cap;
#define CARVE(field, type)    \
  s->field = (type*)(void*)p; \
  p += sizeof(type) * c;
  CARVE(h, uint64_t)
  CARVE(rx, uint64_t)
  CARVE(tx, uint64_t)
  CARVE(m_rx, uint64_t)
  CARVE(m_tx, uint64_t)
  CARVE(inner_wake, uint64_t)
  CARVE(inner, struct ep_set*)
  CARVE(idx, int)
  CARVE(fdv, int)
  CARVE(m_fresh, int)
  CARVE(inner_ready, int)
  CARVE(inner_idx, int)
  CARVE(inner_gen, uint32_t)
  CARVE(m_ev, uint32_t)
  CARVE(ev, short)
  CARVE(rev, short)
#undef CARVE
  s->cap = cap;
  return 0;
}

int ep_snapshot(struct ep_set* set, struct ep_snap* s, int slot) {
  ep_prune(set);
  s->n = s->nn = s->pending = s->stale = 0;
  int n = atomic_load(&set->n);
  if (snap_reserve(s, n, slot) != 0) return -ENOMEM;
  for (int i = 0; i < n; i++) {
    struct ep_member* m = &set->m[i];
    if (m->pend) {
      s->pending++;
      continue;
    }
    if (m->disarmed) continue;
    if (m->handle != 0) {
      int j = s->n++;
      s->h[j] = m->handle;
      s->ev[j] = (short)(m->events & (EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP));
      s->idx[j] = i;
      s->fdv[j] = m->fd;
      s->m_ev[j] = m->events;
      s->m_fresh[j] = m->fresh;
      s->m_rx[j] = m->rx;
      s->m_tx[j] = m->tx;
    } else if (m->inner != NULL && atomic_load(&m->inner->n) > 0) {
      int j = s->nn++;
      s->inner[j] = m->inner;
      s->inner_gen[j] = m->inner_gen;
      s->inner_idx[j] = i;
    }
  }
  return 0;
}

/* ---- fork -----------------------------------------------------------------------------
 * Sets are made only under g_decide_mu, which the prepare handler holds: the
 * list is fixed while it walks it. A set's mu is never held with another's,
 * so any order is deadlock-free. */

void ep_lock_all(void) {
  for (struct ep_set* set = atomic_load(&g_ep_all); set != NULL; set = set->all_next)
    pthread_mutex_lock(&set->mu);
}

void ep_unlock_all(int child) {
  for (struct ep_set* set = atomic_load(&g_ep_all); set != NULL; set = set->all_next) {
    if (child)
      pthread_mutex_init(&set->mu, NULL);
    else
      pthread_mutex_unlock(&set->mu);
  }
}

/* ---- stream sockets between the engine and the kernel --------------------------- */

void ep_conn_adopted(int fd, struct fd_ent* e) {
  for (struct ep_set* set = atomic_load(&g_ep_all); set != NULL; set = set->all_next) {
    if (atomic_load(&set->n) == 0) continue;
    shim_lock(&set->mu);
    int n = atomic_load(&set->n);
    for (int i = 0; i < n; i++) {
      if (set->m[i].pend && set->m[i].fd == fd && set->m[i].fd_gen == atomic_load(&e->gen)) {
        ep_prune(set); /* takes the decided member in and leaves the kernel set */
        break;
      }
    }
    shim_unlock(&set->mu);
  }
}

void ep_move_to_kernel(struct shim_sock* sock) {
  for (struct ep_set* set = atomic_load(&g_ep_all); set != NULL; set = set->all_next) {
    if (atomic_load(&set->n) == 0) continue;
    shim_lock(&set->mu);
    for (int i = 0; i < atomic_load(&set->n);) {
      struct ep_member* m = &set->m[i];
      if (m->sock != sock || atomic_load(&sock->gen) != m->sock_gen) {
        i++;
        continue;
      }
      /* The same registration in the kernel set: events, data, and a
       * one-shot already reported stays disarmed until EPOLL_CTL_MOD. */
      struct epoll_event ev = {
          .events = m->disarmed ? (m->events & (EPOLLONESHOT | EPOLLET)) : m->events,
          .data = m->data};
      REAL(epoll_ctl)(set->epfd, EPOLL_CTL_ADD, m->fd, &ev);
      member_remove(set, i);
    }
    shim_unlock(&set->mu);
  }
}
