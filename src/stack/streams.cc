// Stream services over the transport, for the socket layer's stream
// sockets: where a listener is reachable and what a connect talks to
// (docs/PROTOCOL.md, "Stream services").
//
// A stream listener on TCP-like port P is a transport service P: SYNs for it
// arrive on the host's rendezvous UDP port R (transport.rendezvous_port),
// carrying P; the connections it accepts run on an ephemeral UDP port L of
// this process (the SYN-ACK comes from there). A connect sends its SYN from
// an ephemeral port of ours to the peer's R. R is bound while any service
// listens (standalone engines; under machnetd the daemon owns it).
#include <algorithm>
#include <cerrno>

#include "engine/log.h"
#include "stack/stack.h"

namespace machnet::stack {

using transport::Endpoint;
using transport::FlowId;
using transport::Status;

namespace {

int status_errno(Status st) {
  switch (st) {
    case Status::kOk:
      return 0;
    case Status::kAgain:
      return EAGAIN;
    case Status::kAddressInUse:
      return EADDRINUSE;
    case Status::kTooManyFlows:
      return ENOBUFS;
    case Status::kInvalidArgument:
      return EINVAL;
    default:
      return EIO;
  }
}

}  // namespace

int Stack::acquire_rendezvous() {
  // Attached, the port is this process's own: the daemon steers the frames
  // that reach it by the service they name (service_listen below), so it
  // is never claimed by port. Standalone, it is bound as any other.
  uint16_t r = tp_->tunables().rendezvous_port, got;
  if (!eng_->attached()) return acquire_port(r, &got);
  if (eng_->rendezvous_port() != 0 && eng_->rendezvous_port() != r) {
    MN_LOG(ENGINE, ERR,
           "transport.rendezvous_port is %u but machnetd's is %u: stream listeners stay on the "
           "kernel (every host must use the same port)",
           r, eng_->rendezvous_port());
    return -EINVAL;
  }
  engine::UdpBindOptions opt;
  opt.local_only = true;
  engine::UdpSocket* s = nullptr;
  int rc = eng_->udp_bind(r, opt, &s);
  if (rc != 0) return rc;
  socks_[r] = s;
  refs_[r] = 1;
  bound_.push_back(r);
  return 0;
}

int Stack::claim_service(uint16_t service_port, bool inherited, bool reuseport, int* ring) {
  *ring = -1;
  if (!eng_->attached()) return 0;  // standalone: the rendezvous port is ours alone
  if (inherited) {
    int rc = eng_->service_join(service_port, ring);
    // Every other holder stopped listening before we took the listener
    // over: it is ours alone now, as the kernel's socket would be.
    if (rc != -EADDRINUSE) return rc;
  }
  return eng_->service_listen(service_port, reuseport);
}

int Stack::stream_listen(uint16_t service_port, uint32_t backlog, EventTarget* t, bool inherited,
                         bool reuseport) {
  if (down()) return -ENETDOWN;
  if (services_.count(service_port) != 0) return -EADDRINUSE;
  if (rendezvous_refs_ == 0) {
    int rc = acquire_rendezvous();
    if (rc != 0) return rc;
  }
  rendezvous_refs_++;
  int ring = -1;
  int rc = claim_service(service_port, inherited, reuseport, &ring);
  uint16_t local = 0;
  if (rc == 0) {
    rc = acquire_port(0, &local);
    if (rc == 0) {
      Status st = tp_->listen_service(service_port, local, backlog);
      if (st == Status::kOk) {
        services_[service_port] = local;
        service_targets_[service_port] = t;
        if (ring >= 0) {
          service_rings_[service_port] = ring;
          refresh_read_rings();
        }
        return 0;
      }
      unref_port(local);
      rc = -status_errno(st);
    }
    if (eng_->attached()) eng_->service_unlisten(service_port);
  }
  if (--rendezvous_refs_ == 0) unref_port(tp_->tunables().rendezvous_port);
  return rc;
}

void Stack::refresh_read_rings() {
  std::vector<int> now;
  for (const auto& [svc, ring] : service_rings_) now.push_back(ring);
  for (int i = 0; i < 32; i++)
    if ((lease_rings_ >> i) & 1u) now.push_back(i);
  std::sort(now.begin(), now.end());
  now.erase(std::unique(now.begin(), now.end()), now.end());
  for (int ring : read_rings_)
    if (!std::binary_search(now.begin(), now.end(), ring)) eng_->set_ring_reader(ring, false);
  for (int ring : now) eng_->set_ring_reader(ring, accepting_);
  read_rings_ = std::move(now);
}

void Stack::stream_unlisten(uint16_t service_port) {
  auto it = services_.find(service_port);
  if (it == services_.end()) return;
  tp_->unlisten_service(service_port);
  if (eng_->attached()) eng_->service_unlisten(service_port);
  if (service_rings_.erase(service_port) != 0) refresh_read_rings();
  unref_port(it->second);
  services_.erase(it);
  service_targets_.erase(service_port);
  if (--rendezvous_refs_ == 0) unref_port(tp_->tunables().rendezvous_port);
}

int Stack::stream_accept(uint16_t service_port, FlowId* id, Endpoint* peer, uint16_t* port) {
  auto it = services_.find(service_port);
  if (it == services_.end()) return -EINVAL;
  if (!accepting_) {
    // From now on this process takes SYNs off its services' fork-shared
    // rings (see accepting_).
    accepting_ = true;
    for (int ring : read_rings_) eng_->set_ring_reader(ring, true);
  }
  FlowId f;
  if (tp_->accept_service(service_port, &f) != Status::kOk) return -EAGAIN;
  Endpoint local;
  tp_->endpoints(f, &local, peer);
  ref_port(it->second);  // the flow keeps the listener's port bound
  *id = f;
  *port = it->second;
  return 0;
}

// Every error of stream_connect sends the socket to kernel TCP (the socket
// layer falls back on any of them): counted by reason.
void Stack::count_connect_fallback(int rc) {
  switch (-rc) {
    case ENETDOWN:
      counters_.fallback_engine_down++;
      break;
    case EAGAIN:
    case EADDRINUSE:
      counters_.fallback_no_port++;
      break;
    case ENOBUFS:
      counters_.fallback_flow_table_full++;
      break;
    default:
      counters_.fallback_error++;
  }
}

int Stack::stream_connect(const Endpoint& peer, const transport::FlowOptions* opts, EventTarget* t,
                          FlowId* id, uint16_t* port) {
  int rc = down() ? -ENETDOWN : -eng_->failure();
  uint16_t p = 0;
  if (rc == 0) rc = acquire_port(0, &p);
  if (rc != 0) {
    count_connect_fallback(rc);
    return rc;
  }
  FlowId f = 0;
  Status st = tp_->connect_service(now_ns(), p, peer, &f, opts);
  if (st != Status::kOk) {
    unref_port(p);
    // kNotMachnet: the peer is remembered as plain (no probe sent; the
    // transport counted it as fallback_cached).
    if (st == Status::kNotMachnet) return kStreamPlainPeer;
    rc = -status_errno(st);
    count_connect_fallback(rc);
    return rc;
  }
  counters_.stream_connects++;
  route_flow(f, t);
  *id = f;
  *port = p;
  return 0;
}

void Stack::stream_release(FlowId id, uint16_t port, bool reset) {
  uint64_t now = now_ns();
  if (reset) {
    tp_->abort(now, id);
  } else {
    tp_->close(now, id);
  }
  unroute_flow(id);
  release_flow_port(id, port);
}

}  // namespace machnet::stack
