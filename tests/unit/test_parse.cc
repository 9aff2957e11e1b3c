// parse_frame / parse_udp: round trips through the builders, one test per drop
// reason (each mutating an otherwise valid frame), and truncation safety.
#include <gtest/gtest.h>

#include <random>

#include "frames.h"

namespace machnet::test {
namespace {

using wire::FrameKind;
using wire::ParsedFrame;

#define EXPECT_DROP(frame_expr, reason, ...)                 \
  do {                                                       \
    const ParsedFrame p_ = parse(frame_expr, ##__VA_ARGS__); \
    EXPECT_EQ(p_.kind, FrameKind::kDrop);                    \
    EXPECT_EQ(p_.drop, reason) << drop_reason_name(p_.drop); \
  } while (0)

// ---- valid frames ---------------------------------------------------------

TEST(ParseUdp, RoundTripSizes) {
  for (size_t n : {0u, 1u, 2u, 17u, 1472u}) {
    const Frame f = make_udp(n, 9, 1234, 9999);
    const ParsedFrame p = parse(f);
    ASSERT_EQ(p.kind, FrameKind::kUdp) << n << " " << drop_reason_name(p.drop);
    EXPECT_EQ(p.eth_src, kPeerMac);
    EXPECT_EQ(p.src_ip, kPeerIp);
    EXPECT_EQ(p.dst_ip, kLocalIp);
    EXPECT_EQ(p.l3_offset, 14);
    EXPECT_EQ(p.l4_offset, 34);
    EXPECT_EQ(p.ip_total_len, 28 + n);
    EXPECT_EQ(p.src_port, 1234);
    EXPECT_EQ(p.dst_port, 9999);
    EXPECT_EQ(p.payload_offset, 42);
    EXPECT_EQ(p.payload_len, n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(f[p.payload_offset + i], uint8_t(9 + 7 * i));
  }
}

TEST(ParseUdp, MaxSizeDatagram) {
  const Frame f = make_udp(wire::kMaxUdpPayload);
  const ParsedFrame p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::kUdp);
  EXPECT_EQ(p.ip_total_len, 65535);
  EXPECT_EQ(p.payload_len, wire::kMaxUdpPayload);
}

TEST(ParseUdp, EthernetPaddingIgnored) {
  Frame f = make_udp(1);  // 43 bytes, padded to the 60-byte minimum
  f.resize(60, 0xee);
  const ParsedFrame p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::kUdp);
  EXPECT_EQ(p.ip_total_len, 29);
  EXPECT_EQ(p.payload_len, 1);
}

TEST(ParseUdp, PayloadFromUdpLengthNotFrameLength) {
  // IP payload longer than udp.length: the extra bytes are not payload.
  Frame f = make_udp(10);
  put16(&f, kL4 + 4, 8 + 6);
  fix_udp_checksum(&f);
  const ParsedFrame p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::kUdp) << drop_reason_name(p.drop);
  EXPECT_EQ(p.payload_offset, 42);
  EXPECT_EQ(p.payload_len, 6);
  EXPECT_EQ(p.ip_total_len, 38);
}

TEST(ParseUdp, ZeroChecksumMeansNone) {
  Frame f = make_udp(20);
  put16(&f, kL4 + 6, 0);
  EXPECT_EQ(parse(f).kind, FrameKind::kUdp);
}

TEST(ParseUdp, ChecksumFfffAccepted) {
  // A payload chosen so the computed checksum is 0: it is sent as ffff.
  Frame f = make_udp(2);
  f[42] = f[43] = 0;
  fix_udp_checksum(&f);
  const uint16_t c = get16(f, kL4 + 6);  // == ~sum with a zero payload word
  put16(&f, 42, c);                      // makes the sum ffff
  fix_udp_checksum(&f);
  EXPECT_EQ(get16(f, kL4 + 6), 0xffff);
  EXPECT_EQ(parse(f).kind, FrameKind::kUdp);
}

TEST(ParseUdp, IpOptionsAreSkipped) {
  // Insert 8 bytes of options: NOP, NOP, and a 6-byte unknown TLV.
  const Frame base = make_udp(5);
  Frame f(base.size() + 8);
  std::memcpy(f.data(), base.data(), kL4);
  const uint8_t opts[8] = {1, 1, 0x88, 6, 0xaa, 0xbb, 0xcc, 0xdd};
  std::memcpy(f.data() + kL4, opts, 8);
  std::memcpy(f.data() + kL4 + 8, base.data() + kL4, base.size() - kL4);
  f[kL3] = 0x47;
  put16(&f, kL3 + 2, static_cast<uint16_t>(f.size() - kL3));
  fix_ip_checksum(&f);
  fix_udp_checksum(&f);  // unchanged in fact: the pseudo header has no IHL
  const ParsedFrame p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::kUdp) << drop_reason_name(p.drop);
  EXPECT_EQ(p.l4_offset, 42);
  EXPECT_EQ(p.payload_offset, 50);
  EXPECT_EQ(p.payload_len, 5);
  EXPECT_EQ(p.dst_port, 5000);

