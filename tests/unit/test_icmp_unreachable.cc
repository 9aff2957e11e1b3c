// ICMP destination unreachable: built for datagrams to no socket, parsed when
// a peer reports one of ours, and every malformed report dropped and counted.
#include <gtest/gtest.h>

#include "frames.h"

namespace machnet::test {
namespace {

// The peer's view: it sent `orig` (a UDP datagram to us) and we answer with
// port unreachable, built by us.
Frame unreachable_about(const Frame& orig, uint8_t code = 3) {
  Frame f(wire::kUdpHeadersLen + wire::kIcmpQuoteMax);
  size_t n = wire::build_icmp_unreachable(f.data(), code, kLocalMac, kPeerMac, kLocalIp, kPeerIp,
                                          orig.data() + kL3, orig.size() - kL3);
  f.resize(n);
  return f;
}

wire::ParseOptions peer_opts() {
  wire::ParseOptions o;
  o.local_ip = kPeerIp;
  return o;
}

TEST(IcmpUnreachable, BuildThenParseRoundTrip) {
  Frame orig = make_udp(100, 1, 4000, 5000);
  Frame f = unreachable_about(orig);
  ASSERT_EQ(f.size(), kL4 + 8 + (orig.size() - kL3));  // whole small datagram quoted
  EXPECT_EQ(wire::internet_checksum(f.data() + kL3, 20), 0);
  EXPECT_EQ(wire::internet_checksum(f.data() + kL4, f.size() - kL4), 0);
  auto pf = parse(f, peer_opts());
  ASSERT_EQ(pf.kind, wire::FrameKind::kIcmpUnreachable);
  EXPECT_EQ(pf.icmp_code, 3);
  EXPECT_EQ(pf.src_port, 4000);  // the peer's own port
  EXPECT_EQ(pf.dst_port, 5000);
  EXPECT_EQ(pf.inner_dst_ip, kLocalIp);
  EXPECT_EQ(pf.src_ip, kLocalIp);
}

TEST(IcmpUnreachable, QuoteIsBoundedTo576ByteDatagram) {
  Frame orig = make_udp(1400);
  Frame f = unreachable_about(orig);
  EXPECT_EQ(f.size() - kL3, 576u);
  EXPECT_EQ(parse(f, peer_opts()).kind, wire::FrameKind::kIcmpUnreachable);
}

TEST(IcmpUnreachable, RefusesToQuoteTooLittle) {
  Frame orig = make_udp(100);
  Frame f(200);
  EXPECT_EQ(wire::build_icmp_unreachable(f.data(), 3, kLocalMac, kPeerMac, kLocalIp, kPeerIp,
                                         orig.data() + kL3, 20 + 7),
            0u);
}

TEST(IcmpUnreachable, ReportsAboutOthersOrNonUdpAreUnhandled) {
  Frame orig = make_udp(10);
  Frame f = unreachable_about(orig);
  // Parsed by a host that did not send the quoted datagram.
  wire::ParseOptions o;
  o.local_ip = kPeerIp;
  Frame g = f;
  put32(&g, kL4 + 8 + 12, kOtherIp);  // inner source: someone else
  fix_icmp_checksum(&g);
  EXPECT_EQ(parse(g, o).drop, DropReason::kIcmpUnhandled);
  g = f;
  g[kL4 + 8 + 9] = wire::kIpProtoIcmp;  // inner protocol not UDP
  fix_icmp_checksum(&g);
  EXPECT_EQ(parse(g, o).drop, DropReason::kIcmpUnhandled);
}

TEST(IcmpUnreachable, MalformedReportsAreDropped) {
  Frame orig = make_udp(10);
  Frame f = unreachable_about(orig);
  Frame bad = f;
  bad[bad.size() - 1] ^= 0x5a;
  EXPECT_EQ(parse(bad, peer_opts()).drop, DropReason::kBadIcmpChecksum);
  // Quote shorter than an IP header + 8 bytes.
  for (size_t keep : {0u, 10u, 27u}) {
    Frame t(f.begin(), f.begin() + static_cast<long>(kL4 + 8 + keep));
    put16(&t, kL3 + 2, static_cast<uint16_t>(t.size() - kL3));
    fix_ip_checksum(&t);
    fix_icmp_checksum(&t);
    EXPECT_EQ(parse(t, peer_opts()).drop, DropReason::kTruncatedIcmp) << keep;
  }
  // Inner IHL pointing past the quote.
  Frame ihl = f;
  ihl[kL4 + 8] = 0x4f;
  fix_icmp_checksum(&ihl);
  EXPECT_EQ(parse(ihl, peer_opts()).drop, DropReason::kTruncatedIcmp);
}

// Found by the fuzzer: an echo request whose only non-zero words are the
// type and checksum. The incremental update gave 0x0000, which receivers read
// as a bad checksum; the reply needs 0xffff.
TEST(IcmpEcho, ReplyToAllZeroRequestHasValidChecksum) {
  Frame f = make_icmp_echo(5);
  for (size_t i = kL4 + 4; i < f.size(); i++) f[i] = 0;  // id, seq and payload zero
  fix_icmp_checksum(&f);
  auto pf = parse(f);
  ASSERT_EQ(pf.kind, wire::FrameKind::kIcmpEcho);
  wire::icmp_echo_request_to_reply(f.data(), pf.l3_offset, pf.l4_offset, pf.ip_total_len);
  EXPECT_EQ(wire::internet_checksum(f.data() + kL4, f.size() - kL4), 0);
  EXPECT_EQ(get16(f, kL4 + 2), 0xffff);
}

}  // namespace
}  // namespace machnet::test
