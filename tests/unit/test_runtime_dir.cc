// The standalone engine's runtime directory sweep (common/runtime_dir.h):
// prefix, owner and /proc/<pid>/stat parsing, and the sweep's decisions on a
// directory tree made here (dead, live, recycled, busy, bounded).
#include "common/runtime_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <string>

namespace machnet {
namespace {

TEST(RuntimeDir, ParsesStandalonePrefix) {
  EXPECT_EQ(parse_standalone_prefix("machnet-1"), 1);
  EXPECT_EQ(parse_standalone_prefix("machnet-4194304"), 4194304);
  EXPECT_EQ(parse_standalone_prefix(standalone_prefix(12345)), 12345);
  EXPECT_EQ(parse_standalone_prefix("machnet-2147483647"), INT_MAX);
  // Not a standalone engine's prefix: kept out of the sweep.
  EXPECT_EQ(parse_standalone_prefix("machnet-"), 0);
  EXPECT_EQ(parse_standalone_prefix("machnet-0"), 0);
  EXPECT_EQ(parse_standalone_prefix("machnet-012"), 0);
  EXPECT_EQ(parse_standalone_prefix("machnet-+12"), 0);
  EXPECT_EQ(parse_standalone_prefix("machnet--12"), 0);
  EXPECT_EQ(parse_standalone_prefix("machnet-12a"), 0);
  EXPECT_EQ(parse_standalone_prefix("machnet-12 "), 0);
  EXPECT_EQ(parse_standalone_prefix("machnet-2147483648"), 0);
  EXPECT_EQ(parse_standalone_prefix("machnet-99999999999"), 0);
  EXPECT_EQ(parse_standalone_prefix("machnetd-default-123"), 0);
  EXPECT_EQ(parse_standalone_prefix("xmachnet-123"), 0);
  EXPECT_EQ(parse_standalone_prefix("rte"), 0);
  EXPECT_EQ(parse_standalone_prefix(""), 0);
}

TEST(RuntimeDir, ParsesStatStartTime) {
  const std::string tail = " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 19 20 21 22 23";
  EXPECT_EQ(parse_stat_start_ticks("42 (python3)" + tail), 987654u);
  // The command name may hold spaces and parentheses: the last ')' ends it.
  EXPECT_EQ(parse_stat_start_ticks("42 (a) b (c) d)" + tail), 987654u);
  EXPECT_EQ(parse_stat_start_ticks("42 (x) S 1 2 3"), 0u);    // too short
  EXPECT_EQ(parse_stat_start_ticks("42 python3 S 1 2"), 0u);  // no ')'
  EXPECT_EQ(parse_stat_start_ticks(""), 0u);
  EXPECT_EQ(parse_stat_start_ticks("42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5 1"),
            0u);
  // Our own, read from /proc.
  EXPECT_GT(process_start_ticks(getpid()), 0u);
}

TEST(RuntimeDir, OwnerFileRoundTrip) {
  long pid = 0;
  uint64_t ticks = 0;
  ASSERT_TRUE(parse_owner(format_owner(4321, 99887766), &pid, &ticks));
  EXPECT_EQ(pid, 4321);
  EXPECT_EQ(ticks, 99887766u);
  EXPECT_FALSE(parse_owner("", &pid, &ticks));
  EXPECT_FALSE(parse_owner("12", &pid, &ticks));
  EXPECT_FALSE(parse_owner("12 x", &pid, &ticks));
  EXPECT_FALSE(parse_owner("0 5", &pid, &ticks));
  EXPECT_FALSE(parse_owner("12 0", &pid, &ticks));
  EXPECT_FALSE(parse_owner("12 5 7", &pid, &ticks));
}

TEST(RuntimeDir, PidAlive) {
  EXPECT_FALSE(pid_alive(getpid()));  // our own pid: never another's
  EXPECT_FALSE(pid_alive(0));
  EXPECT_FALSE(pid_alive(-1));
  EXPECT_TRUE(pid_alive(getppid()));
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  // Exited, not yet reaped: a zombie holds nothing.
  for (int i = 0; i < 200 && pid_alive(child); i++) usleep(10000);
  EXPECT_FALSE(pid_alive(child));
  int st = 0;
  waitpid(child, &st, 0);
  EXPECT_FALSE(pid_alive(child));
}

class Sweep : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/machnet-rundir-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
  }
  void TearDown() override {
    for (const auto& d : list_dir(base_)) remove_dir_signal_safe((base_ + "/" + d).c_str());
    rmdir(base_.c_str());
  }
  std::string make(const std::string& name, const std::string& owner = "") {
    std::string dir = base_ + "/" + name;
    EXPECT_EQ(mkdir(dir.c_str(), 0700), 0);
    std::ofstream(dir + "/dpdk_telemetry.v2") << "";  // a dead socket's file
    if (!owner.empty()) std::ofstream(dir + "/" + kOwnerFile) << owner;
    return dir;
  }
  bool exists(const std::string& name) {
    struct stat st;
    return stat((base_ + "/" + name).c_str(), &st) == 0;
  }
  // A pid nobody has: a child that was reaped (pids are handed out in
  // order, so not reused during a test).
  static pid_t dead_pid() {
    pid_t p = fork();
    if (p == 0) _exit(0);
    int st = 0;
    waitpid(p, &st, 0);
    return p;
  }
  std::string base_;
};

