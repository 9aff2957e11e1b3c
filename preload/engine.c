/* The engine loader: configuration, machnetd discovery, dlopen of
 * libmachnet.so and its entry table, and the offload decision.
 *
 * The configuration is read by the library constructor, so a bad
 * machnet.conf is reported once, at start, naming file:line; the process
 * then offloads nothing, or, in strict mode (MACHNET_STRICT), exits with
 * status 78 (EX_CONFIG) before main. A socket is decided at bind, connect or
 * its first send, from the rules (rules.c); the first offload dlopen()s
 * libmachnet.so and takes its entry table (src/socket/socket_ops.h), which
 * starts the engine. */
#include "shim.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "ipc/control_protocol.h"

#ifndef MACHNET_DEFAULT_LIBRARY
#define MACHNET_DEFAULT_LIBRARY "libmachnet.so.0"
#endif

pthread_mutex_t g_decide_mu = PTHREAD_MUTEX_INITIALIZER;
struct mn_config g_cfg;
int g_cfg_state;
const struct machnet_socket_ops_v1* g_ops;
int g_engine_err;
_Atomic int g_forked_child;
int g_engine_up;
int g_engine_starting;
int g_daemon_state;

/* ---- configuration -------------------------------------------------------- */

/* MACHNET_STRICT as the rules parser reads it: the file cannot be trusted
 * for it when it is the file that is bad. */
static int strict_from_env(void) {
  const char* v = getenv("MACHNET_STRICT");
  int on = 0;
  return v != NULL && mn_conf_bool(v, &on) == 0 && on;
}

/* g_decide_mu held. */
int config_ready(void) {
  if (g_cfg_state == 0) {
    char err[600];
    int rc = mn_config_load(&g_cfg, MACHNET_DEFAULT_LIBRARY, err, sizeof(err));
    if (rc == 0) log_configure(g_cfg.log_level);
    if (rc != 0) {
      g_cfg_state = -1;
      if (strict_from_env()) {
        LOG(LOG_ERROR, "%s; strict mode (MACHNET_STRICT): exiting", err);
        _exit(EX_CONFIG);
      }
      LOG(LOG_ERROR, "%s; nothing is offloaded", err);
    } else {
      g_cfg_state = 1;
    }
  }
  return g_cfg_state == 1;
}

/* Is there any configuration to read? A process with no MACHNET_CONFIG, no
 * default file and no MACHNET_ variable has nothing that can be wrong, and
 * does not pay for loading it until its first UDP decision (most preloaded
 * processes never make one: shells, helpers). */
static int config_present(void) {
  extern char** environ;
  for (char** e = environ; e != NULL && *e != NULL; e++)
    if (strncmp(*e, "MACHNET_", 8) == 0) return 1;
  return access("/etc/machnet/machnet.conf", F_OK) == 0;
}

void config_at_start(void) {
  if (!config_present()) return;
  shim_lock(&g_decide_mu);
  config_ready();
  shim_unlock(&g_decide_mu);
}

/* ---- machnetd discovery -----------------------------------------------------
 * With machnetd the device and the address are the daemon's: when no ip is
 * configured, the shim asks the daemon once (MN_CTL_INFO, no lease), at the
 * first decision that needs the address. The engine attaches by itself. */
#define MACHNETD_INFO_TIMEOUT_MS 300

static char g_daemon_why[200];
static struct mn_ctl_info_reply g_daemon_info;

/* One INFO request on a fresh close-on-exec SOCK_SEQPACKET socket. Returns 0
 * or -1 with why filled. Only real libc functions (g_guard held anyway). */
