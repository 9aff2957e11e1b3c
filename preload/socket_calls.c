/* Socket calls: socket, bind, connect, shutdown, getsockname, getpeername,
 * setsockopt, getsockopt, ioctl (stream sockets' listen, accept and the
 * rest of their life: stream_calls.c).
 *
 * socket() tracks UDP sockets: AF_INET, and AF_INET6 ones, which are
 * offloaded like AF_INET ones when they are dual-stack and bound to :: or
 * ::ffff:a.b.c.d, or connected or sending to ::ffff:a.b.c.d (IPV6_V6ONLY
 * sockets and native IPv6 peers stay on the kernel). bind, connect and the
 * first send decide (engine.c). */
#include "shim.h"

#include <linux/sockios.h>
#include <stdarg.h>
#include <sys/ioctl.h>

EXPORT int socket(int domain, int type, int protocol) {
  int fd = REAL(socket)(domain, type, protocol);
  if (fd < 0 || g_guard) return fd;
  int dgram = (type & 0xf) == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP);
  int stream = (type & 0xf) == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP);
  if ((domain == AF_INET || domain == AF_INET6) && (dgram || stream)) {
    struct fd_ent* e = entry_make(fd);
    if (e != NULL)
      entry_new_socket(e, ((type & SOCK_NONBLOCK) ? FL_NONBLOCK : 0) |
                              (domain == AF_INET6 ? FL_INET6 : 0) | (stream ? FL_STREAM : 0));
  } else if (lookup(fd) != NULL) {
    forget(fd); /* a stale entry of an fd closed behind our back */
  }
  return fd;
}

EXPORT int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  struct fd_ent* e = g_guard ? NULL : lookup(fd);
  struct sockaddr_in a;
  if (e == NULL || atomic_load(&e->kind) != KIND_PENDING) return REAL(bind)(fd, addr, len);
  int what = addr_from_prog(e, addr, len, 1, &a);
  if (what != ADDR_V4) {
    int rc = REAL(bind)(fd, addr, len);
    /* A native IPv6 address: the kernel's socket. */
    if (rc == 0 && what == ADDR_KERNEL) atomic_store(&e->kind, KIND_NONE);
    return rc;
  }
  int rc = REAL(bind)(fd, addr, len);
  if (rc != 0 && errno == EADDRNOTAVAIL) {
    /* The engine's own address is not the kernel's: let the twin hold the
     * port there (IP_FREEBIND, which IPv6 sockets honour too) when the rules
     * offload it. */
    shim_lock(&g_decide_mu);
    int mine = config_ready() && engine_ip() != 0 && ntohl(a.sin_addr.s_addr) == g_cfg.engine_ip;
    shim_unlock(&g_decide_mu);
    if (!mine) return rc;
    int one = 1;
    REAL(setsockopt)(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
    rc = REAL(bind)(fd, addr, len);
    if (rc != 0) return rc;
  } else if (rc != 0) {
    return rc;
  }
  /* A stream socket is decided at listen or connect: the twin holds the
   * address until then. */
  if (atomic_load(&e->flags) & FL_STREAM) return 0;
  int d = decide(fd, e, MN_ROLE_BIND, ntohl(a.sin_addr.s_addr), ntohs(a.sin_port));
  return set_errno(d < 0 ? d : 0);
}

