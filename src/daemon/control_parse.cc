#include "daemon/control_parse.h"

#include <cerrno>
#include <cstring>

namespace machnet::daemon {

static_assert(sizeof(mn_ctl_attach_request) <= kCtlMaxRequest, "kCtlMaxRequest");
static_assert(sizeof(mn_ctl_bind_request) <= kCtlMaxRequest, "kCtlMaxRequest");
static_assert(sizeof(mn_ctl_unbind_request) <= kCtlMaxRequest, "kCtlMaxRequest");
static_assert(sizeof(mn_ctl_join_request) <= kCtlMaxRequest, "kCtlMaxRequest");

size_t ctl_request_size(uint16_t type) {
  switch (type) {
    case MN_CTL_INFO:
    case MN_CTL_DETACH:
    case MN_CTL_STATS:
      return sizeof(mn_ctl_header);
    case MN_CTL_ATTACH:
      return sizeof(mn_ctl_attach_request);
    case MN_CTL_BIND:
      return sizeof(mn_ctl_bind_request);
    case MN_CTL_UNBIND:
      return sizeof(mn_ctl_unbind_request);
    case MN_CTL_JOIN:
      return sizeof(mn_ctl_join_request);
    default:
      return 0;
  }
}

CtlParsed ctl_parse(const uint8_t* msg, size_t len) {
  CtlParsed p;
  if (len < sizeof(mn_ctl_header)) {
    p.why = "message shorter than the header";
    return p;
  }
  if (len > MN_CTL_MAX_MESSAGE) {
    p.why = "message larger than MN_CTL_MAX_MESSAGE";
    return p;
  }
  mn_ctl_header h;
  memcpy(&h, msg, sizeof(h));
  if (h.magic != MN_CTL_MAGIC) {
    p.why = "bad magic";
    return p;
  }
  p.type = h.type;
  memcpy(p.req, msg, sizeof(h));
  if (h.version != MN_CTL_VERSION) {
    p.verdict = CtlVerdict::kStatus;
    p.status = -EPROTONOSUPPORT;
    p.need = sizeof(h);
    return p;
  }
  p.need = ctl_request_size(h.type);
  if (p.need == 0) {
    p.verdict = CtlVerdict::kStatus;
    p.status = -EOPNOTSUPP;
    p.need = sizeof(h);
    return p;
  }
  if (len < p.need) {
    p.why = "request shorter than its type requires";
    return p;
  }
  memcpy(p.req, msg, p.need);
  p.verdict = CtlVerdict::kRequest;
  return p;
}

int32_t ctl_authorize(uint16_t type, bool has_lease, const char** what) {
  *what = nullptr;
  switch (type) {
    case MN_CTL_ATTACH:
      if (!has_lease) return 0;
      *what = "a second ATTACH on a connection that holds a lease";
      return -EALREADY;
    case MN_CTL_BIND:
    case MN_CTL_UNBIND:
    case MN_CTL_DETACH:
    case MN_CTL_JOIN:
      if (has_lease) return 0;
      *what = type == MN_CTL_BIND     ? "BIND without a lease"
              : type == MN_CTL_UNBIND ? "UNBIND without a lease"
              : type == MN_CTL_JOIN   ? "JOIN without a lease"
                                      : "DETACH without a lease";
      return -EINVAL;
    default:
      return 0;  // INFO, STATS: anyone who may connect
  }
}

void ctl_reply_header(mn_ctl_header* out, const void* req, int32_t status) {
  mn_ctl_header in;
  memcpy(&in, req, sizeof(in));
  out->magic = MN_CTL_MAGIC;
  out->version = MN_CTL_VERSION;
  out->type = in.type;
  out->seq = in.seq;
  out->status = status;
}

void ctl_sanitize_comm(const char* in, size_t max, char out[16]) {
  size_t i = 0;
  for (; i < max && i < 15 && in[i] != '\0'; i++) {
    unsigned char ch = static_cast<unsigned char>(in[i]);
    out[i] = (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') ? '?' : static_cast<char>(ch);
  }
  for (; i < 16; i++) out[i] = '\0';
}

}  // namespace machnet::daemon
