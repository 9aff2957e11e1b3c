// Deterministic discrete-event network for testing the transport in virtual
// time. Hosts are Transports (one IPv4 address each); directed links between
// hosts have loss, duplication, corruption (bit flips), delay + jitter,
// reordering, a bandwidth cap (serialization delay and a tail-drop queue) and
// scheduled partitions. The loop jumps straight to the next event (a packet
// arrival or a transport timer), so seconds of virtual time take
// milliseconds. Everything random comes from one seed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <utility>
#include <vector>

#include "transport/transport.h"

namespace machnet {
namespace transport {
namespace sim {

struct LinkParams {
  uint64_t delay_ns = 10'000;  // one-way propagation
  uint64_t jitter_ns = 0;      // extra uniform [0, jitter] per packet (reorders)
  double loss = 0;             // per-packet drop probability
  double duplicate = 0;
  double corrupt = 0;  // flip 1-3 random bits
  double reorder = 0;  // probability of an extra reorder_delay_ns
  uint64_t reorder_delay_ns = 50'000;
  double bandwidth_bps = 0;        // 0 = unlimited
  uint64_t queue_bytes = 1 << 20;  // bottleneck queue, tail drop
  // Partition windows [cut, heal): packets sent or arriving inside are lost.
  // heal == kNever makes it permanent.
  std::vector<std::pair<uint64_t, uint64_t>> cuts;
};

struct LinkStats {
  uint64_t sent = 0, delivered = 0, lost = 0, queue_drops = 0, cut_drops = 0, duplicated = 0,
           corrupted = 0;
};

class SimNetwork;

class Host : public DatagramSink {
 public:
  Host(SimNetwork* net, uint32_t ip, const Tunables& t, uint64_t seed);
  Transport& transport() { return *transport_; }
  uint32_t ip() const { return ip_; }
  bool send(const Endpoint& local, const Endpoint& remote, const uint8_t* hdr, size_t hdr_len,
            const iovec* payload, size_t n) override;
  // While down, the host drops every datagram and fires no timers (a crash
  // without reboot). With icmp_unreachable, arriving datagrams are answered
  // by ICMP port unreachable instead (no process bound to the port).
  bool down = false;
  bool icmp_unreachable = false;
  // Linux's ICMP rate limit (inet_peer_xrlim_allow): per destination, a
  // burst of 6 and then one per second. ICMP over the limit is not sent.
  bool icmp_rate_limited = false;
  uint64_t icmp_sent = 0, icmp_suppressed = 0;
  bool icmp_allow(uint32_t dst, uint64_t now);

 private:
  SimNetwork* net_;
  uint32_t ip_;
  std::unique_ptr<Transport> transport_;
  struct Bucket {
    double tokens = 6;
    uint64_t at = 0;
  };
  std::map<uint32_t, Bucket> icmp_buckets_;
};

struct Packet {
  uint64_t sent_ns = 0;
  Endpoint from, to;
  std::vector<uint8_t> bytes;
};

class SimNetwork {
 public:
  explicit SimNetwork(uint64_t seed);
  ~SimNetwork();

