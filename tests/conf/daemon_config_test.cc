// machnetd's configuration (src/daemon/config.cc) against the schema
// (src/common/conf_schema.c), the one place that names a key and gives its
// range and default: the daemon starts from the schema's defaults, a file
// that spells every default out changes nothing, and log_level has one
// default for the daemon, the engine and the preload shim. No root, no
// devices: nothing here starts EAL.
#include <getopt.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/conf.h"
#include "common/config.h"
#include "daemon/config.h"
#include "engine/engine_config.h"
#include "rules.h"

extern "C" char** environ;

namespace machnet {
namespace {

uint64_t schema_uint(const char* key) {
  const mn_conf_key* k = mn_conf_lookup(key);
  EXPECT_NE(k, nullptr) << key;
  if (k == nullptr) return 0;
  uint64_t v = 0;
  char why[200];
  EXPECT_EQ(mn_conf_uint(k->def, k->min, k->max, &v, why, sizeof(why)), 0) << key << ": " << why;
  return v;
}

std::string schema_text(const char* key) {
  const mn_conf_key* k = mn_conf_lookup(key);
  return k && k->def ? k->def : "";
}

class DaemonConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mnd-conf-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
    std::vector<std::string> names;  // no MACHNET_* of the caller's
    for (char** e = environ; *e; e++) {
      std::string v = *e;
      std::string name = v.substr(0, v.find('='));
      if (name.rfind("MACHNET_", 0) == 0) names.push_back(name);
    }
    for (const auto& n : names) unsetenv(n.c_str());
  }
  void TearDown() override { unlink(path_.c_str()); }

  // load_config on `text` as the file: -1 when the daemon would run.
  int load(const std::string& text, daemon::DaemonConfig* d) {
    std::ofstream(path_, std::ios::trunc) << text;
    std::vector<std::string> args = {"machnetd", "--config", path_};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    optind = 0;  // getopt_long starts over
    return daemon::load_config(static_cast<int>(args.size()), argv.data(), d);
  }

  std::string path_;
};

TEST_F(DaemonConfigTest, StartsFromTheSchemasDefaults) {
  daemon::DaemonConfig d;
  EXPECT_EQ(d.device, schema_text("device"));
  EXPECT_EQ(d.mtu, schema_uint("mtu"));
  EXPECT_EQ(d.mac, schema_text("mac"));
  EXPECT_EQ(d.log_level, schema_text("log_level"));
  EXPECT_EQ(d.frag_timeout_ms, schema_uint("frag.timeout_ms"));
  EXPECT_EQ(d.frag_max_flows, schema_uint("frag.max_flows"));
  EXPECT_EQ(d.frag_max_mbufs, schema_uint("frag.max_mbufs"));
  EXPECT_EQ(d.frag_max_bytes, schema_uint("frag.max_bytes"));
  EXPECT_EQ(d.name, schema_text("machnetd.name"));
  EXPECT_EQ(d.socket, schema_text("machnetd.socket"));
  EXPECT_EQ(d.queues, schema_uint("machnetd.queues"));
  EXPECT_EQ(d.mbufs_per_queue, schema_uint("machnetd.mbufs_per_queue"));
  EXPECT_EQ(d.base_virtaddr, schema_uint("machnetd.base_virtaddr"));
  EXPECT_EQ(d.socket_mode, 0660u);  // "0660" in the schema: an octal mode
  EXPECT_EQ(d.socket_group, schema_text("machnetd.socket_group"));
  EXPECT_EQ(d.idle_sleep_us, schema_uint("machnetd.idle_sleep_us"));
  EXPECT_EQ(d.eal_args, schema_text("machnetd.eal_args"));
  EXPECT_EQ(d.rx_desc, schema_uint("machnetd.rx_desc"));
  EXPECT_EQ(d.tx_desc, schema_uint("machnetd.tx_desc"));
  EXPECT_EQ(d.reclaim_grace_ms, schema_uint("machnetd.reclaim_grace_ms"));
  // The engine shares the host keys, with the same defaults.
  engine::EngineConfig e;
  EXPECT_EQ(e.mtu, d.mtu);
  EXPECT_EQ(e.frag_timeout_ms, d.frag_timeout_ms);
  EXPECT_EQ(e.frag_max_flows, d.frag_max_flows);
  EXPECT_EQ(e.frag_max_bytes, d.frag_max_bytes);
  EXPECT_EQ(e.rx_desc, schema_uint("rx_desc"));
  EXPECT_EQ(e.num_mbufs, schema_uint("mbufs"));
  EXPECT_EQ(e.arp.retry_ns, schema_uint("arp.retry_ms") * 1000000);
  EXPECT_EQ(e.arp.reachable_ns, schema_uint("arp.reachable_s") * 1000000000);
  EXPECT_EQ(e.machnetd_socket, d.socket);
  EXPECT_EQ(e.machnetd, engine::MachnetdMode::kAuto);
}

