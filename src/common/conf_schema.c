/* The machnet.conf schema: every key the project reads, with its type, range
 * and default, and the value parsers every reader shares. See conf.h. */
#include <stdio.h>
#include <string.h>

#include "common/conf.h"
#include "ipc/control_protocol.h"
#include "ipc/shm.h"

static const struct mn_conf_word kBoolWords[] = {{"yes", 1}, {"true", 1}, {"on", 1},
                                                 {"1", 1},   {"no", 0},   {"false", 0},
                                                 {"off", 0}, {"0", 0},    {NULL, 0}};
static const struct mn_conf_word kMachnetdWords[] = {
    {"auto", MN_MACHNETD_AUTO}, {"on", MN_MACHNETD_ON},
    {"yes", MN_MACHNETD_ON},    {"true", MN_MACHNETD_ON},
    {"1", MN_MACHNETD_ON},      {"off", MN_MACHNETD_OFF},
    {"no", MN_MACHNETD_OFF},    {"false", MN_MACHNETD_OFF},
    {"0", MN_MACHNETD_OFF},     {NULL, 0}};
static const struct mn_conf_word kActionWords[] = {
    {"offload", MN_OFFLOAD}, {"kernel", MN_KERNEL}, {NULL, 0}};
#define STR(n, lo, hi, d) \
  { n, MN_CONF_STRING, lo, hi, 0, 0, NULL, NULL, d }
#define UINT(n, lo, hi, d) \
  { n, MN_CONF_UINT, lo, hi, 0, 0, NULL, NULL, d }
#define BOOL(n, d) \
  { n, MN_CONF_BOOL, 0, 0, 0, 0, kBoolWords, "yes/no", d }
#define REAL(n, lo, hi, d) \
  { n, MN_CONF_REAL, 0, 0, lo, hi, NULL, NULL, d }
#define WORD(n, w, e, d) \
  { n, MN_CONF_WORD, 0, 0, 0, 0, w, e, d }
#define TYPED(n, t, d) \
  { n, t, 0, 0, 0, 0, NULL, NULL, d }
#define PATH_BYTES 4095

