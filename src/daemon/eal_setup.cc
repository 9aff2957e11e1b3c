#include "daemon/eal_setup.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "daemon/clock.h"
#include "engine/log.h"

namespace machnet::daemon {
std::string find_or_mount_hugetlbfs(std::string* err) {
  std::ifstream mounts("/proc/mounts");
  std::string line, any;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string dev, dir, type, opts;
    in >> dev >> dir >> type >> opts;
    if (type != "hugetlbfs") continue;
    if (opts.find("pagesize=") == std::string::npos ||
        opts.find("pagesize=2M") != std::string::npos)
      return dir;
    if (any.empty()) any = dir;
  }
  if (!any.empty()) return any;
  const char* dir = "/dev/hugepages";
  mkdir(dir, 0755);
  if (mount("nodev", dir, "hugetlbfs", 0, "pagesize=2M") != 0) {
    *err = std::string("no hugetlbfs mounted and mounting one on ") + dir +
           " failed: " + std::strerror(errno) + " (mount -t hugetlbfs nodev " + dir + ")";
    return "";
  }
  MN_LOG(DAEMON, NOTICE, "mounted hugetlbfs on %s", dir);
  return dir;
}

std::vector<std::string> eal_arguments(const DaemonConfig& cfg, const std::string& prefix,
                                       const std::string& hugedir) {
  std::vector<std::string> args = {"machnetd", "--proc-type=primary", "--file-prefix=" + prefix};
  char va[32];
  std::snprintf(va, sizeof(va), "0x%llx", static_cast<unsigned long long>(cfg.base_virtaddr));
  if (cfg.base_virtaddr != 0) args.push_back(std::string("--base-virtaddr=") + va);
  std::string cpus = caller_cpu_list();
  if (!cpus.empty()) {
    args.push_back("--lcores");
    args.push_back("0@(" + cpus + ")");
  }
  args.push_back("--log-level=" + cfg.log_level);
  if (!hugedir.empty()) args.push_back("--huge-dir=" + hugedir);
  if (is_pci_address(cfg.device)) {
    args.push_back("-a");
    args.push_back(cfg.device);
  } else {
    args.push_back("--no-pci");
    args.push_back("--vdev=" + cfg.device);
  }
  std::istringstream extra(cfg.eal_args);
  for (std::string a; extra >> a;) args.push_back(a);
  return args;
}

bool eal_init(const std::vector<std::string>& args, std::string* err) {
  std::vector<std::string> copy = args;  // EAL may permute argv
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(copy.size()), argv.data()) < 0) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    *err = std::string("DPDK EAL init failed: ") + rte_strerror(rte_errno) + " (args:" + cmd + ")";
    return false;
  }
  return true;
}

}  // namespace machnet::daemon
