// The daemon's data path, run on the EAL main thread: polls queue 0, every
// unleased queue and steering ring 0; steers frames that belong to a lease
// holder into its pool and ring; answers ARP and ICMP echo; sends ICMP port
// unreachable; reassembles IPv4 fragments and steers the datagram.
//
// The daemon never keeps an mbuf of pool q (q > 0) beyond one poll: replies
// go out on TX queue 0 from pool 0, and fragments are copied into pool 0
// before they wait in the reassembly table. That keeps the sweep invariant
// (pool q is held only by q's owner, ring q or RX queue q) true.
#pragma once

#include <rte_ip_frag.h>

#include <cstdint>
#include <string>

#include "daemon/daemon.h"

namespace machnet::daemon {

class Dataplane {
 public:
  explicit Dataplane(Daemon* d) : d_(d) {}
  ~Dataplane();
  bool init(std::string* err);

  // One pass over the queues and ring 0. Returns the frames handled.
  unsigned poll();
  // Housekeeping, called about every millisecond: heartbeat, reassembly
  // timeouts, link state (gratuitous ARP when it comes up), gateway ARP.
  void tick(uint64_t now_ns);

  // Drains ring q (reclaim); returns the mbufs freed.
  unsigned drain_ring(uint16_t q);

 private:
  void handle(rte_mbuf* m);
  bool steer(rte_mbuf* m, uint16_t target);
  void handle_arp(rte_mbuf* m, uint16_t op, const uint8_t* sha, uint32_t spa, uint32_t tpa);
  void handle_echo(rte_mbuf* m, uint16_t l3, uint16_t l4, uint16_t ip_len, uint32_t dst);
  void handle_fragment(rte_mbuf* m, uint16_t l3, uint16_t l4);
  void handle_reassembled(rte_mbuf* m);
  void port_unreachable(const uint8_t* eth_src, const uint8_t* ip, size_t avail);
  void learn(uint32_t ip, const uint8_t* mac, bool create);
  void send_arp(uint16_t op, const uint8_t* eth_dst, const uint8_t* tha, uint32_t tpa);
  void drop(rte_mbuf* m, DropReason r);
  void tx(rte_mbuf* m);
  void tx_flush();
  // Returns m itself when it is a single segment of pool 0, else a pool-0
  // copy (m is freed); nullptr when pool 0 is empty (m is freed).
  rte_mbuf* to_pool0(rte_mbuf* m);

  Daemon* d_;
  rte_ip_frag_tbl* frag_tbl_ = nullptr;
  rte_ip_frag_death_row death_row_{};
  static constexpr unsigned kTxMax = 64;
  rte_mbuf* txbuf_[kTxMax];
  unsigned ntx_ = 0;
  uint64_t icmp_tokens_ = 50;
  uint64_t icmp_refill_ns_ = 0;
  bool link_up_ = false;
  uint64_t last_link_check_ns_ = 0;
  uint64_t last_gw_arp_ns_ = 0;
  uint16_t ip_id_ = 1;
};

}  // namespace machnet::daemon
