// The engine's checksums where the device does not do them: DPDK's helpers
// (rte_ipv4_cksum, rte_ipv4_udptcp_cksum, rte_raw_cksum). src/wire keeps its
// own portable code for the unit tests and the fuzzer; the engine hands the
// parser raw_checksum() so received frames are verified by DPDK's as well.
#pragma once

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "wire/headers.h"

namespace machnet::engine {

static_assert(sizeof(wire::Ipv4Hdr) == sizeof(rte_ipv4_hdr), "same IPv4 header");

inline const rte_ipv4_hdr* dpdk_ip(const wire::Ipv4Hdr* ip) {
  return reinterpret_cast<const rte_ipv4_hdr*>(ip);
}

// wire::RawSumFn: the ones' complement sum of a buffer, not complemented, in
// the buffer's byte order (0xffff over a header whose checksum is right).
inline uint16_t raw_checksum(const void* data, size_t len) {
  return rte_raw_cksum(data, len);
}

// The IPv4 header checksum to store (the field must be 0).
inline uint16_t ipv4_checksum(const wire::Ipv4Hdr* ip) {
  return rte_ipv4_cksum(dpdk_ip(ip));
}

// The UDP checksum to store for a datagram contiguous after its IPv4 header
// (UDP checksum field 0; 0 comes out as 0xffff, RFC 768).
inline uint16_t udp_checksum(const wire::Ipv4Hdr* ip, const void* udp) {
  return rte_ipv4_udptcp_cksum(dpdk_ip(ip), udp);
}

// The pseudo-header sum a NIC with UDP checksum offload expects in the field.
inline uint16_t udp_offload_seed(const wire::Ipv4Hdr* ip) {
  return rte_ipv4_phdr_cksum(dpdk_ip(ip), 0);
}

// The UDP checksum of a datagram whose payload is spread over iov (the UDP
// header's checksum field 0), for datagrams sent as fragments.
uint16_t udp_checksum_iov(const wire::Ipv4Hdr* ip, const wire::UdpHdr* udp, const iovec* iov,
                          int iovcnt);

// True when the UDP checksum of the datagram at offset l4 of the chain m
// (udp_len bytes, pseudo-header from ip) is right. A datagram without one
// (checksum field 0) is the caller's to let through.
bool udp_checksum_ok(const rte_mbuf* m, const wire::Ipv4Hdr* ip, uint32_t l4, uint16_t udp_len);

}  // namespace machnet::engine
