/* Offload rules: see rules.h and machnet.conf(5). */
#define _GNU_SOURCE
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char** environ;

#define DEFAULT_CONFIG "/etc/machnet/machnet.conf"

/* Fills the field of `key` from a checked value; 0, or -1 with why. */
static int take_one(struct mn_config* c, const char* key, const char* v, char* why, size_t n) {
  const struct mn_conf_key* k = mn_conf_lookup(key);
  uint8_t plen;
  int rc = 0;
  if (!strcmp(key, "strict")) {
    rc = mn_conf_bool(v, &c->strict);
  } else if (!strcmp(key, "log_level")) {
    int level = 0;
    rc = mn_conf_log_level(v, &level);
    if (level > 0) c->log_level = level; /* PATTERN:LEVEL: DPDK's components only */
  } else if (!strcmp(key, "library")) {
    snprintf(c->library, sizeof(c->library), "%s", v);
  } else if (!strcmp(key, "device")) {
    c->have_device = v[0] != '\0';
  } else if (!strcmp(key, "machnetd")) {
    rc = mn_conf_word(k, v, &c->machnetd);
  } else if (!strcmp(key, "machnetd.socket")) {
    snprintf(c->machnetd_socket, sizeof(c->machnetd_socket), "%s", v);
  } else if (!strcmp(key, "ip")) {
    rc = mn_conf_ip_prefix(v, &c->engine_ip, &plen, why, n);
  } else if (!strcmp(key, "rules.default")) {
    rc = mn_conf_word(k, v, &c->default_action);
  } else if (!strcmp(key, "rules.keep_dns")) {
    rc = mn_conf_bool(v, &c->keep_dns);
  } else if (mn_conf_rule_number(key) >= 0) {
    if (c->nrules == MN_MAX_RULES) {
      rc = -1;
    } else {
      struct mn_rule* r = &c->rules[c->nrules];
      rc = mn_conf_rule(v, r, why, n);
      r->num = mn_conf_rule_number(key);
      c->nrules += rc == 0;
    }
  }
  return rc;
}

/* Fills c from checked entries (every value is valid by now). */
static int take(struct mn_config* c, const struct mn_conf* conf, char* err, size_t errlen) {
  for (size_t i = 0; i < conf->n; i++) {
    char why[300] = "";
    if (take_one(c, conf->v[i].key, conf->v[i].value, why, sizeof(why)) != 0) {
      /* the schema let through what the shim cannot take */
      snprintf(err, errlen, "%s: %s: %s", conf->v[i].origin, conf->v[i].key,
               why[0] ? why : "not usable here");
      return -1;
    }
  }
  return 0;
}

static int cmp_rule(const void* a, const void* b) {
  long x = ((const struct mn_rule*)a)->num, y = ((const struct mn_rule*)b)->num;
  return x < y ? -1 : x > y;
}

/* Every field the shim reads at the schema's default (common/conf_schema.c),
 * the one place defaults are written, as if a file said them. */
static void defaults(struct mn_config* c, const char* default_library) {
  static const char* const kKeys[] = {"strict",          "log_level",     "machnetd",
                                      "machnetd.socket", "rules.default", "rules.keep_dns"};
  memset(c, 0, sizeof(*c));
  snprintf(c->library, sizeof(c->library), "%s", default_library);
  for (size_t i = 0; i < sizeof(kKeys) / sizeof(kKeys[0]); i++) {
    char why[8];
    take_one(c, kKeys[i], mn_conf_lookup(kKeys[i])->def, why, sizeof(why));
  }
}

/* The checks every reader makes, then the shim's own fields. */
static int finish(struct mn_config* c, struct mn_conf* conf, int rc, char* err, size_t errlen) {
  if (rc == 0) rc = mn_conf_check_relations(conf, err, errlen);
  if (rc == 0) rc = take(c, conf, err, errlen);
  if (rc == 0) qsort(c->rules, (size_t)c->nrules, sizeof(c->rules[0]), cmp_rule);
  mn_conf_free(conf);
  return rc;
}

int mn_config_parse(struct mn_config* c, const char* default_library, const char* text, size_t len,
                    const char* path, char* err, size_t errlen) {
  defaults(c, default_library);
  snprintf(c->path, sizeof(c->path), "%s", path);
  struct mn_conf conf = MN_CONF_INIT;
  int rc = mn_conf_parse(&conf, text, len, path, MN_CONF_CHECK, err, errlen);
  return finish(c, &conf, rc, err, errlen);
}

