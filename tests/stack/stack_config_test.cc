// The stack's configuration: transport.*, socket.* and native.* keys on top of
// the engine's, unit conversion, fitting segments to the MTU, and errors
// that name where a bad value came from.
#include "stack/stack_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <fstream>

#include "transport/wire_format.h"

namespace machnet::stack {
namespace {

bool load(const std::vector<std::string>& ov, StackConfig* c, std::string* err) {
  unsetenv("MACHNET_CONFIG");  // the caller's configuration is not this test's
  return load_stack_config("", ov, c, err);
}

TEST(StackConfig, KeysCoverEngineTransportAndNative) {
  const auto& k = StackConfig::keys();
  for (const char* key : {"device", "ip", "fault.rx_drop", "transport.keepalive_idle_ms",
                          "transport.rto_min_us", "native.linger_ms", "native.progress_thread"}) {
    EXPECT_NE(std::find(k.begin(), k.end(), key), k.end()) << key;
  }
}

TEST(StackConfig, SegmentsFitTheMtu) {
  StackConfig c;
  std::string err;
  ASSERT_TRUE(load({"ip=10.0.0.1/24"}, &c, &err)) << err;
  EXPECT_EQ(c.tunables.mtu_payload, 1500u - 20 - 8 - transport::kHeaderSize);
  StackConfig jumbo;
  ASSERT_TRUE(load({"ip=10.0.0.1/24", "mtu=9000"}, &jumbo, &err)) << err;
  // Never above the transport's own default, which it chose for a reason.
  EXPECT_EQ(jumbo.tunables.mtu_payload, transport::Tunables{}.mtu_payload);
  StackConfig set;
  ASSERT_TRUE(load({"ip=10.0.0.1/24", "transport.mtu_payload=1000"}, &set, &err)) << err;
  EXPECT_EQ(set.tunables.mtu_payload, 1000u);
}

TEST(StackConfig, UnitsAndBooleans) {
  StackConfig c;
  std::string err;
  ASSERT_TRUE(load(
      {"transport.keepalive_idle_ms=800", "transport.keepalive_interval_ms=50",
       "transport.keepalive_probes=4", "transport.rto_min_us=200", "transport.payload_checksum=no",
       "native.linger_ms=0", "native.progress_thread=off", "native.progress_idle_us=250"},
      &c, &err))
      << err;
  EXPECT_EQ(c.tunables.keepalive_idle_ns, 800'000'000u);
  EXPECT_EQ(c.tunables.keepalive_interval_ns, 50'000'000u);
  EXPECT_EQ(c.tunables.keepalive_probes, 4u);
  EXPECT_EQ(c.tunables.rto_min_ns, 200'000u);
  EXPECT_FALSE(c.tunables.payload_checksum);
  EXPECT_EQ(c.linger_ns, 0u);
  EXPECT_FALSE(c.progress_thread);
  EXPECT_EQ(c.progress_idle_ns, 250'000u);
}

TEST(StackConfig, ErrorsNameTheirOrigin) {
  StackConfig c;
  std::string err;
  EXPECT_FALSE(load({"transport.no_such_knob=1"}, &c, &err));
  EXPECT_NE(err.find("transport.no_such_knob"), std::string::npos) << err;
  EXPECT_FALSE(load({"transport.keepalive_probes=lots"}, &c, &err));
  EXPECT_NE(err.find("override transport.keepalive_probes"), std::string::npos) << err;
  EXPECT_FALSE(load({"novalue"}, &c, &err));
  EXPECT_NE(err.find("KEY=VALUE"), std::string::npos) << err;
  // Valid one by one, inconsistent together: the transport's own check.
  EXPECT_FALSE(
      load({"transport.max_message_bytes=1000000", "transport.send_buffer_bytes=1000"}, &c, &err));
  EXPECT_NE(err.find("send_buffer_bytes"), std::string::npos) << err;
}

TEST(StackConfig, FileThenEnvironmentThenOverrides) {
  char path[] = "/tmp/machnet-stack-config-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  {
    std::ofstream f(path);
    f << "[transport]\nkeepalive_probes = 7\nrto_min_us = 300\n# comment\n"
         "[native]\nlinger_ms = 42\n";
  }
  setenv("MACHNET_TRANSPORT_RTO_MIN_US", "400", 1);
  StackConfig c;
  std::string err;
  ASSERT_TRUE(load_stack_config(path, {"native.linger_ms=43"}, &c, &err)) << err;
  EXPECT_EQ(c.tunables.keepalive_probes, 7u);  // file
  EXPECT_EQ(c.tunables.rto_min_ns, 400'000u);  // environment over file
  EXPECT_EQ(c.linger_ns, 43'000'000u);         // override over file
  unsetenv("MACHNET_TRANSPORT_RTO_MIN_US");
  {
    std::ofstream f(path);
    f << "transport.keepalive_probes = 0\n";
  }
  EXPECT_FALSE(load_stack_config(path, {}, &c, &err));
  EXPECT_NE(err.find(std::string(path) + ":1"), std::string::npos) << err;
  unlink(path);
}

}  // namespace
}  // namespace machnet::stack
