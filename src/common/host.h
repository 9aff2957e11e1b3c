// Facts about the calling process that the engine and machnetd both turn
// into EAL arguments, and its file descriptors. No DPDK.
#pragma once

#include <cstdint>
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

// The contents of a (small) file, at most max_bytes, opened close-on-exec:
// std::ifstream's descriptor is not, and a thread of the program may fork
// and exec meanwhile. "" when it cannot be read.
std::string read_text_file(const std::string& path, size_t max_bytes = 65536);

// The UDP ports the engine and machnetd hand out for port 0. They lie outside
// the kernel's ephemeral range (net.ipv4.ip_local_port_range): the engine
// holds some ports with no kernel socket behind them (native-API flows,
// stream connections), and a kernel socket bound to port 0 (a preloaded
// socket's twin, or any other program) must never be given one of those.
// Above the kernel's range when 1,024 ports or more are left there
// (61000-65535 with Linux's default), else the 4,096 ports below it; the
// kernel's own range (disjoint false: collisions possible) when neither fits.
struct PortRange {
  uint16_t first;
  uint16_t last;
  bool disjoint;
};
PortRange engine_ephemeral_range();
// The same from the text of ip_local_port_range ("32768\t60999\n"); Linux's
// default when it cannot be parsed.
PortRange engine_ephemeral_range_from(const std::string& kernel_range);

}  // namespace machnet
