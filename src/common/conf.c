/* machnet.conf over libinih: see conf.h for what is an error.
 *
 * libinih splits "key = value" lines, tracks [section] headers and reports
 * lines without '='. Debian builds it with INI_MAX_LINE 200 on the stack,
 * INI_ALLOW_MULTILINE (an indented line continues the previous value),
 * INI_ALLOW_INLINE_COMMENTS with ';' after white space, ':' as a second
 * separator, and INI_STOP_ON_FIRST_ERROR off; a longer line is silently cut
 * in two. The reader below hands it one line at a time and closes those
 * doors: it rejects a line too long for the buffer, bytes that are not text,
 * and malformed section headers itself; it cuts comments ('#' or ';'
 * anywhere) and leading white space (so no line continues another); the
 * handler rejects ':' as a separator, bad keys and keys given twice. */
#define _GNU_SOURCE
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"

#define MAX_SECTION 49 /* libinih keeps 50 bytes of a section name, NUL included */

struct parse_ctx {
  struct mn_conf* conf;
  const char* path;
  int flags;
  const char* p;                    /* the rest of the text */
  const char* end;                  /* its end */
  int lineno;                       /* lines handed to libinih */
  char cur[MN_CONF_MAX_LINE + 1];   /* the current line as libinih got it */
  size_t seen[MN_CONF_MAX_ENTRIES]; /* entries this file set: a second time is an error */
  int seen_line[MN_CONF_MAX_ENTRIES];
  size_t nseen;
  int err_line; /* the line of our first error, 0 = none */
  char* err;
  size_t errlen;
};

static int key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

static int valid_key(const char* s, size_t len) {
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++) {
    if (!key_char(s[i])) return 0;
  }
  return 1;
}

static int blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

/* The meaningful part of a line: before any '#' or ';', without the white
 * space around it. */
static const char* clean_line(const char* s, size_t len, size_t* out_len) {
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '#' || s[i] == ';') {
      len = i;
      break;
    }
  }
  while (len > 0 && blank(*s)) {
    s++;
    len--;
  }
  while (len > 0 && blank(s[len - 1])) len--;
  *out_len = len;
  return s;
}

static void fail(struct parse_ctx* x, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct parse_ctx* x, const char* fmt, ...) {
  if (x->err_line != 0) return;
  x->err_line = x->lineno;
  int n = snprintf(x->err, x->errlen, "%s:%d: ", x->path, x->lineno);
  if (n < 0 || (size_t)n >= x->errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
  va_end(ap);
}

/* "[ name ]": writes "[name]\n" to buf, or fails. */
static void section_line(struct parse_ctx* x, const char* s, size_t len, char* buf) {
  const char* close = memchr(s, ']', len);
  if (close == NULL) {
    fail(x, "unterminated section header '%.*s'", (int)len, s);
    return;
  }
  if (close != s + len - 1) {
    const char* rest = close + 1;
    while (blank(*rest)) rest++;
    fail(x, "unexpected '%.*s' after the section header", (int)(s + len - rest), rest);
    return;
  }
  const char* name = s + 1;
  size_t n = (size_t)(close - name);
  while (n > 0 && blank(*name)) {
    name++;
    n--;
  }
  while (n > 0 && blank(name[n - 1])) n--;
  if (!valid_key(name, n) || n > MAX_SECTION) {
    fail(x, "bad section name '%.*s' (1 to %d characters of [A-Za-z0-9_.-])", (int)n, name,
         MAX_SECTION);
    return;
  }
  buf[0] = '[';
  memcpy(buf + 1, name, n);
  memcpy(buf + 1 + n, "]\n", 3);
}

/* libinih's ini_reader: one line of the text per call, checked. */
static char* reader(char* buf, int num, void* stream) {
  struct parse_ctx* x = stream;
  if (x->err_line != 0 || x->p >= x->end) return NULL;
  const char* line = x->p;
  const char* nl = memchr(line, '\n', (size_t)(x->end - line));
  size_t len = nl ? (size_t)(nl - line) : (size_t)(x->end - line);
  x->p = line + len + (nl != NULL);
  x->lineno++;
  long skip = 0; /* bytes before `line`, for messages */
  if (x->lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) { /* UTF-8 BOM */
    line += 3;
    len -= 3;
    skip = 3;
    /* libinih would take a second one off too, unseen by the checks below */
    if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
      fail(x, "byte 4 is a second byte-order mark");
      return NULL;
    }
  }
  long bad = mn_conf_bad_byte(line, len);
  if (bad >= 0) {
    fail(x, "byte %ld is %s", skip + bad + 1,
         (unsigned char)line[bad] < 0x80 ? "a control character" : "not UTF-8");
    return NULL;
  }
  size_t n;
  const char* s = clean_line(line, len, &n);
  size_t max = (size_t)num - 2 < MN_CONF_MAX_LINE ? (size_t)num - 2 : MN_CONF_MAX_LINE;
  if (n > max) {
    fail(x, "line longer than %zu bytes (comments aside)", max);
    return NULL;
  }
  if (n > 0 && s[0] == '[') {
    section_line(x, s, n, buf);
    x->cur[0] = '\0';
    return x->err_line ? NULL : buf;
  }
  memcpy(x->cur, s, n);
  x->cur[n] = '\0';
  memcpy(buf, s, n);
  memcpy(buf + n, "\n", 2);
  return buf;
}

