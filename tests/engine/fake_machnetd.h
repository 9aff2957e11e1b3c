// A stand-in for machnetd's control socket in tests: a SOCK_SEQPACKET server
// thread in a private temporary directory that speaks the control protocol
// (control_protocol.h). By default it answers INFO/ATTACH/BIND/UNBIND/DETACH/
// STATS like the daemon would; a test can replace the responder to send
// malformed replies, stay silent, or hang up.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipc/control_protocol.h"

namespace machnet::test {

class FakeMachnetd {
 public:
  using Bytes = std::vector<uint8_t>;
  // Gets a request; appends the messages to send back to *out (none: no
  // answer) and returns false to hang up on the client after sending them.
  using Responder =
      std::function<bool(const mn_ctl_header& h, const Bytes& req, std::vector<Bytes>* out)>;

  FakeMachnetd() {
    char tmpl[] = "/tmp/fake_machnetd.XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/machnetd.sock";
    listen_fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path_.c_str(), sizeof(sa.sun_path) - 1);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
        listen(listen_fd_, 16) != 0)
      std::abort();
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    info.ip = 0x0a000001;
    info.prefix_len = 24;
    info.mtu = 1500;
    info.nb_queues = 4;
    info.free_leases = 3;
    info.daemon_pid = getpid();
    std::strcpy(info.device, "net_fake0");
    attach_reply.queue = 1;
    attach_reply.port_id = 0;
    attach_reply.lcore_id = 1;
    attach_reply.mtu = 1500;
    attach_reply.owner_id = 0x1234567890abcdefull;
    attach_reply.generation = 1;
    attach_reply.ip = 0x0a000001;
    attach_reply.prefix_len = 24;
    std::strcpy(attach_reply.eal_prefix, "fake");
    std::strcpy(attach_reply.device, "net_fake0");
    std::strcpy(attach_reply.shm_name, "machnetd_shm");
    thread_ = std::thread([this] { run(); });
  }

  ~FakeMachnetd() {
    uint64_t one = 1;
    ssize_t w = write(stop_fd_, &one, sizeof(one));
    (void)w;
    thread_.join();
    for (int fd : clients_) close(fd);
    close(listen_fd_);
    close(stop_fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  const std::string& path() const { return path_; }

  void set_responder(Responder r) {
    std::lock_guard<std::mutex> lock(mu_);
    responder_ = std::move(r);
  }
  // Closes every client connection (the daemon "crashed" for them).
  void hang_up_all() { hang_up_.store(true); }
  int requests(uint16_t type) {
    std::lock_guard<std::mutex> lock(mu_);
    return count_[type];
  }
  int clients() const { return nclients_.load(); }
  // Ports bound so far (port -> true), as the default responder tracks them.
  std::map<uint16_t, bool> bound() {
    std::lock_guard<std::mutex> lock(mu_);
    return bound_;
  }
  // Called by the default responder on BIND/UNBIND (with the lock held).
  std::function<void(uint16_t port, bool bound)> on_bind;

  mn_ctl_info_reply info{};
  mn_ctl_attach_reply attach_reply{};
  int32_t attach_status = 0;
  uint16_t busy_port = 0;  // BIND of this port gets -EADDRINUSE
  uint16_t next_ephemeral = 40000;

  template <typename T>
  static Bytes bytes_of(const T& v) {
    Bytes b(sizeof(T));
    std::memcpy(b.data(), &v, sizeof(T));
    return b;
  }
  static mn_ctl_header reply_header(const mn_ctl_header& h, int32_t status) {
    mn_ctl_header r = h;
    r.status = status;
    return r;
  }

  // The default behaviour: the protocol as machnetd implements it.
  bool respond(const mn_ctl_header& h, const Bytes& req, std::vector<Bytes>* out) {
    out->emplace_back();
    return respond_one(h, req, &out->back());
  }
  bool respond_one(const mn_ctl_header& h, const Bytes& req, Bytes* reply) {
    switch (h.type) {
      case MN_CTL_INFO: {
        mn_ctl_info_reply r = info;
        r.h = reply_header(h, 0);
        *reply = bytes_of(r);
        return true;
      }
      case MN_CTL_ATTACH: {
        if (attach_status != 0) {
          *reply = bytes_of(reply_header(h, attach_status));
          return true;
        }
        mn_ctl_attach_reply r = attach_reply;
        r.h = reply_header(h, 0);
        *reply = bytes_of(r);
        return true;
      }
      case MN_CTL_BIND: {
        mn_ctl_bind_request b;
        if (req.size() < sizeof(b)) {
          *reply = bytes_of(reply_header(h, -EINVAL));
          return true;
        }
        std::memcpy(&b, req.data(), sizeof(b));
        mn_ctl_bind_reply r{};
        uint16_t port = b.port == 0 ? next_ephemeral++ : b.port;
        if (port == busy_port || bound_.count(port) != 0) {
          r.h = reply_header(h, -EADDRINUSE);
        } else {
          r.h = reply_header(h, 0);
          r.port = port;
          bound_[port] = true;
          if (on_bind) on_bind(port, true);
        }
        *reply = bytes_of(r);
        return true;
      }
      case MN_CTL_UNBIND: {
        mn_ctl_unbind_request u;
        if (req.size() < sizeof(u)) {
          *reply = bytes_of(reply_header(h, -EINVAL));
          return true;
        }
        std::memcpy(&u, req.data(), sizeof(u));
        int32_t st = bound_.erase(u.port) != 0 ? 0 : -ENOENT;
        if (st == 0 && on_bind) on_bind(u.port, false);
        *reply = bytes_of(reply_header(h, st));
        return true;
      }
      case MN_CTL_DETACH:
        *reply = bytes_of(reply_header(h, 0));
        return true;
      case MN_CTL_STATS: {
        std::string json = "{\"leases\": []}";
        mn_ctl_header r = reply_header(h, 0);
        reply->assign(sizeof(r) + json.size() + 1, 0);
        std::memcpy(reply->data(), &r, sizeof(r));
        std::memcpy(reply->data() + sizeof(r), json.data(), json.size());
        return true;
      }
      default:
        *reply = bytes_of(reply_header(h, -EINVAL));
        return true;
    }
  }

 private:
  void run() {
    for (;;) {
      if (hang_up_.exchange(false)) {
        for (int fd : clients_) close(fd);
        clients_.clear();
        nclients_.store(0);
      }
      std::vector<pollfd> pfds = {{stop_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
      for (int fd : clients_) pfds.push_back({fd, POLLIN, 0});
      int r = poll(pfds.data(), pfds.size(), 5);
      if (r < 0 && errno != EINTR) return;
      if (pfds[0].revents) return;
      std::vector<int> keep;
      if (pfds[1].revents & POLLIN) {
        int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) keep.push_back(c);  // polled from the next round on
      }
      for (size_t i = 2; i < pfds.size(); i++) {
        int fd = pfds[i].fd;
        if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
          keep.push_back(fd);
          continue;
        }
        Bytes req(MN_CTL_MAX_MESSAGE);
        ssize_t n = recv(fd, req.data(), req.size(), 0);
        if (n <= 0) {
          close(fd);
          continue;
        }
        req.resize(static_cast<size_t>(n));
        mn_ctl_header h{};
        if (req.size() >= sizeof(h)) std::memcpy(&h, req.data(), sizeof(h));
        std::vector<Bytes> replies;
        bool stay;
        {
          std::lock_guard<std::mutex> lock(mu_);
          count_[h.type]++;
          stay = responder_ ? responder_(h, req, &replies) : respond(h, req, &replies);
        }
        for (const Bytes& reply : replies)
          if (!reply.empty()) send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
        if (stay) {
          keep.push_back(fd);
        } else {
          close(fd);
        }
      }
      clients_ = keep;
      nclients_.store(static_cast<int>(clients_.size()));
    }
  }

  std::string dir_, path_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  std::vector<int> clients_;
  std::atomic<int> nclients_{0};
  std::atomic<bool> hang_up_{false};
  std::mutex mu_;
  Responder responder_;
  std::map<uint16_t, int> count_;
  std::map<uint16_t, bool> bound_;
  std::thread thread_;
};

}  // namespace machnet::test
