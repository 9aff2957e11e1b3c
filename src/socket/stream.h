// Stream sockets over the machnet transport: what stream_conn.cc (listen,
// accept, connect, close, options) and stream_data.cc (send, receive,
// readiness) share with the rest of the socket layer.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "socket/socket_internal.h"
#include "socket/socket_layer.h"

namespace machnet::socket {

// Stream connections' receive and send buffers unless SO_RCVBUF/SO_SNDBUF
// say otherwise: enough for a datacenter path's bandwidth-delay product,
// not the transport's message-mode 16 MiB per flow.
constexpr uint32_t kStreamBufferBytes = 1u << 20;
// Keepalive as in TCP: off until SO_KEEPALIVE. The transport's own
// dead-peer detection stays on all the same (dead_peer_floor): a peer
// process killed takes its engine along and goes silent, where its kernel
// would have reset the connection, and the program must not wait forever.
inline transport::FlowOptions stream_defaults() {
  transport::FlowOptions o = g.stack->transport().default_flow_options();
  o.recv_buffer_bytes = std::min(o.recv_buffer_bytes, kStreamBufferBytes);
  o.send_buffer_bytes = std::min(o.send_buffer_bytes, kStreamBufferBytes);
  o.keepalive = false;
  o.dead_peer_floor = true;
  return o;
}

int flow_errno(transport::FlowError e);

// ---- connections across fork() (fork_streams.cc) ----
// Parent, right before fork(): freezes the established connections.
void op_fork_prepare();
// Fork child, in fork_adopt: keeps an inherited connection to be claimed at
// its first call (or marks it moved), from the parent's stack `parent`.
void fork_child_keep_stream(Sock* s, stack::Stack* parent);
// First call on a connection frozen at a fork (lock held): takes it here, or
// marks it moved (EBADFD). `closing`: the call is the last close.
void settle_handoff(Sock* s, bool closing = false);
// Settles a connect in progress from its flow (lock held): connected,
// failed, or fallen back to the kernel (the flow is then released).
void settle_connect(Sock* s);
// Gives a closed stream socket's flow or listener back (lock held).
void stream_finalize(Sock* s);
int stream_shutdown(Sock* s, int how);
int stream_tcp_info(Sock* s, void* val, socklen_t* len);
// Engine-side readiness of a stream socket or listener (lock held).
short stream_revents(Sock* s, short events);
bool stream_has_data(const Sock* s);
ssize_t stream_recvmsg(const Ref& ref, Sock* s, msghdr* m, int flags, int64_t timeout_ns);
ssize_t stream_sendmsg(const Ref& ref, Sock* s, const msghdr* m, int flags, int64_t timeout_ns);
int stream_ioctl(Sock* s, unsigned long req, int* out);

// The one waiting policy, for stream calls: runs attempt() with the lock
// held (first as is, then after an engine poll) until it returns anything
// but -EAGAIN; spins for socket.spin_us with signals blocked, then sleeps
// on the thread's eventfd until the socket's events move. twin >= 0 (a
// listener's kernel twin): also returns 0 as soon as it is readable.
// timeout_ns 0: one look; < 0: no deadline. Returns attempt()'s result,
// -EAGAIN at the deadline, -EINTR when a signal handler ran (unless the
// call is restartable and every handler has SA_RESTART), -EBADF when the
// socket was closed meanwhile.
template <class Attempt>
ssize_t stream_wait(const Ref& ref, Sock* s, int64_t timeout_ns, int twin, bool restartable,
                    Attempt attempt) {
  uint64_t seen = 0;
  auto round = [&](bool poll_first) {
    stack::Lock lock(mu());
    // Stopped at exit, or the engine failed (machnetd gone: wait_arm then
    // says "look again" for ever): ENETDOWN, as the UDP path.
    if (int f = g.stack->failure()) return ssize_t{-f};
    ssize_t r = -EAGAIN;
    if (!poll_first) r = attempt();
    if (r == -EAGAIN) {
      g.stack->poll_locked();
      r = attempt();
    }
    seen = rx_seq(s);
    return r;
  };
  auto twin_ready = [&]() {
    if (twin < 0) return false;
    pollfd p{twin, POLLIN, 0};
    const timespec zero{0, 0};
    return g.libc.ppoll(&p, 1, &zero, nullptr) > 0 && (p.revents & POLLIN);
  };
  ssize_t r = round(false);
  if (r != -EAGAIN) return r;
  if (twin_ready()) return 0;
  if (timeout_ns == 0) return -EAGAIN;
  int64_t start = now_ns();
  int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
  // SO_RCVTIMEO/SO_SNDTIMEO, or a call the kernel never restarts (accept
  // and connect are, unless a timeout is set).
  bool always_eintr = timeout_ns > 0 || !restartable;
  SignalGuard sig;
  sig.begin(false);
  const stack::WaitConfig& wc = g.stack->config().wait;
  SpinSlot spin;
  int64_t spin_end = start + spin.ns();
  for (unsigned i = 1; now_ns() < std::min(spin_end, deadline); i++) {
    r = round(true);
    if (r != -EAGAIN) return r;
    if (!ref.open()) return -EBADF;
    if (int e = sig.check(always_eintr)) return e;
    if ((i & 15) == 0 && twin_ready()) return 0;
  }
  spin.release();
  sig.arm();
  // A handler that ran between the last look and arm().
  if (int e = sig.check(always_eintr)) return e;
  for (unsigned again = 0;;) {
    int64_t t = now_ns();
    if (t >= deadline) return -EAGAIN;
    int efd = arm_socket(s, &seen);
    // "Look again" many times in a row still sleeps, for no time, every
    // 16th round: signals are blocked from here on except in that ppoll and
    // must never be held off for long.
    bool look_again = efd == -EALREADY && (++again & 15) != 0;
    if (!look_again) {
      again = 0;
      int64_t wait =
          efd == -EALREADY ? 0 : std::min(efd >= 0 ? wc.sleep_ns : kSliceNs, deadline - t);
      timespec ts{static_cast<time_t>(wait / 1'000'000'000),
                  static_cast<long>(wait % 1'000'000'000)};
      pollfd p[2] = {{twin, POLLIN, 0}, {efd, POLLIN, 0}};
      // The caller's mask during the sleep: a pending or new signal is
      // delivered here, to this thread, as during a kernel call.
      int rc = g.libc.ppoll(p, efd >= 0 ? 2 : 1, &ts, &sig.old);
      int saved = errno;
      if (efd >= 0) disarm();
      if (rc < 0 && saved == EINTR && !sig.restarts(always_eintr)) return -EINTR;
      if (!ref.open()) return -EBADF;
      if (rc > 0 && twin >= 0 && (p[0].revents & POLLIN)) return 0;
    }
    r = round(true);
    if (r != -EAGAIN) return r;
  }
}

}  // namespace machnet::socket
