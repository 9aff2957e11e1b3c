// Internet checksum (RFC 1071) for byte buffers and for data split across
// several buffers (mbuf chains), where a segment may end on an odd byte.
#pragma once

#include <cstddef>
#include <cstdint>

namespace machnet::wire {

class ChecksumAccumulator {
 public:
  // Adds bytes in network order. Segments may have any length; an odd trailing
  // byte is carried into the next call.
  void add(const void* data, size_t len);
  // Adds a 16-bit value given in host order (pseudo-header fields).
  void add_u16(uint16_t host_value) { sum_ += host_value; }
  void add_u32(uint32_t host_value) { sum_ += (host_value >> 16) + (host_value & 0xffff); }
  // The one's-complement of the folded sum, in network byte order, ready to
  // store in a header. A packet verifies when finish() over it returns 0.
  uint16_t finish() const;

 private:
  uint64_t sum_ = 0;
  bool odd_ = false;  // an odd number of bytes has been added so far
};

// One's-complement checksum of a single buffer, network byte order.
uint16_t internet_checksum(const void* data, size_t len);

// The one's-complement sum of a buffer, not complemented, in the buffer's own
// byte order: 0xffff over data whose checksum field is right. raw_sum is this
// library's; the engine passes DPDK's (rte_raw_cksum) to the parser instead.
using RawSumFn = uint16_t (*)(const void* data, size_t len);
uint16_t raw_sum(const void* data, size_t len);

}  // namespace machnet::wire
