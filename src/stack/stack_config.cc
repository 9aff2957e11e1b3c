#include "stack/stack_config.h"

#include <cstdlib>

#include "transport/wire_format.h"

namespace machnet::stack {

namespace {

// Transport knobs exposed as configuration keys (their ranges: the schema,
// common/conf_schema.c). Times are given in the unit named by the key (the
// tunables hold nanoseconds).
enum class Kind { kU32, kU64Time, kBool, kU16 };
struct TunableKey {
  const char* key;
  Kind kind;
  uint64_t unit_ns;  // kU64Time: nanoseconds per unit of the key
  uint32_t transport::Tunables::*u32;
  uint64_t transport::Tunables::*u64;
  bool transport::Tunables::*b;
  uint16_t transport::Tunables::*u16 = nullptr;
};

using T = transport::Tunables;
constexpr uint64_t kUs = 1000, kMs = 1000 * 1000;
const TunableKey kTunableKeys[] = {
    {"transport.mtu_payload", Kind::kU32, 0, &T::mtu_payload, nullptr, nullptr},
    {"transport.max_message_bytes", Kind::kU32, 0, &T::max_message_bytes, nullptr, nullptr},
    {"transport.send_buffer_bytes", Kind::kU32, 0, &T::send_buffer_bytes, nullptr, nullptr},
    {"transport.recv_buffer_bytes", Kind::kU32, 0, &T::recv_buffer_bytes, nullptr, nullptr},
    {"transport.max_inflight_segments", Kind::kU32, 0, &T::max_inflight_segments, nullptr, nullptr},
    {"transport.max_flows", Kind::kU32, 0, &T::max_flows, nullptr, nullptr},
    {"transport.listen_backlog", Kind::kU32, 0, &T::listen_backlog, nullptr, nullptr},
    {"transport.syn_rto_us", Kind::kU64Time, kUs, nullptr, &T::syn_rto_ns, nullptr},
    {"transport.syn_max_retries", Kind::kU32, 0, &T::syn_max_retries, nullptr, nullptr},
    {"transport.rto_initial_us", Kind::kU64Time, kUs, nullptr, &T::rto_initial_ns, nullptr},
    {"transport.rto_min_us", Kind::kU64Time, kUs, nullptr, &T::rto_min_ns, nullptr},
    {"transport.rto_max_us", Kind::kU64Time, kUs, nullptr, &T::rto_max_ns, nullptr},
    {"transport.max_retransmits", Kind::kU32, 0, &T::max_retransmits, nullptr, nullptr},
    {"transport.delayed_ack_us", Kind::kU64Time, kUs, nullptr, &T::delayed_ack_ns, nullptr},
    {"transport.ack_every_segments", Kind::kU32, 0, &T::ack_every_segments, nullptr, nullptr},
    {"transport.keepalive_idle_ms", Kind::kU64Time, kMs, nullptr, &T::keepalive_idle_ns, nullptr},
    {"transport.keepalive_interval_ms", Kind::kU64Time, kMs, nullptr, &T::keepalive_interval_ns,
     nullptr},
    {"transport.keepalive_probes", Kind::kU32, 0, &T::keepalive_probes, nullptr, nullptr},
    {"transport.time_wait_ms", Kind::kU64Time, kMs, nullptr, &T::time_wait_ns, nullptr},
    {"transport.initial_cwnd_segments", Kind::kU32, 0, &T::initial_cwnd_segments, nullptr, nullptr},
    {"transport.payload_checksum", Kind::kBool, 0, nullptr, nullptr, &T::payload_checksum},
    {"transport.cc_slow_start", Kind::kBool, 0, nullptr, nullptr, &T::cc_slow_start},
    {"transport.max_half_open", Kind::kU32, 0, &T::max_half_open, nullptr, nullptr},
    {"transport.half_open_evict_us", Kind::kU64Time, kUs, nullptr, &T::half_open_evict_ns, nullptr},
    {"transport.rendezvous_port", Kind::kU16, 0, nullptr, nullptr, nullptr, &T::rendezvous_port},
    {"transport.probe_timeout_us", Kind::kU64Time, kUs, nullptr, &T::probe_timeout_ns, nullptr},
    {"transport.probe_plain_ttl_ms", Kind::kU64Time, kMs, nullptr, &T::probe_plain_ttl_ns, nullptr},
    {"transport.probe_no_service_ttl_ms", Kind::kU64Time, kMs, nullptr, &T::probe_no_service_ttl_ns,
     nullptr},
};

constexpr const char* kLingerKey = "native.linger_ms";
constexpr const char* kProgressKey = "native.progress_thread";
constexpr const char* kProgressIdleKey = "native.progress_idle_us";
constexpr const char* kParkKey = "socket.park";
constexpr const char* kAdaptiveSpinKey = "socket.adaptive_spin";
constexpr const char* kSpinnersKey = "socket.spinners";

// socket.*: how blocked threads wait (WaitConfig), in microseconds.
struct WaitKey {
  const char* key;
  int64_t WaitConfig::*field;
};
const WaitKey kWaitKeys[] = {
    {"socket.spin_us", &WaitConfig::spin_ns},
    {"socket.sleep_us", &WaitConfig::sleep_ns},
    {"socket.progress_us", &WaitConfig::progress_ns},
    {"socket.wake_poll_us", &WaitConfig::wake_poll_ns},
};

}  // namespace

const std::vector<std::string>& StackConfig::keys() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> v = engine::EngineConfig::keys();
    for (const TunableKey& t : kTunableKeys) v.push_back(t.key);
    v.push_back(kLingerKey);
    v.push_back(kProgressKey);
    v.push_back(kProgressIdleKey);
    for (const WaitKey& w : kWaitKeys) v.push_back(w.key);
    v.push_back(kParkKey);
    v.push_back(kAdaptiveSpinKey);
    v.push_back(kSpinnersKey);
    return v;
  }();
  return k;
}

