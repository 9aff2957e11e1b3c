#include "daemon/control_server.h"

#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <rte_ethdev.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/clock.h"
#include "daemon/control_parse.h"
#include "daemon/leases.h"
#include "daemon/services.h"
#include "daemon/stats.h"
#include "engine/log.h"
#include "ipc/control_protocol.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace machnet::daemon {
namespace {

constexpr size_t kMaxConnections = 1024;

int g_lock_fd = -1;
std::string g_lock_path;

bool fill_addr(const std::string& path, sockaddr_un* a) {
  memset(a, 0, sizeof(*a));
  a->sun_family = AF_UNIX;
  if (path.size() >= sizeof(a->sun_path)) return false;
  memcpy(a->sun_path, path.c_str(), path.size());
  return true;
}

void mkdir_p(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); i++) {
    if (i == dir.size() || dir[i] == '/') mkdir(dir.substr(0, i).c_str(), 0755);
  }
}

// Asks a live daemon at `path` for its pid (INFO); 0 when it does not say.
int32_t live_daemon_pid(int fd) {
  mn_ctl_header h;
  memset(&h, 0, sizeof(h));
  h.magic = MN_CTL_MAGIC;
  h.version = MN_CTL_VERSION;
  h.type = MN_CTL_INFO;
  h.seq = 1;
  if (send(fd, &h, sizeof(h), MSG_NOSIGNAL) != sizeof(h)) return 0;
  pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 500) != 1) return 0;
  mn_ctl_info_reply r;
  ssize_t n = recv(fd, &r, sizeof(r), 0);
  if (n < static_cast<ssize_t>(sizeof(r)) || r.h.magic != MN_CTL_MAGIC) return 0;
  return r.daemon_pid;
}

// At most ~10 lines a second of one kind, whatever clients send; then one
// line saying how many were not logged.
class LogLimiter {
 public:
  bool allow() {
    uint64_t now = mono_ns();
    if (now - window_ns_ >= 1'000'000'000ull) {
      if (suppressed_ != 0)
        MN_LOG(DAEMON, WARNING, "%llu more %s (not logged)",
               static_cast<unsigned long long>(suppressed_), what_);
      window_ns_ = now;
      in_window_ = 0;
      suppressed_ = 0;
    }
    if (in_window_++ < 10) return true;
    suppressed_++;
    return false;
  }
  explicit LogLimiter(const char* what) : what_(what) {}

 private:
  const char* what_;
  uint64_t window_ns_ = 0, in_window_ = 0, suppressed_ = 0;
};

LogLimiter g_malformed_log("malformed control messages");
LogLimiter g_denied_log("refused control requests");

}  // namespace

int ControlServer::precheck(const std::string& path, std::string* err) {
  sockaddr_un addr;
  if (!fill_addr(path, &addr)) {
    *err = "control socket path too long: " + path;
    return 1;
  }
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) mkdir_p(path.substr(0, slash));

  // Two daemons starting at once must not both decide the socket is stale.
  g_lock_path = path + ".lock";
  g_lock_fd = open(g_lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (g_lock_fd < 0) {
    *err = "cannot open " + g_lock_path + ": " + strerror(errno);
    return 1;
  }
  if (flock(g_lock_fd, LOCK_EX | LOCK_NB) != 0) {
    *err = "another machnetd is starting or running on " + path + " (" + g_lock_path +
           " is locked); not starting";
    close(g_lock_fd);
    g_lock_fd = -1;
    return 1;
  }

  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  if (!S_ISSOCK(st.st_mode)) {
    *err = path + " exists and is not a socket; not starting";
    return 1;
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket: ") + strerror(errno);
    return 1;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    int32_t pid = live_daemon_pid(fd);
    close(fd);
    *err = "a live machnetd" + (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) +
           " already serves " + path + "; not starting";
    return 1;
  }
  int e = errno;
  close(fd);
  if (e == ECONNREFUSED) {
    unlink(path.c_str());
    MN_LOG(DAEMON, NOTICE, "removed stale control socket %s (nobody listening)", path.c_str());
    return 0;
  }
  *err = "cannot check the existing socket " + path + ": " + strerror(e) + "; not starting";
  return 1;
}

