#include "transport/types.h"

#include "transport/tunables.h"

namespace machnet {
namespace transport {

const char* status_string(Status s) {
  switch (s) {
#define MACHNET_X(n, str) \
  case Status::n:         \
    return str;
    MACHNET_TRANSPORT_STATUSES(MACHNET_X)
#undef MACHNET_X
  }
  return "unknown status";
}

const char* flow_error_string(FlowError e) {
  switch (e) {
#define MACHNET_X(n, str) \
  case FlowError::n:      \
    return str;
    MACHNET_FLOW_ERRORS(MACHNET_X)
#undef MACHNET_X
  }
  return "unknown error";
}

const char* flow_state_name(FlowState s) {
  switch (s) {
    case FlowState::kSynSent:
      return "SYN_SENT";
    case FlowState::kSynReceived:
      return "SYN_RECEIVED";
    case FlowState::kEstablished:
      return "ESTABLISHED";
    case FlowState::kFinWait:
      return "FIN_WAIT";
    case FlowState::kCloseWait:
      return "CLOSE_WAIT";
    case FlowState::kClosing:
      return "CLOSING";
    case FlowState::kTimeWait:
      return "TIME_WAIT";
    case FlowState::kClosed:
      return "CLOSED";
    case FlowState::kFailed:
      return "FAILED";
  }
  return "?";
}

const char* fallback_reason_name(FallbackReason r) {
  switch (r) {
    case FallbackReason::kNone:
      return "none";
    case FallbackReason::kIcmpRefused:
      return "icmp_refused";
    case FallbackReason::kTimeout:
      return "timeout";
    case FallbackReason::kNoService:
      return "no_service";
    case FallbackReason::kCachedPlain:
      return "cached_plain";
  }
  return "?";
}

const char* peer_verdict_name(PeerVerdict v) {
  switch (v) {
    case PeerVerdict::kUnknown:
      return "unknown";
    case PeerVerdict::kMachnet:
      return "machnet";
    case PeerVerdict::kPlain:
      return "plain";
    case PeerVerdict::kNoService:
      return "no_service";
  }
  return "?";
}

std::string Tunables::validate() const {
  if (mtu_payload < 64 || mtu_payload > 65507 - 88) return "mtu_payload must be in [64, 65419]";
  if (max_message_bytes == 0) return "max_message_bytes must be > 0";
  if (send_buffer_bytes < max_message_bytes) return "send_buffer_bytes < max_message_bytes";
  if (recv_buffer_bytes < max_message_bytes)
    return "recv_buffer_bytes < max_message_bytes (a message must fit to be delivered)";
  if (recv_buffer_bytes > (1u << 31)) return "recv_buffer_bytes must be <= 2 GiB";
  if (max_inflight_segments < 4 || max_inflight_segments > (1u << 24))
    return "max_inflight_segments must be in [4, 2^24]";
  if (max_reassembly_messages == 0) return "max_reassembly_messages must be > 0";
  if (stream_chunk_bytes == 0) return "stream_chunk_bytes must be > 0";
  if (rto_min_ns == 0 || rto_min_ns > rto_max_ns) return "need 0 < rto_min_ns <= rto_max_ns";
  if (syn_rto_ns == 0) return "syn_rto_ns must be > 0";
  if (ack_every_segments == 0) return "ack_every_segments must be >= 1";
  if (delayed_ack_ns >= rto_min_ns) return "delayed_ack_ns must be < rto_min_ns";
  if (reply_grace_ns > delayed_ack_ns) return "reply_grace_ns must be <= delayed_ack_ns";
  if (dupack_threshold == 0) return "dupack_threshold must be >= 1";
  if (keepalive_idle_ns != 0 && (keepalive_interval_ns == 0 || keepalive_probes == 0))
    return "keepalive needs interval and probes > 0";
  if (initial_cwnd_segments == 0) return "initial_cwnd_segments must be > 0";
  if (cc_max_mdf <= 0 || cc_max_mdf >= 1) return "cc_max_mdf must be in (0, 1)";
  if (rendezvous_port == 0) return "rendezvous_port must be > 0";
  if (probe_timeout_ns < 3) return "probe_timeout_ns must be >= 3";
  if (min_flow_buffer_bytes == 0 || min_flow_buffer_bytes > recv_buffer_bytes ||
      min_flow_buffer_bytes > send_buffer_bytes)
    return "min_flow_buffer_bytes must be in [1, min(recv_buffer_bytes, send_buffer_bytes)]";
  return "";
}

}  // namespace transport
}  // namespace machnet
