/* Data calls: the send and receive families, read/write, readv/writev,
 * recvmmsg/sendmmsg and their fortified variants. An offloaded socket's
 * calls go to the socket layer; a socket not decided yet is decided by its
 * first send; a blocking receive on one waits in slices for another thread
 * to decide it (pending_recv_wait). */
#include "shim.h"

#include <limits.h>
#include <stdlib.h>

/* The entry if fd is OFFLOAD and usable; sets *fail for FAILED/orphans. */
struct fd_ent* offloaded(int fd, int* fail) {
  *fail = 0;
  if (g_guard) return NULL;
  struct fd_ent* e = lookup(fd);
  if (e == NULL) return NULL;
  uint32_t k = atomic_load_explicit(&e->kind, memory_order_acquire);
  if (k == KIND_OFFLOAD) {
    /* A stream socket another fd (a dup) took to the kernel's TCP. */
    if ((atomic_load_explicit(&e->flags, memory_order_relaxed) & FL_STREAM) && stream_moved(fd, e))
      return NULL;
    if (atomic_load_explicit(&g_forked_child, memory_order_relaxed)) {
      /* A fork child: under machnetd the socket is taken over at its first
       * use (fork_adopt); with a standalone engine it is unusable here. */
      int err = fork_adoptable(e) ? fork_adopt() : EBADFD;
      if (err == 0 && atomic_load(&e->kind) == KIND_OFFLOAD) {
        close_deferred();
        return e;
      }
      static _Atomic int said;
      if (err == 0 || err == EBADFD) {
        err = EBADFD;
        if (!atomic_exchange(&said, 1))
          LOG(LOG_WARNING,
              "fd %d is an offloaded socket inherited through fork(); it cannot be used in the "
              "child (EBADFD)",
              fd);
      }
      *fail = 1;
      errno = err;
      return NULL;
    }
    /* Here, not before the lookup: the engine's own threads (the progress
     * thread, EAL's) run with g_guard 0 and make calls on their fds, never
     * on an offloaded one, while they may hold the socket layer's lock. */
    close_deferred();
    return e;
  }
  if (k == KIND_FAILED) {
    *fail = 1;
    errno = atomic_load(&e->err);
  }
  return NULL;
}

static inline int64_t recv_timeout(struct fd_ent* e) {
  if (atomic_load_explicit(&e->flags, memory_order_relaxed) & FL_NONBLOCK) return 0;
  int64_t t = atomic_load_explicit(&e->rcvtimeo_ns, memory_order_relaxed);
  return t > 0 ? t : -1;
}

static inline int64_t send_timeout(struct fd_ent* e) {
  if (atomic_load_explicit(&e->flags, memory_order_relaxed) & FL_NONBLOCK) return 0;
  int64_t t = atomic_load_explicit(&e->sndtimeo_ns, memory_order_relaxed);
  return t > 0 ? t : -1;
}

int every_handler_restarts(void) {
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  for (int sig = 1; sig < NSIG; sig++) {
    if (sigismember(&cur, sig) == 1) continue;
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) != 0) continue;
    int handler =
        (sa.sa_flags & SA_SIGINFO) || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    if (handler && !(sa.sa_flags & SA_RESTART)) return 0;
  }
  return 1;
}

/* ---- waiting on a socket not decided yet --------------------------------------
 * A thread may block in a receive on a UDP socket that is not decided yet
 * (bound to port 0) while another thread's first sendto offloads it
 * (sockperf's under-load receiver thread does exactly this). Returns 1 when
 * the socket became offloaded while waiting (take the engine path), 0 to
 * make the real call (data is there, or the call does not block, or fd is
 * not a pending socket), -1 with errno (EINTR, EAGAIN at SO_RCVTIMEO). */
