#include "engine/rundir.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/runtime_dir.h"
#include "engine/log.h"

namespace machnet::engine {
namespace {

// Removals per engine start: bounds the work (about 70 us of CPU each) on
// a host where a great many were left behind; later starts remove the rest.
constexpr size_t kMaxRemovePerStart = 16384;

// Set once, before any handler that reads them is installed.
char g_dir[PATH_MAX];
std::atomic<pid_t> g_owner{0};

// Signals whose default action ends the process. The handler is installed
// only where the disposition is still SIG_DFL: a program's own handler (or
// SIG_IGN) is never replaced, and one it installs later replaces this.
constexpr int kFatalSignals[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGPIPE, SIGALRM,
                                 SIGUSR1, SIGUSR2, SIGABRT, SIGSEGV, SIGBUS,  SIGFPE,
                                 SIGILL,  SIGSYS,  SIGXCPU, SIGXFSZ};

void on_fatal_signal(int sig) {
  int saved = errno;
  remove_own_runtime_dir();
  errno = saved;
  // SA_RESETHAND put the default action back. The signal is blocked while
  // this runs: raised again, it is taken with the default action (the exit
  // status, or the core dump, the program would have had) on return; a
  // fault (SIGSEGV) would also recur at the faulting instruction.
  raise(sig);
}

void at_exit() {
  remove_own_runtime_dir();
}

void* sweep_thread(void*) {
  pthread_setname_np(pthread_self(), "machnet-sweep");
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
  sweep_runtime_dirs();
  return nullptr;
}

}  // namespace

void start_runtime_dir_sweep() {
  // Every signal blocked in the thread (it inherits the mask): a signal for
  // the process goes to one of the application's threads.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int rc = pthread_create(&t, &attr, sweep_thread, nullptr);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0)
    MN_LOG(ENGINE, WARNING, "no thread to remove runtime directories of exited engines: %s",
           strerror(rc));
}

void sweep_runtime_dirs() {
  timespec t0{}, t1{};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const std::string base = dpdk_runtime_base();
  SweepResult r = sweep_standalone_runtime_dirs(base, kMaxRemovePerStart);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (r.removed == 0 && r.busy == 0 && r.deferred == 0) return;
  double ms = static_cast<double>(t1.tv_sec - t0.tv_sec) * 1e3 +
              static_cast<double>(t1.tv_nsec - t0.tv_nsec) / 1e6;
  MN_LOG(ENGINE, INFO,
         "removed %zu runtime directories of exited engines from %s in %.1f ms (%zu of live "
         "processes kept, %zu still in use, %zu left for the next start)",
         r.removed, base.c_str(), ms, r.live, r.busy, r.deferred);
}

void own_runtime_dir(const char* dir) {
  if (dir == nullptr || dir[0] == '\0' || strlen(dir) >= sizeof(g_dir)) return;
  if (g_owner.load() != 0) return;
  snprintf(g_dir, sizeof(g_dir), "%s", dir);
  // Who made it: a later process that gets the same pid is not its owner.
  std::string owner = format_owner(getpid(), process_start_ticks(getpid()));
  std::string path = std::string(dir) + "/" + kOwnerFile;
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd >= 0) {
    if (write(fd, owner.data(), owner.size()) != static_cast<ssize_t>(owner.size()))
      MN_LOG(ENGINE, WARNING, "could not write %s: %s", path.c_str(), strerror(errno));
    close(fd);
  }
  g_owner.store(getpid());
  std::atexit(at_exit);
  for (int sig : kFatalSignals) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) != 0 || (old.sa_flags & SA_SIGINFO) != 0 ||
        old.sa_handler != SIG_DFL)
      continue;
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    // Another thread may have set its own in between: give it back.
    if (sigaction(sig, &sa, &old) == 0 &&
        ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL))
      sigaction(sig, &old, nullptr);
  }
}

void remove_own_runtime_dir() {
  pid_t owner = g_owner.load(std::memory_order_relaxed);
  if (owner == 0 || getpid() != owner) return;  // none, or a fork child
  remove_dir_signal_safe(g_dir);
}

}  // namespace machnet::engine
