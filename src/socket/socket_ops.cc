// The C entry table the preload shim calls (socket_ops.h), and the socket
// layer's start: it starts (or joins) the process-wide stack.
#include "socket/socket_ops.h"

#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "engine/rundir.h"
#include "ipc/control_client.h"
#include "socket/socket_internal.h"
#include "socket/socket_layer.h"
#include "socket/stream.h"

namespace machnet::socket {
namespace {

void copy_msg(char* msg, size_t len, const std::string& s) {
  if (len == 0) return;
  snprintf(msg, len, "%s", s.c_str());
}

std::mutex g_init_mu;
pid_t g_owner = 0;

// At exit the kernel would close every socket the process still holds:
// stream connections send their FIN after the data still queued (or RST
// with SO_LINGER {1, 0}), listeners reset what nobody accepted. The
// transport cannot outlive the process, so this lingers (native.linger_ms,
// 500 ms by default) until the peers have acknowledged the FINs. Runs
// before the stack stops (atexit handlers run in reverse order).
void close_streams_at_exit() {
  if (g.stack == nullptr || getpid() != g_owner) return;  // a fork child: not ours
  {
    stack::Lock lock(mu());
    if (g.stack->down()) return;
    for (uint32_t slot = 0; slot < g.next_slot; slot++) {
      Sock* s = slot_ptr(slot);
      // Closed sockets too: a close while another thread still sleeps in a
      // call on the socket leaves the finalize to that call's return, which
      // never comes now (the kernel sends the FIN when the process ends).
      if (s == nullptr || s->kind == Kind::kUdp) continue;
      stream_finalize(s);
    }
  }
  // Nothing resends after the process is gone (the kernel's orphaned
  // sockets would): within the bound, what is unacknowledged goes out again
  // without back-off, every kExpediteNs, so one lost segment or a peer
  // briefly too busy to read its ring cannot cost the FIN.
  constexpr int64_t kExpediteNs = 25'000'000;
  int64_t start = now_ns();
  int64_t end = start + static_cast<int64_t>(g.stack->config().linger_ns);
  int64_t next_expedite = start + kExpediteNs;
  size_t outstanding = 0;
  for (unsigned round = 0;; round++) {
    int64_t t = now_ns();
    {
      stack::Lock lock(mu());
      if (g.stack->down()) return;
      if (t >= next_expedite || t >= end) {
        outstanding = g.stack->expedite_lingering();
        next_expedite = t + kExpediteNs;
      }
      g.stack->poll_locked();
      if (g.stack->lingering() == 0 || t >= end) break;
    }
    if (round > 64) usleep(50);
  }
  // Sent once more above; the peer may still see a reset or a timeout.
  if (outstanding != 0)
    fprintf(stderr,
            "machnet: exit: %zu stream connection(s) not acknowledged by the peer within "
            "native.linger_ms (%llu ms); they may end with an error there\n",
            outstanding, static_cast<unsigned long long>(g.stack->config().linger_ns / 1'000'000));
}

// _exit()/_Exit() in a preloaded program (the shim's interposers): what
// exit() would have done through the atexit handlers, minus the stack's
// orderly stop: the stream sockets' goodbyes, then the engine's runtime
// directory (EAL's files in /var/run/dpdk).
void process_exit_now() {
  close_streams_at_exit();
  engine::remove_own_runtime_dir();
}

int op_init(const machnet_libc* libc, const char* config_path, char* msg, size_t msglen) {
  std::lock_guard<std::mutex> init(g_init_mu);
  if (g.stack != nullptr) {
    copy_msg(msg, msglen, g.stack->down() ? "stack stopped" : "engine already running");
    return g.stack->down() ? -ENETDOWN : 0;
  }
  g.libc = *libc;
  if (g.bounce == nullptr) {
    g.bounce = static_cast<uint8_t*>(malloc(kMaxDatagram));
    if (g.bounce == nullptr) return -ENOMEM;
  }
  std::string err;
  int e = 0;
  // The configuration file must exist when named (the shim checked it);
  // empty: MACHNET_* variables only.
  std::string path = config_path != nullptr ? config_path : "";
  stack::Stack* s = stack::Stack::start(path, {}, &err, &e);
  if (s == nullptr) {
    copy_msg(msg, msglen, err);
    return e == EINVAL ? -EINVAL : -ENETDOWN;
  }
  g.stack = s;
  g_owner = getpid();
  atexit(close_streams_at_exit);
  copy_msg(msg, msglen, s->description());
  return 0;
}

int op_fork_adopt(const uint64_t* handles, size_t n, char* msg, size_t msglen) {
  // The parent's locks may be held by threads that did not survive fork():
  // none of its objects is touched beyond plain reads of our own tables.
  new (&g_init_mu) std::mutex();
  std::lock_guard<std::mutex> init(g_init_mu);
  stack::Stack* old = g.stack;
  if (old == nullptr || !old->engine().attached()) {
    copy_msg(msg, msglen, "a standalone engine cannot be shared with a fork child");
    return -EBADFD;
  }
  // The sockets to keep: those the shim's fds still name.
  std::vector<Sock*> keep;
  for (size_t i = 0; i < n; i++) {
    uint64_t h = handles[i];
    Sock* s = live_sock(h);
    bool usable = (s != nullptr && s->kind == Kind::kUdp && s->us != nullptr) ||
                  (s != nullptr && s->kind == Kind::kListener) ||
                  (s != nullptr && s->kind == Kind::kStream);
    if (usable && std::find(keep.begin(), keep.end(), s) == keep.end()) keep.push_back(s);
  }
  // The parent's configuration, as it read it: the child may not be able
  // to read the file any more (a worker that dropped its privileges).
  // Stream connections: claimed at their first call here (fork_streams.cc),
  // from the parent's frozen copy, which the abandoned stack keeps.
  for (Sock* so : keep)
    if (so->kind == Kind::kStream) fork_child_keep_stream(so, old);
  const stack::StackConfig cfg = old->config();
  stack::Stack::forget_in_fork_child();
  std::string err;
  int e = 0;
  stack::Stack* s = stack::Stack::start(cfg, &err, &e);
  // Every queue leased: forking servers (socat's fork mode) start a child
  // per datagram while the last one's lease is still being reclaimed (some
  // 20 ms after it exits). Wait for one to come free, up to kForkLeaseWaitMs.
  constexpr int kForkLeaseWaitMs = 2000;
  for (int waited = 0; s == nullptr && err.find(engine::kNoFreeQueue) != std::string::npos &&
                       waited < kForkLeaseWaitMs;
       waited += 5) {
    usleep(5000);
    err.clear();
    e = 0;
    s = stack::Stack::start(cfg, &err, &e);
  }
  if (s == nullptr) {
    copy_msg(msg, msglen, "cannot attach to machnetd: " + err);
    return -(e == 0 ? ENETDOWN : e);
  }
  if (!s->engine().attached()) {
    copy_msg(msg, msglen, "the new engine is not attached to machnetd");
    return -ENETDOWN;
  }
  g.stack = s;
  g_owner = getpid();
  // Every slot of the parent's: sockets not kept become stale handles
  // (their engine side was the parent's); calls the parent's threads had
  // in progress left references that nobody here will release.
  for (uint32_t slot = 0; slot < g.next_slot; slot++) {
    Sock* so = slot_ptr(slot);
    if (so == nullptr) continue;
    uint64_t st = so->state.load() & ~uint64_t{0xffffffff};
    bool kept = std::find(keep.begin(), keep.end(), so) != keep.end();
    if (!kept && so->us != nullptr) st += uint64_t{1} << 32;  // stale from now on
    so->state.store(st);
    if (!kept) so->us = nullptr;
    if (!kept && so->kind == Kind::kStream) {
      // The parent's flow: nothing of it is this process's to close.
      so->flow = 0;
      so->tp_port = 0;
      so->handoff = false;
    }
  }
  size_t joined = 0, listening = 0;
  int first_err = 0;
  stack::Lock lock(mu());
  size_t connections = 0;
  for (Sock* so : keep) {
    if (so->kind == Kind::kStream) {
      connections += so->handoff ? 1 : 0;
      continue;
    }
    if (so->kind == Kind::kListener) {
      // A listener of our own for the same service, on a UDP port of our
      // own; the rendezvous port is shared with the parent, and SYNs go to
      // whichever holder accepts (docs/MACHNETD.md, "Listeners shared by
      // fork"). The parent's accept queue stays the parent's.
      so->acceptq.clear();
      int rc = g.stack->stream_listen(so->service_port, so->backlog, &so->ev, /*inherited=*/true);
      if (rc == 0) {
        transport::FlowOptions o = so->listen_opts.empty() ? stream_defaults() : so->listen_opts[0];
        g.stack->transport().set_service_options(so->service_port, o);
        listening++;
        continue;
      }
      if (first_err == 0) first_err = rc;
      so->state.fetch_add(uint64_t{1} << 32);  // its calls fail with EBADF
      continue;
    }
    engine::UdpBindOptions opt;
    opt.local_ip = so->local_ip;
    opt.shared = true;
    opt.fork_join = true;
    engine::UdpSocket* us = nullptr;
    int rc = eng().udp_bind(so->local_port, opt, &us);
    if (rc != 0) {
      if (first_err == 0) first_err = rc;
      so->us = nullptr;
      so->state.fetch_add(uint64_t{1} << 32);  // its calls fail with EBADF
      continue;
    }
    so->us = us;
    // What the parent's queue holds (a datagram it peeked at included) is
    // the parent's to hand over: its engine moves it to the shared ring.
    so->unfiltered = 0;
    if (so->connected) eng().udp_connect(us, so->peer_ip, so->peer_port);
    joined++;
  }
  if (first_err != 0) {
    copy_msg(msg, msglen,
             std::string("cannot share an inherited port with the parent: ") +
                 std::strerror(-first_err));
    return first_err;
  }
  copy_msg(msg, msglen,
           std::to_string(joined) + " inherited UDP socket(s) and " + std::to_string(listening) +
               " stream listener(s) shared with the parent, " + std::to_string(connections) +
               " inherited connection(s) to take over at first use; " + s->description());
  return 0;
}

uint32_t op_engine_ip() {
  if (g.stack == nullptr) return 0;
  return htonl(g.stack->ip());
}

void op_wait_params(int64_t* spin_ns, int64_t* sleep_ns) {
  const stack::WaitConfig& w = g.stack->config().wait;
  *spin_ns = g.stack->spin_ns();
  *sleep_ns = w.sleep_ns;
}

int64_t op_spin_begin() {
  return g.stack->spin_begin();
}

void op_spin_done() {
  g.stack->spin_done();
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
    op_stream_listen,
    op_stream_accept,
    op_stream_connect,
    op_stream_connect_result,
    op_setsockopt,
    op_getsockopt,
    op_ioctl,
    process_exit_now,
    op_stream_kernel_accepted,
    engine::remove_own_runtime_dir,
    op_spin_begin,
    op_spin_done,
    op_fork_adopt,
    ipc::preconnect_in_fork_child,
    op_fork_prepare,
};

}  // namespace
}  // namespace machnet::socket

extern "C" __attribute__((visibility("default"))) const struct machnet_socket_ops_v1*
machnet_socket_ops_v1(void) {
  return &machnet::socket::kOps;
}
