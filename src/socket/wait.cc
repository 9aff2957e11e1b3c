// How the socket layer's blocking calls wait: on the stack's waiters (spin,
// then sleep on the thread's eventfd until an arrival wakes it), with the
// signal semantics of the kernel's blocking calls.
//
// A blocking call first spins on the engine for socket.spin_us. Under the
// shim, signals stay deliverable during the spin: every handler of the
// program runs through the shim's wrapper, which counts it per thread, and
// the spin compares the counts, ending the call with EINTR as the kernel
// would (always for poll/select/epoll and receives with SO_RCVTIMEO, for
// other receives when a handler without SA_RESTART ran). Without the counts
// the spin blocks every signal (two sigprocmask calls per blocking call).
// Then the call registers as a waiter and sleeps in ppoll() on its eventfd
// and the kernel twin(s), signals blocked until ppoll restores the caller's
// mask atomically, so a signal that arrives while it sleeps ends the sleep
// there.
#include <time.h>

#include "socket/socket_internal.h"
#include "socket/socket_layer.h"

namespace machnet::socket {

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void SignalGuard::begin(bool own_mask) {
  if (!own_mask && g.libc.signal_counts != nullptr) counts = g.libc.signal_counts();
  if (counts == nullptr) {
    arm();
    return;
  }
  ran = counts->ran;
  interrupted = counts->interrupted;
}

void SignalGuard::arm() {
  if (active) return;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  active = true;
}

int SignalGuard::check(bool always_eintr) {
  if (counts == nullptr || counts->ran == ran) return 0;
  if (always_eintr || counts->interrupted != interrupted) return -EINTR;
  ran = counts->ran;  // SA_RESTART handlers only: the kernel restarts
  return 0;
}

bool SignalGuard::restarts(bool always_eintr) {
  if (always_eintr) return false;
  if (counts != nullptr) return counts->interrupted == interrupted;
  return every_handler_restarts(old);
}

SignalGuard::~SignalGuard() {
  if (active) pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// Which signal interrupted the sleep is not known here, so the call is
// restarted only when every signal the caller lets through and catches has
// SA_RESTART: a program with any handler without it is prepared for EINTR
// and gets it (the next step is to interpose sigaction and know the signal).
// Rare: one sigaction per signal number, only after an interruption.
bool every_handler_restarts(const sigset_t& old) {
  for (int sig = 1; sig < NSIG; sig++) {
    if (sigismember(&old, sig) == 1) continue;
    struct sigaction sa;
    if (sigaction(sig, nullptr, &sa) != 0) continue;
    bool has_handler =
        (sa.sa_flags & SA_SIGINFO) != 0 || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    if (has_handler && !(sa.sa_flags & SA_RESTART)) return false;
  }
  return true;
}

namespace {

// What a socket layer waiter waits for: one socket (ctx) or a poll set
// (handles, 0 entries not offloaded). Called with the lock held.
uint64_t waiter_seq(const stack::Waiter& w) {
  if (w.ctx != nullptr) return rx_seq(static_cast<const Sock*>(w.ctx));
  uint64_t sum = 0;
  for (size_t i = 0; i < w.n; i++) {
    if (Sock* s = live_sock(w.handles[i])) sum += rx_seq(s);
  }
  return sum;
}

bool waiter_ready(const stack::Waiter& w) {
  if (w.ctx != nullptr) return has_data(static_cast<const Sock*>(w.ctx));
  for (size_t i = 0; i < w.n; i++) {
    Sock* s = live_sock(w.handles[i]);
    if (s != nullptr && has_data(s)) return true;
  }
  return false;
}

int arm(const Sock* s, const uint64_t* handles, size_t n, const uint64_t* seen) {
  stack::Waiter* w = stack::Waiters::mine();
  if (w == nullptr) return -EAGAIN;
  w->seq = waiter_seq;
  w->ready = waiter_ready;
  w->ctx = s;
  w->handles = handles;
  w->n = n;
  return g.stack->wait_arm(w, seen);
}

}  // namespace

int arm_socket(Sock* s, const uint64_t* seen) {
  return arm(s, nullptr, 0, seen);
}

int arm_set(const uint64_t* handles, size_t n, const uint64_t* seen_sum) {
  return arm(nullptr, handles, n, seen_sum);
}

void disarm() {
  stack::Waiter* w = stack::Waiters::mine();
  if (w == nullptr) return;
  g.stack->wait_disarm(w);
  w->ctx = nullptr;
  w->handles = nullptr;
  w->n = 0;
}

// Waits the shim runs itself (epoll): seen_rx[i] is the rx_seq ready_seq gave
// for handles[i] at the caller's last look.
int op_wait_arm(const uint64_t* handles, const uint64_t* seen_rx, size_t n) {
  if (seen_rx == nullptr) return arm_set(handles, n, nullptr);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += seen_rx[i];
  return arm_set(handles, n, &sum);
}

void op_wait_disarm(void) {
  disarm();
}

}  // namespace machnet::socket
