#include "stack/stack.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <set>

#include "common/host.h"
#include "engine/log.h"

namespace machnet::stack {

using transport::Endpoint;
using transport::FlowId;
using transport::FlowState;

std::atomic<Stack*> Stack::instance_{nullptr};

namespace {

constexpr size_t kPorts = 65536;
constexpr uint64_t kReapPeriodNs = 1'000'000;
constexpr size_t kMaxRxFds = 8;

std::mutex g_start_mu;

uint64_t random_seed() {
  uint64_t seed = 0;
  // ISNs and connection ids must not be predictable across runs.
  if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
    seed = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&seed)) ^ 0x6d6163686e6574ull;
  }
  return seed;
}

// Every fd the engine opened (AF_XDP socket, BPF maps, EAL) is the
// engine's alone: close-on-exec, so an exec'd program never inherits them.
// Returns those the kernel makes readable when frames arrive (AF_XDP).
std::vector<int> claim_engine_fds(const std::set<int>& before) {
  std::vector<int> rx;
  for (int fd : mark_new_fds_cloexec(before)) {
    int domain = 0;
    socklen_t len = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_XDP &&
        rx.size() < kMaxRxFds)
      rx.push_back(fd);
  }
  return rx;
}

// The engine opens dozens of fds (EAL, hugepage memory, the AF_XDP socket,
// BPF maps). Taken from the lowest free numbers they would push the
// program's own sockets up, and programs that size tables by fd number
// (wrk's event loop, select() and its FD_SETSIZE) would fail. While the
// engine starts, the low numbers are held by placeholders; the engine's fds
// land above them, and the placeholders are closed after.
class LowFdGuard {
 public:
  LowFdGuard() {
    rlimit rl{};
    int top = kLowFds;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      top = std::min<int>(top, static_cast<int>(rl.rlim_cur / 2));
    // Copies of one descriptor: a dup is several times cheaper than an
    // open (a fork child attaching pays for every free slot below top).
    int first = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int fd = first; fd >= 0;) {
      held_.push_back(fd);
      if (fd >= top) break;
      fd = fcntl(first, F_DUPFD_CLOEXEC, 0);
    }
  }
  ~LowFdGuard() {
    for (int fd : held_) close(fd);
  }

 private:
  static constexpr int kLowFds = 256;
  std::vector<int> held_;
};

}  // namespace

Stack* Stack::start(const std::string& config_path, const std::vector<std::string>& overrides,
                    std::string* err, int* errno_out) {
  {
    std::lock_guard<std::mutex> g(g_start_mu);
    if (Stack* s = get()) return s->down() ? nullptr : s;
  }
  StackConfig cfg;
  if (!load_stack_config(config_path, overrides, &cfg, err)) {
    *errno_out = EINVAL;
    return nullptr;
  }
  return start(cfg, err, errno_out);
}

Stack* Stack::start(const StackConfig& cfg, std::string* err, int* errno_out) {
  std::lock_guard<std::mutex> g(g_start_mu);
  if (Stack* s = get()) return s->down() ? nullptr : s;
  // Threads EAL starts (interrupts, telemetry) inherit this thread's mask:
  // with every signal blocked there, a process-directed signal always goes
  // to an application thread, whose blocking call then ends with EINTR.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  std::unique_ptr<engine::Engine> eng;
  std::vector<int> rx_fds;
  {
    LowFdGuard low;
    std::set<int> before = open_fds();
    eng = engine::Engine::create(cfg.engine, err);
    rx_fds = claim_engine_fds(before);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!eng) {
    // A device but no address is a configuration error, whatever the
    // engine made of it.
    *errno_out = !cfg.engine.device.empty() && cfg.engine.ip == 0 ? EINVAL : ENODEV;
    return nullptr;
  }
  // Lives until exit: threads may still hold it.
  Stack* s = new Stack(cfg, std::move(eng), std::move(rx_fds));
  instance_.store(s, std::memory_order_release);
  // Once per process image (a fork child inherits the registration; at_exit
  // looks the stack up).
  static bool exit_registered = false;
  if (!exit_registered) std::atexit(at_exit);
  exit_registered = true;
  publish_counters();
  s->start_progress();
  const WaitConfig& w = cfg.wait;
  s->description_ =
      s->eng_->describe() + "; socket.spin_us " + std::to_string(w.spin_ns / 1000) +
      ", socket.sleep_us " + std::to_string(w.sleep_ns / 1000) + ", socket.progress_us " +
      std::to_string(w.progress_ns / 1000) + ", wake-ups: " +
      (!s->progress_running_ ? std::string("none (no progress thread)")
       : !s->rx_fds_.empty() ? "on NIC arrival (AF_XDP)"
       : w.park && s->eng_->wake_fd() >= 0
           ? std::string("by machnetd (parked lease)")
           : "progress polls every " + std::to_string(w.wake_poll_ns / 1000) + " us") +
      (w.adaptive_spin && s->eng_->attached() ? ", adaptive spin" : "");
  return s;
}

