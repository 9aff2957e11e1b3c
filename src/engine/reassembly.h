// IPv4 reassembly for the engine and machnetd: the table is net::FragTable
// (pure logic, Linux's rules, bounded by frag.max_flows, frag.max_mbufs,
// frag.max_bytes and frag.timeout_ms, all preallocated); this side turns
// mbufs into fragments and a completed datagram into one mbuf chain. Every
// fragment it does not deliver is counted by reason (bad_fragment,
// frag_timeout, frag_duplicate, frag_overlap, frag_no_room, too_big).
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <memory>
#include <string>

#include "engine/host_settings.h"
#include "net/ip_reassembly.h"

namespace machnet::engine {

class Reassembly : public net::FragEvents {
 public:
  Reassembly() = default;
  ~Reassembly() override;
  Reassembly(const Reassembly&) = delete;
  Reassembly& operator=(const Reassembly&) = delete;

  // The frag.* keys of `s`. drops: the owner's per-DropReason counters.
  bool init(const HostSettings& s, uint64_t* drops, std::string* err);
  bool ready() const { return table_ != nullptr; }

  // A fragment whose IPv4 header is at offset l3 and payload at l4 of its
  // first segment (a frame the parser accepted). Returns the whole datagram
  // once its last piece is in: a chain with the Ethernet and IPv4 headers of
  // the first fragment in the first segment, total_length covering the
  // datagram, no fragment bits, the header checksum valid, l2_len = l3,
  // l3_len = the header length. nullptr while it waits or when dropped.
  rte_mbuf* add(rte_mbuf* m, uint16_t l3, uint16_t l4);

  // Drops datagrams older than frag.timeout_ms (about every millisecond).
  void expire();

  size_t datagrams() const { return table_ ? table_->datagrams() : 0; }
  size_t mbufs() const { return table_ ? table_->fragments() : 0; }

  // net::FragEvents: frees the mbuf (and counts the drop).
  void drop(void* buf, DropReason reason) override;
  void release(void* buf) override;

 private:
  rte_mbuf* build(uint16_t l3);

  std::unique_ptr<net::FragTable> table_;
  uint64_t* drops_ = nullptr;
};

// A header whose checksum field is zero gets it computed (a datagram an
// older machnetd reassembled); one whose checksum is set is left alone.
void fix_reassembled_ip_checksum(rte_mbuf* m, uint16_t l3);

}  // namespace machnet::engine
