#include "transport/transport.h"

#include <cstdio>
#include <cstdlib>

namespace machnet {
namespace transport {

Transport::Transport(const Tunables& t, DatagramSink* sink, uint32_t local_ip, uint64_t rng_seed)
    : t_(t), sink_(sink), local_ip_(local_ip), rng_(rng_seed), table_(t_) {
  std::string why = t_.validate();
  if (!why.empty()) {
    std::fprintf(stderr, "machnet transport: invalid tunables: %s\n", why.c_str());
    std::abort();
  }
  env_.t = &t_;
  env_.sink = sink_;
  env_.counters = &counters_;
  env_.rng = &rng_;
  rst_tokens_ = t_.rst_burst;
}

Transport::~Transport() = default;

Flow* Transport::app_flow(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr || f->released ? nullptr : f;
}

void Transport::destroy(Flow* f) {
  ++counters_.flows_destroyed;
  table_.erase(f->id());
}

void Transport::after_event(Flow* f) {
  if (f->accept_pending) {
    f->accept_pending = false;
    auto it = listeners_.find(f->local().port);
    if (it == listeners_.end() || it->second.backlog.size() >= t_.listen_backlog) {
      f->abort(last_now_);  // listener gone or full: refuse rather than queue unboundedly
      f->released = true;
    } else {
      it->second.backlog.push(f->id());
      if (on_event_) on_event_(0, f->local().port, kEvReadable);
    }
  }
  table_.refresh(f);
  // A flow disappears once it is finished and nobody can still ask about it:
  // the application released it, or it never reached the application.
  if (f->done() && (f->released || (f->passive && !f->accepted))) {
    destroy(f);
    return;
  }
  if (on_event_ && !f->released && (!f->passive || f->accepted)) {
    uint32_t ev = f->events();
    if (ev != f->reported_events) {
      f->reported_events = ev;
      on_event_(f->id(), 0, ev);
    }
  }
  uint64_t d = f->next_deadline();
  if (d < f->heap_deadline) {
    f->heap_deadline = d;
    timers_.push({d, f->id()});
  }
}

uint64_t Transport::next_timer_ns() {
  // Discard stale heap entries (flow gone or deadline superseded) so the
  // owner never wakes up for nothing.
  while (!timers_.empty()) {
    TimerEntry e = timers_.top();
    Flow* f = table_.find(e.second);
    if (f != nullptr && f->heap_deadline == e.first) {
      uint64_t d = f->next_deadline();
      if (d <= e.first) return d;
      // The flow's timer moved later (e.g. a timer was cancelled): re-file it.
      timers_.pop();
      f->heap_deadline = d;
      if (d != kNever) timers_.push({d, f->id()});
      continue;
    }
    timers_.pop();
  }
  return kNever;
}

void Transport::poll(uint64_t now) {
  last_now_ = now;
  while (!timers_.empty() && timers_.top().first <= now) {
    TimerEntry e = timers_.top();
    timers_.pop();
    Flow* f = table_.find(e.second);
    if (f == nullptr || f->heap_deadline != e.first) continue;
    f->heap_deadline = kNever;
    if (f->next_deadline() <= now) f->on_timer(now);
    after_event(f);
  }
}

Status Transport::listen(uint16_t port, bool stream_mode) {
  if (listeners_.count(port)) return Status::kAddressInUse;
  listeners_[port].stream = stream_mode;
  return Status::kOk;
}

Status Transport::unlisten(uint16_t port) {
  auto it = listeners_.find(port);
  if (it == listeners_.end()) return Status::kNotListening;
  // Established-but-unaccepted flows are reset: nobody will ever accept them.
  while (!it->second.backlog.empty()) {
    Flow* f = table_.find(it->second.backlog.front());
    it->second.backlog.pop();
    if (f != nullptr) {
      f->abort(last_now_);
      f->released = true;
      after_event(f);
    }
  }
  listeners_.erase(it);
  return Status::kOk;
}

Status Transport::connect(uint64_t now, uint16_t local_port, const Endpoint& remote, FlowId* out,
                          bool stream_mode) {
  last_now_ = now;
  if (remote.ip == 0 || remote.port == 0) return Status::kInvalidArgument;
  if (table_.full()) return Status::kTooManyFlows;
  FlowId id = table_.allocate_id(&rng_);
  auto f = std::make_unique<Flow>(env_, id, Endpoint{local_ip_, local_port}, remote, stream_mode);
  Flow* p = f.get();
  ++counters_.flows_created;
  table_.insert(std::move(f));
  p->start_connect(now);
  after_event(p);
  *out = id;
  return Status::kOk;
}

Status Transport::accept(uint16_t port, FlowId* out) {
  auto it = listeners_.find(port);
  if (it == listeners_.end()) return Status::kNotListening;
  while (!it->second.backlog.empty()) {
    FlowId id = it->second.backlog.front();
    it->second.backlog.pop();
    Flow* f = table_.find(id);
    if (f == nullptr) continue;  // failed and destroyed while queued
    f->accepted = true;
    f->reported_events = f->events();  // the caller learns the state from accept itself
    *out = id;
    return Status::kOk;
  }
  return Status::kAgain;
}

Status Transport::close(uint64_t now, FlowId id) {
  last_now_ = now;
  Flow* f = app_flow(id);
  if (f == nullptr) return Status::kNoSuchFlow;
  f->shutdown_send(now);
  f->released = true;
  after_event(f);
  return Status::kOk;
}

Status Transport::shutdown_send(uint64_t now, FlowId id) {
  last_now_ = now;
  Flow* f = app_flow(id);
  if (f == nullptr) return Status::kNoSuchFlow;
  Status s = f->shutdown_send(now);
  after_event(f);
  return s;
}

Status Transport::abort(uint64_t now, FlowId id) {
  last_now_ = now;
  Flow* f = app_flow(id);
  if (f == nullptr) return Status::kNoSuchFlow;
  f->abort(now);
  f->released = true;
  after_event(f);
  return Status::kOk;
}

Status Transport::send_message(uint64_t now, FlowId id, const void* data, size_t len) {
  last_now_ = now;
  Flow* f = app_flow(id);
  if (f == nullptr) return Status::kNoSuchFlow;
  Status s = f->send_message(now, static_cast<const uint8_t*>(data), len);
  after_event(f);
  return s;
}

Status Transport::recv_message(uint64_t now, FlowId id, std::vector<uint8_t>* out) {
  last_now_ = now;
  Flow* f = app_flow(id);
  if (f == nullptr) return Status::kNoSuchFlow;
  Status s = f->recv_message(now, out);
  after_event(f);
  return s;
}

Status Transport::send_stream(uint64_t now, FlowId id, const void* data, size_t len,
                              size_t* accepted) {
  last_now_ = now;
  Flow* f = app_flow(id);
  *accepted = 0;
  if (f == nullptr) return Status::kNoSuchFlow;
  Status s = f->send_stream(now, static_cast<const uint8_t*>(data), len, accepted);
  after_event(f);
  return s;
}

Status Transport::recv_stream(uint64_t now, FlowId id, void* buf, size_t cap, size_t* got) {
  last_now_ = now;
  Flow* f = app_flow(id);
  *got = 0;
  if (f == nullptr) return Status::kNoSuchFlow;
  Status s = f->recv_stream(now, static_cast<uint8_t*>(buf), cap, got);
  after_event(f);
  return s;
}

void Transport::send_rst_reply(const Endpoint& local, const Endpoint& remote, const Segment& s) {
  // Tell the sender this connection does not exist. The RST echoes its ids
  // and sequence numbers, which is what lets the sender accept it.
  Segment r;
  r.type = SegType::kRst;
  r.src_conn = s.dst_conn;
  r.dst_conn = s.src_conn;
  r.seq = (s.flags & kFlagAck) ? s.ack : 0;
  r.ack = s.seq + 1;
  // Token bucket: a flood of stray segments must not turn us into a
  // reflector. Suppressed RSTs are counted; the peer times out instead.
  uint64_t now = last_now_;
  if (now > rst_refill_ns_) {
    rst_tokens_ += static_cast<double>(now - rst_refill_ns_) * t_.rst_rate_per_sec / 1e9;
    rst_refill_ns_ = now;
  }
  if (rst_tokens_ > t_.rst_burst) rst_tokens_ = t_.rst_burst;
  if (rst_tokens_ < 1) {
    ++counters_.tx_rst_suppressed;
    return;
  }
  rst_tokens_ -= 1;
  uint8_t hdr[kHeaderSize];
  encode_header(r, nullptr, 0, hdr);
  ++counters_.tx_rst;
  if (sink_->send(local, remote, hdr, kHeaderSize, nullptr, 0)) {
    ++counters_.tx_datagrams;
  } else {
    ++counters_.tx_sink_full;
  }
}

void Transport::handle_syn(uint64_t now, const Endpoint& from, const Endpoint& to,
                           const Segment& s) {
  last_now_ = now;
  if (s.dst_conn != 0 || s.src_conn == 0 || s.msg_len == 0 || s.msg_id == 0) {
    ++counters_.rx_bad_fragment;
    return;
  }
  if (Flow* dup = table_.find_by_syn(from, s.src_conn)) {
    dup->on_duplicate_syn(now, s);
    after_event(dup);
    return;
  }
  auto it = listeners_.find(to.port);
  bool stream = (s.flags & kFlagStream) != 0;
  if (it == listeners_.end() || it->second.stream != stream) {
    ++counters_.rx_syn_no_listener;
    send_rst_reply(to, from, s);
    return;
  }
  // Bounds checked before any state is created (SYN floods cost nothing
  // beyond max_half_open flows).
  if (table_.full()) {
    ++counters_.rx_syn_flow_table_full;
    return;
  }
  if (table_.half_open_full()) {
    ++counters_.rx_syn_half_open_full;
    return;
  }
  if (it->second.backlog.size() >= t_.listen_backlog) {
    ++counters_.rx_syn_backlog_full;
    return;
  }
  FlowId id = table_.allocate_id(&rng_);
  auto f = std::make_unique<Flow>(env_, id, to, from, stream);
  Flow* p = f.get();
  p->passive = true;
  p->start_accept(now, s);
  ++counters_.flows_created;
  table_.insert(std::move(f));
  after_event(p);
}

void Transport::on_datagram(uint64_t now, const Endpoint& from, const Endpoint& to,
                            const uint8_t* data, size_t len) {
  last_now_ = now;
  ++counters_.rx_datagrams;
  Segment s;
  switch (decode_header(data, len, &s)) {
    case DecodeResult::kOk:
      break;
    case DecodeResult::kShort:
      ++counters_.rx_malformed_short;
      return;
    case DecodeResult::kBadMagic:
      ++counters_.rx_bad_magic;
      return;
    case DecodeResult::kBadVersion:
      ++counters_.rx_bad_version;
      return;
    case DecodeResult::kBadType:
      ++counters_.rx_bad_type;
      return;
    case DecodeResult::kBadLength:
      ++counters_.rx_bad_length;
      return;
    case DecodeResult::kBadChecksum:
      ++counters_.rx_bad_checksum;
      return;
    case DecodeResult::kBadSack:
      ++counters_.rx_bad_sack;
      return;
  }
  if (s.type == SegType::kSyn) {
    handle_syn(now, from, to, s);
    return;
  }
  Flow* f = table_.find(s.dst_conn);
  if (f == nullptr) {
    ++counters_.rx_no_flow;
    if (s.type != SegType::kRst) send_rst_reply(to, from, s);  // never RST a RST
    return;
  }
  if (f->remote() != from || f->local().port != to.port) {
    ++counters_.rx_bad_conn_id;  // right id, wrong addresses: stale or spoofed
    return;
  }
  f->on_segment(now, s);
  after_event(f);
}

void Transport::on_icmp_unreachable(uint64_t now, const Endpoint& local, const Endpoint& remote) {
  last_now_ = now;
  ++counters_.rx_icmp_unreachable;
  std::vector<Flow*> hit;
  table_.for_each([&](Flow* f) {
    if (f->state() == FlowState::kSynSent && f->remote() == remote && f->local().port == local.port)
      hit.push_back(f);
  });
  for (Flow* f : hit) {
    f->on_icmp_unreachable(now);
    after_event(f);
  }
}

bool Transport::flow_stats(FlowId id, FlowStats* out) const {
  Flow* f = table_.find(id);
  if (f == nullptr) return false;
  *out = f->stats();
  return true;
}

FlowState Transport::state(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr ? FlowState::kClosed : f->state();
}

FlowError Transport::error(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr ? FlowError::kNone : f->error();
}

uint32_t Transport::events(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr ? 0 : f->events();
}

bool Transport::readable(FlowId id) const {
  Flow* f = table_.find(id);
  return f != nullptr && f->readable();
}

size_t Transport::send_space(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr ? 0 : f->send_space();
}

}  // namespace transport
}  // namespace machnet