void ControlServer::release_lock() {
  if (g_lock_fd < 0) return;
  unlink(g_lock_path.c_str());
  close(g_lock_fd);
  g_lock_fd = -1;
}

ControlServer::ControlServer(Daemon* d) : d_(d), buf_(MN_CTL_MAX_MESSAGE) {}

ControlServer::~ControlServer() {
  close_all(false);
  stop();
}

bool ControlServer::listen(std::string* err) {
  const std::string& path = d_->cfg.socket;
  sockaddr_un addr;
  if (!fill_addr(path, &addr)) {
    *err = "control socket path too long: " + path;
    return false;
  }
  listen_fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    *err = std::string("socket: ") + strerror(errno);
    return false;
  }
  // No window in which the socket exists with a wider mode than configured.
  mode_t old = umask(0177);
  int rc = bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int e = errno;
  umask(old);
  if (rc != 0) {
    *err = "bind " + path + ": " + strerror(e);
    return false;
  }
  if (d_->cfg.socket_gid != static_cast<gid_t>(-1) &&
      chown(path.c_str(), static_cast<uid_t>(-1), d_->cfg.socket_gid) != 0) {
    *err = "chgrp " + d_->cfg.socket_group + " " + path + ": " + strerror(errno);
    return false;
  }
  if (chmod(path.c_str(), d_->cfg.socket_mode) != 0) {
    *err = "chmod " + path + ": " + strerror(errno);
    return false;
  }
  if (::listen(listen_fd_, 128) != 0) {
    *err = "listen " + path + ": " + strerror(errno);
    return false;
  }
  listen_ev_ = event_new(d_->base, listen_fd_, EV_READ | EV_PERSIST, on_accept, this);
  if (listen_ev_ == nullptr || event_add(listen_ev_, nullptr) != 0) {
    *err = "event_add (listener) failed";
    return false;
  }
  return true;
}

void ControlServer::stop() {
  if (listen_ev_ != nullptr) {
    event_free(listen_ev_);
    listen_ev_ = nullptr;
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    unlink(d_->cfg.socket.c_str());
  }
}

void ControlServer::close_all(bool reclaim) {
  while (!conns_.empty()) close_conn(conns_.begin()->second.get(), "shutdown", reclaim);
}

void ControlServer::on_accept(int, short, void* arg) {
  static_cast<ControlServer*>(arg)->accept_all();
}

void ControlServer::accept_all() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or out of fds: try again on the next readiness
    }
    if (conns_.size() >= kMaxConnections) {
      MN_LOG(DAEMON, WARNING, "refusing a control connection: %zu open already", conns_.size());
      close(fd);
      continue;
    }
    ucred cred;
    socklen_t len = sizeof(cred);
    memset(&cred, 0, sizeof(cred));
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    auto c = std::make_unique<Conn>();
    c->srv = this;
    c->id = next_id_++;
    c->fd = fd;
    c->pid = cred.pid;
    c->uid = cred.uid;
    c->gid = cred.gid;
    c->ev = event_new(d_->base, fd, EV_READ | EV_PERSIST, on_read, c.get());
    if (c->ev == nullptr || event_add(c->ev, nullptr) != 0) {
      if (c->ev != nullptr) event_free(c->ev);
      close(fd);
      continue;
    }
    d_->counters.ctl_connections++;
    conns_[c->id] = std::move(c);
  }
}

void ControlServer::on_read(int, short, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  c->srv->read_one(c);
}

void ControlServer::read_one(Conn* c) {
  iovec iov{buf_.data(), buf_.size()};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(4 * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  ssize_t n = recvmsg(c->fd, &msg, MSG_TRUNC | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  // Descriptors that came with the message: the first one is offered to
  // the request (ATTACH's wake eventfd); whatever is not taken is closed.
  received_fd_ = -1;
  if (n > 0) {
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
      size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
        if (received_fd_ < 0)
          received_fd_ = fd;
        else
          close(fd);
      }
    }
  }
  struct CloseUntaken {
    int* fd;
    ~CloseUntaken() {
      if (*fd >= 0) close(*fd);
      *fd = -1;
    }
  } close_untaken{&received_fd_};
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    close_conn(c, "connection error");
    return;
  }
  if (n == 0) {
    close_conn(c, "socket closed");
    return;
  }
  if (static_cast<size_t>(n) > buf_.size()) {
    malformed(c, "message larger than MN_CTL_MAX_MESSAGE");
    return;
  }
  handle(c, buf_.data(), static_cast<size_t>(n));
}

