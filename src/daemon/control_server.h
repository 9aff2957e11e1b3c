// The control socket (control_protocol.h): a unix SOCK_SEQPACKET listener
// served from the libevent loop. One connection per client; a connection
// that attached holds its lease until DETACH, EOF, or the exit of the
// attaching process (watched through a pidfd, since a forked child may keep
// the socket open).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/daemon.h"

struct event;

namespace machnet::daemon {

class ControlServer {
 public:
  explicit ControlServer(Daemon* d);
  ~ControlServer();

  // Before EAL init. Takes <path>.lock, creates the socket's directory,
  // removes a stale socket (nobody accepts on it). Returns 0 to go on, 1
  // when another daemon serves the path (a message has been logged).
  static int precheck(const std::string& path, std::string* err);
  // Releases and removes the lock file (exit).
  static void release_lock();

  bool listen(std::string* err);
  // Closes every client connection. With reclaim false (shutdown) leases
  // are not reclaimed: the port is going away.
  void close_all(bool reclaim);
  // Closes the listener and removes the socket.
  void stop();
  size_t connections() const { return conns_.size(); }

 private:
  struct Conn {
    ControlServer* srv = nullptr;
    uint64_t id = 0;
    int fd = -1;
    event* ev = nullptr;
    int32_t pid = 0;
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint16_t queue = 0;  // leased queue, 0 = none
    int pidfd = -1;
    event* pid_ev = nullptr;
  };

  static void on_accept(int fd, short what, void* arg);
  static void on_read(int fd, short what, void* arg);
  static void on_pidfd(int fd, short what, void* arg);
  void take_wake_fd(uint16_t q);
  void accept_all();
  void read_one(Conn* c);
  void handle(Conn* c, const uint8_t* msg, size_t len);
  void malformed(Conn* c, const char* why);
  bool reply(Conn* c, const void* msg, size_t len);
  void reply_status(Conn* c, const void* req_header, int32_t status);
  // Refuses a request the connection has no authority for: counted
  // (ctl_denied), logged with the peer's pid and uid (rate-limited), answered
  // with `status`.
  void deny(Conn* c, const void* req, int32_t status, const std::string& what);
  std::string held_by(const char* what, uint16_t port, uint16_t holder) const;
  void unwatch_pid(Conn* c);
  void close_conn(Conn* c, const char* why, bool reclaim = true);

  void do_info(Conn* c, const uint8_t* msg);
  void do_attach(Conn* c, const uint8_t* msg);
  void do_bind(Conn* c, const uint8_t* msg);
  void do_unbind(Conn* c, const uint8_t* msg);
  void do_join(Conn* c, const uint8_t* msg);
  void do_detach(Conn* c, const uint8_t* msg);
  void do_stats(Conn* c, const uint8_t* msg);

  Daemon* d_;
  int listen_fd_ = -1;
  event* listen_ev_ = nullptr;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::vector<uint8_t> buf_;
  int received_fd_ = -1;  // a descriptor that came with the message being handled
};

}  // namespace machnet::daemon