// One level, one default, for the daemon, the engine and the shim.
TEST_F(DaemonConfigTest, OneLogLevelDefaultForDaemonEngineAndShim) {
  daemon::DaemonConfig d;
  engine::EngineConfig e;
  EXPECT_EQ(d.log_level, e.log_level);
  int want = 0;
  ASSERT_EQ(mn_conf_log_level(d.log_level.c_str(), &want), 0) << d.log_level;
  EXPECT_GT(want, 0);
  mn_config c;
  char err[256];
  ASSERT_EQ(mn_config_parse(&c, "lib", "", 0, "empty.conf", err, sizeof(err)), 0) << err;
  EXPECT_EQ(c.log_level, want);
  // A PATTERN:LEVEL setting changes some of DPDK's types only: the shim
  // keeps the default.
  const char pattern[] = "log_level = pmd.net.*:debug\n";
  ASSERT_EQ(mn_config_parse(&c, "lib", pattern, sizeof(pattern) - 1, "p.conf", err, sizeof(err)), 0)
      << err;
  EXPECT_EQ(c.log_level, want);
  const char info[] = "log_level = info\n";
  ASSERT_EQ(mn_config_parse(&c, "lib", info, sizeof(info) - 1, "i.conf", err, sizeof(err)), 0)
      << err;
  EXPECT_EQ(c.log_level, 7);
}

// A file that says every default of the daemon's keys changes nothing.
TEST_F(DaemonConfigTest, SpellingEveryDefaultChangesNothing) {
  const std::string need = "device = net_ring0\nip = 10.0.0.1/24\n";
  std::string all = need;
  size_t n = 0;
  const mn_conf_key* s = mn_conf_schema(&n);
  for (size_t i = 0; i < n; i++) {
    std::string name = s[i].name;
    if (s[i].def == nullptr || s[i].type == MN_CONF_RULE || name == "device") continue;
    all += name + " = " + s[i].def + "\n";
  }
  daemon::DaemonConfig a, b;
  ASSERT_EQ(load(all, &a), -1);
  ASSERT_EQ(load(need, &b), -1);
  EXPECT_EQ(a.device, b.device);
  EXPECT_EQ(a.ip, b.ip);
  EXPECT_EQ(a.prefix_len, b.prefix_len);
  EXPECT_EQ(a.gateway, b.gateway);
  EXPECT_EQ(a.mtu, b.mtu);
  EXPECT_EQ(a.mac, b.mac);
  EXPECT_EQ(a.log_level, b.log_level);
  EXPECT_EQ(a.frag_timeout_ms, b.frag_timeout_ms);
  EXPECT_EQ(a.frag_max_flows, b.frag_max_flows);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.socket, b.socket);
  EXPECT_EQ(a.queues, b.queues);
  EXPECT_EQ(a.mbufs_per_queue, b.mbufs_per_queue);
  EXPECT_EQ(a.base_virtaddr, b.base_virtaddr);
  EXPECT_EQ(a.socket_mode, b.socket_mode);
  EXPECT_EQ(a.socket_group, b.socket_group);
  EXPECT_EQ(a.idle_sleep_us, b.idle_sleep_us);
  EXPECT_EQ(a.eal_args, b.eal_args);
  EXPECT_EQ(a.rx_desc, b.rx_desc);
  EXPECT_EQ(a.tx_desc, b.tx_desc);
  EXPECT_EQ(a.reclaim_grace_ms, b.reclaim_grace_ms);
}

// The daemon's keys are read, within the schema's ranges, and the rule
// between two of them is the schema's.
TEST_F(DaemonConfigTest, ReadsItsKeysThroughTheSchema) {
  daemon::DaemonConfig d;
  ASSERT_EQ(
      load("device = net_ring0\nip = 10.0.0.1/16\nlog_level = warning\n[machnetd]\nqueues = 3\n"
           "socket_mode = 0600\nrx_desc = 256\nmbufs_per_queue = 1023\n"
           "[frag]\nmax_flows = 64\n",
           &d),
      -1);
  EXPECT_EQ(d.prefix_len, 16);
  EXPECT_EQ(d.queues, 3u);
  EXPECT_EQ(d.socket_mode, 0600u);
  EXPECT_EQ(d.rx_desc, 256);
  EXPECT_EQ(d.mbufs_per_queue, 1023u);
  EXPECT_EQ(d.frag_max_flows, 64u);
  EXPECT_EQ(d.log_level, "warning");
  daemon::DaemonConfig bad;
  EXPECT_EQ(load("device = net_ring0\nip = 10.0.0.1\nmachnetd.queues = 17\n", &bad), 2);
  EXPECT_EQ(load("device = net_ring0\nip = 10.0.0.1\n[machnetd]\nrx_desc = 1024\n"
                 "mbufs_per_queue = 2047\n",
                 &bad),
            2);
  EXPECT_EQ(load("ip = 10.0.0.1\n", &bad), 2);  // no device
}

}  // namespace
}  // namespace machnet
