// The C API of include/machnet/machnet.h: the message front-end of the
// process-wide stack (src/stack/).
//
// Locking: the stack's mutex guards the engine, the transport and every
// channel. Blocking calls wait as every blocking call of the stack does:
// rounds of {lock, drive the engine, try, unlock} for socket.spin_us, then
// a sleep on the thread's eventfd until a transport event of the channel's
// flows or listeners wakes it (see block()).
#include "machnet/machnet.h"

#include <arpa/inet.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "stack/stack.h"
#include "transport/transport.h"

using machnet::stack::Stack;
using machnet::transport::Endpoint;
using machnet::transport::FlowError;
using machnet::transport::FlowId;
using machnet::transport::FlowState;
using machnet::transport::FlowStats;
using machnet::transport::Status;
using machnet::transport::Transport;

namespace {

struct ChFlow {
  machnet_flow_t f;
  bool end_reported = false;  // EOF or failure already returned by recv
};

}  // namespace

struct machnet_channel {
  std::vector<uint16_t> listen_ports;
  std::vector<ChFlow> flows;
  std::unordered_map<uint32_t, size_t> index;  // flow id -> position in flows
  size_t rr = 0;                               // round-robin start for recv
  // The message being delivered: recv_message moves the transport's buffer
  // here, so no copy is made before the one into the caller's buffer.
  std::vector<uint8_t> rx;
  bool stash = false;  // rx holds a message not handed out yet (PEEK, EMSGSIZE)
  machnet_flow_t stash_flow{};
  std::vector<uint8_t> gather;  // sendmsg: the transport takes one buffer
  int timeout_ms = -1;
  // Flows this channel closed that may still be finishing: machnet_detach()
  // lingers on them, or a program that closes, detaches and exits would lose
  // its last messages and FIN.
  std::vector<uint32_t> closed;
  // Bumped by the stack on every transport event of the channel's flows and
  // listeners: what a blocked call of this channel sleeps on.
  machnet::stack::EventTarget ev;
};

