#include "common/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
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

PortRange engine_ephemeral_range_from(const std::string& kernel_range) {
  unsigned lo = 32768, hi = 60999;
  unsigned a = 0, b = 0;
  if (std::sscanf(kernel_range.c_str(), "%u %u", &a, &b) == 2 && a >= 1 && a <= b && b <= 65535) {
    lo = a;
    hi = b;
  }
  if (65535 - hi >= 1024) return {static_cast<uint16_t>(hi + 1), 65535, true};
  if (lo >= 1024 + 4096 + 1)
    return {static_cast<uint16_t>(lo - 4096), static_cast<uint16_t>(lo - 1), true};
  return {static_cast<uint16_t>(lo), static_cast<uint16_t>(hi), false};
}

std::string read_text_file(const std::string& path, size_t max_bytes) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  while (out.size() < max_bytes) {
    ssize_t n = read(fd, buf, std::min(sizeof(buf), max_bytes - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

PortRange engine_ephemeral_range() {
  return engine_ephemeral_range_from(read_text_file("/proc/sys/net/ipv4/ip_local_port_range"));
}

}  // namespace machnet