static int machnetd_info(const char* path, struct mn_ctl_info_reply* out, char* why,
                         size_t whylen) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof(sa.sun_path)) {
    snprintf(why, whylen, "bad socket path");
    return -1;
  }
  memcpy(sa.sun_path, path, n);
  int fd = REAL(socket)(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(why, whylen, "socket: %s", strerror(errno));
    return -1;
  }
  int rc = -1;
  struct mn_ctl_header req = {MN_CTL_MAGIC, MN_CTL_VERSION, MN_CTL_INFO, 1, 0};
  if (REAL(connect)(fd, (const struct sockaddr*)&sa, sizeof(sa)) != 0) {
    snprintf(why, whylen, "%s", strerror(errno));
    goto out;
  }
  ssize_t w;
  do {
    w = REAL(send)(fd, &req, sizeof(req), MSG_NOSIGNAL);
  } while (w < 0 && errno == EINTR);
  if (w != (ssize_t)sizeof(req)) {
    snprintf(why, whylen, "send: %s", w < 0 ? strerror(errno) : "short");
    goto out;
  }
  int64_t t0 = mono_ns();
  for (;;) {
    long spent = (long)((mono_ns() - t0) / 1000000);
    if (spent >= MACHNETD_INFO_TIMEOUT_MS) {
      snprintf(why, whylen, "no answer within %d ms", MACHNETD_INFO_TIMEOUT_MS);
      goto out;
    }
    struct pollfd p = {fd, POLLIN, 0};
    int r = REAL(poll)(&p, 1, (int)(MACHNETD_INFO_TIMEOUT_MS - spent));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      snprintf(why, whylen, "poll: %s", strerror(errno));
      goto out;
    }
    if (r > 0) break;
  }
  struct mn_ctl_info_reply rep;
  ssize_t got;
  do {
    got = REAL(recv)(fd, &rep, sizeof(rep), MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < (ssize_t)sizeof(struct mn_ctl_header) || rep.h.magic != MN_CTL_MAGIC ||
      rep.h.type != MN_CTL_INFO || rep.h.seq != 1) {
    snprintf(why, whylen, "%s", got < 0 ? strerror(errno) : got == 0 ? "closed" : "bad reply");
    goto out;
  }
  if (rep.h.status != 0) {
    snprintf(why, whylen, "INFO: %s", strerror(rep.h.status < 0 ? -rep.h.status : EPROTO));
    goto out;
  }
  if (got < (ssize_t)sizeof(rep) || rep.ip == 0) {
    snprintf(why, whylen, "short INFO reply");
    goto out;
  }
  *out = rep;
  rc = 0;
out:
  REAL(close)(fd);
  return rc;
}

/* g_decide_mu held. Asks machnetd once; 1 when it answered (g_cfg.engine_ip
 * is then known: the configured one, else the daemon's). */
static int ask_machnetd(void) {
  if (g_daemon_state != 0) return g_daemon_state == 1;
  g_daemon_state = -1;
  if (g_cfg.machnetd == MN_MACHNETD_OFF) {
    snprintf(g_daemon_why, sizeof(g_daemon_why), "machnetd = off");
    return 0;
  }
  g_guard++;
  int rc = machnetd_info(g_cfg.machnetd_socket, &g_daemon_info, g_daemon_why, sizeof(g_daemon_why));
  g_guard--;
  if (rc != 0) {
    LOG(LOG_DEBUG, "machnetd not reachable at %s: %s", g_cfg.machnetd_socket, g_daemon_why);
    return 0;
  }
  g_daemon_state = 1;
  if (g_cfg.engine_ip == 0) g_cfg.engine_ip = g_daemon_info.ip;
  return 1;
}

uint32_t engine_ip(void) {
  if (g_cfg.engine_ip == 0 && g_cfg.machnetd != MN_MACHNETD_OFF) ask_machnetd();
  return g_cfg.engine_ip;
}

int may_offload(void) {
  if (g_cfg_state == -1 || g_engine_err != 0 || atomic_load(&g_forked_child)) return 0;
  return g_cfg_state == 0 || (g_cfg.have_device && g_cfg.engine_ip != 0) ||
         (g_cfg.machnetd != MN_MACHNETD_OFF && g_daemon_state != -1);
}

/* ---- the engine ---------------------------------------------------------------- */

static const char* fallback_tail(void) {
  return g_cfg.strict ? "offloaded sockets fail (strict)" : "every socket stays on the kernel";
}

