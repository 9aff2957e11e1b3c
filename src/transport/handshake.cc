// Connection setup: SYN / SYN-ACK / ACK with random initial sequence numbers
// and random connection ids on both sides. Event driven: the client is
// established the moment the SYN-ACK arrives (one RTT), the server when the
// first segment carrying the right ack arrives. Retransmissions back off
// exponentially and give up after syn_max_retries.
#include <algorithm>

#include "transport/flow.h"
#include "transport/peer_probe.h"

namespace machnet {
namespace transport {

void Flow::send_syn(uint64_t now) {
  Segment s;
  s.type = SegType::kSyn;
  s.src_conn = id_;
  s.dst_conn = 0;
  s.seq = iss_;
  s.rwnd = advertised_window();
  s.msg_id = t_->max_inflight_segments;  // our receive ring: the peer's limit in segments
  s.msg_len = t_->mtu_payload;           // the largest payload we accept
  s.msg_offset = rx_max_msg_;            // the largest message (stream: chunk) we accept
  s.tsval = static_cast<uint32_t>(now);
  if (stream_) s.flags |= kFlagStream;
  if (service_port_ != 0) {
    // Sent to the peer's rendezvous port; the service travels in the SYN.
    s.flags |= kFlagService;
    s.ack = service_port_;
  }
  advertised_ = true;
  ++env_.counters->tx_syn;
  transmit(now, &s, nullptr, 0);
}

void Flow::send_syn_ack(uint64_t now) {
  Segment s;
  s.type = SegType::kSynAck;
  fill_ack_fields(now, &s);
  s.seq = iss_;
  s.msg_id = t_->max_inflight_segments;
  s.msg_len = t_->mtu_payload;
  s.msg_offset = rx_max_msg_;
  if (stream_) s.flags |= kFlagStream;
  // From this flow's own port: the client adopts it as the flow's remote port.
  if (service_port_ != 0) s.flags |= kFlagService;
  advertised_ = true;
  ++env_.counters->tx_syn;
  transmit(now, &s, nullptr, 0);
}

void Flow::apply_peer_params(const Segment& s) {
  peer_ring_ = s.msg_id;
  if (s.msg_offset != 0 && s.msg_offset < max_msg_) max_msg_ = s.msg_offset;
  if (s.msg_len < mss_) mss_ = s.msg_len;
  peer_rwnd_ = s.rwnd;
}

void Flow::start_connect(uint64_t now) {
  born_ns_ = now;
  iss_ = env_.rng->next32();
  snd_una_ = iss_;
  snd_nxt_ = iss_ + 1;  // the SYN consumes one sequence number
  state_ = FlowState::kSynSent;
  syn_retries_ = 0;
  syn_sent_ns_ = now;
  send_syn(now);
  state_deadline_ = now + (probing_ ? probe_rto() : t_->syn_rto_ns);
}

uint64_t Flow::probe_rto() const {
  // Three SYNs within the probe bound: one lost SYN or SYN-ACK does not
  // send a machnet peer's connection to kernel TCP.
  uint64_t r = std::min(t_->syn_rto_ns, t_->probe_timeout_ns / 3);
  return r == 0 ? 1 : r;
}

void Flow::start_service_connect(uint64_t now, uint16_t service_port) {
  service_port_ = service_port;
  probing_ = true;
  probe_deadline_ = now + t_->probe_timeout_ns;
  ++env_.counters->probes_sent;
  start_connect(now);
}

void Flow::probe_fail(uint64_t now, FallbackReason reason) {
  fallback_ = reason;
  switch (reason) {
    case FallbackReason::kIcmpRefused:
      ++env_.counters->fallback_icmp;
      break;
    case FallbackReason::kTimeout:
      ++env_.counters->fallback_timeout;
      break;
    case FallbackReason::kNoService:
      ++env_.counters->fallback_no_service;
      break;
    default:
      break;
  }
  fail(now, reason == FallbackReason::kNoService ? FlowError::kNoService : FlowError::kNotMachnet,
       false);
}

void Flow::on_probe_refused(uint64_t now) {
  if (!probing()) return;
  news_ = ProbeNews::kPlainIcmp;
  probe_fail(now, FallbackReason::kIcmpRefused);
}

void Flow::settle_probe(uint64_t now, FallbackReason reason) {
  if (!probing()) return;
  ++env_.counters->probes_settled_by_peer;
  probe_fail(now, reason);
}

void Flow::evict(uint64_t now) {
  (void)now;
  if (state_ != FlowState::kSynReceived) return;
  state_ = FlowState::kFailed;
  error_ = FlowError::kAborted;
  state_deadline_ = rto_deadline_ = ack_deadline_ = tlp_deadline_ = kNever;
  free_buffers(/*keep_ready=*/false);
}

void Flow::start_accept(uint64_t now, const Segment& syn) {
  passive = true;
  peer_id_ = syn.src_conn;
  irs_ = syn.seq;
  rcv_nxt_ = irs_ + 1;
  apply_peer_params(syn);
  born_ns_ = now;
  iss_ = env_.rng->next32();
  snd_una_ = iss_;
  snd_nxt_ = iss_ + 1;
  have_ts_ = true;
  ts_recent_ = syn.tsval;
  ts_recent_rx_ns_ = now;
  state_ = FlowState::kSynReceived;
  last_rx_ns_ = now;
  syn_retries_ = 0;
  send_syn_ack(now);
  state_deadline_ = now + t_->syn_rto_ns;
}

void Flow::on_duplicate_syn(uint64_t now, const Segment& syn) {
  // A retransmitted SYN carries nothing new: counted as a duplicate whether
  // it is answered (half-open) or not (established already, or stale).
  ++env_.counters->rx_duplicate;
  if (state_ != FlowState::kSynReceived || syn.seq != irs_) return;
  // Our SYN-ACK was lost (or is slow): answer the retransmitted SYN at once.
  ts_recent_ = syn.tsval;
  ts_recent_rx_ns_ = now;
  send_syn_ack(now);
}

void Flow::on_handshake_timer(uint64_t now) {
  if (probing()) {
    // A service probe is bounded by probe_timeout_ns, not by the SYN retries.
    if (now >= probe_deadline_) {
      // Silence from a host that answered another probe as machnet a moment
      // ago is loss or a queue (a burst of connects), not a plain host: go
      // on as an ordinary connect (SYN retries, then kConnectTimeout)
      // instead of moving this connection to the kernel's TCP.
      // Nor is silence a reason to move to a kernel that has no route to
      // the host (machnetd owns the only interface on that network): the
      // fallback could only fail, with ENETUNREACH.
      bool machnet = env_.peers != nullptr && env_.peers->fresh_machnet(now, remote_.ip);
      bool no_route = !machnet && env_.routes != nullptr && !env_.routes->reachable(remote_.ip);
      if (machnet || no_route) {
        probing_ = false;
        ++(machnet ? env_.counters->probes_extended : env_.counters->probes_no_route);
        syn_retries_ = 0;
        send_syn(now);
        state_deadline_ = now + t_->syn_rto_ns;
        return;
      }
      news_ = ProbeNews::kPlainTimeout;
      probe_fail(now, FallbackReason::kTimeout);
      return;
    }
    ++syn_retries_;
    send_syn(now);
    state_deadline_ = std::min(now + probe_rto(), probe_deadline_);
    return;
  }
  if (++syn_retries_ > t_->syn_max_retries) {
    fail(now, FlowError::kConnectTimeout, false);
    return;
  }
  if (state_ == FlowState::kSynSent) {
    send_syn(now);
  } else {
    send_syn_ack(now);
  }
  uint32_t shift = syn_retries_ < 20 ? syn_retries_ : 20;
  state_deadline_ = now + (t_->syn_rto_ns << shift);
}

void Flow::on_icmp_unreachable(uint64_t now) {
  // Only a connect in progress fails fast (ECONNREFUSED); on an established
  // flow ICMP is a soft error (RFC 1122 4.2.3.9) and spoofable, so ignore it.
  if (state_ == FlowState::kSynSent) fail(now, FlowError::kConnectionRefused, false);
}

// Returns true when the segment was consumed by the handshake.
bool Flow::on_segment_handshake(uint64_t now, const Segment& s, uint16_t from_port) {
  if (state_ == FlowState::kSynSent) {
    if (s.type == SegType::kRst) {
      if (s.ack == iss_ + 1) {
        ++env_.counters->rx_rst;
        if (probing() && (s.flags & kFlagService)) {
          // A machnet host without that service: the peer's kernel may still
          // have a TCP listener there.
          news_ = ProbeNews::kNoService;
          probe_fail(now, FallbackReason::kNoService);
        } else {
          fail(now, FlowError::kConnectionRefused, false);
        }
      } else {
        ++env_.counters->rx_out_of_window;
      }
      return true;
    }
    if (s.type != SegType::kSynAck) {
      ++env_.counters->rx_unexpected;
      return true;
    }
    if (!(s.flags & kFlagAck) || s.ack != iss_ + 1) {
      ++env_.counters->rx_out_of_window;
      return true;
    }
    if (s.msg_len == 0 || s.msg_id == 0) {
      ++env_.counters->rx_bad_fragment;
      return true;
    }
    if (service_port_ != 0) {
      // Only an answer to a service SYN can name the flow's port.
      if (!(s.flags & kFlagService) || from_port == 0) {
        ++env_.counters->rx_unexpected;
        return true;
      }
      remote_.port = from_port;
      adopted_ = true;
      // Proof of machnet there, whether the probe was still running or had
      // gone on as an ordinary connect (probes_extended, probes_no_route).
      if (probing_) ++env_.counters->probes_machnet;
      news_ = ProbeNews::kMachnet;
      probing_ = false;
      probe_deadline_ = kNever;
    }
    peer_id_ = s.src_conn;
    irs_ = s.seq;
    rcv_nxt_ = irs_ + 1;
    apply_peer_params(s);
    snd_una_ = iss_ + 1;
    if (s.flags & kFlagTsEcho) {
      uint32_t rtt = static_cast<uint32_t>(now) - s.tsecr;
      if (static_cast<int32_t>(rtt) >= 0) update_rtt(rtt == 0 ? 1 : rtt);
    }
    have_ts_ = true;
    ts_recent_ = s.tsval;
    ts_recent_rx_ns_ = now;
    init_established(now);
    split_queued_chunks();  // stream: chunks queued before the peer's limit was known
    for (size_t i = 0; i < out_msgs_.size(); ++i) {
      if (out_msgs_[i].data.size() > max_msg_) {
        // Queued while only our own limit was known; the peer would drop it.
        fail(now, FlowError::kPeerMessageLimit, true);
        return true;
      }
    }
    try_transmit(now);  // queued messages leave with the handshake ACK
    if (snd_nxt_ == snd_una_) send_pure_ack(now);
    return true;
  }
  // SYN_RECEIVED: the client's first ACK (or data) completes the handshake.
  if (s.type == SegType::kSyn || s.type == SegType::kSynAck) {
    ++env_.counters->rx_unexpected;
    return true;
  }
  if (!(s.flags & kFlagAck) || s.ack != iss_ + 1) {
    ++env_.counters->rx_out_of_window;
    return true;
  }
  snd_una_ = iss_ + 1;
  if (s.flags & kFlagTsEcho) {
    uint32_t rtt = static_cast<uint32_t>(now) - s.tsecr;
    uint32_t d = s.ack_delay < rtt ? s.ack_delay : 0;
    if (static_cast<int32_t>(rtt) >= 0 && syn_retries_ == 0) update_rtt(rtt - d == 0 ? 1 : rtt - d);
  }
  init_established(now);
  accept_pending = true;
  return false;  // the segment may carry data: process it normally
}

}  // namespace transport
}  // namespace machnet
