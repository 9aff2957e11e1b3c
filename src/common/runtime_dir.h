// DPDK runtime directories (<base>/<file-prefix>/) left by processes that are
// gone. EAL creates one per primary process, even with --in-memory (it then
// holds the telemetry sockets), and never removes the directory itself. The
// engine's standalone prefix is machnet-<pid>; machnetd's is
// machnetd-<name>-<pid>. These helpers tell a live owner from a dead one and
// remove what is left. No DPDK.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace machnet {

// DPDK's runtime directory base, as EAL computes it: /var/run/dpdk as root,
// else $XDG_RUNTIME_DIR/dpdk (or /tmp/dpdk).
std::string dpdk_runtime_base();

// The names in a directory, without "." and ".."; empty if unreadable.
std::vector<std::string> list_dir(const std::string& dir);

// True when some process holds a lock on the file: flock (EAL's fbarray and
// hugepage files) or an fcntl lock (a primary's "config" file).
bool file_locked(const std::string& path);

// True when a socket is bound to the Unix socket path (a connect does not
// fail with ECONNREFUSED or ENOENT): the telemetry and multi-process
// sockets of a live EAL. Never blocks.
bool socket_in_use(const std::string& path);

// True when pid runs: kill(pid, 0) finds it (or EPERM) and it is not a
// zombie. False for our own pid (a recycled number) and for pid <= 0.
bool pid_alive(long pid);

// The start time of a process in clock ticks after boot (field 22 of
// /proc/<pid>/stat); 0 when unknown.
uint64_t process_start_ticks(long pid);

// True when the process maps DPDK's EAL library (/proc/<pid>/maps): it
// runs, or may be starting, an EAL of its own.
bool process_maps_eal(long pid);

// --- the standalone engine's runtime directory --------------------------

// "machnet-<pid>": the standalone engine's EAL file prefix.
std::string standalone_prefix(pid_t pid);

// The pid in a standalone engine's prefix; 0 when `name` is not one
// (machnet-<digits>, no sign, no leading zero, within pid_t).
long parse_standalone_prefix(const std::string& name);

// Field 22 (starttime) of a /proc/<pid>/stat line; 0 when malformed. The
// command name (field 2) may hold spaces and parentheses.
uint64_t parse_stat_start_ticks(const std::string& stat_line);

// The owner file the engine writes into its runtime directory: who made it,
// so a later process with the same pid is not taken for its owner.
constexpr const char* kOwnerFile = "machnet.owner";
std::string format_owner(long pid, uint64_t start_ticks);
// True with *pid and *start_ticks from an owner file's text.
bool parse_owner(const std::string& text, long* pid, uint64_t* start_ticks);

struct SweepResult {
  size_t seen = 0;      // machnet-<pid> directories looked at
  size_t removed = 0;   // removed (their owner is gone)
  size_t live = 0;      // left: the owner runs (or might)
  size_t busy = 0;      // left: a file in it is still in use
  size_t deferred = 0;  // left for a later start: over the per-sweep bound
};

// Removes the machnet-<pid> directories under `base` whose owner is gone:
// the pid is not running, or runs as another process (its start time is not
// the one in the directory's owner file) that has no EAL mapped. Our own
// pid's directory is never touched. A directory is kept when any socket in
// it is bound or any file locked. At most `max_remove` are removed per call.
SweepResult sweep_standalone_runtime_dirs(const std::string& base, size_t max_remove);

// Removes every entry of `dir` (one level) and then `dir`: only system
// calls (open, getdents64, unlinkat, rmdir), so it is async-signal-safe.
// Returns true when the directory is gone.
bool remove_dir_signal_safe(const char* dir);

}  // namespace machnet
