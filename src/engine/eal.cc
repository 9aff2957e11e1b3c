#include "engine/eal.h"

#include <sched.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_service_component.h>

#include <cstring>
#include <mutex>
#include <sstream>

#include "common/runtime_dir.h"
#include "engine/rundir.h"

namespace machnet::engine {
namespace {

std::mutex g_eal_mutex;
bool g_eal_done = false;
std::string g_eal_failed;  // a secondary init failed: EAL cannot be tried again

// rte_eal_init with the engine's guarantees: the caller keeps its CPU set,
// and every fd EAL opened is close-on-exec. g_eal_mutex held.
int run_eal_init(const std::vector<std::string>& args_in, std::string* cmd) {
  std::vector<std::string> args = args_in;
  cpu_set_t before;
  CPU_ZERO(&before);
  bool have_affinity = sched_getaffinity(0, sizeof(before), &before) == 0;
  std::set<int> fds_before = open_fds();

  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int rc = rte_eal_init(static_cast<int>(args.size()), argv.data());
  int saved = rte_errno;
  mark_new_fds_cloexec(fds_before);
  if (have_affinity) sched_setaffinity(0, sizeof(before), &before);
  cmd->clear();
  for (auto& a : args_in) *cmd += " " + a;
  rte_errno = saved;
  return rc;
}

}  // namespace

std::vector<std::string> eal_arguments(const EngineConfig& config) {
  std::vector<std::string> args = {"machnet"};
  std::string cpus = caller_cpu_list();
  if (!cpus.empty()) {
    // One lcore (0) that may run on every CPU the caller had: EAL pins the
    // main thread to lcore 0's set, so this keeps the application's CPU set.
    args.push_back("--lcores");
    args.push_back("0@(" + cpus + ")");
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
  if (!g_eal_failed.empty()) {
    *err = g_eal_failed;
    return false;
  }
  std::string cmd;
  int rc = run_eal_init(eal_arguments(config), &cmd);
  if (rc < 0) {
    *err = std::string("DPDK EAL init failed: ") + rte_strerror(rte_errno) + " (args:" + cmd + ")";
    // EAL made its runtime directory before it failed: nothing uses it.
    const char* dir = rte_eal_get_runtime_dir();
    if (dir != nullptr && dir[0] != '\0') remove_dir_signal_safe(dir);
    return false;
  }
  own_runtime_dir(rte_eal_get_runtime_dir());
  // Directories of standalone engines that ended without removing theirs.
  start_runtime_dir_sweep();
  g_eal_done = true;
  return true;
}

std::vector<std::string> eal_secondary_arguments(const EngineConfig& config,
                                                 const std::string& eal_prefix, unsigned lcore_id,
                                                 const std::string& device) {
  std::vector<std::string> args = {"machnet", "--proc-type=secondary",
                                   "--file-prefix=" + eal_prefix};
  // The lease's lcore id (unique among the daemon's processes: it names the
  // per-lcore mempool caches this process uses), runnable on every CPU the
  // caller had, so EAL's pinning keeps the application's CPU set.
  std::string cpus = caller_cpu_list();
  args.push_back("--lcores");
  args.push_back(std::to_string(lcore_id) + "@(" + (cpus.empty() ? "0" : cpus) + ")");
  if (is_pci_address(device)) {
    args.push_back("-a");
    args.push_back(device);
  } else {
    args.push_back("--no-pci");  // vdevs come from the primary
  }
  args.push_back("--log-level=" + config.log_level);
  std::istringstream extra(config.eal_args);
  for (std::string a; extra >> a;) args.push_back(a);
  return args;
}

bool eal_init_secondary_once(const EngineConfig& config, const std::string& eal_prefix,
                             unsigned lcore_id, const std::string& device, bool* already,
                             std::string* err) {
  std::lock_guard<std::mutex> lock(g_eal_mutex);
  *already = false;
  if (g_eal_done) {
    *already = true;
    return true;
  }
  if (!g_eal_failed.empty()) {
    *err = g_eal_failed;
    return false;
  }
  std::string cmd;
  int rc = run_eal_init(eal_secondary_arguments(config, eal_prefix, lcore_id, device), &cmd);
  if (rc < 0) {
    // EAL keeps half of its state after a failed init: a second rte_eal_init
    // in this process is not possible, so remember the failure for good.
    g_eal_failed = std::string("DPDK EAL init as a secondary of machnetd failed: ") +
                   (rte_errno != 0 ? rte_strerror(rte_errno) : "see the EAL messages above") +
                   " (args:" + cmd +
                   "); EAL cannot be initialised again in this process, so the engine stays off "
                   "until the program restarts";
    *err = g_eal_failed;
    return false;
  }
  // rte_eal_init put the service library's tables (~150 KiB, RTE_MAX_LCORE
  // core states) in the daemon's shared heap; only rte_eal_cleanup in this
  // process would free them, which a killed process never runs. The engine
  // runs no DPDK service: give them back now, so attaching costs the
  // daemon's heap nothing that outlives the process.
  rte_service_finalize();
  g_eal_done = true;
  return true;
}

}  // namespace machnet::engine