namespace {

thread_local std::string t_last_error;

// Sets errno last: building the message may clobber it.
int fail(int err, const std::string& why) {
  t_last_error = why;
  errno = err;
  return -1;
}

// Set by a successful machnet_init*(): the stack may have been started
// earlier by the preload's socket layer, but this API is usable only once
// the program initialised it.
std::atomic<Stack*> g_stack{nullptr};

Stack* stack_or_fail() {
  Stack* s = g_stack.load(std::memory_order_acquire);
  if (s == nullptr) fail(ENODEV, "machnet_init() has not succeeded");
  return s;
}

int flow_errno(FlowError e) {
  switch (e) {
    case FlowError::kNone:
      return 0;
    case FlowError::kConnectTimeout:
      return ETIMEDOUT;
    case FlowError::kConnectionRefused:
      return ECONNREFUSED;
    case FlowError::kReset:
      return ECONNRESET;
    case FlowError::kRetransmitTimeout:
      return ETIMEDOUT;
    case FlowError::kDeadPeer:
      return ETIMEDOUT;
    case FlowError::kAborted:
      return ECONNABORTED;
    case FlowError::kPeerMessageLimit:
      // Not EMSGSIZE: from machnet_recv() that means "buffer too small".
      return ECONNABORTED;
    default:
      // An error added to the transport after this was written: still a
      // failure, with its sentence in machnet_last_error().
      return EPROTO;
  }
}

// Maps a transport status to -1/errno; kFlowFailed reports the flow's error.
int status_fail(Stack* s, Status st, FlowId id) {
  switch (st) {
    case Status::kOk:
      return 0;
    case Status::kAgain:
      return fail(EAGAIN, "would block");
    case Status::kEof:
      return fail(EPIPE, "peer closed the flow");
    case Status::kInvalidArgument:
    case Status::kWrongMode:
    case Status::kNotListening:
      return fail(EINVAL, machnet::transport::status_string(st));
    case Status::kMessageTooLarge:
      return fail(EMSGSIZE, "message larger than transport.max_message_bytes (" +
                                std::to_string(s->config().tunables.max_message_bytes) + ")");
    case Status::kNoSuchFlow:
      return fail(EBADF, "no such flow");
    case Status::kNotConnected:
      return fail(ENOTCONN, "flow not connected");
    case Status::kFlowFailed: {
      FlowError e = s->transport().error(id);
      return fail(flow_errno(e), std::string("flow failed: ") + flow_error_string(e));
    }
    case Status::kShutdown:
      return fail(EPIPE, "flow is closed for sending");
    case Status::kTooManyFlows:
      return fail(ENOBUFS, "flow table full (transport.max_flows)");
    case Status::kAddressInUse:
      return fail(EADDRINUSE, "port already in use");
    default:
      break;
  }
  return fail(EIO, "unexpected transport status");
}

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Deadline of a blocking call; timeout_ms < 0 waits forever.
struct Deadline {
  explicit Deadline(int timeout_ms)
      : at(timeout_ms < 0 ? UINT64_MAX : mono_ns() + uint64_t(timeout_ms) * 1'000'000u) {}
  bool expired() const { return at != UINT64_MAX && mono_ns() >= at; }
  uint64_t at;
};

uint64_t channel_seq(const machnet::stack::Waiter& w) {
  return static_cast<const machnet_channel*>(w.ctx)->ev.seq;
}

// The one waiting policy of the stack for a channel's blocking call: tries
// attempt() (lock held, after driving the engine) until it returns anything
// but -EAGAIN; spins for socket.spin_us, then sleeps on the thread's eventfd
// until a transport event of the channel (or the deadline) ends the sleep.
// Returns attempt()'s result, or -EAGAIN at the deadline.
template <class Attempt>
ssize_t block(Stack* s, machnet_channel* ch, const Deadline& dl, Attempt attempt) {
  const machnet::stack::WaitConfig& wc = s->config().wait;
  uint64_t seen;
  auto round = [&]() {
    machnet::stack::Lock lk(s->mu());
    s->poll_locked();
    ssize_t r = attempt();
    seen = ch->ev.seq;
    return r;
  };
  ssize_t r;
  {
    // Look before driving the engine: a message may already be waiting.
    machnet::stack::Lock lk(s->mu());
    r = attempt();
    if (r == -EAGAIN) {
      s->poll_locked();
      r = attempt();
    }
    seen = ch->ev.seq;
  }
  if (r != -EAGAIN || dl.expired()) return r;
  // A spinner's place (Stack::spin_begin), given back before sleeping.
  int64_t spin = s->spin_begin();
  uint64_t spin_end = mono_ns() + static_cast<uint64_t>(spin);
  while (mono_ns() < spin_end && !dl.expired()) {
    r = round();
    if (r != -EAGAIN) break;
  }
  if (spin != 0) s->spin_done();
  if (r != -EAGAIN) return r;
  for (;;) {
    uint64_t now = mono_ns();
    if (dl.at != UINT64_MAX && now >= dl.at) return -EAGAIN;
    machnet::stack::Waiter* w = machnet::stack::Waiters::mine();
    int efd = -EAGAIN;
    if (w != nullptr) {
      w->seq = channel_seq;
      w->ready = nullptr;
      w->ctx = ch;
      w->handles = nullptr;
      w->n = 0;
      efd = s->wait_arm(w, &seen);
    }
    if (efd != -EALREADY) {
      // No wake-up possible (no progress thread): short slices.
      uint64_t wait = efd >= 0 ? static_cast<uint64_t>(wc.sleep_ns) : 200'000;
      if (dl.at != UINT64_MAX) wait = std::min(wait, dl.at - now);
      timespec ts{static_cast<time_t>(wait / 1'000'000'000u),
                  static_cast<long>(wait % 1'000'000'000u)};
      pollfd p{efd, POLLIN, 0};
      ppoll(&p, efd >= 0 ? 1 : 0, &ts, nullptr);
      if (efd >= 0) s->wait_disarm(w);
    }
    r = round();
    if (r != -EAGAIN) return r;
  }
}

// NULL/"0.0.0.0" mean the engine's address; any other must be it.
int parse_local_ip(Stack* s, const char* ip) {
  if (ip == nullptr) return 0;
  in_addr a;
  if (inet_pton(AF_INET, ip, &a) != 1)
    return fail(EINVAL, std::string("not an IPv4 address: '") + ip + "'");
  uint32_t v = ntohl(a.s_addr);
  if (v != 0 && v != s->ip()) {
    return fail(EADDRNOTAVAIL, std::string(ip) + " is not the engine's address (" +
                                   inet_ntoa(in_addr{htonl(s->ip())}) + ")");
  }
  return 0;
}

ChFlow* find_flow(machnet_channel* ch, const machnet_flow_t* flow) {
  auto it = ch->index.find(flow->id);
  return it == ch->index.end() ? nullptr : &ch->flows[it->second];
}

void add_flow(machnet_channel* ch, const machnet_flow_t& f) {
  ch->index[f.id] = ch->flows.size();
  ch->flows.push_back(ChFlow{f, false});
}

void remove_flow(machnet_channel* ch, uint32_t id) {
  auto it = ch->index.find(id);
  if (it == ch->index.end()) return;
  size_t i = it->second;
  ch->index.erase(it);
  if (i + 1 != ch->flows.size()) {
    ch->flows[i] = ch->flows.back();
    ch->index[ch->flows[i].f.id] = i;
  }
  ch->flows.pop_back();
  if (ch->stash && ch->stash_flow.id == id) ch->stash = false;
}

// Nothing left to deliver or acknowledge (TIME_WAIT only re-ACKs a lost FIN).
bool flow_finished(FlowState st) {
  return st == FlowState::kClosed || st == FlowState::kFailed || st == FlowState::kTimeWait;
}

// Releases the handle: the transport finishes the flow on its own and the
// stack unbinds its port once it is done.
void release_flow(Stack* s, machnet_channel* ch, const machnet_flow_t& f, bool abort) {
  Transport& tp = s->transport();
  uint64_t now = s->now_ns();
  if (abort) {
    tp.abort(now, f.id);
  } else {
    tp.close(now, f.id);
  }
  s->unroute_flow(f.id);
  s->release_flow_port(f.id, f.local_port);
  remove_flow(ch, f.id);
  if (!abort) ch->closed.push_back(f.id);
  if (ch->closed.size() >= 1024) {
    // Bound the list: forget flows that are done.
    ch->closed.erase(std::remove_if(ch->closed.begin(), ch->closed.end(),
                                    [&](uint32_t id) { return flow_finished(tp.state(id)); }),
                     ch->closed.end());
  }
}

// Moves flows established on the channel's listeners into the channel.
void accept_new(Stack* s, machnet_channel* ch) {
  Transport& tp = s->transport();
  size_t first = ch->flows.size();
  for (uint16_t port : ch->listen_ports) {
    FlowId id;
    while (tp.accept(port, &id) == Status::kOk) {
      machnet_flow_t f{};
      f.id = id;
      f.local_ip = s->ip();
      f.local_port = port;
      add_flow(ch, f);
      s->route_flow(id, &ch->ev);
      s->ref_port(port);  // the flow keeps the listener's port bound
    }
  }
  if (ch->flows.size() == first) return;
  // The transport has no per-id endpoint lookup: one scan per batch.
  tp.for_each_flow([&](const machnet::transport::Flow& fl) {
    auto it = ch->index.find(fl.id());
    if (it != ch->index.end() && it->second >= first) {
      ch->flows[it->second].f.remote_ip = fl.remote().ip;
      ch->flows[it->second].f.remote_port = fl.remote().port;
    }
  });
}

// Under the lock. Returns 1 with a message in ch->rx (stash), 0 for EOF,
// -errno for a failed flow, -EAGAIN when nothing is ready.
int next_message(Stack* s, machnet_channel* ch, machnet_flow_t* flow) {
  Transport& tp = s->transport();
  size_t n = ch->flows.size();
  for (size_t k = 0; k < n; k++) {
    size_t i = (ch->rr + k) % n;
    ChFlow& cf = ch->flows[i];
    if (cf.end_reported || !tp.readable(cf.f.id)) continue;
    Status st = tp.recv_message(s->now_ns(), cf.f.id, &ch->rx);
    if (st == Status::kAgain) continue;
    ch->rr = i + 1;
    if (st == Status::kOk) {
      ch->stash = true;
      ch->stash_flow = cf.f;
      return 1;
    }
    cf.end_reported = true;
    if (flow != nullptr) *flow = cf.f;
    if (st == Status::kEof) return 0;
    FlowError e = tp.error(cf.f.id);
    t_last_error = std::string("flow failed: ") + flow_error_string(e);
    return -flow_errno(e);
  }
  return -EAGAIN;
}

// Under the lock. >= 0: message length (or 0 = EOF); < 0: -errno.
ssize_t try_recv(Stack* s, machnet_channel* ch, const iovec* iov, int iovcnt, size_t cap,
                 machnet_flow_t* flow, int flags) {
  if (!ch->stash) {
    accept_new(s, ch);
    int r = next_message(s, ch, flow);
    if (r <= 0) return r;
  }
  if (flow != nullptr) *flow = ch->stash_flow;
  size_t len = ch->rx.size();
  if (!(flags & MACHNET_PEEK) && len > cap) {
    t_last_error = "message of " + std::to_string(len) + " bytes does not fit the " +
                   std::to_string(cap) + "-byte buffer (still queued)";
    return -EMSGSIZE;
  }
  size_t off = 0;
  for (int i = 0; i < iovcnt && off < len; i++) {
    size_t n = std::min(len - off, iov[i].iov_len);
    if (n != 0) std::memcpy(iov[i].iov_base, ch->rx.data() + off, n);
    off += n;
  }
  if (!(flags & MACHNET_PEEK)) ch->stash = false;
  return static_cast<ssize_t>(len);
}

bool valid_iov(const iovec* iov, int iovcnt, size_t* total) {
  if (iovcnt < 0 || (iovcnt > 0 && iov == nullptr)) return false;
  size_t t = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len != 0 && iov[i].iov_base == nullptr) return false;
    t += iov[i].iov_len;
  }
  *total = t;
  return true;
}

ssize_t do_recv(machnet_channel* ch, const iovec* iov, int iovcnt, machnet_flow_t* flow,
                int flags) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  size_t cap = 0;
  if (ch == nullptr || !valid_iov(iov, iovcnt, &cap) ||
      (flags & ~(MACHNET_DONTWAIT | MACHNET_PEEK)) != 0) {
    return fail(EINVAL, "machnet_recv: NULL channel, bad buffer or unknown flags");
  }
  Deadline dl((flags & MACHNET_DONTWAIT) ? 0 : ch->timeout_ms);
  ssize_t r = block(s, ch, dl, [&] { return try_recv(s, ch, iov, iovcnt, cap, flow, flags); });
  if (r >= 0) return r;
  if (r == -EAGAIN) return fail(EAGAIN, "no message");
  errno = static_cast<int>(-r);  // t_last_error set by try_recv
  return -1;
}

int do_send(machnet_channel* ch, const machnet_flow_t* flow, const void* data, size_t len,
            int flags) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  Deadline dl((flags & MACHNET_DONTWAIT) ? 0 : ch->timeout_ms);
  ssize_t r = block(s, ch, dl, [&]() -> ssize_t {
    if (find_flow(ch, flow) == nullptr) {
      fail(EBADF, "flow " + std::to_string(flow->id) + " is not open on this channel");
      return -EBADF;
    }
    // Send buffer full (kAgain): the flow's "writable" event ends the wait.
    Status st = s->transport().send_message(s->now_ns(), flow->id, data, len);
    if (st == Status::kOk) return 0;
    if (st == Status::kAgain) return -EAGAIN;
    status_fail(s, st, flow->id);
    return -errno;
  });
  if (r == 0) return 0;
  if (r == -EAGAIN) return fail(EAGAIN, "send buffer full (transport.send_buffer_bytes)");
  errno = static_cast<int>(-r);  // t_last_error set above
  return -1;
}