  // End-of-list option followed by padding is valid as well.
  Frame g = f;
  const uint8_t eol[8] = {1, 0, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55};
  std::memcpy(g.data() + kL4, eol, 8);
  fix_ip_checksum(&g);
  EXPECT_EQ(parse(g).kind, FrameKind::kUdp);
}

TEST(ParseUdp, NicVerifiedChecksumsSkipSoftwareCheck) {
  Frame f = make_udp(8);
  f[kL3 + 10] ^= 0x5a;  // IP checksum
  f[kL4 + 6] ^= 0x5a;   // UDP checksum
  EXPECT_DROP(f, DropReason::kBadIpChecksum);
  auto o = local_opts();
  o.ip_checksum_ok = true;
  EXPECT_DROP(f, DropReason::kBadUdpChecksum, o);
  o.l4_checksum_ok = true;
  EXPECT_EQ(parse(f, o).kind, FrameKind::kUdp);
}

TEST(ParseUdp, BroadcastDestinations) {
  auto o = local_opts();
  for (uint32_t dst : {0xffffffffu, 0x0a0000ffu}) {
    Frame f = make_udp(4);
    put32(&f, kL3 + 16, dst);
    fix_ip_checksum(&f);
    fix_udp_checksum(&f);
    o.accept_broadcast_ip = false;
    EXPECT_DROP(f, DropReason::kIpNotForUs, o);
    o.accept_broadcast_ip = true;
    const ParsedFrame p = parse(f, o);
    EXPECT_EQ(p.kind, FrameKind::kUdp) << std::hex << dst;
    EXPECT_EQ(p.dst_ip, dst);
  }
  // The directed broadcast follows prefix_len.
  Frame f = make_udp(4);
  put32(&f, kL3 + 16, 0x0a00ffff);  // 10.0.255.255: broadcast of a /16 only
  fix_ip_checksum(&f);
  fix_udp_checksum(&f);
  o.accept_broadcast_ip = true;
  EXPECT_DROP(f, DropReason::kIpNotForUs, o);
  o.prefix_len = 16;
  EXPECT_EQ(parse(f, o).kind, FrameKind::kUdp);
  o.prefix_len = 30;  // 10.0.0.0/30: broadcast is 10.0.0.3, not 10.0.0.255
  put32(&f, kL3 + 16, 0x0a0000ff);
  fix_ip_checksum(&f);
  fix_udp_checksum(&f);
  EXPECT_DROP(f, DropReason::kIpNotForUs, o);
  put32(&f, kL3 + 16, 0x0a000003);
  fix_ip_checksum(&f);
  fix_udp_checksum(&f);
  EXPECT_EQ(parse(f, o).kind, FrameKind::kUdp);
}

TEST(ParseIcmp, EchoRequest) {
  for (size_t n : {0u, 1u, 56u, 1000u}) {
    const Frame f = make_icmp_echo(n);
    const ParsedFrame p = parse(f);
    ASSERT_EQ(p.kind, FrameKind::kIcmpEcho) << n << drop_reason_name(p.drop);
    EXPECT_EQ(p.src_ip, kPeerIp);
    EXPECT_EQ(p.dst_ip, kLocalIp);
    EXPECT_EQ(p.l3_offset, 14);
    EXPECT_EQ(p.l4_offset, 34);
    EXPECT_EQ(p.ip_total_len, 28 + n);
  }
}

