// Stream sockets, connection management: listen, accept, connect (with the
// fall back to kernel TCP when the peer has no machnet), close, shutdown,
// names and options. The data path is stream_data.cc.
//
// A stream socket's transport flow reports every readiness change to the
// socket's EventTarget (ev): blocked calls sleep on it (wait.cc), and epoll's
// edge-triggered mode in the shim sees it move.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "socket/socket_internal.h"
#include "socket/socket_layer.h"
#include "socket/stream.h"

namespace machnet::socket {

using transport::Endpoint;
using transport::FlowError;
using transport::FlowId;
using transport::FlowState;

int flow_errno(FlowError e) {
  switch (e) {
    case FlowError::kNone:
      return 0;
    case FlowError::kConnectionRefused:
      return ECONNREFUSED;
    case FlowError::kReset:
    case FlowError::kAborted:
      return ECONNRESET;
    case FlowError::kConnectTimeout:
    case FlowError::kRetransmitTimeout:
    case FlowError::kDeadPeer:
      return ETIMEDOUT;
    default:
      return EPROTO;
  }
}

namespace {

Sock* new_sock(Kind kind, uint64_t* handle) {
  uint32_t slot;
  if (g.free_head != 0) {
    slot = g.free_head - 1;
  } else {
    slot = g.next_slot;
    if (slot >= kMaxChunks * kChunkSize) return nullptr;
    if (g.chunks[slot >> kChunkBits].load() == nullptr) {
      Sock* chunk = new (std::nothrow) Sock[kChunkSize];
      if (chunk == nullptr) return nullptr;
      g.chunks[slot >> kChunkBits].store(chunk, std::memory_order_release);
    }
  }
  Sock* s = slot_ptr(slot);
  if (g.free_head != 0)
    g.free_head = s->next_free;
  else
    g.next_slot++;
  s->kind = kind;
  s->fd_refs = 1;
  s->flow = 0;
  s->tp_port = 0;
  s->connecting = false;
  s->fallback = false;
  s->so_error = 0;
  s->eof_reported = false;
  s->linger_reset = false;
  s->connected = false;
  s->handoff = false;
  s->handoff_claim = nullptr;
  s->handoff_snapshot = nullptr;
  s->moved = false;
  s->acceptq.clear();
  *handle = (s->state.load() & ~uint64_t{0xffffffff}) | (slot + 1);
  return s;
}

// Moves established connections from the transport into the listener's
// own queue (lock held): readiness and accept look only at the queue.
void fill_acceptq(Sock* l) {
  while (l->acceptq.size() < l->backlog) {
    FlowId id;
    Endpoint peer;
    uint16_t port;
    if (g.stack->stream_accept(l->service_port, &id, &peer, &port) != 0) break;
    // Pushed with its port reference; the accepted socket takes it over.
    l->acceptq.push_back(id);
  }
}

// The options a setsockopt maps onto the flow; false for the others.
bool apply_option(int level, int name, const void* val, socklen_t len, transport::FlowOptions* o) {
  if (len < sizeof(int)) return false;
  int v;
  memcpy(&v, val, sizeof(v));
  if (level == SOL_SOCKET) {
    switch (name) {
      case SO_RCVBUF:
      case SO_RCVBUFFORCE:
        // Linux doubles the value for its bookkeeping; the window is bytes.
        o->recv_buffer_bytes = static_cast<uint32_t>(std::max(v, 1)) * 2;
        return true;
      case SO_SNDBUF:
      case SO_SNDBUFFORCE:
        o->send_buffer_bytes = static_cast<uint32_t>(std::max(v, 1)) * 2;
        return true;
      case SO_KEEPALIVE:
        o->keepalive = v != 0;
        return true;
      default:
        return false;
    }
  }
  if (level != IPPROTO_TCP) return false;
  uint64_t sec = static_cast<uint64_t>(std::max(v, 1)) * 1'000'000'000ull;
  switch (name) {
    case TCP_NODELAY:
      o->nodelay = v != 0;
      return true;
    case TCP_CORK:
      o->cork = v != 0;
      return true;
    case TCP_QUICKACK:
      o->quickack = v != 0;
      return true;
    case TCP_KEEPIDLE:
      o->keepalive_idle_ns = sec;
      return true;
    case TCP_KEEPINTVL:
      o->keepalive_interval_ns = sec;
      return true;
    case TCP_KEEPCNT:
      o->keepalive_probes = static_cast<uint32_t>(std::max(v, 1));
      return true;
    default:
      return false;
  }
}

// What the program set on the twin before the connect decided to offload
// (setsockopt on a socket not decided yet reaches only the twin).
void twin_options(int twin, transport::FlowOptions* o) {
  static const struct {
    int level, name;
  } kCopied[] = {{SOL_SOCKET, SO_KEEPALIVE},   {IPPROTO_TCP, TCP_NODELAY},
                 {IPPROTO_TCP, TCP_CORK},      {IPPROTO_TCP, TCP_KEEPIDLE},
                 {IPPROTO_TCP, TCP_KEEPINTVL}, {IPPROTO_TCP, TCP_KEEPCNT}};
  for (const auto& c : kCopied) {
    int v = 0;
    socklen_t len = sizeof(v);
    if (getsockopt(twin, c.level, c.name, &v, &len) != 0) continue;
    // Nagle is on by default in the kernel; ours has none unless asked:
    // only an explicit TCP_NODELAY=0 would say "Nagle", and it cannot be
    // told from the default. Keep ours.
    if (c.name == TCP_NODELAY) continue;
    // Keepalive timers only matter with SO_KEEPALIVE on (and the flow's
    // dead-peer detection stays on without it: stream_defaults).
    apply_option(c.level, c.name, &v, sizeof(v), o);
  }
}

void to_sockaddr(const Endpoint& e, sockaddr_in* out) {
  *out = sockaddr_in{};
  out->sin_family = AF_INET;
  out->sin_port = htons(e.port);
  out->sin_addr.s_addr = htonl(e.ip);
}

}  // namespace

// Has the probe of a connecting socket settled? (lock held) Updates
// connecting / fallback / so_error from the flow.
void settle_connect(Sock* s) {
  if (s->handoff) settle_handoff(s);
  if (!s->connecting) return;
  transport::Transport& tp = g.stack->transport();
  FlowState st = tp.state(s->flow);
  if (st == FlowState::kSynSent) return;
  s->connecting = false;
  if (st == FlowState::kFailed) {
    FlowError e = tp.error(s->flow);
    // Refused by the peer's kernel (ICMP), unanswered within the probe
    // bound, or a machnet host without that service (RST): the kernel's
    // TCP gets the last word. Anything else is this connect's error.
    if (transport::falls_back_to_kernel(e)) {
      s->fallback = true;
    } else {
      s->so_error = flow_errno(e);
    }
    g.stack->stream_release(s->flow, s->tp_port, true);
    s->flow = 0;
    s->tp_port = 0;
    return;
  }
  s->connected = true;
}

int op_stream_listen(int twin, const sockaddr_in* local, int backlog, uint64_t* handle) {
  if (g.stack == nullptr) return -ENETDOWN;
  stack::Lock lock(mu());
  if (g.stack->down()) return -ENETDOWN;
  uint64_t h;
  Sock* s = new_sock(Kind::kListener, &h);
  if (s == nullptr) return -EMFILE;
  uint16_t port = ntohs(local->sin_port);
  // As listen(2): the kernel caps the backlog at somaxconn, we at 4096.
  uint32_t bl = static_cast<uint32_t>(std::clamp(backlog, 1, 4096));
  // SO_REUSEPORT on the twin (the kernel has checked it against the
  // port's other listeners): under machnetd the service is shared the same
  // way with other processes.
  int reuse = 0;
  socklen_t rlen = sizeof(reuse);
  if (getsockopt(twin, SOL_SOCKET, SO_REUSEPORT, &reuse, &rlen) != 0) reuse = 0;
  int rc = g.stack->stream_listen(port, bl, &s->ev, /*inherited=*/false, reuse != 0);
  if (rc == 0) {
    // Accepted connections start with the stream defaults (they inherit
    // what the listener is given later by setsockopt, as in Linux).
    transport::FlowOptions o = stream_defaults();
    g.stack->transport().set_service_options(port, o);
  }
  if (rc != 0) {
    s->fd_refs = 0;
    s->state.fetch_add(uint64_t{1} << 32);
    s->next_free = g.free_head;
    g.free_head = handle_slot(h) + 1;
    return rc;
  }
  s->twin = twin;
  s->local_ip = ntohl(local->sin_addr.s_addr);
  s->local_port = port;
  s->service_port = port;
  s->backlog = bl;
  *handle = h;
  return 0;
}

int op_stream_accept(uint64_t h, uint64_t* conn, sockaddr_in* peer, int64_t timeout_ns) {
  Ref ref(h);
  Sock* l = ref.get();
  if (l == nullptr) return -EBADF;
  if (l->kind != Kind::kListener) return -EINVAL;
  // A transport connection first, then the kernel twin (one poll of it).
  auto attempt = [&]() -> ssize_t {
    fill_acceptq(l);
    if (l->acceptq.empty()) return -EAGAIN;
    FlowId id = l->acceptq.front();
    l->acceptq.pop_front();
    uint64_t nh;
    Sock* c = new_sock(Kind::kStream, &nh);
    if (c == nullptr) {
      g.stack->stream_release(id, l->service_port, true);
      return -EMFILE;
    }
    Endpoint local, remote;
    g.stack->transport().endpoints(id, &local, &remote);
    c->flow = id;
    c->tp_port = l->service_port;
    c->connected = true;
    c->local_ip = g.stack->ip();
    c->local_port = l->service_port;
    c->peer_ip = remote.ip;
    c->peer_port = remote.port;
    g.stack->route_flow(id, &c->ev);
    *conn = nh;
    to_sockaddr(remote, peer);
    return 1;
  };
  return static_cast<int>(stream_wait(ref, l, timeout_ns, l->twin, true, attempt));
}

void op_stream_kernel_accepted(uint64_t listener) {
  Ref ref(listener);
  Sock* l = ref.get();
  if (l == nullptr || l->kind != Kind::kListener) return;
  stack::Lock lock(mu());
  g.stack->counters().kernel_accepts++;
}

int op_stream_connect(int twin, const sockaddr_in* peer, int64_t timeout_ns, uint64_t* handle) {
  *handle = 0;
  if (g.stack == nullptr) return -ENETDOWN;
  uint64_t h;
  {
    stack::Lock lock(mu());
    if (g.stack->down()) return -ENETDOWN;
    Sock* s = new_sock(Kind::kStream, &h);
    if (s == nullptr) return -EMFILE;
    Endpoint to{ntohl(peer->sin_addr.s_addr), ntohs(peer->sin_port)};
    transport::FlowOptions o = stream_defaults();
    twin_options(twin, &o);
    int rc = g.stack->stream_connect(to, &o, &s->ev, &s->flow, &s->tp_port);
    if (rc != 0) {
      // Nothing offloaded: the kernel decides (it has the address rules).
      s->fd_refs = 0;
      s->state.fetch_add(uint64_t{1} << 32);
      s->next_free = g.free_head;
      g.free_head = handle_slot(h) + 1;
      return -MACHNET_EFALLBACK;
    }
    s->twin = twin;
    s->connecting = true;
    s->peer_ip = to.ip;
    s->peer_port = to.port;
    s->local_ip = g.stack->ip();
    s->local_port = s->tp_port;
  }
  if (timeout_ns == 0) {
    *handle = h;
    return -EINPROGRESS;
  }
  Ref ref(h);
  Sock* s = ref.get();
  // A blocking connect waits for the verdict (connect(2) is not restarted
  // after a signal handler: EINTR leaves it in progress, as in the kernel).
  ssize_t r = stream_wait(ref, s, timeout_ns, -1, false, [&]() -> ssize_t {
    settle_connect(s);
    if (s->connecting) return -EAGAIN;
    return s->fallback ? -MACHNET_EFALLBACK : 0;
  });
  if (r == 0) {
    *handle = h;
    return 0;
  }
  if (r == -EINTR || r == -EAGAIN) {
    // Interrupted or SO_SNDTIMEO: still connecting in the background.
    *handle = h;
    return r == -EINTR ? -EINTR : -EINPROGRESS;
  }
  op_close(h);
  return static_cast<int>(r);
}

int op_stream_connect_result(uint64_t h) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  stack::Lock lock(mu());
  if (s->kind != Kind::kStream) return 0;
  if (s->connecting) g.stack->poll_locked();
  settle_connect(s);
  if (s->connecting) return -EINPROGRESS;
  if (s->fallback) return -MACHNET_EFALLBACK;
  int e = s->so_error;
  s->so_error = 0;
  return -e;
}