Stack::Stack(const StackConfig& cfg, std::unique_ptr<engine::Engine> eng, std::vector<int> rx_fds)
    : cfg_(cfg),
      eng_(std::move(eng)),
      ip_(eng_->ip()),
      owner_(getpid()),
      socks_(kPorts, nullptr),
      refs_(kPorts, 0),
      rxbuf_(65536),
      rx_fds_(std::move(rx_fds)) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  host_cpus_ = cpus > 0 ? static_cast<uint32_t>(cpus) : 1;
  max_spinners_ = cfg_.wait.spinners;
  if (max_spinners_ == 0) {
    // The CPUs this process may run on, one left for the thread whose data
    // arrives (and the progress thread).
    cpu_set_t set;
    int allowed = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                               : static_cast<int>(host_cpus_);
    max_spinners_ = allowed > 1 ? static_cast<uint32_t>(allowed - 1) : 1;
  }
  tp_ = std::make_unique<transport::Transport>(cfg_.tunables, this, ip_, random_seed());
  tp_->set_kernel_routes(&routes_);
  tp_->set_event_handler([this](FlowId flow, uint16_t listen_port, uint32_t events) {
    on_transport_event(flow, listen_port, events);
  });
}

void Stack::at_exit() {
  Stack* s = get();
  // A fork() child runs the parent's atexit handlers too: it has no progress
  // thread and must not touch the parent's device.
  if (s == nullptr || getpid() != s->owner_) return;
  if (s->progress_running_) {
    s->progress_stop_.store(true);
    if (s->progress_efd_ >= 0) eventfd_write(s->progress_efd_, 1);
    pthread_join(s->progress_, nullptr);
    s->progress_running_ = false;
  }
  // From here on every call sees down(): the engine is gone (the device is
  // given back, the XDP program leaves the interface); the transport stays,
  // inert, so a late call from another thread finds objects, not garbage.
  s->mu_.lock();
  s->down_.store(true, std::memory_order_release);
  for (uint16_t p : s->bound_) s->eng_->udp_close(s->socks_[p]);
  s->bound_.clear();
  std::fill(s->socks_.begin(), s->socks_.end(), nullptr);
  s->eng_.reset();
  // Sleepers learn it from their next look (ENETDOWN): wake them all.
  s->waiters_.wake(true);
  s->mu_.unlock();
}

uint64_t Stack::activity_now() const {
  const engine::EngineCounters& c = eng_->counters();
  // Arrivals on fork-shared rings count once a holder reads them: until
  // then only the rings' own figures move.
  return c.udp_rx + c.icmp_unreachable_rx + activity_ + eng_->shared_arrivals();
}