void ControlServer::malformed(Conn* c, const char* why) {
  d_->counters.ctl_malformed++;
  if (g_malformed_log.allow())
    MN_LOG(DAEMON, WARNING, "closing control connection of pid %d uid %u: %s", c->pid, c->uid, why);
  close_conn(c, "malformed request");
}

bool ControlServer::reply(Conn* c, const void* msg, size_t len) {
  ssize_t n = send(c->fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(len)) {
    // The client does not read its replies (or is gone).
    close_conn(c, n < 0 && errno != EAGAIN ? "socket closed" : "reply not accepted");
    return false;
  }
  return true;
}

void ControlServer::reply_status(Conn* c, const void* req, int32_t status) {
  mn_ctl_header h;
  ctl_reply_header(&h, req, status);
  reply(c, &h, sizeof(h));
}

void ControlServer::deny(Conn* c, const void* req, int32_t status, const std::string& what) {
  d_->counters.ctl_denied++;
  if (g_denied_log.allow())
    MN_LOG(DAEMON, WARNING, "refused %s from pid %d uid %u (queue %u): %s", what.c_str(), c->pid,
           c->uid, c->queue, strerror(-status));
  mn_ctl_header h;
  memcpy(&h, req, sizeof(h));
  if (h.type == MN_CTL_BIND || h.type == MN_CTL_JOIN) {
    // BIND and JOIN always answer with a full bind reply, echoing the port
    // asked for (at the same offset in both requests... not quite: read it
    // from the request of its type).
    uint16_t port = 0;
    if (h.type == MN_CTL_BIND) {
      mn_ctl_bind_request b;
      memcpy(&b, req, sizeof(b));
      port = b.port;
    } else {
      mn_ctl_join_request j;
      memcpy(&j, req, sizeof(j));
      port = j.port;
    }
    mn_ctl_bind_reply r;
    memset(&r, 0, sizeof(r));
    ctl_reply_header(&r.h, req, status);
    r.port = port;
    reply(c, &r, sizeof(r));
    return;
  }
  reply_status(c, req, status);
}

void ControlServer::handle(Conn* c, const uint8_t* msg, size_t len) {
  CtlParsed p = ctl_parse(msg, len);
  if (p.verdict == CtlVerdict::kMalformed) {
    malformed(c, p.why);
    return;
  }
  d_->counters.ctl_requests++;
  if (p.verdict == CtlVerdict::kStatus) {
    reply_status(c, p.req, p.status);
    return;
  }
  // Authority comes from the connection alone (the lease it attached, the
  // peer's SO_PEERCRED): no request names a pid or a queue.
  const char* what = nullptr;
  int32_t rc = ctl_authorize(p.type, c->queue != 0, &what);
  if (rc != 0) {
    deny(c, p.req, rc, what);
    return;
  }
  const uint8_t* req = p.req;
  switch (p.type) {
    case MN_CTL_INFO:
      do_info(c, req);
      return;
    case MN_CTL_ATTACH:
      do_attach(c, req);
      return;
    case MN_CTL_BIND:
      do_bind(c, req);
      return;
    case MN_CTL_UNBIND:
      do_unbind(c, req);
      return;
    case MN_CTL_JOIN:
      do_join(c, req);
      return;
    case MN_CTL_DETACH:
      do_detach(c, req);
      return;
    case MN_CTL_STATS:
      do_stats(c, req);
      return;
    default:
      reply_status(c, req, -EOPNOTSUPP);  // ctl_parse has answered unknown types
      return;
  }
}

