// machnet.conf parsing and the engine keys: bad input names the file and line
// (or the environment variable), nothing is silently ignored.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>

#include "common/conf.h"
#include "common/config.h"

// Debian's libinih exports the options it was built with.
extern "C" {
extern const int ini_max_line;
extern const char ini_allow_multiline, ini_allow_inline_comments, ini_allow_no_value,
    ini_allow_realloc, ini_use_stack;
extern const char* const ini_inline_comment_prefixes;
}

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

// What src/common/conf.c assumes of the libinih it links (machnet.conf(5)
// documents the line limit): if a new Debian release changes these, the
// wrapper and the manual need a look.
TEST(Config, DebiansLibinihIsBuiltAsTheWrapperAssumes) {
  EXPECT_EQ(ini_max_line, MN_CONF_MAX_LINE + 2);
  EXPECT_TRUE(ini_use_stack);
  EXPECT_FALSE(ini_allow_realloc);
  EXPECT_FALSE(ini_allow_no_value);
  EXPECT_TRUE(ini_allow_multiline);  // neutralised: leading white space is cut
  EXPECT_TRUE(ini_allow_inline_comments);
  EXPECT_STREQ(ini_inline_comment_prefixes, ";");  // neutralised: ';' is cut anywhere
}

TEST(Config, GrammarIsStrictWhereLibinihIsLenient) {
  struct Case {
    std::string text, want;
  } cases[] = {
      {"a = 1\n" + std::string(199, 'k') + " = 2\n", "m.conf:2: line longer than 198 bytes"},
      {"a: 1\n", "m.conf:1: expected 'key = value', got 'a: 1'"},
      {"[s] x\n", "m.conf:1: unexpected 'x' after the section header"},
      {"a = 1\na = 2\n", "m.conf:2: a: set twice (first at line 1)"},
      {std::string("a = \0\n", 6), "m.conf:1: byte 5 is a control character"},
      {"a = \xc3\x28\n", "m.conf:1: byte 5 is not UTF-8"},
      // libinih takes a byte-order mark off line 1 itself: a second one would
      // hide a section header from the checks
      {"\xef\xbb\xbf\xef\xbb\xbf[x y]\n", "m.conf:1: byte 4 is a second byte-order mark"},
  };
  for (const Case& tc : cases) {
    Config c;
    std::string err;
    EXPECT_FALSE(c.parse(tc.text, "m.conf", &err)) << tc.want;
    EXPECT_EQ(err.rfind(tc.want, 0), 0u) << err;
  }
  // Indentation does not continue a value; ';' and '#' end a line anywhere;
  // one pair of quotes is taken off; sections are trimmed.
  Config c;
  std::string err;
  ASSERT_TRUE(c.parse("a = 1\n   b = 2;x\nq = \"\"x\"\"#y\n[ s ]\nk=v\n", "m.conf", &err)) << err;
  EXPECT_EQ(c.get("a", ""), "1");
  EXPECT_EQ(c.get("b", ""), "2");
  EXPECT_EQ(c.get("q", ""), "\"x\"");
  EXPECT_EQ(c.get("s.k", ""), "v");
}

TEST(Config, SchemaDrivenGettersAndLoadFile) {
  Config c;
  std::string err;
  ASSERT_TRUE(c.parse("mtu = 0x2328\nfault.rx_drop = .25\nmachnetd = no\n", "m.conf", &err));
  uint64_t mtu = 0;
  ASSERT_TRUE(c.get_uint("mtu", &mtu, &err)) << err;
  EXPECT_EQ(mtu, 9000u);
  double d = 0;
  ASSERT_TRUE(c.get_real("fault.rx_drop", &d, &err)) << err;
  EXPECT_EQ(d, 0.25);
  int m = -1;
  ASSERT_TRUE(c.get_word("machnetd", &m, &err)) << err;
  EXPECT_EQ(m, MN_MACHNETD_OFF);
  EXPECT_FALSE(c.get_uint("no.such", &mtu, &err));
  char path[] = "/tmp/test-config-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "mtu = 1500\nmtu_size = 2\n", 24), 24);
  close(fd);
  Config f;
  EXPECT_FALSE(f.load_file(path, &err));
  EXPECT_EQ(err, std::string(path) + ":2: unknown key 'mtu_size'");
  unlink(path);
}

}  // namespace
}  // namespace machnet