size_t Stack::poll_locked() {
  if (down()) return 0;
  size_t n = eng_->poll();
  uint64_t now = eng_->now_ns();
  // The transport never binds or unbinds ports from inside on_datagram, so
  // bound_ is stable during this loop.
  for (size_t i = 0; i < bound_.size(); i++) {
    uint16_t port = bound_[i];
    engine::UdpSocket* s = socks_[port];
    const Endpoint to{ip_, port};
    for (;;) {
      Endpoint from;
      ssize_t len = eng_->udp_recvfrom(s, rxbuf_.data(), rxbuf_.size(), &from.ip, &from.port);
      if (len < 0) break;
      tp_->on_datagram(now, from, to, rxbuf_.data(), static_cast<size_t>(len));
    }
    // ICMP unreachable for something this port sent: a SYN to a machnet
    // host with nothing bound on that port is refused at once instead of
    // timing out (the transport ignores it for established flows).
    Endpoint dst;
    if (eng_->udp_take_error(s, &dst.ip, &dst.port) != 0) tp_->on_icmp_unreachable(now, to, dst);
  }
  // SYNs of services shared by fork, for whichever holder accepts first.
  if (!services_.empty()) {
    uint32_t m = eng_->service_rings();
    if (m != lease_rings_) {
      lease_rings_ = m;
      refresh_read_rings();
    }
  }
  if (accepting_ && !read_rings_.empty()) {
    uint16_t r = tp_->tunables().rendezvous_port;
    const Endpoint to{ip_, r};
    // One SYN per ring and round: the other holders woken for the same
    // arrivals get theirs, instead of the first one awake taking them all.
    for (int ring : read_rings_) {
      Endpoint from;
      ssize_t len =
          eng_->ring_recv(ring, socks_[r], rxbuf_.data(), rxbuf_.size(), &from.ip, &from.port);
      if (len >= 0) tp_->on_datagram(now, from, to, rxbuf_.data(), static_cast<size_t>(len));
    }
  }
  if (!loop_.empty()) n += deliver_loopback(now);
  uint64_t next = tp_->next_timer_ns();
  if (next <= now) {
    tp_->poll(now);
    next = tp_->next_timer_ns();
  }
  next_timer_ns_.store(next, std::memory_order_relaxed);
  if (next_handoff_check_ns_ != 0 && now >= next_handoff_check_ns_) check_handoffs(now);
  if (now >= next_reap_ns_ && !lingering_.empty()) {
    next_reap_ns_ = now + kReapPeriodNs;
    reap_lingering();
  }
  poll_count_.fetch_add(1, std::memory_order_relaxed);
  if (waiters_.count() != 0) {
    uint64_t a = activity_now();
    bool failed = eng_->failure() != 0;
    if (a != last_activity_ || failed) {
      // An ICMP error may end a connected socket's receive: everyone looks
      // again, as on failure.
      bool icmp = eng_->counters().icmp_unreachable_rx != last_icmp_;
      last_icmp_ = eng_->counters().icmp_unreachable_rx;
      last_activity_ = a;
      waiters_.wake(failed || icmp);
    }
  }
  // What the transport sent in this round (ACKs, data the ACKs let out).
  eng_->flush_tx();
  return n;
}

void Stack::flush_tx_locked() {
  if (!down()) eng_->flush_tx();
}

int Stack::wait_arm(Waiter* w, const uint64_t* seen) {
  std::lock_guard<std::mutex> lock(mu_);
  // Without a progress thread nobody would wake a sleeper: slices then.
  if (down() || !progress_running_) return -EAGAIN;
  w->woken = false;
  uint64_t before = seen != nullptr ? *seen : w->seq(*w);
  poll_locked();
  if (eng_->failure() != 0) return -EALREADY;  // the call reports it
  w->baseline = w->seq(*w);
  if (w->baseline != before || (seen == nullptr && w->ready != nullptr && w->ready(*w)))
    return -EALREADY;
  bool first = waiters_.count() == 0;
  last_activity_ = activity_now();
  last_icmp_ = eng_->counters().icmp_unreachable_rx;
  waiters_.add(w);
  // Attached to machnetd: hand the RX queue to the daemon, which wakes the
  // progress thread (asleep on the lease's eventfd) when a frame arrives.
  bool parked = may_park() && eng_->park() > 0;
  // Otherwise the progress thread sleeps long while nobody waits: tell it.
  if (first && !parked && progress_efd_ >= 0) eventfd_write(progress_efd_, 1);
  return w->efd;
}

