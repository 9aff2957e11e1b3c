/* Offload rules: see rules.h and machnet.conf(5). */
#define _GNU_SOURCE
#include "rules.h"

#include "machnetd/control_protocol.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char** environ;

#define DEFAULT_CONFIG "/etc/machnet/machnet.conf"

static char* trim(char* s) {
  while (isspace((unsigned char)*s)) s++;
  char* e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  return s;
}

static int parse_ipv4(const char* s, uint32_t* out) {
  unsigned a, b, c, d;
  char tail;
  if (sscanf(s, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a > 255 || b > 255 || c > 255 ||
      d > 255)
    return -1;
  *out = (a << 24) | (b << 16) | (c << 8) | d;
  return 0;
}

static int parse_bool(const char* v, int* out) {
  if (!strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on")) {
    *out = 1;
  } else if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off")) {
    *out = 0;
  } else {
    return -1;
  }
  return 0;
}

static int parse_action(const char* v, int* out) {
  if (!strcmp(v, "offload")) {
    *out = MN_OFFLOAD;
  } else if (!strcmp(v, "kernel")) {
    *out = MN_KERNEL;
  } else {
    return -1;
  }
  return 0;
}

static int parse_port(const char* s, uint16_t* out) {
  char* end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (end == s || errno != 0 || v > 65535) return -1;
  *out = (uint16_t)v;
  return (int)(end - s);
}

/* "ACTION [udp] [bind|connect|any] [ADDR[/LEN]] [port LO[-HI]]" */
static int parse_rule(char* v, struct mn_rule* r, char* why, size_t whylen) {
  memset(r, 0, sizeof(*r));
  r->port_hi = 65535;
  char* save = NULL;
  char* tok = strtok_r(v, " \t", &save);
  if (tok == NULL || parse_action(tok, &r->action) != 0) {
    snprintf(why, whylen, "a rule starts with 'offload' or 'kernel', got '%s'", tok ? tok : "");
    return -1;
  }
  while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
    if (!strcmp(tok, "udp") || !strcmp(tok, "*") || !strcmp(tok, "all")) continue;
    if (!strcmp(tok, "tcp") || !strcmp(tok, "stream")) {
      snprintf(why, whylen, "only udp rules are supported in this version");
      return -1;
    }
    if (!strcmp(tok, "bind")) {
      r->role = MN_ROLE_BIND;
    } else if (!strcmp(tok, "connect")) {
      r->role = MN_ROLE_CONNECT;
    } else if (!strcmp(tok, "any")) {
      r->role = MN_ROLE_ANY;
    } else if (!strcmp(tok, "port")) {
      char* p = strtok_r(NULL, " \t", &save);
      int n = p ? parse_port(p, &r->port_lo) : -1;
      if (n < 0) {
        snprintf(why, whylen, "'port' needs N or LO-HI");
        return -1;
      }
      r->port_hi = r->port_lo;
      if (p[n] == '-') {
        int m = parse_port(p + n + 1, &r->port_hi);
        if (m < 0 || p[n + 1 + m] != '\0' || r->port_hi < r->port_lo) {
          snprintf(why, whylen, "bad port range '%s'", p);
          return -1;
        }
      } else if (p[n] != '\0') {
        snprintf(why, whylen, "bad port '%s'", p);
        return -1;
      }
    } else if (isdigit((unsigned char)tok[0])) {
      unsigned long len = 32;
      char* slash = strchr(tok, '/');
      if (slash != NULL) {
        char* end;
        *slash = '\0';
        len = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || end == slash + 1 || len > 32) {
          snprintf(why, whylen, "bad prefix length in '%s/%s'", tok, slash + 1);
          return -1;
        }
      }
      if (parse_ipv4(tok, &r->addr) != 0) {
        snprintf(why, whylen, "bad IPv4 address '%s'", tok);
        return -1;
      }
      r->mask = len == 0 ? 0 : ~(uint32_t)0 << (32 - len);
      r->addr &= r->mask;
    } else {
      snprintf(why, whylen, "unexpected '%s' (expected udp, bind, connect, ADDR[/LEN], port N[-M])",
               tok);
      return -1;
    }
  }
  return 0;
}

