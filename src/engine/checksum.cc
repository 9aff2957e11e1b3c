#include "engine/checksum.h"

#include <arpa/inet.h>

namespace machnet::engine {
namespace {

// Ones' complement addition of two raw sums in the same byte order.
inline uint16_t add(uint32_t a, uint32_t b) {
  uint32_t s = a + b;
  return static_cast<uint16_t>((s & 0xffff) + (s >> 16));
}

// The raw sum of the UDP pseudo-header (RFC 768) in network byte order.
uint16_t pseudo_header_sum(const wire::Ipv4Hdr* ip, uint16_t udp_len) {
  struct {
    uint32_t src, dst;
    uint8_t zero, proto;
    uint16_t len;
  } __attribute__((packed)) ph = {ip->src, ip->dst, 0, wire::kIpProtoUdp, htons(udp_len)};
  return rte_raw_cksum(&ph, sizeof(ph));
}

}  // namespace

uint16_t udp_checksum_iov(const wire::Ipv4Hdr* ip, const wire::UdpHdr* udp, const iovec* iov,
                          int iovcnt) {
  uint16_t sum = add(pseudo_header_sum(ip, ntohs(udp->length)), rte_raw_cksum(udp, sizeof(*udp)));
  size_t done = sizeof(*udp);
  for (int i = 0; i < iovcnt; i++) {
    uint16_t s = rte_raw_cksum(iov[i].iov_base, iov[i].iov_len);
    // A buffer that starts on an odd byte of the datagram sums its words
    // shifted by one byte: swap its sum back (RFC 1071, byte order independence).
    if (done & 1) s = rte_bswap16(s);
    sum = add(sum, s);
    done += iov[i].iov_len;
  }
  uint16_t c = static_cast<uint16_t>(~sum);
  return c == 0 ? 0xffff : c;
}

bool udp_checksum_ok(const rte_mbuf* m, const wire::Ipv4Hdr* ip, uint32_t l4, uint16_t udp_len) {
  // Segment by segment with rte_raw_cksum rather than rte_raw_cksum_mbuf:
  // DPDK 22.11's truncates a segment's unreduced sum to 16 bits before the
  // byte swap a segment starting on an odd byte needs, losing its carries.
  uint16_t sum = pseudo_header_sum(ip, udp_len);
  uint32_t off = l4, left = udp_len, done = 0;
  for (const rte_mbuf* seg = m; seg != nullptr && left > 0; seg = seg->next) {
    if (off >= seg->data_len) {
      off -= seg->data_len;
      continue;
    }
    uint32_t n = seg->data_len - off;
    if (n > left) n = left;
    uint16_t s = rte_raw_cksum(rte_pktmbuf_mtod_offset(seg, const uint8_t*, off), n);
    if (done & 1) s = rte_bswap16(s);
    sum = add(sum, s);
    done += n;
    left -= n;
    off = 0;
  }
  return left == 0 && sum == 0xffff;
}

}  // namespace machnet::engine
