#include "daemon/stale_cleanup.h"

#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "common/runtime_dir.h"
#include "engine/log.h"

namespace machnet::daemon {
namespace {

std::vector<std::string> hugepage_files(const std::string& hugedir, const std::string& prefix) {
  std::vector<std::string> out;
  if (hugedir.empty()) return out;
  std::string p = prefix + "map_";
  for (const auto& f : list_dir(hugedir))
    if (f.compare(0, p.size(), p) == 0) out.push_back(hugedir + "/" + f);
  return out;
}

}  // namespace

void stale_cleanup(const std::string& hugedir) {
  const std::string base = dpdk_runtime_base();
  for (const auto& name : list_dir(base)) {
    if (name.rfind("machnetd-", 0) != 0) continue;
    auto dash = name.rfind('-');
    if (dash == std::string::npos || dash + 1 >= name.size() || dash < 9) continue;
    char* end = nullptr;
    long pid = std::strtol(name.c_str() + dash + 1, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    const std::string dir = base + "/" + name;
    if (pid_alive(pid)) {
      MN_LOG(DAEMON, NOTICE, "stale cleanup: leaving %s (pid %ld is running)", dir.c_str(), pid);
      continue;
    }
    std::vector<std::string> files = list_dir(dir);
    std::vector<std::string> pages = hugepage_files(hugedir, name);
    std::string busy;
    for (const auto& f : files) {
      if ((f.rfind("fbarray_", 0) == 0 || f == "config") && file_locked(dir + "/" + f)) {
        busy = dir + "/" + f;
        break;
      }
    }
    for (size_t i = 0; busy.empty() && i < pages.size(); i++)
      if (file_locked(pages[i])) busy = pages[i];
    if (!busy.empty()) {
      MN_LOG(DAEMON, WARNING,
             "stale cleanup: leaving %s: still in use (%s is locked by a process attached to it)",
             dir.c_str(), busy.c_str());
      continue;
    }
    for (const auto& f : files) unlink((dir + "/" + f).c_str());
    rmdir(dir.c_str());
    for (const auto& p : pages) unlink(p.c_str());
    MN_LOG(DAEMON, NOTICE,
           "stale cleanup: removed %s (%zu files) and %zu hugepage files of dead daemon pid %ld",
           dir.c_str(), files.size(), pages.size(), pid);
  }
}

unsigned remove_runtime(const std::string& prefix, const std::string& hugedir) {
  const std::string dir = dpdk_runtime_base() + "/" + prefix;
  for (const auto& f : list_dir(dir)) unlink((dir + "/" + f).c_str());
  rmdir(dir.c_str());
  unsigned n = 0;
  for (const auto& p : hugepage_files(hugedir, prefix))
    if (unlink(p.c_str()) == 0) n++;
  return n;
}

}  // namespace machnet::daemon
