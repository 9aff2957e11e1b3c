#include "transport/transport.h"

#include <cstdio>
#include <cstdlib>

namespace machnet {
namespace transport {

Transport::Transport(const Tunables& t, DatagramSink* sink, uint32_t local_ip, uint64_t rng_seed)
    : t_(t),
      sink_(sink),
      local_ip_(local_ip),
      rng_(rng_seed),
      table_(t_),
      peers_(t.probe_plain_ttl_ns, t.probe_no_service_ttl_ns, t.probe_machnet_ttl_ns,
             t.probe_cache_entries) {
  std::string why = t_.validate();
  if (!why.empty()) {
    std::fprintf(stderr, "machnet transport: invalid tunables: %s\n", why.c_str());
    std::abort();
  }
  env_.t = &t_;
  env_.sink = sink_;
  env_.counters = &counters_;
  env_.rng = &rng_;
  env_.peers = &peers_;
  rst_tokens_ = t_.rst_burst;
}

Transport::~Transport() = default;

Flow* Transport::app_flow(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr || f->released ? nullptr : f;
}

Flow* Transport::live_flow(FlowId id, Status* err) const {
  Flow* f = app_flow(id);
  if (f == nullptr) {
    *err = Status::kNoSuchFlow;
  } else if (f->frozen) {
    *err = Status::kAgain;  // until thawed (or, once retired, kNoSuchFlow)
    f = nullptr;
  }
  return f;
}

void Transport::destroy(Flow* f) {
  ++counters_.flows_destroyed;
  table_.erase(f->id());
}

Transport::Listener* Transport::listener_of(const Flow* f) {
  if (f->service_port() != 0) {
    auto it = services_.find(f->service_port());
    return it == services_.end() ? nullptr : &it->second;
  }
  auto it = listeners_.find(f->local().port);
  return it == listeners_.end() ? nullptr : &it->second;
}

void Transport::after_event(Flow* f, uint64_t not_before) {
  if (f->frozen) {
    // Untouched while frozen; a tombstone only waits for its end.
    uint64_t d = deadline_of(f);
    if (d < f->heap_deadline) {
      f->heap_deadline = d;
      timers_.push({d, f->id()});
    }
    return;
  }
  Flow::ProbeNews news = f->take_probe_news();
  if (news != Flow::ProbeNews::kNone) on_probe_news(f, news);
  if (f->accept_pending) {
    f->accept_pending = false;
    Listener* l = listener_of(f);
    // A full queue does not refuse it: it was admitted at its SYN, when there
    // was room (handle_syn), so the overshoot is bounded by the half-open
    // flows; the kernel does not reset such a connection either.
    if (l == nullptr) {
      f->abort(last_now_);  // listener gone
      f->released = true;
    } else {
      l->backlog.push(f->id());
      if (on_event_) {
        if (f->service_port() != 0) {
          on_event_(0, f->service_port(), kEvReadable | kEvService);
        } else {
          on_event_(0, f->local().port, kEvReadable);
        }
      }
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
  if (d != kNever && d < not_before) d = not_before;
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
      uint64_t d = deadline_of(f);
      if (d <= e.first) return e.first;
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
    if (f->frozen) {
      if (f->retired && f->retire_deadline <= now) {
        destroy(f);  // the tombstone's end: nothing is sent
      } else {
        after_event(f);
      }
      continue;
    }
    bool stalled = false;
    if (f->next_deadline() <= now) {
      f->on_timer(now);
      stalled = f->next_deadline() <= now;
    }
    if (stalled) {
      // A timer that fired and is still due would spin here forever. That
      // is a bug (the fuzzer checks this counter stays 0); in production
      // the flow is retried on the next nanosecond instead of hanging.
      ++counters_.timer_stalls;
      after_event(f, now + 1);
    } else {
      after_event(f);
    }
  }
}

Status Transport::listen(uint16_t port, bool stream_mode) {
  if (listeners_.count(port)) return Status::kAddressInUse;
  Listener& l = listeners_[port];
  l.stream = stream_mode;
  l.max_backlog = t_.listen_backlog;
  return Status::kOk;
}

Status Transport::unlisten(uint16_t port) {
  return remove_listener(&listeners_, port);
}

Status Transport::remove_listener(ListenerMap* map, uint16_t key) {
  auto it = map->find(key);
  if (it == map->end()) return Status::kNotListening;
  // Established-but-unaccepted flows are reset: nobody will ever accept them.
  std::queue<FlowId> backlog;
  backlog.swap(it->second.backlog);
  map->erase(it);
  while (!backlog.empty()) {
    Flow* f = table_.find(backlog.front());
    backlog.pop();
    if (f != nullptr) {
      f->abort(last_now_);
      f->released = true;
      after_event(f);
    }
  }
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
  note_peaks();
  *out = id;
  return Status::kOk;
}

Status Transport::accept(uint16_t port, FlowId* out) {
  auto it = listeners_.find(port);
  if (it == listeners_.end()) return Status::kNotListening;
  return accept_from(&it->second, out);
}

Status Transport::accept_from(Listener* l, FlowId* out) {
  while (!l->backlog.empty()) {
    FlowId id = l->backlog.front();
    l->backlog.pop();
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
  Status err = Status::kOk;
  Flow* f = live_flow(id, &err);
  if (f == nullptr) return err;
  f->shutdown_send(now);
  f->released = true;
  after_event(f);
  return Status::kOk;
}

Status Transport::shutdown_send(uint64_t now, FlowId id) {
  last_now_ = now;
  Status err = Status::kOk;
  Flow* f = live_flow(id, &err);
  if (f == nullptr) return err;
  Status s = f->shutdown_send(now);
  after_event(f);
  return s;
}

Status Transport::abort(uint64_t now, FlowId id) {
  last_now_ = now;
  Status err = Status::kOk;
  Flow* f = live_flow(id, &err);
  if (f == nullptr) return err;
  f->abort(now);
  f->released = true;
  after_event(f);
  return Status::kOk;
}

bool Transport::expedite(uint64_t now, FlowId id) {
  last_now_ = now;
  Flow* f = table_.find(id);
  if (f == nullptr || f->frozen || !f->expedite(now)) return false;
  after_event(f);
  return true;
}

Status Transport::send_message(uint64_t now, FlowId id, const void* data, size_t len) {
  last_now_ = now;
  Status err = Status::kOk;
  Flow* f = live_flow(id, &err);
  if (f == nullptr) return err;
  Status s = f->send_message(now, static_cast<const uint8_t*>(data), len);
  after_event(f);
  return s;
}

Status Transport::recv_message(uint64_t now, FlowId id, std::vector<uint8_t>* out) {
  last_now_ = now;
  Status err = Status::kOk;
  Flow* f = live_flow(id, &err);
  if (f == nullptr) return err;
  Status s = f->recv_message(now, out);
  after_event(f);
  return s;
}

Status Transport::send_stream(uint64_t now, FlowId id, const void* data, size_t len,
                              size_t* accepted) {
  last_now_ = now;
  Status err = Status::kOk;
  Flow* f = live_flow(id, &err);
  *accepted = 0;
  if (f == nullptr) return err;
  Status s = f->send_stream(now, static_cast<const uint8_t*>(data), len, accepted);
  after_event(f);
  return s;
}

Status Transport::recv_stream(uint64_t now, FlowId id, void* buf, size_t cap, size_t* got) {
  last_now_ = now;
  Status err = Status::kOk;
  Flow* f = live_flow(id, &err);
  *got = 0;
  if (f == nullptr) return err;
  Status s = f->recv_stream(now, static_cast<uint8_t*>(buf), cap, got);
  after_event(f);
  return s;
}

void Transport::send_rst_reply(const Endpoint& local, const Endpoint& remote, const Segment& s,
                               uint8_t flags) {
  // Tell the sender this connection does not exist. The RST echoes its ids
  // and sequence numbers, which is what lets the sender accept it.
  Segment r;
  r.type = SegType::kRst;
  r.flags = flags;
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

// The listener a SYN is for, or nullptr after counting (and answering) why
// there is none. A service SYN is steered by the service port it carries; any
// other SYN by the UDP port it arrived on.
Transport::Listener* Transport::syn_listener(const Endpoint& from, const Endpoint& to,
                                             const Segment& s, uint16_t* service) {
  const bool stream = (s.flags & kFlagStream) != 0;
  *service = 0;
  if (s.flags & kFlagService) {
    if (to.port != t_.rendezvous_port) {
      // Never answered: a stray or reflected SYN must not start a ping-pong.
      ++counters_.rx_syn_not_rendezvous;
      return nullptr;
    }
    if (s.ack == 0 || s.ack > 0xffff) {
      ++counters_.rx_bad_fragment;
      return nullptr;
    }
    auto it = services_.find(static_cast<uint16_t>(s.ack));
    if (it == services_.end() || !stream) {
      // A machnet host, but nothing offers that service here: say so
      // distinctly, so the client can try kernel TCP.
      ++counters_.rx_syn_no_service;
      send_rst_reply(to, from, s, kFlagService);
      return nullptr;
    }
    *service = static_cast<uint16_t>(s.ack);
    return &it->second;
  }
  auto it = listeners_.find(to.port);
  if (it == listeners_.end() || it->second.stream != stream) {
    ++counters_.rx_syn_no_listener;
    send_rst_reply(to, from, s);
    return nullptr;
  }
  return &it->second;
}

// With the half-open table full, evicts the oldest half-open flow if it has
// had half_open_evict_ns to complete (docs/PROTOCOL.md, "SYN floods").
bool Transport::make_half_open_room(uint64_t now) {
  if (!table_.half_open_full()) return true;
  Flow* old = table_.oldest_half_open();
  if (t_.half_open_evict_ns == 0 || old == nullptr || now - old->born_ns() < t_.half_open_evict_ns)
    return false;
  old->evict(now);
  ++counters_.syn_evicted;
  after_event(old);  // destroys it: passive and never accepted
  return !table_.half_open_full();
}

void Transport::handle_syn(uint64_t now, const Endpoint& from, const Endpoint& to,
                           const Segment& s) {
  last_now_ = now;
  if (s.dst_conn != 0 || s.src_conn == 0 || s.msg_len == 0 || s.msg_id == 0) {
    ++counters_.rx_bad_fragment;
    return;
  }
  if (Flow* dup = table_.find_by_syn(from, s.src_conn)) {
    if (dup->frozen) {
      ++counters_.rx_drop_frozen;
      return;
    }
    dup->on_duplicate_syn(now, s);
    after_event(dup);
    return;
  }
  uint16_t service = 0;
  Listener* l = syn_listener(from, to, s, &service);
  if (l == nullptr) return;
  // Bounds checked before any state is created (SYN floods cost nothing
  // beyond max_half_open flows).
  if (table_.full()) {
    ++counters_.rx_syn_flow_table_full;
    return;
  }
  if (l->backlog.size() >= l->max_backlog) {
    ++counters_.rx_syn_backlog_full;
    return;
  }
  if (!make_half_open_room(now)) {
    ++counters_.rx_syn_half_open_full;
    return;
  }
  // A service flow lives on the listener's own port, not the rendezvous port.
  Endpoint local = service != 0 ? Endpoint{to.ip, l->local_port} : to;
  FlowId id = table_.allocate_id(&rng_);
  auto f = std::make_unique<Flow>(env_, id, local, from, l->stream);
  Flow* p = f.get();
  p->passive = true;
  if (l->has_options) p->set_options(now, l->options);
  p->set_service(service);
  p->start_accept(now, s);
  ++counters_.flows_created;
  table_.insert(std::move(f));
  after_event(p);
  note_peaks();
}

void Transport::on_datagram(uint64_t now, const Endpoint& from, const Endpoint& to,
                            const uint8_t* data, size_t len) {
  last_now_ = now;
  ++counters_.rx_datagrams;
  // Every datagram ends in one drop counter or in rx_accepted.
  const uint64_t dropped = counters_.rx_dropped();
  receive(now, from, to, data, len);
  if (counters_.rx_dropped() == dropped) ++counters_.rx_accepted;
}

void Transport::receive(uint64_t now, const Endpoint& from, const Endpoint& to, const uint8_t* data,
                        size_t len) {
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
  if (f->frozen) {
    // Frozen for a hand-off, or a tombstone: never answered (a RST would
    // kill the flow the other process continues). Recovered by resending.
    ++counters_.rx_drop_frozen;
    f->frozen_drops = true;
    return;
  }
  if (!f->accepts_source(from) || f->local().port != to.port) {
    if ((s.flags & kFlagMigrated) && from.ip == f->remote().ip && f->local().port == to.port) {
      on_migration(now, f, from, s);
      return;
    }
    ++counters_.rx_bad_conn_id;  // right id, wrong addresses: stale or spoofed
    return;
  }
  if (f->state() == FlowState::kFailed && s.type == SegType::kSynAck) {
    // The answer to a connect we gave up (timed out or fell back): reset the
    // peer's half-open flow instead of letting it retry for nothing.
    ++counters_.rx_flow_finished;
    send_rst_reply(to, from, s);
    return;
  }
  f->on_segment(now, s, from.port);
  after_event(f);
}

void Transport::on_icmp_unreachable(uint64_t now, const Endpoint& local, const Endpoint& remote) {
  last_now_ = now;
  ++counters_.rx_icmp_unreachable;
  // Only connects in progress care (an established flow ignores ICMP), and
  // only one that sent from `local` to `remote`: a forged ICMP must name a
  // probe's ephemeral port.
  for (FlowId id : table_.connecting_to(remote.ip)) {
    Flow* f = table_.find(id);
    if (f == nullptr || f->frozen || f->state() != FlowState::kSynSent || f->remote() != remote ||
        f->local().port != local.port)
      continue;
    if (f->probing() && remote.port == t_.rendezvous_port) {
      f->on_probe_refused(now);  // no machnet there: settles every probe to that host
    } else {
      f->on_icmp_unreachable(now);
    }
    after_event(f);
  }
}

void Transport::on_migration(uint64_t now, Flow* f, const Endpoint& from, const Segment& s) {
  // The peer's flow moved to another process on the same host (another UDP
  // port). Accepted only with every proof a segment of the flow carries; a
  // failure is dropped silently (never a RST to the new port: it would be a
  // reflector for forged migrations).
  if (!f->accepts_migration(s)) {
    ++counters_.rx_bad_migration;
    return;
  }
  const Endpoint old = f->remote();
  f->set_remote_port(from.port);
  table_.remote_changed(f, old);
  ++counters_.path_migrations;
  f->on_segment(now, s, from.port);
  // What we sent to the old port while the peer was frozen was dropped, and
  // so were our ACKs: resend and acknowledge at once.
  f->resume(now);
  after_event(f);
}

Status Transport::freeze(FlowId id) {
  Flow* f = app_flow(id);
  if (f == nullptr || (f->passive && !f->accepted)) return Status::kInvalidArgument;
  if (f->frozen) return Status::kOk;
  f->frozen = true;
  f->frozen_drops = false;
  // Its pending heap entries become stale: poll() skips them.
  f->heap_deadline = kNever;
  return Status::kOk;
}

bool Transport::frozen(FlowId id) const {
  Flow* f = table_.find(id);
  return f != nullptr && f->frozen;
}

Status Transport::thaw(uint64_t now, FlowId id) {
  last_now_ = now;
  Flow* f = app_flow(id);
  if (f == nullptr || !f->frozen) return Status::kInvalidArgument;
  f->frozen = false;
  f->heap_deadline = kNever;
  // Nothing lost while frozen (a parent that takes its connections back at
  // once): its timers carry on, no resend, no ACK storm for many flows.
  if (f->frozen_drops) f->resume(now);
  after_event(f);
  return Status::kOk;
}

Status Transport::retire(uint64_t now, FlowId id, uint64_t hold_ns) {
  last_now_ = now;
  Flow* f = app_flow(id);
  if (f == nullptr || !f->frozen) return Status::kInvalidArgument;
  f->released = true;
  f->retired = true;
  if (hold_ns == 0) {
    destroy(f);
    return Status::kOk;
  }
  f->retire_deadline = hold_ns > kNever - now ? kNever - 1 : now + hold_ns;
  f->heap_deadline = kNever;
  after_event(f);
  return Status::kOk;
}

Status Transport::adopt(uint64_t now, const Flow& snapshot, uint16_t local_port, FlowId* out) {
  last_now_ = now;
  if (!snapshot.established_like() || snapshot.local().ip != local_ip_ || local_port == 0 ||
      snapshot.id() == 0)
    return Status::kInvalidArgument;
  // The copy's rings, buffers and segment sizes were bounded by the
  // snapshot's tunables: this transport's must bound them the same way.
  const Tunables& o = snapshot.tunables();
  if (o.mtu_payload != t_.mtu_payload || o.max_inflight_segments != t_.max_inflight_segments ||
      o.max_reassembly_messages != t_.max_reassembly_messages ||
      o.max_message_bytes != t_.max_message_bytes ||
      o.stream_chunk_bytes != t_.stream_chunk_bytes ||
      o.recv_buffer_bytes != t_.recv_buffer_bytes || o.send_buffer_bytes != t_.send_buffer_bytes ||
      o.min_flow_buffer_bytes != t_.min_flow_buffer_bytes)
    return Status::kInvalidArgument;
  if (table_.find(snapshot.id()) != nullptr) return Status::kAddressInUse;
  if (table_.full()) return Status::kTooManyFlows;
  auto f = std::make_unique<Flow>(snapshot, env_, Endpoint{local_ip_, local_port});
  if (f->check_invariants() != nullptr) return Status::kInvalidArgument;
  Flow* p = f.get();
  ++counters_.flows_created;
  table_.insert(std::move(f));
  note_peaks();
  p->resume(now);  // announces the new port (kFlagMigrated) and resends
  after_event(p);
  *out = p->id();
  return Status::kOk;
}

bool Transport::flow_stats(FlowId id, FlowStats* out) const {
  Flow* f = table_.find(id);
  if (f == nullptr) return false;
  *out = f->stats();
  return true;
}

uint64_t Transport::activity(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr ? 0 : f->activity();
}

bool Transport::endpoints(FlowId id, Endpoint* local, Endpoint* remote) const {
  Flow* f = table_.find(id);
  if (f == nullptr) return false;
  *local = f->local();
  *remote = f->remote();
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
