#include "engine/memif_guard.h"

#include <dlfcn.h>
#include <rte_interrupts.h>

#include <sched.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace machnet::engine::memif_guard {
namespace {

// Dekker-style gate: a memif callback raises g_pause and waits for bursts in
// flight to finish; the data path announces a burst in g_in_burst and backs
// off while g_pause is up. Both sides use sequentially consistent accesses,
// so a burst never overlaps a callback, and the data path pays two atomic
// operations per burst with no lock to starve the interrupt thread.
std::atomic<bool> g_pause{false};
std::atomic<int> g_in_burst{0};
std::atomic<uint64_t> g_wrapped{0};

// One per live wrapped registration; memif has a handful (listener socket and
// one control channel per interface).
struct Entry {
  rte_intr_callback_fn cb;
  void* arg;
  rte_intr_unregister_callback_fn ucb;
  bool used;
};
constexpr int kEntries = 64;
Entry g_entries[kEntries];
std::mutex g_table;

using RegisterFn = int (*)(const rte_intr_handle*, rte_intr_callback_fn, void*);
using UnregisterPendingFn = int (*)(const rte_intr_handle*, rte_intr_callback_fn, void*,
                                    rte_intr_unregister_callback_fn);

template <typename Fn>
Fn real(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

bool is_memif_callback(void* fn) {
  Dl_info info;
  return dladdr(fn, &info) != 0 && info.dli_fname != nullptr &&
         std::strstr(info.dli_fname, "rte_net_memif") != nullptr;
}

Entry* find(rte_intr_callback_fn cb, void* arg) {
  for (Entry& e : g_entries)
    if (e.used && e.cb == cb && e.arg == arg) return &e;
  return nullptr;
}

void trampoline(void* p) {
  auto* e = static_cast<Entry*>(p);
  g_pause.store(true);
  while (g_in_burst.load() != 0) sched_yield();
  e->cb(e->arg);
  g_pause.store(false);
}

void unregister_trampoline(rte_intr_handle* h, void* p) {
  auto* e = static_cast<Entry*>(p);
  rte_intr_unregister_callback_fn ucb = e->ucb;
  void* arg = e->arg;
  {
    std::lock_guard<std::mutex> lock(g_table);
    e->used = false;
  }
  if (ucb != nullptr) ucb(h, arg);
}

}  // namespace

void enter() {
  for (;;) {
    while (g_pause.load()) sched_yield();
    g_in_burst.fetch_add(1);
    if (!g_pause.load()) return;
    g_in_burst.fetch_sub(1);
  }
}

void leave() {
  g_in_burst.fetch_sub(1);
}
uint64_t wrapped_callbacks() {
  return g_wrapped.load(std::memory_order_relaxed);
}

}  // namespace machnet::engine::memif_guard

using namespace machnet::engine::memif_guard;  // NOLINT: the C ABI below

extern "C" {

__attribute__((visibility("default"))) int rte_intr_callback_register(const rte_intr_handle* h,
                                                                      rte_intr_callback_fn cb,
                                                                      void* arg) {
  static const auto next = real<RegisterFn>("rte_intr_callback_register");
  if (next == nullptr) return -ENOSYS;
  if (!is_memif_callback(reinterpret_cast<void*>(cb))) return next(h, cb, arg);
  Entry* e = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_table);
    for (Entry& x : g_entries) {
      if (!x.used) {
        x = Entry{cb, arg, nullptr, true};
        e = &x;
        break;
      }
    }
  }
  if (e == nullptr) return next(h, cb, arg);  // table full: unguarded, as DPDK is
  int rc = next(h, trampoline, e);
  if (rc < 0) {
    std::lock_guard<std::mutex> lock(g_table);
    e->used = false;
  } else {
    g_wrapped.fetch_add(1, std::memory_order_relaxed);
  }
  return rc;
}

__attribute__((visibility("default"))) int rte_intr_callback_unregister(const rte_intr_handle* h,
                                                                        rte_intr_callback_fn cb,
                                                                        void* arg) {
  static const auto next = real<RegisterFn>("rte_intr_callback_unregister");
  if (next == nullptr) return -ENOSYS;
  Entry* e;
  {
    std::lock_guard<std::mutex> lock(g_table);
    e = find(cb, arg);
  }
  if (e == nullptr) return next(h, cb, arg);
  int rc = next(h, trampoline, e);
  if (rc > 0) {
    std::lock_guard<std::mutex> lock(g_table);
    e->used = false;
  }
  return rc;
}

__attribute__((visibility("default"))) int rte_intr_callback_unregister_pending(
    const rte_intr_handle* h, rte_intr_callback_fn cb, void* arg,
    rte_intr_unregister_callback_fn ucb) {
  static const auto next = real<UnregisterPendingFn>("rte_intr_callback_unregister_pending");
  if (next == nullptr) return -ENOSYS;
  Entry* e;
  {
    std::lock_guard<std::mutex> lock(g_table);
    e = find(cb, arg);
    if (e != nullptr) e->ucb = ucb;
  }
  if (e == nullptr) return next(h, cb, arg, ucb);
  return next(h, trampoline, e, unregister_trampoline);
}

}  // extern "C"