static const struct mn_conf_key kSchema[] = {
    /* the engine (src/engine/engine_config.cc); device, ip, gateway, mtu, mac,
     * log_level and frag.* are machnetd's too (src/engine/host_settings.cc),
     * and log_level the shim's (preload/log.c): one level, one default */
    WORD("machnetd", kMachnetdWords, "auto, on or off", "auto"),
    TYPED("machnetd.socket", MN_CONF_SOCKET_PATH, MN_CTL_DEFAULT_SOCKET),
    STR("device", 0, PATH_BYTES, ""),
    TYPED("ip", MN_CONF_IP_PREFIX, NULL),
    TYPED("gateway", MN_CONF_IPV4, ""),
    UINT("mtu", 576, 9000, "1500"),
    TYPED("mac", MN_CONF_MAC, ""),
    BOOL("hugepages", "yes"),
    TYPED("log_level", MN_CONF_LOG_LEVEL, "notice"),
    STR("eal_args", 0, PATH_BYTES, ""),
    UINT("mbufs", 1023, 1u << 22, "16383"),
    UINT("rx_desc", 64, 16384, "1024"),
    UINT("tx_desc", 64, 16384, "1024"),
    UINT("socket_queue_len", 16, 1u << 20, "1024"),
    UINT("arp.retry_ms", 1, 60000, "100"),
    UINT("arp.max_requests", 1, 100, "5"),
    UINT("arp.reachable_s", 1, 86400, "30"),
    UINT("arp.max_entries", 16, 1u << 20, "1024"),
    UINT("arp.queue_len", 1, 65536, "256"),
    TYPED("arp.static", MN_CONF_NEIGHBOURS, ""),
    UINT("frag.timeout_ms", 10, 60000, "30000"),
    UINT("frag.max_flows", 16, 1u << 20, "4096"),
    UINT("frag.max_mbufs", 64, 1u << 22, "2048"),
    UINT("frag.max_bytes", 65536, 1u << 31, "4194304"),
    STR("xdp_prog", 0, PATH_BYTES, ""),
    BOOL("xdp_shared_ip", "no"),
    REAL("fault.rx_drop", 0.0, 1.0, "0"),
    REAL("fault.tx_drop", 0.0, 1.0, "0"),
    /* how blocked threads wait (src/stack/stack_config.cc) */
    UINT("socket.spin_us", 0, 10000000, "100"),
    UINT("socket.sleep_us", 1, 60000000, "100000"),
    UINT("socket.progress_us", 0, 1000000, "1000"),
    UINT("socket.wake_poll_us", 1, 1000000, "50"),
    BOOL("socket.park", "yes"),
    BOOL("socket.adaptive_spin", "yes"),
    UINT("socket.spinners", 0, 4096, "0"),
    /* the preload shim (preload/rules.c) */
    STR("library", 1, PATH_BYTES, NULL),
    BOOL("strict", "no"),
    WORD("rules.default", kActionWords, "offload or kernel", "offload"),
    BOOL("rules.keep_dns", "yes"),
    TYPED("rules.N", MN_CONF_RULE, NULL),
    /* the transport (src/transport/tunables.h), read by the stack */
    UINT("transport.mtu_payload", 64, 65419, "1400"),
    UINT("transport.max_message_bytes", 1, 1u << 30, "8388608"),
    /* At least the transport's smallest per-flow buffer (4096). */
    UINT("transport.send_buffer_bytes", 4096, 1u << 31, "16777216"),
    UINT("transport.recv_buffer_bytes", 4096, 1u << 31, "16777216"),
    UINT("transport.max_inflight_segments", 4, 1u << 24, "16384"),
    UINT("transport.max_flows", 1, 1u << 24, "65536"),
    UINT("transport.listen_backlog", 1, 1u << 20, "128"),
    UINT("transport.syn_rto_us", 1, 10000000, "5000"),
    UINT("transport.syn_max_retries", 0, 30, "9"),
    UINT("transport.rto_initial_us", 1, 10000000, "5000"),
    UINT("transport.rto_min_us", 1, 10000000, "1000"),
    UINT("transport.rto_max_us", 1, 100000000, "200000"),
    UINT("transport.max_retransmits", 1, 1000, "30"),
    /* at least the 5 us reply grace (Tunables::reply_grace_ns) */
    UINT("transport.delayed_ack_us", 5, 10000000, "25"),
    UINT("transport.ack_every_segments", 1, 1024, "2"),
    UINT("transport.keepalive_idle_ms", 0, 3600000, "1000"),
    UINT("transport.keepalive_interval_ms", 1, 3600000, "1000"),
    UINT("transport.keepalive_probes", 1, 1000, "5"),
    UINT("transport.time_wait_ms", 0, 600000, "10"),
    UINT("transport.initial_cwnd_segments", 1, 1u << 20, "16"),
    BOOL("transport.payload_checksum", "yes"),
    BOOL("transport.cc_slow_start", "yes"),
    UINT("transport.max_half_open", 1, 1u << 20, "1024"),
    UINT("transport.half_open_evict_us", 0, 60000000, "5000"),
    UINT("transport.rendezvous_port", 1, 65535, "14700"),
    UINT("transport.probe_timeout_us", 3, 10000000, "3000"),
    UINT("transport.probe_plain_ttl_ms", 0, 86400000, "10000"),
    UINT("transport.probe_no_service_ttl_ms", 0, 86400000, "1000"),
    /* the native API (src/stack/stack_config.cc) */
    UINT("native.linger_ms", 0, 600000, "500"),
    BOOL("native.progress_thread", "yes"),
    UINT("native.progress_idle_us", 10, 10000000, "1000"),
    /* machnetd (its own file, same grammar and schema) */
    {"machnetd.name", MN_CONF_NAME, 1, 24, 0, 0, NULL, NULL, "default"},
    UINT("machnetd.queues", 1, MN_SHM_MAX_QUEUES, "8"),
    UINT("machnetd.mbufs_per_queue", 255, 1u << 20, "4095"),
    UINT("machnetd.base_virtaddr", 0, 0x7fffffffffffull, "0x600000000000"),
    TYPED("machnetd.socket_mode", MN_CONF_MODE, "0660"),
    STR("machnetd.socket_group", 0, 255, ""),
    UINT("machnetd.idle_sleep_us", 0, 100000, "100"),
    UINT("machnetd.parked_sleep_us", 0, 100000, "50"),
    STR("machnetd.eal_args", 0, PATH_BYTES, ""),
    UINT("machnetd.rx_desc", 32, 8192, "512"),
    UINT("machnetd.tx_desc", 32, 8192, "512"),
    UINT("machnetd.reclaim_grace_ms", 1, 1000, "20"),
    UINT("machnetd.quiesce_timeout_ms", 1, 60000, "2000"),
};

