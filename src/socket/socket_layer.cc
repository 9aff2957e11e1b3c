// The socket layer: offloaded UDP sockets over the engine, behind the C entry
// table the preload shim calls (socket_ops.h).
//
// Threading: the engine is single-threaded, so one mutex (g.mu) guards it
// and every socket's engine-side state; a call holds it only for one engine
// poll plus one datagram, never while sleeping. Socket objects live in
// chunks that are never freed, and a handle carries a generation: a thread
// that still holds a handle after another thread closed the fd gets -EBADF,
// never a recycled socket. In-flight calls hold a reference (acquire /
// release); the engine port is given back when the last fd is closed and the
// last call has left.
//
// Waiting: a blocking call first spins on the engine for socket.spin_us,
// with signals blocked. Then it registers as a waiter (its thread's eventfd
// and the sockets it waits for) and sleeps in ppoll() on that eventfd and the
// kernel twin(s), with the caller's mask restored atomically by ppoll, so a
// signal that arrived while spinning or sleeping is delivered to this thread
// then and ends the call with EINTR as the kernel would: always for
// poll/select/epoll and receives with SO_RCVTIMEO, and for other receives
// unless the handler has SA_RESTART (approximated: see
// every_handler_restarts). Whoever polls the engine next and sees a datagram
// reach a waiter's socket writes the waiter's eventfd: usually the progress
// thread, which while anyone sleeps waits for the NIC itself (in ppoll on the
// AF_XDP sockets, whose POLLIN the kernel raises on arrival) or, for devices
// without a pollable RX fd (memif, tap), polls every socket.wake_poll_us.
// socket.sleep_us only bounds one sleep as a backstop. The twin carries
// whatever reaches the socket through the kernel.
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <dirent.h>

#include "common/config.h"
#include "engine/engine.h"
#include "socket/socket_ops.h"
#include "wire/headers.h"

namespace machnet::socket {
namespace {

using engine::Engine;
using engine::EngineConfig;
using engine::UdpSocket;

constexpr uint32_t kChunkBits = 10;
constexpr uint32_t kChunkSize = 1u << kChunkBits;
constexpr uint32_t kMaxChunks = 1024;  // 1M sockets
constexpr size_t kMaxDatagram = 65535;
// Sleep slice when no eventfd wake-up can be armed (waiter table full).
constexpr int64_t kSliceNs = 200'000;

struct Sock {
  // generation << 32 | references held by calls in progress.
  std::atomic<uint64_t> state{uint64_t{1} << 32};
  // Everything below is guarded by g.mu.
  UdpSocket* us = nullptr;
  int twin = -1;
  int fd_refs = 0;
  uint32_t local_ip = 0;  // host order; 0 = INADDR_ANY
  uint16_t local_port = 0;
  bool connected = false;
  uint32_t peer_ip = 0;
  uint16_t peer_port = 0;
  // One datagram taken off the engine queue early (FIONREAD, MSG_PEEK): the
  // engine has no "length of the next datagram" call. Allocated on first use.
  uint8_t* stash = nullptr;
  bool has_stash = false;
  size_t stash_len = 0;
  uint32_t stash_ip = 0;
  uint16_t stash_port = 0;
  bool stash_exempt = false;  // the stashed datagram predates connect()
  // Datagrams at the head of the engine queue that arrived before the last
  // connect(): delivered whatever their source, as the kernel does.
  uint32_t unfiltered = 0;
  // shutdown(2): the kernel's sk_shutdown bits (the twin has them too).
  // Atomic: read without g.mu on the data path.
  std::atomic<bool> shut_rd{false};
  std::atomic<bool> shut_wr{false};
  // Datagrams taken off the engine queue, and sent through the engine: with
  // udp_pending, an arrival and a send count for epoll's edge-triggered mode.
  uint64_t rx_taken = 0;
  uint64_t tx_count = 0;
  uint32_t next_free = 0;  // free list link (slot + 1)
};

// A thread asleep in a blocking call, waiting for datagrams on some sockets
// (one for a receive; the offloaded fds of a poll/select/epoll set). Lives
// in thread-local storage between arm and disarm; guarded by g.mu while
// registered.
struct Waiter {
  int efd = -1;                       // the thread's eventfd
  Sock* sock = nullptr;               // a receive's socket, or
  const uint64_t* handles = nullptr;  // a poll set's handles (0 = not offloaded)
  size_t n = 0;
  uint64_t baseline = 0;  // rx_seq sum at arm: any change is an arrival
  bool woken = false;
  bool registered = false;
};
constexpr size_t kMaxWaiters = 256;
constexpr size_t kMaxRxFds = 8;

struct Globals {
  std::mutex mu;
  Engine* engine = nullptr;  // never destroyed while calls may run (see at_exit)
  bool down = false;         // engine stopped at exit: calls fail with ENETDOWN
  pid_t owner = 0;
  machnet_libc libc{};
  int64_t spin_ns = 100'000;
  int64_t sleep_ns = 100'000'000;
  int64_t progress_ns = 1'000'000;  // 0: no progress thread
  int64_t wake_poll_ns = 50'000;    // progress thread's period while someone sleeps
  // Registered sleepers (g.mu); nwaiters is also read without the lock.
  Waiter* waiters[kMaxWaiters] = {};
  std::atomic<uint32_t> nwaiters{0};
  uint64_t last_udp_rx = 0;
  uint64_t last_icmp_rx = 0;
  int progress_efd = -1;  // wakes the progress thread when the first sleeper comes
  int rx_fds[kMaxRxFds];  // fds the kernel makes readable when frames arrive (AF_XDP)
  int n_rx_fds = 0;
  pthread_t progress;
  bool progress_running = false;
  std::atomic<bool> progress_stop{false};
  std::atomic<Sock*> chunks[kMaxChunks] = {};
  uint32_t next_slot = 0;     // slots ever used
  uint32_t free_head = 0;     // slot + 1
  uint8_t* bounce = nullptr;  // scatter receive, guarded by mu
} g;

size_t poll_engine();  // below, with the wake-ups

inline uint32_t handle_slot(uint64_t h) {
  return static_cast<uint32_t>(h) - 1;
}
inline uint32_t handle_gen(uint64_t h) {
  return static_cast<uint32_t>(h >> 32);
}

Sock* slot_ptr(uint32_t slot) {
  if (slot >= kMaxChunks * kChunkSize) return nullptr;
  Sock* chunk = g.chunks[slot >> kChunkBits].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr : &chunk[slot & (kChunkSize - 1)];
}

// Takes a reference for a call; nullptr when the handle is stale.
Sock* acquire(uint64_t h) {
  if (static_cast<uint32_t>(h) == 0) return nullptr;
  Sock* s = slot_ptr(handle_slot(h));
  if (s == nullptr) return nullptr;
  uint64_t st = s->state.load(std::memory_order_acquire);
  do {
    if (static_cast<uint32_t>(st >> 32) != handle_gen(h)) return nullptr;
  } while (!s->state.compare_exchange_weak(st, st + 1, std::memory_order_acq_rel));
  return s;
}

void finalize(Sock* s, uint32_t slot) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (s->us != nullptr && g.engine != nullptr && !g.down) g.engine->udp_close(s->us);
  s->us = nullptr;
  s->twin = -1;
  s->connected = false;
  s->has_stash = false;
  s->unfiltered = 0;
  s->shut_rd.store(false);
  s->shut_wr.store(false);
  s->next_free = g.free_head;
  g.free_head = slot + 1;
}

void release(Sock* s, uint64_t h) {
  uint64_t st = s->state.fetch_sub(1, std::memory_order_acq_rel) - 1;
  // The socket was closed while this call ran and this was the last call.
  if (static_cast<uint32_t>(st >> 32) != handle_gen(h) && static_cast<uint32_t>(st) == 0)
    finalize(s, handle_slot(h));
}

// RAII reference for one call.
class Ref {
 public:
  explicit Ref(uint64_t h) : h_(h), s_(acquire(h)) {}
  ~Ref() {
    if (s_ != nullptr) release(s_, h_);
  }
  Sock* get() const { return s_; }
  // Still open? (another thread may close the fd while this call waits)
  bool open() const {
    return static_cast<uint32_t>(s_->state.load(std::memory_order_acquire) >> 32) == handle_gen(h_);
  }

