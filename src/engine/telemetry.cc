// The engine's counters through DPDK telemetry: /machnet/counters on the
// process's telemetry socket (dpdk-telemetry.py -f machnet-<pid>), so
// operators and machnet-stat can read a live engine without stopping it.
#include <rte_telemetry.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>

#include "engine/engine_impl.h"

namespace machnet::engine {
namespace {

// One engine per process; the telemetry thread reads its counters while the
// data path writes them (aligned 64-bit loads: a value may be one update old).
std::atomic<const Engine::Impl*> g_engine{nullptr};

int counters_cb(const char*, const char*, rte_tel_data* d) {
  const Engine::Impl* e = g_engine.load();
  rte_tel_data_start_dict(d);
  if (e == nullptr) return 0;
  const EngineCounters& c = e->counters;
  rte_tel_data_add_dict_string(d, "device", e->device_name.c_str());
  rte_tel_data_add_dict_string(d, "ip", wire::format_ipv4(e->config.ip).c_str());
  rte_tel_data_add_dict_u64(d, "rx_packets", c.rx_packets);
  rte_tel_data_add_dict_u64(d, "rx_bytes", c.rx_bytes);
  rte_tel_data_add_dict_u64(d, "tx_packets", c.tx_packets);
  rte_tel_data_add_dict_u64(d, "tx_bytes", c.tx_bytes);
  rte_tel_data_add_dict_u64(d, "udp_rx", c.udp_rx);
  rte_tel_data_add_dict_u64(d, "udp_tx", c.udp_tx);
  rte_tel_data_add_dict_u64(d, "arp_rx", c.rx_arp);
  rte_tel_data_add_dict_u64(d, "arp_tx", c.tx_arp);
  rte_tel_data_add_dict_u64(d, "icmp_echo_replies", c.icmp_echo_replies);
  rte_tel_data_add_dict_u64(d, "icmp_unreachable_rx", c.icmp_unreachable_rx);
  rte_tel_data_add_dict_u64(d, "icmp_unreachable_tx", c.icmp_unreachable_tx);
  rte_tel_data_add_dict_u64(d, "fragments_rx", c.rx_fragments);
  rte_tel_data_add_dict_u64(d, "reassembled", c.reassembled);
  rte_tel_data_add_dict_u64(d, "fragments_tx", c.tx_fragments);
  rte_tel_data_add_dict_u64(d, "steered_out", c.steered_out);
  rte_tel_data_add_dict_u64(d, "steered_in", c.steered_in);
  rte_tel_data_add_dict_u64(d, "steer_drops", c.steer_drops);
  for (size_t i = 0; i < kDropReasonCount; i++) {
    std::string name = std::string("drop_") + drop_reason_name(static_cast<DropReason>(i));
    rte_tel_data_add_dict_u64(d, name.c_str(), c.drops[i]);
  }
  return 0;
}

// Commands registered by the layers above (telemetry_register): DPDK's
// callbacks take no context, so one callback serves them all by name.
struct Registered {
  char cmd[64];
  TelemetryFill fill;
};
constexpr size_t kMaxRegistered = 8;
Registered g_registered[kMaxRegistered];
std::atomic<size_t> g_n_registered{0};
std::mutex g_register_mu;

void add_u64(void* dict, const char* name, uint64_t value) {
  rte_tel_data_add_dict_u64(static_cast<rte_tel_data*>(dict), name, value);
}

int registered_cb(const char* cmd, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  size_t n = g_n_registered.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; i++) {
    if (std::strcmp(g_registered[i].cmd, cmd) == 0) {
      g_registered[i].fill(d, add_u64);
      break;
    }
  }
  return 0;
}

}  // namespace

bool telemetry_register(const char* cmd, const char* help, TelemetryFill fill) {
  std::lock_guard<std::mutex> lock(g_register_mu);
  size_t n = g_n_registered.load(std::memory_order_relaxed);
  if (n == kMaxRegistered || std::strlen(cmd) >= sizeof(g_registered[n].cmd)) return false;
  for (size_t i = 0; i < n; i++)
    if (std::strcmp(g_registered[i].cmd, cmd) == 0) return false;
  std::strcpy(g_registered[n].cmd, cmd);
  g_registered[n].fill = fill;
  // Published before DPDK can call back with it.
  g_n_registered.store(n + 1, std::memory_order_release);
  return rte_telemetry_register_cmd(cmd, registered_cb, help) == 0;
}

void telemetry_attach(const Engine::Impl* e) {
  static std::once_flag once;
  std::call_once(once, [] {
    rte_telemetry_register_cmd("/machnet/counters", counters_cb,
                               "Engine counters, drops by reason. No parameters.");
  });
  g_engine.store(e);
}

void telemetry_detach(const Engine::Impl* e) {
  const Engine::Impl* expected = e;
  g_engine.compare_exchange_strong(expected, nullptr);
}

}  // namespace machnet::engine