// Called by finalize (lock held): gives the flow or the listener back.
void stream_finalize(Sock* s) {
  if (g.stack->down()) return;
  if (s->kind == Kind::kListener) {
    if (s->service_port == 0) return;  // given back already (at exit)
    // Connections nobody accepted are reset, as the kernel does.
    for (FlowId id : s->acceptq) g.stack->stream_release(id, s->service_port, true);
    s->acceptq.clear();
    g.stack->stream_unlisten(s->service_port);
    s->service_port = 0;
  } else if (s->handoff && s->handoff_snapshot == nullptr) {
    // Frozen at a fork: a child may still take it (Stack::handoff_release).
    if (g.stack->handoff_release(s->flow, s->tp_port)) s->flow = 0;
    s->handoff = false;
  } else if (s->handoff) {
    settle_handoff(s, /*closing=*/true);
  }
  if (s->kind == Kind::kStream && s->flow != 0) {
    // As Linux: SO_LINGER {1, 0}, or data received and never read, makes
    // close a reset (the peer sees ECONNRESET); otherwise FIN after what is
    // queued.
    bool reset = s->linger_reset || g.stack->transport().readable_bytes(s->flow) != 0;
    g.stack->stream_release(s->flow, s->tp_port, reset);
  }
  s->flow = 0;
  s->tp_port = 0;
}

