// The process-wide stack: one Engine, one transport::Transport on the
// engine's address, one waiting/progress subsystem and one configuration per
// process. The socket layer (POSIX semantics, src/socket/) and the native
// message API (src/native/) are two thin front-ends over it; whichever starts
// first creates it, the other finds it running.
//
// Threading: one mutex (mu()) guards the engine, the transport and every
// front-end object's engine-side state. A call holds it for one engine poll
// plus one operation, never while it sleeps.
//
// Transport ports: every transport local port is one engine UDP port
// (listeners bind theirs, each connect binds an ephemeral one), so the
// engine's port demultiplexing, XDP steering of bound ports and machnetd's
// steering apply to transport traffic unchanged. poll_locked() drains those
// ports into the transport.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "stack/kernel_routes.h"
#include "stack/stack_config.h"
#include "stack/waiters.h"
#include "transport/transport.h"

namespace machnet::stack {

// What the stack and the socket layer count beside the transport (under
// mu()): stream connects the rules offload that end on kernel TCP before the
// transport sees them, and plain TCP connections an offloaded listener takes
// through its kernel twin. Published with the transport's counters
// (/machnet/transport, telemetry.cc); the fallbacks the transport decides
// (fallback_icmp, _timeout, _no_service, _cached) are its own counters.
#define MACHNET_STACK_COUNTERS(X)                                            \
  X(stream_connects)          /* stream connects handed to the transport */  \
  X(fallback_engine_down)     /* engine failed (machnetd gone) or stopped */ \
  X(fallback_no_port)         /* no ephemeral transport port left */         \
  X(fallback_flow_table_full) /* transport flow table full */                \
  X(fallback_error)           /* any other error of the transport */         \
  X(kernel_accepts)           /* plain TCP clients accepted by a listener */ \
  X(handoffs_frozen)          /* connections frozen at a fork() */           \
  X(handoffs_to_child)        /* ... that a fork child took over */          \
  X(handoffs_kept)            /* ... that stayed with this process */        \
  X(handoffs_adopted)         /* connections taken over from the parent */

struct StackCounters {
#define MACHNET_X(n) uint64_t n = 0;
  MACHNET_STACK_COUNTERS(MACHNET_X)
#undef MACHNET_X
};

// Something a front-end object (a socket, a channel, a listener) wants to
// hear about: the stack bumps seq on every readiness change of the flows and
// listeners routed to it. Owned by the front-end; registered under mu().
struct EventTarget {
  uint64_t seq = 0;
  bool failure_logged = false;  // its flow's failure was logged (once)
};

class Stack final : public transport::DatagramSink {
 public:
  // The running stack, or nullptr. Never destroyed while the process runs
  // (threads may hold it); stopped at exit (down() then reads true).
  static Stack* get() { return instance_.load(std::memory_order_acquire); }
  // A fork() child: forgets the parent's stack (leaked, never touched: its
  // engine polls the parent's queue and its lock may be held by a thread
  // that did not survive the fork), so that start() makes a new one.
  static void forget_in_fork_child() { instance_.store(nullptr, std::memory_order_release); }
  // Starts the stack once per process: configuration from `config_path`
  // (empty: $MACHNET_CONFIG, or only MACHNET_* variables) plus `overrides`,
  // then the engine. A second call returns the running stack and ignores its
  // arguments. nullptr with *err (file:line for bad keys) on failure; *errno_out
  // says which: EINVAL (configuration), ENETDOWN (engine).
  static Stack* start(const std::string& config_path, const std::vector<std::string>& overrides,
                      std::string* err, int* errno_out);
  // The same with a configuration already read (a fork child starts its own
  // stack with its parent's).
  static Stack* start(const StackConfig& cfg, std::string* err, int* errno_out);

  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  std::mutex& mu() { return mu_; }
  const StackConfig& config() const { return cfg_; }
  // How long a blocking call spins before it sleeps: socket.spin_us, or 0
  // while more processes are attached to the host's machnetd than it has
  // CPUs (socket.adaptive_spin): spinning would only take the core from the
  // process whose packet is being waited for. Readable without mu().
  // Whether sleepers may park the machnetd lease (mu() held). Not while the
  // transport has ports: its flows are not yet safe with the hand-off
  // (connections fail now and then), so they keep the wake_poll_us polling.
  bool may_park() const { return cfg_.wait.park && bound_.empty(); }
  int64_t spin_ns() const {
    if (cfg_.wait.adaptive_spin && eng_->host_pollers() > host_cpus_) return 0;
    return cfg_.wait.spin_ns;
  }
  // A blocking call that is about to spin takes a spinner's place: the
  // spin it may do (spin_ns(), or 0 when socket.spinners threads of the
  // process already spin: more spinning threads than CPUs only take the
  // CPU from the thread whose data arrives). A nonzero result is given
  // back with spin_done() before the call sleeps or returns. Lock-free.
  int64_t spin_begin() {
    int64_t ns = spin_ns();
    if (ns == 0) return 0;
    if (spinning_.fetch_add(1, std::memory_order_acq_rel) >= max_spinners_) {
      spinning_.fetch_sub(1, std::memory_order_acq_rel);
      spin_refused_.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
    return ns;
  }
  void spin_done() { spinning_.fetch_sub(1, std::memory_order_acq_rel); }
  // Blocking calls that slept at once because enough threads spun.
  uint64_t spin_refused() const { return spin_refused_.load(std::memory_order_relaxed); }
  engine::Engine& engine() { return *eng_; }
  transport::Transport& transport() { return *tp_; }
  Waiters& waiters() { return waiters_; }
  uint32_t ip() const { return ip_; }
  uint64_t now_ns() const { return eng_->now_ns(); }
  // Stopped at exit: every call fails with ENETDOWN. Readable without mu().
  bool down() const { return down_.load(std::memory_order_acquire); }
  // 0, or the engine's failure (ENETDOWN once machnetd is gone). mu() held.
  int failure() const { return down() ? ENETDOWN : eng_->failure(); }
  // One line for the start-up log: device, address, wait policy, wake-ups.
  const std::string& description() const { return description_; }

  // One round (mu() held): engine RX/TX, datagrams of transport ports into
  // the transport, due transport timers, loopback, release of finished
  // flows' ports, then wake every sleeper whose wait is over. Returns the
  // number of packets handled.
  size_t poll_locked();
  // Number of poll_locked() calls so far; read without mu() by the progress
  // thread to stay out of the way of application threads that poll.
  uint64_t poll_count() const { return poll_count_.load(std::memory_order_relaxed); }
  // Hands what the transport sent since the last flush to the device (mu()
  // held): its segments wait in the engine's TX batch until then (see Lock).
  void flush_tx_locked();

  // Transport ports. acquire_port(0, ...) picks an ephemeral port. Returns 0
  // or -errno (-EADDRINUSE, -EAGAIN: no ephemeral port left).
  int acquire_port(uint16_t port, uint16_t* out);
  // Takes a reference on a port already bound (an accepted flow).
  void ref_port(uint16_t port);
  void unref_port(uint16_t port);
  // The front-end released flow `id` (close/abort): its port reference is
  // dropped once the transport has finished with it (FIN exchange,
  // TIME_WAIT), so late segments are still answered from the right port.
  void release_flow_port(transport::FlowId id, uint16_t port);
  size_t lingering() const { return lingering_.size(); }
  // At exit (mu() held): the released flows resend what the peer has not
  // acknowledged (data, FIN) at the next poll, back-off restarted, so it
  // still goes out in the little time left. Returns how many had something
  // outstanding.
  size_t expedite_lingering();

  // Stream services, for the socket layer's stream sockets (streams.cc):
  // the transport addressing of a TCP-like (address, port) lives here only.
  // Listens for stream connections to `service_port` (backlog 0: the
  // transport's default); listener events go to t. 0 or -errno.
  // Attached, the service is claimed from machnetd, which steers its SYNs
  // here: `reuseport` (the socket has SO_REUSEPORT) joins its SO_REUSEPORT
  // group; `inherited` (the listening socket came through fork() from a
  // process that listens on it) shares it with that process through a
  // fork-shared ring. The listener runs on a UDP port of this process's own.
  int stream_listen(uint16_t service_port, uint32_t backlog, EventTarget* t, bool inherited = false,
                    bool reuseport = false);
  void stream_unlisten(uint16_t service_port);
  // The next established connection to the service: 0 with *id and *peer
  // (the flow holds a reference on its transport port, *port), or -EAGAIN.
  int stream_accept(uint16_t service_port, transport::FlowId* id, transport::Endpoint* peer,
                    uint16_t* port);
  // Starts a stream connect to the peer's service (peer.port: the service
  // port); the flow's events go to t. 0 with *id and *port (its transport
  // port, referenced); kStreamPlainPeer when the peer is known to have no
  // machnet service there (use kernel TCP); or -errno.
  static constexpr int kStreamPlainPeer = 1;
  int stream_connect(const transport::Endpoint& peer, const transport::FlowOptions* opts,
                     EventTarget* t, transport::FlowId* id, uint16_t* port);
  // Gives a stream flow back: graceful close (FIN after queued data) or
  // reset; its port is released once the transport is done with it.
  void stream_release(transport::FlowId id, uint16_t port, bool reset);

  // ---- stream connections across fork() (handoff.cc) ----
  // docs/MACHNETD.md, "Connections across fork": before fork() the parent
  // freezes its established connections, so that the child's copy of each
  // flow is exact; the first process to use one afterwards claims it through
  // a word in memory both share, and only that process goes on with it.
  // Claim word values:
  enum : uint32_t { kClaimOpen = 0, kClaimParent = 1, kClaimChild = 2, kClaimReleased = 3 };
  // Parent, under mu(), right before fork(): freezes flows ids[i] (on
  // transport ports ports[i]); returns how many it froze.
  size_t handoff_freeze(const transport::FlowId* ids, const uint16_t* ports, size_t n);
  // The claim word of a flow frozen here and not settled (a fork child reads
  // its copy of the parent's stack), or nullptr.
  std::atomic<uint32_t>* handoff_claim(transport::FlowId id) const;
  // Parent: the program uses the connection. 0: it is this process's (again,
  // thawed); -EBADFD: a child took it (the flow here is retired).
  int handoff_take(transport::FlowId id);
  // Parent: the connection's last fd closed. True when the hand-off deals
  // with the flow (and its port); false: release it as usual.
  bool handoff_release(transport::FlowId id, uint16_t port);
  // Child: claims the connection `snapshot` (the flow as the parent froze it)
  // and runs it here on a port of its own, events to t. `closing`: the
  // child closes it unused, so it takes it only if the parent closed it too
  // (then the child is the last holder). 0 with *id and *port, or -EBADFD.
  int handoff_adopt(const transport::Flow& snapshot, std::atomic<uint32_t>* claim, bool closing,
                    EventTarget* t, transport::FlowId* id, uint16_t* port);
  // A frozen connection nobody claimed goes back to the parent after this
  // long (a child that exec'd, or never uses it); a child later gets EBADFD.
  static constexpr uint64_t kHandoffWaitNs = 5'000'000'000;
  // The parent's retired copy drops segments silently for this long after
  // the child took it, while the peer learns the child's port.
  static constexpr uint64_t kHandoffTombstoneNs = 5'000'000'000;
  // How often a poll round looks at the claim words while any is unsettled.
  static constexpr uint64_t kHandoffCheckNs = 1'000'000;

  // Counters beside the transport's (mu() held to change them).
  StackCounters& counters() { return counters_; }
  // A consistent copy of the transport's and the stack's counters, for the
  // telemetry thread: takes mu() for the copy only (never held long: one
  // poll plus one operation), so it never races the data path and the
  // transport's invariants (rx_datagrams == rx_accepted + drops) hold in it.
  void snapshot_counters(transport::Counters* tc, StackCounters* sc);

  // Readiness routing: transport events of a flow / a listener's port bump
  // the target's seq and count as activity for the sleepers.
  void route_flow(transport::FlowId id, EventTarget* t);
  void unroute_flow(transport::FlowId id);
  void route_listener(uint16_t port, EventTarget* t);
  void unroute_listener(uint16_t port);
  // Something changed outside the engine and the transport (a front-end
  // closed a socket another thread sleeps on): sleepers look again.
  void note_activity() { activity_++; }

  // Registers w (the calling thread's waiter) to be woken when its seq()
  // moves through an engine arrival or a transport event after this point.
  // Takes mu() and polls the engine once. Returns the eventfd to sleep on;
  // -EALREADY: look again now (seq moved since *seen, the caller's last
  // look; without seen: something is ready already); -EAGAIN: no wake-up
  // is possible (no progress thread, stack stopped): sleep in short slices.
  // Every arm that returned an fd must be followed by wait_disarm().
  int wait_arm(Waiter* w, const uint64_t* seen);
  void wait_disarm(Waiter* w);

  // transport::DatagramSink: header + payload iovecs straight into the
  // engine's gather send. Datagrams to the engine's own address are looped
  // back here: the engine (like a NIC) does not deliver frames to itself,
  // and a process may well connect to its own listener.
  bool send(const transport::Endpoint& local, const transport::Endpoint& remote, const uint8_t* hdr,
            size_t hdr_len, const iovec* payload, size_t n_payload) override;
  uint64_t sink_errors() const { return sink_errors_; }

  // Threads started by the stack (the progress thread), for tests and logs.
  bool progress_running() const { return progress_running_; }
  // fds the kernel makes readable when frames arrive (AF_XDP): the progress
  // thread sleeps on them while somebody waits.
  const std::vector<int>& rx_fds() const { return rx_fds_; }

 private:
  Stack(const StackConfig& cfg, std::unique_ptr<engine::Engine> eng, std::vector<int> rx_fds);
  ~Stack() override = default;
  static void at_exit();
  // Registers /machnet/transport with DPDK telemetry (telemetry.cc).
  static void publish_counters();
  static void* progress_main(void* arg);
  void start_progress();
  void progress_loop();
  void reap_lingering();
  void check_handoffs(uint64_t now);
  struct Handoff;
  void retire_handoff(uint64_t now, transport::FlowId id, Handoff* h);
  void drop_claim_page(uint32_t page);
  void count_connect_fallback(int rc);
  void on_transport_event(transport::FlowId flow, uint16_t listen_port, uint32_t events);
  void log_flow_failure(transport::FlowId flow);
  bool loop_send(const transport::Endpoint& local, const transport::Endpoint& remote,
                 const uint8_t* hdr, size_t hdr_len, const iovec* payload, size_t n_payload);
  size_t deliver_loopback(uint64_t now);
  // Activity since the last wake-up round: engine arrivals and ICMP errors,
  // transport events, engine failure.
  uint64_t activity_now() const;

  struct Looped {
    transport::Endpoint from, to;
    std::vector<uint8_t> data;
    bool unreachable = false;  // "ICMP port unreachable" back to `to` about `from`
  };
  struct Lingering {
    transport::FlowId id;
    uint16_t port;
  };

  static std::atomic<Stack*> instance_;

  std::mutex mu_;
  StackConfig cfg_;
  std::unique_ptr<engine::Engine> eng_;
  KernelRouteTable routes_;  // before tp_, which points at it
  std::unique_ptr<transport::Transport> tp_;
  uint32_t ip_;
  pid_t owner_;
  std::string description_;
  std::atomic<bool> down_{false};
  Waiters waiters_;
  // Transport ports, indexed by port: O(1) on every send.
  std::vector<engine::UdpSocket*> socks_;
  std::vector<uint32_t> refs_;
  std::vector<uint16_t> bound_;  // ports to drain on every poll
  std::vector<Lingering> lingering_;
  std::vector<uint8_t> rxbuf_;  // one datagram; reused
  std::deque<Looped> loop_;     // bounded by socket_queue_len, like a socket
  std::vector<std::vector<uint8_t>> loop_pool_;
  std::unordered_map<transport::FlowId, EventTarget*> flow_targets_;
  std::unordered_map<uint16_t, EventTarget*> listener_targets_;  // by UDP port
  std::unordered_map<uint16_t, EventTarget*> service_targets_;   // by service port
  std::unordered_map<uint16_t, uint16_t> services_;  // service port -> accepted flows' UDP port
  uint32_t rendezvous_refs_ = 0;                     // services listening (R bound while > 0)
  // Attached: services shared by fork and the fork-shared ring their SYNs
  // go to (read in poll_locked once accepting_).
  std::unordered_map<uint16_t, int> service_rings_;
  // Rings the daemon says our services' SYNs go to (mn_lease.service_rings:
  // a fork child joined a service this process bound), and the union of
  // both, read in poll_locked once accepting_.
  uint32_t lease_rings_ = 0;
  std::vector<int> read_rings_;
  void refresh_read_rings();
  // This process asked for connections (accept, or readiness of a
  // listener): only then does it take SYNs from its services' fork-shared
  // rings, so a parent that never accepts (nginx's master) leaves them to
  // the children that do.
  bool accepting_ = false;
  // Binds the rendezvous port with the first service (attached: in this
  // process only) and claims a service from machnetd (see stream_listen).
  int acquire_rendezvous();
  int claim_service(uint16_t service_port, bool inherited, bool reuseport, int* ring);
  // Connections frozen at a fork() and not settled (handoff.cc).
  struct Handoff {
    uint16_t port = 0;
    std::atomic<uint32_t>* claim = nullptr;
    uint32_t page = 0;  // index in claim_pages_
    uint64_t deadline_ns = 0;
    bool released = false;  // the parent closed it: the child may still take it
    bool moved = false;     // a child took it; the socket has not been told yet
  };
  struct ClaimPage {
    void* base = nullptr;  // MAP_SHARED | MAP_ANONYMOUS: the children see it
    size_t len = 0;
    uint32_t users = 0;  // handoffs still reading their word
  };
  std::unordered_map<transport::FlowId, Handoff> handoffs_;
  std::vector<ClaimPage> claim_pages_;
  uint64_t next_handoff_check_ns_ = 0;
  uint64_t activity_ = 0;  // transport events and front-end notes
  uint64_t last_activity_ = 0;
  uint64_t last_icmp_ = 0;
  std::atomic<uint64_t> poll_count_{0};
  std::atomic<uint64_t> next_timer_ns_{~uint64_t{0}};
  uint64_t next_reap_ns_ = 0;
  uint64_t sink_errors_ = 0;
  uint32_t host_cpus_ = 1;             // online CPUs at start (spin_ns)
  uint32_t max_spinners_ = 1;          // socket.spinners, resolved at start
  std::atomic<uint32_t> spinning_{0};  // threads in a spin now
  std::atomic<uint64_t> spin_refused_{0};
  StackCounters counters_;
  std::vector<int> rx_fds_;
  int progress_efd_ = -1;  // wakes the progress thread when the first sleeper comes
  pthread_t progress_{};
  bool progress_running_ = false;
  std::atomic<bool> progress_stop_{false};
};

// RAII: the stack lock for one operation. The transport's segments wait in
// the engine's TX batch (Stack::send); they leave here, before the lock is
// released: one burst per call, however many segments the call sent.
class Lock {
 public:
  explicit Lock(std::mutex& mu) : mu_(mu) { mu_.lock(); }
  ~Lock() {
    Stack* s = Stack::get();
    if (s != nullptr && &s->mu() == &mu_) s->flush_tx_locked();
    mu_.unlock();
  }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  std::mutex& mu_;
};

}  // namespace machnet::stack
