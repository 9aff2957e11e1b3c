// Transmit-side builders: exact bytes, checksums, and build -> parse round
// trips, including ICMP echo request -> reply.
#include <gtest/gtest.h>

#include <random>

#include "frames.h"

namespace machnet::test {
namespace {

using wire::FrameKind;
using wire::ParsedFrame;

TEST(BuildArp, RequestBytes) {
  uint8_t buf[64];
  std::memset(buf, 0xcc, sizeof(buf));
  ASSERT_EQ(wire::build_arp(buf, wire::kArpOpRequest, wire::kBroadcastMac, kLocalMac, kLocalIp,
                            wire::kZeroMac, kPeerIp),
            42u);
  const uint8_t expected[42] = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  // eth dst, src
      0x08, 0x06,                                                              // ARP
      0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,            // Ethernet/IPv4, request
      0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10,   0,    0,    1,   // sha, spa
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10,   0,    0,    2};  // tha, tpa
  EXPECT_EQ(0, std::memcmp(buf, expected, sizeof(expected)));
  EXPECT_EQ(buf[42], 0xcc);  // nothing written past the frame
}

TEST(BuildArp, RoundTrips) {
  Frame f(wire::kArpFrameLen);
  // Request from the peer for us.
  wire::build_arp(f.data(), wire::kArpOpRequest, wire::kBroadcastMac, kPeerMac, kPeerIp,
                  wire::kZeroMac, kLocalIp);
  ParsedFrame p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::kArp);
  EXPECT_EQ(p.arp_op, wire::kArpOpRequest);
  EXPECT_EQ(p.arp_sha, kPeerMac);
  EXPECT_EQ(p.arp_spa, kPeerIp);
  EXPECT_EQ(p.arp_tpa, kLocalIp);
  // Our reply, seen from the peer's side.
  wire::build_arp(f.data(), wire::kArpOpReply, kPeerMac, kLocalMac, kLocalIp, kPeerMac, kPeerIp);
  auto peer = local_opts();
  peer.local_ip = kPeerIp;
  p = parse(f, peer);
  ASSERT_EQ(p.kind, FrameKind::kArp);
  EXPECT_EQ(p.arp_op, wire::kArpOpReply);
  EXPECT_EQ(p.eth_src, kLocalMac);
  EXPECT_EQ(p.arp_sha, kLocalMac);
  EXPECT_EQ(p.arp_spa, kLocalIp);
  EXPECT_EQ(p.arp_tpa, kPeerIp);
  // Our gratuitous ARP, seen by a third host.
  wire::build_arp(f.data(), wire::kArpOpRequest, wire::kBroadcastMac, kLocalMac, kLocalIp,
                  wire::kZeroMac, kLocalIp);
  auto third = local_opts();
  third.local_ip = kOtherIp;
  p = parse(f, third);
  ASSERT_EQ(p.kind, FrameKind::kArp);
  EXPECT_EQ(p.arp_spa, kLocalIp);
  EXPECT_EQ(p.arp_tpa, kLocalIp);
}

TEST(BuildUdp, HeaderFields) {
  Frame f(wire::kUdpHeadersLen + 100, 0xcc);
  wire::UdpFlow flow;
  flow.src_mac = kLocalMac;
  flow.dst_mac = kPeerMac;
  flow.src_ip = kLocalIp;
  flow.dst_ip = kPeerIp;
  flow.src_port = 0x1111;
  flow.dst_port = 0x2222;
  ASSERT_EQ(wire::build_udp_headers(f.data(), flow, 100, 0xabcd, 33, false), 42u);
  EXPECT_EQ(0, std::memcmp(f.data(), kPeerMac.data(), 6));
  EXPECT_EQ(0, std::memcmp(f.data() + 6, kLocalMac.data(), 6));
  EXPECT_EQ(get16(f, 12), wire::kEtherTypeIpv4);
  EXPECT_EQ(f[kL3], 0x45);
  EXPECT_EQ(f[kL3 + 1], 0);
  EXPECT_EQ(get16(f, kL3 + 2), 128);
  EXPECT_EQ(get16(f, kL3 + 4), 0xabcd);
  EXPECT_EQ(get16(f, kL3 + 6), 0);  // DF clear, not a fragment
  EXPECT_EQ(f[kL3 + 8], 33);
  EXPECT_EQ(f[kL3 + 9], wire::kIpProtoUdp);
  EXPECT_EQ(wire::internet_checksum(f.data() + kL3, 20), 0);
  EXPECT_EQ(get16(f, kL3 + 12), 0x0a00);
  EXPECT_EQ(get16(f, kL3 + 14), 0x0001);
  EXPECT_EQ(get16(f, kL3 + 16), 0x0a00);
  EXPECT_EQ(get16(f, kL3 + 18), 0x0002);
  EXPECT_EQ(get16(f, kL4), 0x1111);
  EXPECT_EQ(get16(f, kL4 + 2), 0x2222);
  EXPECT_EQ(get16(f, kL4 + 4), 108);
  EXPECT_EQ(get16(f, kL4 + 6), 0);  // left for the caller
  EXPECT_EQ(f[42], 0xcc);           // payload untouched

  ASSERT_EQ(wire::build_udp_headers(f.data(), flow, 100, 0xabcd, 33, true), 42u);
  EXPECT_EQ(get16(f, kL3 + 10), 0);  // offload: the NIC fills it
}

