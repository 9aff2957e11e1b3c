/* libhide_symbol.so: makes dlsym() find no definition of one symbol, named
 * by MN_TEST_HIDE_SYMBOL, the way a libc without it would answer (glibc
 * before 2.35 has no epoll_pwait2). Preloaded after libmachnet_preload.so:
 * the shim's dlsym(RTLD_NEXT, ...) calls land here, and every other name is
 * looked up by the real dlsym from this library, whose "next" objects are
 * the shim's (this library defines nothing else). Test use only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef void* (*dlsym_fn)(void*, const char*);

void* dlsym(void* handle, const char* name) {
  static dlsym_fn real;
  const char* hide = getenv("MN_TEST_HIDE_SYMBOL");
  if (hide != NULL && strcmp(name, hide) == 0) return NULL;
  if (real == NULL) {
    static const char* const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17"};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]) && real == NULL; i++)
      real = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", versions[i]);
    if (real == NULL) abort();
  }
  return real(handle, name);
}
