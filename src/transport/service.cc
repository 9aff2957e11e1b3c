// Transport: stream services (rendezvous port + service port in the SYN),
// service probes with one verdict per peer, per-flow options and the stream
// socket queries. docs/PROTOCOL.md sections 2.1-2.3 describe the design.
#include <algorithm>

#include "transport/transport.h"

namespace machnet {
namespace transport {

Status Transport::listen_service(uint16_t service_port, uint16_t local_port, uint32_t backlog) {
  if (service_port == 0 || local_port == 0) return Status::kInvalidArgument;
  if (services_.count(service_port)) return Status::kAddressInUse;
  Listener& l = services_[service_port];
  l.stream = true;
  l.local_port = local_port;
  l.max_backlog = backlog != 0 ? backlog : t_.listen_backlog;
  return Status::kOk;
}

Status Transport::unlisten_service(uint16_t service_port) {
  return remove_listener(&services_, service_port);
}

Status Transport::accept_service(uint16_t service_port, FlowId* out) {
  auto it = services_.find(service_port);
  if (it == services_.end()) return Status::kNotListening;
  return accept_from(&it->second, out);
}

Status Transport::set_listen_options(uint16_t port, const FlowOptions& o) {
  return set_options(&listeners_, port, o);
}

Status Transport::set_service_options(uint16_t service_port, const FlowOptions& o) {
  return set_options(&services_, service_port, o);
}

Status Transport::set_options(ListenerMap* map, uint16_t key, const FlowOptions& o) {
  auto it = map->find(key);
  if (it == map->end()) return Status::kNotListening;
  it->second.options = o;
  it->second.has_options = true;
  return Status::kOk;
}

Status Transport::connect_service(uint64_t now, uint16_t local_port, const Endpoint& remote,
                                  FlowId* out, const FlowOptions* opts) {
  last_now_ = now;
  if (remote.ip == 0 || remote.port == 0 || local_port == 0) return Status::kInvalidArgument;
  if (peer_known_plain(now, remote.ip, remote.port)) {
    ++counters_.fallback_cached;
    return Status::kNotMachnet;
  }
  if (table_.full()) return Status::kTooManyFlows;
  FlowId id = table_.allocate_id(&rng_);
  // The SYN goes to the peer's rendezvous port; the SYN-ACK names the port
  // the flow continues on.
  auto f = std::make_unique<Flow>(env_, id, Endpoint{local_ip_, local_port},
                                  Endpoint{remote.ip, t_.rendezvous_port}, /*stream=*/true);
  Flow* p = f.get();
  if (opts != nullptr) p->set_options(now, *opts);
  ++counters_.flows_created;
  table_.insert(std::move(f));
  p->start_service_connect(now, remote.port);
  after_event(p);
  note_peaks();
  *out = id;
  return Status::kOk;
}

void Transport::on_probe_news(Flow* f, Flow::ProbeNews n) {
  const uint32_t ip = f->remote().ip;
  const uint64_t now = last_now_;
  switch (n) {
    case Flow::ProbeNews::kNone:
      return;
    case Flow::ProbeNews::kMachnet:
      peers_.record_machnet(now, ip);
      return;
    case Flow::ProbeNews::kPlainIcmp:
      // The peer's kernel itself says nobody is on the rendezvous port: no
      // probe to that host can succeed. One ICMP settles them all, which is
      // what survives the kernel's ICMP rate limit.
      peers_.record_plain(now, ip);
      settle_probes(ip, 0, FallbackReason::kIcmpRefused);
      return;
    case Flow::ProbeNews::kPlainTimeout:
      // Silence proves less than ICMP: a host that answered as machnet a
      // moment ago keeps that verdict (this probe still falls back).
      if (peers_.fresh_machnet(now, ip)) return;
      peers_.record_plain(now, ip);
      settle_probes(ip, 0, FallbackReason::kTimeout);
      return;
    case Flow::ProbeNews::kNoService:
      peers_.record_no_service(now, ip, f->service_port());
      settle_probes(ip, f->service_port(), FallbackReason::kNoService);
      return;
  }
}

void Transport::settle_probes(uint32_t ip, uint16_t service, FallbackReason reason) {
  for (FlowId id : table_.connecting_to(ip)) {
    Flow* g = table_.find(id);
    if (g == nullptr || g->frozen || !g->probing() ||
        (service != 0 && g->service_port() != service))
      continue;
    g->settle_probe(last_now_, reason);
    after_event(g);
  }
}

FlowOptions Transport::default_flow_options() const {
  FlowOptions o;
  o.recv_buffer_bytes = t_.recv_buffer_bytes;
  o.send_buffer_bytes = t_.send_buffer_bytes;
  o.keepalive = t_.keepalive_idle_ns != 0;
  o.keepalive_idle_ns = t_.keepalive_idle_ns;
  o.keepalive_interval_ns = t_.keepalive_interval_ns;
  o.keepalive_probes = t_.keepalive_probes;
  o.nodelay = true;
  o.cork = false;
  o.quickack = false;
  return o;
}

Status Transport::set_flow_options(uint64_t now, FlowId id, const FlowOptions& o) {
  last_now_ = now;
  Status err = Status::kOk;
  Flow* f = live_flow(id, &err);
  if (f == nullptr) return err;
  f->set_options(now, o);
  after_event(f);
  return Status::kOk;
}

Status Transport::get_flow_options(FlowId id, FlowOptions* o) const {
  Flow* f = app_flow(id);
  if (f == nullptr) return Status::kNoSuchFlow;
  *o = f->options();
  return Status::kOk;
}

Status Transport::peek_stream(FlowId id, void* buf, size_t cap, size_t* got) const {
  *got = 0;
  Flow* f = app_flow(id);
  if (f == nullptr) return Status::kNoSuchFlow;
  return f->peek_stream(static_cast<uint8_t*>(buf), cap, got);
}

size_t Transport::readable_bytes(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr ? 0 : f->readable_bytes();
}

size_t Transport::unacked_bytes(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr ? 0 : f->unacked_bytes();
}

size_t Transport::unsent_bytes(FlowId id) const {
  Flow* f = table_.find(id);
  return f == nullptr ? 0 : f->unsent_bytes();
}

}  // namespace transport
}  // namespace machnet