EXPORT int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  struct fd_ent* e = g_guard ? NULL : lookup(fd);
  if (e == NULL) return REAL(connect)(fd, addr, len);
  uint32_t k = atomic_load(&e->kind);
  int fail;
  if (k == KIND_FAILED || k == KIND_OFFLOAD) {
    if (offloaded(fd, &fail) == NULL) return -1;
  }
  if (k != KIND_PENDING && k != KIND_OFFLOAD) return REAL(connect)(fd, addr, len);
  if (atomic_load(&e->flags) & FL_STREAM) return stream_connect(fd, e, addr, len);
  struct sockaddr_in a;
  int what = addr_from_prog(e, addr, len, 0, &a);
  if (what == ADDR_UNSPEC) {
    if (k == KIND_OFFLOAD) {
      g_guard++;
      g_ops->connect(atomic_load(&e->handle), NULL);
      g_guard--;
    }
    return REAL(connect)(fd, addr, len);
  }
  if (what == ADDR_BAD) return REAL(connect)(fd, addr, len); /* the kernel's errno */
  if (what == ADDR_KERNEL) {
    /* A native IPv6 peer: the socket is the kernel's from now on. */
    int rc = REAL(connect)(fd, addr, len);
    if (rc == 0 && k == KIND_PENDING) atomic_store(&e->kind, KIND_NONE);
    if (rc == 0 && k == KIND_OFFLOAD) unoffload(fd, e);
    return rc;
  }
  if (k == KIND_PENDING) {
    int d = decide(fd, e, MN_ROLE_CONNECT, ntohl(a.sin_addr.s_addr), ntohs(a.sin_port));
    if (d < 0) return set_errno(d);
    if (d == 0) return REAL(connect)(fd, addr, len);
  }
  g_guard++;
  int rc = g_ops->connect(atomic_load(&e->handle), &a);
  g_guard--;
  if (rc < 0) return set_errno(rc);
  /* The twin follows (it filters what reaches it through the kernel); the
   * kernel may have no route to a peer only the engine reaches. */
  int saved = errno;
  REAL(connect)(fd, addr, len);
  errno = saved;
  return 0;
}

/* shutdown(2): the twin first (its result and errno are the kernel's, and
 * poll/epoll then see EPOLLIN|EPOLLRDHUP, EPOLLHUP through it), then the
 * engine side. */
EXPORT int shutdown(int fd, int how) {
  int fail;
  struct fd_ent* e = offloaded(fd, &fail);
  if (e == NULL) {
    if (fail) return -1;
    int rc = REAL(shutdown)(fd, how);
    /* A socket not decided yet keeps the bits for the engine side. */
    struct fd_ent* p = g_guard ? NULL : lookup(fd);
    if ((rc == 0 || errno == ENOTCONN) && p != NULL && atomic_load(&p->kind) == KIND_PENDING &&
        how >= SHUT_RD && how <= SHUT_RDWR)
      atomic_fetch_or(&p->shut, how + 1);
    return rc;
  }
  int rc = 0;
  /* A stream connection has no kernel side: its twin is a placeholder. */
  if (!(atomic_load(&e->flags) & FL_CONN)) {
    rc = REAL(shutdown)(fd, how);
    if (rc != 0 && errno != ENOTCONN) return rc;
  } else if (how < SHUT_RD || how > SHUT_RDWR) {
    return set_errno(-EINVAL);
  }
  g_guard++;
  rc = g_ops->shutdown(atomic_load(&e->handle), how);
  g_guard--;
  if (rc == -MACHNET_EFALLBACK) {
    if (stream_fallback(fd, e) != 0) return -1;
    return REAL(shutdown)(fd, how);
  }
  return set_errno(rc);
}

static int name_out(struct fd_ent* e, int rc, const struct sockaddr_in* a, struct sockaddr* out,
                    socklen_t* len) {
  if (rc < 0) return set_errno(rc);
  if (out == NULL || len == NULL) return set_errno(-EFAULT);
  addr_to_prog(e, a, out, len);
  return 0;
}

EXPORT int getsockname(int fd, struct sockaddr* addr, socklen_t* len) {
  int fail;
  struct fd_ent* e = offloaded(fd, &fail);
  if (e == NULL) return fail ? -1 : REAL(getsockname)(fd, addr, len);
  struct sockaddr_in a;
  g_guard++;
  int rc = g_ops->getsockname(atomic_load(&e->handle), &a);
  g_guard--;
  return name_out(e, rc, &a, addr, len);
}

EXPORT int getpeername(int fd, struct sockaddr* addr, socklen_t* len) {
  int fail;
  struct fd_ent* e = offloaded(fd, &fail);
  if (e == NULL) return fail ? -1 : REAL(getpeername)(fd, addr, len);
  struct sockaddr_in a;
  g_guard++;
  int rc = g_ops->getpeername(atomic_load(&e->handle), &a);
  g_guard--;
  return name_out(e, rc, &a, addr, len);
}

/* Options go to the twin, so values and errors are the kernel's; the shim
 * keeps what the engine path needs (timeouts), and a stream socket's flow
 * gets those the socket layer honours (TCP_NODELAY, keepalive, buffers,
 * SO_LINGER...). */