void ControlServer::do_info(Conn* c, const uint8_t* req) {
  mn_ctl_info_reply r;
  memset(&r, 0, sizeof(r));
  ctl_reply_header(&r.h, req, 0);
  r.ip = d_->cfg.ip;
  r.prefix_len = d_->cfg.prefix_len;
  memcpy(r.mac, d_->mac.data(), 6);
  r.gateway = d_->cfg.gateway;
  r.mtu = d_->mtu;
  r.nb_queues = d_->nb_queues;
  r.free_leases = d_->leases->free_leases();
  r.rendezvous_port = static_cast<uint16_t>(d_->cfg.rendezvous_port);
  r.daemon_pid = getpid();
  snprintf(r.device, sizeof(r.device), "%s", d_->device_name.c_str());
  reply(c, &r, sizeof(r));
}

void ControlServer::do_attach(Conn* c, const uint8_t* req) {
  mn_ctl_attach_request a;
  memcpy(&a, req, sizeof(a));
  if (c->queue != 0) {
    reply_status(c, req, -EALREADY);
    return;
  }
  if (mn_shm_shutting_down(d_->shm)) {
    reply_status(c, req, -ESHUTDOWN);
    return;
  }
  char comm[16];
  ctl_sanitize_comm(a.comm, sizeof(a.comm), comm);
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, c->pid, 0));
  if (pidfd < 0 && errno == ESRCH) {
    // The process that connected is gone; whoever sends this inherited the
    // socket and cannot be watched.
    deny(c, req, -ESRCH, "ATTACH on a socket whose connecting process has exited");
    return;
  }
  int q = d_->leases->attach(c->pid, c->uid, comm);
  if (q < 0) {
    if (pidfd >= 0) close(pidfd);
    MN_LOG(DAEMON, WARNING, "attach refused for pid %d (%s): no free queue", c->pid, comm);
    reply_status(c, req, q);
    return;
  }
  c->queue = static_cast<uint16_t>(q);
  take_wake_fd(static_cast<uint16_t>(q));
  if (pidfd >= 0) {
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    c->pidfd = pidfd;
    c->pid_ev = event_new(d_->base, pidfd, EV_READ, on_pidfd, c);
    if (c->pid_ev != nullptr) event_add(c->pid_ev, nullptr);
  }
  const mn_lease& l = d_->shm->leases[q];
  mn_ctl_attach_reply r;
  memset(&r, 0, sizeof(r));
  ctl_reply_header(&r.h, req, 0);
  r.queue = static_cast<uint16_t>(q);
  r.port_id = d_->port_id;
  r.lcore_id = l.lcore_id;
  r.mtu = d_->mtu;
  r.owner_id = l.owner_id;
  r.generation = l.generation;
  r.ip = d_->cfg.ip;
  r.gateway = d_->cfg.gateway;
  r.prefix_len = d_->cfg.prefix_len;
  memcpy(r.mac, d_->mac.data(), 6);
  snprintf(r.eal_prefix, sizeof(r.eal_prefix), "%s", d_->eal_prefix.c_str());
  snprintf(r.device, sizeof(r.device), "%s", d_->device_name.c_str());
  snprintf(r.shm_name, sizeof(r.shm_name), "%s", MN_SHM_NAME);
  MN_LOG(DAEMON, NOTICE, "attach: queue %d leased to pid %d (%s) uid %u, generation %llu", q,
         c->pid, comm, c->uid, static_cast<unsigned long long>(l.generation));
  reply(c, &r, sizeof(r));
}