TEST(BuildUdp, KnownCapturedPacket) {
  // 192.168.1.10:40000 -> 192.168.1.1:53, id abcd, DF, TTL 64, 25-byte
  // payload; checksums computed independently (Python) as 0b8f (IP) and
  // 0c74 (UDP).
  const char text[] = "machnet checksum vector!\n";
  Frame f(14 + 20 + 8 + 25);
  const uint8_t hdr[42] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                           0xbb, 0x08, 0x00, 0x45, 0x00, 0x00, 0x35, 0xab, 0xcd, 0x40, 0x00,
                           0x40, 0x11, 0x0b, 0x8f, 0xc0, 0xa8, 0x01, 0x0a, 0xc0, 0xa8, 0x01,
                           0x01, 0x9c, 0x40, 0x00, 0x35, 0x00, 0x21, 0x0c, 0x74};
  std::memcpy(f.data(), hdr, 42);
  std::memcpy(f.data() + 42, text, 25);
  EXPECT_EQ(wire::internet_checksum(f.data() + kL3, 20), 0);
  wire::Ipv4Hdr ip;
  wire::UdpHdr udp;
  std::memcpy(&ip, f.data() + kL3, 20);
  std::memcpy(&udp, f.data() + kL4, 8);
  EXPECT_EQ(ntohs(wire::udp_checksum(ip, udp, f.data() + 42, 25)), 0x0c74);
  // The pseudo-header sum (c0a8+010a+c0a8+0101+0011+0021 = 1838d -> 838e).
  EXPECT_EQ(ntohs(wire::udp_pseudo_header_checksum(ip, 33)), 0x838e);
  // And the parser accepts it.
  auto o = local_opts();
  o.local_ip = 0xc0a80101;
  const ParsedFrame p = parse(f, o);
  ASSERT_EQ(p.kind, FrameKind::kUdp) << drop_reason_name(p.drop);
  EXPECT_EQ(p.src_port, 40000);
  EXPECT_EQ(p.dst_port, 53);
  EXPECT_EQ(p.payload_len, 25);
  EXPECT_EQ(0, std::memcmp(f.data() + p.payload_offset, text, 25));
}

TEST(BuildUdp, ChecksumZeroIsSentAsFfff) {
  Frame f = make_udp(2);
  f[42] = f[43] = 0;
  fix_udp_checksum(&f);
  put16(&f, 42, get16(f, kL4 + 6));  // payload word = ~sum: total becomes ffff
  wire::Ipv4Hdr ip;
  wire::UdpHdr udp;
  std::memcpy(&ip, f.data() + kL3, 20);
  std::memcpy(&udp, f.data() + kL4, 8);
  EXPECT_EQ(wire::udp_checksum(ip, udp, f.data() + 42, 2), 0xffff);
}

TEST(BuildUdp, ChecksumIgnoresFieldInHeader) {
  Frame f = make_udp(31);
  wire::Ipv4Hdr ip;
  wire::UdpHdr udp;
  std::memcpy(&ip, f.data() + kL3, 20);
  std::memcpy(&udp, f.data() + kL4, 8);
  const uint16_t c = wire::udp_checksum(ip, udp, f.data() + 42, 31);
  udp.checksum = 0x1234;
  EXPECT_EQ(wire::udp_checksum(ip, udp, f.data() + 42, 31), c);
  EXPECT_EQ(c, htons(get16(f, kL4 + 6)));
}

