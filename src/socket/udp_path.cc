// The datagram path of offloaded UDP sockets: receive (engine first, then
// the kernel twin), send (engine, or the twin for destinations only the
// kernel reaches), connect, names, FIONREAD and shutdown.
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "socket/socket_internal.h"
#include "socket/socket_layer.h"
#include "socket/stream.h"
#include "wire/headers.h"

namespace machnet::socket {
namespace {

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

// A datagram was taken off the engine queue (lock held). Returns whether it
// predates the last connect() (then it is not filtered by peer).
bool take_one(Sock* s) {
  s->rx_taken++;
  if (s->unfiltered == 0) return false;
  s->unfiltered--;
  return true;
}

// An ICMP error the engine recorded for a datagram this socket sent
// (ECONNREFUSED for port unreachable). Like the kernel without IP_RECVERR,
// only a connected socket hears it, and only about its peer (lock held).
int take_icmp_error(Sock* s) {
  uint32_t ip;
  uint16_t port;
  int e = eng().udp_take_error(s->us, &ip, &port);
  if (e == 0 || !s->connected || ip != s->peer_ip || port != s->peer_port) return 0;
  return e;
}

}  // namespace

bool icmp_error_pending(Sock* s) {
  uint32_t ip;
  uint16_t port;
  int e = eng().udp_peek_error(s->us, &ip, &port);
  return e != 0 && s->connected && ip == s->peer_ip && port == s->peer_port;
}

namespace {

// One receive attempt on the engine (lock held). Returns the datagram length
// reported to the caller, or -EAGAIN.
ssize_t try_recv_locked(Sock* s, msghdr* m, int flags) {
  if (g.stack->down()) return -ENETDOWN;
  // machnetd is gone: what the engine held is lost with it.
  if (int f = eng().failure()) return -f;
  for (;;) {
    if (eng().udp_pending(s->us) == 0) {
      g.stack->poll_locked();
      if (eng().udp_pending(s->us) == 0) {
        if (int e = take_icmp_error(s)) return -e;
        return -EAGAIN;
      }
    }
    size_t cap = iov_total(m);
    uint32_t ip;
    uint16_t port;
    size_t full;
    const uint8_t* src = nullptr;  // nullptr: already in the caller's buffer
    bool exempt;
    bool direct = m->msg_iovlen == 1;
    void* dst = direct ? m->msg_iov[0].iov_base : g.bounce;
    size_t room = direct ? m->msg_iov[0].iov_len : kMaxDatagram;
    if (flags & MSG_PEEK) {
      // Left in place: in our queue for the next call, or on a fork-shared
      // port's ring for whichever holder reads it first (this process or
      // another), so a peek here and a read in another process see the
      // same datagram.
      bool from_ring = false;
      ssize_t n = eng().udp_peek(s->us, dst, room, &ip, &port, &from_ring);
      if (n < 0) return n;
      // The ring's head cannot be filtered out without taking it from the
      // other holders; what our queue holds from before connect() passes.
      exempt = from_ring || s->unfiltered != 0;
      full = static_cast<size_t>(n);
    } else {
      ssize_t n = eng().udp_recvfrom(s->us, dst, room, &ip, &port);
      if (n < 0) return n;
      exempt = take_one(s);
      full = static_cast<size_t>(n);
    }
    if (!direct) src = g.bounce;
    if (s->connected && !exempt && (ip != s->peer_ip || port != s->peer_port)) {
      // A connected UDP socket only hears its peer, as in the kernel (which
      // filters on arrival: what was queued before connect() still comes).
      if (flags & MSG_PEEK) {
        eng().udp_recvfrom(s->us, nullptr, 0, nullptr, nullptr);  // the one peeked at
        take_one(s);
      }
      continue;
    }
    size_t copied = std::min(full, cap);
    if (src != nullptr) scatter(m, src, copied);
    fill_name(m, ip, port);
    m->msg_controllen = 0;
    m->msg_flags = full > cap ? MSG_TRUNC : 0;
    return static_cast<ssize_t>((flags & MSG_TRUNC) ? full : copied);
  }
}

ssize_t try_recv(Sock* s, msghdr* m, int flags) {
  stack::Lock lock(mu());
  return try_recv_locked(s, m, flags);
}

// A datagram that reached the socket through the kernel (the twin).
ssize_t twin_recv(Sock* s, msghdr* m, int flags) {
  ssize_t n = g.libc.recvmsg(s->twin, m, flags | MSG_DONTWAIT);
  return n < 0 ? -errno : n;
}

}  // namespace

// Datagrams that ever reached s through the engine (lock held); for stream
// sockets and listeners, the events of their flow or listener.
uint64_t rx_seq(const Sock* s) {
  if (s->kind != Kind::kUdp) {
    // Events of the flow, plus every arrival and ACK (an edge for EPOLLET
    // even when the readiness mask does not change).
    return s->ev.seq + (s->flow != 0 ? g.stack->transport().activity(s->flow) : 0);
  }
  return s->us == nullptr ? 0
                          : s->rx_taken + eng().udp_pending(s->us) + eng().udp_shared_seq(s->us);
}

bool has_data(const Sock* s) {
  if (s->kind != Kind::kUdp) return stream_has_data(s);
  return s->us != nullptr && eng().udp_pending(s->us) != 0;
}

namespace {

bool read_shut(Sock* s) {
  return s->shut_rd.load(std::memory_order_acquire);
}

// The 0-byte result of a receive after shutdown(SHUT_RD).
ssize_t eof(msghdr* m) {
  m->msg_controllen = 0;
  m->msg_flags = 0;
  return 0;
}

}  // namespace

ssize_t op_recvmsg(uint64_t h, msghdr* m, int flags, int64_t timeout_ns) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  if (s->kind != Kind::kUdp) return stream_recvmsg(ref, s, m, flags, timeout_ns);
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
  // With SO_RCVTIMEO the kernel never restarts a receive.
  bool always_eintr = timeout_ns > 0;
  SignalGuard sig;
  sig.begin(false);
  SpinSlot spin;
  int64_t spin_end = start + spin.ns();
  for (int64_t t = start; t < spin_end && t < deadline; t = now_ns()) {
    n = try_recv(s, m, flags);
    if (n != -EAGAIN) return n;
    if (!ref.open()) return -EBADF;
    if (int e = sig.check(always_eintr)) return e;
  }
  spin.release();
  sig.arm();
  // A handler that ran between the last look and arm().
  if (int e = sig.check(always_eintr)) return e;
  for (;;) {
    int64_t t = now_ns();
    if (t >= deadline) return -EAGAIN;
    int efd = arm_socket(s, nullptr);
    if (efd == -EALREADY) {
      n = try_recv(s, m, flags);
      if (n != -EAGAIN) return n;
      continue;
    }
    int64_t wait = std::min(efd >= 0 ? g.stack->config().wait.sleep_ns : kSliceNs, deadline - t);
    timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    pollfd p[2] = {{s->twin, POLLIN, 0}, {efd, POLLIN, 0}};
    // The caller's mask during the sleep: a pending or new signal is
    // delivered here, to this thread, as it would be during a kernel recv.
    int r = g.libc.ppoll(p, efd >= 0 ? 2 : 1, &ts, &sig.old);
    int saved = errno;
    if (efd >= 0) disarm();
    errno = saved;
    if (r < 0 && errno == EINTR) {
      // Without SO_RCVTIMEO, a handler with SA_RESTART restarts the receive.
      if (!sig.restarts(always_eintr)) return -EINTR;
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
  if (s->kind != Kind::kUdp) return stream_sendmsg(ref, s, m, flags, timeout_ns);
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
    stack::Lock lock(mu());
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
      stack::Lock lock(mu());
      if (g.stack->down()) return -ENETDOWN;
      rc = eng().udp_sendv(s->us, ip, port, m->msg_iov, static_cast<int>(m->msg_iovlen));
      if (rc == 0) s->tx_count++;
      // Keep the engine moving for programs that only send.
      g.stack->poll_locked();
    }
    if (rc == 0) return static_cast<ssize_t>(total);
    // TX ring full (-EAGAIN, nothing sent): a blocking sender waits for room
    // (the engine has just been polled) as the kernel's waits for send-buffer
    // space, until SO_SNDTIMEO; a non-blocking one gets EAGAIN, as from a
    // full send buffer. No mbuf (-ENOBUFS): a few more tries, then ENOBUFS.
    if ((rc != -EAGAIN && rc != -ENOBUFS) || timeout_ns == 0) return rc;
    if (attempt == 0) deadline = timeout_ns < 0 ? INT64_MAX : now_ns() + timeout_ns;
    if (now_ns() >= deadline || (rc == -ENOBUFS && attempt > 1000)) return rc;
    if (!ref.open()) return -EBADF;
  }
}