  Host* add_host(uint32_t ip, const Tunables& t);
  Host* host(uint32_t ip);
  // Another process on host `ip` (which must exist): its own Transport that
  // owns UDP port `port` there. Datagrams to (ip, port) go to it instead of
  // the host's transport, and ICMP about what it sent comes back to it; it
  // shares the host's links and `down` (a fork-time hand-off).
  Host* add_process(uint32_t ip, uint16_t port, const Tunables& t);
  // Who receives datagrams sent to `e`: a process owning the port, else the
  // host.
  Host* host_for(const Endpoint& e);
  void set_link(uint32_t from_ip, uint32_t to_ip, const LinkParams& p);
  // A host's NIC uplink shared by all its outgoing links (serialization and a
  // tail-drop queue), applied before the per-link model: a shared bottleneck.
  void set_host_egress(uint32_t ip, double bandwidth_bps, uint64_t queue_bytes);
  uint64_t egress_drops(uint32_t ip) { return egress_[ip].drops; }
  // A host's receive side: every datagram arriving at it (injected ones too)
  // waits in one queue served at `bandwidth_bps` plus `per_datagram_ns` of
  // processing each (a NIC and a CPU); tail drop beyond `queue_bytes`.
  void set_host_ingress(uint32_t ip, double bandwidth_bps, uint64_t queue_bytes,
                        uint64_t per_datagram_ns);
  uint64_t ingress_drops(uint32_t ip) { return ingress_[ip].drops; }
  // Delivers `pkt` to pkt.to at time `at`, outside the link model (no link
  // state is created): spoofed traffic from anywhere, e.g. a flood.
  void inject(uint64_t at, Packet pkt);
  // Datagrams sent to an address with no host and no configured link are
  // dropped at once (counted) instead of getting a link of their own: a
  // host answering a spoofed flood would otherwise create one per source.
  bool drop_unroutable = false;
  uint64_t unroutable() const { return unroutable_; }
  void set_links(const LinkParams& p);  // every link, both directions, existing and future
  LinkParams& link(uint32_t from_ip, uint32_t to_ip);
  const LinkStats& link_stats(uint32_t from_ip, uint32_t to_ip);

  uint64_t now() const { return now_; }
  // Processes the next event if it is at or before `limit`; false otherwise
  // (time then advances to `limit`).
  bool step(uint64_t limit);
  void run_until(uint64_t t);
  // Runs until pred() holds (checked after every event) or `deadline`.
  bool run_until(const std::function<bool()>& pred, uint64_t deadline);
  // Called after every event (invariant checks).
  std::function<void()> after_event;
  // Sees every datagram as it is sent; returning false drops it (targeted
  // drops in unit tests).
  std::function<bool(const Packet&)> filter;
  uint64_t events() const { return events_; }

 private:
  friend class Host;
  struct Event {
    uint64_t at;
    uint64_t order;  // FIFO tie-break keeps runs deterministic
    bool icmp;
    Packet pkt;
    bool ingressed = false;  // already through the destination's ingress queue
  };
  struct EventCmp {
    bool operator()(const Event* a, const Event* b) const {
      return a->at != b->at ? a->at > b->at : a->order > b->order;
    }
  };
  struct Link {
    LinkParams p;
    LinkStats s;
    uint64_t busy_until = 0;
  };

  struct Egress {
    double bps = 0;
    uint64_t queue_bytes = 0;
    uint64_t busy_until = 0;
    uint64_t drops = 0;
  };
  void transmit(Packet pkt);
  void schedule(uint64_t at, bool icmp, Packet pkt, bool ingressed = false);
  void deliver(Event* e);
  Link& link_state(uint32_t from, uint32_t to);
  static bool cut(const LinkParams& p, uint64_t t);

  uint64_t now_ = 0;
  uint64_t order_ = 0;
  uint64_t events_ = 0;
  Rng rng_;
  LinkParams default_link_;
  std::map<uint32_t, std::unique_ptr<Host>> hosts_;
  std::map<std::pair<uint32_t, uint16_t>, std::unique_ptr<Host>> procs_;
  std::map<std::pair<uint32_t, uint32_t>, Link> links_;
  std::map<uint32_t, Egress> egress_;
  struct Ingress {
    double bps = 0;
    uint64_t queue_bytes = 0;
    uint64_t per_datagram_ns = 0;
    uint64_t busy_until = 0;
    uint64_t drops = 0;
  };
  std::map<uint32_t, Ingress> ingress_;
  uint64_t unroutable_ = 0;
  std::priority_queue<Event*, std::vector<Event*>, EventCmp> events_q_;
};

}  // namespace sim
}  // namespace transport
}  // namespace machnet