int start_connect(Stack* s, machnet_channel* ch, const char* local_ip, const char* remote_ip,
                  uint16_t remote_port, machnet_flow_t* flow) {
  if (ch == nullptr || remote_ip == nullptr || flow == nullptr || remote_port == 0)
    return fail(EINVAL, "machnet_connect: NULL argument or port 0");
  in_addr a;
  if (inet_pton(AF_INET, remote_ip, &a) != 1 || a.s_addr == 0)
    return fail(EINVAL, std::string("not a remote IPv4 address: '") + remote_ip + "'");
  if (parse_local_ip(s, local_ip) != 0) return -1;
  Endpoint remote{ntohl(a.s_addr), remote_port};
  machnet::stack::Lock lk(s->mu());
  uint16_t port = 0;
  int rc = s->acquire_port(0, &port);
  if (rc != 0) return fail(-rc, std::string("no local port: ") + std::strerror(-rc));
  FlowId id = 0;
  Status st = s->transport().connect(s->now_ns(), port, remote, &id);
  if (st != Status::kOk) {
    s->unref_port(port);
    return status_fail(s, st, 0);
  }
  machnet_flow_t f{};
  f.id = id;
  f.local_ip = s->ip();
  f.local_port = port;
  f.remote_ip = remote.ip;
  f.remote_port = remote.port;
  add_flow(ch, f);
  s->route_flow(id, &ch->ev);
  *flow = f;
  return 0;
}