TEST(BuildUdp, PseudoHeaderMatchesOffloadContract) {
  // A NIC with checksum offload sums the UDP header (whose checksum field
  // holds the pseudo-header sum) and payload, then complements. That must
  // equal the software checksum.
  std::mt19937 rng(4);
  for (size_t n : {0u, 1u, 2u, 3u, 100u, 1471u, 1472u}) {
    Frame f = make_udp(n, static_cast<uint8_t>(rng()));
    const uint16_t sw = htons(get16(f, kL4 + 6));
    wire::Ipv4Hdr ip;
    std::memcpy(&ip, f.data() + kL3, 20);
    const uint16_t ph = wire::udp_pseudo_header_checksum(ip, static_cast<uint16_t>(8 + n));
    std::memcpy(f.data() + kL4 + 6, &ph, 2);
    const uint16_t nic = wire::internet_checksum(f.data() + kL4, 8 + n);
    EXPECT_EQ(nic == 0 ? 0xffff : nic, sw) << n;
  }
  // Known value: 10.0.0.1 -> 10.0.0.2, length 8: 0a00+0001+0a00+0002+0011+0008.
  wire::Ipv4Hdr ip{};
  ip.src = htonl(kLocalIp);
  ip.dst = htonl(kPeerIp);
  EXPECT_EQ(ntohs(wire::udp_pseudo_header_checksum(ip, 8)), 0x141c);
}

TEST(BuildUdp, RoundTripThroughParser) {
  for (size_t n : {0u, 1u, 1472u}) {
    Frame f(wire::kUdpHeadersLen + n);
    wire::UdpFlow flow;
    flow.src_mac = kPeerMac;
    flow.dst_mac = kLocalMac;
    flow.src_ip = kPeerIp;
    flow.dst_ip = kLocalIp;
    flow.src_port = 7;
    flow.dst_port = 65535;
    wire::build_udp_headers(f.data(), flow, static_cast<uint16_t>(n), 1, 64, false);
    for (size_t i = 0; i < n; ++i) f[42 + i] = static_cast<uint8_t>(i * 31);
    wire::Ipv4Hdr ip;
    wire::UdpHdr udp;
    std::memcpy(&ip, f.data() + kL3, 20);
    std::memcpy(&udp, f.data() + kL4, 8);
    const uint16_t c = wire::udp_checksum(ip, udp, f.data() + 42, n);
    std::memcpy(f.data() + kL4 + 6, &c, 2);
    const ParsedFrame p = parse(f);
    ASSERT_EQ(p.kind, FrameKind::kUdp) << n << " " << drop_reason_name(p.drop);
    EXPECT_EQ(p.src_port, 7);
    EXPECT_EQ(p.dst_port, 65535);
    EXPECT_EQ(p.payload_offset, 42);
    EXPECT_EQ(p.payload_len, n);
    EXPECT_EQ(p.eth_src, kPeerMac);
    EXPECT_EQ(p.src_ip, kPeerIp);
  }
}

// Full recomputation of the ICMP checksum, to check the incremental update.
uint16_t full_icmp_checksum(const Frame& f, size_t l4, size_t icmp_len) {
  Frame copy(f.begin() + static_cast<std::ptrdiff_t>(l4),
             f.begin() + static_cast<std::ptrdiff_t>(l4 + icmp_len));
  copy[2] = copy[3] = 0;
  return wire::internet_checksum(copy.data(), copy.size());
}

void check_reply(const Frame& request, const Frame& reply) {
  const size_t icmp_len = get16(request, kL3 + 2) - 20u;
  EXPECT_EQ(0, std::memcmp(reply.data(), kPeerMac.data(), 6));
  EXPECT_EQ(0, std::memcmp(reply.data() + 6, kLocalMac.data(), 6));
  EXPECT_EQ(get16(reply, kL3 + 12), kLocalIp >> 16);
  EXPECT_EQ(get16(reply, kL3 + 14), kLocalIp & 0xffff);
  EXPECT_EQ(get16(reply, kL3 + 16), kPeerIp >> 16);
  EXPECT_EQ(get16(reply, kL3 + 18), kPeerIp & 0xffff);
  EXPECT_EQ(reply[kL3 + 8], 64);  // fresh TTL
  EXPECT_EQ(wire::internet_checksum(reply.data() + kL3, 20), 0);
  EXPECT_EQ(reply[kL4], wire::kIcmpEchoReply);
  EXPECT_EQ(reply[kL4 + 1], 0);
  EXPECT_EQ(wire::internet_checksum(reply.data() + kL4, icmp_len), 0);
  uint16_t stored;
  std::memcpy(&stored, reply.data() + kL4 + 2, 2);
  EXPECT_EQ(stored, full_icmp_checksum(reply, kL4, icmp_len));
  // id, seq and payload echoed unchanged.
  EXPECT_EQ(0, std::memcmp(reply.data() + kL4 + 4, request.data() + kL4 + 4, icmp_len - 4));
  // The peer sees an echo reply (which we never answer).
  auto peer = local_opts();
  peer.local_ip = kPeerIp;
  const ParsedFrame p = parse(reply, peer);
  EXPECT_EQ(p.kind, FrameKind::kDrop);
  EXPECT_EQ(p.drop, DropReason::kIcmpUnhandled);
}

