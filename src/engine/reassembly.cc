#include "engine/reassembly.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ip.h>
#include <rte_lcore.h>

#include "common/drop_reason.h"

namespace machnet::engine {

Reassembly::~Reassembly() {
  if (table_ == nullptr) return;
  rte_ip_frag_table_destroy(table_);
  rte_ip_frag_free_death_row(&death_row_, 0);
}

bool Reassembly::init(uint32_t max_flows, uint32_t timeout_ms, uint64_t* drops, std::string* err) {
  drops_ = drops;
  const uint32_t bucket_entries = 8;
  uint32_t buckets = (max_flows + bucket_entries - 1) / bucket_entries;
  uint64_t max_cycles = rte_get_tsc_hz() / 1000 * timeout_ms;
  table_ = rte_ip_frag_table_create(buckets, bucket_entries, buckets * bucket_entries, max_cycles,
                                    static_cast<int>(rte_socket_id()));
  if (table_ == nullptr) {
    *err = std::string("cannot create the IPv4 reassembly table: ") + rte_strerror(rte_errno);
    return false;
  }
  return true;
}

rte_mbuf* Reassembly::add(rte_mbuf* m, uint16_t l3, uint16_t l4) {
  m->l2_len = l3;
  m->l3_len = static_cast<uint16_t>(l4 - l3);
  // The table keys on (src, dst, id, proto).
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l3);
  uint32_t before = death_row_.cnt;
  rte_mbuf* whole =
      rte_ipv4_frag_reassemble_packet(table_, &death_row_, m, rte_get_tsc_cycles(), ip);
  drops_[static_cast<size_t>(DropReason::kBadFragment)] += death_row_.cnt - before;
  return whole;
}

void Reassembly::expire() {
  uint32_t before = death_row_.cnt;
  rte_ip_frag_table_del_expired_entries(table_, &death_row_, rte_get_tsc_cycles());
  drops_[static_cast<size_t>(DropReason::kFragTimeout)] += death_row_.cnt - before;
  free_dropped();
}

void fix_reassembled_ip_checksum(rte_mbuf* m, uint16_t l3) {
  if (m->data_len < l3 + sizeof(rte_ipv4_hdr)) return;
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l3);
  size_t ihl = rte_ipv4_hdr_len(ip);
  if (ip->hdr_checksum != 0 || ihl < sizeof(rte_ipv4_hdr) || l3 + ihl > m->data_len) return;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

}  // namespace machnet::engine
