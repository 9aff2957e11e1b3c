/* Offload rules and the few configuration keys the preload shim reads itself.
 * The whole file is checked here, every section and every key (common/conf.h,
 * the same grammar and schema the engine uses), so a bad file is reported when
 * the shim loads it, not at the first offload. Plain C, no allocation after
 * loading: the shim must not pull libstdc++ into every preloaded program.
 * Format: machnet.conf(5). */
#ifndef MACHNET_PRELOAD_RULES_H
#define MACHNET_PRELOAD_RULES_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* enum mn_action, mn_role, mn_machnetd and struct mn_rule: common/conf.h */
#define MN_MAX_RULES MN_CONF_MAX_RULES

struct mn_config {
  char path[PATH_MAX]; /* "" when no file is used */
  char library[PATH_MAX];
  uint32_t engine_ip;        /* host order, 0 = not configured (machnetd may tell it) */
  int have_device;           /* a device key is set: a standalone engine can start */
  int machnetd;              /* enum mn_machnetd */
  char machnetd_socket[108]; /* machnetd.socket: the daemon's control socket */
  int strict;
  int log_level; /* log_level: 1 (emergency) to 8 (debug), the schema's default
                  * unless set (PATTERN:LEVEL sets DPDK's components only) */
  int default_action;
  int keep_dns;
  int nrules;
  struct mn_rule rules[MN_MAX_RULES];
};

/* Loads MACHNET_CONFIG (or /etc/machnet/machnet.conf when that exists) and
 * the MACHNET_* variables, and checks all of it. Returns 0, or -1 with
 * err = "file:line: why" (or "env MACHNET_X: why"). */
int mn_config_load(struct mn_config* c, const char* default_library, char* err, size_t errlen);

/* The same from `text` as the contents of `path`, without the environment
 * (tests and the fuzzer). */
int mn_config_parse(struct mn_config* c, const char* default_library, const char* text, size_t len,
                    const char* path, char* err, size_t errlen);

/* First match wins: built-in rules (loopback, broadcast/multicast, an
 * explicit kernel address, DNS), then rules.N in ascending N, then
 * rules.default. addr/port in host order; *why names the deciding rule. */
int mn_decide(const struct mn_config* c, int role, uint32_t addr, uint16_t port, const char** why);
/* The same for a socket of protocol proto (MN_PROTO_UDP, MN_PROTO_TCP: a
 * stream socket's listen is role MN_ROLE_BIND). mn_decide is UDP's. */
int mn_decide_proto(const struct mn_config* c, int proto, int role, uint32_t addr, uint16_t port,
                    const char** why);

/* One line describing the rules, for the start-up log. */
void mn_rules_describe(const struct mn_config* c, char* out, size_t len);

#ifdef __cplusplus
}
#endif

#endif
