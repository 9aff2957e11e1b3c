// The public C++ face of the machnet reliable message transport (v1).
//
// Pure logic: no threads, no clock reads, no sockets. The owner feeds it
// received datagrams and the current time, and calls poll() when
// next_timer_ns() is due; packets go out through a DatagramSink. Everything is
// non-blocking; kAgain means "try again after the next event".
//
// One Transport serves one local IPv4 address (any number of UDP ports).
#pragma once

#include <functional>
#include <memory>
#include <queue>
#include <unordered_map>
#include <vector>

#include "transport/flow.h"
#include "transport/flow_table.h"
#include "transport/tunables.h"
#include "transport/types.h"

namespace machnet {
namespace transport {

class Transport {
 public:
  // `t` must pass Tunables::validate() (checked: invalid values abort).
  // `rng_seed` drives ISNs and connection ids: fixed in tests, random in
  // production.
  Transport(const Tunables& t, DatagramSink* sink, uint32_t local_ip, uint64_t rng_seed);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // --- connection management ---
  Status listen(uint16_t port, bool stream_mode = false);
  Status unlisten(uint16_t port);
  // Completes asynchronously: state() goes kSynSent -> kEstablished or kFailed.
  // Messages sent before that are queued and leave with the handshake ACK.
  Status connect(uint64_t now_ns, uint16_t local_port, const Endpoint& remote, FlowId* out,
                 bool stream_mode = false);
  Status accept(uint16_t port, FlowId* out);
  // Graceful: queued data is delivered, then FIN. The handle is released; the
  // flow finishes (and lingers in TIME_WAIT) on its own.
  Status close(uint64_t now_ns, FlowId id);
  // Half close: FIN after queued data; receiving continues.
  Status shutdown_send(uint64_t now_ns, FlowId id);
  // RST, drop everything, release the handle.
  Status abort(uint64_t now_ns, FlowId id);

  // --- data ---
  // Message mode: whole message or kAgain (send buffer full: back-pressure).
  Status send_message(uint64_t now_ns, FlowId id, const void* data, size_t len);
  // Message mode: moves the next complete message into *out (zero copy).
  Status recv_message(uint64_t now_ns, FlowId id, std::vector<uint8_t>* out);
  // Stream mode: accepts what fits, *accepted bytes.
  Status send_stream(uint64_t now_ns, FlowId id, const void* data, size_t len, size_t* accepted);
  Status recv_stream(uint64_t now_ns, FlowId id, void* buf, size_t cap, size_t* got);

  // --- I/O and time ---
  void on_datagram(uint64_t now_ns, const Endpoint& from, const Endpoint& to, const uint8_t* data,
                   size_t len);
  // ICMP port/host unreachable for a datagram we sent from local to remote.
  void on_icmp_unreachable(uint64_t now_ns, const Endpoint& local, const Endpoint& remote);
  // Earliest time poll() has work; kNever if none.
  uint64_t next_timer_ns();
  void poll(uint64_t now_ns);

  // --- readiness notification (for poll/epoll and waking blocked threads) ---
  // Called whenever a flow's FlowEvents mask changes (flow != 0), and when a
  // listener gets a connection to accept (flow == 0, port set). Runs inside
  // the transport call that caused it: it must not call back into the
  // transport.
  using EventHandler = std::function<void(FlowId flow, uint16_t listen_port, uint32_t events)>;
  void set_event_handler(EventHandler h) { on_event_ = std::move(h); }
  uint32_t events(FlowId id) const;

  // --- introspection ---
  bool flow_stats(FlowId id, FlowStats* out) const;
  FlowState state(FlowId id) const;
  FlowError error(FlowId id) const;
  bool readable(FlowId id) const;
  size_t send_space(FlowId id) const;
  const Counters& counters() const { return counters_; }
  size_t flow_count() const { return table_.size(); }
  size_t half_open_count() const { return table_.half_open(); }
  const Tunables& tunables() const { return t_; }
  uint32_t local_ip() const { return local_ip_; }
  template <class Fn>
  void for_each_flow(Fn fn) const {
    table_.for_each([&](const Flow* f) { fn(*f); });
  }

 private:
  struct Listener {
    bool stream = false;
    std::queue<FlowId> backlog;
  };

  Flow* app_flow(FlowId id) const;
  void after_event(Flow* f);
  void destroy(Flow* f);
  void handle_syn(uint64_t now, const Endpoint& from, const Endpoint& to, const Segment& s);
  void send_rst_reply(const Endpoint& local, const Endpoint& remote, const Segment& s);

  Tunables t_;
  DatagramSink* sink_;
  uint32_t local_ip_;
  Rng rng_;
  Counters counters_;
  uint64_t last_now_ = 0;  // latest time seen, for work done outside a timed call
  FlowEnv env_;
  FlowTable table_;
  std::unordered_map<uint16_t, Listener> listeners_;
  EventHandler on_event_;
  double rst_tokens_ = 0;
  uint64_t rst_refill_ns_ = 0;
  using TimerEntry = std::pair<uint64_t, FlowId>;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timers_;
};

}  // namespace transport
}  // namespace machnet
