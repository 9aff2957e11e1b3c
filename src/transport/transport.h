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
#include "transport/peer_probe.h"
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
  // A listener on local UDP port `port` (the native message API's model).
  Status listen(uint16_t port, bool stream_mode = false);
  Status unlisten(uint16_t port);
  // Completes asynchronously: state() goes kSynSent -> kEstablished or kFailed.
  // Messages sent before that are queued and leave with the handshake ACK.
  Status connect(uint64_t now_ns, uint16_t local_port, const Endpoint& remote, FlowId* out,
                 bool stream_mode = false);
  Status accept(uint16_t port, FlowId* out);

  // --- stream services (stream sockets; docs/PROTOCOL.md 2.1) ---
  // A stream listener for service port `service_port` (the TCP port the
  // program listens on). Service SYNs arrive on the rendezvous port
  // (Tunables::rendezvous_port); the flows it accepts use local UDP port
  // `local_port` (the SYN-ACK comes from there, and so does everything
  // after). `backlog` 0 means Tunables::listen_backlog.
  Status listen_service(uint16_t service_port, uint16_t local_port, uint32_t backlog = 0);
  Status unlisten_service(uint16_t service_port);
  Status accept_service(uint16_t service_port, FlowId* out);
  // Options that flows accepted from now on start with (Linux: accepted
  // sockets inherit the listener's options).
  Status set_listen_options(uint16_t port, const FlowOptions& o);
  Status set_service_options(uint16_t service_port, const FlowOptions& o);
  // Stream connect to (remote.ip, service port remote.port). Completes like
  // connect(), or fails with kNotMachnet (the peer refused the probe by ICMP
  // or did not answer within probe_timeout_ns) or kNoService (a machnet host
  // without that service): the socket layer then uses kernel TCP
  // (falls_back_to_kernel()). Returns kNotMachnet at once, creating nothing,
  // when the peer is remembered as plain (peer_verdict). `opts` nullptr:
  // default_flow_options().
  Status connect_service(uint64_t now, uint16_t local_port, const Endpoint& remote, FlowId* out,
                         const FlowOptions* opts = nullptr);
  // What the per-peer cache says about a connect to (ip, service_port) now;
  // kPlain / kNoService: connect_service would return kNotMachnet.
  PeerVerdict peer_verdict(uint64_t now, uint32_t ip, uint16_t service_port) const {
    return peers_.lookup(now, ip, service_port);
  }
  bool peer_known_plain(uint64_t now, uint32_t ip, uint16_t service_port) const {
    PeerVerdict v = peer_verdict(now, ip, service_port);
    return v == PeerVerdict::kPlain || v == PeerVerdict::kNoService;
  }
  void forget_peer(uint32_t ip) { peers_.forget(ip); }
  // Who tells whether kernel TCP can reach a host (null: assume it can).
  // A probe that goes unanswered to a host it cannot reach goes on as an
  // ordinary connect instead of falling back (probes_no_route).
  void set_kernel_routes(const KernelRoutes* r) { env_.routes = r; }

  // --- per-flow options (socket options) ---
  FlowOptions default_flow_options() const;
  Status set_flow_options(uint64_t now, FlowId id, const FlowOptions& o);
  Status get_flow_options(FlowId id, FlowOptions* o) const;
  // Graceful: queued data is delivered, then FIN. The handle is released; the
  // flow finishes (and lingers in TIME_WAIT) on its own.
  Status close(uint64_t now_ns, FlowId id);
  // Half close: FIN after queued data; receiving continues.
  Status shutdown_send(uint64_t now_ns, FlowId id);
  // RST, drop everything, release the handle.
  Status abort(uint64_t now_ns, FlowId id);
  // The process is exiting: resend flow `id`'s unacknowledged data and FIN
  // at the next poll() and restart its back-off (released flows too). False
  // when nothing is outstanding (or no such flow).
  bool expedite(uint64_t now_ns, FlowId id);

  // --- moving a flow to another process (docs/PROTOCOL.md, "Moving a flow
  // to another process") ---
  // Stops flow `id` (before a fork, so the child's copy is exact): until
  // thaw/retire, segments for it are dropped without any answer (counted
  // rx_drop_frozen), its timers do not fire and nothing is sent for it; the
  // data and close calls on it return kAgain. kInvalidArgument for an
  // unknown or released id (or a server flow not accepted yet). Idempotent.
  Status freeze(FlowId id);
  bool frozen(FlowId id) const;
  // Resumes a frozen flow: its timers are filed again and, because segments
  // were dropped while it was frozen, what is unacknowledged is resent at
  // once and an ACK goes out. kInvalidArgument unless `id` is frozen (and
  // not retired).
  Status thaw(uint64_t now_ns, FlowId id);
  // The frozen flow now lives in another process: the handle is released
  // and the flow stays as a silent tombstone (segments for its id dropped,
  // counted rx_drop_frozen: no RST, no timers, nothing sent) until
  // now + hold_ns, then it is destroyed without sending anything (hold_ns 0:
  // at once). kInvalidArgument unless `id` is frozen (and not retired).
  Status retire(uint64_t now_ns, FlowId id, uint64_t hold_ns);
  // Read access to a flow (the snapshot side of adopt): nullptr if unknown.
  const Flow* find_flow(FlowId id) const { return table_.find(id); }
  // Imports `snapshot`, a flow of ANOTHER Transport instance (the fork-time
  // copy of the parent's: same binary, same tunables, same local IP), as a
  // flow of this transport with the same FlowId, on local UDP port
  // `local_port`. Only a flow past the handshake (Flow::established_like():
  // ESTABLISHED, FIN_WAIT, CLOSE_WAIT, CLOSING, TIME_WAIT) is accepted, and
  // only with tunables that bound its state the same way; else
  // kInvalidArgument. kAddressInUse if the id is taken here, kTooManyFlows
  // if the table is full. The new flow is accepted (an application handle),
  // not frozen, and announces the move: its segments carry kFlagMigrated
  // until a valid segment from the peer arrives at the new port. It sends an
  // ACK and resends everything unacknowledged at once. *out = the id.
  Status adopt(uint64_t now_ns, const Flow& snapshot, uint16_t local_port, FlowId* out);

  // --- data ---
  // Message mode: whole message or kAgain (send buffer full: back-pressure).
  Status send_message(uint64_t now_ns, FlowId id, const void* data, size_t len);
  // Message mode: moves the next complete message into *out (zero copy).
  Status recv_message(uint64_t now_ns, FlowId id, std::vector<uint8_t>* out);
  // Stream mode: accepts what fits, *accepted bytes.
  Status send_stream(uint64_t now_ns, FlowId id, const void* data, size_t len, size_t* accepted);
  Status recv_stream(uint64_t now_ns, FlowId id, void* buf, size_t cap, size_t* got);
  // MSG_PEEK: what recv_stream would return, left in place.
  Status peek_stream(FlowId id, void* buf, size_t cap, size_t* got) const;
  size_t readable_bytes(FlowId id) const;  // FIONREAD
  size_t unacked_bytes(FlowId id) const;   // SIOCOUTQ (queued, not acknowledged)
  size_t unsent_bytes(FlowId id) const;    // SIOCOUTQNSD (queued, never sent)

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
  // listener gets a connection to accept (flow == 0, port set; kEvService is
  // added for a service listener). Runs inside the transport call that caused
  // it: it must not call back into the transport.
  using EventHandler = std::function<void(FlowId flow, uint16_t listen_port, uint32_t events)>;
  void set_event_handler(EventHandler h) { on_event_ = std::move(h); }
  uint32_t events(FlowId id) const;

  // --- introspection ---
  bool flow_stats(FlowId id, FlowStats* out) const;
  // The flow's local and remote endpoints; false for an unknown id.
  bool endpoints(FlowId id, Endpoint* local, Endpoint* remote) const;
  FlowState state(FlowId id) const;
  FlowError error(FlowId id) const;
  bool readable(FlowId id) const;
  // Flow::activity(): 0 for an unknown id.
  uint64_t activity(FlowId id) const;
  size_t send_space(FlowId id) const;
  const Counters& counters() const { return counters_; }
  size_t flow_count() const { return table_.size(); }
  size_t half_open_count() const { return table_.half_open(); }
  size_t peer_cache_size() const { return peers_.size(); }
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
    uint32_t max_backlog = 0;
    uint16_t local_port = 0;  // service listener: the accepted flows' UDP port
    bool has_options = false;
    FlowOptions options;
  };

  Flow* app_flow(FlowId id) const;
  // app_flow for calls that act on the flow: nullptr with *err kNoSuchFlow
  // (unknown or released) or kAgain (frozen).
  Flow* live_flow(FlowId id, Status* err) const;
  // When the flow's timer heap entry is due: a frozen flow has none, a
  // retired one its destruction.
  static uint64_t deadline_of(const Flow* f) {
    if (f->frozen) return f->retired ? f->retire_deadline : kNever;
    return f->next_deadline();
  }
  // A segment from the peer's IP but another UDP port, with kFlagMigrated.
  void on_migration(uint64_t now, Flow* f, const Endpoint& from, const Segment& s);
  // Reports readiness changes, queues accepted flows, destroys finished ones
  // and files the flow's next deadline (not before `not_before`).
  void after_event(Flow* f, uint64_t not_before = 0);
  void destroy(Flow* f);
  void receive(uint64_t now, const Endpoint& from, const Endpoint& to, const uint8_t* data,
               size_t len);
  void handle_syn(uint64_t now, const Endpoint& from, const Endpoint& to, const Segment& s);
  Listener* syn_listener(const Endpoint& from, const Endpoint& to, const Segment& s,
                         uint16_t* service);
  bool make_half_open_room(uint64_t now);
  // Raises the high-water marks after a flow was created.
  void note_peaks() {
    if (table_.half_open() > counters_.half_open_peak)
      counters_.half_open_peak = table_.half_open();
    if (table_.size() > counters_.flows_peak) counters_.flows_peak = table_.size();
  }
  using ListenerMap = std::unordered_map<uint16_t, Listener>;
  Listener* listener_of(const Flow* f);
  Status accept_from(Listener* l, FlowId* out);
  // The body of unlisten / unlisten_service: removes map[key] and resets the
  // established flows nobody will ever accept.
  Status remove_listener(ListenerMap* map, uint16_t key);
  // The body of set_listen_options / set_service_options.
  Status set_options(ListenerMap* map, uint16_t key, const FlowOptions& o);
  void send_rst_reply(const Endpoint& local, const Endpoint& remote, const Segment& s,
                      uint8_t flags = 0);
  void on_probe_news(Flow* f, Flow::ProbeNews n);
  void settle_probes(uint32_t ip, uint16_t service, FallbackReason reason);

  Tunables t_;
  DatagramSink* sink_;
  uint32_t local_ip_;
  Rng rng_;
  Counters counters_;
  uint64_t last_now_ = 0;  // latest time seen, for work done outside a timed call
  FlowEnv env_;
  FlowTable table_;
  ListenerMap listeners_;  // by UDP port
  ListenerMap services_;   // by service port
  PeerCache peers_;
  EventHandler on_event_;
  double rst_tokens_ = 0;
  uint64_t rst_refill_ns_ = 0;
  using TimerEntry = std::pair<uint64_t, FlowId>;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timers_;
};

}  // namespace transport
}  // namespace machnet
