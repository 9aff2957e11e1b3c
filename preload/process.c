/* fds and processes: close, close_range, closefrom, dup, dup2, dup3, fcntl,
 * fork, vfork, daemon, _exit, _Exit, kill, raise.
 *
 * close() may be called from a signal handler: its path (forget) uses only
 * atomics and the resolved libc functions, and calls the socket layer's
 * close only when this thread is outside the shim and the socket layer
 * (g_guard 0); otherwise that close is deferred (close_defer). */
#include "shim.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

void forget(int fd) {
  struct fd_ent* slot = fd_slot(fd);
  if (slot != NULL && atomic_load_explicit(&slot->conn_err, memory_order_relaxed) != 0)
    atomic_store(&slot->conn_err, 0);
  struct fd_ent* e = lookup(fd);
  if (e == NULL) return;
  uint32_t kind = atomic_exchange(&e->kind, KIND_NONE);
  atomic_fetch_add(&e->gen, 1);
  uint64_t h = atomic_exchange(&e->handle, 0);
  struct shim_sock* sock = atomic_exchange(&e->sock, NULL);
  if (kind == KIND_EPOLL) ep_free(atomic_exchange(&e->ep, NULL));
  /* A fork child never touches the parent's engine: only the twin goes. */
  if (kind == KIND_OFFLOAD && h != 0 && !atomic_load(&g_forked_child)) {
    if (g_guard) {
      /* A signal handler that interrupted the shim or the socket layer
       * (which may hold its lock on this thread). */
      close_defer(h);
    } else {
      close_deferred();
      g_guard++;
      g_ops->close(h);
      g_guard--;
    }
  }
  /* The last fd of the socket: it leaves every epoll set it was in. */
  if (sock != NULL) sock_unref(sock);
}

/* Whatever g_guard says: the engine's own fds are never in the table, so a
 * tracked fd closed while g_guard is raised is the program's, closed from a
 * signal handler. */
EXPORT int close(int fd) {
  forget(fd);
  return REAL(close)(fd);
}

/* Ranges closed at once (closefrom, close_range, as used before exec). */
static void forget_range(unsigned lo, unsigned hi) {
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
  if (REAL(close_range) != NULL) return REAL(close_range)(lo, hi, flags);
  return (int)syscall(SYS_close_range, lo, hi, flags); /* a libc before 2.34 */
}

EXPORT void closefrom(int lo) {
  if (lo >= 0) forget_range((unsigned)lo, ~0u);
  if (REAL(closefrom) != NULL) {
    REAL(closefrom)(lo);
  } else if (lo >= 0) {
    syscall(SYS_close_range, (unsigned)lo, ~0u, 0);
  }
}

/* A new fd names the same socket (dup, dup2, F_DUPFD). */
static void dup_track(int oldfd, int newfd) {
  if (newfd < 0 || oldfd == newfd) return;
  struct fd_ent* slot = fd_slot(newfd);
  if (slot != NULL) atomic_store(&slot->conn_err, 0);
  struct fd_ent* n = lookup(newfd);
  if (n != NULL) {
    atomic_store(&n->kind, KIND_NONE);
    atomic_fetch_add(&n->gen, 1);
  }
  struct fd_ent* o = lookup(oldfd);
  if (o == NULL || atomic_load(&o->kind) != KIND_OFFLOAD || atomic_load(&g_forked_child)) return;
  /* A PENDING socket's copy stays on the kernel: the decision is per fd. */
  struct shim_sock* sock = atomic_load(&o->sock);
  n = entry_make(newfd);
  if (n == NULL || sock == NULL) return;
  uint64_t h = atomic_load(&o->handle);
  g_guard++;
  int rc = g_ops->dup(h);
  g_guard--;
  if (rc < 0) return;
  sock_ref(sock);
  atomic_fetch_add(&n->gen, 1);
  atomic_store(&n->flags, atomic_load(&o->flags));
  atomic_store(&n->rcvtimeo_ns, atomic_load(&o->rcvtimeo_ns));
  atomic_store(&n->sndtimeo_ns, atomic_load(&o->sndtimeo_ns));
  atomic_store(&n->handle, h);
  atomic_store(&n->sock, sock);
  atomic_store_explicit(&n->kind, KIND_OFFLOAD, memory_order_release);
}

