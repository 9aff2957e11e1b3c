// EAL start-up for the daemon: a primary process whose memory secondaries
// (the applications) attach to.
#pragma once

#include <string>
#include <vector>

#include "common/host.h"  // is_pci_address, caller_cpu_list
#include "daemon/config.h"

namespace machnet::daemon {

// The hugetlbfs mount to use: the first one in /proc/mounts (2 MB pages
// preferred); when there is none, mounts one on /dev/hugepages. Empty and
// *err set when neither works.
std::string find_or_mount_hugetlbfs(std::string* err);

// "--proc-type=primary --file-prefix=<prefix> --base-virtaddr=... --lcores
// 0@(<affinity>) --log-level=... --huge-dir=... --no-pci --vdev=<device>"
// (or "-a <pci address>"), then machnetd.eal_args.
std::vector<std::string> eal_arguments(const DaemonConfig& cfg, const std::string& prefix,
                                       const std::string& hugedir);

// rte_eal_init with those arguments; false with *err naming the arguments.
bool eal_init(const std::vector<std::string>& args, std::string* err);

}  // namespace machnet::daemon
