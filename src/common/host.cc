#include "common/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>

#include <cstdlib>

namespace machnet {

std::string caller_cpu_list() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) == 0) return "";
  std::string out;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set)) continue;
    int end = cpu;
    while (end + 1 < CPU_SETSIZE && CPU_ISSET(end + 1, &set)) end++;
    if (!out.empty()) out += ',';
    out += std::to_string(cpu);
    if (end > cpu) out += "-" + std::to_string(end);
    cpu = end;
  }
  return out;
}

bool is_pci_address(const std::string& dev) {
  // dddd:bb:dd.f or bb:dd.f
  return !dev.empty() && dev.find(':') != std::string::npos && dev.find('.') != std::string::npos &&
         dev.find('=') == std::string::npos && dev.rfind("net_", 0) != 0;
}

std::set<int> open_fds() {
  std::set<int> fds;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != dirfd(d)) fds.insert(fd);
  }
  closedir(d);
  return fds;
}

std::set<int> mark_new_fds_cloexec(const std::set<int>& before) {
  std::set<int> added;
  for (int fd : open_fds()) {
    if (before.count(fd) != 0) continue;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    added.insert(fd);
  }
  return added;
}

}  // namespace machnet
