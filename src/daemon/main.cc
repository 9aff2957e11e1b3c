// machnetd: the DPDK primary that owns one NIC port and leases its queue
// pairs to applications (docs/MACHNETD.md).
#include <dirent.h>
#include <event2/event.h>
#include <rte_eal.h>
#include <rte_mempool.h>
#include <rte_memzone.h>
#include <rte_ring.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "daemon/clock.h"
#include "daemon/config.h"
#include "daemon/control_server.h"
#include "daemon/daemon.h"
#include "daemon/dataplane.h"
#include "daemon/eal_setup.h"
#include "daemon/leases.h"
#include "daemon/port.h"
#include "daemon/services.h"
#include "daemon/stale_cleanup.h"
#include "daemon/stats.h"
#include "engine/log.h"
#include "engine/steer.h"

namespace machnet::daemon {

namespace {

volatile bool g_stop = false;
int g_signal = 0;

void on_signal(evutil_socket_t sig, short, void* arg) {
  g_stop = true;
  g_signal = static_cast<int>(sig);
  event_base_loopbreak(static_cast<event_base*>(arg));
}

void on_idle(evutil_socket_t, short, void*) {}

uint64_t free_hugepages() {
  std::ifstream f("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
  uint64_t v = 0;
  f >> v;
  return v;
}

// Runs the daemon once EAL is up. Returns the exit code; leaves EAL to the caller.
// A program killed inside DPDK (its EAL start, a heap operation) can leave a
// lock of EAL's shared memory held for good, and the daemon's own frees at
// shutdown then never return (seen in make soak: stuck in
// rte_mcfg_mem_write_lock under ~Reassembly). Everything the daemon owns
// outside its memory (hugepage files, runtime directory, socket lock) is
// removed by this watchdog instead, and the process exits: a stop is never
// a hang. Started when shutdown begins; the main thread sets cleaned_up.
constexpr int kShutdownBoundMs = 5000;
// The shutdown handshake: the port is stopped and the pools freed only once
// every live holder has said it touches no shared memory any more
// (mn_lease.quiesced, stored when its engine detaches, under the lock all
// its engine calls hold). Holders notice shutting_down at their next engine
// call; a sleeping one is woken through its eventfd to make that call. One
// that does not answer within the bound (stopped, or never calling into its
// engine) is named in the log and the shutdown goes on.
void wait_quiesced(Daemon* d) {
  for (uint16_t q = 1; q < d->nb_queues; q++)
    if (d->wake_fds[q] >= 0 && mn_lease_state(&d->shm->leases[q]) == MN_LEASE_ACTIVE)
      eventfd_write(d->wake_fds[q], 1);
  const uint64_t start = mono_ns();
  const uint64_t bound_ns = uint64_t{d->cfg.quiesce_timeout_ms} * 1'000'000;
  for (;;) {
    unsigned waiting = 0;
    bool late = mono_ns() - start >= bound_ns;
    for (uint16_t q = 1; q < d->nb_queues; q++) {
      const mn_lease& l = d->shm->leases[q];
      if (mn_lease_state(&l) != MN_LEASE_ACTIVE || mn_lease_quiesced(&l) != 0) continue;
      if (kill(l.pid, 0) != 0 && errno == ESRCH) continue;  // gone: touches nothing
      waiting++;
      if (late)
        MN_LOG(DAEMON, WARNING,
               "shutdown: queue %u (pid %d, %.16s) did not stop using the port within %u ms; "
               "stopping it anyway",
               q, l.pid, l.comm, d->cfg.quiesce_timeout_ms);
    }
    if (waiting == 0 || late) {
      if (waiting == 0)
        MN_LOG(DAEMON, NOTICE, "shutdown: every holder stopped using the port (%.1f ms)",
               static_cast<double>(mono_ns() - start) / 1e6);
      return;
    }
    usleep(100);
  }
}

void start_shutdown_watchdog(Daemon* d) {
  std::thread([d] {
    for (int ms = 0; ms < kShutdownBoundMs; ms += 50) {
      if (d->cleaned_up.load()) return;
      usleep(50'000);
    }
    MN_LOG(DAEMON, ERR,
           "shutdown stuck inside DPDK for %d ms (a program killed inside EAL left a lock of "
           "its shared memory held): exiting without DPDK's cleanup",
           kShutdownBoundMs);
    unsigned pages = remove_runtime(d->eal_prefix, d->hugedir);
    ControlServer::release_lock();
    MN_LOG(DAEMON, NOTICE, "exited without DPDK's cleanup (%u hugepage files removed)", pages);
    _exit(1);
  }).detach();
}

// DPDK secondaries still running: EAL gives each one a socket
// `mp_socket_<pid>_<tsc>` in our runtime directory. Freeing hugepage memory
// makes the primary ask every one of them to unmap it (mp_malloc_sync) and
// wait for the answers: one stopped, or exiting just then (a program leaving
// after its ENETDOWN), holds the free for DPDK's 5 s request timeout, and
// the watchdog ends the daemon with status 1. Nothing else will use that
// memory (its files are removed right after), so the frees are skipped
// while a secondary lives; it goes back when the last of them exits.
unsigned live_secondaries(const std::string& runtime_dir) {
  unsigned n = 0;
  DIR* dir = opendir(runtime_dir.c_str());
  if (dir == nullptr) return 0;
  while (dirent* e = readdir(dir)) {
    unsigned long pid = 0;
    if (sscanf(e->d_name, "mp_socket_%lu_", &pid) != 1 || pid == 0 ||
        pid == static_cast<unsigned long>(getpid()))
      continue;
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) n++;
  }
  closedir(dir);
  return n;
}

int run(Daemon* d) {
  std::string err;
  event_config* ec = event_config_new();
  // Microsecond timers (the idle sleep is ~100 us; epoll alone rounds to ms).
  event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
  event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
  d->base = event_base_new_with_config(ec);
  event_config_free(ec);
  if (d->base == nullptr) {
    MN_LOG(DAEMON, ERR, "cannot create the event loop");
    return 1;
  }
  Dataplane dp(d);
  LeaseTable leases(d);
  ServiceTable services(d);
  Reclaimer reclaimer(d);
  d->dataplane = &dp;
  d->leases = &leases;
  d->services = &services;
  d->reclaimer = &reclaimer;
  int code = 0;
  {
    ControlServer control(d);
    d->control = &control;
    event* sigterm = evsignal_new(d->base, SIGTERM, on_signal, d->base);
    event* sigint = evsignal_new(d->base, SIGINT, on_signal, d->base);
    event* idle = evtimer_new(d->base, on_idle, nullptr);
    evsignal_add(sigterm, nullptr);
    evsignal_add(sigint, nullptr);

    if (!setup_port(d, &err) || !dp.init(&err) || !reclaimer.init(&err) || !control.listen(&err)) {
      MN_LOG(DAEMON, ERR, "%s", err.c_str());
      code = 1;
    } else {
      register_telemetry(d);
      MN_LOG(DAEMON, NOTICE,
             "started: device %s (port %u), ip %s/%u%s%s, mac %s, mtu %u, queues %u (%u leasable), "
             "socket %s, EAL prefix %s, pid %d",
             d->device_name.c_str(), d->port_id, wire::format_ipv4(d->cfg.ip).c_str(),
             d->cfg.prefix_len, d->cfg.gateway ? " gateway " : "",
             d->cfg.gateway ? wire::format_ipv4(d->cfg.gateway).c_str() : "",
             wire::format_mac(d->mac).c_str(), d->mtu, d->nb_queues, d->nb_queues - 1,
             d->cfg.socket.c_str(), d->eal_prefix.c_str(), getpid());

      // Short sleeps must stay short (parked holders wait for them): the
      // default 50 us timer slack would add half a parked_sleep_us.
      prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
      const uint64_t idle_after_ns = 1'000'000;
      const uint64_t event_period_ns = 50'000;
      uint64_t last_tick = 0, last_busy = mono_ns(), last_events = 0;
      while (!g_stop) {
        unsigned n = dp.poll();
        // Holders sleep (parked leases) and the daemon wakes them: a thread
        // it woke (or one that thread wakes in turn) must run at once, and
        // the scheduler would otherwise keep this busy loop on the CPU until
        // its slice ends (a millisecond or more) when they share a CPU. One
        // sched_yield per round while any holder can park (cheap when
        // nobody else wants the CPU).
        if (dp.take_polite()) sched_yield();
        bool parked = dp.take_parked();
        uint64_t now = mono_ns();
        if (n != 0) last_busy = now;
        if (now - last_tick >= 1'000'000) {
          dp.tick(now);
          last_tick = now;
        }
        if (n == 0 && d->cfg.idle_sleep_us != 0 && now - last_busy > idle_after_ns) {
          // Idle: sleep in the event loop, woken early by any control event.
          uint32_t us = d->cfg.idle_sleep_us;
          if (parked && d->cfg.parked_sleep_us < us) us = d->cfg.parked_sleep_us;
          timeval tv = {0, static_cast<suseconds_t>(us)};
          evtimer_add(idle, &tv);
          event_base_loop(d->base, EVLOOP_ONCE);
          evtimer_del(idle);
          last_events = now;
        } else if (n == 0 || now - last_events >= event_period_ns) {
          event_base_loop(d->base, EVLOOP_NONBLOCK);
          last_events = now;
        }
      }
      dp.drop_deferred();
      MN_LOG(DAEMON, NOTICE, "%s: shutting down", g_signal == SIGINT ? "SIGINT" : "SIGTERM");
      start_shutdown_watchdog(d);
      mn_shm_set_shutting_down(d->shm, 1);
    }
    // Attached engines see shutting_down, then EOF on their control socket.
    control.close_all(false);
    control.stop();
    d->control = nullptr;
    event_free(sigterm);
    event_free(sigint);
    event_free(idle);
  }
  d->stopping.store(true);
  if (code == 0) wait_quiesced(d);
  close_port(d);
  return code;
}

}  // namespace
}  // namespace machnet::daemon

int main(int argc, char** argv) {
  using namespace machnet::daemon;
  static Daemon d;
  int rc = load_config(argc, argv, &d.cfg);
  if (rc >= 0) return rc;
  std::string err;
  if (!machnet::log::set_level(d.cfg.log_level, &err)) {  // validated by load_config
    MN_LOG(DAEMON, ERR, "%s", err.c_str());
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  if (ControlServer::precheck(d.cfg.socket, &err) != 0) {
    MN_LOG(DAEMON, ERR, "%s", err.c_str());
    return 1;
  }
  d.hugedir = find_or_mount_hugetlbfs(&err);
  if (d.hugedir.empty()) {
    MN_LOG(DAEMON, ERR, "%s", err.c_str());
    ControlServer::release_lock();
    return 1;
  }
  stale_cleanup(d.hugedir);
  d.eal_prefix = "machnetd-" + d.cfg.name + "-" + std::to_string(getpid());
  std::vector<std::string> args = eal_arguments(d.cfg, d.eal_prefix, d.hugedir);
  if (!eal_init(args, &err)) {
    MN_LOG(DAEMON, ERR, "%s", err.c_str());
    remove_runtime(d.eal_prefix, d.hugedir);
    ControlServer::release_lock();
    return 1;
  }
  d.runtime_dir = rte_eal_get_runtime_dir();
  d.start_mono_ns = mono_ns();

  int code = run(&d);

  // Free what lives in hugepages (unless secondaries would have to agree:
  // see live_secondaries), then EAL, then the files EAL leaves.
  unsigned secondaries = live_secondaries(d.runtime_dir);
  if (secondaries != 0) {
    MN_LOG(DAEMON, NOTICE,
           "%u attached program(s) still running: their shared memory is not freed one object "
           "at a time (it goes with its files and their exit)",
           secondaries);
  } else {
    for (uint16_t q = 0; q < MN_SHM_MAX_QUEUES; q++) {
      if (d.rings[q] != nullptr) rte_ring_free(d.rings[q]);
      if (d.pools[q] != nullptr) rte_mempool_free(d.pools[q]);
    }
    for (unsigned i = 0; i < MN_SHM_SHARED_RINGS; i++) {
      if (d.shared_rings[i] != nullptr) {
        machnet::engine::drain_ring(d.shared_rings[i]);
        rte_ring_free(d.shared_rings[i]);
      }
    }
    if (d.shared_pool != nullptr) rte_mempool_free(d.shared_pool);
    if (d.mz != nullptr) rte_memzone_free(d.mz);
  }
  if (d.base != nullptr) event_base_free(d.base);
  rte_eal_cleanup();
  d.cleaned_up.store(true);
  unsigned pages = remove_runtime(d.eal_prefix, d.hugedir);
  ControlServer::release_lock();
  if (code == 0)
    MN_LOG(DAEMON, NOTICE, "exited cleanly (%u hugepage files removed, %llu hugepages free)", pages,
           static_cast<unsigned long long>(free_hugepages()));
  return code;
}
