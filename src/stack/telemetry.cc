// The transport's counters on the process's DPDK telemetry socket, beside
// the engine's /machnet/counters: /machnet/transport answers with a dict of
// every MACHNET_TRANSPORT_COUNTERS entry (generated from the X-macro: a new
// counter shows up by itself) followed by the stack's own
// (MACHNET_STACK_COUNTERS: fallbacks the transport never sees, kernel
// accepts). machnet-stat --pid reads both.
//
// The telemetry thread copies the counters under the stack lock
// (snapshot_counters): the data path's increments stay plain, unlocked by
// anything new, and a reply is one consistent snapshot.
#include "stack/stack.h"

namespace machnet::stack {

namespace {

void fill_transport(void* dict, engine::TelemetryAdd add) {
  Stack* s = Stack::get();
  if (s == nullptr) return;
  transport::Counters tc;
  StackCounters sc;
  s->snapshot_counters(&tc, &sc);
#define MACHNET_X(n) add(dict, #n, tc.n);
  MACHNET_TRANSPORT_COUNTERS(MACHNET_X)
#undef MACHNET_X
#define MACHNET_X(n) add(dict, #n, sc.n);
  MACHNET_STACK_COUNTERS(MACHNET_X)
#undef MACHNET_X
  // Lock-free, outside StackCounters.
  add(dict, "spin_refused", s->spin_refused());
}

}  // namespace

void Stack::publish_counters() {
  engine::telemetry_register("/machnet/transport",
                             "Transport and stream-socket counters, fallbacks to kernel TCP by "
                             "reason. No parameters.",
                             fill_transport);
}

void Stack::snapshot_counters(transport::Counters* tc, StackCounters* sc) {
  // After at_exit the transport stays (inert) and the lock is free again.
  Lock lock(mu_);
  *tc = tp_->counters();
  *sc = counters_;
}

}  // namespace machnet::stack