 private:
  uint64_t h_;
  Sock* s_;
};

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Destinations only the kernel reaches: loopback, "this host", broadcast and
// multicast. An offloaded socket sends those through its twin.
bool kernel_only_dst(uint32_t ip) {
  return (ip >> 24) == 127 || ip == 0 || ip == 0xffffffffu || (ip >> 28) == 0xe;
}

size_t iov_total(const msghdr* m) {
  size_t n = 0;
  for (size_t i = 0; i < static_cast<size_t>(m->msg_iovlen); i++) n += m->msg_iov[i].iov_len;
  return n;
}

// Copies up to len bytes of src into the iovec; returns the bytes copied.
size_t scatter(const msghdr* m, const uint8_t* src, size_t len) {
  size_t done = 0;
  for (size_t i = 0; i < static_cast<size_t>(m->msg_iovlen) && done < len; i++) {
    size_t n = std::min(m->msg_iov[i].iov_len, len - done);
    if (n != 0) memcpy(m->msg_iov[i].iov_base, src + done, n);
    done += n;
  }
  return done;
}

void fill_name(msghdr* m, uint32_t ip, uint16_t port) {
  if (m->msg_name != nullptr) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(ip);
    memcpy(m->msg_name, &a, std::min<size_t>(m->msg_namelen, sizeof(a)));
  }
  m->msg_namelen = sizeof(sockaddr_in);
}

// A datagram was taken off the engine queue (g.mu held). Returns whether it
// predates the last connect() (then it is not filtered by peer).
bool take_one(Sock* s) {
  s->rx_taken++;
  if (s->unfiltered == 0) return false;
  s->unfiltered--;
  return true;
}

// An ICMP error the engine recorded for a datagram this socket sent
// (ECONNREFUSED for port unreachable). Like the kernel without IP_RECVERR,
// only a connected socket hears it, and only about its peer (g.mu held).
int take_icmp_error(Sock* s) {
  uint32_t ip;
  uint16_t port;
  int e = g.engine->udp_take_error(s->us, &ip, &port);
  if (e == 0 || !s->connected || ip != s->peer_ip || port != s->peer_port) return 0;
  return e;
}

bool icmp_error_pending(Sock* s) {
  uint32_t ip;
  uint16_t port;
  int e = g.engine->udp_peek_error(s->us, &ip, &port);
  return e != 0 && s->connected && ip == s->peer_ip && port == s->peer_port;
}

