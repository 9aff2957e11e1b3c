/* The program's signal handlers, seen by the shim.
 *
 * A blocking call on an offloaded socket spins on the engine before it
 * sleeps. The kernel ends a blocking call with EINTR when a handler without
 * SA_RESTART runs during it (always for SO_RCVTIMEO receives and for
 * poll/select/epoll), so the spin must know whether a handler ran. Blocking
 * every signal for the spin would cost two sigprocmask system calls per
 * blocking call; instead every handler the program installs runs through
 * wrapper(), which counts, per thread, the handlers that ran and those
 * installed without SA_RESTART before calling the program's own. The socket
 * layer compares the counts before and after each step of its spin
 * (machnet_libc.signal_counts).
 *
 * sigaction(), signal(), bsd_signal(), sysv_signal() (and __sysv_signal, what
 * strict ISO C programs call for signal()) and siginterrupt() are interposed; a query returns what
 * the program installed, never the wrapper. Handlers installed before the shim's constructor are
 * wrapped by it. Handlers set by raw system calls (rt_sigaction without libc) are not counted: a
 * handler of theirs that runs during a spin does not end the call (machnet.conf(5), PRELOAD).
 * Everything here is async-signal-safe: sigaction may be called from a handler. */
#include "shim.h"

#include <string.h>

/* What the program installed for each signal; fn is NULL when the kernel
 * holds the program's action itself (SIG_DFL, SIG_IGN, or never set). */
struct prog_action {
  _Atomic(void*) fn; /* sa_handler or sa_sigaction, as the program gave it */
  _Atomic int flags; /* the program's sa_flags */
  sigset_t mask;     /* the program's sa_mask */
};
static struct prog_action g_actions[NSIG];

static __thread struct machnet_signal_counts tls_counts __attribute__((tls_model("initial-exec")));

const volatile struct machnet_signal_counts* signal_counts(void) {
  return &tls_counts;
}

static void wrapper(int sig, siginfo_t* info, void* uc) {
  void* fn = atomic_load_explicit(&g_actions[sig].fn, memory_order_acquire);
  int flags = atomic_load_explicit(&g_actions[sig].flags, memory_order_relaxed);
  tls_counts.ran++;
  if (!(flags & SA_RESTART)) tls_counts.interrupted++;
  /* The kernel has reset the disposition already (SA_RESETHAND): so does the
   * program's view of it. */
  if (flags & SA_RESETHAND) atomic_store_explicit(&g_actions[sig].fn, NULL, memory_order_release);
  if (fn == NULL) return; /* changed to SIG_DFL/SIG_IGN while this signal was on its way */
  if (flags & SA_SIGINFO)
    ((void (*)(int, siginfo_t*, void*))fn)(sig, info, uc);
  else
    ((void (*)(int))fn)(sig);
}

static int wrappable(int sig) {
  return sig > 0 && sig < NSIG && sig != SIGKILL && sig != SIGSTOP;
}

static int is_handler(const struct sigaction* sa) {
  return (sa->sa_flags & SA_SIGINFO) || (sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN);
}

/* The program's view of signal sig, given what the kernel holds. */
static void program_view(int sig, struct sigaction* kernel_view) {
  struct prog_action* a = &g_actions[sig];
  void* fn = atomic_load_explicit(&a->fn, memory_order_acquire);
  if (fn == NULL || kernel_view->sa_sigaction != wrapper) return;
  int flags = atomic_load_explicit(&a->flags, memory_order_relaxed);
  kernel_view->sa_flags = flags;
  kernel_view->sa_mask = a->mask;
  if (flags & SA_SIGINFO)
    kernel_view->sa_sigaction = (void (*)(int, siginfo_t*, void*))fn;
  else
    kernel_view->sa_handler = (void (*)(int))fn;
}

EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!wrappable(sig)) return REAL(sigaction)(sig, act, old);
  struct sigaction prev;
  if (act == NULL || !is_handler(act)) {
    /* A query, SIG_DFL or SIG_IGN: the kernel holds the program's action. */
    if (REAL(sigaction)(sig, act, &prev) != 0) return -1;
    program_view(sig, &prev);
    if (act != NULL) atomic_store_explicit(&g_actions[sig].fn, NULL, memory_order_release);
    if (old != NULL) *old = prev;
    return 0;
  }
  struct prog_action* a = &g_actions[sig];
  struct prog_action saved = {atomic_load(&a->fn), atomic_load(&a->flags), a->mask};
  /* The table first, so a signal that arrives as soon as the wrapper is in
   * place calls the new handler. */
  atomic_store_explicit(&a->flags, act->sa_flags, memory_order_relaxed);
  a->mask = act->sa_mask;
  atomic_store_explicit(
      &a->fn, (act->sa_flags & SA_SIGINFO) ? (void*)act->sa_sigaction : (void*)act->sa_handler,
      memory_order_release);
  struct sigaction k = *act;
  k.sa_flags |= SA_SIGINFO;
  k.sa_sigaction = wrapper;
  if (REAL(sigaction)(sig, &k, &prev) != 0) {
    int e = errno;
    atomic_store(&a->flags, atomic_load(&saved.flags));
    a->mask = saved.mask;
    atomic_store(&a->fn, atomic_load(&saved.fn));
    errno = e;
    return -1;
  }
  if (prev.sa_sigaction == wrapper) {
    /* The program's previous handler, from what the table held. */
    void* fn = atomic_load(&saved.fn);
    int flags = atomic_load(&saved.flags);
    prev.sa_flags = flags;
    prev.sa_mask = saved.mask;
    if (flags & SA_SIGINFO)
      prev.sa_sigaction = (void (*)(int, siginfo_t*, void*))fn;
    else
      prev.sa_handler = fn != NULL ? (void (*)(int))fn : SIG_DFL;
  }
  if (old != NULL) *old = prev;
  return 0;
}

/* signal(), bsd_signal() and sysv_signal() set their action through libc's
 * internal sigaction, which no interposer sees: each is rebuilt here on the
 * interposed one with glibc's flags. */
static sighandler_t set_handler(int sig, sighandler_t h, int flags) {
  if (h == SIG_ERR || sig <= 0 || sig >= NSIG) {
    errno = EINVAL;
    return SIG_ERR;
  }
  struct sigaction sa, old;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = h;
  sigemptyset(&sa.sa_mask);
  if (!(flags & SA_NODEFER)) sigaddset(&sa.sa_mask, sig);
  sa.sa_flags = flags;
  if (sigaction(sig, &sa, &old) != 0) return SIG_ERR;
  return (old.sa_flags & SA_SIGINFO) ? (sighandler_t)(void*)old.sa_sigaction : old.sa_handler;
}

/* glibc's signal() restarts unless siginterrupt() asked otherwise. */
static sigset_t g_interrupting;

EXPORT sighandler_t signal(int sig, sighandler_t h) {
  int restart = sig > 0 && sig < NSIG && sigismember(&g_interrupting, sig) == 1 ? 0 : SA_RESTART;
  return set_handler(sig, h, restart);
}

EXPORT sighandler_t bsd_signal(int sig, sighandler_t h) {
  return signal(sig, h);
}

EXPORT sighandler_t sysv_signal(int sig, sighandler_t h) {
  return set_handler(sig, h, SA_RESETHAND | SA_NODEFER);
}

/* What signal() is in programs built without _DEFAULT_SOURCE (strict ISO C). */
EXPORT sighandler_t __sysv_signal(int sig, sighandler_t h) {
  return sysv_signal(sig, h);
}

EXPORT int siginterrupt(int sig, int interrupt) {
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) != 0) return -1;
  if (interrupt) {
    sigaddset(&g_interrupting, sig);
    sa.sa_flags &= ~SA_RESTART;
  } else {
    sigdelset(&g_interrupting, sig);
    sa.sa_flags |= SA_RESTART;
  }
  return sigaction(sig, &sa, NULL);
}

void signals_wrap_existing(void) {
  for (int sig = 1; sig < NSIG; sig++) {
    if (!wrappable(sig)) continue;
    struct sigaction cur;
    if (REAL(sigaction)(sig, NULL, &cur) != 0 || !is_handler(&cur) || cur.sa_sigaction == wrapper)
      continue;
    sigaction(sig, &cur, NULL);
  }
}
