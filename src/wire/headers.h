// Wire layouts of Ethernet, ARP, IPv4, ICMP and UDP. Multi-byte fields are
// stored in network byte order exactly as on the wire; accessors convert.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace machnet::wire {

using MacAddr = std::array<uint8_t, 6>;
constexpr MacAddr kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr MacAddr kZeroMac = {0, 0, 0, 0, 0, 0};

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint8_t kIpProtoIcmp = 1;
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint16_t kArpOpRequest = 1;
constexpr uint16_t kArpOpReply = 2;
constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpDestUnreachable = 3;
constexpr uint8_t kIcmpEchoRequest = 8;
constexpr uint16_t kIpFlagMoreFragments = 0x2000;
constexpr uint16_t kIpFlagDontFragment = 0x4000;
constexpr uint16_t kIpFragOffsetMask = 0x1fff;
constexpr size_t kMaxUdpPayload = 65507;  // 65535 - 20 (IPv4) - 8 (UDP)

#pragma pack(push, 1)
struct EthHdr {
  MacAddr dst;
  MacAddr src;
  uint16_t ethertype;  // network order
};

struct ArpHdr {    // Ethernet + IPv4 only
  uint16_t htype;  // 1
  uint16_t ptype;  // 0x0800
  uint8_t hlen;    // 6
  uint8_t plen;    // 4
  uint16_t op;
  MacAddr sha;
  uint32_t spa;  // network order
  MacAddr tha;
  uint32_t tpa;  // network order
};

struct Ipv4Hdr {
  uint8_t version_ihl;
  uint8_t tos;
  uint16_t total_length;
  uint16_t id;
  uint16_t frag_off;  // flags (3 bits) + offset in 8-byte units
  uint8_t ttl;
  uint8_t protocol;
  uint16_t checksum;
  uint32_t src;  // network order
  uint32_t dst;  // network order

  size_t header_len() const { return static_cast<size_t>(version_ihl & 0x0f) * 4; }
  uint8_t version() const { return version_ihl >> 4; }
  bool is_fragment() const {
    return (ntohs(frag_off) & (kIpFlagMoreFragments | kIpFragOffsetMask)) != 0;
  }
};

struct UdpHdr {
  uint16_t src_port;
  uint16_t dst_port;
  uint16_t length;  // header + payload
  uint16_t checksum;
};

struct IcmpHdr {
  uint8_t type;
  uint8_t code;
  uint16_t checksum;
  uint16_t id;
  uint16_t seq;
};
#pragma pack(pop)

static_assert(sizeof(EthHdr) == 14, "Ethernet header is 14 bytes");
static_assert(sizeof(ArpHdr) == 28, "ARP (Ethernet/IPv4) is 28 bytes");
static_assert(sizeof(Ipv4Hdr) == 20, "IPv4 header without options is 20 bytes");
static_assert(sizeof(UdpHdr) == 8, "UDP header is 8 bytes");
static_assert(sizeof(IcmpHdr) == 8, "ICMP echo header is 8 bytes");

constexpr size_t kEthHdrLen = sizeof(EthHdr);
constexpr size_t kUdpHeadersLen = sizeof(EthHdr) + sizeof(Ipv4Hdr) + sizeof(UdpHdr);  // 42
constexpr size_t kArpFrameLen = sizeof(EthHdr) + sizeof(ArpHdr);                      // 42

// "10.1.2.3" <-> host-order address. parse returns false on malformed input.
bool parse_ipv4(const std::string& text, uint32_t* host_order_ip);

std::string format_ipv4(uint32_t host_order_ip);
bool parse_mac(const std::string& text, MacAddr* mac);
std::string format_mac(const MacAddr& mac);

}  // namespace machnet::wire
