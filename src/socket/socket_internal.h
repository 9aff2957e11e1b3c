// What the files of the socket layer share: the socket object, the handle
// table and the process-wide state. The socket layer is the POSIX front-end
// of the one stack (src/stack/): the preload shim reaches it through the C
// entry table of socket_ops.h.
//
// Threading: the stack's mutex guards the engine and every socket's
// engine-side state; a call holds it only for one engine poll plus one
// datagram, never while sleeping. Socket objects live in chunks that are
// never freed, and a handle carries a generation: a thread that still holds a
// handle after another thread closed the fd gets -EBADF, never a recycled
// socket. In-flight calls hold a reference (acquire / release); the engine
// port is given back when the last fd is closed and the last call has left.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <vector>

#include "engine/engine.h"
#include "socket/socket_ops.h"
#include "stack/stack.h"

namespace machnet::socket {

constexpr uint32_t kChunkBits = 10;
constexpr uint32_t kChunkSize = 1u << kChunkBits;
constexpr uint32_t kMaxChunks = 1024;  // 1M sockets
constexpr size_t kMaxDatagram = 65535;
// Sleep slice when no eventfd wake-up can be armed (no progress thread).
constexpr int64_t kSliceNs = 200'000;

// What an offloaded socket is: a UDP socket on an engine port, a stream
// connection over a transport flow, or a stream listener on a service port.
enum class Kind : uint8_t { kUdp, kStream, kListener };

struct Sock {
  // generation << 32 | references held by calls in progress.
  std::atomic<uint64_t> state{uint64_t{1} << 32};
  // Everything below is guarded by the stack's mutex.
  Kind kind = Kind::kUdp;
  engine::UdpSocket* us = nullptr;
  int twin = -1;
  int fd_refs = 0;
  uint32_t local_ip = 0;  // host order; 0 = INADDR_ANY
  uint16_t local_port = 0;
  bool connected = false;
  uint32_t peer_ip = 0;
  uint16_t peer_port = 0;
  // Datagrams at the head of the engine queue that arrived before the last
  // connect(): delivered whatever their source, as the kernel does.
  uint32_t unfiltered = 0;
  // shutdown(2): the kernel's sk_shutdown bits (the twin has them too).
  // Atomic: read without the lock on the data path.
  std::atomic<bool> shut_rd{false};
  std::atomic<bool> shut_wr{false};
  // Datagrams taken off the engine queue, and sent through the engine: with
  // udp_pending, an arrival and a send count for epoll's edge-triggered mode.
  uint64_t rx_taken = 0;
  uint64_t tx_count = 0;
  uint32_t next_free = 0;  // free list link (slot + 1)

  // ---- stream sockets and listeners (stream_*.cc) ----
  transport::FlowId flow = 0;             // kStream: the transport flow
  uint16_t tp_port = 0;                   // transport port held (engine UDP port), 0 = none
  stack::EventTarget ev;                  // bumped on every event of the flow / listener
  bool connecting = false;                // kStream: handshake (the probe) not settled yet
  uint64_t probe_deadline_ns = 0;         // kStream: no answer by then: kernel TCP
  bool fallback = false;                  // kStream: the probe said "use kernel TCP"
  int so_error = 0;                       // kStream: a failure not reported yet (SO_ERROR)
  bool eof_reported = false;              // kStream: a read already returned the error/EOF
  bool linger_reset = false;              // SO_LINGER {1, 0}: close resets (RST)
  uint16_t service_port = 0;              // kListener: the port clients connect to
  uint32_t backlog = 0;                   // kListener: accept queue bound
  std::deque<transport::FlowId> acceptq;  // kListener: established, not accepted
  std::vector<transport::FlowOptions> listen_opts;  // kListener: set by setsockopt (0 or 1)

