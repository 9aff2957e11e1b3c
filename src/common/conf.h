/* machnet.conf: one grammar and one schema for every reader of the file: the
 * engine, the socket layer, the native API, machnetd and the LD_PRELOAD shim.
 * Plain C with no libstdc++, so the shim links it; src/common/config.h is the
 * C++ face over it.
 *
 * Grammar (machnet.conf(5)): libinih (Debian's build) does the splitting;
 * conf.c makes it strict: an over-long line, a line without '=', a bad
 * section header, a bad key, a key given twice, a NUL, a control character or
 * bytes that are not UTF-8 are errors naming "file:line". Schema
 * (conf_schema.c): every key the project knows, with its type, range and
 * default; an unknown key or a bad value is an error naming where it came
 * from ("file:line", "env MACHNET_X", or the caller's origin for an
 * override). */
#ifndef MACHNET_COMMON_CONF_H
#define MACHNET_COMMON_CONF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes a line may hold once its comment and surrounding white space are
 * removed: Debian builds libinih with INI_MAX_LINE 200, which holds the
 * line, its newline and a NUL. */
#define MN_CONF_MAX_LINE 198
#define MN_CONF_MAX_FILE (1 << 20)  /* bytes */
#define MN_CONF_MAX_ENTRIES 1024    /* keys in one configuration */
#define MN_CONF_MAX_RULES 64        /* rules.N keys */
#define MN_CONF_SOCKET_PATH_MAX 100 /* machnetd.socket: bytes, NUL included */

/* ---- offload rules (rules.N) -------------------------------------------- */
enum mn_action { MN_KERNEL = 0, MN_OFFLOAD = 1 };
enum mn_role { MN_ROLE_ANY = 0, MN_ROLE_BIND = 1, MN_ROLE_CONNECT = 2 };
/* Which sockets a rule concerns: UDP, stream (TCP) or both. */
enum mn_proto { MN_PROTO_ANY = 0, MN_PROTO_UDP = 1, MN_PROTO_TCP = 2 };
/* machnetd = auto|on|off: whether the engine looks for the daemon. */
enum mn_machnetd { MN_MACHNETD_AUTO = 0, MN_MACHNETD_ON = 1, MN_MACHNETD_OFF = 2 };

struct mn_rule {
  long num; /* rules.NUM: evaluation order */
  int action;
  int proto;           /* enum mn_proto */
  int role;            /* stream sockets: bind is listen */
  uint32_t addr, mask; /* host order; mask 0 = any address */
  uint16_t port_lo, port_hi;
};

/* ---- the schema ---------------------------------------------------------- */
enum mn_conf_type {
  MN_CONF_STRING,      /* any text of min..max bytes */
  MN_CONF_UINT,        /* decimal or 0x hexadecimal in [min, max] */
  MN_CONF_BOOL,        /* yes/no, true/false, on/off, 1/0 */
  MN_CONF_REAL,        /* decimal number like 0.25 in [rmin, rmax] */
  MN_CONF_WORD,        /* one of words[] */
  MN_CONF_IPV4,        /* a.b.c.d, or empty (none) */
  MN_CONF_IP_PREFIX,   /* a.b.c.d[/len], not 0.0.0.0 */
  MN_CONF_MAC,         /* xx:xx:xx:xx:xx:xx, or empty (the port's) */
  MN_CONF_NEIGHBOURS,  /* ip@mac[,ip@mac...] */
  MN_CONF_SOCKET_PATH, /* absolute path shorter than MN_CONF_SOCKET_PATH_MAX */
  MN_CONF_NAME,        /* 1 to max characters of [A-Za-z0-9_.-] */
  MN_CONF_MODE,        /* octal file mode up to 0777 */
  MN_CONF_RULE,        /* an offload rule (rules.N) */
  MN_CONF_LOG_LEVEL,   /* DPDK's --log-level: LEVEL or PATTERN:LEVEL */
};

struct mn_conf_word {
  const char* word;
  int value;
};

struct mn_conf_key {
  const char* name; /* "arp.retry_ms"; "rules.N" stands for every numbered rule */
  enum mn_conf_type type;
  uint64_t min, max;                /* UINT: range; STRING, NAME: length */
  double rmin, rmax;                /* REAL: range */
  const struct mn_conf_word* words; /* WORD: NULL-terminated */
  const char* expect;               /* WORD: what the error says is expected */
  const char* def;                  /* default, as a file would say it; NULL: none */
};

