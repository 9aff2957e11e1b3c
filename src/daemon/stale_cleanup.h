// Runtime files of earlier daemons. Each daemon's EAL prefix is
// machnetd-<name>-<pid>: its runtime directory /var/run/dpdk/<prefix> and its
// hugepage files <hugedir>/<prefix>map_* outlive a crash (and secondaries
// still attached keep mapping them). At start the daemon removes those whose
// pid is dead and whose files nobody holds locked.
#pragma once

#include <string>

#include "common/runtime_dir.h"  // dpdk_runtime_base

namespace machnet::daemon {

// Removes stale machnetd-*-<pid> runtime directories and their hugepage
// files; logs what it removed and what it left because it is still in use.
void stale_cleanup(const std::string& hugedir);

// Removes this daemon's runtime directory and hugepage files (at exit, after
// rte_eal_cleanup). Returns the number of hugepage files removed.
unsigned remove_runtime(const std::string& prefix, const std::string& hugedir);

}  // namespace machnet::daemon