int mn_config_load(struct mn_config* c, const char* default_library, char* err, size_t errlen) {
  defaults(c, default_library);
  const char* path = getenv("MACHNET_CONFIG");
  if (path != NULL && path[0] != '\0') {
    snprintf(c->path, sizeof(c->path), "%s", path);
  } else if (access(DEFAULT_CONFIG, R_OK) == 0) {
    snprintf(c->path, sizeof(c->path), "%s", DEFAULT_CONFIG);
  }
  struct mn_conf conf = MN_CONF_INIT;
  int rc = c->path[0] ? mn_conf_load_file(&conf, c->path, MN_CONF_CHECK, err, errlen) : 0;
  /* MACHNET_* variables win over the file, as for every machnet key. */
  if (rc == 0) rc = mn_conf_apply_env(&conf, environ, MN_CONF_CHECK, err, errlen);
  return finish(c, &conf, rc, err, errlen);
}

int mn_decide(const struct mn_config* c, int role, uint32_t addr, uint16_t port, const char** why) {
  return mn_decide_proto(c, MN_PROTO_UDP, role, addr, port, why);
}

int mn_decide_proto(const struct mn_config* c, int proto, int role, uint32_t addr, uint16_t port,
                    const char** why) {
  if ((addr >> 24) == 127) {
    *why = "loopback";
    return MN_KERNEL;
  }
  if (role == MN_ROLE_CONNECT && (addr == 0 || addr == 0xffffffffu || (addr >> 28) == 0xe)) {
    *why = "broadcast/multicast";
    return MN_KERNEL;
  }
  if (role == MN_ROLE_CONNECT && port == 0) {
    /* connect() to port 0 only probes a route (source address selection):
     * not worth starting an engine for. */
    *why = "port 0";
    return MN_KERNEL;
  }
  if (role == MN_ROLE_BIND && addr != 0 && addr != c->engine_ip) {
    *why = "bound to a kernel address";
    return MN_KERNEL;
  }
  if (c->keep_dns && port == 53) {
    *why = "DNS (rules.keep_dns)";
    return MN_KERNEL;
  }
  for (int i = 0; i < c->nrules; i++) {
    const struct mn_rule* r = &c->rules[i];
    if (r->proto != MN_PROTO_ANY && r->proto != proto) continue;
    if (r->role != MN_ROLE_ANY && r->role != role) continue;
    if ((addr & r->mask) != r->addr) continue;
    if (port < r->port_lo || port > r->port_hi) continue;
    *why = "rule";
    return r->action;
  }
  if (role == MN_ROLE_BIND && addr != 0 && addr == c->engine_ip) {
    *why = "bound to the engine's address";
    return MN_OFFLOAD;
  }
  *why = "rules.default";
  return c->default_action;
}

void mn_rules_describe(const struct mn_config* c, char* out, size_t len) {
  size_t n = (size_t)snprintf(out, len, "%s", c->keep_dns ? "port 53 on the kernel; " : "");
  for (int i = 0; i < c->nrules && n < len; i++) {
    const struct mn_rule* r = &c->rules[i];
    char addr[40] = "";
    if (r->mask != 0) {
      int plen = __builtin_popcount(r->mask);
      snprintf(addr, sizeof(addr), " %u.%u.%u.%u/%d", r->addr >> 24, (r->addr >> 16) & 255,
               (r->addr >> 8) & 255, r->addr & 255, plen);
    }
    char ports[24] = "";
    if (r->port_lo != 0 || r->port_hi != 65535)
      snprintf(ports, sizeof(ports), " port %u-%u", r->port_lo, r->port_hi);
    n += (size_t)snprintf(out + n, len - n, "rules.%ld: %s %s%s%s%s; ", r->num,
                          r->action ? "offload" : "kernel",
                          r->proto == MN_PROTO_UDP   ? "udp"
                          : r->proto == MN_PROTO_TCP ? "tcp"
                                                     : "udp/tcp",
                          r->role == MN_ROLE_BIND      ? " bind"
                          : r->role == MN_ROLE_CONNECT ? " connect"
                                                       : "",
                          addr, ports);
  }
  if (n < len) snprintf(out + n, len - n, "default %s", c->default_action ? "offload" : "kernel");
}
