// machnet.conf parsing and the engine keys: bad input names the file and line
// (or the environment variable), nothing is silently ignored.
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/config.h"

namespace machnet {
namespace {

TEST(Config, ParsesKeysSectionsCommentsAndQuotes) {
  Config c;
  std::string err;
  ASSERT_TRUE(
      c.parse("# comment\n"
              "device = net_af_xdp0,iface=veth0  # trailing\n"
              "\n"
              "ip=10.0.0.1/24\n"
              "[arp]\n"
              "retry_ms = \"50\"\n",
              "m.conf", &err))
      << err;
  EXPECT_EQ(c.get("device", ""), "net_af_xdp0,iface=veth0");
  EXPECT_EQ(c.get("ip", ""), "10.0.0.1/24");
  EXPECT_EQ(c.get("arp.retry_ms", ""), "50");
  EXPECT_EQ(c.find("arp.retry_ms")->origin, "m.conf:6");
  EXPECT_EQ(c.get("missing", "fallback"), "fallback");
}

TEST(Config, ErrorsNameFileAndLine) {
  Config c;
  std::string err;
  EXPECT_FALSE(c.parse("ip = 1.2.3.4\nthis line has no equals\n", "/etc/m.conf", &err));
  EXPECT_NE(err.find("/etc/m.conf:2:"), std::string::npos) << err;
  EXPECT_FALSE(c.parse("[unterminated\n", "x.conf", &err));
  EXPECT_NE(err.find("x.conf:1:"), std::string::npos) << err;
  EXPECT_FALSE(c.parse("bad key = 1\n", "x.conf", &err));
  EXPECT_NE(err.find("bad key"), std::string::npos) << err;
}

TEST(Config, TypedGettersRejectBadValuesWithOrigin) {
  Config c;
  std::string err;
  ASSERT_TRUE(c.parse("mtu = 99999\nflag = maybe\nrate = 1.5\nneg = -3\n", "m.conf", &err));
  uint64_t v = 7;
  EXPECT_FALSE(c.get_u64("mtu", 576, 9000, &v, &err));
  EXPECT_NE(err.find("m.conf:1: mtu"), std::string::npos) << err;
  EXPECT_EQ(v, 7u);  // untouched on error
  EXPECT_FALSE(c.get_u64("neg", 0, 10, &v, &err));
  bool b = false;
  EXPECT_FALSE(c.get_bool("flag", &b, &err));
  EXPECT_NE(err.find("m.conf:2"), std::string::npos) << err;
  double d = 0;
  EXPECT_FALSE(c.get_double("rate", 0.0, 1.0, &d, &err));
  // Absent keys keep the default and succeed.
  EXPECT_TRUE(c.get_u64("absent", 0, 1, &v, &err));
  EXPECT_EQ(v, 7u);
}

TEST(Config, EnvironmentOverridesFileAndUnknownKeysAreReported) {
  Config c;
  std::string err;
  ASSERT_TRUE(c.parse("mtu = 1500\narp.retry_ms = 10\ntypo_key = 1\n", "m.conf", &err));
  setenv("MACHNET_MTU", "9000", 1);
  setenv("MACHNET_ARP_RETRY_MS", "20", 1);
  c.apply_env({"mtu", "arp.retry_ms"});
  unsetenv("MACHNET_MTU");
  unsetenv("MACHNET_ARP_RETRY_MS");
  EXPECT_EQ(c.get("mtu", ""), "9000");
  EXPECT_EQ(c.find("mtu")->origin, "env MACHNET_MTU");
  EXPECT_EQ(c.get("arp.retry_ms", ""), "20");
  EXPECT_EQ(Config::env_name("frag.timeout-ms"), "MACHNET_FRAG_TIMEOUT_MS");
  std::string origin;
  auto unknown = c.unknown_keys({"mtu", "arp.retry_ms"}, &origin);
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0], "typo_key");
  EXPECT_EQ(origin, "m.conf:3");
}

TEST(Config, MissingFileIsAClearError) {
  Config c;
  std::string err;
  EXPECT_FALSE(c.load_file("/nonexistent/machnet.conf", &err));
  EXPECT_NE(err.find("/nonexistent/machnet.conf: cannot open"), std::string::npos) << err;
}

}  // namespace
}  // namespace machnet