EXPORT int setsockopt(int fd, int level, int name, const void* val, socklen_t len) {
  int rc = REAL(setsockopt)(fd, level, name, val, len);
  if (rc != 0 || g_guard) return rc;
  struct fd_ent* e = lookup(fd);
  if (e != NULL && atomic_load(&e->kind) == KIND_OFFLOAD && (atomic_load(&e->flags) & FL_STREAM) &&
      !atomic_load(&g_forked_child)) {
    g_guard++;
    int r = g_ops->setsockopt(atomic_load(&e->handle), level, name, val, len);
    g_guard--;
    if (r < 0 && r != -ENOPROTOOPT) return set_errno(r);
  }
  if (level != SOL_SOCKET) return rc;
  if (e == NULL || val == NULL || len < sizeof(struct timeval)) return rc;
  if (name == SO_RCVTIMEO || name == SO_RCVTIMEO_NEW)
    atomic_store(&e->rcvtimeo_ns, tv_to_ns(val));
  else if (name == SO_SNDTIMEO || name == SO_SNDTIMEO_NEW)
    atomic_store(&e->sndtimeo_ns, tv_to_ns(val));
  return rc;
}

EXPORT int getsockopt(int fd, int level, int name, void* val, socklen_t* len) {
  if (level == SOL_SOCKET && name == SO_ERROR && !g_guard && val != NULL && len != NULL &&
      *len >= sizeof(int)) {
    struct fd_ent* slot = fd_slot(fd);
    int err = slot != NULL ? atomic_exchange(&slot->conn_err, 0) : 0;
    if (err != 0) {
      *(int*)val = err;
      *len = sizeof(int);
      return 0;
    }
  }
  int fail;
  struct fd_ent* e = offloaded(fd, &fail);
  if (e != NULL && (atomic_load(&e->flags) & FL_STREAM) && val != NULL && len != NULL) {
    /* SO_ERROR and TCP_INFO come from the flow; the rest from the twin. */
    g_guard++;
    int r = g_ops->getsockopt(atomic_load(&e->handle), level, name, val, len);
    g_guard--;
    if (r == -MACHNET_EFALLBACK) {
      if (stream_fallback(fd, e) != 0) {
        /* Refused at once: SO_ERROR is where a non-blocking connect says so. */
        if (level == SOL_SOCKET && name == SO_ERROR && *len >= sizeof(int)) {
          *(int*)val = errno;
          *len = sizeof(int);
          return 0;
        }
        return -1;
      }
    } else if (r != -ENOPROTOOPT) {
      return set_errno(r);
    }
  }
  return REAL(getsockopt)(fd, level, name, val, len);
}

EXPORT int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (req == FIONREAD || req == SIOCOUTQ) {
    int fail;
    struct fd_ent* e = offloaded(fd, &fail);
    if (e != NULL) {
      if (arg == NULL) return set_errno(-EFAULT);
      g_guard++;
      int rc = g_ops->ioctl(atomic_load(&e->handle), req, (int*)arg);
      g_guard--;
      if (rc == -MACHNET_EFALLBACK) {
        if (stream_fallback(fd, e) != 0) return -1;
        return REAL(ioctl)(fd, req, arg);
      }
      return set_errno(rc);
    }
    if (fail) return -1;
  }
  if (req == FIONBIO && !g_guard && arg != NULL) {
    /* An offloaded listener's twin stays non-blocking (accept4 needs it). */
    struct fd_ent* l = lookup(fd);
    if (l != NULL && atomic_load(&l->kind) == KIND_OFFLOAD &&
        (atomic_load(&l->flags) & FL_LISTEN)) {
      if (*(int*)arg)
        atomic_fetch_or(&l->flags, FL_NONBLOCK);
      else
        atomic_fetch_and(&l->flags, ~(uint32_t)FL_NONBLOCK);
      return 0;
    }
  }
  int rc = REAL(ioctl)(fd, req, arg);
  if (rc == 0 && req == FIONBIO && !g_guard && arg != NULL) {
    struct fd_ent* e = lookup(fd);
    if (e != NULL) {
      if (*(int*)arg)
        atomic_fetch_or(&e->flags, FL_NONBLOCK);
      else
        atomic_fetch_and(&e->flags, ~(uint32_t)FL_NONBLOCK);
    }
  }
  return rc;
}
