// The same machnet.conf files fed to both sides: the preload shim's loader
// (plain C, preload/rules.c, called as the shim calls it: MACHNET_CONFIG and
// the environment) and the C++ readers (load_stack_config, as the one stack
// under the socket layer and the native API reads it; Config::load as
// machnetd and machnet-echo do; Config::load_file, the file alone;
// EngineConfig::load and StackConfig::load on what the grammar alone lets
// through), and machnetd itself. Every malformed file must be rejected by
// all of them with the very same message naming file:line; every good file
// accepted by all (machnetd aside: it would start).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/conf.h"
#include "common/config.h"
#include "rules.h"
#include "stack/stack_config.h"

extern "C" char** environ;

namespace machnet {
namespace {

class BothSides : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/conf-both-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
    // Nothing from the caller's environment but where the trees are (the
    // make check environment): only what a case sets.
    std::vector<std::string> names;
    for (char** e = environ; *e; e++) {
      std::string v = *e;
      std::string name = v.substr(0, v.find('='));
      if (name.rfind("MACHNET_", 0) == 0 && name != "MACHNET_SRCDIR" && name != "MACHNET_BUILDDIR")
        names.push_back(name);
    }
    for (const auto& n : names) unsetenv(n.c_str());
  }
  void TearDown() override { unlink(path_.c_str()); }

