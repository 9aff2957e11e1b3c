// IPv4 reassembly over DPDK's ip_frag table, for the engine and machnetd.
// Bounded: at most frag.max_flows datagrams in flight, each for at most
// frag.timeout_ms; the table is the only place fragments wait, so endless
// fragments cannot exhaust memory. Every fragment DPDK gives up on
// (overlapping, too many, inconsistent, table full) is counted as
// bad_fragment, every datagram that expires as frag_timeout.
#pragma once

#include <rte_ip_frag.h>
#include <rte_mbuf.h>

#include <cstdint>
#include <string>

namespace machnet::engine {

class Reassembly {
 public:
  Reassembly() = default;
  ~Reassembly();
  Reassembly(const Reassembly&) = delete;
  Reassembly& operator=(const Reassembly&) = delete;

  // drops: the owner's per-DropReason counters. False and *err when DPDK
  // cannot allocate the table.
  bool init(uint32_t max_flows, uint32_t timeout_ms, uint64_t* drops, std::string* err);
  bool ready() const { return table_ != nullptr; }

  // A fragment whose IPv4 header is at offset l3 and payload at l4 of its
  // first segment. Returns the whole datagram once its last fragment is in
  // (a chain: Ethernet and IPv4 headers of the first fragment in the first
  // segment, total_length and fragment field rewritten by DPDK, header
  // checksum zero, l2_len = l3), or nullptr while it waits or was dropped.
  rte_mbuf* add(rte_mbuf* m, uint16_t l3, uint16_t l4);

  // Expires datagrams older than the timeout; frees what was dropped.
  void expire();
  // Frees the fragments dropped since the last call (once per burst).
  void free_dropped() {
    if (death_row_.cnt != 0) rte_ip_frag_free_death_row(&death_row_, 0);
  }

 private:
  rte_ip_frag_tbl* table_ = nullptr;
  rte_ip_frag_death_row death_row_{};
  uint64_t* drops_ = nullptr;
};

// The IPv4 header checksum of a datagram DPDK reassembled (it leaves the
// field zero); a header whose checksum is set is left alone.
void fix_reassembled_ip_checksum(rte_mbuf* m, uint16_t l3);

}  // namespace machnet::engine