TEST(ParseArp, RequestForUs) {
  const Frame f = make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp);
  const ParsedFrame p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::kArp);
  EXPECT_EQ(p.arp_op, wire::kArpOpRequest);
  EXPECT_EQ(p.arp_sha, kPeerMac);
  EXPECT_EQ(p.eth_src, kPeerMac);
  EXPECT_EQ(p.arp_spa, kPeerIp);
  EXPECT_EQ(p.arp_tpa, kLocalIp);
}

TEST(ParseArp, ReplyToUs) {
  const Frame f = make_arp(wire::kArpOpReply, kPeerIp, kLocalIp, kLocalMac, kLocalMac);
  const ParsedFrame p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::kArp);
  EXPECT_EQ(p.arp_op, wire::kArpOpReply);
  EXPECT_EQ(p.arp_spa, kPeerIp);
}

TEST(ParseArp, GratuitousFromOthers) {
  for (uint16_t op : {wire::kArpOpRequest, wire::kArpOpReply}) {
    const Frame f = make_arp(op, kOtherIp, kOtherIp);
    const ParsedFrame p = parse(f);
    ASSERT_EQ(p.kind, FrameKind::kArp) << op;
    EXPECT_EQ(p.arp_spa, kOtherIp);
    EXPECT_EQ(p.arp_tpa, kOtherIp);
  }
}

TEST(ParseArp, PaddedFrame) {
  Frame f = make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp);
  f.resize(60, 0);
  EXPECT_EQ(parse(f).kind, FrameKind::kArp);
}

// ---- one test per drop reason ----------------------------------------------

TEST(ParseDrop, TruncatedEth) {
  const Frame f = make_udp(4);
  EXPECT_DROP(Frame(f.begin(), f.begin() + 13), DropReason::kTruncatedEth);
  EXPECT_EQ(wire::parse_frame(nullptr, 0, local_opts()).drop, DropReason::kTruncatedEth);
}

TEST(ParseDrop, UnknownEtherType) {
  Frame f = make_udp(4);
  put16(&f, 12, 0x86dd);
  EXPECT_DROP(f, DropReason::kUnknownEtherType);
  put16(&f, 12, 0x8100);  // VLAN tags are stripped by the NIC or not expected
  EXPECT_DROP(f, DropReason::kUnknownEtherType);
}

TEST(ParseDrop, TruncatedArp) {
  const Frame f = make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp);
  EXPECT_DROP(Frame(f.begin(), f.end() - 1), DropReason::kTruncatedArp);
  EXPECT_DROP(Frame(f.begin(), f.begin() + 14), DropReason::kTruncatedArp);
}

TEST(ParseDrop, BadArp) {
  const Frame good = make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp);
  Frame f = good;
  put16(&f, kL3 + 0, 6);  // htype IEEE 802
  EXPECT_DROP(f, DropReason::kBadArp);
  f = good;
  put16(&f, kL3 + 2, 0x86dd);  // ptype IPv6
  EXPECT_DROP(f, DropReason::kBadArp);
  f = good;
  f[kL3 + 4] = 8;  // hlen
  EXPECT_DROP(f, DropReason::kBadArp);
  f = good;
  f[kL3 + 5] = 16;  // plen
  EXPECT_DROP(f, DropReason::kBadArp);
  f = good;
  put16(&f, kL3 + 6, 3);  // RARP request
  EXPECT_DROP(f, DropReason::kBadArp);
}

TEST(ParseDrop, ArpNotForUs) {
  EXPECT_DROP(make_arp(wire::kArpOpRequest, kPeerIp, kOtherIp), DropReason::kArpNotForUs);
  EXPECT_DROP(make_arp(wire::kArpOpReply, kPeerIp, kOtherIp), DropReason::kArpNotForUs);
}

TEST(ParseDrop, TruncatedIp) {
  const Frame f = make_udp(4);
  EXPECT_DROP(Frame(f.begin(), f.begin() + kL3 + 19), DropReason::kTruncatedIp);
  EXPECT_DROP(Frame(f.begin(), f.begin() + kL3), DropReason::kTruncatedIp);
}

TEST(ParseDrop, BadIpVersion) {
  Frame f = make_udp(4);
  f[kL3] = 0x65;
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kBadIpVersion);
}