// One receive attempt on the engine (g.mu held). Returns the datagram length
// reported to the caller, or -EAGAIN.
ssize_t try_recv_locked(Sock* s, msghdr* m, int flags) {
  if (g.down) return -ENETDOWN;
  // machnetd is gone: what the engine held is lost with it.
  if (int f = g.engine->failure()) return -f;
  for (;;) {
    if (!s->has_stash && g.engine->udp_pending(s->us) == 0) {
      poll_engine();
      if (g.engine->udp_pending(s->us) == 0) {
        if (int e = take_icmp_error(s)) return -e;
        return -EAGAIN;
      }
    }
    size_t cap = iov_total(m);
    uint32_t ip;
    uint16_t port;
    size_t full;
    const uint8_t* src;
    bool exempt = false;
    if (s->has_stash) {
      exempt = s->stash_exempt;
      ip = s->stash_ip;
      port = s->stash_port;
      full = s->stash_len;
      src = s->stash;
    } else if (flags & MSG_PEEK) {
      // Peek: move the datagram into the stash, where the next call finds it.
      if (s->stash == nullptr) {
        s->stash = static_cast<uint8_t*>(malloc(kMaxDatagram));
        if (s->stash == nullptr) return -ENOMEM;
      }
      ssize_t n = g.engine->udp_recvfrom(s->us, s->stash, kMaxDatagram, &ip, &port);
      if (n < 0) return n;
      exempt = take_one(s);
      s->stash_exempt = exempt;
      s->has_stash = true;
      s->stash_len = static_cast<size_t>(n);
      s->stash_ip = ip;
      s->stash_port = port;
      full = s->stash_len;
      src = s->stash;
    } else if (m->msg_iovlen == 1) {
      // Common case: straight into the caller's buffer.
      ssize_t n =
          g.engine->udp_recvfrom(s->us, m->msg_iov[0].iov_base, m->msg_iov[0].iov_len, &ip, &port);
      if (n < 0) return n;
      exempt = take_one(s);
      full = static_cast<size_t>(n);
      src = nullptr;
    } else {
      ssize_t n = g.engine->udp_recvfrom(s->us, g.bounce, kMaxDatagram, &ip, &port);
      if (n < 0) return n;
      exempt = take_one(s);
      full = static_cast<size_t>(n);
      src = g.bounce;
    }
    if (s->connected && !exempt && (ip != s->peer_ip || port != s->peer_port)) {
      // A connected UDP socket only hears its peer, as in the kernel (which
      // filters on arrival: what was queued before connect() still comes).
      s->has_stash = false;
      continue;
    }
    size_t copied = std::min(full, cap);
    if (src != nullptr) scatter(m, src, copied);
    if (!(flags & MSG_PEEK)) s->has_stash = false;
    fill_name(m, ip, port);
    m->msg_controllen = 0;
    m->msg_flags = full > cap ? MSG_TRUNC : 0;
    return static_cast<ssize_t>((flags & MSG_TRUNC) ? full : copied);
  }
}

ssize_t try_recv(Sock* s, msghdr* m, int flags) {
  std::lock_guard<std::mutex> lock(g.mu);
  return try_recv_locked(s, m, flags);
}

// A datagram that reached the socket through the kernel (the twin).
ssize_t twin_recv(Sock* s, msghdr* m, int flags) {
  ssize_t n = g.libc.recvmsg(s->twin, m, flags | MSG_DONTWAIT);
  return n < 0 ? -errno : n;
}

// ---- Wake-ups ------------------------------------------------------------

// Datagrams that ever reached s through the engine (g.mu held).
uint64_t rx_seq(Sock* s) {
  return s->us == nullptr ? 0 : s->rx_taken + g.engine->udp_pending(s->us);
}

bool has_data(Sock* s) {
  return s->us != nullptr && (s->has_stash || g.engine->udp_pending(s->us) != 0);
}

Sock* live_sock(uint64_t h) {
  if (h == 0) return nullptr;
  Sock* s = slot_ptr(handle_slot(h));
  // Under g.mu a socket whose generation still matches cannot be finalized.
  if (s == nullptr || static_cast<uint32_t>(s->state.load() >> 32) != handle_gen(h)) return nullptr;
  return s;
}

uint64_t waiter_seq(const Waiter* w) {
  if (w->sock != nullptr) return rx_seq(w->sock);
  uint64_t sum = 0;
  for (size_t i = 0; i < w->n; i++) {
    if (Sock* s = live_sock(w->handles[i])) sum += rx_seq(s);
  }
  return sum;
}

bool waiter_has_data(const Waiter* w) {
  if (w->sock != nullptr) return has_data(w->sock);
  for (size_t i = 0; i < w->n; i++) {
    Sock* s = live_sock(w->handles[i]);
    if (s != nullptr && has_data(s)) return true;
  }
  return false;
}

// After an engine poll (g.mu held): wakes every sleeper one of whose sockets
// got a datagram. Costs one load when nobody sleeps.
// An engine that failed (machnetd gone) wakes everyone: their calls then
// see the error.
void wake_waiters() {
  uint64_t rx = g.engine->counters().udp_rx;
  uint64_t icmp = g.engine->counters().icmp_unreachable_rx;
  // An ICMP error may end a connected socket's receive: everyone looks again.
  bool failed = g.engine->failure() != 0 || icmp != g.last_icmp_rx;
  if (rx == g.last_udp_rx && !failed) return;
  g.last_udp_rx = rx;
  g.last_icmp_rx = icmp;
  uint32_t n = g.nwaiters.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < n;) {
    Waiter* w = g.waiters[i];
    if (!failed && waiter_seq(w) == w->baseline) {
      i++;
      continue;
    }
    eventfd_write(w->efd, 1);
    w->woken = true;
    w->registered = false;
    g.waiters[i] = g.waiters[--n];
  }
  g.nwaiters.store(n, std::memory_order_relaxed);
}

// Every engine poll of the socket layer goes through here (g.mu held).
size_t poll_engine() {
  size_t r = g.engine->poll();
  if (g.nwaiters.load(std::memory_order_relaxed) != 0) wake_waiters();
  return r;
}

struct ThreadWake {
  Waiter w;
  ~ThreadWake() {
    if (w.efd >= 0) ::close(w.efd);
  }
};
thread_local ThreadWake t_wake;

