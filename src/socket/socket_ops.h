/* The C entry table between the preload shim (libmachnet_preload.so, no DPDK)
 * and the socket layer inside libmachnet.so. The shim dlopen()s libmachnet.so
 * on the first socket a rule offloads and calls machnet_socket_ops_v1(); the
 * table is versioned so an old shim never calls into a newer layout blindly.
 *
 * Conventions: every function returns >= 0 on success and -errno on failure
 * (never touches errno). Addresses are struct sockaddr_in in network order.
 * A socket is named by a 64-bit handle (generation << 32 | slot + 1) that
 * stays safe to pass after the socket was closed by another thread: a stale
 * handle yields -EBADF, never another socket.
 *
 * The shim keeps the fd table; the socket layer keeps everything behind a
 * handle (engine port, peer) and the engine lock. Every offloaded
 * socket has a kernel twin (the fd itself); the socket layer uses it for
 * traffic that reaches the socket through the kernel, for sleeping and for
 * destinations the engine cannot reach (loopback, broadcast, multicast). */
#ifndef MACHNET_SOCKET_OPS_H
#define MACHNET_SOCKET_OPS_H

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MACHNET_SOCKET_OPS_VERSION 2

/* Per-thread counts of the program's signal handlers that ran, kept by the
 * shim's wrapper around every handler (preload/signals.c). A blocking call
 * spins with signals unblocked and compares them: a handler ran, so the call
 * ends with EINTR or goes on, as the kernel's would. */
struct machnet_signal_counts {
  uint32_t ran;         /* handlers that ran on this thread */
  uint32_t interrupted; /* of those, ones installed without SA_RESTART */
};

/* The real libc functions, resolved by the shim: the socket layer calls these
 * for the kernel twin so it never goes through the interposers. */
struct machnet_libc {
  int (*ppoll)(struct pollfd* fds, nfds_t nfds, const struct timespec* ts, const sigset_t* mask);
  ssize_t (*recvmsg)(int fd, struct msghdr* msg, int flags);
  ssize_t (*sendmsg)(int fd, const struct msghdr* msg, int flags);
  int (*ioctl)(int fd, unsigned long req, void* arg);
  /* The calling thread's counts (valid for the thread's life); NULL when
   * the caller counts no handlers: blocking calls then spin with every
   * signal blocked (two sigprocmask calls each). */
  const volatile struct machnet_signal_counts* (*signal_counts)(void);
};

struct machnet_socket_ops_v1 {
  uint32_t version; /* MACHNET_SOCKET_OPS_VERSION */
  uint32_t size;    /* sizeof(struct machnet_socket_ops_v1) */

  /* Loads the configuration (config_path may be "" for none: then only
   * MACHNET_* variables) and starts the engine. On success msg holds one line
   * describing the device; on failure the reason (file:line for bad keys). */
  int (*init)(const struct machnet_libc* libc, const char* config_path, char* msg, size_t msglen);
  /* The engine's IPv4 address (network order). */
  uint32_t (*engine_ip)(void);

  /* Offloads the UDP socket whose kernel twin is twin_fd, already bound to
   * local (port != 0): binds the same port on the engine. Other offloaded
   * UDP sockets of the process may hold the port (the kernel allowed the
   * twin's bind: SO_REUSEADDR / SO_REUSEPORT); arriving datagrams then go to
   * the best match, a connected socket's peer to it. -EADDRINUSE: the
   * engine holds the port for something else (a transport port, another
   * process under machnetd). */
  int (*udp_open)(int twin_fd, const struct sockaddr_in* local, uint64_t* handle);
  /* Another fd (dup) now names the socket. */
  int (*dup)(uint64_t handle);
  /* One fd naming the socket is gone; the last one releases the engine port
   * once no call is still using it. */
  int (*close)(uint64_t handle);
  /* peer == NULL: dissolve the association (connect to AF_UNSPEC). */
  int (*connect)(uint64_t handle, const struct sockaddr_in* peer);
  int (*getsockname)(uint64_t handle, struct sockaddr_in* out);
  int (*getpeername)(uint64_t handle, struct sockaddr_in* out);

