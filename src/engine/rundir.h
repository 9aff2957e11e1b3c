// The standalone engine's EAL runtime directory, <base>/machnet-<pid>/ (EAL
// makes it even with --in-memory: it holds the telemetry socket). The
// engine removes it when the process ends, and removes those of engines
// that ended without doing so (kill -9) when the next one starts.
//
// Removed at: exit() from any thread and return from main (an atexit
// handler), _exit()/_Exit() in a preloaded program (the shim calls the
// socket layer's process_exit), and the signals whose default action ends
// the process, for those still at their default action when the engine
// starts (a handler that removes the directory, then lets the default
// action happen). Not at SIGKILL, nor _exit() in a native program: the next
// engine start removes those.
#pragma once

namespace machnet::engine {

// After a standalone EAL start: removes the machnet-<pid> directories of
// engines that are gone (see common/runtime_dir.h), at most a bounded
// number per start, in a short-lived background thread (signals blocked,
// lowest CPU priority): removing a directory costs little CPU but can wait
// milliseconds on a disk (ext4 with discard), thousands of them seconds,
// which an engine start must not. Logs what it removed at INFO.
void start_runtime_dir_sweep();

// The same, in the calling thread; returns when done.
void sweep_runtime_dirs();

// After a standalone EAL start: `dir` (rte_eal_get_runtime_dir()) is this
// process's. Writes its owner file and registers the exit and signal
// handlers that remove it.
void own_runtime_dir(const char* dir);

// Removes this process's runtime directory now. Async-signal-safe; does
// nothing in a fork child or in a process without a standalone engine.
void remove_own_runtime_dir();

}  // namespace machnet::engine
