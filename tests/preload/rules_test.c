/* Unit test of the offload rules (preload/rules.c): parsing, errors with
 * file:line, environment overrides, order, and the built-in rules. Plain C
 * like the shim; no root, no network. */
#include "check.h"

static uint32_t ip(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

int main(void) {
  check_begin("rules_test");
  struct mn_config c;
  char err[600];
  const char* why;

  /* defaults: offload everything but DNS and the built-ins */
  CHECK(load_text("ip = 10.0.0.101/24\n", &c, err, sizeof(err)) == 0);
  CHECK(c.engine_ip == ip(10, 0, 0, 101) && !c.have_device);
  setenv("MACHNET_DEVICE", "net_tap0", 1);
  CHECK(load_text("ip = 10.0.0.101/24\n", &c, err, sizeof(err)) == 0);
  CHECK(c.have_device);
  unsetenv("MACHNET_DEVICE");
  CHECK(strcmp(c.library, "libmachnet.so.0") == 0);
  CHECK(mn_decide(&c, MN_ROLE_BIND, 0, 7, &why) == MN_OFFLOAD);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(10, 0, 0, 2), 9000, &why) == MN_OFFLOAD);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(10, 0, 0, 2), 53, &why) == MN_KERNEL);
  CHECK(mn_decide(&c, MN_ROLE_BIND, 0, 53, &why) == MN_KERNEL);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(127, 0, 0, 1), 9000, &why) == MN_KERNEL);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(224, 1, 2, 3), 9000, &why) == MN_KERNEL);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(255, 255, 255, 255), 9000, &why) == MN_KERNEL);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(10, 0, 0, 2), 0, &why) == MN_KERNEL);
  CHECK(mn_decide(&c, MN_ROLE_BIND, ip(10, 0, 0, 1), 7, &why) == MN_KERNEL); /* a kernel address */
  CHECK(mn_decide(&c, MN_ROLE_BIND, ip(10, 0, 0, 101), 7, &why) == MN_OFFLOAD);

  /* rules: ascending numbers, first match wins, roles, prefixes, ranges */
  CHECK(load_text("ip = 10.0.0.101/24\n"
                  "[rules]\n"
                  "default = kernel\n"
                  "keep_dns = no\n"
                  "30 = offload udp\n"
                  "10 = kernel udp connect 10.0.9.0/24\n"
                  "20 = offload udp bind port 5000-5099   # servers\n"
                  "25 = kernel bind\n",
                  &c, err, sizeof(err)) == 0);
  CHECK(c.nrules == 4 && c.rules[0].num == 10 && c.rules[3].num == 30);
  CHECK(c.default_action == MN_KERNEL && c.keep_dns == 0);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(10, 0, 9, 7), 80, &why) == MN_KERNEL);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(10, 0, 8, 7), 80, &why) == MN_OFFLOAD); /* rule 30 */
  CHECK(mn_decide(&c, MN_ROLE_BIND, 0, 5000, &why) == MN_OFFLOAD);
  CHECK(mn_decide(&c, MN_ROLE_BIND, 0, 5099, &why) == MN_OFFLOAD);
  CHECK(mn_decide(&c, MN_ROLE_BIND, 0, 5100, &why) == MN_KERNEL);                 /* rule 25 */
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(10, 0, 8, 7), 53, &why) == MN_OFFLOAD); /* keep_dns off */

  /* protocols: udp and tcp rules concern only their sockets, untyped ones both;
   * listen is bind for a stream socket */
  CHECK(load_text("[rules]\n"
                  "default = kernel\n"
                  "10 = offload tcp listen port 6379\n"
                  "20 = offload udp port 11111\n"
                  "30 = offload connect 10.0.0.0/8\n",
                  &c, err, sizeof(err)) == 0);
  CHECK(c.rules[0].proto == MN_PROTO_TCP && c.rules[1].proto == MN_PROTO_UDP &&
        c.rules[2].proto == MN_PROTO_ANY && c.rules[0].role == MN_ROLE_BIND);
  CHECK(mn_decide_proto(&c, MN_PROTO_TCP, MN_ROLE_BIND, 0, 6379, &why) == MN_OFFLOAD);
  CHECK(strcmp(why, "rule") == 0);
  CHECK(mn_decide_proto(&c, MN_PROTO_UDP, MN_ROLE_BIND, 0, 6379, &why) == MN_KERNEL);
  CHECK(mn_decide_proto(&c, MN_PROTO_TCP, MN_ROLE_BIND, 0, 11111, &why) == MN_KERNEL);
  CHECK(mn_decide(&c, MN_ROLE_BIND, 0, 11111, &why) == MN_OFFLOAD);
  CHECK(mn_decide_proto(&c, MN_PROTO_TCP, MN_ROLE_CONNECT, ip(10, 1, 2, 3), 80, &why) ==
        MN_OFFLOAD);
  CHECK(mn_decide_proto(&c, MN_PROTO_UDP, MN_ROLE_CONNECT, ip(10, 1, 2, 3), 80, &why) ==
        MN_OFFLOAD);
  CHECK(mn_decide_proto(&c, MN_PROTO_TCP, MN_ROLE_CONNECT, ip(11, 1, 2, 3), 80, &why) == MN_KERNEL);
  char line[512];
  mn_rules_describe(&c, line, sizeof(line));
  CHECK(strstr(line, "rules.10: offload tcp bind port 6379-6379") != NULL);
  CHECK(strstr(line, "rules.30: offload udp/tcp connect") != NULL);

  /* the environment wins over the file, and adds rules */
  setenv("MACHNET_RULES_DEFAULT", "offload", 1);
  setenv("MACHNET_RULES_10", "offload udp", 1);
  setenv("MACHNET_RULES_5", "kernel connect port 9", 1);
  setenv("MACHNET_STRICT", "yes", 1);
  CHECK(load_text("[rules]\ndefault = kernel\n10 = kernel udp\n", &c, err, sizeof(err)) == 0);
  CHECK(c.default_action == MN_OFFLOAD && c.strict == 1 && c.nrules == 2);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(10, 0, 8, 7), 9, &why) == MN_KERNEL);
  CHECK(mn_decide(&c, MN_ROLE_CONNECT, ip(10, 0, 8, 7), 10, &why) == MN_OFFLOAD);
  unsetenv("MACHNET_RULES_DEFAULT");
  unsetenv("MACHNET_RULES_10");
  unsetenv("MACHNET_RULES_5");
  unsetenv("MACHNET_STRICT");

  /* errors name file:line */
  char want[128];
  CHECK(load_text("ip = 1.2.3.4\n[rules]\n10 = offload udp prot 9\n", &c, err, sizeof(err)) != 0);
  snprintf(want, sizeof(want), "%s:3: rules.10: unexpected 'prot'", g_path);
  CHECK(strncmp(err, want, strlen(want)) == 0);
  CHECK(load_text("[rules]\n\n10 = maybe udp\n", &c, err, sizeof(err)) != 0);
  snprintf(want, sizeof(want), "%s:3: rules.10: a rule starts with", g_path);
  CHECK(strncmp(err, want, strlen(want)) == 0);
  CHECK(load_text("[rules]\n10 = offload port 9-3\n", &c, err, sizeof(err)) != 0);
  CHECK(strstr(err, ":2: rules.10: bad port range '9-3'") != NULL);
  CHECK(load_text("[rules]\n10 = offload 10.0.0.0/33\n", &c, err, sizeof(err)) != 0);
  CHECK(strstr(err, "bad prefix length") != NULL);
  CHECK(load_text("[rules]\n10 = offload tcp udp\n", &c, err, sizeof(err)) != 0);
  CHECK(strstr(err, "a rule names one protocol") != NULL);
  CHECK(load_text("[rules]\nfoo = offload\n", &c, err, sizeof(err)) != 0);
  CHECK(strstr(err, ":2: rules.foo:") != NULL);
  CHECK(load_text("strict = perhaps\n", &c, err, sizeof(err)) != 0);
  CHECK(strstr(err, ":1: strict: expected yes/no") != NULL);
  CHECK(load_text("[rules\n", &c, err, sizeof(err)) != 0);
  CHECK(strstr(err, ":1: unterminated section header") != NULL);
  CHECK(load_text("no equals sign\n", &c, err, sizeof(err)) != 0);
  CHECK(strstr(err, ":1: expected 'key = value'") != NULL);
  setenv("MACHNET_RULES_DEFAULT", "sometimes", 1);
  CHECK(load_text("\n", &c, err, sizeof(err)) != 0);
  CHECK(strstr(err, "env MACHNET_RULES_DEFAULT: rules.default:") != NULL);
  unsetenv("MACHNET_RULES_DEFAULT");
  setenv("MACHNET_CONFIG", "/nonexistent/machnet.conf", 1);
  CHECK(mn_config_load(&c, "x", err, sizeof(err)) != 0);
  CHECK(strstr(err, "/nonexistent/machnet.conf: cannot open") != NULL);

  /* engine and socket keys are read by the socket layer, but checked here
   * too: the shim reports a bad file when it loads it */
  CHECK(load_text("device = net_tap0\nmtu = 9000\n[socket]\nspin_us = 5\n", &c, err, sizeof(err)) ==
        0);
  CHECK(load_text("device = net_tap0\n[socket]\nspin_us = soon\n", &c, err, sizeof(err)) != 0);
  CHECK(strstr(err, ":3: socket.spin_us: expected an integer") != NULL);

  char desc[512];
  CHECK(load_text("[rules]\n10 = kernel udp connect 10.0.9.0/24 port 80-81\n", &c, err,
                  sizeof(err)) == 0);
  mn_rules_describe(&c, desc, sizeof(desc));
  CHECK(strcmp(desc,
               "port 53 on the kernel; rules.10: kernel udp connect 10.0.9.0/24 port 80-81; "
               "default offload") == 0);

  return check_end("rules_test");
}