const struct mn_conf_key* mn_conf_schema(size_t* n) {
  *n = sizeof(kSchema) / sizeof(kSchema[0]);
  return kSchema;
}

long mn_conf_rule_number(const char* key) {
  if (strncmp(key, "rules.", 6) != 0) return -1;
  const char* d = key + 6;
  size_t len = strlen(d);
  if (len == 0 || len > 9 || (d[0] == '0' && len > 1)) return -1;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (d[i] < '0' || d[i] > '9') return -1;
    v = v * 10 + (d[i] - '0');
  }
  return v;
}

const struct mn_conf_key* mn_conf_lookup(const char* key) {
  size_t n;
  const struct mn_conf_key* s = mn_conf_schema(&n);
  int rule = mn_conf_rule_number(key) >= 0;
  for (size_t i = 0; i < n; i++) {
    if (rule ? s[i].type == MN_CONF_RULE : strcmp(s[i].name, key) == 0) return &s[i];
  }
  return NULL;
}

void mn_conf_env_name(const char* key, char* out, size_t len) {
  size_t n = (size_t)snprintf(out, len, "MACHNET_");
  for (; *key && n + 1 < len; key++, n++) {
    char c = *key;
    out[n] = (c == '.' || c == '-') ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
  }
  if (n < len) out[n] = '\0';
}

/* ---- value parsers ------------------------------------------------------- */

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

