// Client side of the machnetd control protocol (control_protocol.h): used by
// the engine to attach and claim ports, by machnet-stat for STATS. Blocking
// request/reply on a SOCK_SEQPACKET unix socket; no DPDK.
#pragma once

#include <cstdint>
#include <string>

#include "ipc/control_protocol.h"

namespace machnet::ipc {

// A fork child's control connection, opened by the fork handler before the
// program goes on: the daemon then sees the credentials the child has at
// that moment (its parent's), which a pre-fork server's worker may drop
// right after (nginx's `user` directive), losing the right to open the
// socket at all. Async-signal-safe (fork handlers of multi-threaded
// programs may call nothing else). Does nothing unless this process
// connected to machnetd before. The next connect() to the same path in
// this process takes it.
void preconnect_in_fork_child();

class ControlClient {
 public:
  ControlClient() = default;
  ~ControlClient();  // closes the socket: the daemon reclaims the lease
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Connects (close-on-exec socket). Returns 0 or -errno (-ENOENT, -ECONNREFUSED
  // when no daemon listens); *err says what failed, naming the path.
  int connect(const std::string& path, std::string* err);
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void close();

  // Each returns the reply's status (0 or -errno), or -errno of a transport
  // failure (-ECONNRESET / -EPIPE when the daemon is gone: the socket is
  // then closed). Timeouts: a daemon that does not answer within timeout_ms
  // gives -ETIMEDOUT.
  int info(mn_ctl_info_reply* out, int timeout_ms = 1000);
  // wake_fd (an eventfd, or -1) goes with the request: the daemon writes it
  // to wake this process while its lease is parked (shm.h, mn_wake_state).
  int attach(const char* comm, mn_ctl_attach_reply* out, int timeout_ms = 1000, int wake_fd = -1);
  // flags: MN_CTL_BIND_* (MN_CTL_BIND_REUSEPORT: join the port's group).
  int bind_udp(uint32_t ip, uint16_t port, uint16_t* bound_port, uint8_t flags = 0,
               int timeout_ms = 1000);
  int unbind_udp(uint16_t port, int timeout_ms = 1000);
  // MN_CTL_JOIN: share `port`, held by an ancestor process (fork).
  int join_udp(uint16_t port, int timeout_ms = 1000);
  // Stream services (MN_CTL_PROTO_SERVICE): listen on `service` (flags:
  // MN_CTL_BIND_REUSEPORT), share it with an ancestor that listens on it
  // (fork; *ring: the index of the fork-shared ring its SYNs go to), stop.
  int bind_service(uint16_t service, uint8_t flags, int timeout_ms = 1000);
  int join_service(uint16_t service, uint16_t* ring, int timeout_ms = 1000);
  int unbind_service(uint16_t service, int timeout_ms = 1000);
  int detach(int timeout_ms = 1000);
  int stats(std::string* json, int timeout_ms = 1000);

  // Non-blocking check for the daemon's end of the socket: true when it
  // closed (daemon exited or crashed). Never blocks, never consumes a reply
  // (only called between requests).
  bool peer_closed();

 private:
  int request(uint16_t type, const void* req, size_t req_len, void* reply, size_t reply_len,
              size_t* got, int timeout_ms, int send_fd = -1);
  int fd_ = -1;
  uint32_t seq_ = 0;
};

}  // namespace machnet::ipc
