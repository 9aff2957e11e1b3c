// Host helpers shared by the engine, machnetd and the socket layer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

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