/* One key = value from the file or the environment. */
static int apply(struct mn_config* c, const char* key, char* value, const char* origin, char* err,
                 size_t errlen) {
  char why[200];
  if (!strcmp(key, "strict")) {
    if (parse_bool(value, &c->strict) == 0) return 0;
    snprintf(why, sizeof(why), "expected yes/no, got '%s'", value);
  } else if (!strcmp(key, "library")) {
    snprintf(c->library, sizeof(c->library), "%s", value);
    return 0;
  } else if (!strcmp(key, "device")) {
    c->have_device = value[0] != '\0';
    return 0;
  } else if (!strcmp(key, "machnetd")) {
    int on;
    if (!strcmp(value, "auto")) {
      c->machnetd = MN_MACHNETD_AUTO;
      return 0;
    }
    if (parse_bool(value, &on) == 0) {
      c->machnetd = on ? MN_MACHNETD_ON : MN_MACHNETD_OFF;
      return 0;
    }
    snprintf(why, sizeof(why), "expected auto, on or off, got '%s'", value);
  } else if (!strcmp(key, "machnetd.socket")) {
    size_t n = strlen(value);
    if (n > 0 && n < sizeof(c->machnetd_socket)) {
      memcpy(c->machnetd_socket, value, n + 1);
      return 0;
    }
    snprintf(why, sizeof(why), "expected a unix socket path (< %zu bytes), got '%s'",
             sizeof(c->machnetd_socket), value);
  } else if (!strcmp(key, "ip")) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", value);
    char* slash = strchr(buf, '/');
    if (slash) *slash = '\0';
    if (parse_ipv4(buf, &c->engine_ip) == 0) return 0;
    snprintf(why, sizeof(why), "expected an IPv4 address, got '%s'", value);
  } else if (!strcmp(key, "rules.default")) {
    if (parse_action(value, &c->default_action) == 0) return 0;
    snprintf(why, sizeof(why), "expected offload or kernel, got '%s'", value);
  } else if (!strcmp(key, "rules.keep_dns")) {
    if (parse_bool(value, &c->keep_dns) == 0) return 0;
    snprintf(why, sizeof(why), "expected yes/no, got '%s'", value);
  } else if (!strncmp(key, "rules.", 6)) {
    char* end;
    long num = strtol(key + 6, &end, 10);
    if (end == key + 6 || *end != '\0' || num < 0) {
      snprintf(why, sizeof(why), "rules take a number (rules.10 = ...), or are default/keep_dns");
    } else {
      struct mn_rule r;
      if (parse_rule(value, &r, why, sizeof(why)) == 0) {
        r.num = num;
        int i;
        for (i = 0; i < c->nrules && c->rules[i].num != num; i++) {
        }
        if (i == MN_MAX_RULES) {
          snprintf(why, sizeof(why), "more than %d rules", MN_MAX_RULES);
        } else {
          c->rules[i] = r; /* the environment replaces a file rule of the same number */
          if (i == c->nrules) c->nrules++;
          return 0;
        }
      }
    }
  } else {
    return 0; /* an engine or socket key: the socket layer reads and checks it */
  }
  snprintf(err, errlen, "%s: %s: %s", origin, key, why);
  return -1;
}

static int load_file(struct mn_config* c, char* err, size_t errlen) {
  FILE* f = fopen(c->path, "re");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot open: %s", c->path, strerror(errno));
    return -1;
  }
  char line[1024], section[128] = "", origin[PATH_MAX + 32];
  int lineno = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
    lineno++;
    snprintf(origin, sizeof(origin), "%s:%d", c->path, lineno);
    char* hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char* s = trim(line);
    if (*s == '\0') continue;
    if (*s == '[') {
      size_t n = strlen(s);
      if (s[n - 1] != ']') {
        snprintf(err, errlen, "%s: unterminated section header '%s'", origin, s);
        rc = -1;
        break;
      }
      s[n - 1] = '\0';
      snprintf(section, sizeof(section), "%s", trim(s + 1));
      continue;
    }
    char* eq = strchr(s, '=');
    if (eq == NULL) {
      snprintf(err, errlen, "%s: expected 'key = value', got '%s'", origin, s);
      rc = -1;
      break;
    }
    *eq = '\0';
    char* key = trim(s);
    char* value = trim(eq + 1);
    size_t vl = strlen(value);
    if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
      value[vl - 1] = '\0';
      value++;
    }
    char full[256];
    if (section[0])
      snprintf(full, sizeof(full), "%s.%s", section, key);
    else
      snprintf(full, sizeof(full), "%s", key);
    rc = apply(c, full, value, origin, err, errlen);
  }
  fclose(f);
  return rc;
}