static int pending_recv_wait(int fd, int flags) {
  if (g_guard || (flags & MSG_DONTWAIT)) return 0;
  struct fd_ent* e = lookup(fd);
  if (e == NULL || atomic_load(&e->kind) != KIND_PENDING ||
      (atomic_load(&e->flags) & FL_NONBLOCK) || !may_offload())
    return 0;
  int64_t t = atomic_load(&e->rcvtimeo_ns);
  int64_t deadline = t > 0 ? mono_ns() + t : INT64_MAX;
  for (;;) {
    int64_t now = mono_ns();
    if (now >= deadline) {
      errno = EAGAIN;
      return -1;
    }
    int64_t w = deadline - now < PENDING_SLICE_NS ? deadline - now : PENDING_SLICE_NS;
    struct timespec ts = {w / 1000000000, w % 1000000000};
    struct pollfd p = {fd, POLLIN, 0};
    int r = REAL(ppoll)(&p, 1, &ts, NULL);
    uint32_t k = atomic_load(&e->kind);
    if (k != KIND_PENDING) return k == KIND_OFFLOAD || k == KIND_FAILED;
    if (r > 0) return 0;
    if (r < 0 && errno == EINTR) {
      if (t > 0 || !every_handler_restarts()) return -1;
      continue;
    }
    if (r < 0) return 0; /* the real call reports it */
  }
}

/* The entry when fd is offloaded, possibly after waiting for a pending
 * socket to be decided; NULL: *fail set (errno), or the real call. */
static inline struct fd_ent* recv_target(int fd, int flags, int* fail) {
  struct fd_ent* e = offloaded(fd, fail);
  if (e != NULL || *fail) return e;
  int w = pending_recv_wait(fd, flags);
  if (w < 0) {
    *fail = 1;
    return NULL;
  }
  return w == 0 ? NULL : offloaded(fd, fail);
}

/* ---- send ------------------------------------------------------------------------ */

/* A send on an offloaded stream socket: the destination is the peer (TCP
 * ignores msg_name); a connect that fell back hands the call to the kernel. */
static ssize_t stream_sendmsg(int fd, struct fd_ent* e, const struct msghdr* m, int flags) {
  struct msghdr ms = *m;
  ms.msg_name = NULL;
  ms.msg_namelen = 0;
  g_guard++;
  ssize_t n = g_ops->sendmsg(atomic_load(&e->handle), &ms, flags, send_timeout(e));
  g_guard--;
  if (n == -MACHNET_EFALLBACK) {
    if (stream_fallback(fd, e) != 0) return -1;
    return REAL(sendmsg)(fd, m, flags);
  }
  return n < 0 ? set_errno(n) : n;
}

static ssize_t do_sendmsg(int fd, const struct msghdr* m, int flags) {
  struct fd_ent* e = g_guard ? NULL : lookup(fd);
  if (e == NULL) return REAL(sendmsg)(fd, m, flags);
  uint32_t k = atomic_load_explicit(&e->kind, memory_order_acquire);
  if (atomic_load_explicit(&e->flags, memory_order_relaxed) & FL_STREAM) {
    /* Stream sockets are decided at connect and listen, not by a send. */
    int fail;
    struct fd_ent* o = k == KIND_PENDING ? NULL : offloaded(fd, &fail);
    if (o == NULL) return k != KIND_PENDING && fail ? -1 : REAL(sendmsg)(fd, m, flags);
    return stream_sendmsg(fd, o, m, flags);
  }
  int inet6 = atomic_load_explicit(&e->flags, memory_order_relaxed) & FL_INET6;
  struct sockaddr_in a;
  struct msghdr m4;
  int what = ADDR_UNSPEC;
  if (m->msg_name != NULL && m->msg_namelen != 0)
    what = addr_from_prog(e, m->msg_name, m->msg_namelen, 0, &a);
  if (k == KIND_PENDING) {
    if (what != ADDR_V4) {
      ssize_t n = REAL(sendmsg)(fd, m, flags);
      /* A native IPv6 peer decides a dual-stack socket: the kernel's. */
      if (n >= 0 && what == ADDR_KERNEL) atomic_store(&e->kind, KIND_NONE);
      return n;
    }
    int d = decide(fd, e, MN_ROLE_CONNECT, ntohl(a.sin_addr.s_addr), ntohs(a.sin_port));
    if (d < 0) return set_errno(d);
    if (d == 0) return REAL(sendmsg)(fd, m, flags);
  }
  int fail;
  e = offloaded(fd, &fail);
  if (e == NULL) return fail ? -1 : REAL(sendmsg)(fd, m, flags);
  if (inet6) {
    /* The socket layer speaks sockaddr_in; native IPv6 peers are the
     * twin's (the kernel's). */
    if (what == ADDR_KERNEL) return REAL(sendmsg)(fd, m, flags);
    if (what == ADDR_BAD) return set_errno(-EINVAL);
    if (what == ADDR_V4) {
      m4 = *m;
      m4.msg_name = &a;
      m4.msg_namelen = sizeof(a);
      m = &m4;
    }
  }
  g_guard++;
  ssize_t n = g_ops->sendmsg(atomic_load(&e->handle), m, flags, send_timeout(e));
  g_guard--;
  if (n < 0) return set_errno(n);
  return n;
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr* m, int flags) {
  return do_sendmsg(fd, m, flags);
}