static size_t find_index(const struct mn_conf* c, const char* key) {
  for (size_t i = 0; i < c->n; i++) {
    if (strcmp(c->v[i].key, key) == 0) return i;
  }
  return c->n;
}

/* libinih's ini_handler: one key = value. 1 = go on, 0 = error. */
static int handler(void* user, const char* section, const char* name, const char* value) {
  struct parse_ctx* x = user;
  const char* sep = strpbrk(x->cur, "=:");
  if (sep == NULL || *sep != '=' || value == NULL) { /* NULL: a build with INI_ALLOW_NO_VALUE */
    fail(x, "expected 'key = value', got '%s'", x->cur);
    return 0;
  }
  if (!valid_key(name, strlen(name))) {
    fail(x, "bad key '%s' (characters of [A-Za-z0-9_.-])", name);
    return 0;
  }
  char key[MN_CONF_MAX_LINE + MAX_SECTION + 2];
  snprintf(key, sizeof(key), "%s%s%s", section, section[0] ? "." : "", name);
  size_t vlen = strlen(value);
  char val[MN_CONF_MAX_LINE + 1];
  if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
    value++;
    vlen -= 2;
  }
  snprintf(val, sizeof(val), "%.*s", (int)vlen, value);
  size_t at = find_index(x->conf, key);
  for (size_t i = 0; i < x->nseen; i++) {
    if (x->seen[i] == at) {
      fail(x, "%s: set twice (first at line %d)", key, x->seen_line[i]);
      return 0;
    }
  }
  char origin[4096 + 16];
  snprintf(origin, sizeof(origin), "%s:%d", x->path, x->lineno);
  char why[600];
  if (mn_conf_set(x->conf, key, val, origin, x->flags, why, sizeof(why)) != 0) {
    /* why already names the origin */
    x->err_line = x->lineno;
    snprintf(x->err, x->errlen, "%s", why);
    return 0;
  }
  x->conf->v[find_index(x->conf, key)].line = x->lineno;
  x->seen[x->nseen] = find_index(x->conf, key);
  x->seen_line[x->nseen++] = x->lineno;
  return 1;
}

int mn_conf_parse(struct mn_conf* c, const char* text, size_t len, const char* path, int flags,
                  char* err, size_t errlen) {
  struct parse_ctx* x = calloc(1, sizeof(*x));
  if (x == NULL) {
    snprintf(err, errlen, "%s: out of memory", path);
    return -1;
  }
  x->conf = c;
  x->path = path;
  x->flags = flags;
  x->p = text;
  x->end = text + len;
  x->err = err;
  x->errlen = errlen;
  int line = ini_parse_stream(reader, x, handler, x);
  int rc = 0;
  if (line < 0) {
    snprintf(err, errlen, "%s: out of memory", path);
    rc = -1;
  } else if (line > 0 && (x->err_line == 0 || line < x->err_line)) {
    /* libinih found no '=' on this line: find it again for the message. */
    const char* s = text;
    for (int i = 1; i < line; i++) s = (const char*)memchr(s, '\n', (size_t)(text + len - s)) + 1;
    const char* nl = memchr(s, '\n', (size_t)(text + len - s));
    size_t n;
    s = clean_line(s, nl ? (size_t)(nl - s) : (size_t)(text + len - s), &n);
    snprintf(err, errlen, "%s:%d: expected 'key = value', got '%.*s'", path, line, (int)n, s);
    rc = -1;
  } else if (x->err_line != 0) {
    rc = -1;
  }
  free(x);
  return rc;
}

