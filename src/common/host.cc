#include "common/host.h"

#include <sched.h>

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

}  // namespace machnet
