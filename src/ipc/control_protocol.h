/* machnetd control protocol, version 3 (docs/MACHNETD.md describes it in
 * prose). Plain C: the preload shim (C, no libstdc++), the engine, machnetd
 * and machnet-stat all include it.
 *
 * Transport: a unix SOCK_SEQPACKET socket (default /run/machnet/machnetd.sock,
 * key machnetd.socket / MACHNET_MACHNETD_SOCKET). Its file mode decides who may
 * attach; machnetd identifies peers by SO_PEERCRED. One request, one reply,
 * in order; every message starts with mn_ctl_header. A connection that
 * attached owns its lease until it closes: the kernel closing the socket of a
 * killed process is what starts reclaim (a pidfd catches a forked child that
 * inherited the socket). */
#ifndef MACHNET_IPC_CONTROL_PROTOCOL_H
#define MACHNET_IPC_CONTROL_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

/* Compile-time layout checks that read the same in C and C++. */
#ifdef __cplusplus
#define MN_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define MN_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define MN_CTL_MAGIC 0x4d4e4350u /* "MNCP" */
#define MN_CTL_VERSION                                        \
  4 /* 2: BIND flags (MN_CTL_BIND_REUSEPORT); 3: MN_CTL_JOIN; \
       4: stream services (MN_CTL_PROTO_SERVICE), rendezvous port in INFO */
#define MN_CTL_DEFAULT_SOCKET "/run/machnet/machnetd.sock"
#define MN_CTL_MAX_MESSAGE 65536 /* the largest reply (MN_CTL_STATS text) */

enum mn_ctl_type {
  MN_CTL_INFO = 1,   /* who is the host: address, device. No lease. */
  MN_CTL_ATTACH = 2, /* lease a queue pair; reply says how to join as secondary */
  MN_CTL_BIND = 3,   /* claim a UDP port for the caller's lease */
  MN_CTL_UNBIND = 4, /* release it */
  MN_CTL_DETACH = 5, /* give the lease back (closing the socket does too) */
  MN_CTL_STATS = 6,  /* JSON text: leases, ports, counters (machnet-stat) */
  MN_CTL_JOIN = 7    /* share a port an ancestor holds: a socket inherited through fork() */
};

struct mn_ctl_header {
  uint32_t magic;   /* MN_CTL_MAGIC */
  uint16_t version; /* MN_CTL_VERSION; a daemon answers others with -EPROTONOSUPPORT */
  uint16_t type;    /* enum mn_ctl_type; replies echo it */
  uint32_t seq;     /* echoed in the reply */
  int32_t status;   /* replies: 0 or -errno (EADDRINUSE, EAGAIN, EBUSY, EINVAL...) */
};

/* MN_CTL_INFO reply (request: a bare header). */
struct mn_ctl_info_reply {
  struct mn_ctl_header h;
  uint32_t ip; /* host order */
  uint8_t prefix_len;
  uint8_t mac[6];
  uint8_t pad0;
  uint32_t gateway; /* host order, 0 = none */
  uint16_t mtu;
  uint16_t nb_queues; /* queue 0 is the daemon's */
  uint16_t free_leases;
  uint16_t rendezvous_port; /* where this host's stream services get their SYNs */
  int32_t daemon_pid;
  char device[64]; /* e.g. "net_memif0" */
};

/* An ATTACH request may carry one descriptor (SCM_RIGHTS): an eventfd the
 * daemon writes to wake the holder while its lease is parked (shm.h,
 * mn_wake_state). Without it the holder never parks. Descriptors sent with
 * any other message are closed. */
struct mn_ctl_attach_request {
  struct mn_ctl_header h;
  char comm[16]; /* program name for machnet-stat (pid comes from SO_PEERCRED) */
};

struct mn_ctl_attach_reply {
  struct mn_ctl_header h;
  uint16_t queue;    /* the leased RX/TX queue pair; also the lease index */
  uint16_t port_id;  /* DPDK port id in the daemon's EAL */
  uint16_t lcore_id; /* --lcores <lcore_id>@(cpus): unique per lease */
  uint16_t mtu;
  uint64_t owner_id;   /* random; pid + owner_id name the lease holder */
  uint64_t generation; /* leases of this queue so far, this one included */
  uint32_t ip;         /* host order */
  uint32_t gateway;    /* host order, 0 = none */
  uint8_t prefix_len;
  uint8_t mac[6];
  uint8_t pad0;
  char eal_prefix[64]; /* --file-prefix of the daemon's EAL */
  char device[64];     /* ethdev name, rte_eth_dev_get_port_by_name() */
  char shm_name[32];   /* memzone holding struct mn_shm (ipc/shm.h) */
};

/* mn_ctl_bind_request.flags. REUSEPORT: the caller's socket has
 * SO_REUSEPORT; the port may be shared with other leases that bound it with
 * the flag too and whose holder has the same uid (an SO_REUSEPORT group, up
 * to MN_GROUP_MAX_MEMBERS leases; ipc/shm.h). Any other bit: -EINVAL. */