static int hex_digit(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decimal, or hexadecimal after 0x; no sign, no spaces, no overflow. */
static int parse_u64(const char* s, uint64_t* out) {
  uint64_t v = 0;
  int base = 10;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s += 2;
  }
  if (*s == '\0') return -1;
  for (; *s; s++) {
    int d = base == 16 ? hex_digit(*s) : is_digit(*s) ? *s - '0' : -1;
    if (d < 0 || v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return -1;
    v = v * (uint64_t)base + (uint64_t)d;
  }
  *out = v;
  return 0;
}

int mn_conf_uint(const char* s, uint64_t min, uint64_t max, uint64_t* out, char* why, size_t n) {
  uint64_t v;
  if (parse_u64(s, &v) != 0 || v < min || v > max) {
    snprintf(why, n, "expected an integer in [%llu, %llu], got '%s'", (unsigned long long)min,
             (unsigned long long)max, s);
    return -1;
  }
  *out = v;
  return 0;
}

/* DIGITS[.DIGITS] or .DIGITS: no exponent, and no locale (a preloaded
 * program may have set LC_NUMERIC). */
int mn_conf_real(const char* s, double min, double max, double* out, char* why, size_t n) {
  double v = 0, scale = 1;
  int digits = 0, dot = 0;
  const char* p = s;
  for (; *p; p++) {
    if (*p == '.' && !dot) {
      dot = 1;
    } else if (is_digit(*p) && digits < 30) {
      digits++;
      if (dot) {
        scale /= 10;
        v += (*p - '0') * scale;
      } else {
        v = v * 10 + (*p - '0');
      }
    } else {
      break;
    }
  }
  if (*p != '\0' || digits == 0 || !(v >= min && v <= max)) {
    snprintf(why, n, "expected a number in [%g, %g], got '%s'", min, max, s);
    return -1;
  }
  *out = v;
  return 0;
}

int mn_conf_bool(const char* s, int* out) {
  for (const struct mn_conf_word* w = kBoolWords; w->word; w++) {
    if (strcmp(w->word, s) == 0) {
      *out = w->value;
      return 0;
    }
  }
  return -1;
}

int mn_conf_word(const struct mn_conf_key* k, const char* s, int* out) {
  for (const struct mn_conf_word* w = k->words; w && w->word; w++) {
    if (strcmp(w->word, s) == 0) {
      *out = w->value;
      return 0;
    }
  }
  return -1;
}

/* a.b.c.d: four decimal parts of 1 to 3 digits, no leading zero, <= 255. */
static int parse_ipv4_n(const char* s, size_t len, uint32_t* out) {
  uint32_t ip = 0;
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= len || s[i] != '.') return -1;
      i++;
    }
    uint32_t v = 0;
    size_t digits = 0;
    while (i < len && is_digit(s[i])) {
      if (++digits > 3) return -1;
      v = v * 10 + (uint32_t)(s[i] - '0');
      i++;
    }
    if (digits == 0 || v > 255 || (digits > 1 && s[i - digits] == '0')) return -1;
    ip = ip << 8 | v;
  }
  if (i != len) return -1;
  *out = ip;
  return 0;
}

int mn_conf_ipv4(const char* s, uint32_t* out) {
  return parse_ipv4_n(s, strlen(s), out);
}

/* 1 to 2 decimal digits up to max. */
static int parse_small(const char* s, unsigned max, unsigned* out) {
  size_t len = strlen(s);
  if (len == 0 || len > 2 || !is_digit(s[0]) || (len == 2 && !is_digit(s[1]))) return -1;
  unsigned v = (unsigned)(len == 2 ? (s[0] - '0') * 10 + (s[1] - '0') : s[0] - '0');
  if (v > max) return -1;
  *out = v;
  return 0;
}

int mn_conf_ip_prefix(const char* s, uint32_t* ip, uint8_t* len, char* why, size_t n) {
  const char* slash = strchr(s, '/');
  unsigned plen = 24;
  size_t alen = slash ? (size_t)(slash - s) : strlen(s);
  if (slash && (parse_small(slash + 1, 32, &plen) != 0 || plen == 0)) {
    snprintf(why, n, "bad prefix length in '%s'", s);
    return -1;
  }
  uint32_t a;
  if (parse_ipv4_n(s, alen, &a) != 0 || a == 0) {
    snprintf(why, n, "expected an IPv4 address like 10.0.0.1/24, got '%s'", s);
    return -1;
  }
  *ip = a;
  *len = (uint8_t)plen;
  return 0;
}

/* xx:xx:xx:xx:xx:xx or xx-xx-xx-xx-xx-xx */
static int parse_mac_n(const char* s, size_t len, uint8_t mac[6]) {
  if (len != 17 || (s[2] != ':' && s[2] != '-')) return -1;
  uint8_t m[6];
  for (int b = 0; b < 6; b++) {
    int hi = hex_digit(s[b * 3]), lo = hex_digit(s[b * 3 + 1]);
    if (hi < 0 || lo < 0 || (b > 0 && s[b * 3 - 1] != s[2])) return -1;
    m[b] = (uint8_t)(hi << 4 | lo);
  }
  memcpy(mac, m, 6);
  return 0;
}

