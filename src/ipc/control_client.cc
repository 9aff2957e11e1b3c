#include "ipc/control_client.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace machnet::ipc {

namespace {

uint64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// Who may use the socket, when connect() said EACCES: its mode and group
// decide (machnetd.socket_mode, machnetd.socket_group).
std::string access_hint(const std::string& path, int e) {
  if (e != EACCES && e != EPERM) return "";
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return " (a directory on its path is not searchable)";
  std::string group = std::to_string(st.st_gid);
  struct group gr, *res = nullptr;
  char buf[4096];
  if (getgrgid_r(st.st_gid, &gr, buf, sizeof(buf), &res) == 0 && res != nullptr)
    group = res->gr_name;
  char mode[8];
  std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return std::string(" (the socket is mode ") + mode + ", group " + group +
         ": only its owner and the members of group " + group + " may use machnetd)";
}

// The control socket this process connected to last, and the connection
// preconnect_in_fork_child made (by process `g_pre_pid`).
char g_path[sizeof(sockaddr_un::sun_path)];
int g_pre_fd = -1;
pid_t g_pre_pid = 0;

}  // namespace

void preconnect_in_fork_child() {
  int saved = errno;
  // The parent's preconnected socket (never taken) is the parent's.
  if (g_pre_fd >= 0) ::close(g_pre_fd);
  g_pre_fd = -1;
  if (g_path[0] != '\0') {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, g_path, sizeof(g_path));
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0) {
      g_pre_fd = fd;
      g_pre_pid = getpid();
    } else if (fd >= 0) {
      ::close(fd);
    }
  }
  errno = saved;
}

ControlClient::~ControlClient() {
  close();
}

void ControlClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int ControlClient::connect(const std::string& path, std::string* err) {
  close();
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
    if (err) *err = "machnetd socket path '" + path + "' is empty or too long";
    return -ENAMETOOLONG;
  }
  std::memcpy(sa.sun_path, path.data(), path.size());
  if (g_pre_fd >= 0 && g_pre_pid == getpid() && path == g_path) {
    fd_ = g_pre_fd;  // made by preconnect_in_fork_child, with the parent's credentials
    g_pre_fd = -1;
    return 0;
  }
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    if (err) *err = std::string("socket(AF_UNIX, SOCK_SEQPACKET): ") + std::strerror(e);
    return -e;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0) {
    int e = errno;
    ::close(fd);
    if (err)
      *err =
          "cannot connect to machnetd at " + path + ": " + std::strerror(e) + access_hint(path, e);
    return -e;
  }
  fd_ = fd;
  std::memcpy(g_path, path.data(), path.size());
  g_path[path.size()] = '\0';
  return 0;
}

// One request, one reply. A reply carrying the sequence number of an earlier
// request (one that timed out) is stale and skipped. Transport errors and
// malformed replies close the socket (the conversation cannot be trusted any
// more); a timeout keeps it open.
int ControlClient::request(uint16_t type, const void* req, size_t req_len, void* reply,
                           size_t reply_len, size_t* got, int timeout_ms, int send_fd) {
  if (fd_ < 0) return -ENOTCONN;
  if (req_len < sizeof(mn_ctl_header) || reply_len < sizeof(mn_ctl_header)) return -EINVAL;
  uint8_t sbuf[256];
  if (req_len > sizeof(sbuf)) return -EINVAL;
  std::memcpy(sbuf, req, req_len);
  mn_ctl_header h{};
  h.magic = MN_CTL_MAGIC;
  h.version = MN_CTL_VERSION;
  h.type = type;
  h.seq = ++seq_;
  h.status = 0;
  std::memcpy(sbuf, &h, sizeof(h));

  // send_fd travels with the request (SCM_RIGHTS): the daemon gets its own
  // descriptor of the same file.
  iovec siov{sbuf, req_len};
  msghdr smsg{};
  smsg.msg_iov = &siov;
  smsg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  if (send_fd >= 0) {
    std::memset(cbuf, 0, sizeof(cbuf));
    smsg.msg_control = cbuf;
    smsg.msg_controllen = sizeof(cbuf);
    cmsghdr* cm = CMSG_FIRSTHDR(&smsg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &send_fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &smsg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    close();
    return -e;
  }
  if (static_cast<size_t>(n) != req_len) {
    close();
    return -EPROTO;
  }

  uint64_t deadline = monotonic_ms() + static_cast<uint64_t>(timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    uint64_t now = monotonic_ms();
    int wait = now >= deadline ? 0 : static_cast<int>(deadline - now);
    pollfd pfd{fd_, POLLIN, 0};
    int r = ::poll(&pfd, 1, wait);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close();
      return -e;
    }
    if (r == 0) return -ETIMEDOUT;

    iovec iov{reply, reply_len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      int e = errno;
      close();
      return -e;
    }
    if (n == 0) {  // the daemon closed its end
      close();
      return -ECONNRESET;
    }
    if (static_cast<size_t>(n) < sizeof(mn_ctl_header)) {
      close();
      return -EPROTO;
    }
    mn_ctl_header rh;
    std::memcpy(&rh, reply, sizeof(rh));
    if (rh.magic != MN_CTL_MAGIC) {
      close();
      return -EPROTO;
    }
    if (rh.seq != h.seq) {
      // A late reply to a request that timed out (older sequence number,
      // maybe of another size): skipped.
      if (static_cast<int32_t>(h.seq - rh.seq) > 0) continue;
      close();
      return -EPROTO;
    }
    if (msg.msg_flags & MSG_TRUNC) {  // larger than any reply of this type
      close();
      return -EPROTO;
    }
    if (rh.type != type || rh.status > 0) {
      close();
      return -EPROTO;
    }
    if (rh.status < 0) return rh.status;
    if (rh.version != MN_CTL_VERSION || static_cast<size_t>(n) < (got ? sizeof(rh) : reply_len)) {
      close();
      return -EPROTO;
    }
    if (got) *got = static_cast<size_t>(n);
    return 0;
  }
}