/* Every key, in the order machnet.conf(5) lists them. */
const struct mn_conf_key* mn_conf_schema(size_t* n);
/* The schema entry of `key` (rules.N for a numbered rule), or NULL. */
const struct mn_conf_key* mn_conf_lookup(const char* key);
/* 0 when `key` = `value` is valid, else -1 with err = "origin: key: why"
 * (or "origin: unknown key 'key'"). */
int mn_conf_check(const char* key, const char* value, const char* origin, char* err, size_t errlen);
/* Offset of the first byte that may not appear in a configuration: a control
 * character (a tab may, and a CR that ends the text), or bytes that are not
 * UTF-8; -1 when there is none. */
long mn_conf_bad_byte(const char* s, size_t len);
/* MACHNET_ + key in upper case, '.' and '-' turned into '_'. */
void mn_conf_env_name(const char* key, char* out, size_t len);
/* rules.N: N (0 to 999999999, no leading zero), or -1 for another key. */
long mn_conf_rule_number(const char* key);

/* Value parsers, shared so every reader agrees: 0, or -1 (with `why` where
 * there is one). Strings are NUL-terminated and already trimmed. */
int mn_conf_uint(const char* s, uint64_t min, uint64_t max, uint64_t* out, char* why, size_t n);
int mn_conf_real(const char* s, double min, double max, double* out, char* why, size_t n);
int mn_conf_bool(const char* s, int* out);
int mn_conf_word(const struct mn_conf_key* k, const char* s, int* out);
int mn_conf_ipv4(const char* s, uint32_t* out); /* host order */
int mn_conf_ip_prefix(const char* s, uint32_t* ip, uint8_t* len, char* why, size_t n);
int mn_conf_mac(const char* s, uint8_t mac[6]);
int mn_conf_rule(const char* s, struct mn_rule* r, char* why, size_t n);
/* *level: 1 (emergency) to 8 (debug), or 0 for a PATTERN:LEVEL setting. */
int mn_conf_log_level(const char* s, int* level);
/* Calls fn for each ip@mac of an arp.static value; -1 with why on a bad one. */
int mn_conf_neighbours(const char* s, void (*fn)(void* user, uint32_t ip, const uint8_t mac[6]),
                       void* user, char* why, size_t n);

/* ---- a configuration: key = value entries and where each came from ----- */
struct mn_conf_entry {
  char* key; /* "section.key" */
  char* value;
  char* origin; /* "file:line", "env MACHNET_X", or the caller's */
  int line;     /* line in the file, 0 when not from a file */
};

struct mn_conf {
  struct mn_conf_entry* v;
  size_t n, cap;
};
#define MN_CONF_INIT \
  { 0, 0, 0 }

/* flags */
#define MN_CONF_CHECK 1 /* check every key and value against the schema */

void mn_conf_free(struct mn_conf* c);
/* Parses `text` (the contents of `path`). 0, or -1 with err = "path:line:
 * why" for the first bad line; entries before it are kept. */
int mn_conf_parse(struct mn_conf* c, const char* text, size_t len, const char* path, int flags,
                  char* err, size_t errlen);
int mn_conf_load_file(struct mn_conf* c, const char* path, int flags, char* err, size_t errlen);
/* Sets (replaces) one entry. */
int mn_conf_set(struct mn_conf* c, const char* key, const char* value, const char* origin,
                int flags, char* err, size_t errlen);
/* MACHNET_<KEY> for every schema key, then MACHNET_RULES_<N>; they replace
 * what the file said. Other MACHNET_* variables are not keys (MACHNET_CONFIG
 * names the file) and are left alone. */
int mn_conf_apply_env(struct mn_conf* c, char* const* envp, int flags, char* err, size_t errlen);
const struct mn_conf_entry* mn_conf_find(const struct mn_conf* c, const char* key);
/* Rules between keys (send_buffer_bytes >= max_message_bytes...), on the
 * values in effect (set or default): 0, or -1 naming the key set last. */
int mn_conf_check_relations(const struct mn_conf* c, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
