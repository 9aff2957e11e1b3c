/* Stream sockets: listen, accept, accept4, connect, sendfile, and the move
 * of a connect that fell back to the kernel's TCP.
 *
 * A stream socket (AF_INET, or a dual-stack AF_INET6 one) is decided at
 * listen or connect from the rules. An offloaded listener keeps its twin
 * listening in the kernel, so plain TCP clients reach it too: accept
 * returns either kind of connection. An offloaded connect first probes the
 * peer through the socket layer; when the peer has no machnet service
 * there it "falls back": the twin connects in the kernel (same fd, same
 * peer) and the fd becomes an ordinary kernel socket, keeping every epoll
 * registration (events, data, EPOLLET/EPOLLONESHOT). */
#include "shim.h"

#include <fcntl.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

int stream_adopt(int fd, struct fd_ent* e, uint64_t h, uint32_t flags, const struct sockaddr* peer,
                 socklen_t peer_len) {
  shim_lock(&g_decide_mu);
  struct shim_sock* sock = sock_new();
  shim_unlock(&g_decide_mu);
  if (sock == NULL) return -ENOMEM;
  atomic_store(&sock->moved, 0);
  /* Before the socket is published: another thread may make it fall back. */
  sock->peer_len = peer_len < sizeof(sock->peer) ? peer_len : sizeof(sock->peer);
  if (peer != NULL) memcpy(&sock->peer, peer, sock->peer_len);
  atomic_store(&e->handle, h);
  atomic_store(&e->sock, sock);
  atomic_fetch_or(&e->flags, flags | FL_STREAM);
  atomic_store_explicit(&e->kind, KIND_OFFLOAD, memory_order_release);
  if (flags & FL_CONN) ep_conn_adopted(fd, e);
  return 0;
}

int stream_moved(int fd, struct fd_ent* e) {
  struct shim_sock* sock = atomic_load(&e->sock);
  if (sock == NULL || !atomic_load(&sock->moved)) return 0;
  /* Another fd naming the socket took it to the kernel: this one follows. */
  sock = atomic_exchange(&e->sock, NULL);
  atomic_store(&e->handle, 0);
  atomic_fetch_and(&e->flags, ~(uint32_t)(FL_CONN | FL_LISTEN));
  atomic_store_explicit(&e->kind, KIND_NONE, memory_order_release);
  if (sock != NULL) sock_unref(sock);
  LOG(LOG_DEBUG, "fd %d: follows its socket to the kernel", fd);
  return 1;
}

int stream_fallback(int fd, struct fd_ent* e) {
  struct shim_sock* sock = atomic_load(&e->sock);
  if (sock == NULL) return 0;
  uint64_t h = atomic_exchange(&e->handle, 0);
  /* The kernel's connect, non-blocking whatever the program set: the
   * program is inside another call (a send, a poll) and learns the outcome
   * the way a non-blocking connect reports it. */
  int fl = REAL(fcntl)(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK);
  int rc = REAL(connect)(fd, (struct sockaddr*)&sock->peer, sock->peer_len);
  int err = rc == 0 ? 0 : errno;
  if (fl >= 0 && !(fl & O_NONBLOCK)) REAL(fcntl)(fd, F_SETFL, fl);
  atomic_store(&sock->moved, 1);
  ep_move_to_kernel(sock);
  atomic_store(&e->sock, NULL);
  atomic_fetch_and(&e->flags, ~(uint32_t)(FL_CONN | FL_LISTEN));
  atomic_store_explicit(&e->kind, KIND_NONE, memory_order_release);
  if (h != 0) {
    g_guard++;
    g_ops->close(h);
    g_guard--;
  }
  sock_unref(sock);
  LOG(LOG_INFO, "fd %d: the peer has no machnet service there: kernel TCP", fd);
  if (err == 0 || err == EINPROGRESS || err == EALREADY || err == EISCONN) return 0;
  /* The program may learn it later, from SO_ERROR after a poll. */
  atomic_store(&e->conn_err, err);
  errno = err;
  return -1;
}

/* ---- connect ------------------------------------------------------------------------ */

