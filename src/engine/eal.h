// DPDK EAL start-up for an engine living inside someone else's process.
#pragma once

#include <string>
#include <vector>

#include "engine/engine_config.h"

namespace machnet::engine {

// The EAL arguments the engine uses (exposed for tests and for the start-up
// log line): no PCI scan unless the device is a PCI address, --in-memory, a
// unique file prefix, lcore 0 mapped onto the caller's current CPU set.
std::vector<std::string> eal_arguments(const EngineConfig& config);

// Initialises the EAL once per process. Keeps the calling thread's CPU
// affinity and marks every file descriptor EAL opened close-on-exec, so an
// exec'd child starts clean. Safe to call again (returns true once done).
bool eal_init_once(const EngineConfig& config, std::string* err);

}  // namespace machnet::engine
