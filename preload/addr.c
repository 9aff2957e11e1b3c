/* The program's socket addresses and the socket layer's. The socket layer
 * speaks struct sockaddr_in; a dual-stack AF_INET6 socket (IPV6_V6ONLY off)
 * talks to IPv4 peers as ::ffff:a.b.c.d, so the shim translates both ways:
 * what the program passes in (bind, connect, sendto, sendmsg) and what it
 * gets back (recvfrom, recvmsg, getsockname, getpeername: sockaddr_in6 with
 * its length). Native IPv6 addresses are the kernel's. */
#include "shim.h"

#include <string.h>

static int v4_mapped(const struct in6_addr* a) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(a->s6_addr, prefix, sizeof(prefix)) == 0;
}

int addr_from_prog(const struct fd_ent* e, const struct sockaddr* a, socklen_t len, int any_ok,
                   struct sockaddr_in* out) {
  if (a == NULL || len < sizeof(sa_family_t)) return ADDR_BAD;
  if (a->sa_family == AF_UNSPEC) return ADDR_UNSPEC;
  memset(out, 0, sizeof(*out));
  out->sin_family = AF_INET;
  if (a->sa_family == AF_INET) {
    if (len < sizeof(struct sockaddr_in)) return ADDR_BAD;
    const struct sockaddr_in* in = (const struct sockaddr_in*)a;
    out->sin_port = in->sin_port;
    out->sin_addr = in->sin_addr;
    return ADDR_V4;
  }
  if (a->sa_family != AF_INET6 || !(atomic_load(&e->flags) & FL_INET6)) return ADDR_BAD;
  /* 24 bytes (RFC 2133, no scope id) is what the kernel accepts. */
  if (len < 24) return ADDR_BAD;
  const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)a;
  out->sin_port = in6->sin6_port;
  if (v4_mapped(&in6->sin6_addr)) {
    memcpy(&out->sin_addr.s_addr, &in6->sin6_addr.s6_addr[12], 4);
    return ADDR_V4;
  }
  if (any_ok && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) return ADDR_V4; /* 0.0.0.0 */
  return ADDR_KERNEL;
}

/* The v4-mapped form of a (0.0.0.0 is ::, as the kernel reports an unbound
 * or wildcard dual-stack socket). */
static void to_v6(const struct sockaddr_in* a, struct sockaddr_in6* o) {
  memset(o, 0, sizeof(*o));
  o->sin6_family = AF_INET6;
  o->sin6_port = a->sin_port;
  if (a->sin_addr.s_addr != 0) {
    o->sin6_addr.s6_addr[10] = 0xff;
    o->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&o->sin6_addr.s6_addr[12], &a->sin_addr.s_addr, 4);
  }
}

void addr_to_prog(const struct fd_ent* e, const struct sockaddr_in* a, struct sockaddr* out,
                  socklen_t* len) {
  struct sockaddr_in6 v6;
  const void* src = a;
  socklen_t full = sizeof(*a);
  if (atomic_load(&e->flags) & FL_INET6) {
    to_v6(a, &v6);
    src = &v6;
    full = sizeof(v6);
  }
  socklen_t n = *len < full ? *len : full;
  memcpy(out, src, n);
  *len = full;
}

void addr_name_out(const struct fd_ent* e, const struct sockaddr_storage* name, socklen_t namelen,
                   struct msghdr* m, void* prog_name, socklen_t prog_len) {
  m->msg_name = prog_name;
  if (prog_name == NULL) {
    m->msg_namelen = 0;
    return;
  }
  if (namelen == 0) {
    m->msg_namelen = 0;
    return;
  }
  if (name->ss_family == AF_INET) {
    socklen_t len = prog_len;
    addr_to_prog(e, (const struct sockaddr_in*)name, prog_name, &len);
    m->msg_namelen = len;
    return;
  }
  /* Through the twin: already the socket's own family. */
  memcpy(prog_name, name, prog_len < namelen ? prog_len : namelen);
  m->msg_namelen = namelen;
}