EXPORT int dup(int fd) {
  int n = REAL(dup)(fd);
  if (!g_guard) dup_track(fd, n);
  return n;
}

EXPORT int dup2(int fd, int newfd) {
  /* dup2 closes newfd only when fd is valid: check first, or a failing dup2
   * would lose an offloaded newfd. */
  if (fd != newfd && REAL(fcntl)(fd, F_GETFD) >= 0) forget(newfd);
  int n = REAL(dup2)(fd, newfd);
  if (!g_guard) dup_track(fd, n);
  return n;
}

EXPORT int dup3(int fd, int newfd, int flags) {
  if (fd != newfd && REAL(fcntl)(fd, F_GETFD) >= 0) forget(newfd);
  int n = REAL(dup3)(fd, newfd, flags);
  if (!g_guard) dup_track(fd, n);
  return n;
}

/* An offloaded listener's twin stays O_NONBLOCK (accept looks at the
 * kernel's queue without blocking): the program sees its own setting.
 * F_GETFL and F_SETFL keep the fd table's flags with atomics only, in a
 * signal handler too (g_guard raised: the engine's own fds are never in the
 * table); a dup (F_DUPFD) there is the kernel's alone. */
static int listener(int fd) {
  struct fd_ent* e = lookup(fd);
  return e != NULL && atomic_load(&e->kind) == KIND_OFFLOAD && (atomic_load(&e->flags) & FL_LISTEN);
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void* arg) {
  if ((cmd == F_GETFL || cmd == F_SETFL) && listener(fd)) {
    struct fd_ent* e = lookup(fd);
    if (cmd == F_GETFL) {
      int fl = real(fd, F_GETFL);
      if (fl < 0) return fl;
      return (atomic_load(&e->flags) & FL_NONBLOCK) ? fl : fl & ~O_NONBLOCK;
    }
    int want = (int)(intptr_t)arg;
    int rc = real(fd, F_SETFL, (void*)(intptr_t)(want | O_NONBLOCK));
    if (rc == 0) {
      if (want & O_NONBLOCK)
        atomic_fetch_or(&e->flags, FL_NONBLOCK);
      else
        atomic_fetch_and(&e->flags, ~(uint32_t)FL_NONBLOCK);
    }
    return rc;
  }
  int rc = real(fd, cmd, arg);
  if (rc < 0) return rc;
  if (cmd == F_SETFL) {
    struct fd_ent* e = lookup(fd);
    if (e != NULL) {
      if ((int)(intptr_t)arg & O_NONBLOCK)
        atomic_fetch_or(&e->flags, FL_NONBLOCK);
      else
        atomic_fetch_and(&e->flags, ~(uint32_t)FL_NONBLOCK);
    }
  } else if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && !g_guard) {
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
  return fcntl_common(REAL(fcntl), fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntl_common(REAL(fcntl64) ? REAL(fcntl64) : REAL(fcntl), fd, cmd, arg);
}

/* ---- fork -------------------------------------------------------------------
 * pthread_atfork handlers (every fork of the process runs them, the
 * interposed one below and libc's own callers alike). prepare takes the
 * shim's locks in their order (g_decide_mu, then every epoll set's mu), so
 * no other thread holds one across fork, the shim's tables are consistent
 * in the child, and an engine start in progress (under g_decide_mu)
 * finishes first: fork() waits for it. Not when this thread has g_guard
 * raised (a fork from a signal handler that interrupted the shim, or from
 * the engine's own code): it may hold one of them itself. The child
 * re-initialises them all (it has only the forking thread) and, when the
 * parent's engine had started or was starting, becomes a fork child: it
 * never touches the engine, whose device and progress thread stayed with
 * the parent. */
static __thread int t_fork_locked __attribute__((tls_model("initial-exec")));

static void fork_prepare(void) {
  t_fork_locked = 0;
  if (g_guard) return;
  pthread_mutex_lock(&g_decide_mu);
  ep_lock_all();
  t_fork_locked = 1;
  /* Attached: freeze the stream connections, so that the child's copy of
   * them is exact (see fork_prepare in socket_ops.h). */
  if (g_engine_up && !atomic_load(&g_forked_child) && SHIM_HAS_OP(fork_prepare)) {
    g_guard++;
    g_ops->fork_prepare();
    g_guard--;
  }
}

static void fork_parent(void) {
  if (!t_fork_locked) return;
  t_fork_locked = 0;
  ep_unlock_all(0);
  pthread_mutex_unlock(&g_decide_mu);
}

static void fork_child(void) {
  t_fork_locked = 0;
  ep_unlock_all(1);
  pthread_mutex_init(&g_decide_mu, NULL);
  if (g_engine_up || g_engine_starting) atomic_store(&g_forked_child, 1);
  /* Attached: the control connection the child's adoption will use, opened
   * now, with the parent's credentials (see fork_child in socket_ops.h). */
  if (g_engine_up && SHIM_HAS_OP(fork_child)) {
    g_guard++;
    g_ops->fork_child();
    g_guard--;
  }
}

void fork_handlers_install(void) {
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* fork() without exec: the child has a copy of the engine's memory but not
 * its device, and the parent keeps using both. The child never touches the
 * engine: inherited offloaded sockets fail with EBADFD (close works), and
 * new sockets stay on the kernel (strict: fail with ENETDOWN). exec clears
 * all of this: the engine's fds are close-on-exec, and an inherited twin is
 * an ordinary kernel socket in the new program. */
EXPORT pid_t fork(void) {
  /* The locks and the fork child's state: the atfork handlers above. */
  return REAL(fork)();
}

/* _exit and _Exit: the kernel would close the program's stream sockets now
 * (FIN, or RST): the socket layer does it for the offloaded ones, as exit()
 * does through its atexit handler. Not in a fork child (not its engine). */
static void exit_streams(void) {
  if (g_guard || !g_engine_up || atomic_load(&g_forked_child) || g_ops == NULL) return;
  g_guard++;
  g_ops->process_exit();
  g_guard--;
}

EXPORT void _exit(int status) {
  exit_streams();
  REAL(_exit)(status);
  __builtin_unreachable();
}

EXPORT void _Exit(int status) {
  exit_streams();
  REAL(_exit)(status);
  __builtin_unreachable();
}

/* kill() and raise() of a signal that ends this process: at its default
 * action and not blocked in this thread, the process ends without exit()
 * (Python after an unhandled KeyboardInterrupt resets SIGINT and sends it
 * to itself; C handlers reset and re-raise). The engine's runtime directory
 * goes first, as exit() would have removed it. Called from signal handlers
 * too: system calls and the async-signal-safe op only. */
static int ends_process(int sig) {
  switch (sig) {
    case SIGHUP:
    case SIGINT:
    case SIGQUIT:
    case SIGILL:
    case SIGTRAP:
    case SIGABRT:
    case SIGBUS:
    case SIGFPE:
    case SIGKILL:
    case SIGUSR1:
    case SIGSEGV:
    case SIGUSR2:
    case SIGPIPE:
    case SIGALRM:
    case SIGTERM:
    case SIGSTKFLT:
    case SIGXCPU:
    case SIGXFSZ:
    case SIGVTALRM:
    case SIGPROF:
    case SIGIO:
    case SIGPWR:
    case SIGSYS:
      return 1;
    default:
      return sig >= SIGRTMIN && sig <= SIGRTMAX;
  }
}

static void before_own_signal(pid_t pid, int sig) {
  if (g_guard || !g_engine_up || atomic_load(&g_forked_child) || g_ops == NULL) return;
  if (pid != getpid() || !ends_process(sig)) return;
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) != 0 || (sa.sa_flags & SA_SIGINFO) || sa.sa_handler != SIG_DFL)
    return;
  sigset_t blocked;
  if (sig != SIGKILL &&
      (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0 || sigismember(&blocked, sig)))
    return;
  g_guard++;
  g_ops->remove_runtime_dir();
  g_guard--;
}

EXPORT int kill(pid_t pid, int sig) {
  before_own_signal(pid, sig);
  return (int)syscall(SYS_kill, pid, sig);
}

EXPORT int raise(int sig) {
  before_own_signal(getpid(), sig);
  return (int)syscall(SYS_tgkill, getpid(), gettid(), sig);
}

/* vfork() is served as fork() (POSIX allows it): a child sharing the
 * parent's memory could otherwise reach into the parent's engine state. */
EXPORT pid_t vfork(void) {
  return fork();
}

/* daemon(): glibc forks through an internal call the preload cannot see, so
 * the daemon is made here, with the preload's fork(): the daemon then treats
 * inherited offloaded sockets as any fork child does. */
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
