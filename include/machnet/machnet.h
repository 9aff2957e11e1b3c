/*
 * machnet native message API (C ABI).
 *
 * Reliable, message-oriented flows over the machnet transport (v1), carried
 * in UDP/IPv4 by the DPDK engine running inside this process. Message
 * boundaries are kept: one machnet_send() is one machnet_recv() at the peer,
 * up to transport.max_message_bytes (8 MiB by default). The full reference,
 * with every error, is machnet(3).
 *
 * Model
 *   - machnet_init*() starts one engine for the process (one device, one IPv4
 *     address; settings from the config file / MACHNET_* variables, like the
 *     machnet tools).
 *   - Each thread attaches its own channel. Listeners and flows belong to the
 *     channel that created (or, for accepted flows, listened for) them;
 *     machnet_recv() returns the next message from any flow of the channel,
 *     together with that flow, and accepts new incoming flows implicitly.
 *   - Errors: -1 with errno set (EINVAL, EBADF, EAGAIN, EMSGSIZE, ENOTCONN,
 *     ECONNREFUSED, ECONNRESET, ETIMEDOUT, ...); machnet_last_error() gives
 *     a sentence for the calling thread's last failure.
 *
 * Threading (chosen design)
 *   The engine is single-threaded. The library keeps one per-process mutex
 *   around the engine and the transport; every call takes it. Blocking calls
 *   busy-poll: each round takes the mutex, drives the engine and the
 *   transport, tries the operation and releases the mutex, so threads blocked
 *   on different channels all make progress. A low-duty background thread
 *   (native.progress_thread, on by default) drives the engine only when no
 *   thread has for native.progress_idle_us (1 ms): a program that stops
 *   calling still answers ACKs and keepalives. Use a channel from one thread
 *   at a time. Signals do not interrupt blocking calls (bound them with
 *   machnet_set_timeout()).
 *
 * IPv4 addresses in machnet_flow_t are in host byte order; addresses passed as
 * strings are dotted quads. All calls are safe to make before machnet_init()
 * (they fail with ENODEV).
 */
#ifndef MACHNET_MACHNET_H_
#define MACHNET_MACHNET_H_

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MACHNET_API_VERSION 1

/* A thread's handle on the engine. Opaque. */
typedef struct machnet_channel machnet_channel_t;

/* One flow (connection). `id` is the handle; the rest describes it. */
typedef struct machnet_flow {
  uint32_t id;        /* never 0 for a valid flow */
  uint32_t local_ip;  /* host byte order */
  uint32_t remote_ip; /* host byte order */
  uint16_t local_port;
  uint16_t remote_port;
} machnet_flow_t;

/* Per-flow details, for diagnostics. Strings are static. */
typedef struct machnet_flow_info {
  const char* state;   /* "ESTABLISHED", "SYN_SENT", "FAILED", ... */
  const char* error;   /* why the flow failed, or "no error" */
  int error_errno;     /* errno equivalent of `error`, 0 if none */
  uint64_t srtt_ns;    /* smoothed round-trip time */
  uint64_t rto_ns;     /* current retransmission timeout */
  uint64_t cwnd_bytes; /* congestion window */
  uint64_t send_buffered_bytes;
  uint64_t messages_sent;
  uint64_t messages_received;
  uint64_t retransmits;
  uint64_t rto_count;
  /* A silent peer makes the flow fail with ETIMEDOUT within this bound
   * (transport.keepalive_idle_ms + probes * interval); 0 if disabled. */
  uint64_t dead_peer_bound_ns;
  /* Message bytes per datagram (the smaller of both ends' values; fits the
   * engine MTU with IPv4, UDP and the 88-byte transport header). */
  uint64_t segment_bytes;
} machnet_flow_info_t;

/* flags for send/recv */
#define MACHNET_DONTWAIT 0x1 /* never block: EAGAIN instead */
#define MACHNET_PEEK 0x2     /* recv: return the next message's length, leave it queued */

/* Starts the engine from $MACHNET_CONFIG (if set) and MACHNET_* variables.
 * Returns 0 (also when already initialised) or -1. */
int machnet_init(void);

/* Same, from `config_file` (NULL: $MACHNET_CONFIG) and `overrides`, a
 * NULL-terminated array of "key=value" strings (NULL: none) that win over the
 * file and the environment. */