int mn_conf_mac(const char* s, uint8_t mac[6]) {
  return parse_mac_n(s, strlen(s), mac);
}

int mn_conf_neighbours(const char* s, void (*fn)(void*, uint32_t, const uint8_t[6]), void* user,
                       char* why, size_t n) {
  while (*s) {
    while (*s == ' ' || *s == '\t') s++;
    const char* comma = strchr(s, ',');
    size_t len = comma ? (size_t)(comma - s) : strlen(s);
    const char* next = s + len + (comma != NULL);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    const char* at = memchr(s, '@', len);
    uint32_t ip;
    uint8_t mac[6];
    if (len > 0) {
      if (at == NULL || parse_ipv4_n(s, (size_t)(at - s), &ip) != 0 ||
          parse_mac_n(at + 1, len - (size_t)(at - s) - 1, mac) != 0) {
        snprintf(why, n, "expected ip@mac[,ip@mac...], got '%.*s'", (int)len, s);
        return -1;
      }
      if (fn) fn(user, ip, mac);
    }
    s = next;
  }
  return 0;
}

/* DPDK's --log-level: LEVEL, or PATTERN:LEVEL for some components; LEVEL a
 * name or the start of one (DPDK takes the first that matches, in this
 * order) or a number 1 to 8. */
int mn_conf_log_level(const char* s, int* level) {
  static const char* const names[] = {"emergency", "alert",  "critical", "error",
                                      "warning",   "notice", "info",     "debug"};
  const char* colon = strrchr(s, ':');
  const char* v = colon ? colon + 1 : s;
  if (colon != NULL) {
    if (colon == s) return -1;
    for (const char* p = s; p < colon; p++) {
      if (*p == ' ' || *p == '\t') return -1;
    }
  }
  size_t n = strlen(v);
  int l = 0;
  if (n == 1 && v[0] >= '1' && v[0] <= '8') {
    l = v[0] - '0';
  } else {
    for (int i = 0; i < 8 && l == 0 && n > 0; i++) {
      if (strncmp(names[i], v, n) == 0) l = i + 1;
    }
  }
  if (l == 0) return -1;
  *level = colon ? 0 : l;
  return 0;
}

/* ---- offload rules ------------------------------------------------------- */

/* 1 to 5 digits up to 65535; returns the digits used, or -1. */
static int parse_port(const char* s, uint16_t* out) {
  uint32_t v = 0;
  int i = 0;
  while (is_digit(s[i]) && i < 6) v = v * 10 + (uint32_t)(s[i++] - '0');
  if (i == 0 || i > 5 || v > 65535) return -1;
  *out = (uint16_t)v;
  return i;
}

