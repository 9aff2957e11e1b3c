/* The shim's leveled logger. Its level is the log_level key the engine and
 * machnetd also read (DPDK's names and numbers: emergency 1, alert 2, critical 3, error 4,
 * warning 5, notice 6, info 7, debug 8; MACHNET_LOG_LEVEL wins over the
 * file), parsed and checked with the rest of the configuration (rules.c), with the schema's
 * default, notice, for all three: the one line saying what is offloaded and where, warnings (a
 * socket a rule offloads stays on the kernel) and errors (a bad configuration). Lines are
 * "machnet: message" on stderr, written with one write(2). */
#include "shim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int g_log_level = LOG_NOTICE; /* until the configuration is loaded */

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

void log_configure(int level) {
  if (level >= 1 && level <= 8) g_log_level = level;
}