  /* Data path. timeout_ns: 0 = non-blocking, < 0 = wait forever, else
   * SO_RCVTIMEO/SO_SNDTIMEO. Blocking calls spin, then sleep on the twin; a
   * signal makes them return -EINTR. */
  ssize_t (*sendmsg)(uint64_t handle, const struct msghdr* msg, int flags, int64_t timeout_ns);
  ssize_t (*recvmsg)(uint64_t handle, struct msghdr* msg, int flags, int64_t timeout_ns);
  /* Length of the next datagram (FIONREAD), engine first, then the twin. */
  int (*fionread)(uint64_t handle, int* out);

  /* poll() over a mix: handles[i] != 0 marks fds[i] as offloaded. sigmask as
   * in ppoll (NULL: keep the current mask). Returns the ready count. */
  int (*poll)(struct pollfd* fds, nfds_t nfds, const uint64_t* handles, int64_t timeout_ns,
              const sigset_t* sigmask);
  /* Engine-side readiness only (one engine poll, no syscall): revents[i]
   * for handles[i] and the poll(2) bits in events[i]. Returns how many are
   * ready. For epoll, whose kernel half the shim asks itself. */
  int (*ready)(const uint64_t* handles, const short* events, short* revents, size_t n);
  /* socket.spin_us and socket.sleep_us (the backstop bound of one sleep),
   * for waits the shim runs itself. */
  void (*wait_params)(int64_t* spin_ns, int64_t* sleep_ns);

  /* Appended (the size field tells an older table): */
  /* ready, plus per handle a counter of datagrams that reached the socket
   * through the engine (rx_seq) and one of datagrams it sent (tx_seq): a
   * change is a wake-up for epoll's edge-triggered mode. */
  int (*ready_seq)(const uint64_t* handles, const short* events, short* revents, uint64_t* rx_seq,
                   uint64_t* tx_seq, size_t n);
  /* shutdown(2) on the engine side, after the shim applied it to the twin:
   * SHUT_RD makes a blocking receive on an empty queue return 0, SHUT_WR
   * makes sends fail with EPIPE. Returns 0, or -ENOTCONN (unconnected; the
   * bits are set all the same, as in the kernel). */
  int (*shutdown)(uint64_t handle, int how);
  /* Waits the shim runs itself (epoll): registers the calling thread to be
   * woken when a datagram reaches one of handles[0..n) (0 entries ignored)
   * through the engine. seen_rx[i]: the rx_seq that ready_seq gave for
   * handles[i] at the caller's last look (NULL: data already queued counts).
   * Returns an fd to add to the sleep (readable = look again), -EALREADY
   * (look again now: something arrived since that look), or -EAGAIN (no
   * wake-up possible: sleep in socket.sleep_us slices). handles must stay
   * valid until wait_disarm, which must follow every arm that returned an fd. */
  int (*wait_arm)(const uint64_t* handles, const uint64_t* seen_rx, size_t n);
  void (*wait_disarm)(void);

  /* ---- Stream sockets over the machnet transport (appended) ----
   * A stream handle names a connection (or a listener); the generic entries
   * above (dup, close, getsockname, getpeername, sendmsg, recvmsg, fionread,
   * poll, ready, ready_seq, shutdown, wait_arm) take it too. An offloaded
   * stream connection has no kernel path: its fd is a placeholder socket the
   * shim keeps out of every kernel poll/epoll (poll above does that itself).
   *
   * A connect first probes the peer; when the peer has no machnet service
   * there, the socket "falls back": calls on its handle return
   * -MACHNET_EFALLBACK and readiness reports MACHNET_POLL_FALLBACK, and the
   * shim then connects the kernel twin itself (same fd, same peer), moves
   * the fd to the kernel in every epoll set, and closes the handle. */