// Registers the calling thread to be woken when a datagram reaches one of
// its sockets through the engine after this point. Returns the eventfd to
// sleep on; -EALREADY when there is something to take already (level: data
// queued; always: an arrival since the caller last looked, seen by the
// engine poll done here); -EAGAIN when no sleep on the eventfd is possible
// (table full, no eventfd): the caller then sleeps in bounded slices.
// seen_rx (poll sets only): the rx_seq values of the caller's last look, so
// an arrival between that look and this call is not lost; without it, data
// already queued counts as "look again".
int wait_arm(Sock* sock, const uint64_t* handles, const uint64_t* seen_rx, size_t n) {
  Waiter* w = &t_wake.w;
  if (w->efd < 0) {
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) return -EAGAIN;
  }
  std::lock_guard<std::mutex> lock(g.mu);
  // Without a progress thread nobody would wake a sleeper: slices then.
  if (g.down || !g.progress_running) return -EAGAIN;
  w->sock = sock;
  w->handles = handles;
  w->n = n;
  w->woken = false;
  uint64_t before = 0;
  if (seen_rx != nullptr) {
    for (size_t i = 0; i < n; i++) before += seen_rx[i];
  } else {
    before = waiter_seq(w);
  }
  poll_engine();
  if (g.engine->failure() != 0) return -EALREADY;  // the call reports it
  w->baseline = waiter_seq(w);
  if (w->baseline != before || (seen_rx == nullptr && waiter_has_data(w))) return -EALREADY;
  uint32_t k = g.nwaiters.load(std::memory_order_relaxed);
  if (k == kMaxWaiters) return -EAGAIN;
  g.waiters[k] = w;
  w->registered = true;
  g.nwaiters.store(k + 1, std::memory_order_relaxed);
  // The progress thread sleeps long while nobody waits: tell it.
  if (k == 0 && g.progress_efd >= 0) eventfd_write(g.progress_efd, 1);
  return w->efd;
}

void wait_disarm() {
  Waiter* w = &t_wake.w;
  bool woken;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    if (w->registered) {
      uint32_t n = g.nwaiters.load(std::memory_order_relaxed);
      for (uint32_t i = 0; i < n; i++) {
        if (g.waiters[i] != w) continue;
        g.waiters[i] = g.waiters[n - 1];
        g.nwaiters.store(n - 1, std::memory_order_relaxed);
        break;
      }
      w->registered = false;
    }
    woken = w->woken;
    w->woken = false;
    w->sock = nullptr;
    w->handles = nullptr;
    w->n = 0;
  }
  if (woken) {
    eventfd_t v;
    eventfd_read(w->efd, &v);
  }
}

// The AF_XDP sockets the engine opened: the kernel raises POLLIN on them
// when frames arrive, so the progress thread can sleep on them.
void find_rx_fds(const std::set<int>& engine_fds) {
  g.n_rx_fds = 0;
  for (int fd : engine_fds) {
    int domain = 0;
    socklen_t len = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_XDP &&
        g.n_rx_fds < static_cast<int>(kMaxRxFds))
      g.rx_fds[g.n_rx_fds++] = fd;
  }
}

// Blocks every signal that can be blocked; the caller's mask goes to *old.
void block_signals(sigset_t* old) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, old);
}

struct SignalGuard {
  sigset_t old;
  bool active = false;
  void arm() {
    if (!active) block_signals(&old);
    active = true;
  }
  ~SignalGuard() {
    if (active) pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
};

// After a signal handler interrupted a receive that has no SO_RCVTIMEO:
// the kernel would restart the call if that handler had SA_RESTART. Which
// signal it was is not known here, so the call is restarted only when every
// signal the caller lets through and catches has SA_RESTART: a program with
// any handler without it is prepared for EINTR and gets it (the next step
// is to interpose sigaction and know the signal). Rare: one sigaction per
// signal number, only after an interruption.
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

bool read_shut(Sock* s) {
  return s->shut_rd.load(std::memory_order_acquire);
}

// The 0-byte result of a receive after shutdown(SHUT_RD).
ssize_t eof(msghdr* m) {
  m->msg_controllen = 0;
  m->msg_flags = 0;
  return 0;
}

ssize_t op_recvmsg(uint64_t h, msghdr* m, int flags, int64_t timeout_ns) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  if (flags & MSG_OOB) return -EOPNOTSUPP;
  if (flags & MSG_ERRQUEUE) return twin_recv(s, m, flags);
  if (flags & MSG_DONTWAIT) timeout_ns = 0;
  ssize_t n = try_recv(s, m, flags);
  if (n != -EAGAIN) return n;
  if (timeout_ns != 0 && read_shut(s)) {
    // After shutdown(SHUT_RD) a blocking receive on an empty queue returns
    // 0 at once (the twin's queue is looked at first, as one socket).
    n = twin_recv(s, m, flags);
    return n == -EAGAIN ? eof(m) : n;
  }
  if (timeout_ns == 0) {
    // Non-blocking and the engine has nothing: one look at the twin, the
    // syscall a kernel socket would have made anyway.
    return twin_recv(s, m, flags);
  }
  int64_t start = now_ns();
  int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
  SignalGuard sig;
  sig.arm();
  int64_t spin_end = start + g.spin_ns;
  for (int64_t t = start; t < spin_end && t < deadline; t = now_ns()) {
    n = try_recv(s, m, flags);
    if (n != -EAGAIN) return n;
    if (!ref.open()) return -EBADF;
  }
  for (;;) {
    int64_t t = now_ns();
    if (t >= deadline) return -EAGAIN;
    int efd = wait_arm(s, nullptr, nullptr, 0);
    if (efd == -EALREADY) {
      n = try_recv(s, m, flags);
      if (n != -EAGAIN) return n;
      continue;
    }
    int64_t wait = std::min(efd >= 0 ? g.sleep_ns : kSliceNs, deadline - t);
    timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    pollfd p[2] = {{s->twin, POLLIN, 0}, {efd, POLLIN, 0}};
    // The caller's mask during the sleep: a pending or new signal is
    // delivered here, to this thread, as it would be during a kernel recv.
    int r = g.libc.ppoll(p, efd >= 0 ? 2 : 1, &ts, &sig.old);
    int saved = errno;
    if (efd >= 0) wait_disarm();
    errno = saved;
    if (r < 0 && errno == EINTR) {
      // With SO_RCVTIMEO the kernel never restarts a receive; without it,
      // a handler with SA_RESTART does (see every_handler_restarts).
      if (timeout_ns > 0 || !every_handler_restarts(sig.old)) return -EINTR;
      r = 0;
    }
    if (!ref.open()) return -EBADF;
    if (r > 0 && (p[0].revents & POLLIN)) {
      n = twin_recv(s, m, flags);
      if (n != -EAGAIN) return n;
    }
    n = try_recv(s, m, flags);
    if (n != -EAGAIN) return n;
    // Another thread shut the socket down while this one waited.
    if (read_shut(s)) return eof(m);
  }
}

