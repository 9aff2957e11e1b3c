// Threads asleep in blocking calls, and how they are woken.
//
// One waiting policy for every front-end: a blocking call spins on the engine
// for socket.spin_us, then registers its thread's Waiter and sleeps in ppoll
// on the thread's eventfd (plus whatever kernel fds it also waits for).
// Whoever polls the engine next — an application thread, or the progress
// thread that sleeps on the NIC's own fds while anybody waits — runs a wake
// round: every waiter whose sequence moved gets its eventfd written.
//
// What a waiter waits for is the front-end's business: it supplies seq(), a
// number that moves on every arrival or state change of the things it waits
// on (a socket's datagram counter, a channel's event counter...), and
// ready(), true when something can be taken now. Both are called with the
// stack lock held.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace machnet::stack {

struct Waiter;
using WaiterSeqFn = uint64_t (*)(const Waiter& w);
using WaiterReadyFn = bool (*)(const Waiter& w);

struct Waiter {
  int efd = -1;  // the thread's eventfd (EFD_NONBLOCK | EFD_CLOEXEC)
  WaiterSeqFn seq = nullptr;
  WaiterReadyFn ready = nullptr;
  // The front-end's description of what is waited for.
  const void* ctx = nullptr;
  const uint64_t* handles = nullptr;
  size_t n = 0;
  // seq() when the waiter was registered: any change is a reason to wake.
  uint64_t baseline = 0;
  bool woken = false;
  bool registered = false;
};

// The table of registered sleepers. Guarded by the stack lock; count() is
// also read without it (one load on every poll while nobody sleeps).
class Waiters {
 public:
  Waiters() { table_.reserve(256); }
  // The calling thread's waiter, its eventfd created on first use; nullptr
  // when no eventfd can be made (then callers sleep in bounded slices).
  static Waiter* mine();

  uint32_t count() const { return count_.load(std::memory_order_relaxed); }
  void add(Waiter* w);
  void remove(Waiter* w);
  // Wakes (writes the eventfd of, and unregisters) every waiter whose seq()
  // moved since it registered, or every waiter when `all`.
  void wake(bool all);

 private:
  std::vector<Waiter*> table_;
  std::atomic<uint32_t> count_{0};
};

}  // namespace machnet::stack