bool StackConfig::load(const Config& c, std::string* err) {
  // What each value may be: the schema (common/conf_schema.c), for the shim
  // and every other reader alike.
  for (const std::string& k : keys()) {
    if (!c.check(k, err)) return false;
  }
  if (!engine.load(c, err)) return false;
  for (const TunableKey& t : kTunableKeys) {
    if (!c.has(t.key)) continue;
    uint64_t v = 0;
    switch (t.kind) {
      case Kind::kU32:
        if (!c.get_uint(t.key, &v, err)) return false;
        tunables.*(t.u32) = static_cast<uint32_t>(v);
        break;
      case Kind::kU64Time:
        if (!c.get_uint(t.key, &v, err)) return false;
        tunables.*(t.u64) = v * t.unit_ns;
        break;
      case Kind::kBool:
        if (!c.get_bool(t.key, &(tunables.*(t.b)), err)) return false;
        break;
      case Kind::kU16:
        if (!c.get_uint(t.key, &v, err)) return false;
        tunables.*(t.u16) = static_cast<uint16_t>(v);
        break;
    }
  }
  if (!c.has("transport.mtu_payload")) {
    // The transport's default (1400) assumes a smaller header: with its 88
    // bytes plus IPv4 and UDP it would not fit a 1500-byte frame and every
    // segment would leave as two IP fragments.
    uint32_t fit = uint32_t{engine.mtu} - 20 - 8 - static_cast<uint32_t>(transport::kHeaderSize);
    if (fit < tunables.mtu_payload) tunables.mtu_payload = fit;
  }
  uint64_t v = linger_ns / kMs;
  if (!c.get_uint(kLingerKey, &v, err)) return false;
  linger_ns = v * kMs;
  if (!c.get_bool(kProgressKey, &progress_thread, err)) return false;
  v = progress_idle_ns / kUs;
  if (!c.get_uint(kProgressIdleKey, &v, err)) return false;
  progress_idle_ns = v * kUs;
  for (const WaitKey& w : kWaitKeys) {
    v = static_cast<uint64_t>(wait.*(w.field) / 1000);
    if (!c.get_uint(w.key, &v, err)) return false;
    wait.*(w.field) = static_cast<int64_t>(v) * 1000;
  }
  if (!c.get_bool(kParkKey, &wait.park, err)) return false;
  if (!c.get_bool(kAdaptiveSpinKey, &wait.adaptive_spin, err)) return false;
  v = wait.spinners;
  if (!c.get_uint(kSpinnersKey, &v, err)) return false;
  wait.spinners = static_cast<uint32_t>(v);
  // The older native.* names of the progress period, unless socket.* says.
  if (!c.has("socket.progress_us")) {
    if (c.has(kProgressIdleKey)) wait.progress_ns = static_cast<int64_t>(progress_idle_ns);
    if (!progress_thread) wait.progress_ns = 0;
  }
  std::string why = tunables.validate();
  if (!why.empty()) {
    *err = "transport settings: " + why;
    return false;
  }
  return true;
}

bool load_stack_config(const std::string& path, const std::vector<std::string>& overrides,
                       StackConfig* out, std::string* err) {
  std::string file = path;
  if (file.empty()) {
    const char* env = std::getenv("MACHNET_CONFIG");
    if (env != nullptr) file = env;
  }
  std::vector<Config::Override> ov;
  for (const std::string& kv : overrides) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      *err = "override '" + kv + "': expected KEY=VALUE";
      return false;
    }
    ov.push_back({kv.substr(0, eq), kv.substr(eq + 1), "override " + kv.substr(0, eq)});
  }
  // Every key of machnet.conf is accepted (one file serves the shim, the
  // stack and machnetd) and checked, as the shim checks it; these are the
  // ones read here.
  Config cfg;
  return cfg.load(file, ov, err) && out->load(cfg, err);
}

}  // namespace machnet::stack