ssize_t op_sendmsg(uint64_t h, const msghdr* m, int flags, int64_t timeout_ns) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  if (flags & MSG_OOB) return -EOPNOTSUPP;
  uint32_t ip;
  uint16_t port;
  if (m->msg_name != nullptr && m->msg_namelen != 0) {
    if (m->msg_namelen < sizeof(sockaddr_in)) return -EINVAL;
    const auto* a = static_cast<const sockaddr_in*>(m->msg_name);
    if (a->sin_family != AF_INET) return a->sin_family == AF_UNSPEC ? -EDESTADDRREQ : -EAFNOSUPPORT;
    ip = ntohl(a->sin_addr.s_addr);
    port = ntohs(a->sin_port);
    if (port == 0) return -EINVAL;
  } else {
    std::lock_guard<std::mutex> lock(g.mu);
    if (!s->connected) return -EDESTADDRREQ;
    ip = s->peer_ip;
    port = s->peer_port;
  }
  // After shutdown(SHUT_WR): EPIPE, and no SIGPIPE (the kernel sends none
  // for UDP).
  if (s->shut_wr.load(std::memory_order_acquire)) return -EPIPE;
  size_t total = iov_total(m);
  if (total > wire::kMaxUdpPayload) return -EMSGSIZE;
  if (kernel_only_dst(ip)) {
    ssize_t n = g.libc.sendmsg(s->twin, m, flags);
    return n < 0 ? -errno : n;
  }
  if (flags & MSG_DONTWAIT) timeout_ns = 0;
  int64_t deadline = 0;
  for (int attempt = 0;; attempt++) {
    int rc;
    {
      std::lock_guard<std::mutex> lock(g.mu);
      if (g.down) return -ENETDOWN;
      rc = g.engine->udp_sendv(s->us, ip, port, m->msg_iov, static_cast<int>(m->msg_iovlen));
      if (rc == 0) s->tx_count++;
      // Keep the engine moving for programs that only send.
      poll_engine();
    }
    if (rc == 0) return static_cast<ssize_t>(total);
    // TX ring full: a blocking sender waits for room (the engine has just
    // been polled), a non-blocking one sees ENOBUFS as from a full qdisc.
    if (rc != -ENOBUFS || timeout_ns == 0) return rc;
    if (attempt == 0) deadline = timeout_ns < 0 ? INT64_MAX : now_ns() + timeout_ns;
    if (now_ns() >= deadline || attempt > 1000) return rc;
  }
}

int op_fionread(uint64_t h, int* out) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    if (g.down) return -ENETDOWN;
    if (!s->has_stash && g.engine->udp_pending(s->us) == 0) poll_engine();
    if (s->has_stash || g.engine->udp_pending(s->us) != 0) {
      // Peek the head datagram into the stash to learn its length.
      char c;
      iovec iov{&c, 0};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      ssize_t n = try_recv_locked(s, &m, MSG_PEEK | MSG_TRUNC);
      if (n >= 0) {
        *out = static_cast<int>(n);
        return 0;
      }
    }
  }
  int v = 0;
  if (g.libc.ioctl(s->twin, FIONREAD, &v) != 0) return -errno;
  *out = v;
  return 0;
}

// Engine-side readiness of an offloaded pollfd (g.mu held).
short engine_revents(Sock* s, short events) {
  short r = 0;
  // machnetd is gone: readable (a receive reports ENETDOWN) and in error.
  if (g.engine->failure() != 0)
    return static_cast<short>(POLLERR | (events & (POLLIN | POLLRDNORM)));
  // A pending ICMP error: POLLERR, and the receive that follows reports it.
  if (icmp_error_pending(s)) r |= static_cast<short>(POLLERR | (events & (POLLIN | POLLRDNORM)));
  if ((events & (POLLIN | POLLRDNORM)) && (s->has_stash || g.engine->udp_pending(s->us) != 0))
    r |= events & (POLLIN | POLLRDNORM);
  if (events & (POLLOUT | POLLWRNORM)) r |= events & (POLLOUT | POLLWRNORM);
  return r;
}

int engine_scan(pollfd* fds, nfds_t n, const uint64_t* handles, short* eng) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.down) return 0;
  poll_engine();
  int ready = 0;
  for (nfds_t i = 0; i < n; i++) {
    eng[i] = 0;
    if (handles[i] == 0) continue;
    Sock* s = slot_ptr(handle_slot(handles[i]));
    // Under g.mu a socket whose generation still matches cannot be finalized.
    if (s == nullptr || static_cast<uint32_t>(s->state.load() >> 32) != handle_gen(handles[i]))
      continue;
    eng[i] = engine_revents(s, fds[i].events);
    if (eng[i] != 0) ready++;
  }
  return ready;
}

int merge(pollfd* fds, nfds_t n, const short* eng) {
  int ready = 0;
  for (nfds_t i = 0; i < n; i++) {
    fds[i].revents |= eng[i];
    if (fds[i].revents != 0) ready++;
  }
  return ready;
}