  void write(const std::string& text) {
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    f << text;
  }
  // A leading '@' stands for the file's path.
  std::string expand(std::string want) const {
    if (!want.empty() && want[0] == '@') want.replace(0, 1, path_);
    return want;
  }
  // The shim's verdict: "" when accepted, else its message.
  std::string shim() const {
    setenv("MACHNET_CONFIG", path_.c_str(), 1);
    mn_config c;
    char err[1024];
    int rc = mn_config_load(&c, "libmachnet.so.0", err, sizeof(err));
    unsetenv("MACHNET_CONFIG");
    return rc == 0 ? "" : err;
  }
  // Config::load (machnetd, machnet-echo).
  std::string config_load() const {
    Config c;
    std::string err;
    return c.load(path_, {}, &err) ? "" : err;
  }
  // The stack's (socket layer and native API).
  std::string stack() const {
    stack::StackConfig n;
    std::string err;
    return stack::load_stack_config(path_, {}, &n, &err) ? "" : err;
  }
  // The file alone, grammar and schema.
  std::string load_file() const {
    Config c;
    std::string err;
    return c.load_file(path_, &err) ? "" : err;
  }
  // machnetd, run on the file: a bad one is reported before anything starts.
  std::string daemon() const {
    const char* b = getenv("MACHNET_BUILDDIR");
    std::string cmd = std::string(b ? b : ".") + "/machnetd --config " + path_ + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return "popen failed";
    std::string out;
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    int status = pclose(p);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return WIFEXITED(status) && WEXITSTATUS(status) == 2 ? out : "exit " + std::to_string(status);
  }
  // The grammar alone, then the engine's and the stack's own loaders.
  std::string typed() const {
    Config c;
    std::string err, text;
    std::ifstream f(path_, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (!c.parse(text, path_, &err)) return err;
    stack::StackConfig n;
    return n.load(c, &err) ? "" : err;
  }

  std::string path_;
};

struct Bad {
  std::string text;
  std::string want;  // a leading '@' stands for the file's path
  bool typed;        // a value StackConfig/EngineConfig::load read on a grammar-only parse
};

std::vector<Bad> bad_files() {
  std::string rules65 = "[rules]\n";
  for (int i = 1; i <= 65; i++) rules65 += std::to_string(i) + " = offload\n";
  return {
      // unknown keys, anywhere
      {"device = net_tap0\nmtu_size = 1500\n", "@:2: unknown key 'mtu_size'", false},
      {"[transport]\nmtu = 1500\n", "@:2: unknown key 'transport.mtu'", false},
      {"[engine]\nrx_desc = 64\n", "@:2: unknown key 'engine.rx_desc'", false},
      // bad values, out of range
      {"hugepages = maybe\n", "@:1: hugepages: expected yes/no, got 'maybe'", true},
      {"\n\nmtu = 99999\n", "@:3: mtu: expected an integer in [576, 9000], got '99999'", true},
      {"mbufs = -5\n", "@:1: mbufs: expected an integer in [1023, 4194304], got '-5'", true},
      {"mtu = 1500 bytes\n", "@:1: mtu: expected an integer in [576, 9000], got '1500 bytes'",
       true},
      {"mtu = 18446744073709551617\n",
       "@:1: mtu: expected an integer in [576, 9000], got '18446744073709551617'", true},
      {"ip = 10.0.0.1/33\n", "@:1: ip: bad prefix length in '10.0.0.1/33'", true},
      {"ip = 010.0.0.1/24\n",
       "@:1: ip: expected an IPv4 address like 10.0.0.1/24, got '010.0.0.1/24'", true},
      {"gateway = 10.0.0\n", "@:1: gateway: expected an IPv4 address, got '10.0.0'", true},
      {"mac = 02:00:00:00:00\n", "@:1: mac: expected xx:xx:xx:xx:xx:xx, got '02:00:00:00:00'",
       true},
      {"[arp]\nstatic = 10.0.0.2@02:00:00:00:00:02,10.0.0.3\n",
       "@:2: arp.static: expected ip@mac[,ip@mac...], got '10.0.0.3'", true},
      {"log_level = loud\n",
       "@:1: log_level: expected a DPDK log level (emergency, alert, critical, error, warning, "
       "notice, info, debug or 1 to 8, possibly after PATTERN:), got 'loud'",
       true},
      {"log_level = pmd net:debug\n",
       "@:1: log_level: expected a DPDK log level (emergency, alert, critical, error, warning, "
       "notice, info, debug or 1 to 8, possibly after PATTERN:), got 'pmd net:debug'",
       true},
      {"fault.rx_drop = 1.5\n", "@:1: fault.rx_drop: expected a number in [0, 1], got '1.5'", true},
      {"fault.tx_drop = 1e-3\n", "@:1: fault.tx_drop: expected a number in [0, 1], got '1e-3'",
       true},
      {"machnetd = sometimes\n", "@:1: machnetd: expected auto, on or off, got 'sometimes'", true},
      {"machnetd.socket = run/m.sock\n",
       "@:1: machnetd.socket: expected an absolute path under 100 bytes, got 'run/m.sock'", true},
      {"[socket]\nspin_us = lots\n",
       "@:2: socket.spin_us: expected an integer in [0, 10000000], got 'lots'", false},
      {"[transport]\nkeepalive_probes = 0\n",
       "@:2: transport.keepalive_probes: expected an integer in [1, 1000], got '0'", true},
      {"native.progress_thread = sometimes\n",
       "@:1: native.progress_thread: expected yes/no, got 'sometimes'", true},
      {"[machnetd]\nqueues = 99\n",
       "@:2: machnetd.queues: expected an integer in [1, 16], got '99'", false},
      {"[machnetd]\nname = no/slash\n",
       "@:2: machnetd.name: 1 to 24 characters of [A-Za-z0-9_.-], got 'no/slash'", false},
      {"[machnetd]\nsocket_mode = 0999\n",
       "@:2: machnetd.socket_mode: expected an octal mode like 0660, got '0999'", false},
      {"strict = perhaps\n", "@:1: strict: expected yes/no, got 'perhaps'", false},
      {"library =\n", "@:1: library: expected a value, got ''", false},
      {"[rules]\ndefault = sometimes\n",
       "@:2: rules.default: expected offload or kernel, got 'sometimes'", false},
      // the grammar: over-long lines, no '=', bad sections, bad keys
      {"eal_args = " + std::string(188, 'x') + "\n",
       "@:1: line longer than 198 bytes (comments aside)", false},
      {"device = net_tap0\n\n" + std::string(199, 'x') + "=1\n",
       "@:3: line longer than 198 bytes (comments aside)", false},
      {"ip = 10.0.0.1/24\nthis line has no equals\n",
       "@:2: expected 'key = value', got 'this line has no equals'", false},
      {"mtu: 1500\n", "@:1: expected 'key = value', got 'mtu: 1500'", false},
      {"[rules\n10 = offload\n", "@:1: unterminated section header '[rules'", false},
      {"[ru les]\n", "@:1: bad section name 'ru les' (1 to 49 characters of [A-Za-z0-9_.-])",
       false},
      {"[]\n", "@:1: bad section name '' (1 to 49 characters of [A-Za-z0-9_.-])", false},
      {"[rules] default = kernel\n", "@:1: unexpected 'default = kernel' after the section header",
       false},
      {"[" + std::string(50, 's') + "]\n",
       "@:1: bad section name '" + std::string(50, 's') +
           "' (1 to 49 characters of [A-Za-z0-9_.-])",
       false},
      {"bad key = 1\n", "@:1: bad key 'bad key' (characters of [A-Za-z0-9_.-])", false},
      {"= 5\n", "@:1: bad key '' (characters of [A-Za-z0-9_.-])", false},
      // an indented line is a line of its own, not a continuation
      {"device = net_tap0\n    mtu = 99999\n",
       "@:2: mtu: expected an integer in [576, 9000], got '99999'", true},
      // keys given twice; duplicate rule numbers
      {"mtu = 1500\nmtu = 9000\n", "@:2: mtu: set twice (first at line 1)", false},
      {"[rules]\n10 = offload\n10 = kernel udp\n", "@:3: rules.10: set twice (first at line 2)",
       false},
      {"rules.10 = offload\n[rules]\n10 = kernel\n", "@:3: rules.10: set twice (first at line 1)",
       false},
      // rules
      {"[rules]\n10 = offload udp prot 9\n",
       "@:2: rules.10: unexpected 'prot' (expected udp, tcp, bind, listen, connect, ADDR[/LEN], "
       "port N[-M])",
       false},
      {"[rules]\n10 = maybe udp\n",
       "@:2: rules.10: a rule starts with 'offload' or 'kernel', got 'maybe'", false},
      {"[rules]\n10 = offload port 9-3\n", "@:2: rules.10: bad port range '9-3'", false},
      {"[rules]\n10 = offload 10.0.0.0/33\n", "@:2: rules.10: bad prefix length in '10.0.0.0/33'",
       false},
      {"[rules]\n10 = offload tcp udp\n", "@:2: rules.10: a rule names one protocol: udp or tcp",
       false},
      {"[rules]\n010 = offload\n",
       "@:2: rules.010: rules take a number without leading zeros (rules.10 = ...), or are "
       "default or keep_dns",
       false},
      {"[rules]\nfoo = offload\n",
       "@:2: rules.foo: rules take a number without leading zeros (rules.10 = ...), or are "
       "default or keep_dns",
       false},
      {rules65, "@:66: rules.65: more than 64 rules", false},
      // bytes that are not text
      {"device = net_tap0\n\xff\xfe garbage\n", "@:2: byte 1 is not UTF-8", false},
      {"device = caf\xc3\n", "@:1: byte 13 is not UTF-8", false},
      {"# \xed\xa0\x80 a surrogate\n", "@:1: byte 3 is not UTF-8", false},
      {std::string("mtu = 1500\0 x\n", 14), "@:1: byte 11 is a control character", false},
      {"# bell \x07\n", "@:1: byte 8 is a control character", false},
      {"\xef\xbb\xbf# bell \x07\n", "@:1: byte 11 is a control character", false},
      {"mtu = 1500\rmbufs = 2000\n", "@:1: byte 11 is a control character", false},
      // rules between keys, on the values in effect
      {"[transport]\nmax_message_bytes = 1000000\nsend_buffer_bytes = 5000\n",
       "@:3: transport.send_buffer_bytes: must be at least transport.max_message_bytes "
       "(1000000), got 5000",
       false},
      // found by fuzz_conf: accepted by the parser, refused by the stack (a
      // flow's buffer is at least 4096 bytes)
      {"[transport]\nmax_message_bytes = 1\nsend_buffer_bytes = 1000\n",
       "@:3: transport.send_buffer_bytes: expected an integer in [4096, 2147483648], got '1000'",
       true},
      {"[transport]\nmax_message_bytes = 33554432\n",
       "@:2: transport.max_message_bytes: must be at most transport.send_buffer_bytes "
       "(16777216), got 33554432",
       false},
      {"[transport]\nrto_min_us = 20\n",
       "@:2: transport.rto_min_us: must be more than transport.delayed_ack_us (25), got 20", false},
      {"[machnetd]\nmbufs_per_queue = 1000\n",
       "@:2: machnetd.mbufs_per_queue: must be at least twice machnetd.rx_desc (512), got 1000",
       false},
  };
}

TEST_F(BothSides, MalformedFilesAreRejectedAlikeNamingFileAndLine) {
  for (const Bad& b : bad_files()) {
    write(b.text);
    std::string want = expand(b.want);
    SCOPED_TRACE(want);
    EXPECT_EQ(shim(), want);
    EXPECT_EQ(config_load(), want);
    EXPECT_EQ(stack(), want);
    if (want.find("must be") == std::string::npos) {
      EXPECT_EQ(load_file(), want);
    }
    if (b.typed) {
      EXPECT_EQ(typed(), want);
    }
    EXPECT_EQ(daemon(), "machnetd: " + want);
  }
}

TEST_F(BothSides, BadEnvironmentIsRejectedAlike) {
  write("device = net_tap0\n");
  struct Env {
    const char *name, *value, *want;
  } cases[] = {
      {"MACHNET_MTU", "abc", "env MACHNET_MTU: mtu: expected an integer in [576, 9000], got 'abc'"},
      {"MACHNET_RULES_5", "bogus",
       "env MACHNET_RULES_5: rules.5: a rule starts with 'offload' or 'kernel', got 'bogus'"},
      {"MACHNET_TRANSPORT_RTO_MIN_US", "0",
       "env MACHNET_TRANSPORT_RTO_MIN_US: transport.rto_min_us: expected an integer in [1, "
       "10000000], got '0'"},
      {"MACHNET_MACHNETD_QUEUES", "0",
       "env MACHNET_MACHNETD_QUEUES: machnetd.queues: expected an integer in [1, 16], got '0'"},
      {"MACHNET_DEVICE", "tab\x01",
       "env MACHNET_DEVICE: device: byte 4 of the value is a control "
       "character or not UTF-8"},
  };
  for (const Env& e : cases) {
    SCOPED_TRACE(e.name);
    setenv(e.name, e.value, 1);
    EXPECT_EQ(shim(), e.want);
    EXPECT_EQ(config_load(), e.want);
    EXPECT_EQ(stack(), e.want);
    EXPECT_EQ(daemon(), std::string("machnetd: ") + e.want);
    unsetenv(e.name);
  }
  // An environment that fixes the file's value is still a bad file: the
  // file is checked line by line, before the environment applies.
  write("mtu = 99999\n");
  setenv("MACHNET_MTU", "9000", 1);
  EXPECT_EQ(shim(), expand("@:1: mtu: expected an integer in [576, 9000], got '99999'"));
  EXPECT_EQ(config_load(), shim());
  unsetenv("MACHNET_MTU");
  // Variables that are not keys are not this reader's business.
  setenv("MACHNET_NOT_A_KEY", "whatever", 1);
  write("");
  EXPECT_EQ(shim(), "");
  EXPECT_EQ(config_load(), "");
  unsetenv("MACHNET_NOT_A_KEY");
}

TEST_F(BothSides, GoodFilesAreAcceptedByAll) {
  std::vector<std::string> good = {
      "",
      "\xef\xbb\xbf# a BOM, CRLF lines\r\ndevice = net_tap0\r\n[rules]\r\n10 = kernel udp\r\n",
      "  device = net_tap0   # indented, trailing comment\n"
      "ip=10.0.0.1/24;semicolon comment\n"
      "mac = \"02:00:00:00:00:01\"\n"
      "; a comment\n"
      "# " +
          std::string(400, 'c') +
          "\n"
          "[ rules ]\n"
          "default = kernel\n"
          "keep_dns = no\n"
          "10 = offload udp connect 10.0.9.0/24 port 80-81\n"
          "20 = kernel bind port 5353\n"
          "[socket]\n"
          "spin_us = 0\n"
          "[transport]\n"
          "max_message_bytes = 1048576\n"
          "[machnetd]\n"
          "queues = 4\n"
          "socket = /run/m.sock\n"
          "[native]\n"
          "linger_ms = 0\n"
          "[arp]\n"
          "static = 10.0.0.2@02:00:00:00:00:02, 10.0.0.3@02-00-00-00-00-03\n",
      // a line of exactly the limit
      "eal_args = " + std::string(MN_CONF_MAX_LINE - 11, 'x') + "\n",
  };
  // The shipped example.
  const char* src = getenv("MACHNET_SRCDIR");
  std::ifstream ex(std::string(src ? src : "..") + "/etc/machnet.conf.example");
  ASSERT_TRUE(ex.good());
  good.emplace_back(std::istreambuf_iterator<char>(ex), std::istreambuf_iterator<char>());
  // Every key of the schema at its default.
  std::string all;
  size_t n = 0;
  const mn_conf_key* s = mn_conf_schema(&n);
  for (size_t i = 0; i < n; i++) {
    if (s[i].def != nullptr && s[i].type != MN_CONF_RULE)
      all += std::string(s[i].name) + " = " + s[i].def + "\n";
  }
  good.push_back(all);
  for (const std::string& text : good) {
    SCOPED_TRACE(text.substr(0, 60));
    write(text);
    EXPECT_EQ(shim(), "");
    EXPECT_EQ(config_load(), "");
    EXPECT_EQ(stack(), "");
    EXPECT_EQ(load_file(), "");
  }
}

// The schema's defaults are the readers' defaults: a file that spells every
// default out changes nothing.
TEST_F(BothSides, SchemaDefaultsAreTheReadersDefaults) {
  std::string all;
  size_t n = 0;
  const mn_conf_key* s = mn_conf_schema(&n);
  for (size_t i = 0; i < n; i++) {
    std::string name = s[i].name;
    // mtu_payload is fitted to the MTU unless set.
    if (s[i].def == nullptr || s[i].type == MN_CONF_RULE || name == "transport.mtu_payload")
      continue;
    all += name + " = " + s[i].def + "\n";
  }
  write(all);
  stack::StackConfig set, none;
  std::string err;
  ASSERT_TRUE(stack::load_stack_config(path_, {}, &set, &err)) << err;
  write("");
  ASSERT_TRUE(stack::load_stack_config(path_, {}, &none, &err)) << err;
  const engine::EngineConfig &a = set.engine, &b = none.engine;
  EXPECT_EQ(a.mtu, b.mtu);
  EXPECT_EQ(a.hugepages, b.hugepages);
  EXPECT_EQ(a.log_level, b.log_level);
  EXPECT_EQ(a.num_mbufs, b.num_mbufs);
  EXPECT_EQ(a.rx_desc, b.rx_desc);
  EXPECT_EQ(a.tx_desc, b.tx_desc);
  EXPECT_EQ(a.socket_queue_len, b.socket_queue_len);
  EXPECT_EQ(a.arp.retry_ns, b.arp.retry_ns);
  EXPECT_EQ(a.arp.max_requests, b.arp.max_requests);
  EXPECT_EQ(a.arp.reachable_ns, b.arp.reachable_ns);
  EXPECT_EQ(a.arp.max_entries, b.arp.max_entries);
  EXPECT_EQ(a.arp.max_pending_per_entry, b.arp.max_pending_per_entry);
  EXPECT_EQ(a.frag_timeout_ms, b.frag_timeout_ms);
  EXPECT_EQ(a.frag_max_flows, b.frag_max_flows);
  EXPECT_EQ(a.frag_max_mbufs, b.frag_max_mbufs);
  EXPECT_EQ(a.frag_max_bytes, b.frag_max_bytes);
  EXPECT_EQ(a.xdp_shared_ip, b.xdp_shared_ip);
  EXPECT_EQ(a.machnetd, b.machnetd);
  EXPECT_EQ(a.machnetd_socket, b.machnetd_socket);
  const transport::Tunables &t = set.tunables, &u = none.tunables;
  EXPECT_EQ(t.max_message_bytes, u.max_message_bytes);
  EXPECT_EQ(t.send_buffer_bytes, u.send_buffer_bytes);
  EXPECT_EQ(t.recv_buffer_bytes, u.recv_buffer_bytes);
  EXPECT_EQ(t.max_inflight_segments, u.max_inflight_segments);
  EXPECT_EQ(t.max_flows, u.max_flows);
  EXPECT_EQ(t.listen_backlog, u.listen_backlog);
  EXPECT_EQ(t.syn_rto_ns, u.syn_rto_ns);
  EXPECT_EQ(t.syn_max_retries, u.syn_max_retries);
  EXPECT_EQ(t.rto_initial_ns, u.rto_initial_ns);
  EXPECT_EQ(t.rto_min_ns, u.rto_min_ns);
  EXPECT_EQ(t.rto_max_ns, u.rto_max_ns);
  EXPECT_EQ(t.max_retransmits, u.max_retransmits);
  EXPECT_EQ(t.delayed_ack_ns, u.delayed_ack_ns);
  EXPECT_EQ(t.ack_every_segments, u.ack_every_segments);
  EXPECT_EQ(t.keepalive_idle_ns, u.keepalive_idle_ns);
  EXPECT_EQ(t.keepalive_interval_ns, u.keepalive_interval_ns);
  EXPECT_EQ(t.keepalive_probes, u.keepalive_probes);
  EXPECT_EQ(t.time_wait_ns, u.time_wait_ns);
  EXPECT_EQ(t.initial_cwnd_segments, u.initial_cwnd_segments);
  EXPECT_EQ(t.payload_checksum, u.payload_checksum);
  EXPECT_EQ(t.cc_slow_start, u.cc_slow_start);
  EXPECT_EQ(set.linger_ns, none.linger_ns);
  EXPECT_EQ(set.progress_thread, none.progress_thread);
  EXPECT_EQ(set.progress_idle_ns, none.progress_idle_ns);
  // And the shim's.
  setenv("MACHNET_CONFIG", path_.c_str(), 1);
  write(all);
  mn_config cs, cn;
  char e[512];
  ASSERT_EQ(mn_config_load(&cs, "lib", e, sizeof(e)), 0) << e;
  write("");
  ASSERT_EQ(mn_config_load(&cn, "lib", e, sizeof(e)), 0) << e;
  unsetenv("MACHNET_CONFIG");
  EXPECT_EQ(cs.strict, cn.strict);
  EXPECT_EQ(cs.log_level, cn.log_level);  // the engine's and machnetd's default too
  EXPECT_EQ(cs.default_action, cn.default_action);
  EXPECT_EQ(cs.keep_dns, cn.keep_dns);
  EXPECT_EQ(cs.machnetd, cn.machnetd);
  EXPECT_STREQ(cs.machnetd_socket, cn.machnetd_socket);
}

TEST(Schema, EnvironmentNamesAreDistinctAndKeysWellFormed) {
  size_t n = 0;
  const mn_conf_key* s = mn_conf_schema(&n);
  std::vector<std::string> names;
  for (size_t i = 0; i < n; i++) {
    std::string name = Config::env_name(s[i].name);
    for (const auto& other : names) EXPECT_NE(name, other) << s[i].name;
    names.push_back(name);
    EXPECT_EQ(mn_conf_lookup(s[i].name), &s[i]);
  }
  EXPECT_EQ(mn_conf_rule_number("rules.0"), 0);
  EXPECT_EQ(mn_conf_rule_number("rules.999999999"), 999999999);
  EXPECT_EQ(mn_conf_rule_number("rules.1000000000"), -1);
  EXPECT_EQ(mn_conf_rule_number("rules.07"), -1);
  EXPECT_EQ(mn_conf_rule_number("rules.default"), -1);
}

}  // namespace
}  // namespace machnet