// Under the lock: 0 connected, -EINPROGRESS, or -errno of the failure.
int connect_state(Stack* s, const machnet_flow_t* flow) {
  FlowState st = s->transport().state(flow->id);
  if (st == FlowState::kSynSent) return -EINPROGRESS;
  if (st == FlowState::kFailed) {
    FlowError e = s->transport().error(flow->id);
    t_last_error = std::string("connect failed: ") + flow_error_string(e);
    return -flow_errno(e);
  }
  return 0;
}

}  // namespace

extern "C" {

int machnet_init(void) {
  return machnet_init_config(nullptr, nullptr);
}

int machnet_init_config(const char* config_file, const char* const* overrides) {
  static std::mutex init_mu;
  std::lock_guard<std::mutex> g(init_mu);
  if (g_stack.load() != nullptr) return 0;
  std::vector<std::string> ov;
  for (const char* const* p = overrides; p != nullptr && *p != nullptr; p++) ov.push_back(*p);
  std::string path = config_file ? config_file : "";
  if (path.empty() && std::getenv("MACHNET_CONFIG") != nullptr)
    path = std::getenv("MACHNET_CONFIG");
  if (!path.empty() && access(path.c_str(), R_OK) != 0) {
    int e = errno;
    return fail(e, path + ": " + std::strerror(e));
  }
  // One stack per process: under the preload, the socket layer may have
  // started it already; then this joins it (and its configuration).
  std::string err;
  int e = 0;
  Stack* s = Stack::start(path, ov, &err, &e);
  if (s == nullptr) return fail(e, e == EINVAL ? err : "engine did not start: " + err);
  g_stack.store(s, std::memory_order_release);
  return 0;
}

const char* machnet_last_error(void) {
  return t_last_error.c_str();
}

uint32_t machnet_local_ip(void) {
  Stack* s = g_stack.load(std::memory_order_acquire);
  return s == nullptr ? 0 : s->ip();
}

machnet_channel_t* machnet_attach(void) {
  if (stack_or_fail() == nullptr) return nullptr;
  machnet_channel* ch = new (std::nothrow) machnet_channel();
  if (ch == nullptr) fail(ENOMEM, "out of memory");
  return ch;
}

int machnet_detach(machnet_channel_t* ch) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  if (ch == nullptr) return fail(EINVAL, "machnet_detach: NULL channel");
  std::vector<FlowId> closing;
  {
    machnet::stack::Lock lk(s->mu());
    while (!ch->flows.empty()) release_flow(s, ch, ch->flows.back().f, false);
    closing.swap(ch->closed);
    for (uint16_t port : ch->listen_ports) {
      s->transport().unlisten(port);
      s->unroute_listener(port);
      s->unref_port(port);
    }
    ch->listen_ports.clear();
  }
  // Linger so the FINs (and data queued before them) actually leave: nobody
  // may call into the library after this.
  uint64_t end = mono_ns() + s->config().linger_ns;
  for (unsigned round = 0; !closing.empty() && mono_ns() < end; round++) {
    {
      machnet::stack::Lock lk(s->mu());
      s->poll_locked();
      for (size_t i = 0; i < closing.size();) {
        if (flow_finished(s->transport().state(closing[i]))) {
          closing[i] = closing.back();
          closing.pop_back();
        } else {
          i++;
        }
      }
    }
    // Past the first rounds (an RTT or two), give the core back between looks.
    if (round > 64) usleep(50);
  }
  delete ch;
  return 0;
}