int op_fionread(uint64_t h, int* out) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  if (s->kind != Kind::kUdp) {
    stack::Lock lock(mu());
    if (g.stack->down()) return -ENETDOWN;
    g.stack->poll_locked();
    return stream_ioctl(s, FIONREAD, out);
  }
  {
    stack::Lock lock(mu());
    if (g.stack->down()) return -ENETDOWN;
    if (eng().udp_pending(s->us) == 0) g.stack->poll_locked();
    if (eng().udp_pending(s->us) != 0) {
      // The head datagram's length, left in place (a zero-byte peek).
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

// shutdown(2): the shim has applied it to the twin (errors, and the
// readiness poll/epoll see through it); the engine side keeps the bits.
int op_shutdown(uint64_t h, int how) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  stack::Lock lock(mu());
  if (s->kind != Kind::kUdp) return stream_shutdown(s, how);
  if (how == SHUT_RD || how == SHUT_RDWR) s->shut_rd.store(true, std::memory_order_release);
  if (how == SHUT_WR || how == SHUT_RDWR) s->shut_wr.store(true, std::memory_order_release);
  return s->connected ? 0 : -ENOTCONN;
}

int op_connect(uint64_t h, const sockaddr_in* peer) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  if (s->kind != Kind::kUdp) return -EISCONN;  // stream connects: op_stream_connect
  stack::Lock lock(mu());
  // The kernel filters by peer on arrival: what is queued now (a peeked
  // datagram included) is still delivered after connect().
  s->unfiltered = g.stack->down() ? 0 : eng().udp_pending(s->us);
  if (peer == nullptr) {
    s->connected = false;
    if (!g.stack->down()) eng().udp_connect(s->us, 0, 0);
    return 0;
  }
  s->connected = true;
  s->peer_ip = ntohl(peer->sin_addr.s_addr);
  s->peer_port = ntohs(peer->sin_port);
  // From now on the engine hands this socket only its peer's datagrams, and
  // hands them to it rather than to the port's unconnected sockets.
  if (!g.stack->down()) eng().udp_connect(s->us, s->peer_ip, s->peer_port);
  return 0;
}