// The eventfd that came with ATTACH becomes queue q's wake-up descriptor,
// if it is one: anything else (a pipe could block the data path) is
// refused and the holder is simply never woken by the daemon.
void ControlServer::take_wake_fd(uint16_t q) {
  int fd = received_fd_;
  if (fd < 0) return;
  char path[64], target[64] = "";
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t len = readlink(path, target, sizeof(target) - 1);
  if (len <= 0 || strcmp(target, "anon_inode:[eventfd]") != 0) {
    MN_LOG(DAEMON, WARNING, "queue %u: the descriptor sent with ATTACH is not an eventfd (%s)", q,
           target);
    return;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  d_->set_wake_fd(q, fd);
  received_fd_ = -1;
}

void ControlServer::do_bind(Conn* c, const uint8_t* req) {
  mn_ctl_bind_request b;
  memcpy(&b, req, sizeof(b));
  mn_ctl_bind_reply r;
  memset(&r, 0, sizeof(r));
  if (b.proto == MN_CTL_PROTO_SERVICE) {
    int rc = (b.flags & ~MN_CTL_BIND_FLAGS) != 0 || b.ip != 0
                 ? -EINVAL
                 : d_->services->bind(c->queue, b.port, (b.flags & MN_CTL_BIND_REUSEPORT) != 0);
    if (rc != 0) {
      deny(c, req, rc,
           "BIND of stream service " + std::to_string(b.port) +
               (rc == -EADDRINUSE ? " (another process listens on it)" : ""));
      return;
    }
    MN_LOG(DAEMON, INFO, "stream service %u: queue %u (pid %d) listens%s", b.port, c->queue, c->pid,
           (b.flags & MN_CTL_BIND_REUSEPORT) != 0 ? " (SO_REUSEPORT)" : "");
    ctl_reply_header(&r.h, req, 0);
    r.port = b.port;
    reply(c, &r, sizeof(r));
    return;
  }
  uint16_t port = 0;
  int rc = d_->leases->bind(c->queue, b.ip, b.port, b.proto, b.flags, &port);
  uint16_t holder = b.port != 0 ? mn_port_queue(&d_->shm->ports[b.port]) : 0;
  if (rc == -EADDRINUSE && holder != 0 && holder != c->queue) {
    // Another lease's port (or a group we may not join): nobody takes over
    // another process's traffic.
    deny(c, req, rc, held_by("BIND of port", b.port, holder));
    return;
  }
  if (rc == -ENOMEM)
    MN_LOG(DAEMON, WARNING,
           "BIND of port %u with SO_REUSEPORT from pid %d (queue %u): all %d group slots in use",
           b.port, c->pid, c->queue, MN_SHM_GROUPS);
  if (rc == 0 && (b.flags & MN_CTL_BIND_REUSEPORT) != 0) {
    uint16_t v = mn_port_queue(&d_->shm->ports[port]);
    const mn_port_group& g = d_->shm->groups[MN_PORT_GROUP_INDEX(v)];
    MN_LOG(DAEMON, INFO, "port %u: queue %u (pid %d) joined SO_REUSEPORT group %u, %u member%s",
           port, c->queue, c->pid, MN_PORT_GROUP_INDEX(v), mn_group_count(&g),
           mn_group_count(&g) == 1 ? "" : "s");
  }
  ctl_reply_header(&r.h, req, rc);
  r.port = rc == 0 ? port : b.port;
  reply(c, &r, sizeof(r));
}

void ControlServer::do_join(Conn* c, const uint8_t* req) {
  mn_ctl_join_request j;
  memcpy(&j, req, sizeof(j));
  const char* why = nullptr;
  if (j.proto == MN_CTL_PROTO_SERVICE) {
    uint16_t ring = 0;
    int rc = j.flags != 0 ? -EINVAL : d_->services->join(c->queue, j.port, &ring, &why);
    if (rc != 0) {
      deny(c, req, rc,
           "JOIN of stream service " + std::to_string(j.port) +
               (why != nullptr ? std::string(": ") + why : ""));
      return;
    }
    MN_LOG(DAEMON, INFO, "stream service %u: queue %u (pid %d) shares it (fork), shared ring %u",
           j.port, c->queue, c->pid, ring);
    mn_ctl_bind_reply r;
    memset(&r, 0, sizeof(r));
    ctl_reply_header(&r.h, req, 0);
    r.port = j.port;
    r.shared_ring = static_cast<uint16_t>(ring + 1);
    reply(c, &r, sizeof(r));
    return;
  }
  int rc = d_->leases->join(c->queue, j.port, j.proto, j.flags, &why);
  if (rc != 0) {
    deny(
        c, req, rc,
        "JOIN of port " + std::to_string(j.port) + (why != nullptr ? std::string(": ") + why : ""));
    return;
  }
  uint16_t v = mn_port_queue(&d_->shm->ports[j.port]);
  const mn_port_group& g = d_->shm->groups[MN_PORT_GROUP_INDEX(v)];
  MN_LOG(DAEMON, INFO, "port %u: queue %u (pid %d) shares it (fork), %u holders, shared ring %u",
         j.port, c->queue, c->pid, mn_group_count(&g), g.shared - 1u);
  mn_ctl_bind_reply r;
  memset(&r, 0, sizeof(r));
  ctl_reply_header(&r.h, req, 0);
  r.port = j.port;
  reply(c, &r, sizeof(r));
}

void ControlServer::do_unbind(Conn* c, const uint8_t* req) {
  mn_ctl_unbind_request u;
  memcpy(&u, req, sizeof(u));
  if (u.proto == MN_CTL_PROTO_SERVICE) {
    int rc = d_->services->unbind(c->queue, u.port);
    if (rc != 0) {
      deny(c, req, rc,
           "UNBIND of stream service " + std::to_string(u.port) +
               ", on which its lease does not listen");
      return;
    }
    reply_status(c, req, 0);
    return;
  }
  int rc = d_->leases->unbind(c->queue, u.port, u.proto);
  if (rc != 0) {
    uint16_t holder = mn_port_queue(&d_->shm->ports[u.port]);
    deny(c, req, rc,
         holder != 0 && holder != c->queue && !d_->leases->ports_of(c->queue).count(u.port)
             ? held_by("UNBIND of port", u.port, holder)
             : "UNBIND of port " + std::to_string(u.port) + " (proto " + std::to_string(u.proto) +
                   "), which its lease does not hold");
    return;
  }
  reply_status(c, req, rc);
}

std::string ControlServer::held_by(const char* what, uint16_t port, uint16_t holder) const {
  if ((holder & MN_PORT_GROUP) != 0) {
    const mn_port_group& g = d_->shm->groups[MN_PORT_GROUP_INDEX(holder)];
    uint16_t n = mn_group_count(&g);
    return std::string(what) + " " + std::to_string(port) + " held by SO_REUSEPORT group " +
           std::to_string(MN_PORT_GROUP_INDEX(holder)) + " (" + std::to_string(n) + " of " +
           std::to_string(MN_GROUP_MAX_MEMBERS) + " members, uid " + std::to_string(g.uid) + ")";
  }
  const mn_lease& l = d_->shm->leases[holder < MN_SHM_MAX_QUEUES ? holder : 0];
  return std::string(what) + " " + std::to_string(port) + " held by queue " +
         std::to_string(holder) + " (pid " + std::to_string(l.pid) + ", uid " +
         std::to_string(l.uid) + ")";
}

void ControlServer::do_detach(Conn* c, const uint8_t* req) {
  if (c->queue == 0) {
    reply_status(c, req, -EINVAL);
    return;
  }
  uint16_t q = c->queue;
  c->queue = 0;
  unwatch_pid(c);
  d_->reclaimer->start(q, "detach");
  reply_status(c, req, 0);
}

void ControlServer::do_stats(Conn* c, const uint8_t* req) {
  std::string json = stats_json(*d_, MN_CTL_MAX_MESSAGE - sizeof(mn_ctl_header) - 1);
  std::vector<uint8_t> out(sizeof(mn_ctl_header) + json.size() + 1);
  mn_ctl_header h;
  ctl_reply_header(&h, req, 0);
  memcpy(out.data(), &h, sizeof(h));
  memcpy(out.data() + sizeof(h), json.c_str(), json.size() + 1);
  reply(c, out.data(), out.size());
}

void ControlServer::on_pidfd(int, short, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  // The process that attached exited while its socket stays open (a child
  // inherited it): the lease dies with the process, and so does the connection.
  c->srv->close_conn(c, "process exit");
}

void ControlServer::unwatch_pid(Conn* c) {
  if (c->pid_ev != nullptr) {
    event_free(c->pid_ev);
    c->pid_ev = nullptr;
  }
  if (c->pidfd >= 0) {
    close(c->pidfd);
    c->pidfd = -1;
  }
}

void ControlServer::close_conn(Conn* c, const char* why, bool reclaim) {
  uint16_t q = c->queue;
  c->queue = 0;
  unwatch_pid(c);
  if (c->ev != nullptr) event_free(c->ev);
  close(c->fd);
  if (q != 0 && reclaim) d_->reclaimer->start(q, why);
  conns_.erase(c->id);  // frees c
}

}  // namespace machnet::daemon
