// Facts about the calling process that the engine and machnetd both turn
// into EAL arguments, and its file descriptors. No DPDK.
#pragma once

#include <set>
#include <string>

namespace machnet {

// The calling thread's CPU set as an EAL cpu list ("0-3,6"); "" if unknown.
// EAL pins the thread that calls rte_eal_init to its lcore's set: mapping the
// lcore onto this list keeps the caller's CPU set.
std::string caller_cpu_list();

// True when `dev` names a PCI device (0000:00:04.0 or 00:04.0), not a vdev.
bool is_pci_address(const std::string& dev);

// The file descriptors the process has open now (/proc/self/fd); empty when
// /proc is not mounted.
std::set<int> open_fds();

// Marks close-on-exec every descriptor open now that was not in `before`
// (open_fds() taken before a library opened its own: EAL, AF_XDP sockets, BPF
// maps), so an exec'd program never inherits them. Returns those descriptors.
std::set<int> mark_new_fds_cloexec(const std::set<int>& before);

}  // namespace machnet
