#include "engine/log.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/conf.h"

namespace machnet::log {
namespace {

uint32_t register_type(const char* name) {
  // Default DEBUG: the global level (log_level) alone decides, unless EAL
  // options name the type (--log-level=machnet.daemon:info in eal_args).
  int t = rte_log_register_type_and_pick_level(name, RTE_LOG_DEBUG);
  return t < 0 ? RTE_LOGTYPE_USER1 : static_cast<uint32_t>(t);
}

}  // namespace

bool set_level(const std::string& setting, std::string* err) {
  char why[512];
  if (mn_conf_check("log_level", setting.c_str(), "configuration", why, sizeof(why)) != 0) {
    *err = why;
    return false;
  }
  int level = 0;
  mn_conf_log_level(setting.c_str(), &level);
  uint32_t engine = type(Source::kEngine), daemon = type(Source::kDaemon);
  rte_openlog_stream(stderr);
  if (level > 0) {
    rte_log_set_global_level(static_cast<uint32_t>(level));
    return true;
  }
  // PATTERN:LEVEL: machnet's own types at the default level, unless the
  // pattern names them; DPDK's matching components at LEVEL.
  int def = RTE_LOG_NOTICE;
  mn_conf_log_level(mn_conf_lookup("log_level")->def, &def);
  rte_log_set_level(engine, static_cast<uint32_t>(def));
  rte_log_set_level(daemon, static_cast<uint32_t>(def));
  size_t colon = setting.rfind(':');
  mn_conf_log_level(setting.c_str() + colon + 1, &level);
  rte_log_set_level_pattern(setting.substr(0, colon).c_str(), static_cast<uint32_t>(level));
  return true;
}

uint32_t type(Source s) {
  static const uint32_t engine = register_type("machnet.engine");
  static const uint32_t daemon = register_type("machnet.daemon");
  return s == Source::kDaemon ? daemon : engine;
}

void write(Source s, uint32_t level, const char* fmt, ...) {
  uint32_t t = type(s);
  if (!rte_log_can_log(t, level)) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  // One call, one line: rte_log writes it with a single formatted write.
  rte_log(level, t, "%s%s\n", s == Source::kDaemon ? "machnetd: " : "machnet: ", buf);
}

}  // namespace machnet::log
