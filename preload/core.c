/* libmachnet_preload.so: the real libc functions, the re-entry guard, the fd
 * table, the shim's side of an offloaded socket, per-thread scratch memory
 * and the library constructor.
 *
 * The shim is small on purpose and links no DPDK (nor libstdc++): a program
 * that never opens an offloaded socket pays only for loading this object,
 * resolving the libc functions it interposes and reading the configuration.
 * Every offloaded socket keeps its kernel twin, the socket created at
 * socket(): it owns the fd number, holds the port in the kernel and is the
 * fallback. See shim.h for the map of the files. */
#include "shim.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- the real libc functions ------------------------------------------------ */

struct shim_libc g_libc;
int g_libc_done;
__thread int g_guard __attribute__((tls_model("initial-exec")));

void* libc_resolve_early(const char* name, void** slot) {
  void* p = dlsym(RTLD_NEXT, name);
  __atomic_store_n(slot, p, __ATOMIC_RELAXED);
  return p;
}

static void libc_resolve_all(void) {
#define SHIM_LIBC_RESOLVE(ret, name, args) \
  if (g_libc.name == NULL) g_libc.name = (__typeof__(g_libc.name))dlsym(RTLD_NEXT, #name);
  SHIM_LIBC(SHIM_LIBC_RESOLVE)
#undef SHIM_LIBC_RESOLVE
  __atomic_store_n(&g_libc_done, 1, __ATOMIC_RELEASE);
}

/* ---- per-thread scratch memory ------------------------------------------------ */

struct scratch_set {
  void* p[SCRATCH_SLOTS];
  size_t cap[SCRATCH_SLOTS];
};
static __thread struct scratch_set t_scratch __attribute__((tls_model("initial-exec")));
static pthread_key_t g_scratch_key;
static int g_scratch_key_ok;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void* arg);
static void scratch_key_make(void) {
  g_scratch_key_ok = pthread_key_create(&g_scratch_key, scratch_free) == 0;
}

static void scratch_free(void* arg) {
  struct scratch_set* s = arg;
  for (int i = 0; i < SCRATCH_SLOTS; i++) {
    free(s->p[i]);
    s->p[i] = NULL;
    s->cap[i] = 0;
  }
}

void* scratch(int slot, size_t bytes) {
  struct scratch_set* s = &t_scratch;
  if (bytes <= s->cap[slot]) return s->p[slot];
  size_t cap = s->cap[slot] ? s->cap[slot] : 1024;
  while (cap < bytes) cap *= 2;
  void* p = realloc(s->p[slot], cap);
  if (p == NULL) return NULL;
  s->p[slot] = p;
  s->cap[slot] = cap;
  /* Freed at thread exit (a key whose value is set: the destructor runs). */
  pthread_once(&g_scratch_once, scratch_key_make);
  if (g_scratch_key_ok) pthread_setspecific(g_scratch_key, s);
  return p;
}

/* ---- the fd table ------------------------------------------------------------- */

struct fd_ent* _Atomic g_pages[FD_MAX / FD_PAGE];