TEST(ParseDrop, BadIhl) {
  Frame f = make_udp(4);
  f[kL3] = 0x44;  // 16-byte header
  EXPECT_DROP(f, DropReason::kBadIhl);
  f[kL3] = 0x40;
  EXPECT_DROP(f, DropReason::kBadIhl);
  // 60-byte header in a 46-byte frame: past the end.
  f = make_udp(4);
  f[kL3] = 0x4f;
  EXPECT_DROP(f, DropReason::kBadIhl);
}

TEST(ParseDrop, BadIpLength) {
  Frame f = make_udp(4);
  put16(&f, kL3 + 2, 19);  // shorter than the header
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kBadIpLength);
  f = make_udp(4);
  put16(&f, kL3 + 2, static_cast<uint16_t>(f.size() - kL3 + 1));  // past the frame
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kBadIpLength);
}

TEST(ParseDrop, BadIpChecksum) {
  Frame f = make_udp(4);
  f[kL3 + 8] = 63;  // TTL changed without fixing the checksum
  EXPECT_DROP(f, DropReason::kBadIpChecksum);
}

TEST(ParseDrop, IpNotForUs) {
  Frame f = make_udp(4);
  put32(&f, kL3 + 16, kOtherIp);
  fix_ip_checksum(&f);
  fix_udp_checksum(&f);
  EXPECT_DROP(f, DropReason::kIpNotForUs);
}

TEST(ParseDrop, MalformedIpOptions) {
  Frame f = make_udp(4);
  // Reinterpret the UDP header as 8 bytes of options: a TLV whose length (9)
  // runs past the options area.
  f[kL3] = 0x47;
  f[kL4] = 0x07;
  f[kL4 + 1] = 9;
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kIpOptions);
  f[kL4 + 1] = 1;  // length below the 2-byte minimum
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kIpOptions);
  // NOPs, then a TLV type in the last byte with no room for its length.
  f[kL4 + 0] = 1;
  f[kL4 + 1] = 1;
  f[kL4 + 2] = 1;
  f[kL4 + 3] = 1;
  f[kL4 + 4] = 1;
  f[kL4 + 5] = 1;
  f[kL4 + 6] = 1;
  f[kL4 + 7] = 0x44;
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kIpOptions);
}

TEST(ParseDrop, Ipv4FragmentBeforeL4) {
  // A fragment is handed on even though its L4 header is garbage.
  Frame f = make_udp(16);
  put16(&f, kL3 + 6, wire::kIpFlagMoreFragments);
  fix_ip_checksum(&f);
  f[kL4 + 6] ^= 0xff;  // UDP checksum now wrong
  ParsedFrame p = parse(f);
  EXPECT_EQ(p.kind, FrameKind::kIpv4Fragment);
  EXPECT_EQ(p.src_ip, kPeerIp);
  EXPECT_EQ(p.l4_offset, 34);
  EXPECT_EQ(p.ip_total_len, 44);

  put16(&f, kL3 + 6, 185);  // last fragment at offset 1480
  fix_ip_checksum(&f);
  EXPECT_EQ(parse(f).kind, FrameKind::kIpv4Fragment);

  put16(&f, kL3 + 6, wire::kIpFlagDontFragment);  // DF alone is not a fragment
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kBadUdpChecksum);

  // Unknown protocols are fragments first too; addresses still checked.
  Frame g = make_udp(16);
  g[kL3 + 9] = 6;
  put16(&g, kL3 + 6, wire::kIpFlagMoreFragments);
  fix_ip_checksum(&g);
  EXPECT_EQ(parse(g).kind, FrameKind::kIpv4Fragment);
  put32(&g, kL3 + 16, kOtherIp);
  fix_ip_checksum(&g);
  EXPECT_DROP(g, DropReason::kIpNotForUs);
}

TEST(ParseDrop, UnknownIpProto) {
  Frame f = make_udp(4);
  f[kL3 + 9] = 6;  // TCP
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kUnknownIpProto);
}

TEST(ParseDrop, TruncatedUdp) {
  Frame f = make_udp(0);
  put16(&f, kL3 + 2, 20 + 7);  // IP payload has 7 of the 8 header bytes
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kTruncatedUdp);
}

