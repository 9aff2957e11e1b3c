// Host helpers shared by the engine, machnetd and the socket layer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <fstream>

#include "common/host.h"

namespace machnet {
namespace {

TEST(Host, NewDescriptorsAreFoundAndMadeCloseOnExec) {
  std::set<int> before = open_fds();
  ASSERT_FALSE(before.empty());  // stdin/stdout/stderr at least
  EXPECT_EQ(before.count(STDERR_FILENO), 1u);
  int p[2];
  ASSERT_EQ(pipe(p), 0);  // without O_CLOEXEC
  ASSERT_EQ(fcntl(p[0], F_GETFD) & FD_CLOEXEC, 0);
  std::set<int> added = mark_new_fds_cloexec(before);
  EXPECT_EQ(added, (std::set<int>{p[0], p[1]}));
  EXPECT_NE(fcntl(p[0], F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
  for (int fd : before) EXPECT_EQ(added.count(fd), 0u);
  close(p[0]);
  close(p[1]);
  EXPECT_EQ(open_fds(), before);
}

TEST(Host, PciAddressesAndCpuLists) {
  EXPECT_TRUE(is_pci_address("0000:00:04.0"));
  EXPECT_TRUE(is_pci_address("00:04.0"));
  EXPECT_FALSE(is_pci_address("net_memif0,role=server"));
  EXPECT_FALSE(is_pci_address("net_af_xdp0,iface=eth0"));
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  std::string list = caller_cpu_list();
  ASSERT_FALSE(list.empty());
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set)) continue;
    EXPECT_NE(list.find(std::to_string(cpu)), std::string::npos) << list;  // first ones listed
    break;
  }
}

}  // namespace
}  // namespace machnet

TEST(Host, EngineEphemeralPortsLieOutsideTheKernelsRange) {
  // Linux's default: the 4,536 ports above it.
  machnet::PortRange r = machnet::engine_ephemeral_range_from("32768\t60999\n");
  EXPECT_EQ(r.first, 61000);
  EXPECT_EQ(r.last, 65535);
  EXPECT_TRUE(r.disjoint);
  // A kernel range up to 65535: the 4,096 ports below it.
  r = machnet::engine_ephemeral_range_from("20000 65535");
  EXPECT_EQ(r.first, 15904);
  EXPECT_EQ(r.last, 19999);
  EXPECT_TRUE(r.disjoint);
  // Fewer than 1,024 above, too little room below: the kernel's own range.
  r = machnet::engine_ephemeral_range_from("2000 65000");
  EXPECT_EQ(r.first, 2000);
  EXPECT_EQ(r.last, 65000);
  EXPECT_FALSE(r.disjoint);
  // Unreadable or nonsense: Linux's default assumed.
  for (const char* bad : {"", "junk", "60999 32768", "0 10", "1 70000"}) {
    r = machnet::engine_ephemeral_range_from(bad);
    EXPECT_EQ(r.first, 61000) << bad;
    EXPECT_EQ(r.last, 65535) << bad;
  }
  // The live one never overlaps the kernel's.
  r = machnet::engine_ephemeral_range();
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned lo = 0, hi = 0;
  if (f >> lo >> hi && r.disjoint) {
    EXPECT_TRUE(r.last < lo || r.first > hi);
  }
}
