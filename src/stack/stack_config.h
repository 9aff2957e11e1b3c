// Settings of the process-wide stack: the engine's keys (engine_config.h),
// the transport's tunables ("transport.*"), how blocked threads wait
// ("socket.*") and the native API's few own keys ("native.*"). One
// machnet.conf, MACHNET_* variables and "key=value" overrides, in rising
// precedence, serve the preload shim, the native API and the tools alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"
#include "engine/engine_config.h"
#include "transport/tunables.h"

namespace machnet::stack {

// How a blocking call waits: it spins on the engine for spin_ns, then sleeps
// until an arrival wakes it (sleep_ns bounds one sleep as a backstop). The
// progress thread drives the engine every progress_ns while no application
// thread does (0: no progress thread), and every wake_poll_ns while somebody
// sleeps on a device whose arrivals cannot wake it (memif, tap, machnetd
// without park).
struct WaitConfig {
  int64_t spin_ns = 100'000;
  int64_t sleep_ns = 100'000'000;
  int64_t progress_ns = 1'000'000;
  int64_t wake_poll_ns = 50'000;
  // Attached to machnetd: sleepers park the lease and machnetd wakes them
  // (instead of the wake_poll_ns polling).
  bool park = true;
  // No spinning while the host has more processes attached to machnetd
  // than CPUs (Stack::spin_ns()).
  bool adaptive_spin = true;
  // At most this many threads of the process spin at once; the others
  // sleep at once (a spinner polls the engine for everyone and wakes them).
  // 0: the CPUs the process may run on, minus one, at least one.
  uint32_t spinners = 0;
};

struct StackConfig {
  engine::EngineConfig engine;
  transport::Tunables tunables;
  WaitConfig wait;
  // How long machnet_detach() keeps driving the engine so that flows the
  // channel closed can deliver their last messages and FIN.
  uint64_t linger_ns = 500'000'000;
  // native.progress_thread / native.progress_idle_us: the older names of
  // socket.progress_us (off = 0), kept so existing files still load.
  bool progress_thread = true;
  uint64_t progress_idle_ns = 1'000'000;

  // Every key this layer understands: the engine's, "transport.*",
  // "socket.*" and "native.*".
  static const std::vector<std::string>& keys();
  // Reads the keys present in `c` (unknown keys are the caller's business).
  // Also fits transport.mtu_payload to the engine MTU unless it was set.
  bool load(const Config& c, std::string* err);
};

// Builds a Config from a file (empty: $MACHNET_CONFIG if set), MACHNET_*
// variables and "key=value" overrides (highest precedence), every key checked
// against the schema of machnet.conf (common/conf.h: the shim's, the daemon's
// keys included), then loads it. The error names the file:line / variable /
// override.
bool load_stack_config(const std::string& path, const std::vector<std::string>& overrides,
                       StackConfig* out, std::string* err);

}  // namespace machnet::stack