  // ---- a connection frozen at a fork() (fork_streams.cc) ----
  // Not settled by this process yet: its next call claims it (Stack::handoff_*).
  bool handoff = false;
  // Fork child: the claim word, and the flow as the parent froze it (in the
  // parent's abandoned stack, never touched by anyone else here).
  std::atomic<uint32_t>* handoff_claim = nullptr;
  const transport::Flow* handoff_snapshot = nullptr;
  // The connection went on in another process: calls fail with EBADFD.
  bool moved = false;
};

// Process-wide state of the socket layer (the engine and the lock are the
// stack's).
struct Globals {
  stack::Stack* stack = nullptr;  // set once by init; never destroyed
  machnet_libc libc{};
  std::atomic<Sock*> chunks[kMaxChunks] = {};
  uint32_t next_slot = 0;     // slots ever used
  uint32_t free_head = 0;     // slot + 1
  uint8_t* bounce = nullptr;  // scatter receive, guarded by the lock
};
extern Globals g;

inline std::mutex& mu() {
  return g.stack->mu();
}
inline engine::Engine& eng() {
  return g.stack->engine();
}

// ---- handles (handles.cc) -------------------------------------------------

inline uint32_t handle_slot(uint64_t h) {
  return static_cast<uint32_t>(h) - 1;
}
inline uint32_t handle_gen(uint64_t h) {
  return static_cast<uint32_t>(h >> 32);
}
Sock* slot_ptr(uint32_t slot);
// Takes a reference for a call; nullptr when the handle is stale.
Sock* acquire(uint64_t h);
void release(Sock* s, uint64_t h);
// The socket a handle names while the lock is held, or nullptr: under the
// lock a socket whose generation still matches cannot be finalized.
Sock* live_sock(uint64_t h);

// RAII reference for one call.
class Ref {
 public:
  explicit Ref(uint64_t h) : h_(h), s_(acquire(h)) {}
  ~Ref() {
    if (s_ != nullptr) release(s_, h_);
  }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  Sock* get() const { return s_; }
  // Still open? (another thread may close the fd while this call waits)
  bool open() const {
    return static_cast<uint32_t>(s_->state.load(std::memory_order_acquire) >> 32) == handle_gen(h_);
  }

 private:
  uint64_t h_;
  Sock* s_;
};

// ---- the datagram path (udp_path.cc) --------------------------------------

// Datagrams that ever reached s through the engine (lock held).
uint64_t rx_seq(const Sock* s);
// Something to receive on the engine side (lock held).
bool has_data(const Sock* s);
// A pending ICMP error about this connected socket's peer (lock held).
bool icmp_error_pending(Sock* s);

// ---- waiting (wait.cc) ----------------------------------------------------

int64_t now_ns();
// A spinner's place for one blocking call (Stack::spin_begin): ns() is the
// spin allowed (0: enough threads spin, sleep at once); release() before
// sleeping.
class SpinSlot {
 public:
  SpinSlot() : ns_(g.stack->spin_begin()) {}
  ~SpinSlot() { release(); }
  SpinSlot(const SpinSlot&) = delete;
  SpinSlot& operator=(const SpinSlot&) = delete;
  int64_t ns() const { return ns_; }
  void release() {
    if (ns_ != 0) g.stack->spin_done();
    ns_ = 0;
  }

 private:
  int64_t ns_;
};

// The signal semantics of one blocking call (wait.cc). begin() starts the
// spin: with the shim's per-thread handler counts it only notes them (the
// spin runs with the caller's mask); without them, or when the call brings a
// mask of its own (ppoll, epoll_pwait), it blocks every signal for the spin.
// arm() blocks them before the sleep, whose ppoll gives the caller's mask
// back atomically; the destructor restores it.
struct SignalGuard {
  sigset_t old;
  bool active = false;
  const volatile machnet_signal_counts* counts = nullptr;
  uint32_t ran = 0, interrupted = 0;
  void begin(bool own_mask);
  void arm();
  // Whether a handler ran since begin() (or the last check that let the
  // call go on): -EINTR when the kernel's call would end (always when
  // `always_eintr`: SO_RCVTIMEO, poll/select/epoll; else when a handler
  // without SA_RESTART ran), 0 to go on.
  int check(bool always_eintr);
  // After the sleep was interrupted: whether the call restarts.
  bool restarts(bool always_eintr);
  ~SignalGuard();
};
// After a signal handler interrupted a receive without SO_RCVTIMEO: whether
// the kernel would have restarted it (see wait.cc).
bool every_handler_restarts(const sigset_t& old);
// Arms the calling thread's waiter for one socket (a receive) or a set of
// handles (poll/epoll); seen: the caller's last rx_seq sum, or nullptr.
// Returns the eventfd, -EALREADY or -EAGAIN, as stack::Stack::wait_arm.
int arm_socket(Sock* s, const uint64_t* seen);
int arm_set(const uint64_t* handles, size_t n, const uint64_t* seen_sum);
void disarm();

}  // namespace machnet::socket
