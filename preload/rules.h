/* Offload rules and the few configuration keys the preload shim reads itself
 * (the engine keys are read by the socket layer inside libmachnet.so, from
 * the same file). Plain C, no allocation after loading: the shim must not
 * pull libstdc++ into every preloaded program. Format: machnet.conf(5). */
#ifndef MACHNET_PRELOAD_RULES_H
#define MACHNET_PRELOAD_RULES_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define MN_MAX_RULES 64

enum mn_action { MN_KERNEL = 0, MN_OFFLOAD = 1 };
/* machnetd = auto|on|off: whether the engine looks for the daemon. */
enum mn_machnetd { MN_MACHNETD_AUTO = 0, MN_MACHNETD_ON = 1, MN_MACHNETD_OFF = 2 };
enum mn_role { MN_ROLE_ANY = 0, MN_ROLE_BIND = 1, MN_ROLE_CONNECT = 2 };

struct mn_rule {
  long num; /* rules.NUM: evaluation order */
  int action;
  int role;
  uint32_t addr, mask; /* host order; mask 0 = any address */
  uint16_t port_lo, port_hi;
};

struct mn_config {
  char path[PATH_MAX]; /* "" when no file is used */
  char library[PATH_MAX];
  uint32_t engine_ip;        /* host order, 0 = not configured (machnetd may tell it) */
  int have_device;           /* a device key is set: a standalone engine can start */
  int machnetd;              /* enum mn_machnetd */
  char machnetd_socket[108]; /* machnetd.socket: the daemon's control socket */
  int strict;
  int default_action;
  int keep_dns;
  int nrules;
  struct mn_rule rules[MN_MAX_RULES];
};

/* Loads MACHNET_CONFIG (or /etc/machnet/machnet.conf when that exists) and
 * the MACHNET_* variables. Returns 0, or -1 with err = "file:line: why". */
int mn_config_load(struct mn_config* c, const char* default_library, char* err, size_t errlen);

/* First match wins: built-in rules (loopback, broadcast/multicast, an
 * explicit kernel address, DNS), then rules.N in ascending N, then
 * rules.default. addr/port in host order; *why names the deciding rule. */
int mn_decide(const struct mn_config* c, int role, uint32_t addr, uint16_t port, const char** why);

/* One line describing the rules, for the start-up log. */
void mn_rules_describe(const struct mn_config* c, char* out, size_t len);

#endif