int stream_shutdown(Sock* s, int how) {
  if (s->kind == Kind::kListener) return -ENOTCONN;
  settle_connect(s);
  if (!s->connected) return -ENOTCONN;
  if (how == SHUT_RD || how == SHUT_RDWR) s->shut_rd.store(true, std::memory_order_release);
  if (how == SHUT_WR || how == SHUT_RDWR) {
    s->shut_wr.store(true, std::memory_order_release);
    g.stack->transport().shutdown_send(g.stack->now_ns(), s->flow);
  }
  // Readiness changed (EPOLLHUP/EPOLLRDHUP may follow): sleepers look again.
  s->ev.seq++;
  g.stack->note_activity();
  return 0;
}

int op_setsockopt(uint64_t h, int level, int name, const void* val, socklen_t len) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  if (s->kind == Kind::kUdp) return -ENOPROTOOPT;
  stack::Lock lock(mu());
  if (g.stack->down()) return -ENETDOWN;
  if (s->handoff) settle_handoff(s);  // a connection inherited through fork
  if (level == SOL_SOCKET && name == SO_LINGER) {
    if (len < sizeof(linger)) return -EINVAL;
    const auto* l = static_cast<const linger*>(val);
    s->linger_reset = l->l_onoff != 0 && l->l_linger == 0;
    return -ENOPROTOOPT;  // the twin keeps the value getsockopt reports
  }
  // The rest maps onto the flow's options (the listener's: inherited by
  // the connections it accepts). The twin keeps what getsockopt reports.
  transport::Transport& tp = g.stack->transport();
  transport::FlowOptions o;
  bool listener = s->kind == Kind::kListener;
  if (listener) {
    o = stream_defaults();
    if (!s->listen_opts.empty()) o = s->listen_opts.front();
  } else if (s->flow == 0 || tp.get_flow_options(s->flow, &o) != transport::Status::kOk) {
    return -ENOPROTOOPT;  // connecting, fallen back or closed: the twin's
  }
  if (!apply_option(level, name, val, len, &o)) return -ENOPROTOOPT;
  if (listener) {
    s->listen_opts.assign(1, o);
    tp.set_service_options(s->service_port, o);
  } else {
    tp.set_flow_options(g.stack->now_ns(), s->flow, o);
  }
  return -ENOPROTOOPT;
}

int op_getsockopt(uint64_t h, int level, int name, void* val, socklen_t* len) {
  Ref ref(h);
  Sock* s = ref.get();
  if (s == nullptr) return -EBADF;
  if (s->kind == Kind::kUdp) return -ENOPROTOOPT;
  stack::Lock lock(mu());
  if (level == SOL_SOCKET && name == SO_ERROR) {
    if (*len < sizeof(int)) return -EINVAL;
    if (s->connecting) g.stack->poll_locked();
    settle_connect(s);
    int e = s->connecting || s->fallback ? 0 : s->so_error;
    s->so_error = 0;
    memcpy(val, &e, sizeof(int));
    *len = sizeof(int);
    return 0;
  }
  if (level == IPPROTO_TCP && name == TCP_INFO && s->kind == Kind::kStream) {
    return stream_tcp_info(s, val, len);
  }
  return -ENOPROTOOPT;
}

}  // namespace machnet::socket
