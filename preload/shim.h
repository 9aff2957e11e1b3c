/* Internal header of libmachnet_preload.so, the LD_PRELOAD shim: what its
 * files share. Plain C, no DPDK, no libstdc++. The files, each read top to
 * bottom:
 *   core.c         the real libc functions (resolved once, in the library
 *                  constructor), the re-entry guard, the fd table and the
 *                  shim's side of an offloaded socket; the constructor
 *   log.c          the leveled logger (log_level)
 *   engine.c       configuration, machnetd discovery, dlopen of libmachnet.so
 *                  and its entry table (src/socket/socket_ops.h), the offload
 *                  decision
 *   addr.c         the program's addresses (AF_INET, and AF_INET6 dual-stack
 *                  ones) to and from the socket layer's sockaddr_in
 *   socket_calls.c socket, bind, connect, shutdown, names, options, ioctl
 *   data_calls.c   send and receive families, read/write, *mmsg
 *   poll.c         poll, ppoll, select, pselect
 *   epoll_set.c    epoll sets: creation, epoll_ctl, members, snapshots
 *   epoll_wait.c   epoll_wait and friends
 *   stream_calls.c stream sockets: listen, accept, sendfile, and the move of
 *                  a connect that fell back to the kernel's TCP
 *   process.c      close, dup, fcntl, fork, vfork, daemon
 *   signals.c      sigaction and friends: the program's handlers run through
 *                  a wrapper that counts them per thread (blocking calls
 *                  spin with signals unblocked)
 * Semantics and limits: machnet.conf(5), section PRELOAD. */
#ifndef MACHNET_PRELOAD_SHIM_H
#define MACHNET_PRELOAD_SHIM_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "rules.h"
#include "socket/socket_ops.h"

#define EXPORT __attribute__((visibility("default")))

/* ---- the real libc functions ---------------------------------------------
 * Resolved once with dlsym(RTLD_NEXT) in the library constructor, so that no
 * interposer calls dlsym afterwards (dlsym is not async-signal-safe, and
 * close() may be called from a signal handler). A call that comes before the
 * constructor (another library's constructor) resolves its function on the
 * spot. Functions a libc may lack (epoll_pwait2 before glibc 2.35,
 * close_range and closefrom before 2.34, fcntl64 before 2.28) are NULL
 * then: their callers have a fallback. */
#define SHIM_LIBC(X)                                                                             \
  X(int, socket, (int, int, int))                                                                \
  X(int, listen, (int, int))                                                                     \
  X(int, accept4, (int, struct sockaddr*, socklen_t*, int))                                      \
  X(ssize_t, sendfile, (int, int, off_t*, size_t))                                               \
  X(int, bind, (int, const struct sockaddr*, socklen_t))                                         \
  X(int, connect, (int, const struct sockaddr*, socklen_t))                                      \
  X(int, shutdown, (int, int))                                                                   \
  X(int, close, (int))                                                                           \
  X(int, close_range, (unsigned int, unsigned int, int))                                         \
  X(void, closefrom, (int))                                                                      \
  X(ssize_t, sendto, (int, const void*, size_t, int, const struct sockaddr*, socklen_t))         \
  X(ssize_t, send, (int, const void*, size_t, int))                                              \
  X(ssize_t, sendmsg, (int, const struct msghdr*, int))                                          \
  X(ssize_t, recvfrom, (int, void*, size_t, int, struct sockaddr*, socklen_t*))                  \
  X(ssize_t, recv, (int, void*, size_t, int))                                                    \
  X(ssize_t, recvmsg, (int, struct msghdr*, int))                                                \
  X(ssize_t, read, (int, void*, size_t))                                                         \
  X(ssize_t, write, (int, const void*, size_t))                                                  \
  X(ssize_t, readv, (int, const struct iovec*, int))                                             \
  X(ssize_t, writev, (int, const struct iovec*, int))                                            \
  X(int, recvmmsg, (int, struct mmsghdr*, unsigned int, int, struct timespec*))                  \
  X(int, sendmmsg, (int, struct mmsghdr*, unsigned int, int))                                    \
  X(int, getsockname, (int, struct sockaddr*, socklen_t*))                                       \
  X(int, getpeername, (int, struct sockaddr*, socklen_t*))                                       \
  X(int, setsockopt, (int, int, int, const void*, socklen_t))                                    \
  X(int, getsockopt, (int, int, int, void*, socklen_t*))                                         \
  X(int, fcntl, (int, int, ...))                                                                 \
  X(int, fcntl64, (int, int, ...))                                                               \
  X(int, ioctl, (int, unsigned long, ...))                                                       \
  X(int, poll, (struct pollfd*, nfds_t, int))                                                    \
  X(int, ppoll, (struct pollfd*, nfds_t, const struct timespec*, const sigset_t*))               \
  X(int, select, (int, fd_set*, fd_set*, fd_set*, struct timeval*))                              \
  X(int, pselect, (int, fd_set*, fd_set*, fd_set*, const struct timespec*, const sigset_t*))     \
  X(int, epoll_create, (int))                                                                    \
  X(int, epoll_create1, (int))                                                                   \
  X(int, epoll_ctl, (int, int, int, struct epoll_event*))                                        \
  X(int, epoll_wait, (int, struct epoll_event*, int, int))                                       \
  X(int, epoll_pwait, (int, struct epoll_event*, int, int, const sigset_t*))                     \
  X(int, epoll_pwait2, (int, struct epoll_event*, int, const struct timespec*, const sigset_t*)) \
  X(pid_t, fork, (void))                                                                         \
  X(void, _exit, (int))                                                                          \
  X(int, dup, (int))                                                                             \
  X(int, dup2, (int, int))                                                                       \
  X(int, dup3, (int, int, int))                                                                  \
  X(int, sigaction, (int, const struct sigaction*, struct sigaction*))

