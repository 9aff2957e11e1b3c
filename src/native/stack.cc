#include "native/stack.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace machnet::native {

using transport::Endpoint;
using transport::FlowId;
using transport::FlowState;

namespace {

constexpr size_t kPorts = 65536;
constexpr uint64_t kReapPeriodNs = 1'000'000;

uint64_t random_seed() {
  uint64_t seed = 0;
  // ISNs and connection ids must not be predictable across runs.
  if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
    seed = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&seed)) ^ 0x6d6163686e6574ull;
  }
  return seed;
}

}  // namespace

std::unique_ptr<Stack> Stack::create(const NativeConfig& cfg, std::string* err) {
  std::unique_ptr<engine::Engine> eng = engine::Engine::create(cfg.engine, err);
  if (!eng) return nullptr;
  return std::unique_ptr<Stack>(new Stack(cfg, std::move(eng)));
}

Stack::Stack(const NativeConfig& cfg, std::unique_ptr<engine::Engine> eng)
    : cfg_(cfg),
      eng_(std::move(eng)),
      ip_(eng_->ip()),
      socks_(kPorts, nullptr),
      refs_(kPorts, 0),
      rxbuf_(65536) {
  tp_ = std::make_unique<transport::Transport>(cfg_.tunables, this, ip_, random_seed());
}

Stack::~Stack() {
  shutdown();
}

void Stack::shutdown() {
  // Transport first: it must not send through sockets that are gone.
  tp_.reset();
  if (eng_) {
    for (uint16_t p : bound_) {
      eng_->udp_close(socks_[p]);
      socks_[p] = nullptr;
    }
    eng_.reset();
  }
  bound_.clear();
  loop_.clear();
}

size_t Stack::progress() {
  eng_->poll();
  uint64_t now = eng_->now_ns();
  size_t n = 0;
  // The transport never binds or unbinds ports from inside on_datagram, so
  // bound_ is stable during this loop.
  for (size_t i = 0; i < bound_.size(); i++) {
    uint16_t port = bound_[i];
    engine::UdpSocket* s = socks_[port];
    const Endpoint to{ip_, port};
    for (;;) {
      Endpoint from;
      ssize_t len = eng_->udp_recvfrom(s, rxbuf_.data(), rxbuf_.size(), &from.ip, &from.port);
      if (len < 0) break;
      tp_->on_datagram(now, from, to, rxbuf_.data(), static_cast<size_t>(len));
      n++;
    }
    // ICMP unreachable for something this port sent: a SYN to a machnet
    // host with nothing bound on that port is refused at once instead of
    // timing out (the transport ignores it for established flows).
    Endpoint dst;
    if (eng_->udp_take_error(s, &dst.ip, &dst.port) != 0) tp_->on_icmp_unreachable(now, to, dst);
  }
  if (!loop_.empty()) n += deliver_loopback(now);
  if (tp_->next_timer_ns() <= now) tp_->poll(now);
  if (now >= next_reap_ns_ && !lingering_.empty()) {
    next_reap_ns_ = now + kReapPeriodNs;
    reap_lingering();
  }
  progress_count_.fetch_add(1, std::memory_order_relaxed);
  return n;
}

int Stack::acquire_port(uint16_t port, uint16_t* out) {
  if (port != 0 && socks_[port] != nullptr) {
    // Bound already: by a listener (a second listen is refused by the
    // transport) or by a connect's ephemeral port, which is private to it.
    return -EADDRINUSE;
  }
  engine::UdpSocket* s = nullptr;
  int rc = eng_->udp_bind(port, &s);
  if (rc != 0) return rc;
  port = s->port();
  socks_[port] = s;
  refs_[port] = 1;
  bound_.push_back(port);
  *out = port;
  return 0;
}

void Stack::ref_port(uint16_t port) {
  if (socks_[port] != nullptr) refs_[port]++;
}

void Stack::unref_port(uint16_t port) {
  if (socks_[port] == nullptr || refs_[port] == 0) return;
  if (--refs_[port] != 0) return;
  eng_->udp_close(socks_[port]);
  socks_[port] = nullptr;
  bound_.erase(std::find(bound_.begin(), bound_.end(), port));
}

void Stack::release_flow_port(FlowId id, uint16_t port) {
  lingering_.push_back({id, port});
  reap_lingering();
}

void Stack::reap_lingering() {
  for (size_t i = 0; i < lingering_.size();) {
    // A released flow is destroyed by the transport as soon as it is done;
    // state() of an unknown id reads kClosed.
    FlowState st = tp_->state(lingering_[i].id);
    if (st == FlowState::kClosed || st == FlowState::kFailed) {
      unref_port(lingering_[i].port);
      lingering_[i] = lingering_.back();
      lingering_.pop_back();
    } else {
      i++;
    }
  }
}

size_t Stack::deliver_loopback(uint64_t now) {
  // Only what is queued now: the answers these produce wait for the next
  // round, as they would on a wire.
  size_t n = loop_.size();
  for (size_t i = 0; i < n; i++) {
    Looped l = std::move(loop_.front());
    loop_.pop_front();
    if (l.unreachable) {
      tp_->on_icmp_unreachable(now, l.to, l.from);
    } else {
      tp_->on_datagram(now, l.from, l.to, l.data.data(), l.data.size());
    }
    loop_pool_.push_back(std::move(l.data));
  }
  return n;
}

bool Stack::loop_send(const Endpoint& local, const Endpoint& remote, const uint8_t* hdr,
                      size_t hdr_len, const iovec* payload, size_t n_payload) {
  if (loop_.size() >= cfg_.engine.socket_queue_len) {
    sink_errors_++;
    return true;  // "sent" and lost on the way: the transport recovers
  }
  if (socks_[remote.port] == nullptr) {
    // Nothing bound there: answer as a kernel would, with "port
    // unreachable", so a connect to a closed local port is refused at once.
    loop_.push_back(Looped{remote, local, {}, true});
    return true;
  }
  Looped l{local, remote, {}, false};
  if (!loop_pool_.empty()) {
    l.data = std::move(loop_pool_.back());
    loop_pool_.pop_back();
  }
  l.data.assign(hdr, hdr + hdr_len);
  for (size_t i = 0; i < n_payload; i++) {
    const uint8_t* p = static_cast<const uint8_t*>(payload[i].iov_base);
    l.data.insert(l.data.end(), p, p + payload[i].iov_len);
  }
  loop_.push_back(std::move(l));
  return true;
}

bool Stack::send(const Endpoint& local, const Endpoint& remote, const uint8_t* hdr, size_t hdr_len,
                 const iovec* payload, size_t n_payload) {
  if (remote.ip == ip_) return loop_send(local, remote, hdr, hdr_len, payload, n_payload);
  engine::UdpSocket* s = socks_[local.port];
  if (s == nullptr) {
    sink_errors_++;
    return false;
  }
  constexpr size_t kMaxIov = 16;
  iovec iov[kMaxIov];
  std::vector<iovec> big;
  iovec* v = iov;
  if (n_payload + 1 > kMaxIov) {
    big.resize(n_payload + 1);  // never with today's transport (one payload iovec)
    v = big.data();
  }
  v[0].iov_base = const_cast<uint8_t*>(hdr);
  v[0].iov_len = hdr_len;
  for (size_t i = 0; i < n_payload; i++) v[i + 1] = payload[i];
  int rc = eng_->udp_sendv(s, remote.ip, remote.port, v, static_cast<int>(n_payload + 1));
  if (rc != 0) {
    sink_errors_++;
    return false;
  }
  return true;
}

}  // namespace machnet::native
