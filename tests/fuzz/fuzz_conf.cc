// libFuzzer target for machnet.conf: the bytes as a configuration file, read
// by every reader, which must agree. The preload shim's loader (preload/rules.c,
// plain C) and the C++ face (Config::load_text, then the engine's and the
// stack's loaders) must accept the same inputs and reject them with the
// same message, naming fuzz.conf and a line of the input. What is accepted is
// then decided on (mn_decide), described, and written back out and read again
// to the same entries. Every invariant violation aborts, which libFuzzer
// reports as a crash.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/conf.h"
#include "common/config.h"
#include "fuzz_check.h"
#include "rules.h"
#include "stack/stack_config.h"

extern "C" char** environ;

namespace {

constexpr char kPath[] = "fuzz.conf";

// "fuzz.conf:N: ..." with 1 <= N <= the input's lines.
bool names_a_line(const std::string& err, size_t lines) {
  std::string head = std::string(kPath) + ":";
  if (err.compare(0, head.size(), head) != 0) return false;
  size_t n = 0, i = head.size();
  for (; i < err.size() && err[i] >= '0' && err[i] <= '9' && n <= lines; i++) {
    n = n * 10 + static_cast<size_t>(err[i] - '0');
  }
  return n >= 1 && n <= lines && err.compare(i, 2, ": ") == 0;
}

void clear_environment() {
  for (;;) {
    char** e = environ;
    while (*e && std::strncmp(*e, "MACHNET_", 8) != 0) e++;
    if (*e == nullptr) return;
    std::string name(*e, std::strchr(*e, '=') - *e);
    unsetenv(name.c_str());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool once = (clear_environment(), true);
  (void)once;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;

  // The shim's side.
  mn_config c;
  char cerr[1024] = "";
  int crc =
      mn_config_parse(&c, "libmachnet.so.0", text.data(), text.size(), kPath, cerr, sizeof(cerr));
  // The C++ side, as the native API, machnetd and machnet-echo read it.
  machnet::Config cfg;
  std::string err;
  bool ok = cfg.load_text(text, kPath, {}, &err);
  FUZZ_CHECK(ok == (crc == 0));
  if (!ok) {
    FUZZ_CHECK(err == cerr);
    FUZZ_CHECK(names_a_line(err, lines));
  }
  // The grammar alone: it never accepts what the schema's pass rejects for
  // the grammar, and accepts all the schema's pass accepts.
  machnet::Config raw;
  std::string rerr;
  bool raw_ok = raw.parse(text, kPath, &rerr);
  if (!raw_ok) {
    FUZZ_CHECK(!ok);
    FUZZ_CHECK(names_a_line(rerr, lines));
  }
  if (ok) FUZZ_CHECK(raw_ok);
  if (!ok) return 0;

  // Accepted: the engine and the stack (socket layer, native API) take it.
  machnet::stack::StackConfig nc;
  std::string nerr;
  FUZZ_CHECK(nc.load(cfg, &nerr));
  FUZZ_CHECK(nc.tunables.validate().empty());

  // The shim decides and describes without trouble; rules are in order.
  FUZZ_CHECK(c.nrules >= 0 && c.nrules <= MN_MAX_RULES);
  for (int i = 1; i < c.nrules; i++) FUZZ_CHECK(c.rules[i - 1].num < c.rules[i].num);
  const char* why = nullptr;
  for (int role : {MN_ROLE_BIND, MN_ROLE_CONNECT}) {
    for (uint32_t addr : {0u, c.engine_ip, 0x0a000002u, 0x7f000001u, 0xe0000001u}) {
      for (uint16_t port : {0, 53, 80, 5000, 65535}) {
        int a = mn_decide(&c, role, addr, port, &why);
        FUZZ_CHECK((a == MN_KERNEL || a == MN_OFFLOAD) && why != nullptr);
      }
    }
  }
  char desc[1024];
  mn_rules_describe(&c, desc, sizeof(desc));
  FUZZ_CHECK(std::strlen(desc) < sizeof(desc));

  // Written back out (one quoted "key = value" per line) and read again:
  // the same entries, when every line fits.
  mn_conf conf = MN_CONF_INIT;
  char buf[1024];
  FUZZ_CHECK(
      mn_conf_parse(&conf, text.data(), text.size(), kPath, MN_CONF_CHECK, buf, sizeof(buf)) == 0);
  std::string out;
  bool fits = true;
  for (size_t i = 0; i < conf.n; i++) {
    std::string line = std::string(conf.v[i].key) + " = \"" + conf.v[i].value + "\"";
    fits = fits && line.size() <= MN_CONF_MAX_LINE;
    out += line + "\n";
  }
  if (fits) {
    mn_conf again = MN_CONF_INIT;
    FUZZ_CHECK(
        mn_conf_parse(&again, out.data(), out.size(), kPath, MN_CONF_CHECK, buf, sizeof(buf)) == 0);
    FUZZ_CHECK(again.n == conf.n);
    for (size_t i = 0; i < conf.n; i++) {
      const mn_conf_entry* e = mn_conf_find(&again, conf.v[i].key);
      FUZZ_CHECK(e != nullptr && std::strcmp(e->value, conf.v[i].value) == 0);
    }
    mn_conf_free(&again);
  }
  mn_conf_free(&conf);
  return 0;
}
