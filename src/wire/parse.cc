#include "wire/parse.h"

#include <cstring>

namespace machnet::wire {

namespace {

// Frames come from mbufs at arbitrary offsets: copy headers out instead of
// casting, so no access is ever misaligned.
template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

ParsedFrame drop(ParsedFrame f, DropReason r) {
  f.kind = FrameKind::kDrop;
  f.drop = r;
  return f;
}

// Walks the option list (RFC 791 §3.1). Single-byte EOL/NOP, everything else
// type-length-value with 2 <= length <= remaining bytes.
bool ip_options_valid(const uint8_t* opt, size_t len) {
  size_t i = 0;
  while (i < len) {
    const uint8_t type = opt[i];
    if (type == 0) return true;  // end of list; the rest is padding
    if (type == 1) {             // no-op
      ++i;
      continue;
    }
    if (len - i < 2) return false;
    const uint8_t olen = opt[i + 1];
    if (olen < 2 || olen > len - i) return false;
    i += olen;
  }
  return true;
}

bool ip_is_local(uint32_t dst, const ParseOptions& opts) {
  if (dst == opts.local_ip) return true;
  if (!opts.accept_broadcast_ip) return false;
  if (dst == 0xffffffffu) return true;
  // Directed broadcast only exists for prefixes that leave host bits.
  if (opts.prefix_len >= 31) return false;
  const uint32_t host_mask = opts.prefix_len == 0 ? 0xffffffffu : (0xffffffffu >> opts.prefix_len);
  return dst == (opts.local_ip | host_mask);
}

// A buffer that carries its own checksum (IPv4 header, ICMP message).
bool sum_ok(RawSumFn raw_sum, const uint8_t* p, size_t len) {
  return raw_sum(p, len) == 0xffff;
}

// UDP checks shared by parse_frame and parse_udp. `l4` points at the UDP header
// and `avail` is the IP payload length (total_length - header length).
DropReason check_udp(const Ipv4Hdr& ip, const uint8_t* l4, size_t avail, bool l4_checksum_ok,
                     RawSumFn raw_sum, uint16_t* udp_len_out, UdpHdr* udp_out) {
  if (avail < sizeof(UdpHdr)) return DropReason::kTruncatedUdp;
  const UdpHdr udp = load<UdpHdr>(l4);
  const uint16_t udp_len = ntohs(udp.length);
  if (udp_len < sizeof(UdpHdr) || udp_len > avail) return DropReason::kBadUdpLength;
  // A zero checksum means the sender did not compute one (RFC 768).
  if (!l4_checksum_ok && udp.checksum != 0) {
    // Pseudo-header sum (host order words) turned raw, plus the datagram's.
    ChecksumAccumulator pseudo;
    add_udp_pseudo_header(ip, udp_len, &pseudo);
    uint32_t sum = static_cast<uint16_t>(~pseudo.finish());
    sum += raw_sum(l4, udp_len);
    sum = (sum & 0xffff) + (sum >> 16);
    if (sum != 0xffff) return DropReason::kBadUdpChecksum;
  }
  *udp_len_out = udp_len;
  *udp_out = udp;
  return DropReason::kCount;
}

ParsedFrame parse_arp(const uint8_t* frame, size_t len, const ParseOptions& opts, ParsedFrame f) {
  if (len - kEthHdrLen < sizeof(ArpHdr)) return drop(f, DropReason::kTruncatedArp);
  const ArpHdr arp = load<ArpHdr>(frame + kEthHdrLen);
  if (ntohs(arp.htype) != 1 || ntohs(arp.ptype) != kEtherTypeIpv4 || arp.hlen != 6 ||
      arp.plen != 4) {
    return drop(f, DropReason::kBadArp);
  }
  const uint16_t op = ntohs(arp.op);
  if (op != kArpOpRequest && op != kArpOpReply) return drop(f, DropReason::kBadArp);
  f.arp_op = op;
  f.arp_sha = arp.sha;
  f.arp_spa = ntohl(arp.spa);
  f.arp_tpa = ntohl(arp.tpa);
  // Gratuitous ARP (spa == tpa) announces a binding to everyone; the caller
  // may use it to refresh an entry it already has, never to create one.
  if (f.arp_tpa != opts.local_ip && f.arp_spa != f.arp_tpa) {
    return drop(f, DropReason::kArpNotForUs);
  }
  f.kind = FrameKind::kArp;
  return f;
}

// ICMP destination unreachable (RFC 792): 8-byte ICMP header, then the
// offending datagram's IPv4 header and at least its first 8 bytes. Only
// reports about UDP datagrams that we sent (inner source = our address) are
// of use; anything else is counted as unhandled.
ParsedFrame parse_unreachable(const uint8_t* l4, size_t l4_avail, const ParseOptions& opts,
                              ParsedFrame f) {
  if (!opts.l4_checksum_ok && !sum_ok(opts.raw_sum, l4, l4_avail)) {
    return drop(f, DropReason::kBadIcmpChecksum);
  }
  const uint8_t* inner = l4 + sizeof(IcmpHdr);
  const size_t inner_avail = l4_avail - sizeof(IcmpHdr);
  if (inner_avail < sizeof(Ipv4Hdr)) return drop(f, DropReason::kTruncatedIcmp);
  const Ipv4Hdr ip = load<Ipv4Hdr>(inner);
  const size_t hl = ip.header_len();
  if (ip.version() != 4 || hl < sizeof(Ipv4Hdr) || hl + sizeof(UdpHdr) > inner_avail) {
    return drop(f, DropReason::kTruncatedIcmp);
  }
  if (ip.protocol != kIpProtoUdp || ntohl(ip.src) != opts.local_ip ||
      (ntohs(ip.frag_off) & kIpFragOffsetMask) != 0) {
    return drop(f, DropReason::kIcmpUnhandled);
  }
  const UdpHdr udp = load<UdpHdr>(inner + hl);
  const IcmpHdr icmp = load<IcmpHdr>(l4);
  f.icmp_code = icmp.code;
  f.inner_dst_ip = ntohl(ip.dst);
  f.src_port = ntohs(udp.src_port);
  f.dst_port = ntohs(udp.dst_port);
  f.kind = FrameKind::kIcmpUnreachable;
  return f;
}

ParsedFrame parse_ipv4_frame(const uint8_t* frame, size_t len, const ParseOptions& opts,
                             ParsedFrame f) {
  const uint8_t* l3 = frame + kEthHdrLen;
  const size_t l3_avail = len - kEthHdrLen;
  if (l3_avail < sizeof(Ipv4Hdr)) return drop(f, DropReason::kTruncatedIp);
  const Ipv4Hdr ip = load<Ipv4Hdr>(l3);
  if (ip.version() != 4) return drop(f, DropReason::kBadIpVersion);
  const size_t hl = ip.header_len();
  if (hl < sizeof(Ipv4Hdr) || hl > l3_avail) return drop(f, DropReason::kBadIhl);
  const size_t total = ntohs(ip.total_length);
  // Bytes after total_length are Ethernet padding (runt frames are padded to
  // 60 bytes) and are ignored.
  if (total < hl || total > l3_avail) return drop(f, DropReason::kBadIpLength);
  if (!opts.ip_checksum_ok && !sum_ok(opts.raw_sum, l3, hl)) {
    return drop(f, DropReason::kBadIpChecksum);
  }
  // Options are accepted and skipped, but only when well formed.
  if (hl > sizeof(Ipv4Hdr) && !ip_options_valid(l3 + sizeof(Ipv4Hdr), hl - sizeof(Ipv4Hdr))) {
    return drop(f, DropReason::kIpOptions);
  }
  f.src_ip = ntohl(ip.src);
  f.dst_ip = ntohl(ip.dst);
  if (!ip_is_local(f.dst_ip, opts)) return drop(f, DropReason::kIpNotForUs);
  f.l3_offset = static_cast<uint16_t>(kEthHdrLen);
  f.l4_offset = static_cast<uint16_t>(kEthHdrLen + hl);
  f.ip_total_len = static_cast<uint16_t>(total);
  // Only the first fragment carries the L4 header, and no fragment carries the
  // whole L4 payload the checksum covers: leave L4 to reassembly.
  if (ip.is_fragment()) {
    f.kind = FrameKind::kIpv4Fragment;
    return f;
  }
  const uint8_t* l4 = l3 + hl;
  const size_t l4_avail = total - hl;
  switch (ip.protocol) {
    case kIpProtoUdp: {
      uint16_t udp_len = 0;
      UdpHdr udp{};
      const DropReason r =
          check_udp(ip, l4, l4_avail, opts.l4_checksum_ok, opts.raw_sum, &udp_len, &udp);
      if (r != DropReason::kCount) return drop(f, r);
      f.src_port = ntohs(udp.src_port);
      f.dst_port = ntohs(udp.dst_port);
      f.payload_offset = static_cast<uint16_t>(f.l4_offset + sizeof(UdpHdr));
      f.payload_len = static_cast<uint16_t>(udp_len - sizeof(UdpHdr));
      f.kind = FrameKind::kUdp;
      return f;
    }
    case kIpProtoIcmp: {
      if (l4_avail < sizeof(IcmpHdr)) return drop(f, DropReason::kTruncatedIcmp);
      const IcmpHdr icmp = load<IcmpHdr>(l4);
      if (icmp.type == kIcmpDestUnreachable) return parse_unreachable(l4, l4_avail, opts, f);
      // Only echo requests are answered; other types are not worth verifying.
      if (icmp.type != kIcmpEchoRequest || icmp.code != 0) {
        return drop(f, DropReason::kIcmpUnhandled);
      }
      if (!opts.l4_checksum_ok && !sum_ok(opts.raw_sum, l4, l4_avail)) {
        return drop(f, DropReason::kBadIcmpChecksum);
      }
      f.kind = FrameKind::kIcmpEcho;
      return f;
    }
    default:
      return drop(f, DropReason::kUnknownIpProto);
  }
}

}  // namespace

ParsedFrame parse_frame(const uint8_t* frame, size_t len, const ParseOptions& opts) {
  ParsedFrame f;
  if (frame == nullptr || len < kEthHdrLen) return drop(f, DropReason::kTruncatedEth);
  const EthHdr eth = load<EthHdr>(frame);
  f.eth_src = eth.src;
  switch (ntohs(eth.ethertype)) {
    case kEtherTypeArp:
      return parse_arp(frame, len, opts, f);
    case kEtherTypeIpv4:
      return parse_ipv4_frame(frame, len, opts, f);
    default:
      return drop(f, DropReason::kUnknownEtherType);
  }
}

// The datagram length is `len`, not the header's total_length: a reassembler
// may keep the first fragment's header, whose total_length covers only that
// fragment. Offsets in `out` are relative to `ip`.
DropReason parse_udp(const uint8_t* ip, size_t len, bool l4_checksum_ok, ParsedFrame* out,
                     RawSumFn raw_sum) {
  if (ip == nullptr || len < sizeof(Ipv4Hdr)) return DropReason::kTruncatedIp;
  const Ipv4Hdr hdr = load<Ipv4Hdr>(ip);
  if (hdr.version() != 4) return DropReason::kBadIpVersion;
  const size_t hl = hdr.header_len();
  if (hl < sizeof(Ipv4Hdr) || hl > len) return DropReason::kBadIhl;
  if (len > 0xffff) return DropReason::kBadIpLength;
  if (hdr.protocol != kIpProtoUdp) return DropReason::kUnknownIpProto;
  uint16_t udp_len = 0;
  UdpHdr udp{};
  const DropReason r = check_udp(hdr, ip + hl, len - hl, l4_checksum_ok, raw_sum, &udp_len, &udp);
  if (r != DropReason::kCount) return r;
  out->src_ip = ntohl(hdr.src);
  out->dst_ip = ntohl(hdr.dst);
  out->l3_offset = 0;
  out->l4_offset = static_cast<uint16_t>(hl);
  out->ip_total_len = static_cast<uint16_t>(len);
  out->src_port = ntohs(udp.src_port);
  out->dst_port = ntohs(udp.dst_port);
  out->payload_offset = static_cast<uint16_t>(hl + sizeof(UdpHdr));
  out->payload_len = static_cast<uint16_t>(udp_len - sizeof(UdpHdr));
  out->kind = FrameKind::kUdp;
  return DropReason::kCount;
}

// Host-order words, so the result does not depend on how many (possibly odd)
// bytes were added to `acc` before.
void add_udp_pseudo_header(const Ipv4Hdr& ip, uint16_t udp_len, ChecksumAccumulator* acc) {
  acc->add_u32(ntohl(ip.src));
  acc->add_u32(ntohl(ip.dst));
  acc->add_u16(kIpProtoUdp);
  acc->add_u16(udp_len);
}

}  // namespace machnet::wire
