/* libmachnet_preload.so: the LD_PRELOAD shim.
 *
 * It is small on purpose and links no DPDK (nor libstdc++): a program that
 * never opens an offloaded socket pays only for loading this object. It
 *   - resolves the real libc functions lazily with dlsym(RTLD_NEXT), so the
 *     interposers work before main() and from other libraries' constructors;
 *   - keeps an fd table: which fds are AF_INET datagram sockets not decided
 *     yet (PENDING), offloaded (OFFLOAD, with the socket layer's handle), or
 *     failed in strict mode (FAILED). Every other fd costs one lookup;
 *   - decides at bind/connect/first sendto from the rules (rules.c) and, on
 *     the first offload, dlopen()s libmachnet.so and takes its entry table
 *     (src/socket/socket_ops.h), which starts the engine;
 *   - guards re-entry: while a thread is inside the engine (dlopen, EAL,
 *     datapath), its socket calls go straight to libc;
 *   - keeps, per epoll fd, the members whose readiness the kernel cannot
 *     see (offloaded sockets, nested epoll fds) and applies level, EPOLLET
 *     and EPOLLONESHOT to their engine side;
 *   - lets a wait on a socket not decided yet notice when another thread
 *     offloads it (slices of PENDING_SLICE_NS).
 * Every offloaded socket keeps its kernel twin, the socket created at
 * socket(): it owns the fd number, holds the port in the kernel and is the
 * fallback. Semantics and limits: machnet.conf(5), section PRELOAD. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "machnetd/control_protocol.h"
#include "rules.h"
#include "socket/socket_ops.h"

#define EXPORT __attribute__((visibility("default")))

#ifndef MACHNET_DEFAULT_LIBRARY
#define MACHNET_DEFAULT_LIBRARY "libmachnet.so.0"
#endif

/* ---- real functions ---------------------------------------------------- */

static void* resolve(const char* name) {
  void* p = dlsym(RTLD_NEXT, name);
  return p;
}

/* One lazily resolved pointer per function: safe before main and from any
 * thread (a race only stores the same value twice). */