int machnet_set_timeout(machnet_channel_t* ch, int timeout_ms) {
  if (ch == nullptr || timeout_ms < -1)
    return fail(EINVAL, "machnet_set_timeout: NULL channel or timeout < -1");
  ch->timeout_ms = timeout_ms;
  return 0;
}

int machnet_listen(machnet_channel_t* ch, const char* local_ip, uint16_t local_port) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  if (ch == nullptr || local_port == 0)
    return fail(EINVAL, "machnet_listen: NULL channel or port 0");
  if (parse_local_ip(s, local_ip) != 0) return -1;
  machnet::stack::Lock lk(s->mu());
  uint16_t port = 0;
  int rc = s->acquire_port(local_port, &port);
  if (rc != 0) {
    return fail(-rc, "port " + std::to_string(local_port) + ": " + std::strerror(-rc));
  }
  Status st = s->transport().listen(port);
  if (st != Status::kOk) {
    s->unref_port(port);
    return status_fail(s, st, 0);
  }
  s->route_listener(port, &ch->ev);
  ch->listen_ports.push_back(port);
  return 0;
}

int machnet_unlisten(machnet_channel_t* ch, uint16_t local_port) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  if (ch == nullptr) return fail(EINVAL, "machnet_unlisten: NULL channel");
  machnet::stack::Lock lk(s->mu());
  auto it = std::find(ch->listen_ports.begin(), ch->listen_ports.end(), local_port);
  if (it == ch->listen_ports.end())
    return fail(EINVAL, "not listening on port " + std::to_string(local_port));
  ch->listen_ports.erase(it);
  s->transport().unlisten(local_port);
  s->unroute_listener(local_port);
  s->unref_port(local_port);
  return 0;
}