int stream_connect(int fd, struct fd_ent* e, const struct sockaddr* addr, socklen_t len) {
  uint32_t k = atomic_load(&e->kind);
  if (k == KIND_OFFLOAD) {
    if (atomic_load(&e->flags) & FL_LISTEN) return set_errno(-EISCONN);
    /* Again on a connecting or connected socket: the kernel's answers. */
    g_guard++;
    int r = g_ops->stream_connect_result(atomic_load(&e->handle));
    g_guard--;
    if (r == -MACHNET_EFALLBACK) {
      if (stream_fallback(fd, e) != 0) return -1;
      return REAL(connect)(fd, addr, len);
    }
    if (r == 0) return set_errno(-EISCONN);
    if (r == -EINPROGRESS) return set_errno(-EALREADY);
    return set_errno(r);
  }
  struct sockaddr_in a;
  int what = addr_from_prog(e, addr, len, 0, &a);
  if (what != ADDR_V4) {
    int rc = REAL(connect)(fd, addr, len);
    if (what == ADDR_KERNEL || what == ADDR_UNSPEC) atomic_store(&e->kind, KIND_NONE);
    return rc;
  }
  int d = decide_stream(fd, e, MN_ROLE_CONNECT, ntohl(a.sin_addr.s_addr), ntohs(a.sin_port));
  if (d < 0) return set_errno(d);
  if (d == 0) return REAL(connect)(fd, addr, len);
  int64_t timeout = -1;
  if (atomic_load(&e->flags) & FL_NONBLOCK) {
    timeout = 0;
  } else if (atomic_load(&e->sndtimeo_ns) > 0) {
    timeout = atomic_load(&e->sndtimeo_ns); /* connect(2) honours SO_SNDTIMEO */
  }
  uint64_t h = 0;
  g_guard++;
  int rc = g_ops->stream_connect(fd, &a, timeout, &h);
  g_guard--;
  if (h == 0) {
    /* The peer has no machnet service there, or the transport cannot take
     * the connection: the kernel's TCP, as if never offloaded. */
    atomic_store(&e->kind, KIND_NONE);
    if (rc != -MACHNET_EFALLBACK)
      LOG(LOG_WARNING, "fd %d: stream connect not offloaded: %s", fd, strerror(-rc));
    return REAL(connect)(fd, addr, len);
  }
  if (stream_adopt(fd, e, h, FL_CONN, addr, len) != 0) {
    g_guard++;
    g_ops->close(h);
    g_guard--;
    atomic_store(&e->kind, KIND_NONE);
    return REAL(connect)(fd, addr, len);
  }
  return set_errno(rc);
}

/* ---- listen and accept ------------------------------------------------------------- */

EXPORT int listen(int fd, int backlog) {
  struct fd_ent* e = g_guard ? NULL : lookup(fd);
  if (e == NULL || atomic_load(&e->kind) != KIND_PENDING || !(atomic_load(&e->flags) & FL_STREAM))
    return REAL(listen)(fd, backlog);
  /* The kernel listens too: plain TCP clients reach the program there. */
  int rc = REAL(listen)(fd, backlog);
  if (rc != 0) return rc;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  struct sockaddr_in local;
  if (REAL(getsockname)(fd, (struct sockaddr*)&ss, &len) != 0 ||
      addr_from_prog(e, (struct sockaddr*)&ss, len, 1, &local) != ADDR_V4) {
    atomic_store(&e->kind, KIND_NONE);
    return 0;
  }
  int d = decide_stream(fd, e, MN_ROLE_BIND, ntohl(local.sin_addr.s_addr), ntohs(local.sin_port));
  if (d <= 0) return set_errno(d);
  uint64_t h = 0;
  g_guard++;
  rc = g_ops->stream_listen(fd, &local, backlog, &h);
  g_guard--;
  if (rc < 0) {
    LOG(g_cfg.strict ? LOG_ERROR : LOG_WARNING, "fd %d: cannot offload listening port %u: %s", fd,
        ntohs(local.sin_port), strerror(-rc));
    if (g_cfg.strict) {
      atomic_store(&e->err, -rc);
      atomic_store_explicit(&e->kind, KIND_FAILED, memory_order_release);
      return set_errno(rc);
    }
    atomic_store(&e->kind, KIND_NONE);
    return 0;
  }
  /* accept looks at the kernel's queue without blocking: the twin stays
   * O_NONBLOCK (fcntl and ioctl show the program its own setting). */
  int fl = REAL(fcntl)(fd, F_GETFL);
  if (fl >= 0) REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK);
  if (stream_adopt(fd, e, h, FL_LISTEN, NULL, 0) != 0) {
    g_guard++;
    g_ops->close(h);
    g_guard--;
    atomic_store(&e->kind, KIND_NONE);
    return 0;
  }
  LOG(LOG_INFO, "fd %d: listening port %u offloaded", fd, ntohs(local.sin_port));
  return 0;
}