struct fd_ent* entry_make(int fd) {
  if ((unsigned)fd >= FD_MAX) return NULL;
  struct fd_ent* _Atomic* slot = &g_pages[(unsigned)fd >> FD_PAGE_BITS];
  struct fd_ent* page = atomic_load(slot);
  if (page == NULL) {
    /* mmap, not malloc: this may run before main or inside a malloc hook. */
    struct fd_ent* p = mmap(NULL, sizeof(struct fd_ent) * FD_PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    struct fd_ent* expected = NULL;
    if (atomic_compare_exchange_strong(slot, &expected, p)) {
      page = p;
    } else {
      munmap(p, sizeof(struct fd_ent) * FD_PAGE);
      page = expected;
    }
  }
  return &page[(unsigned)fd & (FD_PAGE - 1)];
}

void entry_new_socket(struct fd_ent* e, uint32_t flags) {
  atomic_fetch_add(&e->gen, 1);
  atomic_store(&e->flags, flags);
  atomic_store(&e->rcvtimeo_ns, 0);
  atomic_store(&e->sndtimeo_ns, 0);
  atomic_store(&e->handle, 0);
  atomic_store(&e->sock, NULL);
  atomic_store(&e->err, 0);
  atomic_store(&e->shut, 0);
  atomic_store_explicit(&e->kind, KIND_PENDING, memory_order_release);
}

/* ---- the shim's side of an offloaded socket ------------------------------------
 * A free list with lock-free pushes (sock_unref may run in a signal handler)
 * and pops serialised by g_decide_mu (so no ABA: nobody else pops). */
static struct shim_sock* _Atomic g_sock_free;
#define SOCK_CHUNK 256
static struct shim_sock* g_sock_chunk;
static int g_sock_chunk_used = SOCK_CHUNK;

struct shim_sock* sock_new(void) {
  struct shim_sock* s = atomic_load(&g_sock_free);
  while (s != NULL && !atomic_compare_exchange_weak(&g_sock_free, &s, s->next_free)) {
  }
  if (s == NULL) {
    if (g_sock_chunk_used == SOCK_CHUNK) {
      void* p = mmap(NULL, sizeof(struct shim_sock) * SOCK_CHUNK, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return NULL;
      g_sock_chunk = p;
      g_sock_chunk_used = 0;
    }
    s = &g_sock_chunk[g_sock_chunk_used++];
  }
  s->next_free = NULL;
  atomic_store(&s->refs, 1);
  return s;
}

void sock_ref(struct shim_sock* s) {
  atomic_fetch_add(&s->refs, 1);
}

void sock_unref(struct shim_sock* s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  atomic_fetch_add(&s->gen, 1); /* every epoll member naming it is now stale */
  struct shim_sock* head = atomic_load(&g_sock_free);
  do {
    s->next_free = head;
  } while (!atomic_compare_exchange_weak(&g_sock_free, &head, s));
}

/* ---- deferred closes --------------------------------------------------------------
 * A fixed array of handles, claimed and emptied with compare-and-swap (close
 * in a signal handler can neither lock nor allocate). Full (DEFER_SLOTS
 * closes in handlers with no shim call in between): the socket stays open
 * in the engine until the process ends, counted in g_defer_lost. */
#define DEFER_SLOTS 1024
static _Atomic uint64_t g_defer[DEFER_SLOTS];
_Atomic int g_defer_n;
static _Atomic uint64_t g_defer_lost;

void close_defer(uint64_t h) {
  for (int i = 0; i < DEFER_SLOTS; i++) {
    uint64_t none = 0;
    if (atomic_load_explicit(&g_defer[i], memory_order_relaxed) == 0 &&
        atomic_compare_exchange_strong(&g_defer[i], &none, h)) {
      atomic_fetch_add(&g_defer_n, 1);
      return;
    }
  }
  atomic_fetch_add(&g_defer_lost, 1);
}

void close_deferred_run(void) {
  /* A fork child's copies are the parent's sockets: never closed here. */
  if (g_guard || g_ops == NULL || atomic_load(&g_forked_child)) return;
  for (int i = 0; i < DEFER_SLOTS && atomic_load(&g_defer_n) > 0; i++) {
    uint64_t h = atomic_exchange(&g_defer[i], 0);
    if (h == 0) continue;
    atomic_fetch_sub(&g_defer_n, 1);
    g_guard++;
    g_ops->close(h);
    g_guard--;
  }
  uint64_t lost = atomic_exchange(&g_defer_lost, 0);
  if (lost != 0)
    LOG(LOG_WARNING,
        "%llu offloaded socket(s) closed in signal handlers could not be queued for the engine: "
        "their ports stay taken until the process ends",
        (unsigned long long)lost);
}

/* ---- the constructor ------------------------------------------------------------ */

__attribute__((constructor)) static void shim_init(void) {
  libc_resolve_all();
  fork_handlers_install();
  signals_wrap_existing();
  config_at_start();
  if (g_libc.epoll_pwait2 == NULL)
    LOG(LOG_DEBUG, "libc has no epoll_pwait2 (glibc before 2.35): epoll waits use epoll_pwait");
}
