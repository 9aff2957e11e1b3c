#include "engine/reassembly.h"

#include <rte_cycles.h>
#include <rte_ip.h>

#include "common/drop_reason.h"

namespace machnet::engine {

Reassembly::~Reassembly() {
  if (table_) table_->clear();
}

bool Reassembly::init(const HostSettings& s, uint64_t* drops, std::string* err) {
  drops_ = drops;
  net::FragLimits l;
  l.max_datagrams = s.frag_max_flows;
  l.max_fragments = s.frag_max_mbufs;
  l.max_bytes = s.frag_max_bytes;
  l.timeout = rte_get_tsc_hz() / 1000 * s.frag_timeout_ms;
  if (l.max_datagrams == 0 || l.max_fragments == 0) {
    *err = "frag.max_flows and frag.max_mbufs must be > 0";
    return false;
  }
  table_ = std::make_unique<net::FragTable>(l, this);
  return true;
}

void Reassembly::drop(void* buf, DropReason reason) {
  drops_[static_cast<size_t>(reason)]++;
  rte_pktmbuf_free(static_cast<rte_mbuf*>(buf));
}

void Reassembly::release(void* buf) {
  rte_pktmbuf_free(static_cast<rte_mbuf*>(buf));
}

rte_mbuf* Reassembly::add(rte_mbuf* m, uint16_t l3, uint16_t l4) {
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, l3);
  uint16_t hl = static_cast<uint16_t>(l4 - l3);
  uint16_t total = rte_be_to_cpu_16(ip->total_length);
  uint16_t frag = rte_be_to_cpu_16(ip->fragment_offset);
  net::FragKey key;
  key.src = ip->src_addr;
  key.dst = ip->dst_addr;
  key.id = ip->packet_id;
  key.proto = ip->next_proto_id;
  net::FragIn in;
  in.offset = uint32_t{static_cast<uint16_t>(frag & RTE_IPV4_HDR_OFFSET_MASK)} * 8;
  in.more = (frag & RTE_IPV4_HDR_MF_FLAG) != 0;
  in.len = total > hl ? total - hl : 0u;
  in.header_len = hl;
  in.cost = m->pkt_len;
  in.buf = m;
  m->l2_len = l3;
  m->l3_len = hl;
  if (table_->add(key, in, rte_get_tsc_cycles()) != net::FragResult::kComplete) return nullptr;
  return build(l3);
}

rte_mbuf* Reassembly::build(uint16_t l3) {
  const net::FragPiece* p = table_->completed();
  size_t n = table_->completed_count();
  auto* head = static_cast<rte_mbuf*>(p[0].buf);
  rte_mbuf* last = nullptr;
  uint32_t segs = 0;
  bool ok = true;
  for (size_t i = 0; i < n; i++) {
    auto* m = static_cast<rte_mbuf*>(p[i].buf);
    // Keep exactly the piece's bytes: headers off every fragment but the
    // first, Ethernet padding and a non-last fragment's odd tail off all.
    uint32_t keep = p[i].len + (i == 0 ? static_cast<uint32_t>(m->l2_len + m->l3_len) : 0u);
    if (i != 0 && rte_pktmbuf_adj(m, static_cast<uint16_t>(m->l2_len + m->l3_len)) == nullptr)
      ok = false;
    if (ok && m->pkt_len > keep &&
        rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - keep)) != 0)
      ok = false;  // the excess is not all in the last segment
    if (ok && m->pkt_len != keep) ok = false;
    segs += m->nb_segs;
    if (i != 0) {
      last->next = m;
      head->pkt_len += m->pkt_len;
    }
    last = rte_pktmbuf_lastseg(m);
  }
  if (!ok || segs > RTE_MBUF_MAX_NB_SEGS) {
    drops_[static_cast<size_t>(DropReason::kBadFragment)] += n;
    rte_pktmbuf_free(head);
    return nullptr;
  }
  head->nb_segs = static_cast<uint16_t>(segs);
  auto* ip = rte_pktmbuf_mtod_offset(head, rte_ipv4_hdr*, l3);
  ip->total_length =
      rte_cpu_to_be_16(static_cast<uint16_t>(head->l3_len + table_->completed_len()));
  ip->fragment_offset = 0;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  head->l2_len = l3;
  return head;
}

void Reassembly::expire() {
  table_->expire(rte_get_tsc_cycles());
}

void fix_reassembled_ip_checksum(rte_mbuf* m, uint16_t l3) {
  if (m->data_len < l3 + sizeof(rte_ipv4_hdr)) return;
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l3);
  size_t ihl = rte_ipv4_hdr_len(ip);
  if (ip->hdr_checksum != 0 || ihl < sizeof(rte_ipv4_hdr) || l3 + ihl > m->data_len) return;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

}  // namespace machnet::engine