int machnet_connect_nb(machnet_channel_t* ch, const char* local_ip, const char* remote_ip,
                       uint16_t remote_port, machnet_flow_t* flow) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  return start_connect(s, ch, local_ip, remote_ip, remote_port, flow);
}

int machnet_connect(machnet_channel_t* ch, const char* local_ip, const char* remote_ip,
                    uint16_t remote_port, machnet_flow_t* flow, int timeout_ms) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  if (timeout_ms < -1) return fail(EINVAL, "machnet_connect: timeout < -1");
  if (start_connect(s, ch, local_ip, remote_ip, remote_port, flow) != 0) return -1;
  Deadline dl(timeout_ms);
  ssize_t r = block(s, ch, dl, [&]() -> ssize_t {
    int st = connect_state(s, flow);
    return st == -EINPROGRESS ? -EAGAIN : st;
  });
  if (r == 0) return 0;
  // A failed blocking connect leaves nothing to close.
  std::string why =
      r == -EAGAIN ? "connect timed out after " + std::to_string(timeout_ms) + " ms" : t_last_error;
  {
    machnet::stack::Lock lk(s->mu());
    release_flow(s, ch, *flow, true);
  }
  flow->id = 0;
  return fail(r == -EAGAIN ? ETIMEDOUT : static_cast<int>(-r), why);
}

int machnet_connect_check(machnet_channel_t* ch, const machnet_flow_t* flow) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  if (ch == nullptr || flow == nullptr) return fail(EINVAL, "machnet_connect_check: NULL argument");
  machnet::stack::Lock lk(s->mu());
  if (find_flow(ch, flow) == nullptr) return fail(EBADF, "no such flow on this channel");
  s->poll_locked();
  int r = connect_state(s, flow);
  if (r == 0) return 0;
  if (r == -EINPROGRESS) return fail(EINPROGRESS, "handshake in progress");
  errno = -r;
  return -1;
}

int machnet_send(machnet_channel_t* ch, const machnet_flow_t* flow, const void* buf, size_t len,
                 int flags) {
  if (stack_or_fail() == nullptr) return -1;
  if (ch == nullptr || flow == nullptr || buf == nullptr || len == 0 ||
      (flags & ~MACHNET_DONTWAIT) != 0)
    return fail(EINVAL, "machnet_send: NULL argument, empty message or unknown flags");
  return do_send(ch, flow, buf, len, flags);
}