static int rule_token(const char* tok, struct mn_rule* r, char** save, char* why, size_t n) {
  if (!strcmp(tok, "*") || !strcmp(tok, "all")) return 0;
  if (!strcmp(tok, "udp") || !strcmp(tok, "tcp") || !strcmp(tok, "stream")) {
    int proto = !strcmp(tok, "udp") ? MN_PROTO_UDP : MN_PROTO_TCP;
    if (r->proto != MN_PROTO_ANY && r->proto != proto) {
      snprintf(why, n, "a rule names one protocol: udp or tcp");
      return -1;
    }
    r->proto = proto;
  } else if (!strcmp(tok, "bind") || !strcmp(tok, "listen")) {
    r->role = MN_ROLE_BIND;
  } else if (!strcmp(tok, "connect")) {
    r->role = MN_ROLE_CONNECT;
  } else if (!strcmp(tok, "any")) {
    r->role = MN_ROLE_ANY;
  } else if (!strcmp(tok, "port")) {
    const char* p = strtok_r(NULL, " \t", save);
    int d = p ? parse_port(p, &r->port_lo) : -1;
    if (d < 0) {
      snprintf(why, n, "'port' needs N or LO-HI");
      return -1;
    }
    r->port_hi = r->port_lo;
    if (p[d] == '-') {
      int e = parse_port(p + d + 1, &r->port_hi);
      if (e < 0 || p[d + 1 + e] != '\0' || r->port_hi < r->port_lo) {
        snprintf(why, n, "bad port range '%s'", p);
        return -1;
      }
    } else if (p[d] != '\0') {
      snprintf(why, n, "bad port '%s'", p);
      return -1;
    }
  } else if (is_digit(tok[0])) {
    const char* slash = strchr(tok, '/');
    unsigned len = 32;
    if (slash != NULL && parse_small(slash + 1, 32, &len) != 0) {
      snprintf(why, n, "bad prefix length in '%s'", tok);
      return -1;
    }
    if (parse_ipv4_n(tok, slash ? (size_t)(slash - tok) : strlen(tok), &r->addr) != 0) {
      snprintf(why, n, "bad IPv4 address '%.*s'", slash ? (int)(slash - tok) : (int)strlen(tok),
               tok);
      return -1;
    }
    r->mask = len == 0 ? 0 : ~(uint32_t)0 << (32 - len);
    r->addr &= r->mask;
  } else {
    snprintf(why, n,
             "unexpected '%s' (expected udp, tcp, bind, listen, connect, ADDR[/LEN], port N[-M])",
             tok);
    return -1;
  }
  return 0;
}

/* "ACTION [udp|tcp] [bind|listen|connect|any] [ADDR[/LEN]] [port LO[-HI]]" */
int mn_conf_rule(const char* s, struct mn_rule* r, char* why, size_t n) {
  char buf[256];
  if (strlen(s) >= sizeof(buf)) {
    snprintf(why, n, "a rule is at most %zu bytes", sizeof(buf) - 1);
    return -1;
  }
  memcpy(buf, s, strlen(s) + 1);
  memset(r, 0, sizeof(*r));
  r->port_hi = 65535;
  char* save = NULL;
  char* tok = strtok_r(buf, " \t", &save);
  int action;
  if (tok == NULL || mn_conf_word(mn_conf_lookup("rules.default"), tok, &action) != 0) {
    snprintf(why, n, "a rule starts with 'offload' or 'kernel', got '%s'", tok ? tok : "");
    return -1;
  }
  r->action = action;
  while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
    if (rule_token(tok, r, &save, why, n) != 0) return -1;
  }
  return 0;
}

/* ---- checking one key = value -------------------------------------------- */

long mn_conf_bad_byte(const char* s, size_t len) {
  for (size_t i = 0; i < len;) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && !(c == '\r' && i + 1 == len)) || c == 0x7f) return (long)i;
      i++;
      continue;
    }
    /* UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF */
    size_t more = (c >= 0xc2 && c <= 0xdf)   ? 1
                  : (c >= 0xe0 && c <= 0xef) ? 2
                  : (c >= 0xf0 && c <= 0xf4) ? 3
                                             : 0;
    if (more == 0 || i + more >= len) return (long)i;
    unsigned char c1 = (unsigned char)s[i + 1];
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
        (c == 0xf4 && c1 > 0x8f))
      return (long)i;
    for (size_t k = 1; k <= more; k++) {
      if (((unsigned char)s[i + k] & 0xc0) != 0x80) return (long)i;
    }
    i += more + 1;
  }
  return -1;
}

static int name_ok(const char* s, uint64_t max) {
  size_t len = strlen(s);
  if (len == 0 || len > max) return 0;
  for (; *s; s++) {
    char c = *s;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-' ||
          c == '.'))
      return 0;
  }
  return 1;
}