TEST_F(Sweep, RemovesDeadKeepsLiveAndOthers) {
  pid_t dead = dead_pid();
  std::string d1 = standalone_prefix(dead);
  std::string own = standalone_prefix(getpid());
  std::string parent = standalone_prefix(getppid());
  make(d1, format_owner(dead, 5));
  make(own);
  make(parent);  // a live pid without an owner file: cannot tell, kept
  make("machnetd-default-" + std::to_string(dead));
  make("machnet-0" + std::to_string(dead));
  make("rte");
  SweepResult r = sweep_standalone_runtime_dirs(base_, 100);
  EXPECT_FALSE(exists(d1));
  EXPECT_TRUE(exists(own));
  EXPECT_TRUE(exists(parent));
  EXPECT_TRUE(exists("machnetd-default-" + std::to_string(dead)));
  EXPECT_TRUE(exists("machnet-0" + std::to_string(dead)));
  EXPECT_TRUE(exists("rte"));
  EXPECT_EQ(r.seen, 3u);
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(r.live, 1u);
  EXPECT_EQ(r.busy, 0u);
}

TEST_F(Sweep, RecycledPidByOwnerFile) {
  // A live process without EAL whose start time is not the owner file's:
  // the directory was made by an earlier process with its pid.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  uint64_t ticks = 0;
  for (int i = 0; i < 100 && ticks == 0; i++) ticks = process_start_ticks(child);
  ASSERT_GT(ticks, 0u);
  std::string name = standalone_prefix(child);
  make(name, format_owner(child, ticks + 1));
  SweepResult r = sweep_standalone_runtime_dirs(base_, 100);
  EXPECT_FALSE(exists(name));
  EXPECT_EQ(r.removed, 1u);
  // Its own directory (the start time matches): kept.
  make(name, format_owner(child, ticks));
  r = sweep_standalone_runtime_dirs(base_, 100);
  EXPECT_TRUE(exists(name));
  EXPECT_EQ(r.live, 1u);
  // A garbled owner file proves nothing: kept.
  remove_dir_signal_safe((base_ + "/" + name).c_str());
  make(name, "garbage");
  r = sweep_standalone_runtime_dirs(base_, 100);
  EXPECT_TRUE(exists(name));
  kill(child, SIGKILL);
  int st = 0;
  waitpid(child, &st, 0);
  r = sweep_standalone_runtime_dirs(base_, 100);
  EXPECT_FALSE(exists(name));
}

TEST_F(Sweep, KeepsDirectoriesStillInUse) {
  pid_t dead1 = dead_pid(), dead2 = dead_pid();
  // A bound socket (a live telemetry socket of a process the pid check
  // missed, e.g. in another pid namespace).
  std::string sdir = base_ + "/" + standalone_prefix(dead1);
  ASSERT_EQ(mkdir(sdir.c_str(), 0700), 0);
  int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  ASSERT_GE(s, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/dpdk_telemetry.v2", sdir.c_str());
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(listen(s, 1), 0);
  // A locked file.
  std::string ldir = make(standalone_prefix(dead2));
  int lf = open((ldir + "/config").c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(lf, 0);
  // flock from a child: the lock is another process's, as it would be.
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t holder = fork();
  if (holder == 0) {
    int fd = open((ldir + "/config").c_str(), O_RDWR);
    char c = flock(fd, LOCK_EX) == 0 ? 'y' : 'n';
    if (write(pipefd[1], &c, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(pipefd[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  SweepResult r = sweep_standalone_runtime_dirs(base_, 100);
  EXPECT_TRUE(exists(standalone_prefix(dead1)));
  EXPECT_TRUE(exists(standalone_prefix(dead2)));
  EXPECT_EQ(r.busy, 2u);
  EXPECT_EQ(r.removed, 0u);
  // Released: both go.
  close(s);
  kill(holder, SIGKILL);
  int st = 0;
  waitpid(holder, &st, 0);
  close(lf);
  close(pipefd[0]);
  close(pipefd[1]);
  r = sweep_standalone_runtime_dirs(base_, 100);
  EXPECT_EQ(r.removed, 2u);
  EXPECT_FALSE(exists(standalone_prefix(dead1)));
  EXPECT_FALSE(exists(standalone_prefix(dead2)));
}

TEST_F(Sweep, BoundedPerCall) {
  for (int i = 0; i < 5; i++) make(standalone_prefix(dead_pid()));
  SweepResult r = sweep_standalone_runtime_dirs(base_, 2);
  EXPECT_EQ(r.removed, 2u);
  EXPECT_EQ(r.deferred, 3u);
  EXPECT_EQ(list_dir(base_).size(), 3u);
  r = sweep_standalone_runtime_dirs(base_, 100);
  EXPECT_EQ(r.removed, 3u);
  EXPECT_TRUE(list_dir(base_).empty());
}

TEST_F(Sweep, RemoveDirSignalSafe) {
  std::string dir = make("machnet-x");
  for (int i = 0; i < 300; i++) std::ofstream(dir + "/file_with_a_long_name_" + std::to_string(i));
  EXPECT_TRUE(remove_dir_signal_safe(dir.c_str()));
  EXPECT_FALSE(exists("machnet-x"));
  EXPECT_TRUE(remove_dir_signal_safe(dir.c_str()));  // already gone
}

}  // namespace
}  // namespace machnet