int mn_conf_load_file(struct mn_conf* c, const char* path, int flags, char* err, size_t errlen) {
  FILE* f = fopen(path, "re");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  /* Grown as it is read: a file is small, and /dev/null or a pipe has no size. */
  char* text = NULL;
  size_t len = 0, cap = 0;
  int rc = -1;
  for (;;) {
    if (len == cap) {
      size_t more = cap ? cap * 2 : 4096;
      char* t = more <= 2 * (size_t)MN_CONF_MAX_FILE ? realloc(text, more) : NULL;
      if (t == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        break;
      }
      text = t;
      cap = more;
    }
    size_t n = fread(text + len, 1, cap - len, f);
    len += n;
    if (len > MN_CONF_MAX_FILE) {
      snprintf(err, errlen, "%s: larger than %d bytes", path, MN_CONF_MAX_FILE);
      break;
    }
    if (n == 0 && ferror(f)) {
      snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
      break;
    }
    if (n == 0) {
      rc = mn_conf_parse(c, text, len, path, flags, err, errlen);
      break;
    }
  }
  free(text);
  fclose(f);
  return rc;
}

void mn_conf_free(struct mn_conf* c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->v[i].key);
    free(c->v[i].value);
    free(c->v[i].origin);
  }
  free(c->v);
  c->v = NULL;
  c->n = c->cap = 0;
}

const struct mn_conf_entry* mn_conf_find(const struct mn_conf* c, const char* key) {
  size_t i = find_index(c, key);
  return i < c->n ? &c->v[i] : NULL;
}

int mn_conf_set(struct mn_conf* c, const char* key, const char* value, const char* origin,
                int flags, char* err, size_t errlen) {
  if ((flags & MN_CONF_CHECK) && mn_conf_check(key, value, origin, err, errlen) != 0) return -1;
  size_t i = find_index(c, key);
  if (i == c->n) {
    if (c->n == MN_CONF_MAX_ENTRIES) {
      snprintf(err, errlen, "%s: more than %d keys", origin, MN_CONF_MAX_ENTRIES);
      return -1;
    }
    if ((flags & MN_CONF_CHECK) && mn_conf_rule_number(key) >= 0) {
      int rules = 0;
      for (size_t k = 0; k < c->n; k++) rules += mn_conf_rule_number(c->v[k].key) >= 0;
      if (rules == MN_CONF_MAX_RULES) {
        snprintf(err, errlen, "%s: %s: more than %d rules", origin, key, MN_CONF_MAX_RULES);
        return -1;
      }
    }
    if (c->n == c->cap) {
      size_t cap = c->cap ? c->cap * 2 : 16;
      struct mn_conf_entry* v = realloc(c->v, cap * sizeof(*v));
      if (v == NULL) goto oom;
      c->v = v;
      c->cap = cap;
    }
    memset(&c->v[i], 0, sizeof(c->v[i]));
    if ((c->v[i].key = strdup(key)) == NULL) goto oom;
    c->n++;
  }
  char* v = strdup(value);
  char* o = strdup(origin);
  if (v == NULL || o == NULL) {
    free(v);
    free(o);
    goto oom;
  }
  free(c->v[i].value);
  free(c->v[i].origin);
  c->v[i].value = v;
  c->v[i].origin = o;
  c->v[i].line = 0;
  return 0;
oom:
  snprintf(err, errlen, "%s: %s: out of memory", origin, key);
  return -1;
}

