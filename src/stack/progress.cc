// The progress thread: keeps the stack serviced while no application thread
// is inside a call (the application computes, or waits on kernel fds only):
// it answers ARP and ping, drains the NIC ring into the socket queues and the
// transport, and runs the transport's timers (retransmissions, delayed ACKs,
// keepalives) when they are due.
//
// While some thread sleeps in a blocking call it is also the one that wakes
// it: it waits for frames on the AF_XDP sockets (the kernel wakes it on
// arrival); attached to machnetd it parks the lease and sleeps on the
// lease's eventfd, which machnetd writes when a frame for us arrives
// (socket.park; mn_wake_state in ipc/shm.h); otherwise it polls every
// socket.wake_poll_us. The wake round runs inside poll_locked().
//
// Otherwise it stays out of the application's way: it only try_locks, and
// it skips its turn when an application thread has polled since its last
// look (every needless wake-up may preempt a thread spinning on this core).
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>

#include <algorithm>

#include "stack/stack.h"

namespace machnet::stack {

void Stack::start_progress() {
  if (cfg_.wait.progress_ns <= 0) return;
  progress_efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // Signals are for the application's threads: the new thread blocks them all.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  progress_running_ = pthread_create(&progress_, nullptr, progress_main, this) == 0;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (progress_running_) pthread_setname_np(progress_, "machnet-prog");
}

void* Stack::progress_main(void* arg) {
  static_cast<Stack*>(arg)->progress_loop();
  return nullptr;
}

void Stack::progress_loop() {
  // Short sleeps must stay short: the default 50 us timer slack would
  // double the wake-up period.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  uint64_t seen = poll_count();
  // Set when the last round left the engine to an application thread (it
  // polled since our last look, or held the lock): the next look waits at
  // least kYieldNs even for a due timer, which that thread's next poll runs
  // anyway. Without it a due timer made this loop spin on try_lock against
  // the thread doing the work, a core's worth of CPU on a small host.
  constexpr int64_t kYieldNs = 50'000;
  bool yielded = false;
  while (!progress_stop_.load(std::memory_order_relaxed)) {
    bool sleepers = waiters_.count() != 0;
    // Attached to machnetd with a wake-up eventfd: while somebody sleeps the
    // lease is parked (a sleeping thread parks it in wait_arm; the check
    // here covers a poll that took it back since) and machnetd wakes us.
    int wfd = cfg_.wait.park ? eng_->wake_fd() : -1;
    bool parked = false, pending = false, resolving = false;
    if (sleepers && wfd >= 0) {
      mu_.lock();
      if (!down() && waiters_.count() != 0 && may_park()) {
        int r = eng_->park();
        parked = r > 0;
        pending = r < 0;  // something arrived already: poll now
        // Not parked while an address is resolved: the engine's timer tick
        // (every millisecond) finds it in the daemon's neighbour table.
        resolving = r == 0;
      }
      mu_.unlock();
    }
    int64_t period = pending     ? 0
                     : parked    ? cfg_.wait.progress_ns
                     : resolving ? std::min<int64_t>(cfg_.wait.wake_poll_ns, 1'000'000)
                     : sleepers && rx_fds_.empty() ? cfg_.wait.wake_poll_ns
                                                   : cfg_.wait.progress_ns;
    // A transport timer due sooner (a delayed ACK, a retransmission).
    uint64_t next = next_timer_ns_.load(std::memory_order_relaxed);
    uint64_t now = eng_->now_ns();
    if (next != ~uint64_t{0}) {
      int64_t until = next > now ? static_cast<int64_t>(next - now) : 0;
      period = std::min(period, until);
    }
    if (yielded && !sleepers && !pending) period = std::max(period, kYieldNs);
    timespec ts{static_cast<time_t>(period / 1'000'000'000),
                static_cast<long>(period % 1'000'000'000)};
    pollfd p[2 + 8];
    nfds_t np = 0;
    if (progress_efd_ >= 0) p[np++] = pollfd{progress_efd_, POLLIN, 0};
    nfds_t wi = np;
    if (wfd >= 0) p[np++] = pollfd{wfd, POLLIN, 0};
    if (sleepers) {
      for (int fd : rx_fds_) p[np++] = pollfd{fd, POLLIN, 0};
    }
    if (period > 0) ppoll(p, np, &ts, nullptr);
    if (progress_efd_ >= 0 && (p[0].revents & POLLIN)) {
      eventfd_t v;
      eventfd_read(progress_efd_, &v);
    }
    bool woken = false;
    if (wfd >= 0 && (p[wi].revents & POLLIN)) {
      eventfd_t v;
      eventfd_read(wfd, &v);
      woken = true;
    }
    if (progress_stop_.load(std::memory_order_relaxed)) break;
    // With sleepers the progress thread must poll (it is their only waker
    // unless an application thread is polling, and then that one holds the
    // lock briefly); so when machnetd woke it. Otherwise it leaves the
    // engine to whoever drove it since its last look.
    if (sleepers || woken || pending) {
      mu_.lock();
    } else if (poll_count() != seen || !mu_.try_lock()) {
      // An application thread polls (its polls run due timers too), or holds
      // the lock and will: stay out of its way.
      yielded = true;
      seen = poll_count();
      continue;
    }
    yielded = false;
    if (!down()) poll_locked();
    seen = poll_count();
    mu_.unlock();
  }
}

}  // namespace machnet::stack