/* g_decide_mu held. Returns 0 when the engine runs, else an errno. */
static int engine_ready(void) {
  if (g_engine_up) return 0;
  if (atomic_load(&g_forked_child)) return ENETDOWN;
  if (g_engine_err) return g_engine_err;
  int level = g_cfg.strict ? LOG_ERROR : LOG_WARNING;
  if ((!g_cfg.have_device || g_cfg.engine_ip == 0) &&
      (g_cfg.machnetd == MN_MACHNETD_OFF || !ask_machnetd())) {
    /* Not worth loading DPDK to learn that: say what is missing. */
    g_engine_err = ENETDOWN;
    char daemon[400];
    if (g_cfg.machnetd == MN_MACHNETD_OFF)
      snprintf(daemon, sizeof(daemon), "machnetd = off");
    else
      snprintf(daemon, sizeof(daemon),
               "machnetd is not reachable at %s (%s; machnetd.socket, MACHNET_MACHNETD_SOCKET)",
               g_cfg.machnetd_socket, g_daemon_why);
    if (g_cfg.path[0])
      LOG(level,
          "no engine: %s, and no standalone engine is configured: set device and ip in %s (or "
          "MACHNET_DEVICE, MACHNET_IP); %s",
          daemon, g_cfg.path, fallback_tail());
    else
      LOG(level,
          "no engine: %s, and no standalone engine is configured: no configuration file "
          "(MACHNET_CONFIG, /etc/machnet/machnet.conf) and no MACHNET_DEVICE, MACHNET_IP; %s",
          daemon, fallback_tail());
    return ENETDOWN;
  }
  char msg[1024] = "";
  /* A fork() child of a process whose engine was starting is a fork child
   * whatever the start's outcome (process.c). */
  g_engine_starting = 1;
  g_guard++;
  // RTLD_GLOBAL puts libmachnet ahead of librte_eal in the global scope, so
  // the PMDs EAL loads later bind to its memif guard (src/engine/memif_guard.h).
  void* lib = dlopen(g_cfg.library, RTLD_NOW | RTLD_GLOBAL);
  machnet_socket_ops_v1_fn fn =
      lib ? (machnet_socket_ops_v1_fn)dlsym(lib, "machnet_socket_ops_v1") : NULL;
  const struct machnet_socket_ops_v1* ops = fn ? fn() : NULL;
  int rc;
  if (lib == NULL) {
    snprintf(msg, sizeof(msg), "dlopen: %s", dlerror());
    rc = ELIBACC;
  } else if (ops == NULL || ops->version != MACHNET_SOCKET_OPS_VERSION ||
             ops->size < sizeof(*ops)) {
    snprintf(msg, sizeof(msg), "%.900s: no matching machnet_socket_ops_v1", g_cfg.library);
    rc = ELIBBAD;
  } else {
    struct machnet_libc libc = {REAL(ppoll), REAL(recvmsg), REAL(sendmsg),
                                (int (*)(int, unsigned long, void*))REAL(ioctl), signal_counts};
    rc = -ops->init(&libc, g_cfg.path, msg, sizeof(msg));
  }
  g_guard--;
  if (rc != 0) {
    g_engine_err = rc;
    LOG(level, "cannot start the engine: %s; %s", msg, fallback_tail());
    return rc;
  }
  g_ops = ops;
  g_engine_up = 1;
  char rules[1024];
  mn_rules_describe(&g_cfg, rules, sizeof(rules));
  LOG(LOG_NOTICE, "offloading UDP and TCP (%s) through %s", rules, msg);
  return 0;
}

/* ---- fork children ----------------------------------------------------------------
 * A fork() child of a process whose engine is attached to machnetd takes its
 * inherited offloaded UDP sockets over on their first use: the socket layer
 * attaches for a lease of the child's own and joins each port as a fork
 * sharer (docs/MACHNETD.md, "Ports shared by fork"). Lazily: a child that
 * execs, or never touches them, pays nothing. Stream listeners are shared
 * the same way ("Listeners shared by fork"); a stream connection is taken
 * over from the parent at its first use here ("Connections across fork").
 * A standalone engine cannot be shared (EBADFD). */
static int g_adopt_err; /* the adoption failed for good: its errno */

int fork_adopt(void) {
  shim_lock(&g_decide_mu);
  int rc = 0;
  if (!atomic_load(&g_forked_child)) goto out; /* another thread did it */
  if (g_adopt_err != 0) {
    rc = g_adopt_err;
    goto out;
  }
  if (!g_engine_up || !SHIM_HAS_OP(fork_adopt)) {
    rc = g_adopt_err = EBADFD;
    goto out;
  }
  /* The handles the child's fds still name. */
  size_t cap = 64, n = 0;
  uint64_t* hs = malloc(cap * sizeof(*hs));
  if (hs == NULL) {
    rc = ENOMEM;
    goto out;
  }
  for (unsigned page = 0; page < FD_MAX / FD_PAGE; page++) {
    struct fd_ent* p = atomic_load(&g_pages[page]);
    if (p == NULL) continue;
    for (unsigned i = 0; i < FD_PAGE; i++) {
      struct fd_ent* e = &p[i];
      if (atomic_load(&e->kind) != KIND_OFFLOAD) continue;
      if (!fork_adoptable(e)) {
        atomic_store(&e->err, EBADFD);
        atomic_store_explicit(&e->kind, KIND_FAILED, memory_order_release);
        continue;
      }
      if (n == cap) {
        uint64_t* more = realloc(hs, 2 * cap * sizeof(*hs));
        if (more == NULL) continue;
        hs = more;
        cap *= 2;
      }
      hs[n++] = atomic_load(&e->handle);
    }
  }
  char msg[1024] = "";
  g_guard++;
  int r = g_ops->fork_adopt(hs, n, msg, sizeof(msg));
  g_guard--;
  free(hs);
  if (r < 0) {
    rc = g_adopt_err = -r;
    if (r != -EBADFD)
      LOG(LOG_ERROR,
          "fork child: cannot take over the offloaded sockets inherited from the parent: %s; they "
          "fail with %s",
          msg, strerror(-r));
    goto out;
  }
  atomic_store(&g_forked_child, 0);
  LOG(LOG_INFO, "fork child: %s", msg);
out:
  shim_unlock(&g_decide_mu);
  return rc;
}