TEST(ParseDrop, BadUdpLength) {
  Frame f = make_udp(4);
  put16(&f, kL4 + 4, 7);
  EXPECT_DROP(f, DropReason::kBadUdpLength);
  f = make_udp(4);
  put16(&f, kL4 + 4, 13);  // one more than the IP payload
  EXPECT_DROP(f, DropReason::kBadUdpLength);
  // udp.length must fit total_length, not just the frame (padding is not data).
  f = make_udp(4);
  f.resize(60, 0);
  put16(&f, kL4 + 4, 20);
  EXPECT_DROP(f, DropReason::kBadUdpLength);
}

TEST(ParseDrop, BadUdpChecksum) {
  Frame f = make_udp(100);
  f[42 + 50] ^= 0x01;  // payload bit flip
  EXPECT_DROP(f, DropReason::kBadUdpChecksum);
  f = make_udp(100);
  put32(&f, kL3 + 12, kOtherIp);  // source address covered by the pseudo header
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kBadUdpChecksum);
}

TEST(ParseDrop, TruncatedIcmp) {
  Frame f = make_icmp_echo(0);
  put16(&f, kL3 + 2, 20 + 4);
  fix_ip_checksum(&f);
  EXPECT_DROP(f, DropReason::kTruncatedIcmp);
}

TEST(ParseDrop, BadIcmpChecksum) {
  Frame f = make_icmp_echo(32);
  f.back() ^= 0x80;
  EXPECT_DROP(f, DropReason::kBadIcmpChecksum);
  auto o = local_opts();
  o.l4_checksum_ok = true;
  EXPECT_EQ(parse(f, o).kind, FrameKind::kIcmpEcho);
}

TEST(ParseDrop, IcmpUnhandled) {
  // Destination unreachable has its own tests (test_icmp_unreachable.cc).
  for (uint8_t type : {wire::kIcmpEchoReply, uint8_t{11}, uint8_t{13}}) {
    Frame f = make_icmp_echo(8);
    f[kL4] = type;
    fix_icmp_checksum(&f);
    EXPECT_DROP(f, DropReason::kIcmpUnhandled);
  }
  Frame f = make_icmp_echo(8);
  f[kL4 + 1] = 1;  // echo request with a nonzero code
  fix_icmp_checksum(&f);
  EXPECT_DROP(f, DropReason::kIcmpUnhandled);
}

// ---- robustness --------------------------------------------------------------

std::vector<Frame> valid_frames() {
  return {make_udp(0),
          make_udp(1),
          make_udp(100),
          make_icmp_echo(0),
          make_icmp_echo(33),
          make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp),
          make_arp(wire::kArpOpReply, kOtherIp, kOtherIp)};
}

