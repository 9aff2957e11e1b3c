/* The shim's leveled logger. Its level is the log_level key the engine also
 * reads (DPDK's names and numbers: emergency 1, alert 2, critical 3, error 4,
 * warning 5, notice 6, info 7, debug 8; MACHNET_LOG_LEVEL wins over the
 * file). Unset, the shim prints notices and above: the one line saying what
 * is offloaded and where, warnings (a socket a rule offloads stays on the
 * kernel) and errors (a bad configuration). Lines are "machnet: message" on
 * stderr, written with one write(2). */
#include "shim.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int g_log_level = LOG_NOTICE;

void log_msg(int level, const char* fmt, ...) {
  (void)level;
  char buf[2048];
  memcpy(buf, "machnet: ", 9);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + 9, sizeof(buf) - 10, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  n += 9;
  if ((size_t)n > sizeof(buf) - 2) n = (int)sizeof(buf) - 2;
  buf[n++] = '\n';
  ssize_t w = REAL(write)(2, buf, (size_t)n);
  (void)w;
}

/* A level as DPDK's --log-level takes it: a number 1..8 or a name (a prefix
 * of one, as DPDK accepts). Returns 0 and *out, or -1. A per-component
 * setting (type:level) leaves the shim's level alone (returns -1). */
static int parse_level(const char* v, int* out) {
  static const char* const names[] = {"emergency", "alert",  "critical", "error",
                                      "warning",   "notice", "info",     "debug"};
  size_t n = strlen(v);
  if (n == 0) return -1;
  if (isdigit((unsigned char)v[0])) {
    char* end;
    long l = strtol(v, &end, 10);
    if (*end != '\0' || l < 1 || l > 8) return -1;
    *out = (int)l;
    return 0;
  }
  for (int i = 0; i < 8; i++) {
    if (strncmp(names[i], v, n) == 0) {
      *out = i + 1;
      return 0;
    }
  }
  return -1;
}

/* The value of the top-level log_level key of the configuration file (the
 * grammar of machnet.conf(5): '#' comments, [section] headers prefix keys,
 * optional double quotes). The rules parser does not hand the engine's
 * keys over, so the shim looks for this one key itself. */
static int file_log_level(const char* path, char* out, size_t len) {
  FILE* f = fopen(path, "re");
  if (f == NULL) return -1;
  char line[1024];
  int found = -1, in_section = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    char* hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char* s = line;
    while (isspace((unsigned char)*s)) s++;
    if (*s == '[') {
      in_section = 1;
      continue;
    }
    if (in_section || strncmp(s, "log_level", 9) != 0) continue;
    s += 9;
    while (isspace((unsigned char)*s)) s++;
    if (*s != '=') continue;
    s++;
    while (isspace((unsigned char)*s)) s++;
    char* e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    if (e - s >= 2 && *s == '"' && e[-1] == '"') {
      e[-1] = '\0';
      s++;
    }
    snprintf(out, len, "%s", s);
    found = 0; /* the last one wins, as for every key */
  }
  fclose(f);
  return found;
}

void log_configure(const char* config_path) {
  char buf[128];
  const char* v = getenv("MACHNET_LOG_LEVEL");
  const char* origin = "env MACHNET_LOG_LEVEL";
  if (v == NULL && config_path[0] != '\0' && file_log_level(config_path, buf, sizeof(buf)) == 0) {
    v = buf;
    origin = config_path;
  }
  if (v == NULL) return;
  int level;
  if (parse_level(v, &level) == 0) {
    g_log_level = level;
  } else if (strchr(v, ':') == NULL) {
    LOG(LOG_WARNING,
        "%s: log_level: expected a level (error, warning, notice, info, debug or 1..8), got '%s'",
        origin, v);
  }
}