/* BIND, UNBIND and JOIN name a UDP port (proto 17) or a stream service
 * (MN_CTL_PROTO_SERVICE): the TCP-like port a listener accepts connections
 * on, whose SYNs arrive on the host's rendezvous port and which the daemon
 * steers by the service port they carry (docs/MACHNETD.md, "Stream
 * services"). A service is never an ephemeral port (port 0: -EINVAL) and
 * takes no address. */
#define MN_CTL_PROTO_UDP 17
#define MN_CTL_PROTO_SERVICE 6

#define MN_CTL_BIND_REUSEPORT 0x01u
#define MN_CTL_BIND_FLAGS MN_CTL_BIND_REUSEPORT /* every flag this version knows */

struct mn_ctl_bind_request {
  struct mn_ctl_header h;
  uint32_t ip;   /* host order; 0 or the host address */
  uint16_t port; /* 0: the daemon picks an ephemeral port */
  uint8_t proto; /* 17 (UDP) */
  uint8_t flags; /* MN_CTL_BIND_*; others: -EINVAL */
};

/* BIND's errors, as bind(2) gives them: -EADDRINUSE when the port is held
 * by another lease without REUSEPORT on both sides, by a group of another
 * uid, by a full group, or by the caller already; -ENOMEM when every group
 * slot is in use (what the kernel returns when it cannot allocate a
 * reuseport group); -EADDRNOTAVAIL for another address; -EINVAL for a bad
 * protocol or flag. */
struct mn_ctl_bind_reply {
  struct mn_ctl_header h; /* status -EADDRINUSE as bind(2) would */
  uint16_t port;
  /* JOIN of a service: 1 + the index in mn_shm.shared_rings of the ring its
   * SYNs go to, which every holder may read; 0 otherwise. */
  uint16_t shared_ring;
  uint32_t pad1;
};

struct mn_ctl_unbind_request {
  struct mn_ctl_header h;
  uint16_t port;
  uint8_t proto;
  uint8_t pad0;
  uint32_t pad1;
};

/* MN_CTL_JOIN: the caller's lease joins UDP port `port` as a fork sharer:
 * the caller (a fork child) inherited an offloaded socket bound to it. The
 * port must be held by a lease whose process is an ancestor of the caller
 * (its parent chain, /proc/<pid>/stat) and of the same uid; the port then
 * becomes fork-shared (ipc/shm.h mn_port_group.shared): every datagram for
 * it goes to one ring that every holder reads. Reply: mn_ctl_bind_reply.
 * Errors: -EINVAL (no lease, proto != 17, port 0, flags != 0), -EADDRINUSE
 * (the port is free, held by the caller already, by an SO_REUSEPORT group,
 * or by no ancestor of the caller), -EACCES (held by another uid), -ENOMEM
 * (every shared ring in use, or the holders' group full). */
struct mn_ctl_join_request {
  struct mn_ctl_header h;
  uint16_t port;
  uint8_t proto; /* 17 */
  uint8_t flags; /* 0 */
  uint32_t pad1;
};

/* MN_CTL_STATS reply: the header, then NUL-terminated JSON text. */

MN_STATIC_ASSERT(sizeof(struct mn_ctl_header) == 16, "control protocol ABI");
MN_STATIC_ASSERT(offsetof(struct mn_ctl_header, seq) == 8, "control protocol ABI");
MN_STATIC_ASSERT(sizeof(struct mn_ctl_info_reply) == 108, "control protocol ABI");
MN_STATIC_ASSERT(offsetof(struct mn_ctl_info_reply, gateway) == 28, "control protocol ABI");
MN_STATIC_ASSERT(offsetof(struct mn_ctl_info_reply, daemon_pid) == 40, "control protocol ABI");
MN_STATIC_ASSERT(sizeof(struct mn_ctl_attach_request) == 32, "control protocol ABI");
MN_STATIC_ASSERT(sizeof(struct mn_ctl_attach_reply) == 216, "control protocol ABI");
MN_STATIC_ASSERT(offsetof(struct mn_ctl_attach_reply, owner_id) == 24, "control protocol ABI");
MN_STATIC_ASSERT(offsetof(struct mn_ctl_attach_reply, eal_prefix) == 56, "control protocol ABI");
MN_STATIC_ASSERT(offsetof(struct mn_ctl_attach_reply, shm_name) == 184, "control protocol ABI");
MN_STATIC_ASSERT(sizeof(struct mn_ctl_bind_request) == 24, "control protocol ABI");
MN_STATIC_ASSERT(sizeof(struct mn_ctl_bind_reply) == 24, "control protocol ABI");
MN_STATIC_ASSERT(sizeof(struct mn_ctl_unbind_request) == 24, "control protocol ABI");
MN_STATIC_ASSERT(sizeof(struct mn_ctl_join_request) == 24, "control protocol ABI");
MN_STATIC_ASSERT(offsetof(struct mn_ctl_join_request, port) == 16, "control protocol ABI");

#endif