struct shim_libc {
#define SHIM_LIBC_FIELD(ret, name, args) ret(*name) args;
  SHIM_LIBC(SHIM_LIBC_FIELD)
#undef SHIM_LIBC_FIELD
};
extern struct shim_libc g_libc;
/* Set once the constructor has resolved every function. */
extern int g_libc_done;

/* Before the constructor: resolves name into *slot (dlsym). */
void* libc_resolve_early(const char* name, void** slot);

static inline void* libc_fn(void** slot, const char* name) {
  void* p = __atomic_load_n(slot, __ATOMIC_RELAXED);
  if (__builtin_expect(p == NULL, 0) && !__atomic_load_n(&g_libc_done, __ATOMIC_ACQUIRE))
    p = libc_resolve_early(name, slot);
  return p;
}

/* REAL(close)(fd): the real function (NULL only for the optional ones). */
#define REAL(name) ((__typeof__(g_libc.name))libc_fn((void**)&g_libc.name, #name))

/* ---- re-entry guard --------------------------------------------------------
 * > 0 while this thread runs engine code (dlopen, EAL, the data path): its
 * socket calls are the engine's and go straight to libc. */
extern __thread int g_guard __attribute__((tls_model("initial-exec")));

/* ---- the shim's locks ------------------------------------------------------
 * g_decide_mu (engine.c) and each epoll set's mu, and nothing else; taken
 * only through these, never one set's mu inside another's, and g_decide_mu
 * before a set's. Holding one raises g_guard: a signal handler that
 * interrupts the thread then takes no lock of the shim or of the socket
 * layer (its close is deferred: close_defer), and a fork() from such a
 * handler does not wait for the locks its own thread holds.
 *
 * fork() (pthread_atfork, process.c): the prepare handler takes g_decide_mu,
 * then every set's mu, so no other thread holds them across fork (an engine
 * start, which runs under g_decide_mu, finishes first); the parent releases
 * them, the child re-initialises them. The socket layer's and the engine's
 * locks are never taken in a fork child: every call on an inherited
 * offloaded socket stops at the fd table (g_forked_child), and their exit
 * handlers do nothing in a process that is not the engine's. */
static inline void shim_lock(pthread_mutex_t* mu) {
  g_guard++;
  pthread_mutex_lock(mu);
}
static inline void shim_unlock(pthread_mutex_t* mu) {
  pthread_mutex_unlock(mu);
  g_guard--;
}

/* ---- deferred closes ---------------------------------------------------------
 * close() of an offloaded socket while g_guard is raised (a signal handler
 * that interrupted the shim or the socket layer, which may hold its lock on
 * this very thread): the fd is forgotten at once, lock-free, and the kernel
 * twin closed; the socket layer's close of the handle waits here until the
 * next call into the shim outside a handler (close_deferred). */