static int cmp_rule(const void* a, const void* b) {
  long x = ((const struct mn_rule*)a)->num, y = ((const struct mn_rule*)b)->num;
  return x < y ? -1 : x > y;
}

int mn_config_load(struct mn_config* c, const char* default_library, char* err, size_t errlen) {
  memset(c, 0, sizeof(*c));
  c->default_action = MN_OFFLOAD;
  c->keep_dns = 1;
  c->machnetd = MN_MACHNETD_AUTO;
  snprintf(c->machnetd_socket, sizeof(c->machnetd_socket), "%s", MN_CTL_DEFAULT_SOCKET);
  snprintf(c->library, sizeof(c->library), "%s", default_library);
  const char* path = getenv("MACHNET_CONFIG");
  if (path != NULL && path[0] != '\0') {
    snprintf(c->path, sizeof(c->path), "%s", path);
  } else if (access(DEFAULT_CONFIG, R_OK) == 0) {
    snprintf(c->path, sizeof(c->path), "%s", DEFAULT_CONFIG);
  }
  if (c->path[0] && load_file(c, err, errlen) != 0) return -1;
  /* MACHNET_* variables win over the file, as for every machnet key. */
  static const struct {
    const char* env;
    const char* key;
  } fixed[] = {{"MACHNET_STRICT", "strict"},
               {"MACHNET_LIBRARY", "library"},
               {"MACHNET_IP", "ip"},
               {"MACHNET_DEVICE", "device"},
               {"MACHNET_MACHNETD", "machnetd"},
               {"MACHNET_MACHNETD_SOCKET", "machnetd.socket"},
               {"MACHNET_RULES_DEFAULT", "rules.default"},
               {"MACHNET_RULES_KEEP_DNS", "rules.keep_dns"}};
  char buf[1024], origin[128];
  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
    const char* v = getenv(fixed[i].env);
    if (v == NULL) continue;
    snprintf(buf, sizeof(buf), "%s", v);
    snprintf(origin, sizeof(origin), "env %s", fixed[i].env);
    if (apply(c, fixed[i].key, buf, origin, err, errlen) != 0) return -1;
  }
  for (char** e = environ; e && *e; e++) {
    if (strncmp(*e, "MACHNET_RULES_", 14) != 0 || !isdigit((unsigned char)(*e)[14])) continue;
    const char* eq = strchr(*e, '=');
    if (eq == NULL) continue;
    char key[64];
    snprintf(key, sizeof(key), "rules.%.*s", (int)(eq - (*e + 14)), *e + 14);
    snprintf(origin, sizeof(origin), "env %.*s", (int)(eq - *e), *e);
    snprintf(buf, sizeof(buf), "%s", eq + 1);
    if (apply(c, key, buf, origin, err, errlen) != 0) return -1;
  }
  qsort(c->rules, (size_t)c->nrules, sizeof(c->rules[0]), cmp_rule);
  return 0;
}

int mn_decide(const struct mn_config* c, int role, uint32_t addr, uint16_t port, const char** why) {
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
    n += (size_t)snprintf(out + n, len - n, "rules.%ld: %s udp%s%s%s; ", r->num,
                          r->action ? "offload" : "kernel",
                          r->role == MN_ROLE_BIND      ? " bind"
                          : r->role == MN_ROLE_CONNECT ? " connect"
                                                       : "",
                          addr, ports);
  }
  if (n < len) snprintf(out + n, len - n, "default %s", c->default_action ? "offload" : "kernel");
}
