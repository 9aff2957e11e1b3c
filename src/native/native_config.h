// Settings of the native message API: the engine's keys (engine_config.h),
// the transport's tunables under "transport.*", and a few of the glue's own
// under "native.*". All come from the same machnet.conf / MACHNET_* variables
// / command-line overrides as the tools use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"
#include "engine/engine_config.h"
#include "transport/tunables.h"

namespace machnet::native {

struct NativeConfig {
  engine::EngineConfig engine;
  transport::Tunables tunables;
  // How long machnet_detach() keeps driving the engine so that flows the
  // channel closed can deliver their last messages and FIN.
  uint64_t linger_ns = 500'000'000;
  // A low-duty thread that drives the engine when no application thread has
  // called into the library for progress_idle_ns: without it, a program that
  // stops calling machnet_* leaves its peers without ACKs and keepalive
  // answers, and they declare it dead.
  bool progress_thread = true;
  uint64_t progress_idle_ns = 1'000'000;

  // Every key understood: the engine's, then "transport.*", then "native.*".
  static const std::vector<std::string>& keys();
  // Reads the keys present in `c` (unknown keys are the caller's business).
  // Also fits transport.mtu_payload to the engine MTU unless it was set.
  bool load(const Config& c, std::string* err);
};

// Builds a Config from a file (empty: $MACHNET_CONFIG if set), MACHNET_*
// variables and "key=value" overrides (highest precedence), rejecting unknown
// keys, then loads it. The error names the file:line / variable / override.
bool load_native_config(const std::string& path, const std::vector<std::string>& overrides,
                        NativeConfig* out, std::string* err);

}  // namespace machnet::native