int op_poll(pollfd* fds, nfds_t n, const uint64_t* handles, int64_t timeout_ns,
            const sigset_t* sigmask) {
  // Engine readiness per entry; on the stack for the usual handful of fds.
  short stack_eng[64];
  std::unique_ptr<short[]> heap_eng;
  short* eng = stack_eng;
  if (n > 64) {
    heap_eng.reset(new (std::nothrow) short[n]);
    if (!heap_eng) return -ENOMEM;
    eng = heap_eng.get();
  }
  const timespec zero{0, 0};
  auto kernel_check = [&](const timespec* ts, const sigset_t* mask) -> int {
    int r = g.libc.ppoll(fds, n, ts, mask);
    if (r < 0) return -errno;
    return r;
  };
  engine_scan(fds, n, handles, eng);
  int r = kernel_check(&zero, nullptr);
  if (r < 0) return r;
  int ready = merge(fds, n, eng);
  if (ready > 0 || timeout_ns == 0) return ready;
  int64_t start = now_ns();
  int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
  SignalGuard sig;
  sig.arm();
  const sigset_t* sleep_mask = sigmask != nullptr ? sigmask : &sig.old;
  int64_t spin_end = start + g.spin_ns;
  // Spin on the engine; look at the kernel fds every few rounds only, so
  // the spin is not one syscall per iteration.
  for (unsigned i = 1; now_ns() < std::min(spin_end, deadline); i++) {
    if (engine_scan(fds, n, handles, eng) == 0 && (i & 15) != 0) continue;
    r = kernel_check(&zero, nullptr);
    if (r < 0) return r;
    ready = merge(fds, n, eng);
    if (ready > 0) return ready;
  }
  // The sleep polls the caller's fds plus this thread's wake-up eventfd.
  pollfd stack_sleep[65];
  std::unique_ptr<pollfd[]> heap_sleep;
  pollfd* sleep_fds = stack_sleep;
  if (n + 1 > 65) {
    heap_sleep.reset(new (std::nothrow) pollfd[n + 1]);
    if (!heap_sleep) return -ENOMEM;
    sleep_fds = heap_sleep.get();
  }
  for (;;) {
    int64_t t = now_ns();
    if (t >= deadline) {
      // Report what the last look saw (nothing), as the kernel would.
      for (nfds_t i = 0; i < n; i++) fds[i].revents = 0;
      return 0;
    }
    int efd = wait_arm(nullptr, handles, nullptr, n);
    if (efd != -EALREADY) {
      int64_t wait = std::min(efd >= 0 ? g.sleep_ns : kSliceNs, deadline - t);
      timespec ts{static_cast<time_t>(wait / 1'000'000'000),
                  static_cast<long>(wait % 1'000'000'000)};
      memcpy(sleep_fds, fds, n * sizeof(pollfd));
      sleep_fds[n] = pollfd{efd, POLLIN, 0};
      r = g.libc.ppoll(sleep_fds, efd >= 0 ? n + 1 : n, &ts, sleep_mask);
      int saved = errno;
      if (efd >= 0) wait_disarm();
      if (r < 0) return -saved;
      for (nfds_t i = 0; i < n; i++) fds[i].revents = sleep_fds[i].revents;
    } else {
      r = kernel_check(&zero, nullptr);
      if (r < 0) return r;
    }
    engine_scan(fds, n, handles, eng);
    ready = merge(fds, n, eng);
    if (ready > 0) return ready;
  }
}

int op_ready(const uint64_t* handles, const short* events, short* revents, size_t n) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.down) return 0;
  poll_engine();
  int ready = 0;
  for (size_t i = 0; i < n; i++) {
    revents[i] = 0;
    Sock* s = slot_ptr(handle_slot(handles[i]));
    if (s == nullptr || static_cast<uint32_t>(s->state.load() >> 32) != handle_gen(handles[i]))
      continue;
    revents[i] = engine_revents(s, events[i]);
    if (revents[i] != 0) ready++;
  }
  return ready;
}

// op_ready plus, per socket, counters that move on every arrival and every
// send through the engine (epoll's edge-triggered mode in the shim).
int op_ready_seq(const uint64_t* handles, const short* events, short* revents, uint64_t* rx_seq,
                 uint64_t* tx_seq, size_t n) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.down) {
    for (size_t i = 0; i < n; i++) revents[i] = 0, rx_seq[i] = tx_seq[i] = 0;
    return 0;
  }
  poll_engine();
  int ready = 0;
  for (size_t i = 0; i < n; i++) {
    revents[i] = 0;
    rx_seq[i] = tx_seq[i] = 0;
    Sock* s = slot_ptr(handle_slot(handles[i]));
    if (s == nullptr || static_cast<uint32_t>(s->state.load() >> 32) != handle_gen(handles[i]))
      continue;
    revents[i] = engine_revents(s, events[i]);
    rx_seq[i] = s->rx_taken + g.engine->udp_pending(s->us);
    tx_seq[i] = s->tx_count;
    if (revents[i] != 0) ready++;
  }
  return ready;
}

// shutdown(2): the shim has applied it to the twin (errors, and the
// readiness poll/epoll see through it); the engine side keeps the bits.
int op_shutdown(uint64_t h, int how) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  std::lock_guard<std::mutex> lock(g.mu);
  if (how == SHUT_RD || how == SHUT_RDWR) s->shut_rd.store(true, std::memory_order_release);
  if (how == SHUT_WR || how == SHUT_RDWR) s->shut_wr.store(true, std::memory_order_release);
  return s->connected ? 0 : -ENOTCONN;
}

int op_wait_arm(const uint64_t* handles, const uint64_t* seen_rx, size_t n) {
  return wait_arm(nullptr, handles, seen_rx, n);
}

void op_wait_disarm(void) {
  wait_disarm();
}

void op_wait_params(int64_t* spin_ns, int64_t* sleep_ns) {
  *spin_ns = g.spin_ns;
  *sleep_ns = g.sleep_ns;
}