EXPORT ssize_t sendto(int fd, const void* buf, size_t len, int flags, const struct sockaddr* to,
                      socklen_t tolen) {
  if (g_guard || lookup(fd) == NULL) return REAL(sendto)(fd, buf, len, flags, to, tolen);
  struct iovec iov = {(void*)buf, len};
  struct msghdr m = {
      .msg_name = (void*)to, .msg_namelen = to ? tolen : 0, .msg_iov = &iov, .msg_iovlen = 1};
  return do_sendmsg(fd, &m, flags);
}

EXPORT ssize_t send(int fd, const void* buf, size_t len, int flags) {
  if (g_guard || lookup(fd) == NULL) return REAL(send)(fd, buf, len, flags);
  struct iovec iov = {(void*)buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  return do_sendmsg(fd, &m, flags);
}

EXPORT ssize_t write(int fd, const void* buf, size_t len) {
  if (g_guard || lookup(fd) == NULL) return REAL(write)(fd, buf, len);
  int fail;
  if (offloaded(fd, &fail) == NULL) return fail ? -1 : REAL(write)(fd, buf, len);
  struct iovec iov = {(void*)buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  return do_sendmsg(fd, &m, 0);
}

EXPORT ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  if (g_guard || lookup(fd) == NULL) return REAL(writev)(fd, iov, cnt);
  int fail;
  if (offloaded(fd, &fail) == NULL) return fail ? -1 : REAL(writev)(fd, iov, cnt);
  if (cnt < 0 || cnt > IOV_MAX) return set_errno(-EINVAL);
  struct msghdr m = {.msg_iov = (struct iovec*)iov, .msg_iovlen = (size_t)cnt};
  return do_sendmsg(fd, &m, 0);
}

EXPORT int sendmmsg(int fd, struct mmsghdr* v, unsigned int n, int flags) {
  if (g_guard || lookup(fd) == NULL) return REAL(sendmmsg)(fd, v, n, flags);
  unsigned int i;
  for (i = 0; i < n; i++) {
    ssize_t r = do_sendmsg(fd, &v[i].msg_hdr, flags);
    if (r < 0) {
      if (i == 0) return -1;
      break;
    }
    v[i].msg_len = (unsigned int)r;
  }
  return (int)i;
}

/* ---- receive ------------------------------------------------------------------------ */

static ssize_t do_recvmsg(int fd, struct fd_ent* e, struct msghdr* m, int flags) {
  if (atomic_load_explicit(&e->flags, memory_order_relaxed) & FL_STREAM) {
    void* prog_name = m->msg_name;
    socklen_t prog_len = m->msg_namelen;
    g_guard++;
    ssize_t n = g_ops->recvmsg(atomic_load(&e->handle), m, flags, recv_timeout(e));
    g_guard--;
    if (n == -MACHNET_EFALLBACK) {
      m->msg_name = prog_name;
      m->msg_namelen = prog_len;
      if (stream_fallback(fd, e) != 0) return -1;
      return REAL(recvmsg)(fd, m, flags);
    }
    /* TCP gives no source address. */
    m->msg_namelen = 0;
    return n < 0 ? set_errno(n) : n;
  }
  void* prog_name = m->msg_name;
  struct sockaddr_storage name;
  int inet6 =
      (atomic_load_explicit(&e->flags, memory_order_relaxed) & FL_INET6) && prog_name != NULL;
  socklen_t prog_len = m->msg_namelen;
  if (inet6) {
    /* The engine gives sockaddr_in, the twin sockaddr_in6. */
    m->msg_name = &name;
    m->msg_namelen = sizeof(name);
  }
  g_guard++;
  ssize_t n = g_ops->recvmsg(atomic_load(&e->handle), m, flags, recv_timeout(e));
  g_guard--;
  if (inet6) {
    if (n >= 0) {
      addr_name_out(e, &name, m->msg_namelen, m, prog_name, prog_len);
    } else {
      m->msg_name = prog_name;
      m->msg_namelen = prog_len;
    }
  }
  if (n < 0) return set_errno(n);
  return n;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr* m, int flags) {
  int fail;
  struct fd_ent* e = recv_target(fd, flags, &fail);
  if (e == NULL) return fail ? -1 : REAL(recvmsg)(fd, m, flags);
  return do_recvmsg(fd, e, m, flags);
}

EXPORT ssize_t recvfrom(int fd, void* buf, size_t len, int flags, struct sockaddr* from,
                        socklen_t* fromlen) {
  int fail;
  struct fd_ent* e = recv_target(fd, flags, &fail);
  if (e == NULL) return fail ? -1 : REAL(recvfrom)(fd, buf, len, flags, from, fromlen);
  struct iovec iov = {buf, len};
  struct msghdr m = {.msg_name = from,
                     .msg_namelen = (from && fromlen) ? *fromlen : 0,
                     .msg_iov = &iov,
                     .msg_iovlen = 1};
  if (from == NULL) m.msg_name = NULL;
  ssize_t n = do_recvmsg(fd, e, &m, flags);
  if (n >= 0 && from != NULL && fromlen != NULL) *fromlen = m.msg_namelen;
  return n;
}

EXPORT ssize_t recv(int fd, void* buf, size_t len, int flags) {
  int fail;
  struct fd_ent* e = recv_target(fd, flags, &fail);
  if (e == NULL) return fail ? -1 : REAL(recv)(fd, buf, len, flags);
  struct iovec iov = {buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  return do_recvmsg(fd, e, &m, flags);
}

EXPORT ssize_t read(int fd, void* buf, size_t len) {
  int fail;
  struct fd_ent* e = recv_target(fd, 0, &fail);
  if (e == NULL) return fail ? -1 : REAL(read)(fd, buf, len);
  struct iovec iov = {buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  return do_recvmsg(fd, e, &m, 0);
}

EXPORT ssize_t readv(int fd, const struct iovec* iov, int cnt) {
  int fail;
  struct fd_ent* e = recv_target(fd, 0, &fail);
  if (e == NULL) return fail ? -1 : REAL(readv)(fd, iov, cnt);
  if (cnt < 0 || cnt > IOV_MAX) return set_errno(-EINVAL);
  struct msghdr m = {.msg_iov = (struct iovec*)iov, .msg_iovlen = (size_t)cnt};
  return do_recvmsg(fd, e, &m, 0);
}

/* Fortified callers (-D_FORTIFY_SOURCE) reach these instead. */
EXPORT ssize_t __read_chk(int fd, void* buf, size_t len, size_t buflen) {
  if (len > buflen) abort();
  return read(fd, buf, len);
}
EXPORT ssize_t __recv_chk(int fd, void* buf, size_t len, size_t buflen, int flags) {
  if (len > buflen) abort();
  return recv(fd, buf, len, flags);
}
EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t len, size_t buflen, int flags,
                              struct sockaddr* from, socklen_t* fromlen) {
  if (len > buflen) abort();
  return recvfrom(fd, buf, len, flags, from, fromlen);
}

EXPORT int recvmmsg(int fd, struct mmsghdr* v, unsigned int n, int flags, struct timespec* ts) {
  int fail;
  struct fd_ent* e = offloaded(fd, &fail);
  if (e == NULL) return fail ? -1 : REAL(recvmmsg)(fd, v, n, flags, ts);
  /* The timeout argument is not applied yet (the kernel checks it only
   * between datagrams anyway); SO_RCVTIMEO is. */
  (void)ts;
  unsigned int i;
  for (i = 0; i < n; i++) {
    /* Blocking sockets wait for every datagram, as the kernel does, unless
     * MSG_WAITFORONE: then only for the first. */
    int fl = flags & ~MSG_WAITFORONE;
    if (i > 0 && (flags & MSG_WAITFORONE)) fl |= MSG_DONTWAIT;
    ssize_t r = do_recvmsg(fd, e, &v[i].msg_hdr, fl);
    if (r < 0) {
      if (i == 0) return -1;
      break;
    }
    v[i].msg_len = (unsigned int)r;
  }
  return (int)i;
}
