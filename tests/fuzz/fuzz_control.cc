// libFuzzer target for machnetd's control-message parser
// (src/daemon/control_parse.h): the input is a conversation, a sequence of
// messages as one client would send them on the control socket, each
// preceded by a 2-byte little-endian length. Every message goes through
// ctl_parse and, when it is a request, ctl_authorize against a model of the
// connection's lease (ATTACH gives one, DETACH takes it back), exactly as the
// control server does. The invariants checked:
//   - the verdict follows from the bytes (header, magic, version, type,
//     length) and nothing else;
//   - an accepted request is its first ctl_request_size(type) bytes, the
//     rest zero; nothing beyond the message is read (ASan);
//   - the reply header echoes type and seq with the right magic and version;
//   - a connection without a lease can do nothing but INFO, STATS and
//     ATTACH; one with a lease cannot ATTACH again;
//   - an attach request's comm comes out as at most 15 printable ASCII
//     characters without '"' or '\\', NUL-padded.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "daemon/control_parse.h"
#include "fuzz_check.h"

using machnet::daemon::CtlParsed;
using machnet::daemon::CtlVerdict;

namespace {

void check_message(const uint8_t* msg, size_t len, bool* has_lease) {
  CtlParsed p = machnet::daemon::ctl_parse(msg, len);
  mn_ctl_header h{};
  if (len >= sizeof(h)) memcpy(&h, msg, sizeof(h));
  if (len < sizeof(h) || h.magic != MN_CTL_MAGIC || len > MN_CTL_MAX_MESSAGE) {
    FUZZ_CHECK(p.verdict == CtlVerdict::kMalformed && p.why != nullptr);
    return;
  }
  FUZZ_CHECK(p.type == h.type);
  size_t need = machnet::daemon::ctl_request_size(h.type);
  if (h.version != MN_CTL_VERSION) {
    FUZZ_CHECK(p.verdict == CtlVerdict::kStatus && p.status == -EPROTONOSUPPORT);
  } else if (need == 0) {
    FUZZ_CHECK(p.verdict == CtlVerdict::kStatus && p.status == -EOPNOTSUPP);
  } else if (len < need) {
    FUZZ_CHECK(p.verdict == CtlVerdict::kMalformed && p.why != nullptr);
    return;
  } else {
    FUZZ_CHECK(p.verdict == CtlVerdict::kRequest && p.need == need);
    FUZZ_CHECK(need <= machnet::daemon::kCtlMaxRequest);
    FUZZ_CHECK(memcmp(p.req, msg, need) == 0);
    for (size_t i = need; i < sizeof(p.req); i++) FUZZ_CHECK(p.req[i] == 0);
  }
  if (p.verdict == CtlVerdict::kStatus) FUZZ_CHECK(memcmp(p.req, msg, sizeof(h)) == 0);

  int32_t status = p.verdict == CtlVerdict::kStatus ? p.status : 0;
  if (p.verdict == CtlVerdict::kRequest) {
    const char* what = nullptr;
    status = machnet::daemon::ctl_authorize(p.type, *has_lease, &what);
    FUZZ_CHECK((status == 0) == (what == nullptr));
    switch (p.type) {
      case MN_CTL_ATTACH:
        FUZZ_CHECK(status == (*has_lease ? -EALREADY : 0));
        break;
      case MN_CTL_BIND:
      case MN_CTL_UNBIND:
      case MN_CTL_DETACH:
      case MN_CTL_JOIN:
        FUZZ_CHECK(status == (*has_lease ? 0 : -EINVAL));
        break;
      default:
        FUZZ_CHECK(status == 0);
        break;
    }
    if (status == 0 && p.type == MN_CTL_ATTACH) {
      *has_lease = true;
      mn_ctl_attach_request a;
      memcpy(&a, p.req, sizeof(a));
      char comm[16];
      machnet::daemon::ctl_sanitize_comm(a.comm, sizeof(a.comm), comm);
      size_t n = strnlen(comm, sizeof(comm));
      FUZZ_CHECK(n <= 15);
      for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(comm[i] >= 0x20 && comm[i] < 0x7f && comm[i] != '"' && comm[i] != '\\');
      for (size_t i = n; i < sizeof(comm); i++) FUZZ_CHECK(comm[i] == '\0');
      size_t in = strnlen(a.comm, sizeof(a.comm));
      FUZZ_CHECK(n == (in < 15 ? in : 15));
    }
    if (status == 0 && p.type == MN_CTL_DETACH) *has_lease = false;
  }
  mn_ctl_header r;
  machnet::daemon::ctl_reply_header(&r, p.req, status);
  FUZZ_CHECK(r.magic == MN_CTL_MAGIC && r.version == MN_CTL_VERSION);
  FUZZ_CHECK(r.type == h.type && r.seq == h.seq && r.status == status);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bool has_lease = false;
  size_t off = 0;
  while (size - off >= 2) {
    size_t len = static_cast<size_t>(data[off]) | static_cast<size_t>(data[off + 1]) << 8;
    off += 2;
    if (len > size - off) len = size - off;
    // A copy of exactly the message, so that ASan sees any read beyond it.
    uint8_t* msg = new uint8_t[len == 0 ? 1 : len];
    if (len != 0) memcpy(msg, data + off, len);
    check_message(msg, len, &has_lease);
    delete[] msg;
    off += len;
  }
  return 0;
}
