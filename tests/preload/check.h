/* What the plain-C configuration tests share: CHECK, and loading a text as
 * the shim loads its file (MACHNET_CONFIG, then the environment). */
#ifndef MACHNET_TESTS_PRELOAD_CHECK_H
#define MACHNET_TESTS_PRELOAD_CHECK_H

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules.h"

static int failures;
static char g_path[64];

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* Picks this test's configuration file in /tmp. */
static inline void check_begin(const char* name) {
  snprintf(g_path, sizeof(g_path), "/tmp/%s.%d.conf", name, (int)getpid());
}

/* Writes `text` to the file and loads it with mn_config_load. */
static inline int load_text(const char* text, struct mn_config* c, char* err, size_t errlen) {
  FILE* f = fopen(g_path, "w");
  if (f == NULL) return -2;
  fputs(text, f);
  fclose(f);
  setenv("MACHNET_CONFIG", g_path, 1);
  return mn_config_load(c, "libmachnet.so.0", err, errlen);
}

/* The exit status; says how it went. */
static inline int check_end(const char* name) {
  unlink(g_path);
  if (failures) {
    fprintf(stderr, "%s: %d failure(s)\n", name, failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

#endif