void Stack::wait_disarm(Waiter* w) {
  bool woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiters_.remove(w);
    woken = w->woken;
    w->woken = false;
  }
  if (woken) {
    eventfd_t v;
    eventfd_read(w->efd, &v);
  }
}

// ---- transport ports ------------------------------------------------------

int Stack::acquire_port(uint16_t port, uint16_t* out) {
  if (down()) return -ENETDOWN;
  if (port != 0 && socks_[port] != nullptr) {
    // Bound already: by a listener (a second listen is refused by the
    // transport) or by a connect's ephemeral port, which is private to it.
    return -EADDRINUSE;
  }
  engine::UdpSocket* s = nullptr;
  int rc = eng_->udp_bind(port, &s);
  if (rc != 0) return rc;
  port = s->port();
  socks_[port] = s;
  refs_[port] = 1;
  bound_.push_back(port);
  *out = port;
  return 0;
}

void Stack::ref_port(uint16_t port) {
  if (socks_[port] != nullptr) refs_[port]++;
}

void Stack::unref_port(uint16_t port) {
  if (down() || socks_[port] == nullptr || refs_[port] == 0) return;
  if (--refs_[port] != 0) return;
  eng_->udp_close(socks_[port]);
  socks_[port] = nullptr;
  bound_.erase(std::find(bound_.begin(), bound_.end(), port));
}

void Stack::release_flow_port(FlowId id, uint16_t port) {
  lingering_.push_back({id, port});
  reap_lingering();
}

size_t Stack::expedite_lingering() {
  if (down()) return 0;
  size_t n = 0;
  uint64_t now = now_ns();
  for (const Lingering& l : lingering_) n += tp_->expedite(now, l.id) ? 1 : 0;
  next_timer_ns_.store(tp_->next_timer_ns(), std::memory_order_relaxed);
  return n;
}

void Stack::reap_lingering() {
  for (size_t i = 0; i < lingering_.size();) {
    // A released flow is destroyed by the transport as soon as it is done;
    // state() of an unknown id reads kClosed.
    FlowState st = tp_->state(lingering_[i].id);
    if (st == FlowState::kClosed || st == FlowState::kFailed) {
      unref_port(lingering_[i].port);
      lingering_[i] = lingering_.back();
      lingering_.pop_back();
    } else {
      i++;
    }
  }
}

// ---- readiness routing ----------------------------------------------------

void Stack::route_flow(FlowId id, EventTarget* t) {
  flow_targets_[id] = t;
}

void Stack::unroute_flow(FlowId id) {
  flow_targets_.erase(id);
}

void Stack::route_listener(uint16_t port, EventTarget* t) {
  listener_targets_[port] = t;
}

void Stack::unroute_listener(uint16_t port) {
  listener_targets_.erase(port);
}

void Stack::on_transport_event(FlowId flow, uint16_t listen_port, uint32_t events) {
  activity_++;
  if (flow != 0) {
    auto it = flow_targets_.find(flow);
    if (it != flow_targets_.end()) {
      it->second->seq++;
      if ((events & transport::kEvError) && !it->second->failure_logged) {
        it->second->failure_logged = true;
        log_flow_failure(flow);
      }
    }
  } else {
    auto& targets = (events & transport::kEvService) ? service_targets_ : listener_targets_;
    auto it = targets.find(listen_port);
    if (it != targets.end()) it->second->seq++;
  }
}