int op_getsockname(uint64_t h, sockaddr_in* out) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  stack::Lock lock(mu());
  *out = sockaddr_in{};
  out->sin_family = AF_INET;
  out->sin_port = htons(s->local_port);
  // A connected socket bound to INADDR_ANY reports the address it sends
  // from: the engine's.
  uint32_t ip = s->local_ip;
  if (ip == 0 && s->connected) ip = g.stack->ip();
  out->sin_addr.s_addr = htonl(ip);
  return 0;
}

int op_getpeername(uint64_t h, sockaddr_in* out) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  stack::Lock lock(mu());
  if (!s->connected) return -ENOTCONN;
  *out = sockaddr_in{};
  out->sin_family = AF_INET;
  out->sin_port = htons(s->peer_port);
  out->sin_addr.s_addr = htonl(s->peer_ip);
  return 0;
}

}  // namespace machnet::socket

namespace machnet::socket {

int op_ioctl(uint64_t h, unsigned long req, int* out) {
  if (req == FIONREAD) return op_fionread(h, out);
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  if (s->kind == Kind::kUdp) {
    // SIOCOUTQ on UDP: nothing stays queued in the engine after a send.
    if (req != SIOCOUTQ) return -ENOTTY;
    *out = 0;
    return 0;
  }
  stack::Lock lock(mu());
  if (g.stack->down()) return -ENETDOWN;
  return stream_ioctl(s, req, out);
}

}  // namespace machnet::socket
