// The daemon's data path, run on the EAL main thread: polls queue 0, every
// unleased queue and steering ring 0; steers frames that belong to a lease
// holder into its pool and ring; answers ARP and ICMP echo; sends ICMP port
// unreachable; reassembles IPv4 fragments and steers the datagram. The
// protocol work is the engine's own (src/engine: responder, reassembly, TX
// batch, steering copies); what is the daemon's is the neighbour table in
// shared memory and the pool discipline below.
//
// The daemon never keeps an mbuf of pool q (q > 0) beyond one poll: replies
// go out on TX queue 0 from pool 0, and fragments are copied into pool 0
// before they wait in the reassembly table. That keeps the sweep invariant
// (pool q is held only by q's owner, ring q or RX queue q) true.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>
#include <string>

#include "daemon/daemon.h"
#include "engine/reassembly.h"
#include "engine/responder.h"
#include "engine/rx_parse.h"
#include "engine/tx_batch.h"

namespace machnet::daemon {

class Dataplane {
 public:
  explicit Dataplane(Daemon* d) : d_(d) {}
  bool init(std::string* err);

  // One pass over the queues and ring 0. Returns the frames handled.
  unsigned poll();
  // False (counted as ring_busy) while pool 0's ring has an operation in
  // flight that does not end within a bounded wait: a lease killed inside
  // one. poll() and tick() then leave pool 0 alone until the reclaim
  // repairs it.
  bool pool0_quiet();
  // Polls RX queue q for its parked holder and wakes it (see dataplane.cc).
  unsigned poll_parked(uint16_t q);
  // Whether the daemon polls RX queue q (q > 0) this round.
  bool polls(uint16_t q) const;
  // Wakes the holder of q if it is parked (one eventfd write).
  void wake_parked(uint16_t q);
  // Whether lease q's fork-shared ports got datagrams on their rings since
  // q was last woken for them (see dataplane.cc).
  bool shared_ready(uint16_t q);
  // True when the last poll() saw a holder whose threads may sleep (then
  // cleared): once woken they must get the CPU at once.
  bool take_polite() {
    bool p = polite_;
    polite_ = false;
    return p;
  }
  // True when the last poll() left a holder parked (then cleared): its
  // wake-up waits for the next poll.
  bool take_parked() {
    bool p = parked_;
    parked_ = false;
    return p;
  }
  // Housekeeping, called about every millisecond: heartbeat, reassembly
  // timeouts, link state (gratuitous ARP when it comes up), gateway ARP.
  void tick(uint64_t now_ns);

  // Drains ring q (reclaim); returns the mbufs freed.
  unsigned drain_ring(uint16_t q);
  // Frees the frames still deferred (shutdown: before the pools go).
  void drop_deferred();
  size_t deferred() const { return deferred_n_; }

 private:
  // Handlers of engine::receive(), one per kind of frame.
  friend void engine::receive<Dataplane>(Dataplane&, rte_mbuf*, uint32_t, uint8_t);
  void rx_drop(rte_mbuf* m, DropReason r) { drop(m, r); }
  void rx_arp(rte_mbuf* m, const wire::ParsedFrame& pf);
  void rx_echo(rte_mbuf* m, const wire::ParsedFrame& pf);
  void rx_fragment(rte_mbuf* m, const wire::ParsedFrame& pf);
  void rx_udp(rte_mbuf* m, const wire::ParsedFrame& pf);
  void rx_unreachable(rte_mbuf* m, const wire::ParsedFrame& pf);

  void handle(rte_mbuf* m);
  // Queue q (not the daemon's) is leased and its owner polls it.
  bool active(uint16_t q) const;
  // The queue whose active owner holds UDP port `port` (for a group's port:
  // the member the flow hash `hash` picks, mn_flow_hash), or 0.
  uint16_t owner_of(uint16_t port, uint32_t hash) const;
  void steer(rte_mbuf* m, uint16_t target);
  void steer_shared(rte_mbuf* m, uint16_t group);
  // A copy of m onto fork-shared ring `ring` (marker: the ring operation's
  // <queue>, see MN_RING_OP_SERVICE_RING).
  void steer_ring(rte_mbuf* m, rte_ring* ring, uint16_t marker);
  bool steer_service_syn(rte_mbuf* m, const wire::ParsedFrame& pf);
  // Steers m to the owner of UDP port `port` (see owner_of); false (m
  // untouched) when nobody holds it.
  bool steer_to_owner(rte_mbuf* m, uint16_t port, uint32_t hash);
  void handle_reassembled(rte_mbuf* m);
  void port_unreachable(const rte_mbuf* m, uint16_t l3);
  void learn(uint32_t ip, const uint8_t* mac, bool create);
  void send_arp(uint16_t op, const wire::MacAddr& eth_dst, const wire::MacAddr& tha, uint32_t tpa);
  void drop(rte_mbuf* m, DropReason r);
  // Returns m itself when it is a single segment of pool 0, else a pool-0
  // copy (m is freed); nullptr when pool 0 is empty (m is freed).
  rte_mbuf* to_pool0(rte_mbuf* m);

  // Where a steered frame goes: lease `lease`'s pool and ring (lease != 0),
  // or fork-shared ring `ring` through the shared pool; `marker` names the
  // target in ring-operation records.
  struct SteerTo {
    uint16_t lease;
    uint16_t marker;
    rte_ring* ring;
  };
  enum class Attempt { kDone, kBusy };
  Attempt try_deliver(rte_mbuf* m, const SteerTo& to, unsigned spins);
  void deliver(rte_mbuf* m, const SteerTo& to);
  // Frames that found another process inside an operation on their
  // target's pool or ring (a holder preempted there; or killed, until its
  // reclaim repairs the gap): kept in pool 0, retried every round in arrival
  // order per target, dropped (counted) after kDeferNs or beyond kDeferMax.
  struct Deferred {
    rte_mbuf* m;
    SteerTo to;
    uint64_t since_ns;
  };
  static constexpr size_t kDeferMax = 256;
  static constexpr uint64_t kDeferNs = 1'000'000'000;
  bool waiting(const SteerTo& to) const;
  void defer(rte_mbuf* m, const SteerTo& to);
  void retry_deferred();
  std::array<Deferred, kDeferMax> deferred_{};
  size_t deferred_n_ = 0;

  Daemon* d_;
  engine::Reassembly reassembly_;
  engine::Responder responder_;
  engine::TxBatch tx_;
  bool link_up_ = false;
  bool polite_ = false;
  bool parked_ = false;
  // Per queue: the shared rings' arrivals (sum of producer tails) when its
  // holder was last woken for them.
  std::array<uint64_t, MN_SHM_MAX_QUEUES> shared_woken_{};
  uint64_t last_link_check_ns_ = 0;
  uint64_t last_gw_arp_ns_ = 0;
};

}  // namespace machnet::daemon