#define REAL_FN(ret, name, ...)                                                  \
  static ret (*real_##name##_p)(__VA_ARGS__);                                    \
  static inline ret (*real_##name(void))(__VA_ARGS__) {                          \
    ret (*p)(__VA_ARGS__) = __atomic_load_n(&real_##name##_p, __ATOMIC_RELAXED); \
    if (p == NULL) {                                                             \
      p = (ret(*)(__VA_ARGS__))resolve(#name);                                   \
      __atomic_store_n(&real_##name##_p, p, __ATOMIC_RELAXED);                   \
    }                                                                            \
    return p;                                                                    \
  }

REAL_FN(int, socket, int, int, int)
REAL_FN(int, bind, int, const struct sockaddr*, socklen_t)
REAL_FN(int, connect, int, const struct sockaddr*, socklen_t)
REAL_FN(int, close, int)
REAL_FN(ssize_t, sendto, int, const void*, size_t, int, const struct sockaddr*, socklen_t)
REAL_FN(ssize_t, send, int, const void*, size_t, int)
REAL_FN(ssize_t, sendmsg, int, const struct msghdr*, int)
REAL_FN(ssize_t, recvfrom, int, void*, size_t, int, struct sockaddr*, socklen_t*)
REAL_FN(ssize_t, recv, int, void*, size_t, int)
REAL_FN(ssize_t, recvmsg, int, struct msghdr*, int)
REAL_FN(ssize_t, read, int, void*, size_t)
REAL_FN(ssize_t, write, int, const void*, size_t)
REAL_FN(ssize_t, readv, int, const struct iovec*, int)
REAL_FN(ssize_t, writev, int, const struct iovec*, int)
REAL_FN(int, getsockname, int, struct sockaddr*, socklen_t*)
REAL_FN(int, getpeername, int, struct sockaddr*, socklen_t*)
REAL_FN(int, setsockopt, int, int, int, const void*, socklen_t)
REAL_FN(int, getsockopt, int, int, int, void*, socklen_t*)
REAL_FN(int, fcntl, int, int, ...)
REAL_FN(int, fcntl64, int, int, ...)
REAL_FN(int, ioctl, int, unsigned long, ...)
REAL_FN(int, poll, struct pollfd*, nfds_t, int)
REAL_FN(int, ppoll, struct pollfd*, nfds_t, const struct timespec*, const sigset_t*)
REAL_FN(int, select, int, fd_set*, fd_set*, fd_set*, struct timeval*)
REAL_FN(int, pselect, int, fd_set*, fd_set*, fd_set*, const struct timespec*, const sigset_t*)
REAL_FN(pid_t, fork, void)
REAL_FN(int, dup, int)
REAL_FN(int, dup2, int, int)
REAL_FN(int, dup3, int, int, int)
REAL_FN(int, recvmmsg, int, struct mmsghdr*, unsigned int, int, struct timespec*)
REAL_FN(int, sendmmsg, int, struct mmsghdr*, unsigned int, int)
REAL_FN(int, epoll_ctl, int, int, int, struct epoll_event*)
REAL_FN(int, epoll_wait, int, struct epoll_event*, int, int)
REAL_FN(int, epoll_pwait, int, struct epoll_event*, int, int, const sigset_t*)
REAL_FN(int, epoll_pwait2, int, struct epoll_event*, int, const struct timespec*, const sigset_t*)

/* ---- re-entry guard ---------------------------------------------------- */

/* > 0 while this thread runs engine code: its socket calls are the engine's. */
static __thread int g_guard __attribute__((tls_model("initial-exec")));

/* ---- fd table ---------------------------------------------------------- */

/* KIND_EPOLL: an epoll fd holding at least one offloaded fd (ep below). */
enum { KIND_NONE = 0, KIND_PENDING = 1, KIND_OFFLOAD = 2, KIND_FAILED = 3, KIND_EPOLL = 4 };

struct ep_set;
enum { FL_NONBLOCK = 1 };

struct fd_ent {
  _Atomic uint32_t kind;
  _Atomic uint32_t flags;
  _Atomic int64_t rcvtimeo_ns; /* 0 = none (wait forever) */
  _Atomic int64_t sndtimeo_ns;
  _Atomic uint64_t handle;   /* socket layer handle when OFFLOAD */
  _Atomic int err;           /* errno when FAILED */
  _Atomic int shut;          /* shutdown(2) while PENDING: SHUT_* + 1 bits */
  struct ep_set* _Atomic ep; /* when EPOLL */
};

#define FD_PAGE_BITS 12
#define FD_PAGE (1u << FD_PAGE_BITS)
#define FD_MAX (1u << 20)
static struct fd_ent* _Atomic g_pages[FD_MAX / FD_PAGE];

/* Entry of a tracked fd, NULL for every fd the shim does not care about. */
static inline struct fd_ent* lookup(int fd) {
  if ((unsigned)fd >= FD_MAX) return NULL;
  struct fd_ent* page =
      atomic_load_explicit(&g_pages[(unsigned)fd >> FD_PAGE_BITS], memory_order_acquire);
  if (page == NULL) return NULL;
  struct fd_ent* e = &page[(unsigned)fd & (FD_PAGE - 1)];
  return atomic_load_explicit(&e->kind, memory_order_acquire) == KIND_NONE ? NULL : e;
}

static struct fd_ent* entry_make(int fd) {
  if ((unsigned)fd >= FD_MAX) return NULL;
  struct fd_ent* _Atomic* slot = &g_pages[(unsigned)fd >> FD_PAGE_BITS];
  struct fd_ent* page = atomic_load(slot);
  if (page == NULL) {
    /* mmap, not malloc: this may run before main or inside a malloc hook. */
    struct fd_ent* p = mmap(NULL, sizeof(struct fd_ent) * FD_PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    struct fd_ent* expected = NULL;
    if (atomic_compare_exchange_strong(slot, &expected, p)) {
      page = p;
    } else {
      munmap(p, sizeof(struct fd_ent) * FD_PAGE);
      page = expected;
    }
  }
  return &page[(unsigned)fd & (FD_PAGE - 1)];
}

/* ---- configuration and the engine -------------------------------------- */

static pthread_mutex_t g_decide_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mn_config g_cfg;
static int g_cfg_state; /* 0 = not loaded, 1 = ok, -1 = bad: nothing is offloaded */
static const struct machnet_socket_ops_v1* g_ops;
static int g_engine_err;           /* > 0: the engine cannot start (errno) */
static _Atomic int g_forked_child; /* this process is a fork() child of an engine owner */
static int g_engine_up;

static void log_line(const char* fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof(buf) - 2) n = (int)sizeof(buf) - 2;
  buf[n++] = '\n';
  ssize_t w = real_write()(2, buf, (size_t)n);
  (void)w;
}

/* g_decide_mu held. */
static int config_ready(void) {
  if (g_cfg_state == 0) {
    char err[600];
    if (mn_config_load(&g_cfg, MACHNET_DEFAULT_LIBRARY, err, sizeof(err)) != 0) {
      log_line("machnet: %s; nothing is offloaded", err);
      g_cfg_state = -1;
    } else {
      g_cfg_state = 1;
    }
  }
  return g_cfg_state == 1;
}

/* ---- machnetd discovery ------------------------------------------------
 * With machnetd the device and the address are the daemon's: when no ip is
 * configured, the shim asks the daemon once (MN_CTL_INFO, no lease), at the
 * first decision that needs the address. The engine attaches by itself. */
#define MACHNETD_INFO_TIMEOUT_MS 300

static int g_daemon_state; /* 0 = not asked, 1 = answered, -1 = not reachable */
static char g_daemon_why[200];
static struct mn_ctl_info_reply g_daemon_info;

/* One INFO request on a fresh close-on-exec SOCK_SEQPACKET socket. Returns 0
 * or -1 with why filled. Only real libc functions (g_guard held anyway). */
static int machnetd_info(const char* path, struct mn_ctl_info_reply* out, char* why,
                         size_t whylen) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof(sa.sun_path)) {
    snprintf(why, whylen, "bad socket path");
    return -1;
  }
  memcpy(sa.sun_path, path, n);
  int fd = real_socket()(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(why, whylen, "socket: %s", strerror(errno));
    return -1;
  }
  int rc = -1;
  struct mn_ctl_header req = {MN_CTL_MAGIC, MN_CTL_VERSION, MN_CTL_INFO, 1, 0};
  if (real_connect()(fd, (const struct sockaddr*)&sa, sizeof(sa)) != 0) {
    snprintf(why, whylen, "%s", strerror(errno));
    goto out;
  }
  ssize_t w;
  do {
    w = real_send()(fd, &req, sizeof(req), MSG_NOSIGNAL);
  } while (w < 0 && errno == EINTR);
  if (w != (ssize_t)sizeof(req)) {
    snprintf(why, whylen, "send: %s", w < 0 ? strerror(errno) : "short");
    goto out;
  }
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long spent = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
    if (spent >= MACHNETD_INFO_TIMEOUT_MS) {
      snprintf(why, whylen, "no answer within %d ms", MACHNETD_INFO_TIMEOUT_MS);
      goto out;
    }
    struct pollfd p = {fd, POLLIN, 0};
    int r = real_poll()(&p, 1, (int)(MACHNETD_INFO_TIMEOUT_MS - spent));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      snprintf(why, whylen, "poll: %s", strerror(errno));
      goto out;
    }
    if (r > 0) break;
  }
  struct mn_ctl_info_reply rep;
  ssize_t got;
  do {
    got = real_recv()(fd, &rep, sizeof(rep), MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < (ssize_t)sizeof(struct mn_ctl_header) || rep.h.magic != MN_CTL_MAGIC ||
      rep.h.type != MN_CTL_INFO || rep.h.seq != 1) {
    snprintf(why, whylen, "%s", got < 0 ? strerror(errno) : got == 0 ? "closed" : "bad reply");
    goto out;
  }
  if (rep.h.status != 0) {
    snprintf(why, whylen, "INFO: %s", strerror(rep.h.status < 0 ? -rep.h.status : EPROTO));
    goto out;
  }
  if (got < (ssize_t)sizeof(rep) || rep.ip == 0) {
    snprintf(why, whylen, "short INFO reply");
    goto out;
  }
  *out = rep;
  rc = 0;
out:
  real_close()(fd);
  return rc;
}

/* g_decide_mu held. Asks machnetd once; 1 when it answered (g_cfg.engine_ip
 * is then known: the configured one, else the daemon's). */
static int ask_machnetd(void) {
  if (g_daemon_state != 0) return g_daemon_state == 1;
  g_daemon_state = -1;
  if (g_cfg.machnetd == MN_MACHNETD_OFF) {
    snprintf(g_daemon_why, sizeof(g_daemon_why), "machnetd = off");
    return 0;
  }
  g_guard++;
  int rc = machnetd_info(g_cfg.machnetd_socket, &g_daemon_info, g_daemon_why, sizeof(g_daemon_why));
  g_guard--;
  if (rc != 0) return 0;
  g_daemon_state = 1;
  if (g_cfg.engine_ip == 0) g_cfg.engine_ip = g_daemon_info.ip;
  return 1;
}

/* g_decide_mu held. The engine's address, asking machnetd if need be (0: unknown). */
static uint32_t engine_ip(void) {
  if (g_cfg.engine_ip == 0 && g_cfg.machnetd != MN_MACHNETD_OFF) ask_machnetd();
  return g_cfg.engine_ip;
}

/* g_decide_mu held. Returns 0 when the engine runs, else an errno. */
static int engine_ready(void) {
  if (g_engine_up) return 0;
  if (atomic_load(&g_forked_child)) return ENETDOWN;
  if (g_engine_err) return g_engine_err;
  char msg[1024] = "";
  if ((!g_cfg.have_device || g_cfg.engine_ip == 0) &&
      (g_cfg.machnetd == MN_MACHNETD_OFF || !ask_machnetd())) {
    /* Not worth loading DPDK to learn that: say what is missing. */
    g_engine_err = ENETDOWN;
    const char* tail =
        g_cfg.strict ? "offloaded sockets fail (strict)" : "every socket stays on the kernel";
    char daemon[400];
    if (g_cfg.machnetd == MN_MACHNETD_OFF)
      snprintf(daemon, sizeof(daemon), "machnetd = off");
    else
      snprintf(daemon, sizeof(daemon),
               "machnetd is not reachable at %s (%s; machnetd.socket, MACHNET_MACHNETD_SOCKET)",
               g_cfg.machnetd_socket, g_daemon_why);
    if (g_cfg.path[0])
      log_line(
          "machnet: no engine: %s, and no standalone engine is configured: set device and ip "
          "in %s (or MACHNET_DEVICE, MACHNET_IP); %s",
          daemon, g_cfg.path, tail);
    else
      log_line(
          "machnet: no engine: %s, and no standalone engine is configured: no configuration "
          "file (MACHNET_CONFIG, /etc/machnet/machnet.conf) and no MACHNET_DEVICE, MACHNET_IP; %s",
          daemon, tail);
    return ENETDOWN;
  }
  g_guard++;
  // RTLD_GLOBAL puts libmachnet ahead of librte_eal in the global scope, so
  // the PMDs EAL loads later bind to its memif guard (src/engine/memif_guard.h).
  void* lib = dlopen(g_cfg.library, RTLD_NOW | RTLD_GLOBAL);
  machnet_socket_ops_v1_fn fn =
      lib ? (machnet_socket_ops_v1_fn)dlsym(lib, "machnet_socket_ops_v1") : NULL;
  const struct machnet_socket_ops_v1* ops = fn ? fn() : NULL;
  int rc;
  if (lib == NULL) {
    snprintf(msg, sizeof(msg), "dlopen: %s", dlerror());
    rc = ELIBACC;
  } else if (ops == NULL || ops->version != MACHNET_SOCKET_OPS_VERSION ||
             ops->size < sizeof(*ops)) {
    snprintf(msg, sizeof(msg), "%.900s: no matching machnet_socket_ops_v1", g_cfg.library);
    rc = ELIBBAD;
  } else {
    struct machnet_libc libc = {real_ppoll(), real_recvmsg(), real_sendmsg(),
                                (int (*)(int, unsigned long, void*))real_ioctl()};
    rc = -ops->init(&libc, g_cfg.path, msg, sizeof(msg));
  }
  g_guard--;
  if (rc != 0) {
    g_engine_err = rc;
    log_line("machnet: cannot start the engine: %s; %s", msg,
             g_cfg.strict ? "offloaded sockets fail (strict)" : "every socket stays on the kernel");
    return rc;
  }
  g_ops = ops;
  g_engine_up = 1;
  char rules[1024];
  mn_rules_describe(&g_cfg, rules, sizeof(rules));
  log_line("machnet: offloading UDP (%s) through %s", rules, msg);
  return 0;
}

static inline int64_t tv_to_ns(const struct timeval* tv) {
  return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
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

static inline int set_errno(long rc) {
  if (rc < 0) {
    errno = (int)-rc;
    return -1;
  }
  return 0;
}

/* Offloads fd now (g_decide_mu held, fd PENDING, twin bound). Returns 0, or
 * an errno when it cannot (the caller applies strict mode). */
static int offload_now(int fd, struct fd_ent* e) {
  int err = engine_ready();
  if (err != 0) return err;
  struct sockaddr_in local;
  socklen_t len = sizeof(local);
  if (real_getsockname()(fd, (struct sockaddr*)&local, &len) != 0) return errno;
  uint64_t h = 0;
  g_guard++;
  int rc = g_ops->udp_open(fd, &local, &h);
  g_guard--;
  if (rc < 0) {
    log_line("machnet: fd %d: cannot offload port %u: %s", fd, ntohs(local.sin_port),
             strerror(-rc));
    return -rc;
  }
  /* shutdown(2) before the decision: the engine side gets the bits too. */
  int shut = atomic_load(&e->shut);
  if (shut != 0) {
    g_guard++;
    g_ops->shutdown(h, shut == 3 ? SHUT_RDWR : shut == 1 ? SHUT_RD : SHUT_WR);
    g_guard--;
  }
  atomic_store(&e->handle, h);
  atomic_store_explicit(&e->kind, KIND_OFFLOAD, memory_order_release);
  return 0;
}

/* A rule said offload but it cannot be done: strict mode fails the socket. */
static int offload_failed(struct fd_ent* e, int err) {
  if (g_cfg.strict) {
    atomic_store(&e->err, err);
    atomic_store_explicit(&e->kind, KIND_FAILED, memory_order_release);
    return -err;
  }
  atomic_store_explicit(&e->kind, KIND_NONE, memory_order_release);
  return 0;
}

/* Decides a PENDING socket. addr/port host order. Returns 1 offloaded,
 * 0 kernel (or left pending when defer), -errno (strict failure). */
static int decide(int fd, struct fd_ent* e, int role, uint32_t addr, uint16_t port) {
  pthread_mutex_lock(&g_decide_mu);
  int rc = 0;
  if (atomic_load(&e->kind) != KIND_PENDING) {
    rc = atomic_load(&e->kind) == KIND_OFFLOAD;
    goto out;
  }
  if (!config_ready()) {
    atomic_store(&e->kind, KIND_NONE);
    goto out;
  }
  const char* why;
  /* A bind to a specific address is offloaded only on the engine's. */
  if (role == MN_ROLE_BIND && addr != 0) engine_ip();
  if (role == MN_ROLE_BIND && port == 0 && (addr == 0 || addr != g_cfg.engine_ip)) {
    goto out; /* ephemeral bind: decided at connect or the first sendto */
  }
  if (mn_decide(&g_cfg, role, addr, port, &why) != MN_OFFLOAD) {
    atomic_store(&e->kind, KIND_NONE);
    goto out;
  }
  if (atomic_load(&g_forked_child)) {
    rc = offload_failed(e, ENETDOWN);
    goto out;
  }
  /* The twin must hold a port before the engine takes the same one. */
  struct sockaddr_in local;
  socklen_t len = sizeof(local);
  if (real_getsockname()(fd, (struct sockaddr*)&local, &len) == 0 && local.sin_port == 0) {
    struct sockaddr_in any = {.sin_family = AF_INET};
    if (real_bind()(fd, (struct sockaddr*)&any, sizeof(any)) != 0) {
      rc = offload_failed(e, errno);
      goto out;
    }
  }
  int err = offload_now(fd, e);
  rc = err == 0 ? 1 : offload_failed(e, err);
out:
  pthread_mutex_unlock(&g_decide_mu);
  return rc;
}

/* ---- interposers -------------------------------------------------------- */

EXPORT int socket(int domain, int type, int protocol) {
  int fd = real_socket()(domain, type, protocol);
  if (fd < 0 || g_guard) return fd;
  if (domain == AF_INET && (type & 0xf) == SOCK_DGRAM &&
      (protocol == 0 || protocol == IPPROTO_UDP)) {
    struct fd_ent* e = entry_make(fd);
    if (e != NULL) {
      atomic_store(&e->flags, (type & SOCK_NONBLOCK) ? FL_NONBLOCK : 0);
      atomic_store(&e->rcvtimeo_ns, 0);
      atomic_store(&e->sndtimeo_ns, 0);
      atomic_store(&e->handle, 0);
      atomic_store(&e->err, 0);
      atomic_store(&e->shut, 0);
      atomic_store_explicit(&e->kind, KIND_PENDING, memory_order_release);
    }
  } else {
    struct fd_ent* e = lookup(fd); /* stale entry of an fd closed behind our back */
    if (e != NULL) atomic_store(&e->kind, KIND_NONE);
  }
  return fd;
}

/* ---- epoll sets ---------------------------------------------------------
 * The kernel epoll set holds every fd, the twins of offloaded sockets
 * included (their kernel-path readiness comes from there). Beside it the
 * shim keeps, per epoll fd, the members the kernel cannot see the whole
 * readiness of: offloaded sockets (engine-side readiness) and other epoll
 * fds (an epoll fd inside another one is readable when one of its offloaded
 * members is). epoll_wait adds their readiness to the kernel's events:
 *   - level-triggered: reported while ready;
 *   - EPOLLET: reported when ready and something happened since the last
 *     report (a datagram arrived through the engine, for EPOLLOUT one was
 *     sent, or EPOLL_CTL_ADD/MOD), with every ready bit, as the kernel
 *     does; a nested epoll fd once per change from not ready to ready;
 *   - EPOLLONESHOT: disarmed after one report, from the engine or from the
 *     kernel, until EPOLL_CTL_MOD (the twin is disarmed in the kernel too).
 * An offloaded fd may sit in any number of epoll sets. Sets are never
 * freed: a closed epoll fd's set is reused with a new generation, so a
 * stale reference from an enclosing set is recognised. */
struct ep_set;

struct ep_member {
  int fd;
  uint64_t handle;      /* offloaded socket, 0 for a nested epoll fd */
  struct ep_set* inner; /* nested epoll fd */
  uint32_t inner_gen;
  uint32_t events;
  epoll_data_t data;
  int pend;        /* a socket not decided yet: becomes an offloaded member */
  int disarmed;    /* EPOLLONESHOT reported */
  int fresh;       /* EPOLLET: not evaluated since ADD/MOD */
  uint64_t rx, tx; /* EPOLLET: the socket's counters at the last report */
  uint64_t wake;   /* EPOLLET, nested: the inner set's counters at the last report */
};

struct ep_set {
  pthread_mutex_t mu;
  _Atomic uint32_t gen;
  _Atomic int n;
  int cap;
  struct ep_member* m;
  struct ep_set* next_free;
};

static pthread_mutex_t g_ep_free_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ep_set* g_ep_free;

static struct ep_set* ep_alloc(void) {
  pthread_mutex_lock(&g_ep_free_mu);
  struct ep_set* set = g_ep_free;
  if (set != NULL) g_ep_free = set->next_free;
  pthread_mutex_unlock(&g_ep_free_mu);
  if (set != NULL) return set;
  set = calloc(1, sizeof(*set));
  if (set != NULL) pthread_mutex_init(&set->mu, NULL);
  return set;
}

/* The epoll fd is gone: empty the set, new generation, back to the pool. */
static void ep_free(struct ep_set* set) {
  if (set == NULL) return;
  pthread_mutex_lock(&set->mu);
  atomic_store(&set->n, 0);
  atomic_fetch_add(&set->gen, 1);
  pthread_mutex_unlock(&set->mu);
  pthread_mutex_lock(&g_ep_free_mu);
  set->next_free = g_ep_free;
  g_ep_free = set;
  pthread_mutex_unlock(&g_ep_free_mu);
}

/* The member list of epfd, created when create is set. */
static struct ep_set* ep_get(int epfd, int create) {
  struct fd_ent* e = lookup(epfd);
  if (e != NULL && atomic_load(&e->kind) == KIND_EPOLL) return atomic_load(&e->ep);
  if (!create || e != NULL) return NULL;
  /* Two threads adding the first offloaded fds to one epoll set at once
   * must not make two lists: creation is serialised (it is rare). */
  pthread_mutex_lock(&g_decide_mu);
  struct ep_set* set = NULL;
  e = lookup(epfd);
  if (e != NULL) {
    if (atomic_load(&e->kind) == KIND_EPOLL) set = atomic_load(&e->ep);
  } else if ((e = entry_make(epfd)) != NULL && (set = ep_alloc()) != NULL) {
    atomic_store(&e->ep, set);
    atomic_store_explicit(&e->kind, KIND_EPOLL, memory_order_release);
  }
  pthread_mutex_unlock(&g_decide_mu);
  return set;
}

/* Forgets fd; gives the offloaded socket back to the socket layer. */
static void forget(int fd) {
  struct fd_ent* e = lookup(fd);
  if (e == NULL) return;
  uint32_t kind = atomic_exchange(&e->kind, KIND_NONE);
  uint64_t h = atomic_exchange(&e->handle, 0);
  if (kind == KIND_EPOLL) ep_free(atomic_exchange(&e->ep, NULL));
  /* A fork child never touches the parent's engine: only the twin goes. */
  if (kind == KIND_OFFLOAD && h != 0 && !atomic_load(&g_forked_child)) {
    g_guard++;
    g_ops->close(h);
    g_guard--;
  }
}

EXPORT int close(int fd) {
  if (!g_guard) forget(fd);
  return real_close()(fd);
}

/* Ranges closed at once (closefrom, close_range, as used before exec). */
REAL_FN(int, close_range, unsigned int, unsigned int, int)
REAL_FN(void, closefrom, int)

static void forget_range(unsigned lo, unsigned hi) {
  if (g_guard) return;
  for (unsigned page = lo >> FD_PAGE_BITS; page < FD_MAX / FD_PAGE && page <= (hi >> FD_PAGE_BITS);
       page++) {
    if (atomic_load(&g_pages[page]) == NULL) continue;
    unsigned a = page << FD_PAGE_BITS, b = a + FD_PAGE - 1;
    for (unsigned fd = a < lo ? lo : a; fd <= b && fd <= hi; fd++) forget((int)fd);
  }
}

EXPORT int close_range(unsigned int lo, unsigned int hi, int flags) {
  /* CLOSE_RANGE_CLOEXEC only marks the fds: they stay open until exec. */
  if (lo <= hi && !(flags & CLOSE_RANGE_CLOEXEC)) forget_range(lo, hi);
  return real_close_range()(lo, hi, flags);
}

EXPORT void closefrom(int lo) {
  if (lo >= 0) forget_range((unsigned)lo, ~0u);
  real_closefrom()(lo);
}

/* fd is OFFLOAD but this is a fork child: the socket is unusable here. */
static int orphan(int fd) {
  static _Atomic int said;
  if (!atomic_exchange(&said, 1))
    log_line(
        "machnet: fd %d is an offloaded socket inherited through fork(); it cannot be used "
        "in the child (EBADFD)",
        fd);
  errno = EBADFD;
  return -1;
}

/* The entry if fd is OFFLOAD and usable; sets *fail for FAILED/orphans. */
static inline struct fd_ent* offloaded(int fd, int* fail) {
  *fail = 0;
  if (g_guard) return NULL;
  struct fd_ent* e = lookup(fd);
  if (e == NULL) return NULL;
  uint32_t k = atomic_load_explicit(&e->kind, memory_order_acquire);
  if (k == KIND_OFFLOAD) {
    if (atomic_load_explicit(&g_forked_child, memory_order_relaxed)) {
      *fail = 1;
      orphan(fd);
      return NULL;
    }
    return e;
  }
  if (k == KIND_FAILED) {
    *fail = 1;
    errno = atomic_load(&e->err);
  }
  return NULL;
}

/* ---- waiting on a socket not decided yet --------------------------------
 * A thread may block in a receive, poll or epoll on a UDP socket that is not
 * decided yet (bound to port 0) while another thread's first sendto offloads
 * it (sockperf's under-load receiver thread does exactly this). Such waits
 * run in slices of PENDING_SLICE_NS on the kernel twin and look again: once
 * the socket is offloaded they continue on the engine path. */
#define PENDING_SLICE_NS 10000000
/* A sleep slice of epoll_wait when the engine cannot wake it (nested sets). */
#define EP_SLICE_NS 200000

/* Could a PENDING socket still be offloaded? (no: bad rules, no engine) */
static inline int may_offload(void) {
  if (g_cfg_state == -1 || g_engine_err != 0 || atomic_load(&g_forked_child)) return 0;
  return g_cfg_state == 0 || (g_cfg.have_device && g_cfg.engine_ip != 0) ||
         (g_cfg.machnetd != MN_MACHNETD_OFF && g_daemon_state != -1);
}

static int64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The kernel restarts a receive after a handler with SA_RESTART; which
 * signal arrived is not known here, so restart only when every caught
 * signal the thread lets through has it (as the socket layer does). */
static int every_handler_restarts(void) {
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

/* Before a receive on fd that is not offloaded: returns 1 when the socket
 * became offloaded while waiting (take the engine path), 0 to make the real
 * call (data is there, or the call does not block, or fd is not a pending
 * socket), -1 with errno (EINTR, EAGAIN at SO_RCVTIMEO). */
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
    int r = real_ppoll()(&p, 1, &ts, NULL);
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

EXPORT int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  struct fd_ent* e = g_guard ? NULL : lookup(fd);
  if (e == NULL || atomic_load(&e->kind) != KIND_PENDING || addr == NULL ||
      len < sizeof(struct sockaddr_in) || addr->sa_family != AF_INET)
    return real_bind()(fd, addr, len);
  const struct sockaddr_in* a = (const struct sockaddr_in*)addr;
  int rc = real_bind()(fd, addr, len);
  if (rc != 0 && errno == EADDRNOTAVAIL) {
    /* The engine's own address is not the kernel's: let the twin hold the
     * port there (IP_FREEBIND) when the rules offload it. */
    pthread_mutex_lock(&g_decide_mu);
    int mine = config_ready() && engine_ip() != 0 && ntohl(a->sin_addr.s_addr) == g_cfg.engine_ip;
    pthread_mutex_unlock(&g_decide_mu);
    if (!mine) return rc;
    int one = 1;
    real_setsockopt()(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
    rc = real_bind()(fd, addr, len);
    if (rc != 0) return rc;
  } else if (rc != 0) {
    return rc;
  }
  int d = decide(fd, e, MN_ROLE_BIND, ntohl(a->sin_addr.s_addr), ntohs(a->sin_port));
  return set_errno(d < 0 ? d : 0);
}

EXPORT int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  struct fd_ent* e = g_guard ? NULL : lookup(fd);
  if (e == NULL) return real_connect()(fd, addr, len);
  uint32_t k = atomic_load(&e->kind);
  int fail;
  if (k == KIND_FAILED || k == KIND_OFFLOAD) {
    if (offloaded(fd, &fail) == NULL) return -1;
  }
  if (addr == NULL || len < sizeof(sa_family_t)) return real_connect()(fd, addr, len);
  if (addr->sa_family == AF_UNSPEC) {
    if (k == KIND_OFFLOAD) {
      g_guard++;
      g_ops->connect(atomic_load(&e->handle), NULL);
      g_guard--;
    }
    return real_connect()(fd, addr, len);
  }
  if (addr->sa_family != AF_INET || len < sizeof(struct sockaddr_in))
    return real_connect()(fd, addr, len); /* the kernel's errno */
  const struct sockaddr_in* a = (const struct sockaddr_in*)addr;
  if (k == KIND_PENDING) {
    int d = decide(fd, e, MN_ROLE_CONNECT, ntohl(a->sin_addr.s_addr), ntohs(a->sin_port));
    if (d < 0) return set_errno(d);
    if (d == 0) return real_connect()(fd, addr, len);
  }
  g_guard++;
  int rc = g_ops->connect(atomic_load(&e->handle), a);
  g_guard--;
  if (rc < 0) return set_errno(rc);
  /* The twin follows (it filters what reaches it through the kernel); the
   * kernel may have no route to a peer only the engine reaches. */
  int saved = errno;
  real_connect()(fd, addr, len);
  errno = saved;
  return 0;
}

static ssize_t do_sendmsg(int fd, const struct msghdr* m, int flags) {
  struct fd_ent* e = g_guard ? NULL : lookup(fd);
  if (e == NULL) return real_sendmsg()(fd, m, flags);
  uint32_t k = atomic_load_explicit(&e->kind, memory_order_acquire);
  if (k == KIND_PENDING) {
    const struct sockaddr_in* a = m->msg_name;
    if (a == NULL || m->msg_namelen < sizeof(*a) || a->sin_family != AF_INET)
      return real_sendmsg()(fd, m, flags);
    int d = decide(fd, e, MN_ROLE_CONNECT, ntohl(a->sin_addr.s_addr), ntohs(a->sin_port));
    if (d < 0) return set_errno(d);
    if (d == 0) return real_sendmsg()(fd, m, flags);
  }
  int fail;
  e = offloaded(fd, &fail);
  if (e == NULL) return fail ? -1 : real_sendmsg()(fd, m, flags);
  g_guard++;
  ssize_t n = g_ops->sendmsg(atomic_load(&e->handle), m, flags, send_timeout(e));
  g_guard--;
  if (n < 0) return set_errno(n);
  return n;
}

static ssize_t do_recvmsg(struct fd_ent* e, struct msghdr* m, int flags) {
  g_guard++;
  ssize_t n = g_ops->recvmsg(atomic_load(&e->handle), m, flags, recv_timeout(e));
  g_guard--;
  if (n < 0) return set_errno(n);
  return n;
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr* m, int flags) {
  return do_sendmsg(fd, m, flags);
}

EXPORT ssize_t sendto(int fd, const void* buf, size_t len, int flags, const struct sockaddr* to,
                      socklen_t tolen) {
  if (g_guard || lookup(fd) == NULL) return real_sendto()(fd, buf, len, flags, to, tolen);
  struct iovec iov = {(void*)buf, len};
  struct msghdr m = {
      .msg_name = (void*)to, .msg_namelen = to ? tolen : 0, .msg_iov = &iov, .msg_iovlen = 1};
  return do_sendmsg(fd, &m, flags);
}

EXPORT ssize_t send(int fd, const void* buf, size_t len, int flags) {
  if (g_guard || lookup(fd) == NULL) return real_send()(fd, buf, len, flags);
  struct iovec iov = {(void*)buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  return do_sendmsg(fd, &m, flags);
}

EXPORT ssize_t write(int fd, const void* buf, size_t len) {
  if (g_guard || lookup(fd) == NULL) return real_write()(fd, buf, len);
  int fail;
  if (offloaded(fd, &fail) == NULL) return fail ? -1 : real_write()(fd, buf, len);
  struct iovec iov = {(void*)buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  return do_sendmsg(fd, &m, 0);
}

EXPORT ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  if (g_guard || lookup(fd) == NULL) return real_writev()(fd, iov, cnt);
  int fail;
  if (offloaded(fd, &fail) == NULL) return fail ? -1 : real_writev()(fd, iov, cnt);
  if (cnt < 0 || cnt > IOV_MAX) return set_errno(-EINVAL);
  struct msghdr m = {.msg_iov = (struct iovec*)iov, .msg_iovlen = (size_t)cnt};
  return do_sendmsg(fd, &m, 0);
}

/* The entry when fd is offloaded, possibly after waiting for a pending
 * socket to be decided (pending_recv_wait); NULL: *fail set (errno), or the
 * real call. */
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

EXPORT ssize_t recvmsg(int fd, struct msghdr* m, int flags) {
  int fail;
  struct fd_ent* e = recv_target(fd, flags, &fail);
  if (e == NULL) return fail ? -1 : real_recvmsg()(fd, m, flags);
  return do_recvmsg(e, m, flags);
}

EXPORT ssize_t recvfrom(int fd, void* buf, size_t len, int flags, struct sockaddr* from,
                        socklen_t* fromlen) {
  int fail;
  struct fd_ent* e = recv_target(fd, flags, &fail);
  if (e == NULL) return fail ? -1 : real_recvfrom()(fd, buf, len, flags, from, fromlen);
  struct iovec iov = {buf, len};
  struct msghdr m = {.msg_name = from,
                     .msg_namelen = (from && fromlen) ? *fromlen : 0,
                     .msg_iov = &iov,
                     .msg_iovlen = 1};
  if (from == NULL) m.msg_name = NULL;
  ssize_t n = do_recvmsg(e, &m, flags);
  if (n >= 0 && from != NULL && fromlen != NULL) *fromlen = m.msg_namelen;
  return n;
}

EXPORT ssize_t recv(int fd, void* buf, size_t len, int flags) {
  int fail;
  struct fd_ent* e = recv_target(fd, flags, &fail);
  if (e == NULL) return fail ? -1 : real_recv()(fd, buf, len, flags);
  struct iovec iov = {buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  return do_recvmsg(e, &m, flags);
}

EXPORT ssize_t read(int fd, void* buf, size_t len) {
  int fail;
  struct fd_ent* e = recv_target(fd, 0, &fail);
  if (e == NULL) return fail ? -1 : real_read()(fd, buf, len);
  struct iovec iov = {buf, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  return do_recvmsg(e, &m, 0);
}

EXPORT ssize_t readv(int fd, const struct iovec* iov, int cnt) {
  int fail;
  struct fd_ent* e = recv_target(fd, 0, &fail);
  if (e == NULL) return fail ? -1 : real_readv()(fd, iov, cnt);
  if (cnt < 0 || cnt > IOV_MAX) return set_errno(-EINVAL);
  struct msghdr m = {.msg_iov = (struct iovec*)iov, .msg_iovlen = (size_t)cnt};
  return do_recvmsg(e, &m, 0);
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
  if (e == NULL) return fail ? -1 : real_recvmmsg()(fd, v, n, flags, ts);
  /* The timeout argument is not applied yet (the kernel checks it only
   * between datagrams anyway); SO_RCVTIMEO is. */
  (void)ts;
  unsigned int i;
  for (i = 0; i < n; i++) {
    /* Blocking sockets wait for every datagram, as the kernel does, unless
     * MSG_WAITFORONE: then only for the first. */
    int fl = flags & ~MSG_WAITFORONE;
    if (i > 0 && (flags & MSG_WAITFORONE)) fl |= MSG_DONTWAIT;
    ssize_t r = do_recvmsg(e, &v[i].msg_hdr, fl);
    if (r < 0) {
      if (i == 0) return -1;
      break;
    }
    v[i].msg_len = (unsigned int)r;
  }
  return (int)i;
}

EXPORT int sendmmsg(int fd, struct mmsghdr* v, unsigned int n, int flags) {
  if (g_guard || lookup(fd) == NULL) return real_sendmmsg()(fd, v, n, flags);
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

static int copy_addr(const struct sockaddr_in* a, struct sockaddr* out, socklen_t* len) {
  if (out == NULL || len == NULL) return set_errno(-EFAULT);
  socklen_t n = *len < (socklen_t)sizeof(*a) ? *len : (socklen_t)sizeof(*a);
  memcpy(out, a, n);
  *len = sizeof(*a);
  return 0;
}

/* shutdown(2): the twin first (its result and errno are the kernel's, and
 * poll/epoll then see EPOLLIN|EPOLLRDHUP, EPOLLHUP through it), then the
 * engine side. */
REAL_FN(int, shutdown, int, int)

EXPORT int shutdown(int fd, int how) {
  int fail;
  struct fd_ent* e = offloaded(fd, &fail);
  if (e == NULL) {
    if (fail) return -1;
    int rc = real_shutdown()(fd, how);
    /* A socket not decided yet keeps the bits for the engine side. */
    struct fd_ent* p = g_guard ? NULL : lookup(fd);
    if ((rc == 0 || errno == ENOTCONN) && p != NULL && atomic_load(&p->kind) == KIND_PENDING &&
        how >= SHUT_RD && how <= SHUT_RDWR)
      atomic_fetch_or(&p->shut, how + 1);
    return rc;
  }
  int rc = real_shutdown()(fd, how);
  if (rc != 0 && errno != ENOTCONN) return rc;
  g_guard++;
  rc = g_ops->shutdown(atomic_load(&e->handle), how);
  g_guard--;
  return set_errno(rc);
}

EXPORT int getsockname(int fd, struct sockaddr* addr, socklen_t* len) {
  int fail;
  struct fd_ent* e = offloaded(fd, &fail);
  if (e == NULL) return fail ? -1 : real_getsockname()(fd, addr, len);
  struct sockaddr_in a;
  g_guard++;
  int rc = g_ops->getsockname(atomic_load(&e->handle), &a);
  g_guard--;
  if (rc < 0) return set_errno(rc);
  return copy_addr(&a, addr, len);
}

EXPORT int getpeername(int fd, struct sockaddr* addr, socklen_t* len) {
  int fail;
  struct fd_ent* e = offloaded(fd, &fail);
  if (e == NULL) return fail ? -1 : real_getpeername()(fd, addr, len);
  struct sockaddr_in a;
  g_guard++;
  int rc = g_ops->getpeername(atomic_load(&e->handle), &a);
  g_guard--;
  if (rc < 0) return set_errno(rc);
  return copy_addr(&a, addr, len);
}

/* Options go to the twin, so values and errors are the kernel's; the shim
 * keeps what the engine path needs (timeouts). */
EXPORT int setsockopt(int fd, int level, int name, const void* val, socklen_t len) {
  int rc = real_setsockopt()(fd, level, name, val, len);
  if (rc != 0 || g_guard || level != SOL_SOCKET) return rc;
  struct fd_ent* e = lookup(fd);
  if (e == NULL || val == NULL || len < sizeof(struct timeval)) return rc;
  if (name == SO_RCVTIMEO || name == SO_RCVTIMEO_NEW)
    atomic_store(&e->rcvtimeo_ns, tv_to_ns(val));
  else if (name == SO_SNDTIMEO || name == SO_SNDTIMEO_NEW)
    atomic_store(&e->sndtimeo_ns, tv_to_ns(val));
  return rc;
}

EXPORT int getsockopt(int fd, int level, int name, void* val, socklen_t* len) {
  return real_getsockopt()(fd, level, name, val, len);
}

/* A new fd names the same socket (dup, dup2, F_DUPFD). */
static void dup_track(int oldfd, int newfd) {
  if (newfd < 0 || oldfd == newfd) return;
  struct fd_ent* n = lookup(newfd);
  if (n != NULL) atomic_store(&n->kind, KIND_NONE);
  struct fd_ent* o = lookup(oldfd);
  if (o == NULL || atomic_load(&o->kind) != KIND_OFFLOAD || atomic_load(&g_forked_child)) return;
  /* A PENDING socket's copy stays on the kernel: the decision is per fd. */
  n = entry_make(newfd);
  if (n == NULL) return;
  uint64_t h = atomic_load(&o->handle);
  g_guard++;
  int rc = g_ops->dup(h);
  g_guard--;
  if (rc < 0) return;
  atomic_store(&n->flags, atomic_load(&o->flags));
  atomic_store(&n->rcvtimeo_ns, atomic_load(&o->rcvtimeo_ns));
  atomic_store(&n->sndtimeo_ns, atomic_load(&o->sndtimeo_ns));
  atomic_store(&n->handle, h);
  atomic_store_explicit(&n->kind, KIND_OFFLOAD, memory_order_release);
}

EXPORT int dup(int fd) {
  int n = real_dup()(fd);
  if (!g_guard) dup_track(fd, n);
  return n;
}

EXPORT int dup2(int fd, int newfd) {
  /* dup2 closes newfd only when fd is valid: check first, or a failing dup2
   * would lose an offloaded newfd. */
  if (!g_guard && fd != newfd && real_fcntl()(fd, F_GETFD) >= 0) forget(newfd);
  int n = real_dup2()(fd, newfd);
  if (!g_guard) dup_track(fd, n);
  return n;
}

EXPORT int dup3(int fd, int newfd, int flags) {
  if (!g_guard && fd != newfd && real_fcntl()(fd, F_GETFD) >= 0) forget(newfd);
  int n = real_dup3()(fd, newfd, flags);
  if (!g_guard) dup_track(fd, n);
  return n;
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void* arg) {
  int rc = real(fd, cmd, arg);
  if (rc < 0 || g_guard) return rc;
  if (cmd == F_SETFL) {
    struct fd_ent* e = lookup(fd);
    if (e != NULL) {
      if ((int)(intptr_t)arg & O_NONBLOCK)
        atomic_fetch_or(&e->flags, FL_NONBLOCK);
      else
        atomic_fetch_and(&e->flags, ~(uint32_t)FL_NONBLOCK);
    }
  } else if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
    dup_track(fd, rc);
  }
  return rc;
}

/* The third argument is an int or a pointer: read it as a pointer-sized
 * word and pass it on unchanged (what the x86-64 and aarch64 ABIs allow). */
EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntl_common(real_fcntl(), fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntl_common(real_fcntl64() ? real_fcntl64() : real_fcntl(), fd, cmd, arg);
}

EXPORT int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (req == FIONREAD) {
    int fail;
    struct fd_ent* e = offloaded(fd, &fail);
    if (e != NULL) {
      if (arg == NULL) return set_errno(-EFAULT);
      g_guard++;
      int rc = g_ops->fionread(atomic_load(&e->handle), (int*)arg);
      g_guard--;
      return set_errno(rc);
    }
    if (fail) return -1;
  }
  int rc = real_ioctl()(fd, req, arg);
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

static int poll_common(struct pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* mask,
                       const struct timespec* ts, int via_ppoll, int timeout_ms);

/* poll over kernel fds and sockets not decided yet: in slices, until one of
 * them is offloaded (then the engine path) or none is pending any more. */
static int poll_pending(struct pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* mask) {
  int64_t deadline = timeout_ns < 0 ? INT64_MAX : mono_ns() + timeout_ns;
  for (;;) {
    int64_t left = deadline == INT64_MAX ? PENDING_SLICE_NS * 2 : deadline - mono_ns();
    if (left < 0) left = 0;
    int64_t w = left > PENDING_SLICE_NS ? PENDING_SLICE_NS : left;
    struct timespec ts = {w / 1000000000, w % 1000000000};
    int r = real_ppoll()(fds, n, &ts, mask);
    if (r != 0 || left <= PENDING_SLICE_NS) return r;
    int still = 0, off = 0;
    for (nfds_t i = 0; i < n; i++) {
      struct fd_ent* e = lookup(fds[i].fd);
      uint32_t k = e != NULL ? atomic_load(&e->kind) : KIND_NONE;
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

/* poll/ppoll: a set with no offloaded fd goes to the kernel untouched. */
static int poll_common(struct pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* mask,
                       const struct timespec* ts, int via_ppoll, int timeout_ms) {
  nfds_t first = n;
  int pending = 0;
  if (!g_guard && !atomic_load_explicit(&g_forked_child, memory_order_relaxed)) {
    for (nfds_t i = 0; i < n; i++) {
      struct fd_ent* e = lookup(fds[i].fd);
      uint32_t k = e != NULL ? atomic_load(&e->kind) : KIND_NONE;
      if (k == KIND_OFFLOAD) {
        first = i;
        break;
      }
      pending |= k == KIND_PENDING;
    }
  }
  if (first == n) {
    if (pending && timeout_ns != 0 && may_offload()) return poll_pending(fds, n, timeout_ns, mask);
    return via_ppoll ? real_ppoll()(fds, n, ts, mask) : real_poll()(fds, n, timeout_ms);
  }
  uint64_t stack_h[64];
  uint64_t* h = stack_h;
  if (n > 64) {
    h = malloc(n * sizeof(*h));
    if (h == NULL) return set_errno(-ENOMEM);
  }
  for (nfds_t i = 0; i < n; i++) {
    struct fd_ent* e = i < first ? NULL : lookup(fds[i].fd);
    h[i] = (e != NULL && atomic_load(&e->kind) == KIND_OFFLOAD) ? atomic_load(&e->handle) : 0;
  }
  g_guard++;
  int rc = g_ops->poll(fds, n, h, timeout_ns, mask);
  g_guard--;
  if (h != stack_h) free(h);
  if (rc < 0) return set_errno(rc);
  return rc;
}

EXPORT int poll(struct pollfd* fds, nfds_t n, int timeout) {
  return poll_common(fds, n, timeout < 0 ? -1 : (int64_t)timeout * 1000000, NULL, NULL, 0, timeout);
}

EXPORT int __poll_chk(struct pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  if (fdslen / sizeof(*fds) < n) abort();
  return poll(fds, n, timeout);
}

EXPORT int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* ts, const sigset_t* mask) {
  int64_t t = ts == NULL ? -1 : (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
  return poll_common(fds, n, t, mask, ts, 1, 0);
}

/* Every epoll fd is known from its creation, so that one put inside another
 * epoll set before it holds an offloaded fd is still seen as nested. */
REAL_FN(int, epoll_create, int)
REAL_FN(int, epoll_create1, int)

static int ep_track_new(int fd) {
  if (fd >= 0 && !g_guard) {
    struct fd_ent* e = lookup(fd);
    if (e != NULL) forget(fd); /* a stale entry of an fd closed behind our back */
    ep_get(fd, 1);
  }
  return fd;
}

EXPORT int epoll_create(int size) {
  return ep_track_new(real_epoll_create()(size));
}

EXPORT int epoll_create1(int flags) {
  return ep_track_new(real_epoll_create1()(flags));
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) {
  int rc = real_epoll_ctl()(epfd, op, fd, ev);
  if (rc != 0 || g_guard) return rc;
  struct fd_ent* e = lookup(fd);
  uint32_t kind = e != NULL ? atomic_load(&e->kind) : KIND_NONE;
  int off = kind == KIND_OFFLOAD && !atomic_load(&g_forked_child);
  int pend = kind == KIND_PENDING && may_offload();
  struct ep_set* inner = kind == KIND_EPOLL ? atomic_load(&e->ep) : NULL;
  struct ep_set* set = ep_get(epfd, (off || pend || inner != NULL) && op == EPOLL_CTL_ADD);
  if (set == NULL) return rc;
  pthread_mutex_lock(&set->mu);
  int n = atomic_load(&set->n);
  int i;
  for (i = 0; i < n && set->m[i].fd != fd; i++) {
  }
  if (op == EPOLL_CTL_DEL) {
    if (i < n) {
      set->m[i] = set->m[n - 1];
      atomic_store(&set->n, n - 1);
    }
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
        pthread_mutex_unlock(&set->mu);
        real_epoll_ctl()(epfd, EPOLL_CTL_DEL, fd, NULL);
        return set_errno(-ENOMEM);
      }
      set->m = m;
      set->cap = cap;
    }
    set->m[i] = (struct ep_member){.fd = fd,
                                   .handle = off ? atomic_load(&e->handle) : 0,
                                   .inner = inner,
                                   .inner_gen = inner != NULL ? atomic_load(&inner->gen) : 0,
                                   .events = ev->events,
                                   .data = ev->data,
                                   .pend = pend,
                                   .fresh = 1};
    if (i == n) atomic_store(&set->n, n + 1);
  }
  pthread_mutex_unlock(&set->mu);
  return rc;
}

/* A snapshot of a set's members for one epoll_wait: at most EP_SNAP of each
 * kind (more are seen only through the kernel: a limit of this version). */
#define EP_SNAP 64
struct ep_snap {
  int n, nn;
  int pending; /* members not decided yet */
  /* offloaded sockets */
  uint64_t h[EP_SNAP];
  short ev[EP_SNAP], rev[EP_SNAP];
  uint64_t rx[EP_SNAP], tx[EP_SNAP];
  int idx[EP_SNAP];
  /* nested epoll fds */
  struct ep_set* inner[EP_SNAP];
  uint32_t inner_gen[EP_SNAP];
  int inner_ready[EP_SNAP];
  uint64_t inner_wake[EP_SNAP];
  int inner_idx[EP_SNAP];
};

/* set->mu held. */
static void ep_snapshot(struct ep_set* set, struct ep_snap* s) {
  s->n = s->nn = s->pending = 0;
  int n = atomic_load(&set->n);
  for (int i = 0; i < n; i++) {
    struct ep_member* m = &set->m[i];
    if (m->pend) {
      /* Decided since: an offloaded member from now on, or a kernel one. */
      struct fd_ent* e = lookup(m->fd);
      uint32_t k = e != NULL ? atomic_load(&e->kind) : KIND_NONE;
      if (k == KIND_OFFLOAD) {
        m->handle = atomic_load(&e->handle);
        m->pend = 0;
      } else if (k == KIND_PENDING) {
        s->pending++;
        continue;
      } else {
        m->pend = 0;
      }
    }
    if (m->disarmed) continue;
    if (m->handle != 0 && s->n < EP_SNAP) {
      s->h[s->n] = m->handle;
      s->ev[s->n] = (short)(m->events & (EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM));
      s->idx[s->n++] = i;
    } else if (m->inner != NULL && s->nn < EP_SNAP && atomic_load(&m->inner->n) > 0) {
      s->inner[s->nn] = m->inner;
      s->inner_gen[s->nn] = m->inner_gen;
      s->inner_idx[s->nn++] = i;
    }
  }
}

static int ep_peek(struct ep_set* set, uint32_t gen, int depth, uint64_t* wake);

/* Engine-side readiness of a snapshot (no member state changes). Returns
 * how many entries are ready. */
static int ep_scan(struct ep_snap* s, int depth) {
  int ready = 0;
  if (s->n > 0) {
    g_guard++;
    ready += g_ops->ready_seq(s->h, s->ev, s->rev, s->rx, s->tx, (size_t)s->n);
    g_guard--;
  }
  for (int j = 0; j < s->nn; j++) {
    s->inner_wake[j] = 0;
    s->inner_ready[j] =
        depth < 4 && ep_peek(s->inner[j], s->inner_gen[j], depth + 1, &s->inner_wake[j]);
    ready += s->inner_ready[j];
  }
  return ready;
}

/* Would epoll_wait on this set report an engine-side event now? (What makes
 * an epoll fd readable inside another set.) *wake: a sum of the members'
 * counters, which moves on every arrival or send (an edge for the outer set,
 * as every wake-up of a member reaches the kernel's outer set). */
static int ep_peek(struct ep_set* set, uint32_t gen, int depth, uint64_t* wake) {
  struct ep_snap* s = malloc(sizeof(*s));
  if (s == NULL) return 0;
  uint32_t ev[EP_SNAP];
  int fresh[EP_SNAP];
  uint64_t rx[EP_SNAP], tx[EP_SNAP];
  pthread_mutex_lock(&set->mu);
  if (atomic_load(&set->gen) != gen) {
    pthread_mutex_unlock(&set->mu);
    free(s);
    return 0;
  }
  ep_snapshot(set, s);
  for (int j = 0; j < s->n; j++) {
    struct ep_member* m = &set->m[s->idx[j]];
    ev[j] = m->events;
    fresh[j] = m->fresh;
    rx[j] = m->rx;
    tx[j] = m->tx;
  }
  pthread_mutex_unlock(&set->mu);
  int any = 0;
  int ready = ep_scan(s, depth);
  for (int j = 0; j < s->n; j++)
    *wake += ((ev[j] & EPOLLIN) ? s->rx[j] : 0) + ((ev[j] & EPOLLOUT) ? s->tx[j] : 0);
  for (int j = 0; j < s->nn; j++) *wake += s->inner_wake[j];
  if (ready > 0) {
    for (int j = 0; j < s->n && !any; j++) {
      if (s->rev[j] == 0) continue;
      any = !(ev[j] & EPOLLET) || fresh[j] || ((ev[j] & EPOLLIN) && s->rx[j] != rx[j]) ||
            ((ev[j] & EPOLLOUT) && s->tx[j] != tx[j]);
    }
    for (int j = 0; j < s->nn && !any; j++) any = s->inner_ready[j];
  }
  free(s);
  return any;
}

/* Adds the events to report at index at of out (merged by data). */
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
  struct epoll_event ev = {.events = EPOLLONESHOT, .data = m->data};
  real_epoll_ctl()(epfd, EPOLL_CTL_MOD, m->fd, &ev);
}

/* Merges the snapshot's engine-side readiness into the kernel's k events;
 * applies EPOLLET and EPOLLONESHOT. Returns the new count. */
static int ep_merge(int epfd, struct ep_set* set, struct epoll_event* out, int k, int max,
                    const struct ep_snap* s) {
  pthread_mutex_lock(&set->mu);
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
    if (i >= n || set->m[i].handle != s->h[j] || set->m[i].disarmed) continue;
    struct ep_member* m = &set->m[i];
    uint32_t bits = (uint32_t)(unsigned short)s->rev[j] & m->events;
    if (m->events & EPOLLET) {
      if (bits == 0) continue;
      int trig = m->fresh || ((m->events & EPOLLIN) && s->rx[j] != m->rx) ||
                 ((m->events & EPOLLOUT) && s->tx[j] != m->tx);
      if (!trig) continue;
      int k2 = ep_put(out, k, max, bits, m->data);
      if (k2 < 0) continue; /* no room: stays pending for the next call */
      k = k2;
      m->fresh = 0;
      m->rx = s->rx[j];
      m->tx = s->tx[j];
    } else {
      if (bits == 0) continue;
      int k2 = ep_put(out, k, max, bits, m->data);
      if (k2 < 0) continue;
      k = k2;
    }
    if (m->events & EPOLLONESHOT) {
      m->disarmed = 1;
      ep_disarm_twin(epfd, m);
    }
  }
  for (int j = 0; j < s->nn; j++) {
    int i = s->inner_idx[j];
    if (i >= n || set->m[i].inner != s->inner[j] || set->m[i].inner_gen != s->inner_gen[j] ||
        set->m[i].disarmed)
      continue;
    struct ep_member* m = &set->m[i];
    if (!s->inner_ready[j]) continue;
    uint32_t bits = (EPOLLIN | EPOLLRDNORM) & m->events;
    if (bits == 0) continue;
    if ((m->events & EPOLLET) && !m->fresh && m->wake == s->inner_wake[j]) continue;
    int k2 = ep_put(out, k, max, bits, m->data);
    if (k2 < 0) continue;
    k = k2;
    m->fresh = 0;
    m->wake = s->inner_wake[j];
    if (m->events & EPOLLONESHOT) {
      m->disarmed = 1;
      ep_disarm_twin(epfd, m);
    }
  }
  pthread_mutex_unlock(&set->mu);
  return k;
}

static int epoll_kernel(int epfd, struct epoll_event* out, int max, int64_t timeout_ns,
                        const sigset_t* mask) {
  if (timeout_ns < 0 || timeout_ns % 1000000 != 0) {
    struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
    return real_epoll_pwait2()(epfd, out, max, timeout_ns < 0 ? NULL : &ts, mask);
  }
  return real_epoll_pwait()(epfd, out, max, (int)(timeout_ns / 1000000), mask);
}

static int epoll_common(int epfd, struct epoll_event* out, int max, int64_t timeout_ns,
                        const sigset_t* mask) {
  struct ep_set* set = (g_guard || atomic_load_explicit(&g_forked_child, memory_order_relaxed))
                           ? NULL
                           : ep_get(epfd, 0);
  if (set == NULL || atomic_load(&set->n) == 0 || max <= 0)
    return epoll_kernel(epfd, out, max, timeout_ns, mask);
  struct ep_snap* s = malloc(sizeof(*s));
  if (s == NULL) return set_errno(-ENOMEM);
  int64_t end = timeout_ns < 0 ? INT64_MAX : mono_ns() + timeout_ns;
  for (;;) {
    pthread_mutex_lock(&set->mu);
    ep_snapshot(set, s);
    pthread_mutex_unlock(&set->mu);
    if (s->n != 0 || s->nn != 0) break;
    int64_t left = end == INT64_MAX ? -1 : end - mono_ns();
    if (end != INT64_MAX && left < 0) left = 0;
    if (s->pending == 0 || left == 0 || !may_offload()) {
      free(s);
      return epoll_kernel(epfd, out, max, left, mask);
    }
    /* Only sockets not decided yet: wait in slices until one is. */
    int last = left >= 0 && left <= PENDING_SLICE_NS;
    int k = epoll_kernel(epfd, out, max, last ? left : PENDING_SLICE_NS, mask);
    if (k != 0 || last) {
      free(s);
      return k;
    }
  }
  if (end != INT64_MAX) {
    timeout_ns = end - mono_ns();
    if (timeout_ns < 0) timeout_ns = 0;
  }
  const struct timespec zero = {0, 0};
  int ready = ep_scan(s, 0);
  int k = real_epoll_pwait2()(epfd, out, max, &zero, NULL);
  if (k < 0) goto done;
  if (ready > 0 || k > 0) k = ep_merge(epfd, set, out, k, max, s);
  if (k > 0 || timeout_ns == 0) goto done;
  int64_t spin_ns = 0, sleep_ns = PENDING_SLICE_NS;
  if (g_ops != NULL) g_ops->wait_params(&spin_ns, &sleep_ns);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int64_t start = (int64_t)t0.tv_sec * 1000000000 + t0.tv_nsec, now = start;
  int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
  /* Spin with signals blocked; sleep with the caller's mask (or the one
   * given to epoll_pwait), so a signal ends the wait with EINTR. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  const sigset_t* sleep_mask = mask != NULL ? mask : &old;
  for (unsigned it = 1;; it++) {
    clock_gettime(CLOCK_MONOTONIC, &t0);
    now = (int64_t)t0.tv_sec * 1000000000 + t0.tv_nsec;
    if (now >= deadline) {
      k = 0;
      break;
    }
    int spinning = now < start + spin_ns;
    if (!spinning) {
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
        int r = real_ppoll()(p, 2, &ts, sleep_mask);
        int saved = errno;
        g_guard++;
        g_ops->wait_disarm();
        g_guard--;
        if (r < 0) {
          errno = saved;
          k = -1;
          break;
        }
        k = r > 0 && (p[0].revents & POLLIN) ? real_epoll_pwait2()(epfd, out, max, &zero, NULL) : 0;
      } else {
        k = real_epoll_pwait2()(epfd, out, max, &ts, sleep_mask);
      }
      if (k < 0) break;
      if (s->pending > 0) {
        pthread_mutex_lock(&set->mu);
        ep_snapshot(set, s);
        pthread_mutex_unlock(&set->mu);
      }
    } else if ((it & 15) == 0) {
      k = real_epoll_pwait2()(epfd, out, max, &zero, NULL);
      if (k < 0) break;
    } else {
      k = 0;
    }
    ready = ep_scan(s, 0);
    if (ready > 0 || k > 0) {
      k = ep_merge(epfd, set, out, k, max, s);
      if (k > 0) break;
    }
  }
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
done:
  free(s);
  return k;
}

EXPORT int epoll_wait(int epfd, struct epoll_event* ev, int max, int timeout) {
  return epoll_common(epfd, ev, max, timeout < 0 ? -1 : (int64_t)timeout * 1000000, NULL);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event* ev, int max, int timeout,
                       const sigset_t* mask) {
  return epoll_common(epfd, ev, max, timeout < 0 ? -1 : (int64_t)timeout * 1000000, mask);
}

EXPORT int epoll_pwait2(int epfd, struct epoll_event* ev, int max, const struct timespec* ts,
                        const sigset_t* mask) {
  return epoll_common(epfd, ev, max,
                      ts == NULL ? -1 : (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec, mask);
}

/* True when select/pselect must go through the engine: an offloaded (or
 * about to be offloaded) fd is in the read or write set. */
static int select_needs_engine(int nfds, fd_set* r, fd_set* w) {
  if (g_guard || atomic_load(&g_forked_child) || nfds <= 0 || nfds > FD_SETSIZE) return 0;
  for (int fd = 0; fd < nfds; fd++) {
    if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w))) {
      struct fd_ent* e = lookup(fd);
      uint32_t k = e != NULL ? atomic_load(&e->kind) : KIND_NONE;
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
  if (!select_needs_engine(nfds, r, w)) return real_select()(nfds, r, w, x, tv);
  int64_t t = tv == NULL ? -1 : tv_to_ns(tv);
  struct timespec sts = {tv ? tv->tv_sec : 0, tv ? tv->tv_usec * 1000 : 0};
  int rc = select_via_poll(nfds, r, w, x, t, tv ? &sts : NULL, NULL);
  if (rc >= 0 && tv) tv->tv_sec = 0, tv->tv_usec = 0; /* Linux reports time left: not tracked */
  return rc;
}

EXPORT int pselect(int nfds, fd_set* r, fd_set* w, fd_set* x, const struct timespec* ts,
                   const sigset_t* mask) {
  if (!select_needs_engine(nfds, r, w)) return real_pselect()(nfds, r, w, x, ts, mask);
  int64_t t = ts == NULL ? -1 : (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
  return select_via_poll(nfds, r, w, x, t, ts, mask);
}

/* vfork() is served as fork() (POSIX allows it): a child sharing the
 * parent's memory could otherwise reach into the parent's engine state. */
EXPORT pid_t vfork(void);

/* daemon(): glibc forks through an internal call the preload cannot see, so
 * the daemon is made here, with the preload's fork(): the daemon then treats
 * inherited offloaded sockets as any fork child does. */
EXPORT int daemon(int nochdir, int noclose);

/* fork() without exec: the child has a copy of the engine's memory but not
 * its device, and the parent keeps using both. The child never touches the
 * engine: inherited offloaded sockets fail with EBADFD (close works), and
 * new sockets stay on the kernel (strict: fail with ENETDOWN). exec clears
 * all of this: the engine's fds are close-on-exec, and an inherited twin is
 * an ordinary kernel socket in the new program. */
EXPORT pid_t fork(void) {
  pid_t pid = real_fork()();
  if (pid == 0) {
    /* Only this thread exists in the child: a decision another thread of
     * the parent was in the middle of must not leave the mutex held. */
    pthread_mutex_init(&g_decide_mu, NULL);
    if (g_engine_up) atomic_store(&g_forked_child, 1);
  }
  return pid;
}

EXPORT pid_t vfork(void) {
  return fork();
}

EXPORT int daemon(int nochdir, int noclose) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid > 0) _exit(0);
  if (setsid() < 0) return -1;
  if (!nochdir && chdir("/") != 0) return -1;
  if (!noclose) {
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0) return -1;
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO) close(fd);
  }
  return 0;
}