int ControlClient::info(mn_ctl_info_reply* out, int timeout_ms) {
  mn_ctl_header req{};
  mn_ctl_info_reply rep{};
  int r = request(MN_CTL_INFO, &req, sizeof(req), &rep, sizeof(rep), nullptr, timeout_ms);
  if (r == 0 && out) *out = rep;
  return r;
}

int ControlClient::attach(const char* comm, mn_ctl_attach_reply* out, int timeout_ms, int wake_fd) {
  mn_ctl_attach_request req{};
  if (comm) std::strncpy(req.comm, comm, sizeof(req.comm) - 1);
  mn_ctl_attach_reply rep{};
  int r =
      request(MN_CTL_ATTACH, &req, sizeof(req), &rep, sizeof(rep), nullptr, timeout_ms, wake_fd);
  if (r == 0 && out) {
    *out = rep;
    // The strings come from another process: make sure they end.
    out->eal_prefix[sizeof(out->eal_prefix) - 1] = '\0';
    out->device[sizeof(out->device) - 1] = '\0';
    out->shm_name[sizeof(out->shm_name) - 1] = '\0';
  }
  return r;
}

int ControlClient::bind_udp(uint32_t ip, uint16_t port, uint16_t* bound_port, uint8_t flags,
                            int timeout_ms) {
  mn_ctl_bind_request req{};
  req.ip = ip;
  req.port = port;
  req.proto = 17;
  req.flags = flags;
  mn_ctl_bind_reply rep{};
  int r = request(MN_CTL_BIND, &req, sizeof(req), &rep, sizeof(rep), nullptr, timeout_ms);
  if (r == 0) {
    if (rep.port == 0 || (port != 0 && rep.port != port)) {
      close();
      return -EPROTO;
    }
    if (bound_port) *bound_port = rep.port;
  }
  return r;
}

int ControlClient::join_udp(uint16_t port, int timeout_ms) {
  mn_ctl_join_request req{};
  req.port = port;
  req.proto = 17;
  mn_ctl_bind_reply rep{};
  int r = request(MN_CTL_JOIN, &req, sizeof(req), &rep, sizeof(rep), nullptr, timeout_ms);
  if (r == 0 && rep.port != port) {
    close();
    return -EPROTO;
  }
  return r;
}

int ControlClient::unbind_udp(uint16_t port, int timeout_ms) {
  mn_ctl_unbind_request req{};
  req.port = port;
  req.proto = 17;
  mn_ctl_header rep{};
  return request(MN_CTL_UNBIND, &req, sizeof(req), &rep, sizeof(rep), nullptr, timeout_ms);
}

int ControlClient::bind_service(uint16_t service, uint8_t flags, int timeout_ms) {
  mn_ctl_bind_request req{};
  req.port = service;
  req.proto = MN_CTL_PROTO_SERVICE;
  req.flags = flags;
  mn_ctl_bind_reply rep{};
  int r = request(MN_CTL_BIND, &req, sizeof(req), &rep, sizeof(rep), nullptr, timeout_ms);
  if (r == 0 && rep.port != service) {
    close();
    return -EPROTO;
  }
  return r;
}

int ControlClient::join_service(uint16_t service, uint16_t* ring, int timeout_ms) {
  mn_ctl_join_request req{};
  req.port = service;
  req.proto = MN_CTL_PROTO_SERVICE;
  mn_ctl_bind_reply rep{};
  int r = request(MN_CTL_JOIN, &req, sizeof(req), &rep, sizeof(rep), nullptr, timeout_ms);
  // The ring's index is checked by its user (Engine::ring_recv).
  if (r == 0 && (rep.port != service || rep.shared_ring == 0)) {
    close();
    return -EPROTO;
  }
  if (r == 0) *ring = static_cast<uint16_t>(rep.shared_ring - 1);
  return r;
}

int ControlClient::unbind_service(uint16_t service, int timeout_ms) {
  mn_ctl_unbind_request req{};
  req.port = service;
  req.proto = MN_CTL_PROTO_SERVICE;
  mn_ctl_header rep{};
  return request(MN_CTL_UNBIND, &req, sizeof(req), &rep, sizeof(rep), nullptr, timeout_ms);
}

int ControlClient::detach(int timeout_ms) {
  mn_ctl_header req{};
  mn_ctl_header rep{};
  return request(MN_CTL_DETACH, &req, sizeof(req), &rep, sizeof(rep), nullptr, timeout_ms);
}

int ControlClient::stats(std::string* json, int timeout_ms) {
  mn_ctl_header req{};
  std::vector<char> buf(MN_CTL_MAX_MESSAGE);
  size_t got = 0;
  int r = request(MN_CTL_STATS, &req, sizeof(req), buf.data(), buf.size(), &got, timeout_ms);
  if (r == 0 && json) {
    const char* text = buf.data() + sizeof(mn_ctl_header);
    size_t len = got - sizeof(mn_ctl_header);
    json->assign(text, strnlen(text, len));
  }
  return r;
}

// Between requests nothing the daemon sends is awaited: a pending message is a
// late reply to a request that timed out and is discarded; EOF (or a reset)
// means the daemon is gone.
bool ControlClient::peer_closed() {
  if (fd_ < 0) return true;
  for (;;) {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      return true;  // ECONNRESET and the like
    }
    // A stale reply: drop it (SOCK_SEQPACKET: one recv takes the whole message).
    n = ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_TRUNC);
    if (n == 0) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return true;
  }
}

}  // namespace machnet::ipc
