// The operations behind the C entry table (socket_ops.h), one function per
// entry, by file: handles.cc (open, dup, close), udp_path.cc (the datagram
// calls), readiness.cc (poll, ready, wait_arm), socket_ops.cc (init, the
// table), stream_conn.cc and stream_data.cc (stream sockets). Same conventions as the table: >= 0
// or -errno.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <cstdint>

namespace machnet::socket {

int op_udp_open(int twin, const sockaddr_in* local, uint64_t* handle);
int op_dup(uint64_t h);
int op_close(uint64_t h);

int op_connect(uint64_t h, const sockaddr_in* peer);
int op_getsockname(uint64_t h, sockaddr_in* out);
int op_getpeername(uint64_t h, sockaddr_in* out);
ssize_t op_sendmsg(uint64_t h, const msghdr* m, int flags, int64_t timeout_ns);
ssize_t op_recvmsg(uint64_t h, msghdr* m, int flags, int64_t timeout_ns);
int op_fionread(uint64_t h, int* out);
int op_shutdown(uint64_t h, int how);

int op_poll(pollfd* fds, nfds_t n, const uint64_t* handles, int64_t timeout_ns,
            const sigset_t* sigmask);
int op_ready(const uint64_t* handles, const short* events, short* revents, size_t n);
int op_ready_seq(const uint64_t* handles, const short* events, short* revents, uint64_t* rx_seq,
                 uint64_t* tx_seq, size_t n);
int op_wait_arm(const uint64_t* handles, const uint64_t* seen_rx, size_t n);
void op_wait_disarm(void);
int op_ioctl(uint64_t h, unsigned long req, int* out);

// Stream sockets (stream_conn.cc).
int op_stream_listen(int twin, const sockaddr_in* local, int backlog, uint64_t* handle);
int op_stream_accept(uint64_t h, uint64_t* conn, sockaddr_in* peer, int64_t timeout_ns);
int op_stream_connect(int twin, const sockaddr_in* peer, int64_t timeout_ns, uint64_t* handle);
int op_stream_connect_result(uint64_t h);
void op_stream_kernel_accepted(uint64_t listener);
int op_setsockopt(uint64_t h, int level, int name, const void* val, socklen_t len);
int op_getsockopt(uint64_t h, int level, int name, void* val, socklen_t* len);

}  // namespace machnet::socket