static const char* env_value(char* const* envp, const char* name) {
  size_t n = strlen(name);
  for (char* const* e = envp; e && *e; e++) {
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  }
  return NULL;
}

int mn_conf_apply_env(struct mn_conf* c, char* const* envp, int flags, char* err, size_t errlen) {
  size_t nkeys;
  const struct mn_conf_key* s = mn_conf_schema(&nkeys);
  char name[128], origin[160];
  for (size_t i = 0; i < nkeys; i++) {
    if (s[i].type == MN_CONF_RULE) continue;
    mn_conf_env_name(s[i].name, name, sizeof(name));
    const char* v = env_value(envp, name);
    snprintf(origin, sizeof(origin), "env %s", name);
    if (v != NULL && mn_conf_set(c, s[i].name, v, origin, flags, err, errlen) != 0) return -1;
  }
  /* MACHNET_RULES_<N>: rules.N (MACHNET_RULES_DEFAULT and _KEEP_DNS are keys above) */
  for (char* const* e = envp; e && *e; e++) {
    if (strncmp(*e, "MACHNET_RULES_", 14) != 0 || (*e)[14] < '0' || (*e)[14] > '9') continue;
    const char* eq = strchr(*e, '=');
    if (eq == NULL || eq - *e > 100) continue;
    char key[128];
    snprintf(key, sizeof(key), "rules.%.*s", (int)(eq - (*e + 14)), *e + 14);
    snprintf(origin, sizeof(origin), "env %.*s", (int)(eq - *e), *e);
    if (mn_conf_set(c, key, eq + 1, origin, flags, err, errlen) != 0) return -1;
  }
  return 0;
}

/* ---- rules between keys ---------------------------------------------------
 * a >= factor * b (a > b when strict), on the values in effect. Each mirrors
 * a check of the reader that uses the keys (Tunables::validate, machnetd). */
static const struct {
  const char *a, *b;
  unsigned factor;
  int strict;
} kRelations[] = {
    {"transport.send_buffer_bytes", "transport.max_message_bytes", 1, 0},
    {"transport.recv_buffer_bytes", "transport.max_message_bytes", 1, 0},
    {"transport.rto_max_us", "transport.rto_min_us", 1, 0},
    {"transport.rto_min_us", "transport.delayed_ack_us", 1, 1},
    {"machnetd.mbufs_per_queue", "machnetd.rx_desc", 2, 0},
};

static int effective(const struct mn_conf* c, const char* key, uint64_t* out) {
  const struct mn_conf_entry* e = mn_conf_find(c, key);
  const struct mn_conf_key* k = mn_conf_lookup(key);
  const char* v = e ? e->value : k ? k->def : NULL;
  char why[200];
  return v && k ? mn_conf_uint(v, k->min, k->max, out, why, sizeof(why)) : -1;
}

int mn_conf_check_relations(const struct mn_conf* c, char* err, size_t errlen) {
  for (size_t i = 0; i < sizeof(kRelations) / sizeof(kRelations[0]); i++) {
    const char *a = kRelations[i].a, *b = kRelations[i].b;
    uint64_t va, vb, f = kRelations[i].factor;
    if (effective(c, a, &va) != 0 || effective(c, b, &vb) != 0) continue;
    if (kRelations[i].strict ? va > f * vb : va >= f * vb) continue;
    const struct mn_conf_entry* ea = mn_conf_find(c, a);
    const struct mn_conf_entry* eb = mn_conf_find(c, b);
    const char* twice = f == 2 ? "twice " : "";
    const char* half = f == 2 ? "half of " : "";
    if (ea != NULL || eb == NULL) {
      snprintf(err, errlen, "%s: %s: must be %s%s%s (%llu), got %llu", ea ? ea->origin : "defaults",
               a, kRelations[i].strict ? "more than " : "at least ", twice, b,
               (unsigned long long)vb, (unsigned long long)va);
    } else {
      snprintf(err, errlen, "%s: %s: must be %s%s%s (%llu), got %llu", eb->origin, b,
               kRelations[i].strict ? "less than " : "at most ", half, a, (unsigned long long)va,
               (unsigned long long)vb);
    }
    return -1;
  }
  return 0;
}
