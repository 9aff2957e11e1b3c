// Text forms of IPv4 and MAC addresses.
#include <gtest/gtest.h>

#include "wire/headers.h"

namespace machnet::wire {
namespace {

TEST(Ipv4Text, ParsesValidAddresses) {
  uint32_t ip = 1;
  ASSERT_TRUE(parse_ipv4("10.1.2.3", &ip));
  EXPECT_EQ(ip, 0x0a010203u);
  ASSERT_TRUE(parse_ipv4("0.0.0.0", &ip));
  EXPECT_EQ(ip, 0u);
  ASSERT_TRUE(parse_ipv4("255.255.255.255", &ip));
  EXPECT_EQ(ip, 0xffffffffu);
  ASSERT_TRUE(parse_ipv4("192.168.0.100", &ip));
  EXPECT_EQ(ip, 0xc0a80064u);
}

TEST(Ipv4Text, RejectsMalformed) {
  for (const char* bad : {"",
                          "1.2.3",
                          "1.2.3.4.5",
                          "256.1.1.1",
                          "1.2.3.256",
                          "1.2.3.4x",
                          "x1.2.3.4",
                          "1..2.3",
                          ".1.2.3",
                          "1.2.3.",
                          " 1.2.3.4",
                          "1.2.3.4 ",
                          "1.2.3.-4",
                          "+1.2.3.4",
                          "1.2.3.0004",
                          "1.2.3.1000",
                          "010.0.0.1",
                          "1.2.3.00",
                          "192.168.000.001",
                          "a.b.c.d",
                          "1,2,3,4",
                          "99999999999.1.1.1"}) {
    uint32_t ip = 0x5a5a5a5a;
    EXPECT_FALSE(parse_ipv4(bad, &ip)) << '"' << bad << '"';
    EXPECT_EQ(ip, 0x5a5a5a5au) << "output untouched on failure: " << bad;
  }
}

TEST(Ipv4Text, FormatRoundTrips) {
  EXPECT_EQ(format_ipv4(0x0a010203), "10.1.2.3");
  EXPECT_EQ(format_ipv4(0), "0.0.0.0");
  EXPECT_EQ(format_ipv4(0xffffffff), "255.255.255.255");
  for (uint32_t ip : {0x01020304u, 0xc0a80a01u, 0x7f000001u, 0x80ff00feu}) {
    uint32_t back = 0;
    ASSERT_TRUE(parse_ipv4(format_ipv4(ip), &back));
    EXPECT_EQ(back, ip);
  }
}

TEST(MacText, ParsesValid) {
  MacAddr m{};
  ASSERT_TRUE(parse_mac("02:00:5e:10:AB:ff", &m));
  EXPECT_EQ(m, (MacAddr{0x02, 0x00, 0x5e, 0x10, 0xab, 0xff}));
  ASSERT_TRUE(parse_mac("ff-ff-ff-ff-ff-ff", &m));
  EXPECT_EQ(m, kBroadcastMac);
}

TEST(MacText, RejectsMalformed) {
  for (const char* bad :
       {"", "02:00:5e:10:ab", "02:00:5e:10:ab:ff:00", "02:00:5e:10:ab:fg", "02:00:5e:10:ab:f",
        "2:0:5e:10:ab:ff", "02:00-5e:10:ab:ff", "02.00.5e.10.ab.ff", "02:00:5e:10:ab:ff ",
        "0200:5e:10:ab:ff:", "020005e10abff0000"}) {
    MacAddr m = {1, 2, 3, 4, 5, 6};
    EXPECT_FALSE(parse_mac(bad, &m)) << '"' << bad << '"';
    EXPECT_EQ(m, (MacAddr{1, 2, 3, 4, 5, 6})) << bad;
  }
}

TEST(MacText, FormatRoundTrips) {
  const MacAddr m = {0x02, 0x00, 0x5e, 0x10, 0xab, 0xff};
  EXPECT_EQ(format_mac(m), "02:00:5e:10:ab:ff");
  MacAddr back{};
  ASSERT_TRUE(parse_mac(format_mac(m), &back));
  EXPECT_EQ(back, m);
}

TEST(Ipv4Hdr, Accessors) {
  Ipv4Hdr h{};
  h.version_ihl = 0x46;
  EXPECT_EQ(h.version(), 4);
  EXPECT_EQ(h.header_len(), 24u);
  h.frag_off = htons(kIpFlagDontFragment);
  EXPECT_FALSE(h.is_fragment());
  h.frag_off = htons(kIpFlagMoreFragments);
  EXPECT_TRUE(h.is_fragment());
  h.frag_off = htons(1);
  EXPECT_TRUE(h.is_fragment());
}

}  // namespace
}  // namespace machnet::wire
