// One logging facility for the engine and machnetd: DPDK's rte_log, with
// machnet's own log types "machnet.engine" and "machnet.daemon" beside
// DPDK's. The log_level key (engine and daemon configuration) is the most
// verbose level logged, by DPDK and by machnet alike: it is EAL's
// --log-level, and set_level() applies it before EAL starts. Everything
// goes to stderr, one whole line per message, starting "machnet: " (engine)
// or "machnetd: " (daemon).
//
// Levels: ERR for what failed, WARNING for what may fail, NOTICE for what
// an operator wants to see (a daemon starting, leases reclaimed), INFO for
// details, DEBUG for per-event tracing. No logging on per-packet paths.
#pragma once

#include <rte_log.h>

#include <cstdint>
#include <string>

namespace machnet::log {

enum class Source : uint8_t { kEngine, kDaemon };

// Applies a log_level setting, as the schema (common/conf_schema.c) takes
// it for every reader: a level (a name, the start of one, or 1..8) becomes
// the most verbose level logged by DPDK and machnet alike; PATTERN:LEVEL
// sets DPDK's matching components only and leaves machnet's own at the
// schema's default. Sends every rte_log message to stderr. False with *err
// (naming the key) on a setting the schema rejects. EAL's --log-level, given
// the same setting, does the same later.
bool set_level(const std::string& setting, std::string* err);

// The rte_log type of a source, registered on first use.
uint32_t type(Source s);

void write(Source s, uint32_t level, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

}  // namespace machnet::log

// MN_LOG(ENGINE, ERR, "...") / MN_LOG(DAEMON, NOTICE, "..."): no trailing
// newline, the facility adds it.
#define MN_LOG_SOURCE_ENGINE machnet::log::Source::kEngine
#define MN_LOG_SOURCE_DAEMON machnet::log::Source::kDaemon
#define MN_LOG(source, level, ...) \
  machnet::log::write(MN_LOG_SOURCE_##source, RTE_LOG_##level, __VA_ARGS__)
