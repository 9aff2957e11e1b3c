// machnetd's control-message parser and request authorisation
// (src/daemon/control_parse.h), the pure part of the control server that
// tests/fuzz/fuzz_control.cc fuzzes.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "daemon/control_parse.h"

namespace {

using machnet::daemon::ctl_authorize;
using machnet::daemon::ctl_parse;
using machnet::daemon::CtlParsed;
using machnet::daemon::CtlVerdict;

std::vector<uint8_t> header(uint16_t type, uint32_t seq, uint16_t version = MN_CTL_VERSION,
                            uint32_t magic = MN_CTL_MAGIC) {
  mn_ctl_header h{};
  h.magic = magic;
  h.version = version;
  h.type = type;
  h.seq = seq;
  std::vector<uint8_t> v(sizeof(h));
  memcpy(v.data(), &h, sizeof(h));
  return v;
}

template <typename T>
std::vector<uint8_t> bytes(const T& t) {
  std::vector<uint8_t> v(sizeof(t));
  memcpy(v.data(), &t, sizeof(t));
  return v;
}

CtlParsed parse(const std::vector<uint8_t>& v) {
  return ctl_parse(v.data(), v.size());
}

TEST(ControlParse, MalformedMessages) {
  EXPECT_EQ(parse({}).verdict, CtlVerdict::kMalformed);
  EXPECT_EQ(parse({1, 2, 3}).verdict, CtlVerdict::kMalformed);
  EXPECT_EQ(parse(header(MN_CTL_INFO, 1, MN_CTL_VERSION, 0x12345678)).verdict,
            CtlVerdict::kMalformed);
  // A BIND shorter than mn_ctl_bind_request.
  auto b = header(MN_CTL_BIND, 2);
  b.resize(sizeof(mn_ctl_bind_request) - 1);
  CtlParsed p = parse(b);
  EXPECT_EQ(p.verdict, CtlVerdict::kMalformed);
  EXPECT_STREQ(p.why, "request shorter than its type requires");
  std::vector<uint8_t> big(MN_CTL_MAX_MESSAGE + 1);
  memcpy(big.data(), header(MN_CTL_INFO, 1).data(), sizeof(mn_ctl_header));
  EXPECT_EQ(parse(big).verdict, CtlVerdict::kMalformed);
}

TEST(ControlParse, WrongVersionAndUnknownTypeAreAnswered) {
  CtlParsed p = parse(header(MN_CTL_INFO, 7, MN_CTL_VERSION + 1));
  EXPECT_EQ(p.verdict, CtlVerdict::kStatus);
  EXPECT_EQ(p.status, -EPROTONOSUPPORT);
  // Version 1 (BIND without flags) is refused like any other.
  EXPECT_EQ(parse(header(MN_CTL_INFO, 7, 1)).status, -EPROTONOSUPPORT);
  // A short BIND of another version is answered too: the version decides first.
  EXPECT_EQ(parse(header(MN_CTL_BIND, 8, MN_CTL_VERSION + 1)).status, -EPROTONOSUPPORT);
  p = parse(header(99, 9));
  EXPECT_EQ(p.verdict, CtlVerdict::kStatus);
  EXPECT_EQ(p.status, -EOPNOTSUPP);
  mn_ctl_header r;
  machnet::daemon::ctl_reply_header(&r, p.req, p.status);
  EXPECT_EQ(r.magic, MN_CTL_MAGIC);
  EXPECT_EQ(r.type, 99);
  EXPECT_EQ(r.seq, 9u);
  EXPECT_EQ(r.status, -EOPNOTSUPP);
}

TEST(ControlParse, RequestsAreCopiedAndTrailingBytesIgnored) {
  mn_ctl_unbind_request u{};
  memcpy(&u.h, header(MN_CTL_UNBIND, 3).data(), sizeof(u.h));
  u.port = 5000;
  u.proto = 17;
  auto v = bytes(u);
  v.insert(v.end(), {0xff, 0xff, 0xff, 0xff});  // e.g. a forged pid: ignored
  CtlParsed p = parse(v);
  ASSERT_EQ(p.verdict, CtlVerdict::kRequest);
  EXPECT_EQ(p.need, sizeof(u));
  EXPECT_EQ(memcmp(p.req, &u, sizeof(u)), 0);
  for (size_t i = sizeof(u); i < sizeof(p.req); i++) EXPECT_EQ(p.req[i], 0) << i;
  // DETACH with a body (say, a queue or a pid of someone else's) is a bare DETACH.
  auto d = header(MN_CTL_DETACH, 4);
  d.insert(d.end(), {2, 0, 0, 0, 0x39, 0x30, 0, 0});
  p = parse(d);
  ASSERT_EQ(p.verdict, CtlVerdict::kRequest);
  EXPECT_EQ(p.need, sizeof(mn_ctl_header));
  for (size_t i = sizeof(mn_ctl_header); i < sizeof(p.req); i++) EXPECT_EQ(p.req[i], 0) << i;
}

TEST(ControlParse, JoinRequest) {
  mn_ctl_join_request j{};
  memcpy(&j.h, header(MN_CTL_JOIN, 9).data(), sizeof(j.h));
  j.port = 7700;
  j.proto = 17;
  auto v = bytes(j);
  CtlParsed p = parse(v);
  ASSERT_EQ(p.verdict, CtlVerdict::kRequest);
  EXPECT_EQ(p.type, MN_CTL_JOIN);
  EXPECT_EQ(p.need, sizeof(j));
  EXPECT_EQ(memcmp(p.req, &j, sizeof(j)), 0);
  // Shorter than its structure: malformed, for every cut.
  for (size_t n = sizeof(mn_ctl_header); n < sizeof(j); n++)
    EXPECT_EQ(parse(std::vector<uint8_t>(v.begin(), v.begin() + static_cast<long>(n))).verdict,
              CtlVerdict::kMalformed)
        << n;
  // Trailing bytes (a forged pid or queue) are ignored.
  v.insert(v.end(), {0x39, 0x30, 0, 0, 2, 0, 0, 0});
  p = parse(v);
  ASSERT_EQ(p.verdict, CtlVerdict::kRequest);
  EXPECT_EQ(p.need, sizeof(j));
  for (size_t i = sizeof(j); i < sizeof(p.req); i++) EXPECT_EQ(p.req[i], 0) << i;
  // A version-2 JOIN (before JOIN existed) is answered, not parsed.
  EXPECT_EQ(parse(header(MN_CTL_JOIN, 10, 2)).status, -EPROTONOSUPPORT);
  // JOIN needs a lease, like BIND.
  const char* what = nullptr;
  EXPECT_EQ(ctl_authorize(MN_CTL_JOIN, false, &what), -EINVAL);
  ASSERT_NE(what, nullptr);
  EXPECT_STREQ(what, "JOIN without a lease");
  EXPECT_EQ(ctl_authorize(MN_CTL_JOIN, true, &what), 0);
}

TEST(ControlAuthorize, OnlyTheConnectionsOwnLease) {
  const char* what = nullptr;
  EXPECT_EQ(ctl_authorize(MN_CTL_INFO, false, &what), 0);
  EXPECT_EQ(ctl_authorize(MN_CTL_STATS, false, &what), 0);
  EXPECT_EQ(ctl_authorize(MN_CTL_ATTACH, false, &what), 0);
  EXPECT_EQ(what, nullptr);
  for (uint16_t t : {MN_CTL_BIND, MN_CTL_UNBIND, MN_CTL_DETACH}) {
    EXPECT_EQ(ctl_authorize(t, false, &what), -EINVAL) << t;
    ASSERT_NE(what, nullptr);
    EXPECT_NE(strstr(what, "without a lease"), nullptr) << what;
    EXPECT_EQ(ctl_authorize(t, true, &what), 0) << t;
  }
  EXPECT_EQ(ctl_authorize(MN_CTL_ATTACH, true, &what), -EALREADY);
  EXPECT_NE(what, nullptr);
}

TEST(ControlParse, CommIsSanitised) {
  char out[16];
  const char in[16] = {'a', '"', 'b', '\\', '\x01', '\x7f', '\xff', 'c',
                       'd', 'e', 'f', 'g',  'h',    'i',    'j',    'k'};  // no NUL
  machnet::daemon::ctl_sanitize_comm(in, sizeof(in), out);
  EXPECT_STREQ(out, "a?b????cdefghij");
  EXPECT_EQ(out[15], '\0');
}

}  // namespace