// A connection that times out or is reset is the program's to report; the
// transport's view of its end (what was lost, when the peer was last
// heard) is only here, so it goes to the log (INFO) before the flow goes.
void Stack::log_flow_failure(FlowId flow) {
  transport::FlowStats st;
  if (!tp_->flow_stats(flow, &st)) return;
  uint64_t now = now_ns();
  auto ago_ms = [now](uint64_t t) { return t == 0 || t > now ? -1.0 : (now - t) / 1e6; };
  transport::Endpoint l{}, r{};
  tp_->endpoints(flow, &l, &r);
  MN_LOG(ENGINE, INFO,
         "stream flow %u.%u.%u.%u:%u failed: %s; srtt %.3f ms rto %.3f ms, %" PRIu64
         " retransmits (%" PRIu64 " by timeout), backoff %u, %" PRIu64
         " keepalives; last ack %.1f ms ago, last data received %.1f ms ago",
         r.ip >> 24, (r.ip >> 16) & 0xff, (r.ip >> 8) & 0xff, r.ip & 0xff, r.port,
         transport::flow_error_string(st.error), st.srtt_ns / 1e6, st.rto_ns / 1e6, st.retransmits,
         st.rto_count, st.backoff, st.keepalives_sent, ago_ms(st.last_ack_recv_ns),
         ago_ms(st.last_data_recv_ns));
}

// ---- packets out ----------------------------------------------------------

size_t Stack::deliver_loopback(uint64_t now) {
  // Only what is queued now: the answers these produce wait for the next
  // round, as they would on a wire.
  size_t n = loop_.size();
  for (size_t i = 0; i < n; i++) {
    Looped l = std::move(loop_.front());
    loop_.pop_front();
    if (l.unreachable) {
      tp_->on_icmp_unreachable(now, l.to, l.from);
    } else {
      tp_->on_datagram(now, l.from, l.to, l.data.data(), l.data.size());
    }
    loop_pool_.push_back(std::move(l.data));
  }
  return n;
}

bool Stack::loop_send(const Endpoint& local, const Endpoint& remote, const uint8_t* hdr,
                      size_t hdr_len, const iovec* payload, size_t n_payload) {
  if (loop_.size() >= cfg_.engine.socket_queue_len) {
    sink_errors_++;
    return true;  // "sent" and lost on the way: the transport recovers
  }
  if (socks_[remote.port] == nullptr) {
    // Nothing bound there: answer as a kernel would, with "port
    // unreachable", so a connect to a closed local port is refused at once.
    loop_.push_back(Looped{remote, local, {}, true});
    return true;
  }
  Looped l{local, remote, {}, false};
  if (!loop_pool_.empty()) {
    l.data = std::move(loop_pool_.back());
    loop_pool_.pop_back();
  }
  l.data.assign(hdr, hdr + hdr_len);
  for (size_t i = 0; i < n_payload; i++) {
    const uint8_t* p = static_cast<const uint8_t*>(payload[i].iov_base);
    l.data.insert(l.data.end(), p, p + payload[i].iov_len);
  }
  loop_.push_back(std::move(l));
  return true;
}

bool Stack::send(const Endpoint& local, const Endpoint& remote, const uint8_t* hdr, size_t hdr_len,
                 const iovec* payload, size_t n_payload) {
  if (down()) return false;
  if (remote.ip == ip_) return loop_send(local, remote, hdr, hdr_len, payload, n_payload);
  engine::UdpSocket* s = socks_[local.port];
  if (s == nullptr) {
    sink_errors_++;
    return false;
  }
  constexpr size_t kMaxIov = 16;
  iovec iov[kMaxIov];
  std::vector<iovec> big;
  iovec* v = iov;
  if (n_payload + 1 > kMaxIov) {
    big.resize(n_payload + 1);  // never with today's transport (one payload iovec)
    v = big.data();
  }
  v[0].iov_base = const_cast<uint8_t*>(hdr);
  v[0].iov_len = hdr_len;
  for (size_t i = 0; i < n_payload; i++) v[i + 1] = payload[i];
  // Deferred: the segments of one call (a window's worth, a burst's ACKs)
  // leave together when the lock is released (Lock, flush_tx_locked).
  int rc = eng_->udp_sendv(s, remote.ip, remote.port, v, static_cast<int>(n_payload + 1),
                           /*flush=*/false);
  if (rc != 0) {
    sink_errors_++;
    return false;
  }
  return true;
}

}  // namespace machnet::stack
