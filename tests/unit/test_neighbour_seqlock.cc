// The neighbour table's seqlock reader (ipc/shm.h, mn_neighbour_lookup) on a
// struct mn_shm in shared anonymous memory: it finds what the writer wrote,
// and a slot left mid-write (seq odd: the writer was killed between its two
// stores of seq) never makes it spin forever: -ENETDOWN when the daemon is
// gone, -EAGAIN after a bounded wait while it lives. A watchdog (alarm)
// turns a hang into a failure.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ipc/shm.h"

namespace {

void on_alarm(int) {
  static const char msg[] = "watchdog: mn_neighbour_lookup did not return\n";
  ssize_t n = write(2, msg, sizeof(msg) - 1);
  (void)n;
  _exit(3);
}

// Fails the whole test binary if a lookup hangs.
struct Watchdog {
  Watchdog() {
    signal(SIGALRM, on_alarm);
    alarm(30);
  }
  ~Watchdog() { alarm(0); }
};

class NeighbourSeqlock : public ::testing::Test {
 protected:
  void SetUp() override {
    void* p =
        mmap(nullptr, sizeof(mn_shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    shm_ = static_cast<mn_shm*>(p);
    shm_->daemon_pid = getpid();
  }
  void TearDown() override { munmap(shm_, sizeof(mn_shm)); }

  mn_neighbour* slot_of(uint32_t ip) { return &shm_->neighbours[mn_neighbour_slot(ip)]; }
  // What a writer killed between its two stores of seq leaves behind.
  void leave_mid_write(uint32_t ip) {
    mn_neighbour* n = slot_of(ip);
    __atomic_store_n(&n->seq, n->seq + 1, __ATOMIC_RELEASE);
  }

  mn_shm* shm_ = nullptr;
  Watchdog watchdog_;
};

const uint8_t kMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x07};
constexpr uint32_t kIp = 0x0a000007;  // 10.0.0.7

struct Liveness {
  int calls = 0;
  int alive_for = 0;               // answers "alive" this many times, then "gone"
  mn_neighbour* finish = nullptr;  // when set: the writer completes at call 3
  static int gone(void* arg) {
    auto* l = static_cast<Liveness*>(arg);
    l->calls++;
    if (l->finish != nullptr && l->calls == 3) {
      __atomic_store_n(&l->finish->ip, kIp, __ATOMIC_RELAXED);
      for (int k = 0; k < 6; k++) __atomic_store_n(&l->finish->mac[k], kMac[k], __ATOMIC_RELAXED);
      __atomic_store_n(&l->finish->seq, l->finish->seq + 1, __ATOMIC_RELEASE);
    }
    return l->calls > l->alive_for ? 1 : 0;
  }
};

TEST_F(NeighbourSeqlock, FindsWhatWasWritten) {
  uint8_t mac[6] = {};
  Liveness l;
  EXPECT_EQ(mn_neighbour_lookup(shm_, kIp, mac, Liveness::gone, &l), 0);
  mn_neighbour_write(slot_of(kIp), kIp, kMac);
  EXPECT_EQ(mn_neighbour_lookup(shm_, kIp, mac, Liveness::gone, &l), 1);
  EXPECT_EQ(memcmp(mac, kMac, 6), 0);
  EXPECT_EQ(l.calls, 0);  // nothing was mid-write: no liveness check
}

TEST_F(NeighbourSeqlock, WriterDeadMidWriteIsNetDown) {
  mn_neighbour_write(slot_of(kIp), kIp, kMac);
  leave_mid_write(kIp);
  uint8_t mac[6];
  Liveness l;  // "gone" at the first check
  EXPECT_EQ(mn_neighbour_lookup(shm_, kIp, mac, Liveness::gone, &l), -ENETDOWN);
  EXPECT_EQ(l.calls, 1);
  // Gone after a few checks that said alive.
  Liveness later;
  later.alive_for = 5;
  EXPECT_EQ(mn_neighbour_lookup(shm_, kIp, mac, Liveness::gone, &later), -ENETDOWN);
  EXPECT_EQ(later.calls, 6);
}

TEST_F(NeighbourSeqlock, StalledLiveWriterIsBoundedToo) {
  leave_mid_write(kIp);
  uint8_t mac[6];
  Liveness l;
  l.alive_for = 1 << 30;
  EXPECT_EQ(mn_neighbour_lookup(shm_, kIp, mac, Liveness::gone, &l), -EAGAIN);
  EXPECT_EQ(l.calls, static_cast<int>(MN_NEIGHBOUR_CHECKS));
}

TEST_F(NeighbourSeqlock, WriterThatResumesIsWaitedFor) {
  leave_mid_write(kIp);
  uint8_t mac[6] = {};
  Liveness l;
  l.alive_for = 1 << 30;
  l.finish = slot_of(kIp);
  EXPECT_EQ(mn_neighbour_lookup(shm_, kIp, mac, Liveness::gone, &l), 1);
  EXPECT_EQ(memcmp(mac, kMac, 6), 0);
  EXPECT_EQ(l.calls, 3);
}

// Without a liveness test of its own the reader asks the kernel about the
// daemon's pid: a writer process SIGKILLed mid-write.
TEST_F(NeighbourSeqlock, KilledWriterProcessWithDefaultCheck) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The daemon's first store of seq (odd), and never the second.
    mn_neighbour* n = slot_of(kIp);
    __atomic_store_n(&n->seq, n->seq + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&n->ip, kIp, __ATOMIC_RELEASE);
    char c = 1;
    ssize_t w = write(ready[1], &c, 1);
    (void)w;
    for (;;) pause();
  }
  close(ready[1]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  shm_->daemon_pid = child;
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  uint8_t mac[6];
  EXPECT_EQ(mn_neighbour_lookup(shm_, kIp, mac, nullptr, nullptr), -ENETDOWN);
  // Addresses whose probe path does not cross the broken slot still read.
  uint32_t other = kIp + 1;
  while (mn_neighbour_slot(other) == mn_neighbour_slot(kIp)) other++;
  mn_neighbour_write(slot_of(other), other, kMac);
  EXPECT_EQ(mn_neighbour_lookup(shm_, other, mac, nullptr, nullptr), 1);
}

TEST_F(NeighbourSeqlock, ShutdownFlagIsNetDownWithDefaultCheck) {
  leave_mid_write(kIp);
  mn_shm_set_shutting_down(shm_, 1);  // daemon_pid (ours) is alive
  uint8_t mac[6];
  EXPECT_EQ(mn_neighbour_lookup(shm_, kIp, mac, nullptr, nullptr), -ENETDOWN);
}

}  // namespace