TEST(ParseRobust, EveryTruncationIsDropped) {
  for (const Frame& full : valid_frames()) {
    ASSERT_NE(parse(full).kind, FrameKind::kDrop);
    for (size_t len = 0; len < full.size(); ++len) {
      // Exact-size heap copy: ASan reports any read at or past f.size().
      const Frame f(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
      const ParsedFrame p = wire::parse_frame(f.data(), f.size(), local_opts());
      EXPECT_EQ(p.kind, FrameKind::kDrop) << "len " << len;
      EXPECT_NE(p.kind, FrameKind::kUdp);
      EXPECT_LT(static_cast<size_t>(p.drop), kDropReasonCount);
    }
  }
}

TEST(ParseRobust, RandomBitFlipsNeverEscapeTheBuffer) {
  std::mt19937 rng(12345);
  const auto frames = valid_frames();
  for (int iter = 0; iter < 20000; ++iter) {
    Frame f = frames[rng() % frames.size()];
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) f[rng() % f.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    f.resize(rng() % (f.size() + 1));
    auto o = local_opts();
    o.ip_checksum_ok = rng() & 1;
    o.l4_checksum_ok = rng() & 1;
    const ParsedFrame p = wire::parse_frame(f.data(), f.size(), o);
    if (p.kind == FrameKind::kUdp) {
      ASSERT_LE(static_cast<size_t>(p.payload_offset) + p.payload_len, f.size());
      ASSERT_LE(static_cast<size_t>(p.l3_offset) + p.ip_total_len, f.size());
    }
  }
}

// ---- parse_udp (reassembled datagrams) -------------------------------------

TEST(ParseUdpDatagram, ValidDatagram) {
  const Frame f = make_udp(1472);
  const uint8_t* ip = f.data() + kL3;
  ParsedFrame out;
  ASSERT_EQ(wire::parse_udp(ip, f.size() - kL3, false, &out), DropReason::kCount);
  EXPECT_EQ(out.kind, FrameKind::kUdp);
  EXPECT_EQ(out.src_ip, kPeerIp);
  EXPECT_EQ(out.dst_ip, kLocalIp);
  EXPECT_EQ(out.src_port, 4000);
  EXPECT_EQ(out.dst_port, 5000);
  EXPECT_EQ(out.l4_offset, 20);
  EXPECT_EQ(out.payload_offset, 28);
  EXPECT_EQ(out.payload_len, 1472);
}

TEST(ParseUdpDatagram, StaleFirstFragmentHeader) {
  // Reassembly kept the first fragment's header (MF set, total_length of that
  // fragment only); the datagram length comes from `len`.
  Frame f = make_udp(3000);
  put16(&f, kL3 + 2, 1500);
  put16(&f, kL3 + 6, wire::kIpFlagMoreFragments);
  ParsedFrame out;
  ASSERT_EQ(wire::parse_udp(f.data() + kL3, f.size() - kL3, false, &out), DropReason::kCount);
  EXPECT_EQ(out.payload_len, 3000);
  EXPECT_EQ(out.ip_total_len, 3028);
}

TEST(ParseUdpDatagram, Drops) {
  const Frame good = make_udp(500);
  const size_t len = good.size() - kL3;
  ParsedFrame out;
  Frame f = good;
  EXPECT_EQ(wire::parse_udp(f.data() + kL3, 19, false, &out), DropReason::kTruncatedIp);
  EXPECT_EQ(wire::parse_udp(f.data() + kL3, 27, false, &out), DropReason::kTruncatedUdp);
  EXPECT_EQ(wire::parse_udp(f.data() + kL3, len - 1, false, &out), DropReason::kBadUdpLength);
  f[kL3] = 0x55;
  EXPECT_EQ(wire::parse_udp(f.data() + kL3, len, false, &out), DropReason::kBadIpVersion);
  f = good;
  f[kL3] = 0x43;
  EXPECT_EQ(wire::parse_udp(f.data() + kL3, len, false, &out), DropReason::kBadIhl);
  f = good;
  f[kL3 + 9] = wire::kIpProtoIcmp;
  EXPECT_EQ(wire::parse_udp(f.data() + kL3, len, false, &out), DropReason::kUnknownIpProto);
  f = good;
  f[200] ^= 4;
  EXPECT_EQ(wire::parse_udp(f.data() + kL3, len, false, &out), DropReason::kBadUdpChecksum);
  EXPECT_EQ(wire::parse_udp(f.data() + kL3, len, true, &out), DropReason::kCount);
}

TEST(ParseUdpDatagram, PseudoHeaderOverSegments) {
  // Verifying a datagram split across "mbufs" at odd offsets, as the engine
  // does for chains: pseudo header first, then each segment.
  const Frame f = make_udp(999);
  wire::Ipv4Hdr ip;
  std::memcpy(&ip, f.data() + kL3, sizeof(ip));
  const uint8_t* udp = f.data() + kL4;
  const size_t udp_len = f.size() - kL4;
  for (size_t cut : {1u, 7u, 8u, 9u, 500u, 1006u}) {
    wire::ChecksumAccumulator acc;
    wire::add_udp_pseudo_header(ip, static_cast<uint16_t>(udp_len), &acc);
    acc.add(udp, cut);
    acc.add(udp + cut, udp_len - cut);
    EXPECT_EQ(acc.finish(), 0) << cut;
  }
  // Seeding after an odd segment gives the same result.
  wire::ChecksumAccumulator acc;
  acc.add(udp, 3);
  wire::add_udp_pseudo_header(ip, static_cast<uint16_t>(udp_len), &acc);
  acc.add(udp + 3, udp_len - 3);
  EXPECT_EQ(acc.finish(), 0);
}

}  // namespace
}  // namespace machnet::test