int op_udp_open(int twin, const sockaddr_in* local, uint64_t* handle) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.engine == nullptr || g.down) return -ENETDOWN;
  uint32_t slot;
  if (g.free_head != 0) {
    slot = g.free_head - 1;
  } else {
    slot = g.next_slot;
    if (slot >= kMaxChunks * kChunkSize) return -EMFILE;
    if (g.chunks[slot >> kChunkBits].load() == nullptr) {
      Sock* chunk = new (std::nothrow) Sock[kChunkSize];
      if (chunk == nullptr) return -ENOMEM;
      g.chunks[slot >> kChunkBits].store(chunk, std::memory_order_release);
    }
  }
  Sock* s = slot_ptr(slot);
  UdpSocket* us = nullptr;
  int rc = g.engine->udp_bind(ntohs(local->sin_port), &us);
  if (rc != 0) return rc;
  if (g.free_head != 0)
    g.free_head = s->next_free;
  else
    g.next_slot++;
  s->us = us;
  s->twin = twin;
  s->fd_refs = 1;
  s->local_ip = ntohl(local->sin_addr.s_addr);
  s->local_port = us->port();
  s->connected = false;
  s->has_stash = false;
  *handle = (s->state.load() & ~uint64_t{0xffffffff}) | (slot + 1);
  return 0;
}

int op_dup(uint64_t h) {
  Ref ref(h);
  if (ref.get() == nullptr) return -EBADF;
  std::lock_guard<std::mutex> lock(g.mu);
  ref.get()->fd_refs++;
  return 0;
}

int op_close(uint64_t h) {
  Sock* s = acquire(h);
  if (s == nullptr) return -EBADF;
  bool last;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    last = --s->fd_refs == 0;
  }
  if (!last) {
    release(s, h);  // outside g.mu: it may finalize, which takes g.mu
    return 0;
  }
  // Last fd: a new generation makes every outstanding handle stale; whoever
  // drops the last reference (this call, or a call still waiting) finalizes.
  uint64_t st = s->state.load();
  while (!s->state.compare_exchange_weak(st, st + (uint64_t{1} << 32))) {
  }
  release(s, h);
  return 0;
}

int op_connect(uint64_t h, const sockaddr_in* peer) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  std::lock_guard<std::mutex> lock(g.mu);
  // The kernel filters by peer on arrival: what is queued now (a peeked
  // datagram included) is still delivered after connect().
  if (s->has_stash) s->stash_exempt = true;
  s->unfiltered = g.down ? 0 : g.engine->udp_pending(s->us);
  if (peer == nullptr) {
    s->connected = false;
    return 0;
  }
  s->connected = true;
  s->peer_ip = ntohl(peer->sin_addr.s_addr);
  s->peer_port = ntohs(peer->sin_port);
  return 0;
}

int op_getsockname(uint64_t h, sockaddr_in* out) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  std::lock_guard<std::mutex> lock(g.mu);
  *out = sockaddr_in{};
  out->sin_family = AF_INET;
  out->sin_port = htons(s->local_port);
  // A connected socket bound to INADDR_ANY reports the address it sends
  // from: the engine's.
  uint32_t ip = s->local_ip;
  if (ip == 0 && s->connected && g.engine != nullptr) ip = g.engine->ip();
  out->sin_addr.s_addr = htonl(ip);
  return 0;
}

int op_getpeername(uint64_t h, sockaddr_in* out) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  std::lock_guard<std::mutex> lock(g.mu);
  if (!s->connected) return -ENOTCONN;
  *out = sockaddr_in{};
  out->sin_family = AF_INET;
  out->sin_port = htons(s->peer_port);
  out->sin_addr.s_addr = htonl(s->peer_ip);
  return 0;
}

uint32_t op_engine_ip() {
  std::lock_guard<std::mutex> lock(g.mu);
  return g.engine != nullptr ? htonl(g.engine->ip()) : 0;
}

std::set<int> open_fds() {
  std::set<int> fds;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd != dirfd(d)) fds.insert(fd);
  }
  closedir(d);
  return fds;
}

