// What machnet-stat shows: the STATS reply (JSON text) and the same data as
// DPDK telemetry commands /machnetd/daemon, /machnetd/leases, /machnetd/ports.
#pragma once

#include <cstddef>
#include <string>

#include "daemon/daemon.h"

namespace machnet::daemon {

// JSON object with "daemon", "pools", "leases", "ports" (ports are cut, and
// "ports_truncated" set, to keep the text under max_len bytes).
std::string stats_json(const Daemon& d, size_t max_len);

// Registers the telemetry commands (reads only; safe on the telemetry thread).
void register_telemetry(Daemon* d);

const char* lease_state_name(uint32_t state);

}  // namespace machnet::daemon