  /* Listens for transport connections to local's port (the service port);
   * the twin listens in the kernel too (plain TCP clients reach it). */
  int (*stream_listen)(int twin_fd, const struct sockaddr_in* local, int backlog, uint64_t* handle);
  /* One connection off a listener: 1 with *conn and *peer (a transport
   * connection: the shim makes a placeholder fd for it); 0 when the twin
   * has a kernel connection to accept (the shim accepts it); -EAGAIN (none,
   * timeout_ns 0 or expired), -EINTR, -errno. Waits like recvmsg, on both. */
  int (*stream_accept)(uint64_t listener, uint64_t* conn, struct sockaddr_in* peer,
                       int64_t timeout_ns);
  /* Connects over the transport from the twin's socket to peer: 0
   * (connected), -EINPROGRESS (timeout_ns 0: *handle names the connecting
   * socket), -MACHNET_EFALLBACK (*handle 0: connect the twin in the kernel),
   * or -errno. */
  int (*stream_connect)(int twin_fd, const struct sockaddr_in* peer, int64_t timeout_ns,
                        uint64_t* handle);
  /* SO_ERROR of a connect in progress: 0, -EINPROGRESS, -MACHNET_EFALLBACK,
   * or -errno (reported once, as SO_ERROR is). */
  int (*stream_connect_result)(uint64_t handle);
  /* Options the socket layer honours (TCP_NODELAY, TCP_CORK, SO_KEEPALIVE,
   * TCP_KEEPIDLE/INTVL/CNT, SO_RCVBUF, SO_SNDBUF, SO_LINGER...): 0 or -errno;
   * -ENOPROTOOPT for those it does not keep (the shim asks the twin). */
  int (*setsockopt)(uint64_t handle, int level, int name, const void* val, socklen_t len);
  int (*getsockopt)(uint64_t handle, int level, int name, void* val, socklen_t* len);
  /* FIONREAD/SIOCINQ (bytes readable), SIOCOUTQ (bytes not yet acknowledged). */
  int (*ioctl)(uint64_t handle, unsigned long req, int* out);
  /* The process is about to end (exit or _exit): what the kernel would do
   * with the stream sockets still open (FIN after queued data, RST with
   * SO_LINGER {1, 0}), lingering a bounded time for the peers' ACKs; then
   * removes the engine's EAL runtime directory. Does nothing in a fork
   * child. */
  void (*process_exit)(void);
  /* The shim accepted a plain TCP connection on the kernel twin of
   * listener (stream_accept said 0 and accept4 succeeded): counted as
   * kernel_accepts in the stack's counters (/machnet/transport). */
  void (*stream_kernel_accepted)(uint64_t listener);
  /* The process is about to end by a signal at its default action: removes
   * the engine's EAL runtime directory, nothing else. Async-signal-safe;
   * does nothing in a fork child. */
  void (*remove_runtime_dir)(void);
  /* A wait that is about to spin takes a spinner's place: returns the spin
   * allowed in ns (0: socket.spinners threads of the process already spin;
   * sleep at once). A nonzero result is given back with spin_done() before
   * the wait sleeps or returns. */
  int64_t (*spin_begin)(void);
  void (*spin_done)(void);

  /* Appended. In a fork() child of a process whose engine is attached to
   * machnetd: abandons the parent's stack (never touched again: it names
   * the parent's queue), attaches for a lease of this process's own, and
   * re-creates the UDP sockets handles[0..n) name in it, each joining its
   * port as a fork sharer (MN_CTL_JOIN), same handles, same peers. Every
   * other socket of the parent's is forgotten. Returns 0 (msg: the new
   * engine), -EBADFD (a standalone engine: inherited sockets stay unusable
   * in the child) or -errno with msg saying why. Called once, with no
   * other call of the table in progress in this process. */
  int (*fork_adopt)(const uint64_t* handles, size_t n, char* msg, size_t msglen);
  /* Appended. Called by the shim's fork handler in every fork() child of a
   * process with an engine, before the program goes on: async-signal-safe.
   * Attached, it opens the control connection fork_adopt will use, while
   * the child still has its parent's credentials (a worker may drop them
   * before it first touches an inherited socket). */
  void (*fork_child)(void);
  /* Appended. Called by the shim's fork handler in the parent right before
   * fork() (the shim's locks held, no other call of the table in progress
   * on this thread): freezes the established stream connections so that
   * the child's copy of them is exact; the first process to use one
   * afterwards takes it (docs/MACHNETD.md, "Connections across fork").
   * Attached engines only; does nothing otherwise. */
  void (*fork_prepare)(void);
};

/* Returned (negated) by stream calls on a socket whose connect fell back to
 * kernel TCP; reported by readiness as MACHNET_POLL_FALLBACK (a bit poll(2)
 * never uses). */
#define MACHNET_EFALLBACK 4096
#define MACHNET_POLL_FALLBACK 0x4000

typedef const struct machnet_socket_ops_v1* (*machnet_socket_ops_v1_fn)(void);
const struct machnet_socket_ops_v1* machnet_socket_ops_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* MACHNET_SOCKET_OPS_H */