int machnet_init_config(const char* config_file, const char* const* overrides);

/* The calling thread's last error as a sentence ("" if none). */
const char* machnet_last_error(void);

/* The engine's IPv4 address (host byte order), 0 before machnet_init(). */
uint32_t machnet_local_ip(void);

/* A channel for the calling thread, or NULL with errno set. */
machnet_channel_t* machnet_attach(void);

/* Closes the channel's flows gracefully (queued messages, then FIN), removes
 * its listeners, drives the engine up to native.linger_ms so those closes
 * complete, and frees the channel. */
int machnet_detach(machnet_channel_t* ch);

/* Bounds blocking calls on the channel: after timeout_ms they fail with
 * EAGAIN. -1 (the default): wait forever. */
int machnet_set_timeout(machnet_channel_t* ch, int timeout_ms);

/* Accepts flows to local_ip:local_port (local_ip NULL or "0.0.0.0": the
 * engine's address); they are delivered through machnet_recv(). */
int machnet_listen(machnet_channel_t* ch, const char* local_ip, uint16_t local_port);
int machnet_unlisten(machnet_channel_t* ch, uint16_t local_port);

/* Connects from an ephemeral port of local_ip (NULL: the engine's) and waits
 * for the handshake, at most timeout_ms (-1: the transport's own bound). On
 * success fills *flow. */
int machnet_connect(machnet_channel_t* ch, const char* local_ip, const char* remote_ip,
                    uint16_t remote_port, machnet_flow_t* flow, int timeout_ms);

/* Starts connecting and returns 0 at once with *flow filled; messages sent
 * before the handshake completes are queued. machnet_connect_check() tells
 * how it went. */
int machnet_connect_nb(machnet_channel_t* ch, const char* local_ip, const char* remote_ip,
                       uint16_t remote_port, machnet_flow_t* flow);

/* 0 when connected, -1 with EINPROGRESS while the handshake runs, -1 with the
 * flow's error (ECONNREFUSED, ETIMEDOUT, ...) when it failed. */
int machnet_connect_check(machnet_channel_t* ch, const machnet_flow_t* flow);

/* Queues one message of len bytes (whole or not at all). Blocks while the
 * send buffer is full unless MACHNET_DONTWAIT. Returns 0 or -1. */
int machnet_send(machnet_channel_t* ch, const machnet_flow_t* flow, const void* buf, size_t len,
                 int flags);

/* Same; the message is the concatenation of iov[0..iovcnt). */
int machnet_sendmsg(machnet_channel_t* ch, const machnet_flow_t* flow, const struct iovec* iov,
                    int iovcnt, int flags);

/* Receives the next message from any flow of the channel into buf and sets
 * *flow (if not NULL) to its flow. Returns the message length; 0 when that
 * flow's peer closed it (reported once); -1 with errno: EAGAIN (nothing, with
 * MACHNET_DONTWAIT or after the channel timeout), EMSGSIZE (message longer
 * than len: it stays queued), or the flow's error (ECONNRESET, ETIMEDOUT, ...,
 * reported once, *flow says which). Blocks unless MACHNET_DONTWAIT. */
ssize_t machnet_recv(machnet_channel_t* ch, void* buf, size_t len, machnet_flow_t* flow, int flags);

/* Same, scattering the message over iov[0..iovcnt). */
ssize_t machnet_recvmsg(machnet_channel_t* ch, const struct iovec* iov, int iovcnt,
                        machnet_flow_t* flow, int flags);

/* Graceful close: queued messages are delivered, then FIN. The handle is
 * invalid afterwards. machnet_abort(): reset (RST), queued data dropped. */
int machnet_close(machnet_channel_t* ch, const machnet_flow_t* flow);
int machnet_abort(machnet_channel_t* ch, const machnet_flow_t* flow);

int machnet_flow_info(machnet_channel_t* ch, const machnet_flow_t* flow, machnet_flow_info_t* info);

/* Drives the engine and the transport once (never blocks). Returns the
 * number of datagrams processed, or -1. */
int machnet_progress(void);

/* Engine and transport counters, human readable. */
void machnet_print_stats(FILE* out);

#ifdef __cplusplus
}
#endif

#endif /* MACHNET_MACHNET_H_ */
