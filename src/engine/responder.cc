#include "engine/responder.h"

#include <arpa/inet.h>

#include <cstring>

#include "wire/build.h"

namespace machnet::engine {

ArpVerdict arp_verdict(const wire::ParsedFrame& pf, uint32_t our_ip) {
  ArpVerdict v;
  v.addressed = pf.arp_tpa == our_ip && pf.arp_spa != our_ip;
  // Addressed to us: the sender will talk to us (or answers our request),
  // so it is worth an entry, as Linux does. Gratuitous ARP and broadcast
  // replies only refresh what is known, so nobody can fill a table by shouting.
  v.learn = pf.arp_spa != 0 && pf.arp_spa != our_ip;
  v.reply = v.addressed && pf.arp_op == wire::kArpOpRequest;
  return v;
}

void Responder::init(rte_mempool* pool, uint16_t port_id, const wire::MacAddr& mac, uint32_t ip,
                     bool pad_frames) {
  pool_ = pool;
  port_id_ = port_id;
  mac_ = mac;
  ip_ = ip;
  pad_ = pad_frames;
}

rte_mbuf* Responder::alloc() {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m != nullptr) m->port = port_id_;
  return m;
}

rte_mbuf* Responder::arp(uint16_t op, const wire::MacAddr& eth_dst, const wire::MacAddr& tha,
                         uint32_t tpa) {
  rte_mbuf* m = alloc();
  if (m == nullptr) return nullptr;
  constexpr uint16_t kMinFrame = 60;
  uint16_t len = pad_ ? kMinFrame : static_cast<uint16_t>(wire::kArpFrameLen);
  auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
  std::memset(p, 0, len);
  wire::build_arp(p, op, eth_dst, mac_, ip_, tha, tpa);
  return m;
}

bool Responder::echo_reply(rte_mbuf* m, const wire::ParsedFrame& pf) {
  uint32_t len = static_cast<uint32_t>(pf.l3_offset) + pf.ip_total_len;
  if (m->nb_segs != 1 || m->data_len < len) return false;
  wire::icmp_echo_request_to_reply(rte_pktmbuf_mtod(m, uint8_t*), pf.l3_offset, pf.l4_offset,
                                   pf.ip_total_len);
  // Drop Ethernet padding so the reply is exactly the IP datagram.
  if (m->pkt_len > len) rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - len));
  m->ol_flags = 0;
  return true;
}

rte_mbuf* Responder::port_unreachable(const uint8_t* frame, uint32_t first_len, uint16_t l3,
                                      uint64_t now) {
  if (first_len < l3 + sizeof(wire::Ipv4Hdr)) return nullptr;
  const uint8_t* ip = frame + l3;
  uint32_t dst, src;
  std::memcpy(&dst, ip + 16, 4);
  std::memcpy(&src, ip + 12, 4);
  if (ntohl(dst) != ip_) return nullptr;
  const uint64_t per_token = 1'000'000'000ull / kIcmpTokensPerSec;
  if (now - refill_ns_ >= per_token) {
    tokens_ += (now - refill_ns_) / per_token;
    if (tokens_ > kIcmpBurst) tokens_ = kIcmpBurst;
    refill_ns_ = now;
  }
  if (tokens_ == 0) {
    rate_limited_++;
    return nullptr;
  }
  rte_mbuf* r = alloc();
  if (r == nullptr) return nullptr;
  auto* out = reinterpret_cast<uint8_t*>(
      rte_pktmbuf_append(r, static_cast<uint16_t>(wire::kUdpHeadersLen + wire::kIcmpQuoteMax)));
  wire::MacAddr to;
  std::memcpy(to.data(), frame + 6, 6);
  size_t len = out == nullptr ? 0
                              : wire::build_icmp_unreachable(out, 3, mac_, to, ip_, ntohl(src), ip,
                                                             first_len - l3);
  if (len == 0) {
    rte_pktmbuf_free(r);
    return nullptr;
  }
  rte_pktmbuf_trim(r, static_cast<uint16_t>(r->pkt_len - len));
  tokens_--;
  return r;
}

}  // namespace machnet::engine
