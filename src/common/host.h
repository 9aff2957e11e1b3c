// Facts about the calling process that the engine and machnetd both turn
// into EAL arguments. No DPDK.
#pragma once

#include <string>

namespace machnet {

// The calling thread's CPU set as an EAL cpu list ("0-3,6"); "" if unknown.
// EAL pins the thread that calls rte_eal_init to its lcore's set: mapping the
// lcore onto this list keeps the caller's CPU set.
std::string caller_cpu_list();

// True when `dev` names a PCI device (0000:00:04.0 or 00:04.0), not a vdev.
bool is_pci_address(const std::string& dev);

}  // namespace machnet