TEST(BuildIcmp, EchoRequestToReply) {
  for (size_t n : {0u, 1u, 56u, 57u, 1472u}) {
    const Frame req = make_icmp_echo(n, static_cast<uint8_t>(n), 5);
    const ParsedFrame p = parse(req);
    ASSERT_EQ(p.kind, FrameKind::kIcmpEcho);
    Frame reply = req;
    wire::icmp_echo_request_to_reply(reply.data(), p.l3_offset, p.l4_offset, p.ip_total_len);
    SCOPED_TRACE(n);
    check_reply(req, reply);
  }
}

TEST(BuildIcmp, IncrementalUpdateMatchesFullRecomputeOnRandomPayloads) {
  std::mt19937 rng(77);
  for (int i = 0; i < 2000; ++i) {
    Frame req = make_icmp_echo(rng() % 64);
    for (size_t k = kL4 + 4; k < req.size(); ++k) req[k] = static_cast<uint8_t>(rng());
    fix_icmp_checksum(&req);
    Frame reply = req;
    wire::icmp_echo_request_to_reply(reply.data(), kL3, kL4, get16(req, kL3 + 2));
    const size_t icmp_len = req.size() - kL4;
    uint16_t stored;
    std::memcpy(&stored, reply.data() + kL4 + 2, 2);
    ASSERT_EQ(stored, full_icmp_checksum(reply, kL4, icmp_len)) << i;
  }
}

TEST(BuildIcmp, IncrementalUpdateExhaustiveOverOnePayloadWord) {
  // Every value of a 2-byte payload covers every request checksum, including
  // the ones where the reply's checksum is 0000 or the update wraps around.
  Frame req = make_icmp_echo(2);
  Frame reply(req.size());
  for (uint32_t w = 0; w <= 0xffff; ++w) {
    put16(&req, kL4 + 8, static_cast<uint16_t>(w));
    fix_icmp_checksum(&req);
    reply = req;
    wire::icmp_echo_request_to_reply(reply.data(), kL3, kL4, get16(req, kL3 + 2));
    uint16_t stored;
    std::memcpy(&stored, reply.data() + kL4 + 2, 2);
    ASSERT_EQ(stored, full_icmp_checksum(reply, kL4, 10)) << w;
  }
  check_reply(req, reply);
}

TEST(BuildIcmp, ReplyWithIpOptions) {
  // 4 bytes of options (NOP x3, EOL) between IP and ICMP headers.
  const Frame base = make_icmp_echo(20);
  Frame req(base.size() + 4);
  std::memcpy(req.data(), base.data(), kL4);
  const uint8_t opts[4] = {1, 1, 1, 0};
  std::memcpy(req.data() + kL4, opts, 4);
  std::memcpy(req.data() + kL4 + 4, base.data() + kL4, base.size() - kL4);
  req[kL3] = 0x46;
  put16(&req, kL3 + 2, static_cast<uint16_t>(req.size() - kL3));
  fix_ip_checksum(&req);
  const ParsedFrame p = parse(req);
  ASSERT_EQ(p.kind, FrameKind::kIcmpEcho) << drop_reason_name(p.drop);
  ASSERT_EQ(p.l4_offset, kL4 + 4);
  Frame reply = req;
  wire::icmp_echo_request_to_reply(reply.data(), p.l3_offset, p.l4_offset, p.ip_total_len);
  EXPECT_EQ(wire::internet_checksum(reply.data() + kL3, 24), 0);
  EXPECT_EQ(reply[p.l4_offset], wire::kIcmpEchoReply);
  EXPECT_EQ(wire::internet_checksum(reply.data() + p.l4_offset, p.ip_total_len - 24u), 0);
}

}  // namespace
}  // namespace machnet::test
