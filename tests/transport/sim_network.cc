#include "sim_network.h"

#include <algorithm>
#include <cstring>

namespace machnet {
namespace transport {
namespace sim {

Host::Host(SimNetwork* net, uint32_t ip, const Tunables& t, uint64_t seed)
    : net_(net), ip_(ip), transport_(std::make_unique<Transport>(t, this, ip, seed)) {}

bool Host::send(const Endpoint& local, const Endpoint& remote, const uint8_t* hdr, size_t hdr_len,
                const iovec* payload, size_t n) {
  if (down) return true;
  Packet p;
  p.sent_ns = net_->now();
  p.from = local;
  p.to = remote;
  size_t total = hdr_len;
  for (size_t i = 0; i < n; ++i) total += payload[i].iov_len;
  p.bytes.resize(total);
  std::memcpy(p.bytes.data(), hdr, hdr_len);
  size_t off = hdr_len;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(p.bytes.data() + off, payload[i].iov_base, payload[i].iov_len);
    off += payload[i].iov_len;
  }
  net_->transmit(std::move(p));
  return true;
}

bool Host::icmp_allow(uint32_t dst, uint64_t now) {
  if (!icmp_rate_limited) return true;
  Bucket& b = icmp_buckets_[dst];
  b.tokens = std::min(6.0, b.tokens + static_cast<double>(now - b.at) / 1e9);
  b.at = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

SimNetwork::SimNetwork(uint64_t seed) : rng_(seed ^ 0x5eed5eed5eedull) {}

SimNetwork::~SimNetwork() {
  while (!events_q_.empty()) {
    delete events_q_.top();
    events_q_.pop();
  }
}

Host* SimNetwork::add_host(uint32_t ip, const Tunables& t) {
  auto h = std::make_unique<Host>(this, ip, t, rng_.next());
  Host* p = h.get();
  hosts_[ip] = std::move(h);
  return p;
}

Host* SimNetwork::host(uint32_t ip) {
  auto it = hosts_.find(ip);
  return it == hosts_.end() ? nullptr : it->second.get();
}

Host* SimNetwork::add_process(uint32_t ip, uint16_t port, const Tunables& t) {
  auto h = std::make_unique<Host>(this, ip, t, rng_.next());
  Host* p = h.get();
  procs_[{ip, port}] = std::move(h);
  return p;
}

Host* SimNetwork::host_for(const Endpoint& e) {
  auto it = procs_.find({e.ip, e.port});
  if (it != procs_.end()) return it->second.get();
  return host(e.ip);
}

SimNetwork::Link& SimNetwork::link_state(uint32_t from, uint32_t to) {
  auto it = links_.find({from, to});
  if (it == links_.end())
    it = links_.emplace(std::make_pair(from, to), Link{default_link_, {}, 0}).first;
  return it->second;
}

void SimNetwork::set_link(uint32_t from_ip, uint32_t to_ip, const LinkParams& p) {
  link_state(from_ip, to_ip).p = p;
}

void SimNetwork::set_host_egress(uint32_t ip, double bandwidth_bps, uint64_t queue_bytes) {
  egress_[ip].bps = bandwidth_bps;
  egress_[ip].queue_bytes = queue_bytes;
}

void SimNetwork::set_host_ingress(uint32_t ip, double bandwidth_bps, uint64_t queue_bytes,
                                  uint64_t per_datagram_ns) {
  Ingress& in = ingress_[ip];
  in.bps = bandwidth_bps;
  in.queue_bytes = queue_bytes;
  in.per_datagram_ns = per_datagram_ns;
}

void SimNetwork::inject(uint64_t at, Packet pkt) {
  pkt.sent_ns = at;
  schedule(at, false, std::move(pkt));
}

void SimNetwork::set_links(const LinkParams& p) {
  default_link_ = p;
  for (auto& kv : links_) kv.second.p = p;
}

LinkParams& SimNetwork::link(uint32_t from_ip, uint32_t to_ip) {
  return link_state(from_ip, to_ip).p;
}

const LinkStats& SimNetwork::link_stats(uint32_t from_ip, uint32_t to_ip) {
  return link_state(from_ip, to_ip).s;
}

bool SimNetwork::cut(const LinkParams& p, uint64_t t) {
  for (auto& c : p.cuts)
    if (t >= c.first && t < c.second) return true;
  return false;
}

void SimNetwork::schedule(uint64_t at, bool icmp, Packet pkt, bool ingressed) {
  events_q_.push(new Event{at, order_++, icmp, std::move(pkt), ingressed});
}

void SimNetwork::transmit(Packet pkt) {
  if (filter && !filter(pkt)) return;
  if (drop_unroutable && hosts_.count(pkt.to.ip) == 0 &&
      links_.count({pkt.from.ip, pkt.to.ip}) == 0) {
    ++unroutable_;
    return;
  }
  Link& l = link_state(pkt.from.ip, pkt.to.ip);
  ++l.s.sent;
  if (cut(l.p, now_)) {
    ++l.s.cut_drops;
    return;
  }
  if (l.p.loss > 0 && rng_.uniform() < l.p.loss) {
    ++l.s.lost;
    return;
  }
  uint64_t ready = now_;
  auto eg = egress_.find(pkt.from.ip);
  if (eg != egress_.end() && eg->second.bps > 0) {
    Egress& e = eg->second;
    uint64_t start = std::max(now_, e.busy_until);
    double backlog = static_cast<double>(start - now_) * e.bps / 8e9;
    if (backlog + static_cast<double>(pkt.bytes.size()) > static_cast<double>(e.queue_bytes)) {
      ++e.drops;
      return;
    }
    e.busy_until =
        start + static_cast<uint64_t>(static_cast<double>(pkt.bytes.size()) * 8e9 / e.bps);
    ready = e.busy_until;
  }
  uint64_t depart = ready;
  if (l.p.bandwidth_bps > 0) {
    // Serialization at the bottleneck; the queue holds what is waiting.
    uint64_t start = std::max(ready, l.busy_until);
    double backlog_bytes = static_cast<double>(start - ready) * l.p.bandwidth_bps / 8e9;
    if (backlog_bytes + static_cast<double>(pkt.bytes.size()) >
        static_cast<double>(l.p.queue_bytes)) {
      ++l.s.queue_drops;
      return;
    }
    uint64_t ser =
        static_cast<uint64_t>(static_cast<double>(pkt.bytes.size()) * 8e9 / l.p.bandwidth_bps);
    l.busy_until = start + ser;
    depart = l.busy_until;
  }
  int copies = 1;
  if (l.p.duplicate > 0 && rng_.uniform() < l.p.duplicate) {
    copies = 2;
    ++l.s.duplicated;
  }
  for (int c = 0; c < copies; ++c) {
    Packet p;
    if (c + 1 < copies) {
      p = pkt;
    } else {
      p = std::move(pkt);
    }
    uint64_t at = depart + l.p.delay_ns;
    if (l.p.jitter_ns > 0) at += rng_.below(l.p.jitter_ns + 1);
    if (l.p.reorder > 0 && rng_.uniform() < l.p.reorder) at += l.p.reorder_delay_ns;
    if (l.p.corrupt > 0 && rng_.uniform() < l.p.corrupt && !p.bytes.empty()) {
      ++l.s.corrupted;
      int flips = 1 + static_cast<int>(rng_.below(3));
      for (int i = 0; i < flips; ++i) {
        size_t bit = rng_.below(p.bytes.size() * 8);
        p.bytes[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      }
    }
    schedule(at, false, std::move(p));
  }
}

bool SimNetwork::step(uint64_t limit) {
  uint64_t next_pkt = events_q_.empty() ? kNever : events_q_.top()->at;
  uint64_t next_tmr = kNever;
  for (auto& kv : hosts_) {
    if (kv.second->down) continue;
    next_tmr = std::min(next_tmr, kv.second->transport().next_timer_ns());
  }
  for (auto& kv : procs_) {
    Host* h = host(kv.first.first);
    if (h != nullptr && h->down) continue;
    next_tmr = std::min(next_tmr, kv.second->transport().next_timer_ns());
  }
  uint64_t t = std::min(next_pkt, next_tmr);
  if (t == kNever || t > limit) {
    if (limit != kNever && limit > now_) now_ = limit;
    return false;
  }
  if (t > now_) now_ = t;
  ++events_;
  if (next_pkt <= next_tmr) {
    Event* e = events_q_.top();
    events_q_.pop();
    deliver(e);
  } else {
    for (auto& kv : hosts_) {
      Host* h = kv.second.get();
      if (!h->down && h->transport().next_timer_ns() <= now_) h->transport().poll(now_);
    }
    for (auto& kv : procs_) {
      Host* h = host(kv.first.first);
      if (h != nullptr && h->down) continue;
      Transport& t = kv.second->transport();
      if (t.next_timer_ns() <= now_) t.poll(now_);
    }
  }
  if (after_event) after_event();
  return true;
}

void SimNetwork::deliver(Event* ev) {
  std::unique_ptr<Event> e(ev);
  Packet& p = e->pkt;
  if (e->icmp) {
    // ICMP back to the original sender: p.from is the local end there.
    Host* h = host(p.from.ip);
    Host* dst = host_for(p.from);
    if (h != nullptr && !h->down) dst->transport().on_icmp_unreachable(now_, p.from, p.to);
    return;
  }
  Host* h = host(p.to.ip);
  Host* dst = host_for(p.to);
  // Injected packets bypass the link model (and create no link state).
  const bool injected = links_.count({p.from.ip, p.to.ip}) == 0 && host(p.from.ip) == nullptr;
  Link* l = injected ? nullptr : &link_state(p.from.ip, p.to.ip);
  if (l != nullptr && cut(l->p, now_)) {
    ++l->s.cut_drops;
    return;
  }
  if (h == nullptr || h->down) return;
  auto in = ingress_.find(p.to.ip);
  if (!e->ingressed && in != ingress_.end()) {
    Ingress& q = in->second;
    uint64_t start = std::max(now_, q.busy_until);
    double backlog = q.bps > 0 ? static_cast<double>(start - now_) * q.bps / 8e9 : 0;
    if (backlog + static_cast<double>(p.bytes.size()) > static_cast<double>(q.queue_bytes)) {
      ++q.drops;
      return;
    }
    uint64_t service = q.per_datagram_ns;
    if (q.bps > 0)
      service += static_cast<uint64_t>(static_cast<double>(p.bytes.size()) * 8e9 / q.bps);
    q.busy_until = start + service;
    schedule(q.busy_until, false, std::move(p), true);
    return;
  }
  if (h->icmp_unreachable) {
    if (!h->icmp_allow(p.from.ip, now_)) {
      ++h->icmp_suppressed;
      return;
    }
    ++h->icmp_sent;
    uint64_t back = injected ? 0 : link_state(p.to.ip, p.from.ip).p.delay_ns;
    schedule(now_ + back, true, std::move(p));
    return;
  }
  if (l != nullptr) ++l->s.delivered;
  dst->transport().on_datagram(now_, p.from, p.to, p.bytes.data(), p.bytes.size());
}

void SimNetwork::run_until(uint64_t t) {
  while (step(t)) {
  }
}

bool SimNetwork::run_until(const std::function<bool()>& pred, uint64_t deadline) {
  if (pred()) return true;
  while (step(deadline)) {
    if (pred()) return true;
  }
  return pred();
}

}  // namespace sim
}  // namespace transport
}  // namespace machnet
