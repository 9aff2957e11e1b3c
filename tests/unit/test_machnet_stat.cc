// machnet-stat --pid against a fake DPDK telemetry server: finding a
// process's socket (its own prefix, or a numbered socket under machnetd's
// prefix), the protocol (greeting, one command per message), and the
// report's fallback line.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "machnet-stat/process_stat.h"

namespace machnet::stat {
namespace {

const char* kEngine =
    "{\"device\":\"net_tap0\",\"ip\":\"10.0.0.1\",\"rx_packets\":7,\"udp_tx\":3,"
    "\"drop_bad_checksum\":2,\"drop_no_socket\":0}";
const char* kTransport =
    "{\"rx_datagrams\":10,\"rx_accepted\":9,\"rx_duplicate\":1,\"tx_data_segments\":42,"
    "\"probes_sent\":4,\"fallback_icmp\":3,\"fallback_timeout\":0,\"fallback_no_service\":1,"
    "\"fallback_cached\":12,\"fallback_engine_down\":0,\"fallback_future_reason\":5,"
    "\"a_new_counter\":6}";

// One DPDK-like telemetry socket at path answering as process pid; serves
// one client; `transport` false: /machnet/transport is an unknown command.
class FakeTelemetry {
 public:
  FakeTelemetry(const std::string& path, int pid, bool transport = true) {
    fd_ = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0) << path;
    EXPECT_EQ(listen(fd_, 4), 0);
    thread_ = std::thread([this, pid, transport] { serve(pid, transport); });
  }
  ~FakeTelemetry() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }

 private:
  void serve(int pid, bool transport) {
    for (;;) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string g = "{\"version\":\"DPDK 22.11\",\"pid\":" + std::to_string(pid) +
                      ",\"max_output_len\":16384}";
      send(c, g.data(), g.size(), 0);
      char buf[1024];
      ssize_t n;
      while ((n = recv(c, buf, sizeof(buf), 0)) > 0) {
        std::string cmd(buf, static_cast<size_t>(n));
        std::string v = cmd == "/machnet/counters"                 ? kEngine
                        : cmd == "/machnet/transport" && transport ? kTransport
                                                                   : "null";
        std::string reply = "{\"" + cmd + "\":" + v + "}";
        send(c, reply.data(), reply.size(), 0);
      }
      close(c);
    }
  }
  int fd_;
  std::thread thread_;
};

class MachnetStatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/mnstat.XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    dir_ = t;
  }
  void TearDown() override { system(("rm -rf " + dir_).c_str()); }
  std::string mkdir_in(const std::string& name) {
    std::string d = dir_ + "/" + name;
    mkdir(d.c_str(), 0700);
    return d;
  }
  std::string dir_;
};

TEST_F(MachnetStatTest, StandaloneEngineByItsPrefix) {
  FakeTelemetry srv(mkdir_in("machnet-4242") + "/dpdk_telemetry.v2", 4242);
  TelemetryClient c;
  std::string err, eng, tp;
  ASSERT_EQ(c.connect_pid(dir_, 4242, &err), 0) << err;
  EXPECT_EQ(c.path(), dir_ + "/machnet-4242/dpdk_telemetry.v2");
  ASSERT_EQ(c.query("/machnet/counters", &eng, &err), 0) << err;
  ASSERT_EQ(c.query("/machnet/transport", &tp, &err), 0) << err;
  EXPECT_EQ(eng, kEngine);
  EXPECT_EQ(tp, kTransport);
}

TEST_F(MachnetStatTest, AttachedEngineUnderTheDaemonsPrefix) {
  std::string d = mkdir_in("machnetd-default-100");
  FakeTelemetry daemon(d + "/dpdk_telemetry.v2", 100);
  FakeTelemetry other(d + "/dpdk_telemetry.v2:1", 200);
  FakeTelemetry ours(d + "/dpdk_telemetry.v2:2", 300);
  // Another standalone engine's directory is never asked.
  FakeTelemetry stranger(mkdir_in("machnet-555") + "/dpdk_telemetry.v2", 300);
  TelemetryClient c;
  std::string err;
  ASSERT_EQ(c.connect_pid(dir_, 300, &err), 0) << err;
  EXPECT_EQ(c.path(), d + "/dpdk_telemetry.v2:2");
}

TEST_F(MachnetStatTest, NoSuchProcess) {
  FakeTelemetry srv(mkdir_in("machnet-4242") + "/dpdk_telemetry.v2", 4242);
  TelemetryClient c;
  std::string err;
  EXPECT_EQ(c.connect_pid(dir_, 4243, &err), -ENOENT);
  EXPECT_NE(err.find("no DPDK telemetry socket of pid 4243"), std::string::npos) << err;
}

TEST_F(MachnetStatTest, AttachedProcessWithoutTelemetry) {
  std::string d = mkdir_in("machnetd-default-100");
  FakeTelemetry daemon(d + "/dpdk_telemetry.v2", 100);
  close(open((d + "/mp_socket_321_5f00").c_str(), O_CREAT | O_WRONLY, 0600));
  EXPECT_EQ(secondary_prefix(dir_, 321), "machnetd-default-100");
  EXPECT_EQ(secondary_prefix(dir_, 32), "");
  TelemetryClient c;
  std::string err;
  EXPECT_EQ(c.connect_pid(dir_, 321, &err), -EOPNOTSUPP);
  EXPECT_NE(err.find("attached to machnetd (EAL prefix machnetd-default-100)"), std::string::npos)
      << err;
}

TEST_F(MachnetStatTest, ReportGroupsTheFallbackReasons) {
  JVal e, t;
  ASSERT_TRUE(JsonParser(kEngine).parse(&e));
  ASSERT_TRUE(JsonParser(kTransport).parse(&t));
  EXPECT_EQ(format_fallbacks(t),
            "fallbacks to kernel TCP 21: refused 3, timeout 0, no service 1, remembered plain 12, "
            "engine down 0, future reason 5");
  std::string r = format_process(7, "prog", "/x", e, t);
  EXPECT_NE(r.find("process 7 (prog)  telemetry /x\n"), std::string::npos) << r;
  EXPECT_NE(r.find("engine drops 2: bad_checksum 2\n"), std::string::npos) << r;
  EXPECT_NE(r.find("data segments 42"), std::string::npos) << r;
  EXPECT_NE(r.find("dropped 1: duplicate 1\n"), std::string::npos) << r;
  EXPECT_NE(r.find("  fallbacks to kernel TCP 21: refused 3,"), std::string::npos) << r;
  // A counter this machnet-stat does not know still shows.
  EXPECT_NE(r.find("  other: a_new_counter 6\n"), std::string::npos) << r;
}

TEST_F(MachnetStatTest, EngineWithoutTransport) {
  FakeTelemetry srv(mkdir_in("machnet-9") + "/dpdk_telemetry.v2", 9, false);
  TelemetryClient c;
  std::string err, tp;
  ASSERT_EQ(c.connect_pid(dir_, 9, &err), 0) << err;
  ASSERT_EQ(c.query("/machnet/transport", &tp, &err), 0) << err;
  EXPECT_EQ(tp, "null");
  JVal e, t;
  ASSERT_TRUE(JsonParser(kEngine).parse(&e));
  ASSERT_TRUE(JsonParser(tp).parse(&t));
  EXPECT_NE(format_process(9, "p", "/x", e, t).find("transport: none"), std::string::npos);
}

}  // namespace
}  // namespace machnet::stat
