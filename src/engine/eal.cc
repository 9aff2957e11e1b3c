#include "engine/eal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>

namespace machnet::engine {
namespace {

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

// "0-3,6" style list of the CPUs this thread may run on.
std::string affinity_list(const cpu_set_t& set) {
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

std::mutex g_eal_mutex;
bool g_eal_done = false;

}  // namespace

std::vector<std::string> eal_arguments(const EngineConfig& config) {
  std::vector<std::string> args = {"machnet"};
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    // One lcore (0) that may run on every CPU the caller had: EAL pins the
    // main thread to lcore 0's set, so this keeps the application's CPU set.
    args.push_back("--lcores");
    args.push_back("0@(" + affinity_list(set) + ")");
  }
  if (is_pci_address(config.device)) {
    args.push_back("-a");
    args.push_back(config.device);
  } else {
    args.push_back("--no-pci");
    if (!config.device.empty()) args.push_back("--vdev=" + config.device);
  }
  if (config.hugepages) {
    args.push_back("--in-memory");
  } else {
    // --no-huge implies legacy memory, which EAL refuses with --in-memory;
    // --no-shconf keeps the runtime directory unused all the same.
    args.push_back("--no-huge");
    args.push_back("--no-shconf");
    args.push_back("-m");
    args.push_back("512");
  }
  // Unique per process: telemetry sockets and any runtime file never collide
  // between engines on one host.
  args.push_back("--file-prefix=machnet-" + std::to_string(getpid()));
  args.push_back("--log-level=" + config.log_level);
  std::istringstream extra(config.eal_args);
  for (std::string a; extra >> a;) args.push_back(a);
  return args;
}

bool eal_init_once(const EngineConfig& config, std::string* err) {
  std::lock_guard<std::mutex> lock(g_eal_mutex);
  if (g_eal_done) return true;

  cpu_set_t before;
  CPU_ZERO(&before);
  bool have_affinity = sched_getaffinity(0, sizeof(before), &before) == 0;
  std::set<int> fds_before = open_fds();

  std::vector<std::string> args = eal_arguments(config);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int rc = rte_eal_init(static_cast<int>(args.size()), argv.data());
  if (rc < 0) {
    std::string cmd;
    for (auto& a : args) cmd += " " + a;
    *err = std::string("DPDK EAL init failed: ") + rte_strerror(rte_errno) + " (args:" + cmd + ")";
    // EAL cannot be initialised twice in one process, even after a failure.
    g_eal_done = false;
    return false;
  }
  g_eal_done = true;

  for (int fd : open_fds()) {
    if (fds_before.count(fd) != 0) continue;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  if (have_affinity) sched_setaffinity(0, sizeof(before), &before);
  return true;
}

}  // namespace machnet::engine
