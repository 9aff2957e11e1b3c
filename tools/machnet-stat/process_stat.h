// machnet-stat --pid: the counters of one process's own engine (a program
// under machnet-run, standalone or attached to machnetd, or a native
// machnet.h program), read from that process's DPDK telemetry socket: the
// engine's /machnet/counters and the transport's /machnet/transport. A plain
// socket client: no DPDK.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "json.h"

namespace machnet::stat {

// The DPDK runtime directory EAL uses for processes of this user:
// /var/run/dpdk for root, else $XDG_RUNTIME_DIR/dpdk or /tmp/dpdk.
std::string default_runtime_dir();

// The telemetry sockets that may belong to pid, in the order to try: the
// standalone engine's (<dir>/machnet-<pid>/dpdk_telemetry.v2), then every
// other dpdk_telemetry.v2* under <dir>/*/ (a process attached to machnetd
// runs EAL under the daemon's prefix and gets a numbered one there).
std::vector<std::string> telemetry_candidates(const std::string& dir, pid_t pid);

// The EAL prefix (directory under dir) pid runs under as a DPDK secondary
// process (attached to machnetd: its mp_socket_<pid>_* is there), or "".
std::string secondary_prefix(const std::string& dir, pid_t pid);

// A connection to one process's telemetry socket.
class TelemetryClient {
 public:
  TelemetryClient() = default;
  ~TelemetryClient();
  TelemetryClient(const TelemetryClient&) = delete;
  TelemetryClient& operator=(const TelemetryClient&) = delete;

  // Connects to path and reads DPDK's greeting; 0, or -errno with *err.
  // *pid_out: the pid the greeting names.
  int connect(const std::string& path, pid_t* pid_out, std::string* err);
  // Connects to the first candidate whose greeting names pid.
  int connect_pid(const std::string& dir, pid_t pid, std::string* err);
  // Sends cmd and returns the reply's value (the X of {"cmd": X}) as raw
  // JSON text in *value ("null" for an unknown command). 0 or -errno.
  int query(const std::string& cmd, std::string* value, std::string* err);
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  size_t max_len_ = 16384;
  std::string path_;
};

// The human report of one process from the two dicts (the values of
// /machnet/counters and /machnet/transport); transport may be null (an
// engine without the stack: nothing but the engine's counters).
std::string format_process(pid_t pid, const std::string& comm, const std::string& socket,
                           const JVal& engine, const JVal& transport);

// One "fallbacks to kernel TCP" line: every fallback_* counter of the
// transport dict, by readable reason ("refused 3, timeout 0, ...").
std::string format_fallbacks(const JVal& transport);

// machnet-stat --pid: reports (count < 0: until interrupted) every
// `watch` seconds. Returns the exit status.
int run_process_stat(pid_t pid, const std::string& runtime_dir, bool json, double watch,
                     long count);

}  // namespace machnet::stat
