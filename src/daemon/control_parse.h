// Parsing and authorisation of machnetd's control requests
// (ipc/control_protocol.h), as pure functions: no socket, no DPDK, no daemon
// state. The control server calls them on every message; the libFuzzer
// target tests/fuzz/fuzz_control.cc and the unit tests call them directly.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ipc/control_protocol.h"

namespace machnet::daemon {

// What to do with one received message.
enum class CtlVerdict {
  kMalformed,  // close the connection, count ctl_malformed (`why` says what)
  kStatus,     // answer a bare header with `status` (the connection stays)
  kRequest,    // a well-formed request of a known type: serve `req`
};

// The largest request structure; req holds any of them.
constexpr size_t kCtlMaxRequest = 32;

struct CtlParsed {
  CtlVerdict verdict = CtlVerdict::kMalformed;
  const char* why = nullptr;  // kMalformed: a short reason for the log
  int32_t status = 0;         // kStatus: -EPROTONOSUPPORT or -EOPNOTSUPP
  uint16_t type = 0;          // the header's type, when there is a header
  size_t need = 0;            // bytes of the request structure of `type`
  // The request structure of `type`: its first `need` bytes from the message
  // (anything after them ignored), the rest zero. For kStatus, the header.
  alignas(8) uint8_t req[kCtlMaxRequest] = {};
};

// The size of the request structure of a known request type, 0 for an
// unknown type.
size_t ctl_request_size(uint16_t type);

// Parses `len` bytes received on the control socket (one SOCK_SEQPACKET
// message, at most MN_CTL_MAX_MESSAGE; a longer one the caller treats as
// malformed). Never reads beyond msg + len.
CtlParsed ctl_parse(const uint8_t* msg, size_t len);

// What a connection may ask given whether it holds a lease: 0, or the
// status of the refusal (-EALREADY: ATTACH with a lease already;
// -EINVAL: BIND, UNBIND or DETACH without one). *what names the refusal for
// the log. Everything a request may touch is the connection's own lease: no
// request names a pid, a queue or another lease.
int32_t ctl_authorize(uint16_t type, bool has_lease, const char** what);

// The reply header for a request header `req` (magic, version, echoed type
// and seq) with `status`.
void ctl_reply_header(mn_ctl_header* out, const void* req, int32_t status);

// comm of an attach request (at most `max` bytes, maybe not NUL-terminated)
// as machnet-stat and the log show it: at most 15 printable ASCII
// characters, '?' for anything else and for '"' and '\\', NUL-padded to 16.
void ctl_sanitize_comm(const char* in, size_t max, char out[16]);

}  // namespace machnet::daemon