/* ---- the decision ---------------------------------------------------------------- */

/* The twin's local address as the engine sees it (AF_INET; a dual-stack
 * twin's :: is 0.0.0.0, its ::ffff:a.b.c.d is a.b.c.d). */
static int twin_local(int fd, struct fd_ent* e, struct sockaddr_in* out) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (REAL(getsockname)(fd, (struct sockaddr*)&ss, &len) != 0) return -errno;
  if (addr_from_prog(e, (struct sockaddr*)&ss, len, 1, out) != ADDR_V4) return -EAFNOSUPPORT;
  return 0;
}

/* Offloads fd now (g_decide_mu held, fd PENDING, twin bound). Returns 0, or
 * an errno when it cannot (the caller applies strict mode). EADDRINUSE is
 * logged only when log_busy (the caller may still retry). */
static int offload_now(int fd, struct fd_ent* e, int log_busy) {
  int err = engine_ready();
  if (err != 0) return err;
  struct sockaddr_in local;
  int rc = twin_local(fd, e, &local);
  if (rc < 0) return -rc;
  struct shim_sock* sock = sock_new();
  if (sock == NULL) return ENOMEM;
  uint64_t h = 0;
  g_guard++;
  rc = g_ops->udp_open(fd, &local, &h);
  g_guard--;
  if (rc < 0) {
    sock_unref(sock);
    if (rc == -EADDRINUSE && !log_busy) return EADDRINUSE;
    if (rc == -EADDRINUSE)
      LOG(LOG_ERROR,
          "fd %d: UDP port %u is the engine's already (a transport port, or another process's "
          "under machnetd; with SO_REUSEPORT: a group that is full, 8 processes, or of another "
          "uid), and its datagrams go there, not to the kernel: the socket fails "
          "with EADDRINUSE",
          fd, ntohs(local.sin_port));
    else
      LOG(g_cfg.strict ? LOG_ERROR : LOG_WARNING, "fd %d: cannot offload port %u: %s", fd,
          ntohs(local.sin_port), strerror(-rc));
    return -rc;
  }
  /* shutdown(2) before the decision: the engine side gets the bits too. */
  int shut = atomic_load(&e->shut);
  if (shut != 0) {
    g_guard++;
    g_ops->shutdown(h, shut == 3 ? SHUT_RDWR : shut == 1 ? SHUT_RD : SHUT_WR);
    g_guard--;
  }
  atomic_store(&e->handle, h);
  atomic_store(&e->sock, sock);
  atomic_store_explicit(&e->kind, KIND_OFFLOAD, memory_order_release);
  LOG(LOG_INFO, "fd %d: port %u offloaded", fd, ntohs(local.sin_port));
  return 0;
}

/* A rule said offload but it cannot be done: strict mode fails the socket.
 * So does EADDRINUSE in any mode: the engine (this process's, or another
 * one's under machnetd) holds the port and its traffic is steered there, so
 * a kernel socket on it would never receive anything. */
static int offload_failed(struct fd_ent* e, int err) {
  if (g_cfg.strict || err == EADDRINUSE) {
    atomic_store(&e->err, err);
    atomic_store_explicit(&e->kind, KIND_FAILED, memory_order_release);
    return -err;
  }
  atomic_store_explicit(&e->kind, KIND_NONE, memory_order_release);
  return 0;
}

/* A dual-stack candidate that is IPV6_V6ONLY stays on the kernel. */
static int v6only(int fd, struct fd_ent* e) {
  if (!(atomic_load(&e->flags) & FL_INET6)) return 0;
  int v = 0;
  socklen_t len = sizeof(v);
  return REAL(getsockopt)(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len) == 0 && v != 0;
}

