#include "wire/build.h"

#include <cstring>

#include "wire/checksum.h"
#include "wire/parse.h"

namespace machnet::wire {

namespace {

// Output buffers may sit at any offset in an mbuf: build headers on the stack
// and copy them out, so no store is misaligned.
template <typename T>
void store(uint8_t* p, const T& v) {
  std::memcpy(p, &v, sizeof(T));
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

uint16_t fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

constexpr uint8_t kReplyTtl = 64;

}  // namespace

size_t build_arp(uint8_t* buf, uint16_t op, const MacAddr& eth_dst, const MacAddr& sha,
                 uint32_t spa_host, const MacAddr& tha, uint32_t tpa_host) {
  EthHdr eth;
  eth.dst = eth_dst;
  eth.src = sha;
  eth.ethertype = htons(kEtherTypeArp);
  ArpHdr arp;
  arp.htype = htons(1);
  arp.ptype = htons(kEtherTypeIpv4);
  arp.hlen = 6;
  arp.plen = 4;
  arp.op = htons(op);
  arp.sha = sha;
  arp.spa = htonl(spa_host);
  arp.tha = tha;
  arp.tpa = htonl(tpa_host);
  store(buf, eth);
  store(buf + sizeof(EthHdr), arp);
  return kArpFrameLen;
}

size_t build_udp_headers(uint8_t* buf, const UdpFlow& flow, uint16_t payload_len, uint16_t ip_id,
                         uint8_t ttl, bool ip_csum_offload) {
  EthHdr eth;
  eth.dst = flow.dst_mac;
  eth.src = flow.src_mac;
  eth.ethertype = htons(kEtherTypeIpv4);
  // Lengths wrap for payload_len > kMaxUdpPayload: callers reject those first
  // (DropReason::kTooBig).
  const auto udp_len = static_cast<uint16_t>(sizeof(UdpHdr) + payload_len);
  Ipv4Hdr ip;
  ip.version_ihl = 0x45;
  ip.tos = 0;
  ip.total_length = htons(static_cast<uint16_t>(sizeof(Ipv4Hdr) + udp_len));
  ip.id = htons(ip_id);
  ip.frag_off = 0;
  ip.ttl = ttl;
  ip.protocol = kIpProtoUdp;
  ip.checksum = 0;
  ip.src = htonl(flow.src_ip);
  ip.dst = htonl(flow.dst_ip);
  if (!ip_csum_offload) ip.checksum = internet_checksum(&ip, sizeof(ip));
  UdpHdr udp;
  udp.src_port = htons(flow.src_port);
  udp.dst_port = htons(flow.dst_port);
  udp.length = htons(udp_len);
  udp.checksum = 0;
  store(buf, eth);
  store(buf + sizeof(EthHdr), ip);
  store(buf + sizeof(EthHdr) + sizeof(Ipv4Hdr), udp);
  return kUdpHeadersLen;
}

uint16_t udp_checksum(const Ipv4Hdr& ip, const UdpHdr& udp, const void* payload,
                      size_t payload_len) {
  ChecksumAccumulator acc;
  add_udp_pseudo_header(ip, ntohs(udp.length), &acc);
  UdpHdr h = udp;
  h.checksum = 0;
  acc.add(&h, sizeof(h));
  acc.add(payload, payload_len);
  const uint16_t c = acc.finish();
  // 0 on the wire means "no checksum"; a computed 0 is sent as its other
  // one's-complement representation.
  return c == 0 ? 0xffff : c;
}

uint16_t udp_pseudo_header_checksum(const Ipv4Hdr& ip, uint16_t udp_len) {
  ChecksumAccumulator acc;
  add_udp_pseudo_header(ip, udp_len, &acc);
  // finish() complements; the NIC wants the plain folded sum. Undo it.
  return static_cast<uint16_t>(~acc.finish());
}

void icmp_echo_request_to_reply(uint8_t* frame, uint16_t l3_offset, uint16_t l4_offset,
                                uint16_t ip_total_len) {
  EthHdr eth = load<EthHdr>(frame);
  const MacAddr mac = eth.dst;
  eth.dst = eth.src;
  eth.src = mac;
  store(frame, eth);

  // IPv4: swap addresses and start a fresh TTL, then recompute the header
  // checksum over the header (options included).
  uint8_t* l3 = frame + l3_offset;
  const size_t hl = static_cast<size_t>(l4_offset - l3_offset);
  Ipv4Hdr ip = load<Ipv4Hdr>(l3);
  const uint32_t a = ip.src;
  ip.src = ip.dst;
  ip.dst = a;
  ip.ttl = kReplyTtl;
  ip.checksum = 0;
  store(l3, ip);
  const uint16_t ip_csum = internet_checksum(l3, hl);
  std::memcpy(l3 + offsetof(Ipv4Hdr, checksum), &ip_csum, sizeof(ip_csum));

  // ICMP: only the type changes (8 -> 0), so update the checksum incrementally
  // (RFC 1624, eqn. 3) instead of summing a payload of up to 64 KiB again.
  uint8_t* l4 = frame + l4_offset;
  IcmpHdr icmp = load<IcmpHdr>(l4);
  const uint16_t old_word = static_cast<uint16_t>(icmp.type << 8 | icmp.code);
  icmp.type = kIcmpEchoReply;
  const uint16_t new_word = static_cast<uint16_t>(icmp.type << 8 | icmp.code);
  const uint64_t sum = static_cast<uint16_t>(~ntohs(icmp.checksum)) +
                       static_cast<uint16_t>(~old_word) + static_cast<uint64_t>(new_word);
  icmp.checksum = htons(static_cast<uint16_t>(~fold(sum)));
  store(l4, icmp);
  if (icmp.checksum == 0) {
    // RFC 1624's ones'-complement zero ambiguity: 0x0000 is right only if
    // the rest of the message does not sum to zero (an all-zero reply needs
    // 0xffff). Rare, so settle it with a full sum.
    const size_t icmp_len = ip_total_len - hl;
    std::memset(l4 + offsetof(IcmpHdr, checksum), 0, sizeof(uint16_t));
    const uint16_t c = internet_checksum(l4, icmp_len);
    std::memcpy(l4 + offsetof(IcmpHdr, checksum), &c, sizeof(c));
  }
}

size_t build_icmp_unreachable(uint8_t* buf, uint8_t code, const MacAddr& src_mac,
                              const MacAddr& dst_mac, uint32_t src_ip_host, uint32_t dst_ip_host,
                              const uint8_t* orig_ip, size_t orig_len) {
  if (orig_len < sizeof(Ipv4Hdr)) return 0;
  const size_t orig_hl = static_cast<size_t>(orig_ip[0] & 0x0f) * 4;
  if (orig_hl < sizeof(Ipv4Hdr) || orig_len < orig_hl + 8) return 0;
  const size_t quote = orig_len < kIcmpQuoteMax ? orig_len : kIcmpQuoteMax;

  EthHdr eth;
  eth.dst = dst_mac;
  eth.src = src_mac;
  eth.ethertype = htons(kEtherTypeIpv4);
  store(buf, eth);

  const size_t ip_len = sizeof(Ipv4Hdr) + sizeof(IcmpHdr) + quote;
  Ipv4Hdr ip{};
  ip.version_ihl = 0x45;
  ip.total_length = htons(static_cast<uint16_t>(ip_len));
  ip.ttl = kReplyTtl;
  ip.protocol = kIpProtoIcmp;
  ip.src = htonl(src_ip_host);
  ip.dst = htonl(dst_ip_host);
  uint8_t* l3 = buf + kEthHdrLen;
  store(l3, ip);
  const uint16_t ip_csum = internet_checksum(l3, sizeof(Ipv4Hdr));
  std::memcpy(l3 + offsetof(Ipv4Hdr, checksum), &ip_csum, sizeof(ip_csum));

  uint8_t* l4 = l3 + sizeof(Ipv4Hdr);
  IcmpHdr icmp{};
  icmp.type = kIcmpDestUnreachable;
  icmp.code = code;
  store(l4, icmp);  // id/seq are the "unused" word, zero
  std::memcpy(l4 + sizeof(IcmpHdr), orig_ip, quote);
  const uint16_t c = internet_checksum(l4, sizeof(IcmpHdr) + quote);
  std::memcpy(l4 + offsetof(IcmpHdr, checksum), &c, sizeof(c));
  return kEthHdrLen + ip_len;
}

}  // namespace machnet::wire
