// DPDK EAL start-up for an engine living inside someone else's process.
#pragma once

#include <string>
#include <vector>

#include "common/host.h"  // is_pci_address, caller_cpu_list, open_fds
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

// EAL arguments of a secondary process joining machnetd's EAL: the daemon's
// file prefix, the lease's lcore id mapped onto the caller's CPU set, no PCI
// scan unless the daemon's device is a PCI address (then only that one).
// Never --in-memory and never --proc-type=auto.
std::vector<std::string> eal_secondary_arguments(const EngineConfig& config,
                                                 const std::string& eal_prefix, unsigned lcore_id,
                                                 const std::string& device);

// Initialises the EAL as a secondary of machnetd, with the guarantees of
// eal_init_once. A failed secondary init cannot be retried in this process:
// later calls fail at once with the first error. *already is set when EAL
// was initialised before this call (by an earlier engine, or by a test as a
// primary); nothing is done then.
bool eal_init_secondary_once(const EngineConfig& config, const std::string& eal_prefix,
                             unsigned lcore_id, const std::string& device, bool* already,
                             std::string* err);

}  // namespace machnet::engine