/* What UDP and stream decisions share, under g_decide_mu: 1 when the rules
 * offload the socket and the caller goes on, 0 when it is settled (*rc). */
static int rules_verdict(int fd, struct fd_ent* e, int proto, int role, uint32_t addr,
                         uint16_t port, int* rc) {
  *rc = 0;
  if (atomic_load(&e->kind) != KIND_PENDING) {
    *rc = atomic_load(&e->kind) == KIND_OFFLOAD;
    return 0;
  }
  if (!config_ready() || v6only(fd, e)) {
    atomic_store(&e->kind, KIND_NONE);
    return 0;
  }
  /* A bind to a specific address is offloaded only on the engine's. */
  if (role == MN_ROLE_BIND && addr != 0) engine_ip();
  /* An ephemeral UDP bind is decided at connect or the first sendto. */
  if (proto == MN_PROTO_UDP && role == MN_ROLE_BIND && port == 0 &&
      (addr == 0 || addr != g_cfg.engine_ip))
    return 0;
  const char* why;
  if (mn_decide_proto(&g_cfg, proto, role, addr, port, &why) != MN_OFFLOAD) {
    LOG(LOG_INFO, "fd %d: %sstays on the kernel (%s)", fd, proto == MN_PROTO_TCP ? "stream " : "",
        why);
    atomic_store(&e->kind, KIND_NONE);
    return 0;
  }
  if (atomic_load(&g_forked_child)) {
    *rc = offload_failed(e, ENETDOWN);
    return 0;
  }
  return 1;
}

int decide(int fd, struct fd_ent* e, int role, uint32_t addr, uint16_t port) {
  close_deferred();
  shim_lock(&g_decide_mu);
  int rc;
  if (!rules_verdict(fd, e, MN_PROTO_UDP, role, addr, port, &rc)) goto out;
  /* The twin must hold a port before the engine takes the same one. */
  struct sockaddr_in local;
  if (twin_local(fd, e, &local) == 0 && local.sin_port == 0) {
    struct sockaddr_in6 any6 = {.sin6_family = AF_INET6};
    struct sockaddr_in any4 = {.sin_family = AF_INET};
    int r = (atomic_load(&e->flags) & FL_INET6)
                ? REAL(bind)(fd, (struct sockaddr*)&any6, sizeof(any6))
                : REAL(bind)(fd, (struct sockaddr*)&any4, sizeof(any4));
    if (r != 0) {
      rc = offload_failed(e, errno);
      goto out;
    }
  }
  /* At connect or the first sendto the twin's port was picked by the kernel
   * (a port the program chose is decided at bind): no live kernel socket
   * holds it. Under machnetd a process that has just died may still hold it
   * in the daemon until its lease is reclaimed (tens of ms; the daemon's
   * bound is 1 s): wait for that rather than fail a program that never
   * chose the port. */
  int err = offload_now(fd, e, role == MN_ROLE_BIND);
  for (int i = 0; err == EADDRINUSE && role != MN_ROLE_BIND; i++) {
    struct timespec pause = {0, 5 * 1000 * 1000};
    int last = i >= 200;
    if (!last) nanosleep(&pause, NULL);
    err = offload_now(fd, e, last);
    if (last) break;
  }
  rc = err == 0 ? 1 : offload_failed(e, err);
out:
  shim_unlock(&g_decide_mu);
  return rc;
}

int decide_stream(int fd, struct fd_ent* e, int role, uint32_t addr, uint16_t port) {
  close_deferred();
  shim_lock(&g_decide_mu);
  int rc;
  if (rules_verdict(fd, e, MN_PROTO_TCP, role, addr, port, &rc)) {
    int err = engine_ready();
    rc = err == 0 ? 1 : offload_failed(e, err);
  }
  shim_unlock(&g_decide_mu);
  return rc;
}

void unoffload(int fd, struct fd_ent* e) {
  uint64_t h = atomic_exchange(&e->handle, 0);
  struct shim_sock* sock = atomic_exchange(&e->sock, NULL);
  atomic_store_explicit(&e->kind, KIND_NONE, memory_order_release);
  if (h != 0) {
    g_guard++;
    g_ops->close(h);
    g_guard--;
  }
  if (sock != NULL) sock_unref(sock);
  LOG(LOG_INFO, "fd %d: back to the kernel (native IPv6 peer)", fd);
}