void close_defer(uint64_t handle);
void close_deferred_run(void);
extern _Atomic int g_defer_n;
/* g_guard == 0, in a program's call on an offloaded socket or set (never
 * in the engine's own threads, which run with g_guard 0 and may hold the
 * socket layer's lock): runs the deferred closes, if any (one load
 * otherwise). */
static inline void close_deferred(void) {
  if (__builtin_expect(atomic_load_explicit(&g_defer_n, memory_order_relaxed) != 0, 0))
    close_deferred_run();
}

/* ---- logging (log.c) -------------------------------------------------------
 * Levels and names as the engine's log_level (DPDK's): a message is printed
 * when its level is at or below the configured one. Lines go to stderr as
 * "machnet: message". */
enum { LOG_ERROR = 4, LOG_WARNING = 5, LOG_NOTICE = 6, LOG_INFO = 7, LOG_DEBUG = 8 };
extern int g_log_level;
void log_msg(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
#define LOG(level, ...)                                      \
  do {                                                       \
    if ((level) <= g_log_level) log_msg(level, __VA_ARGS__); \
  } while (0)
/* Sets g_log_level to the configuration's log_level (struct mn_config: 1 to
 * 8; 0, not set or for DPDK components only, leaves the default). */
void log_configure(int level);

/* ---- the fd table ----------------------------------------------------------
 * One entry per fd the shim cares about; every other fd costs one lookup:
 * UDP and stream sockets (AF_INET, and AF_INET6 ones that may be
 * dual-stack) and epoll fds. An offloaded stream socket is a listener
 * (FL_LISTEN: its twin listens in the kernel too, and is kept O_NONBLOCK so
 * accept can look at it without blocking) or a connection (FL_CONN: no
 * kernel path at all; its fd is a placeholder socket kept out of every
 * kernel poll and epoll set). */
enum {
  KIND_NONE = 0,    /* not tracked: the kernel's */
  KIND_PENDING = 1, /* a UDP socket not decided yet */
  KIND_OFFLOAD = 2, /* an offloaded UDP socket (handle, sock) */
  KIND_FAILED = 3,  /* strict mode: a rule said offload, it could not be (err) */
  KIND_EPOLL = 4,   /* an epoll fd (ep) */
};
enum {
  FL_NONBLOCK = 1, /* O_NONBLOCK (as the program set it) */
  FL_INET6 = 2,    /* the program's socket is AF_INET6: addresses are translated */
  FL_STREAM = 4,   /* SOCK_STREAM */
  FL_LISTEN = 8,   /* an offloaded stream listener */
  FL_CONN = 16,    /* an offloaded stream connection (no kernel path) */
};

struct ep_set;

/* The shim's side of an offloaded socket, shared by every fd naming it (dup):
 * refs counts them, and gen moves on when the last one is closed, which is
 * when the socket leaves every epoll set it was in (as in the kernel). Never
 * freed: reused with a new generation. */
struct shim_sock {
  _Atomic int refs;
  _Atomic uint32_t gen;
  struct shim_sock* next_free;
  /* A stream connect that fell back to the kernel's TCP: every epoll set
   * holding the socket gives its registration to the kernel set (moved),
   * and every fd naming it becomes the kernel's. peer: the connect's
   * address as the program gave it (what the twin connects to then). */
  _Atomic int moved;
  struct sockaddr_storage peer;
  socklen_t peer_len;
};

struct fd_ent {
  _Atomic uint32_t kind;
  _Atomic uint32_t flags;
  _Atomic uint32_t gen;        /* moves on when the fd is closed or reused */
  _Atomic int64_t rcvtimeo_ns; /* 0 = none (wait forever) */
  _Atomic int64_t sndtimeo_ns;
  _Atomic uint64_t handle;        /* the socket layer's, when OFFLOAD */
  struct shim_sock* _Atomic sock; /* when OFFLOAD */
  _Atomic int err;                /* errno when FAILED */
  _Atomic int shut;               /* shutdown(2) while PENDING: SHUT_* + 1 bits */
  struct ep_set* _Atomic ep;      /* when EPOLL */
  /* A stream connect that fell back to the kernel and failed there at once
   * (ENETUNREACH...): the error SO_ERROR reports once, as the kernel does
   * for a non-blocking connect. Kept across KIND_NONE; cleared on close. */
  _Atomic int conn_err;
};

#define FD_PAGE_BITS 12
#define FD_PAGE (1u << FD_PAGE_BITS)
#define FD_MAX (1u << 20)
extern struct fd_ent* _Atomic g_pages[FD_MAX / FD_PAGE];

/* Entry of a tracked fd, NULL for every fd the shim does not care about. */
static inline struct fd_ent* lookup(int fd) {
  if ((unsigned)fd >= FD_MAX) return NULL;
  struct fd_ent* page =
      atomic_load_explicit(&g_pages[(unsigned)fd >> FD_PAGE_BITS], memory_order_acquire);
  if (page == NULL) return NULL;
  struct fd_ent* e = &page[(unsigned)fd & (FD_PAGE - 1)];
  return atomic_load_explicit(&e->kind, memory_order_acquire) == KIND_NONE ? NULL : e;
}

/* The entry of fd whatever its kind (NULL: never tracked). */
static inline struct fd_ent* fd_slot(int fd) {
  if ((unsigned)fd >= FD_MAX) return NULL;
  struct fd_ent* page =
      atomic_load_explicit(&g_pages[(unsigned)fd >> FD_PAGE_BITS], memory_order_acquire);
  return page == NULL ? NULL : &page[(unsigned)fd & (FD_PAGE - 1)];
}

static inline uint32_t kind_of(int fd) {
  struct fd_ent* e = lookup(fd);
  return e != NULL ? atomic_load(&e->kind) : KIND_NONE;
}

/* The entry of fd, made if need be (NULL: fd out of range, no memory). */
struct fd_ent* entry_make(int fd);
/* A fresh entry for a new UDP socket (KIND_PENDING). */
void entry_new_socket(struct fd_ent* e, uint32_t flags);

/* g_decide_mu held: a new shim_sock with one reference. */
struct shim_sock* sock_new(void);
void sock_ref(struct shim_sock* s);
/* Drops a reference; the last one moves the generation on. Lock-free
 * (close() may run in a signal handler). */
void sock_unref(struct shim_sock* s);

/* Per-thread scratch memory that grows and is kept (no allocation per call
 * once warm); freed at thread exit. slot < SCRATCH_SLOTS. */
enum { SCRATCH_POLL = 0, SCRATCH_COPY = 1, SCRATCH_EP0 = 2, SCRATCH_SLOTS = 7 };
void* scratch(int slot, size_t bytes);

/* ---- configuration and the engine (engine.c) ------------------------------ */
extern pthread_mutex_t g_decide_mu;
extern struct mn_config g_cfg;
extern int g_cfg_state; /* 0 = not loaded, 1 = ok, -1 = bad: nothing is offloaded */
extern const struct machnet_socket_ops_v1* g_ops;
/* Whether the socket layer's table has entry `f` (entries are appended:
 * an older libmachnet's table ends before the newer ones). */
#define SHIM_HAS_OP(f)                                                                             \
  (g_ops != NULL && g_ops->size >= offsetof(struct machnet_socket_ops_v1, f) + sizeof(g_ops->f) && \
   g_ops->f != NULL)
extern int g_engine_err;           /* > 0: the engine cannot start (errno) */
extern _Atomic int g_forked_child; /* a fork() child of a process with an engine */
extern int g_engine_up;
extern int g_engine_starting; /* set (g_decide_mu held) when the engine's start begins */
extern int g_daemon_state;    /* 0 = not asked, 1 = answered, -1 = not reachable */

/* The library constructor's half: loads the configuration. */
void config_at_start(void);
/* g_decide_mu held: the configuration is usable. */
int config_ready(void);
/* g_decide_mu held: the engine's address, asking machnetd if need be (0: unknown). */
uint32_t engine_ip(void);
/* Could a PENDING socket still be offloaded? (no: bad rules, no engine) */
int may_offload(void);
/* Decides a PENDING socket from the rules. addr/port host order. Returns 1
 * offloaded, 0 kernel (or left pending: ephemeral bind), -errno (strict). */
int decide(int fd, struct fd_ent* e, int role, uint32_t addr, uint16_t port);
/* An offloaded fd goes back to the kernel (its twin): a dual-stack socket
 * that turns to a native IPv6 peer. */
void unoffload(int fd, struct fd_ent* e);
/* A fork child: takes the inherited offloaded UDP sockets over (engine.c).
 * 0, or the errno their calls fail with (EBADFD: a standalone engine). */
int fork_adopt(void);
/* Whether a fork child can take e over (fork_adopt): any offloaded socket
 * (a stream connection is claimed from the parent at its first use, and
 * fails with EBADFD if the parent or another child took it first). */
static inline int fork_adoptable(struct fd_ent* e) {
  return e != NULL && atomic_load(&e->kind) == KIND_OFFLOAD;
}

/* Decides a PENDING stream socket at listen (role MN_ROLE_BIND) or connect
 * (MN_ROLE_CONNECT) from the rules: 1 offload (the engine is up), 0 kernel,
 * -errno (strict). The caller makes the offloaded socket itself. */
int decide_stream(int fd, struct fd_ent* e, int role, uint32_t addr, uint16_t port);

/* ---- stream sockets (stream_calls.c) --------------------------------------- */
/* connect(2) on a stream socket (PENDING or OFFLOAD). */
int stream_connect(int fd, struct fd_ent* e, const struct sockaddr* addr, socklen_t len);
/* Makes fd (PENDING, or a new placeholder) an offloaded stream socket named
 * by handle h; flags FL_LISTEN or FL_CONN; peer: the address a connect was
 * given (NULL otherwise). 0 or -ENOMEM. */
int stream_adopt(int fd, struct fd_ent* e, uint64_t h, uint32_t flags, const struct sockaddr* peer,
                 socklen_t peer_len);
/* fd's stream connect fell back to the kernel's TCP (the socket layer said
 * MACHNET_EFALLBACK): the twin connects to the peer itself (non-blocking),
 * the fd becomes the kernel's, and its epoll registrations move to the
 * kernel sets. Returns 0, or -1 with errno when the kernel refused at once
 * (the caller reports it). */
int stream_fallback(int fd, struct fd_ent* e);
/* An offloaded fd whose socket moved to the kernel through another fd (a
 * dup): makes this entry the kernel's too. True when it did. */
int stream_moved(int fd, struct fd_ent* e);

/* ---- addresses (addr.c) ----------------------------------------------------- */
/* What a program's address means for the engine. */
enum { ADDR_V4 = 0, ADDR_KERNEL = 1, ADDR_UNSPEC = 2, ADDR_BAD = 3 };
/* Reads the program's address for a socket of the entry's family into *out
 * (AF_INET, network order): ADDR_V4 (AF_INET, or an AF_INET6 ::ffff:a.b.c.d
 * or :: when any_ok), ADDR_KERNEL (native IPv6: the kernel's),
 * ADDR_UNSPEC (AF_UNSPEC), ADDR_BAD (too short: the kernel gives the errno). */
int addr_from_prog(const struct fd_ent* e, const struct sockaddr* a, socklen_t len, int any_ok,
                   struct sockaddr_in* out);
/* Writes an engine address in the family of the entry's socket (AF_INET6:
 * v4-mapped, 0.0.0.0 as ::) into out, truncated to *len; *len = full size. */
void addr_to_prog(const struct fd_ent* e, const struct sockaddr_in* a, struct sockaddr* out,
                  socklen_t* len);
/* After a receive into a sockaddr_storage: rewrites name into the program's
 * buffer as the socket's family would give it. */
void addr_name_out(const struct fd_ent* e, const struct sockaddr_storage* name, socklen_t namelen,
                   struct msghdr* m, void* prog_name, socklen_t prog_len);

/* ---- shared helpers ---------------------------------------------------------- */
static inline int set_errno(long rc) {
  if (rc < 0) {
    errno = (int)-rc;
    return -1;
  }
  return 0;
}

static inline int64_t tv_to_ns(const struct timeval* tv) {
  return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

static inline int64_t ts_to_ns(const struct timespec* ts) {
  return ts == NULL ? -1 : (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static inline int64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* A wait on a socket not decided yet runs in slices of PENDING_SLICE_NS on
 * the kernel twin and looks again (another thread may offload it). */
#define PENDING_SLICE_NS 10000000

/* The entry if fd is OFFLOAD and usable here; *fail set (errno) for FAILED
 * sockets and for offloaded ones inherited through fork(). */
struct fd_ent* offloaded(int fd, int* fail);

/* Forgets fd (closed or replaced); gives an offloaded socket back (at once,
 * or deferred when g_guard is raised). Lock-free: close() may run in a
 * signal handler. */
void forget(int fd);
/* pthread_atfork handlers (process.c), installed by the constructor. */
void fork_handlers_install(void);

/* ---- signals (signals.c) ------------------------------------------------------ */
/* The calling thread's handler counts (machnet_libc.signal_counts). */
const volatile struct machnet_signal_counts* signal_counts(void);
/* Puts the wrapper under handlers installed before the constructor. */
void signals_wrap_existing(void);
/* Not declared by every <signal.h>; interposed in signals.c. */
sighandler_t bsd_signal(int sig, sighandler_t h);
sighandler_t __sysv_signal(int sig, sighandler_t h);
/* fork prepare: takes every epoll set's mu (g_decide_mu held). */
void ep_lock_all(void);
/* fork parent: releases them; fork child: re-initialises them. */
void ep_unlock_all(int child);

/* poll over a mix of fds (poll.c); also select's engine path. */
int poll_common(struct pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* mask,
                const struct timespec* ts, int via_ppoll, int timeout_ms);

/* The kernel restarts a receive after a handler with SA_RESTART; which
 * signal arrived is not known here, so restart only when every caught
 * signal the thread lets through has it (as the socket layer does). */
int every_handler_restarts(void);

/* ---- epoll (epoll_set.c, epoll_wait.c) -----------------------------------------
 * The kernel epoll set holds every fd, the twins of offloaded sockets
 * included (their kernel-path readiness comes from there). Beside it the
 * shim keeps, per epoll fd, the members the kernel cannot see the whole
 * readiness of: offloaded sockets, sockets not decided yet, and other epoll
 * fds (an epoll fd inside another one is readable when one of its offloaded
 * members is). Any number of them. A member leaves the set when its socket's
 * last fd is closed (shim_sock generation), when the fd of a socket not
 * decided yet is closed (fd generation) or when a nested epoll fd is closed
 * (set generation), as in the kernel, without EPOLL_CTL_DEL. */
struct ep_member {
  int fd;
  uint32_t fd_gen;        /* the fd's generation at EPOLL_CTL_ADD */
  struct shim_sock* sock; /* offloaded socket */
  uint32_t sock_gen;
  uint64_t handle;      /* offloaded socket, 0 otherwise */
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

/* Sets are never freed: a closed epoll fd's set is reused with a new
 * generation, so a stale reference from an enclosing set is recognised. */
struct ep_set {
  pthread_mutex_t mu;
  int epfd;                /* the kernel epoll fd it stands beside */
  struct ep_set* all_next; /* every set ever made (never freed) */
  _Atomic uint32_t gen;
  _Atomic int n;
  int cap;
  struct ep_member* m;
  struct ep_set* next_free;
};

/* What one epoll_wait looks at: the live members' engine side, in this
 * thread's scratch memory (slot SCRATCH_EP0 + depth of nesting). */
#define EP_MAX_DEPTH 4
struct ep_snap {
  int n, nn;   /* offloaded sockets, nested sets */
  int pending; /* members not decided yet */
  int stale;   /* a member moved to the kernel since: look again */
  int cap;
  /* offloaded sockets: handle, poll events, revents, counters, member index
   * and fd, and the member's state (for ep_peek) */
  uint64_t *h, *rx, *tx, *m_rx, *m_tx;
  int *idx, *fdv, *m_fresh;
  uint32_t* m_ev;
  short *ev, *rev;
  /* nested sets */
  struct ep_set** inner;
  uint64_t* inner_wake;
  uint32_t* inner_gen;
  int *inner_ready, *inner_idx;
};

/* The set of an epoll fd, made when create is set. */
struct ep_set* ep_get(int epfd, int create);
/* fd just became an offloaded stream connection: wherever it is a member
 * not decided yet, it leaves the kernel set (its placeholder twin must not
 * report there) and becomes an offloaded member. */
void ep_conn_adopted(int fd, struct fd_ent* e);
/* sock's connect fell back to the kernel: every set holding it gives the
 * registration (events, data, EPOLLET/EPOLLONESHOT state) to its kernel
 * set. */
void ep_move_to_kernel(struct shim_sock* sock);
/* The epoll fd is gone: its set is reused later (lock-free: close). */
void ep_free(struct ep_set* set);
/* set->mu held: drops dead members, takes in decided ones, and fills s
 * (scratch slot). Returns 0 or -ENOMEM. */
int ep_snapshot(struct ep_set* set, struct ep_snap* s, int slot);

#endif