/* 0, or -1 with why. */
static int check_value(const struct mn_conf_key* k, const char* v, char* why, size_t n) {
  size_t len = strlen(v);
  long bad = mn_conf_bad_byte(v, len);
  if (bad >= 0) {
    snprintf(why, n, "byte %ld of the value is a control character or not UTF-8", bad + 1);
    return -1;
  }
  uint64_t u;
  double d;
  int w;
  uint32_t ip;
  uint8_t plen, mac[6];
  struct mn_rule r;
  switch (k->type) {
    case MN_CONF_STRING:
      if (len >= k->min && len <= k->max) return 0;
      if (len == 0) {
        snprintf(why, n, "expected a value, got ''");
      } else {
        snprintf(why, n, "longer than %llu bytes", (unsigned long long)k->max);
      }
      return -1;
    case MN_CONF_UINT:
      return mn_conf_uint(v, k->min, k->max, &u, why, n);
    case MN_CONF_REAL:
      return mn_conf_real(v, k->rmin, k->rmax, &d, why, n);
    case MN_CONF_BOOL:
    case MN_CONF_WORD:
      if (mn_conf_word(k, v, &w) == 0) return 0;
      snprintf(why, n, "expected %s, got '%s'", k->expect, v);
      return -1;
    case MN_CONF_IPV4:
      if (len == 0 || mn_conf_ipv4(v, &ip) == 0) return 0;
      snprintf(why, n, "expected an IPv4 address, got '%s'", v);
      return -1;
    case MN_CONF_IP_PREFIX:
      return mn_conf_ip_prefix(v, &ip, &plen, why, n);
    case MN_CONF_MAC:
      if (len == 0 || mn_conf_mac(v, mac) == 0) return 0;
      snprintf(why, n, "expected xx:xx:xx:xx:xx:xx, got '%s'", v);
      return -1;
    case MN_CONF_NEIGHBOURS:
      return mn_conf_neighbours(v, NULL, NULL, why, n);
    case MN_CONF_SOCKET_PATH:
      if (v[0] == '/' && len < MN_CONF_SOCKET_PATH_MAX) return 0;
      snprintf(why, n, "expected an absolute path under %d bytes, got '%s'",
               MN_CONF_SOCKET_PATH_MAX, v);
      return -1;
    case MN_CONF_NAME:
      if (name_ok(v, k->max)) return 0;
      snprintf(why, n, "1 to %llu characters of [A-Za-z0-9_.-], got '%s'",
               (unsigned long long)k->max, v);
      return -1;
    case MN_CONF_MODE: {
      int ok = len > 0 && len <= 4;
      u = 0;
      for (size_t i = 0; ok && i < len; i++) {
        ok = v[i] >= '0' && v[i] <= '7';
        u = u * 8 + (uint64_t)(v[i] - '0');
      }
      if (ok && u <= 0777) return 0;
      snprintf(why, n, "expected an octal mode like 0660, got '%s'", v);
      return -1;
    }
    case MN_CONF_RULE:
      return mn_conf_rule(v, &r, why, n);
    case MN_CONF_LOG_LEVEL:
      if (mn_conf_log_level(v, &w) == 0) return 0;
      snprintf(why, n,
               "expected a DPDK log level (emergency, alert, critical, error, warning, notice, "
               "info, debug or 1 to 8, possibly after PATTERN:), got '%s'",
               v);
      return -1;
  }
  snprintf(why, n, "unknown type");
  return -1;
}

int mn_conf_check(const char* key, const char* value, const char* origin, char* err,
                  size_t errlen) {
  char why[400];
  const struct mn_conf_key* k = mn_conf_lookup(key);
  if (k == NULL && strncmp(key, "rules.", 6) == 0) {
    snprintf(why, sizeof(why),
             "rules take a number without leading zeros (rules.10 = ...), or are default or "
             "keep_dns");
  } else if (k == NULL) {
    snprintf(err, errlen, "%s: unknown key '%s'", origin, key);
    return -1;
  } else if (check_value(k, value, why, sizeof(why)) == 0) {
    return 0;
  }
  snprintf(err, errlen, "%s: %s: %s", origin, key, why);
  return -1;
}
