// Stream sockets, the data path: send and receive over the transport's
// byte-stream mode with TCP's semantics (partial writes, EOF, errors reported
// once, EPIPE/SIGPIPE, MSG_WAITALL/PEEK/DONTWAIT), FIONREAD/SIOCOUTQ, TCP_INFO,
// and poll readiness as TCP sets it.
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "socket/stream.h"

namespace machnet::socket {

using transport::FlowError;
using transport::FlowState;
using transport::Status;

namespace {

transport::Transport& tp() {
  return g.stack->transport();
}

// The error a failed flow reports once, then EOF (reads) / EPIPE (writes).
int take_flow_error(Sock* s) {
  if (s->eof_reported) return 0;
  s->eof_reported = true;
  int e = flow_errno(tp().error(s->flow));
  return e != 0 ? e : ECONNRESET;
}

bool failed(const Sock* s) {
  return tp().state(s->flow) == FlowState::kFailed;
}

// Where a call stands before it moves data (lock held): 0 to go on, -EAGAIN
// while the connect is still probing, -MACHNET_EFALLBACK, -ENOTCONN.
int ready_for_data(Sock* s) {
  settle_connect(s);
  if (s->moved) return -EBADFD;
  if (s->fallback) return -MACHNET_EFALLBACK;
  if (s->connecting) return -EAGAIN;
  if (!s->connected) return -ENOTCONN;
  return 0;
}

// TCP states as tcp_info reports them (include/net/tcp_states.h).
enum : uint8_t {
  kTcpEstablished = 1,
  kTcpSynSent = 2,
  kTcpSynRecv = 3,
  kTcpFinWait1 = 4,
  kTcpTimeWait = 6,
  kTcpClose = 7,
  kTcpCloseWait = 8,
  kTcpClosing = 11,
};

// MSG_PEEK: the head of the stream, not consumed, into the caller's iovec.
Status peek_into(Sock* s, msghdr* m, size_t cap, size_t* got) {
  *got = 0;
  if (m->msg_iovlen == 1) {
    return tp().peek_stream(s->flow, m->msg_iov[0].iov_base, m->msg_iov[0].iov_len, got);
  }

  size_t n = std::min(cap, kMaxDatagram);
  Status st = tp().peek_stream(s->flow, g.bounce, n, got);
  size_t off = 0;
  for (size_t i = 0; i < static_cast<size_t>(m->msg_iovlen) && off < *got; i++) {
    size_t k = std::min(m->msg_iov[i].iov_len, *got - off);
    if (k != 0) memcpy(m->msg_iov[i].iov_base, g.bounce + off, k);
    off += k;
  }
  return st;
}

}  // namespace

bool stream_has_data(const Sock* s) {
  if (s->kind == Kind::kListener) return !s->acceptq.empty();
  if (s->flow == 0) return s->fallback;
  return (tp().events(s->flow) & (transport::kEvReadable | transport::kEvError)) != 0;
}

ssize_t stream_recvmsg(const Ref& ref, Sock* s, msghdr* m, int flags, int64_t timeout_ns) {
  if (s->kind == Kind::kListener) return -ENOTCONN;
  if (flags & MSG_OOB) return -EINVAL;  // no urgent data, ever
  if (flags & MSG_DONTWAIT) timeout_ns = 0;
  const bool peek = (flags & MSG_PEEK) != 0;
  const bool waitall = (flags & MSG_WAITALL) != 0 && !peek;
  size_t cap = 0;
  for (size_t i = 0; i < static_cast<size_t>(m->msg_iovlen); i++) cap += m->msg_iov[i].iov_len;
  size_t done = 0;
  size_t iov_i = 0, iov_off = 0;
  auto attempt = [&]() -> ssize_t {
    if (int r = ready_for_data(s)) return r;
    uint64_t now = g.stack->now_ns();
    Status st = Status::kOk;
    if (peek) {
      // Peek copies without consuming: from the head every time.
      size_t got = 0;
      st = peek_into(s, m, cap, &got);
      if (got > 0) return static_cast<ssize_t>(got);
    } else {
      while (iov_i < static_cast<size_t>(m->msg_iovlen)) {
        iovec& v = m->msg_iov[iov_i];
        size_t want = v.iov_len - iov_off;
        if (want == 0) {
          iov_i++;
          iov_off = 0;
          continue;
        }
        size_t got = 0;
        st =
            tp().recv_stream(now, s->flow, static_cast<uint8_t*>(v.iov_base) + iov_off, want, &got);
        done += got;
        iov_off += got;
        if (got < want) break;
      }
    }
    if (done == cap || (done > 0 && !waitall)) return static_cast<ssize_t>(done);
    switch (st) {
      case Status::kOk:
      case Status::kAgain:
        // After shutdown(SHUT_RD) an empty socket reads EOF at once.
        if (s->shut_rd.load(std::memory_order_acquire)) return static_cast<ssize_t>(done);
        return -EAGAIN;
      case Status::kEof:
        return static_cast<ssize_t>(done);
      default:
        if (done > 0) return static_cast<ssize_t>(done);
        if (failed(s)) {
          int e = take_flow_error(s);
          return e != 0 ? -e : 0;
        }
        return 0;  // the flow is gone: EOF
    }
  };
  ssize_t r = stream_wait(ref, s, timeout_ns, -1, true, attempt);
  m->msg_controllen = 0;
  m->msg_flags = 0;
  // A timeout or signal after part of a MSG_WAITALL read: what was read.
  if ((r == -EAGAIN || r == -EINTR) && done > 0) return static_cast<ssize_t>(done);
  return r;
}

ssize_t stream_sendmsg(const Ref& ref, Sock* s, const msghdr* m, int flags, int64_t timeout_ns) {
  if (s->kind == Kind::kListener) return -ENOTCONN;
  if (flags & MSG_OOB) return -EOPNOTSUPP;
  if (flags & MSG_DONTWAIT) timeout_ns = 0;
  size_t total = 0;
  for (size_t i = 0; i < static_cast<size_t>(m->msg_iovlen); i++) total += m->msg_iov[i].iov_len;
  size_t done = 0;
  size_t iov_i = 0, iov_off = 0;
  auto attempt = [&]() -> ssize_t {
    if (int r = ready_for_data(s)) return r;
    if (failed(s)) {
      int e = take_flow_error(s);
      return -(e != 0 ? e : EPIPE);
    }
    if (s->shut_wr.load(std::memory_order_acquire)) return -EPIPE;
    uint64_t now = g.stack->now_ns();
    while (iov_i < static_cast<size_t>(m->msg_iovlen)) {
      const iovec& v = m->msg_iov[iov_i];
      size_t want = v.iov_len - iov_off;
      if (want == 0) {
        iov_i++;
        iov_off = 0;
        continue;
      }
      size_t acc = 0;
      Status st = tp().send_stream(now, s->flow, static_cast<const uint8_t*>(v.iov_base) + iov_off,
                                   want, &acc);
      done += acc;
      iov_off += acc;
      if (st == Status::kShutdown) return done > 0 ? static_cast<ssize_t>(done) : -EPIPE;
      if (st != Status::kOk && st != Status::kAgain)
        return done > 0 ? static_cast<ssize_t>(done) : -EPIPE;
      if (acc < want) break;
    }
    if (done == total) return static_cast<ssize_t>(done);
    // Send buffer full: a non-blocking call returns what fit; a blocking one
    // waits for ACKs to make room (the flow's "writable" event).
    if (timeout_ns == 0 && done > 0) return static_cast<ssize_t>(done);
    return -EAGAIN;
  };
  ssize_t r = stream_wait(ref, s, timeout_ns, -1, true, attempt);
  if ((r == -EAGAIN || r == -EINTR) && done > 0) return static_cast<ssize_t>(done);
  if (r == -EPIPE && !(flags & MSG_NOSIGNAL)) pthread_kill(pthread_self(), SIGPIPE);
  return r;
}

short stream_revents(Sock* s, short events) {
  const short in = POLLIN | POLLRDNORM, out = POLLOUT | POLLWRNORM;
  // machnetd is gone: in error, and the call that follows reports ENETDOWN
  // (as for UDP sockets).
  if (g.stack->failure() != 0) return static_cast<short>(POLLERR | (events & (in | out)));
  if (s->kind == Kind::kListener) {
    // Connections established on the transport wait in the accept queue.
    if (s->acceptq.size() < s->backlog) {
      transport::FlowId id;
      transport::Endpoint peer;
      uint16_t port;
      while (s->acceptq.size() < s->backlog &&
             g.stack->stream_accept(s->service_port, &id, &peer, &port) == 0)
        s->acceptq.push_back(id);
    }
    return s->acceptq.empty() ? 0 : static_cast<short>(events & in);
  }
  settle_connect(s);
  if (s->moved) return POLLNVAL;
  if (s->fallback) return MACHNET_POLL_FALLBACK;
  if (s->connecting) return 0;
  if (s->flow == 0) return static_cast<short>(POLLHUP | (events & (in | out)));
  uint32_t ev = tp().events(s->flow);
  if (ev & transport::kEvError) {
    // Reset, refused, timed out: as TCP, everything at once.
    return static_cast<short>(POLLERR | POLLHUP | (events & (in | out | POLLRDHUP)));
  }
  short r = 0;
  bool peer_closed = (ev & transport::kEvPeerClosed) != 0;
  bool shut_rd = s->shut_rd.load(std::memory_order_acquire);
  bool shut_wr = s->shut_wr.load(std::memory_order_acquire);
  if ((ev & transport::kEvReadable) || peer_closed || shut_rd) r |= events & in;
  if ((peer_closed || shut_rd) && (events & POLLRDHUP)) r |= POLLRDHUP;
  if ((ev & transport::kEvWritable) && !shut_wr) r |= events & out;
  // Both directions shut down: hang-up (the kernel's SHUTDOWN_MASK).
  if (peer_closed && shut_wr) r |= POLLHUP;
  return r;
}

int stream_ioctl(Sock* s, unsigned long req, int* out) {
  if (s->kind != Kind::kStream) return -EINVAL;
  if (int r = ready_for_data(s)) {
    if (r != -EAGAIN) return r == -MACHNET_EFALLBACK ? r : -ENOTCONN;
    *out = 0;
    return 0;
  }
  uint64_t v = 0;
  if (req == FIONREAD) {
    v = tp().readable_bytes(s->flow);
  } else if (req == SIOCOUTQ) {
    v = tp().unacked_bytes(s->flow);
  } else {
    return -ENOTTY;
  }
  *out = static_cast<int>(std::min<uint64_t>(v, INT32_MAX));
  return 0;
}

int stream_tcp_info(Sock* s, void* val, socklen_t* len) {
  tcp_info ti{};
  transport::FlowStats st;
  settle_connect(s);
  if (s->flow != 0 && tp().flow_stats(s->flow, &st)) {
    switch (st.state) {
      case FlowState::kSynSent:
        ti.tcpi_state = kTcpSynSent;
        break;
      case FlowState::kSynReceived:
        ti.tcpi_state = kTcpSynRecv;
        break;
      case FlowState::kEstablished:
        ti.tcpi_state = kTcpEstablished;
        break;
      case FlowState::kFinWait:
        ti.tcpi_state = kTcpFinWait1;
        break;
      case FlowState::kCloseWait:
        ti.tcpi_state = kTcpCloseWait;
        break;
      case FlowState::kClosing:
        ti.tcpi_state = kTcpClosing;
        break;
      case FlowState::kTimeWait:
        ti.tcpi_state = kTcpTimeWait;
        break;
      default:
        ti.tcpi_state = kTcpClose;
        break;
    }
    ti.tcpi_rto = static_cast<uint32_t>(st.rto_ns / 1000);
    ti.tcpi_rtt = static_cast<uint32_t>(st.srtt_ns / 1000);
    ti.tcpi_rttvar = static_cast<uint32_t>(st.rttvar_ns / 1000);
    ti.tcpi_snd_mss = st.mss;
    ti.tcpi_rcv_mss = st.mss;
    ti.tcpi_snd_cwnd = st.mss != 0 ? static_cast<uint32_t>(st.cwnd_bytes / st.mss) : 0;
    ti.tcpi_total_retrans = static_cast<uint32_t>(st.retransmits);
    ti.tcpi_unacked = st.mss != 0 ? static_cast<uint32_t>(st.send_buffered_bytes / st.mss) : 0;
    ti.tcpi_min_rtt = static_cast<uint32_t>(st.min_rtt_ns / 1000);
    ti.tcpi_bytes_acked = st.bytes_acked;
    ti.tcpi_segs_out = static_cast<uint32_t>(st.segments_sent);
    ti.tcpi_segs_in = static_cast<uint32_t>(st.segments_received);
  } else {
    ti.tcpi_state = s->connecting ? kTcpSynSent : kTcpClose;
  }
  socklen_t n = std::min<socklen_t>(*len, sizeof(ti));
  memcpy(val, &ti, n);
  *len = n;
  return 0;
}

}  // namespace machnet::socket