EXPORT int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  int fail;
  struct fd_ent* e = offloaded(fd, &fail);
  if (e == NULL || !(atomic_load(&e->flags) & FL_LISTEN))
    return fail ? -1 : REAL(accept4)(fd, addr, len, flags);
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) return set_errno(-EINVAL);
  int64_t timeout = -1;
  if (atomic_load(&e->flags) & FL_NONBLOCK) {
    timeout = 0;
  } else if (atomic_load(&e->rcvtimeo_ns) > 0) {
    timeout = atomic_load(&e->rcvtimeo_ns);
  }
  for (;;) {
    uint64_t conn = 0;
    struct sockaddr_in peer;
    g_guard++;
    int rc = g_ops->stream_accept(atomic_load(&e->handle), &conn, &peer, timeout);
    g_guard--;
    if (rc == 1) {
      /* A transport connection: a placeholder socket owns its fd number. */
      int domain = (atomic_load(&e->flags) & FL_INET6) ? AF_INET6 : AF_INET;
      int nfd = REAL(socket)(domain, SOCK_STREAM | (flags & (SOCK_NONBLOCK | SOCK_CLOEXEC)), 0);
      struct fd_ent* ne = nfd >= 0 ? entry_make(nfd) : NULL;
      if (ne == NULL) {
        int err = nfd < 0 ? errno : ENOMEM;
        if (nfd >= 0) REAL(close)(nfd);
        g_guard++;
        g_ops->close(conn);
        g_guard--;
        return set_errno(-err);
      }
      entry_new_socket(ne, ((flags & SOCK_NONBLOCK) ? FL_NONBLOCK : 0) |
                               (atomic_load(&e->flags) & FL_INET6) | FL_STREAM);
      if (stream_adopt(nfd, ne, conn, FL_CONN, NULL, 0) != 0) {
        atomic_store(&ne->kind, KIND_NONE);
        REAL(close)(nfd);
        g_guard++;
        g_ops->close(conn);
        g_guard--;
        return set_errno(-ENOMEM);
      }
      if (addr != NULL && len != NULL) addr_to_prog(ne, &peer, addr, len);
      return nfd;
    }
    if (rc == 0) {
      /* A plain TCP client, queued on the kernel twin. */
      int nfd = REAL(accept4)(fd, addr, len, flags);
      if (nfd >= 0) {
        if (lookup(nfd) != NULL) forget(nfd); /* a stale entry */
        g_guard++;
        g_ops->stream_kernel_accepted(atomic_load(&e->handle));
        g_guard--;
        return nfd;
      }
      /* Another thread took it first. */
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && timeout != 0) continue;
      return -1;
    }
    return set_errno(rc);
  }
}

EXPORT int accept(int fd, struct sockaddr* addr, socklen_t* len) {
  return accept4(fd, addr, len, 0);
}

/* ---- sendfile ------------------------------------------------------------------------- */

/* sendfile(2) to an offloaded stream socket: a copy through the shim, in
 * 64 KiB pieces (per-thread scratch memory). */
static ssize_t copy_to_stream(int out, struct fd_ent* e, int in, off_t* offset, size_t count) {
  enum { kPiece = 65536 };
  char* buf = scratch(SCRATCH_COPY, kPiece);
  if (buf == NULL) return set_errno(-ENOMEM);
  size_t done = 0;
  off_t pos = offset != NULL ? *offset : 0;
  while (done < count) {
    size_t want = count - done < kPiece ? count - done : kPiece;
    ssize_t r =
        offset != NULL ? pread(in, buf, want, pos + (off_t)done) : REAL(read)(in, buf, want);
    if (r < 0) {
      if (done > 0) break;
      return -1;
    }
    if (r == 0) break;
    struct iovec iov = {buf, (size_t)r};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    int64_t timeout = (atomic_load(&e->flags) & FL_NONBLOCK) ? 0 : -1;
    g_guard++;
    ssize_t w = g_ops->sendmsg(atomic_load(&e->handle), &m, 0, done > 0 ? 0 : timeout);
    g_guard--;
    if (w < 0) {
      /* The file position moved past what was not sent: give it back. */
      if (offset == NULL) lseek(in, -(off_t)r, SEEK_CUR);
      if (w == -MACHNET_EFALLBACK && done == 0) {
        if (stream_fallback(out, e) != 0) return -1;
        return REAL(sendfile)(out, in, offset, count);
      }
      if (done > 0) break;
      return set_errno(w);
    }
    done += (size_t)w;
    if (w < r) {
      if (offset == NULL) lseek(in, -(off_t)(r - w), SEEK_CUR);
      break;
    }
  }
  if (offset != NULL) *offset = pos + (off_t)done;
  return (ssize_t)done;
}

EXPORT ssize_t sendfile(int out, int in, off_t* offset, size_t count) {
  int fail;
  struct fd_ent* e = offloaded(out, &fail);
  if (e == NULL || !(atomic_load(&e->flags) & FL_CONN))
    return fail ? -1 : REAL(sendfile)(out, in, offset, count);
  return copy_to_stream(out, e, in, offset, count);
}

EXPORT ssize_t sendfile64(int out, int in, off_t* offset, size_t count) {
  return sendfile(out, in, offset, count);
}