// At exit, the process that started the engine gives the device back (the
// AF_XDP program leaves the interface). A child made by fork() without exec
// runs the same atexit handlers: it must not touch the parent's device.
// The progress thread keeps the engine serviced while no application thread
// is inside a socket call (the application computes, or waits on kernel fds
// only): it answers ARP and ping, drains the NIC ring into the socket queues
// and runs the engine's timers. It only try_locks, so it never delays an
// application thread, which polls the engine itself. (Waking sleepers through
// an eventfd is the next step of the target design.)
//
// While some thread sleeps in a blocking call, it is also the one that wakes
// it: it waits for frames on the AF_XDP sockets (the kernel wakes it on
// arrival) or, without a pollable RX fd, polls every socket.wake_poll_us,
// and wake_waiters() runs after each poll.
void* progress_main(void*) {
  // Short sleeps must stay short: the default 50 us timer slack would
  // double the wake-up period.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  while (!g.progress_stop.load(std::memory_order_relaxed)) {
    bool sleepers = g.nwaiters.load(std::memory_order_relaxed) != 0;
    int64_t period = sleepers && g.n_rx_fds == 0 ? g.wake_poll_ns : g.progress_ns;
    timespec ts{static_cast<time_t>(period / 1'000'000'000),
                static_cast<long>(period % 1'000'000'000)};
    pollfd p[1 + kMaxRxFds];
    nfds_t np = 0;
    if (g.progress_efd >= 0) p[np++] = pollfd{g.progress_efd, POLLIN, 0};
    if (sleepers) {
      for (int i = 0; i < g.n_rx_fds; i++) p[np++] = pollfd{g.rx_fds[i], POLLIN, 0};
    }
    g.libc.ppoll(p, np, &ts, nullptr);
    if (g.progress_efd >= 0 && (p[0].revents & POLLIN)) {
      eventfd_t v;
      eventfd_read(g.progress_efd, &v);
    }
    // With sleepers the progress thread must poll (it is their only waker
    // unless an application thread is polling, and then it holds the lock
    // briefly); otherwise it stays out of the application's way.
    if (sleepers) {
      g.mu.lock();
    } else if (!g.mu.try_lock()) {
      continue;
    }
    if (!g.down && g.engine != nullptr) poll_engine();
    g.mu.unlock();
  }
  return nullptr;
}

void start_progress() {
  if (g.progress_ns <= 0) return;
  g.progress_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // Signals are for the application's threads: the new thread blocks them all.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  g.progress_running = pthread_create(&g.progress, nullptr, progress_main, nullptr) == 0;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (g.progress_running) pthread_setname_np(g.progress, "machnet-prog");
}

void at_exit() {
  // A fork() child runs the parent's atexit handlers too: it has no progress
  // thread and must not touch the parent's device.
  if (getpid() != g.owner) return;
  if (g.progress_running) {
    g.progress_stop.store(true);
    pthread_join(g.progress, nullptr);
    g.progress_running = false;
  }
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.engine == nullptr || g.down) return;
  g.down = true;
  delete g.engine;
  g.engine = nullptr;
}

void copy_msg(char* msg, size_t len, const std::string& s) {
  if (len == 0) return;
  snprintf(msg, len, "%s", s.c_str());
}

int op_init(const machnet_libc* libc, const char* config_path, char* msg, size_t msglen) {
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.engine != nullptr) {
    copy_msg(msg, msglen, "engine already running");
    return 0;
  }
  if (g.down) return -ENETDOWN;
  g.libc = *libc;
  Config cfg;
  std::string err;
  if (config_path != nullptr && config_path[0] != '\0' && !cfg.load_file(config_path, &err)) {
    copy_msg(msg, msglen, err);
    return -EINVAL;
  }
  std::vector<std::string> known = EngineConfig::keys();
  for (const char* k :
       {"socket.spin_us", "socket.sleep_us", "socket.progress_us", "socket.wake_poll_us", "strict",
        "library", "rules.default", "rules.keep_dns"})
    known.push_back(k);
  cfg.apply_env(known);
  std::string origin;
  for (const auto& k : cfg.unknown_keys(known, &origin)) {
    // rules.N are the shim's; machnetd.* (but machnetd.socket, the
    // engine's) are the daemon's: one machnet.conf may serve both.
    if (k.rfind("rules.", 0) == 0 || k.rfind("machnetd.", 0) == 0) known.push_back(k);
  }
  auto unknown = cfg.unknown_keys(known, &origin);
  if (!unknown.empty()) {
    copy_msg(msg, msglen, origin + ": unknown key '" + unknown[0] + "'");
    return -EINVAL;
  }
  uint64_t v = static_cast<uint64_t>(g.spin_ns / 1000);
  if (!cfg.get_u64("socket.spin_us", 0, 10'000'000, &v, &err)) {
    copy_msg(msg, msglen, err);
    return -EINVAL;
  }
  g.spin_ns = static_cast<int64_t>(v) * 1000;
  v = static_cast<uint64_t>(g.sleep_ns / 1000);
  if (!cfg.get_u64("socket.sleep_us", 1, 60'000'000, &v, &err)) {
    copy_msg(msg, msglen, err);
    return -EINVAL;
  }
  g.sleep_ns = static_cast<int64_t>(v) * 1000;
  v = static_cast<uint64_t>(g.progress_ns / 1000);
  if (!cfg.get_u64("socket.progress_us", 0, 1'000'000, &v, &err)) {
    copy_msg(msg, msglen, err);
    return -EINVAL;
  }
  g.progress_ns = static_cast<int64_t>(v) * 1000;
  v = static_cast<uint64_t>(g.wake_poll_ns / 1000);
  if (!cfg.get_u64("socket.wake_poll_us", 1, 1'000'000, &v, &err)) {
    copy_msg(msg, msglen, err);
    return -EINVAL;
  }
  g.wake_poll_ns = static_cast<int64_t>(v) * 1000;
  EngineConfig ec;
  if (!ec.load(cfg, &err)) {
    copy_msg(msg, msglen, err);
    return -EINVAL;
  }
  g.bounce = static_cast<uint8_t*>(malloc(kMaxDatagram));
  if (g.bounce == nullptr) return -ENOMEM;
  // Every fd the engine opens (AF_XDP socket, BPF maps, EAL) is the
  // engine's alone: close-on-exec, so an exec'd program never inherits them.
  std::set<int> before = open_fds();
  // Threads EAL starts (interrupts, telemetry) inherit this thread's mask:
  // with every signal blocked there, a process-directed signal always goes
  // to an application thread, whose blocking call then ends with EINTR.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  std::unique_ptr<Engine> e = Engine::create(ec, &err);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  std::set<int> engine_fds;
  for (int fd : open_fds()) {
    if (before.count(fd) != 0) continue;
    engine_fds.insert(fd);
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
  }
  find_rx_fds(engine_fds);
  if (!e) {
    copy_msg(msg, msglen, err);
    return -ENETDOWN;
  }
  g.engine = e.release();
  g.owner = getpid();
  atexit(at_exit);
  start_progress();
  copy_msg(msg, msglen,
           g.engine->describe() + "; socket.spin_us " + std::to_string(g.spin_ns / 1000) +
               ", socket.sleep_us " + std::to_string(g.sleep_ns / 1000) + ", socket.progress_us " +
               std::to_string(g.progress_ns / 1000) + ", wake-ups: " +
               (g.progress_ns <= 0 ? std::string("none (no progress thread)")
                : g.n_rx_fds > 0
                    ? "on NIC arrival (AF_XDP)"
                    : "progress polls every " + std::to_string(g.wake_poll_ns / 1000) + " us"));
  return 0;
}

const struct machnet_socket_ops_v1 kOps = {
    MACHNET_SOCKET_OPS_VERSION,
    sizeof(struct machnet_socket_ops_v1),
    op_init,
    op_engine_ip,
    op_udp_open,
    op_dup,
    op_close,
    op_connect,
    op_getsockname,
    op_getpeername,
    op_sendmsg,
    op_recvmsg,
    op_fionread,
    op_poll,
    op_ready,
    op_wait_params,
    op_ready_seq,
    op_shutdown,
    op_wait_arm,
    op_wait_disarm,
};

}  // namespace
}  // namespace machnet::socket

extern "C" __attribute__((visibility("default"))) const struct machnet_socket_ops_v1*
machnet_socket_ops_v1(void) {
  return &machnet::socket::kOps;
}