int machnet_sendmsg(machnet_channel_t* ch, const machnet_flow_t* flow, const struct iovec* iov,
                    int iovcnt, int flags) {
  if (stack_or_fail() == nullptr) return -1;
  size_t total = 0;
  if (ch == nullptr || flow == nullptr || !valid_iov(iov, iovcnt, &total) || total == 0 ||
      (flags & ~MACHNET_DONTWAIT) != 0)
    return fail(EINVAL, "machnet_sendmsg: NULL argument, bad iovec, empty message or bad flags");
  Stack* s = g_stack.load(std::memory_order_acquire);
  if (total > s->config().tunables.max_message_bytes)  // before gathering it
    return status_fail(s, Status::kMessageTooLarge, 0);
  if (iovcnt == 1) return do_send(ch, flow, iov[0].iov_base, iov[0].iov_len, flags);
  // The transport queues a message from one contiguous buffer: gather into a
  // per-channel buffer that is reused across calls.
  ch->gather.resize(total);
  size_t off = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len != 0) std::memcpy(ch->gather.data() + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  return do_send(ch, flow, ch->gather.data(), total, flags);
}

ssize_t machnet_recv(machnet_channel_t* ch, void* buf, size_t len, machnet_flow_t* flow,
                     int flags) {
  if (buf == nullptr && len != 0) {
    if (stack_or_fail() == nullptr) return -1;
    return fail(EINVAL, "machnet_recv: NULL buffer");
  }
  iovec iov{buf, len};
  return do_recv(ch, &iov, 1, flow, flags);
}

ssize_t machnet_recvmsg(machnet_channel_t* ch, const struct iovec* iov, int iovcnt,
                        machnet_flow_t* flow, int flags) {
  return do_recv(ch, iov, iovcnt, flow, flags);
}

static int close_or_abort(machnet_channel_t* ch, const machnet_flow_t* flow, bool abort) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  if (ch == nullptr || flow == nullptr) return fail(EINVAL, "NULL channel or flow");
  machnet::stack::Lock lk(s->mu());
  ChFlow* cf = find_flow(ch, flow);
  if (cf == nullptr) return fail(EBADF, "no such flow on this channel");
  machnet_flow_t f = cf->f;
  release_flow(s, ch, f, abort);
  return 0;
}

int machnet_close(machnet_channel_t* ch, const machnet_flow_t* flow) {
  return close_or_abort(ch, flow, false);
}

int machnet_abort(machnet_channel_t* ch, const machnet_flow_t* flow) {
  return close_or_abort(ch, flow, true);
}

int machnet_flow_info(machnet_channel_t* ch, const machnet_flow_t* flow,
                      machnet_flow_info_t* info) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  if (ch == nullptr || flow == nullptr || info == nullptr)
    return fail(EINVAL, "machnet_flow_info: NULL argument");
  machnet::stack::Lock lk(s->mu());
  FlowStats st;
  if (find_flow(ch, flow) == nullptr || !s->transport().flow_stats(flow->id, &st))
    return fail(EBADF, "no such flow on this channel");
  *info = machnet_flow_info_t{};
  info->state = machnet::transport::flow_state_name(st.state);
  info->error = machnet::transport::flow_error_string(st.error);
  info->error_errno = flow_errno(st.error);
  info->srtt_ns = st.srtt_ns;
  info->rto_ns = st.rto_ns;
  info->cwnd_bytes = st.cwnd_bytes;
  info->send_buffered_bytes = st.send_buffered_bytes;
  info->messages_sent = st.messages_sent;
  info->messages_received = st.messages_received;
  info->retransmits = st.retransmits;
  info->rto_count = st.rto_count;
  info->segment_bytes = st.mss;
  const auto& t = s->config().tunables;
  info->dead_peer_bound_ns =
      t.keepalive_idle_ns == 0 ? 0
                               : t.keepalive_idle_ns + t.keepalive_probes * t.keepalive_interval_ns;
  return 0;
}

int machnet_progress(void) {
  Stack* s = stack_or_fail();
  if (s == nullptr) return -1;
  machnet::stack::Lock lk(s->mu());
  return static_cast<int>(s->poll_locked());
}

void machnet_print_stats(FILE* out) {
  Stack* s = g_stack.load(std::memory_order_acquire);
  if (s == nullptr || out == nullptr) return;
  machnet::stack::Lock lk(s->mu());
  if (s->down()) return;
  s->engine().print_counters(out);
  const machnet::transport::Counters& c = s->transport().counters();
  fprintf(out, "transport counters:");
#define MACHNET_X(n) \
  if (c.n != 0) fprintf(out, " " #n " %" PRIu64, c.n);
  MACHNET_TRANSPORT_COUNTERS(MACHNET_X)
#undef MACHNET_X
  fprintf(out, ", sink errors %" PRIu64 "\n", s->sink_errors());
}

}  // extern "C"
