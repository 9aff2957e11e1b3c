#include "wire/checksum.h"

#include <arpa/inet.h>

namespace machnet::wire {

void ChecksumAccumulator::add(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  if (len == 0) return;
  uint64_t sum = sum_;
  // The previous segment ended mid-word: this byte is that word's low half.
  if (odd_) {
    sum += p[0];
    ++p;
    --len;
    odd_ = false;
  }
  // Words are summed as big-endian values so the accumulator holds host-order
  // quantities and mixes freely with add_u16/add_u32. A 64-bit sum of 16-bit
  // words cannot overflow for any buffer that fits in memory.
  while (len >= 2) {
    sum += (static_cast<uint32_t>(p[0]) << 8) | p[1];
    p += 2;
    len -= 2;
  }
  if (len == 1) {
    sum += static_cast<uint32_t>(p[0]) << 8;
    odd_ = true;
  }
  sum_ = sum;
}

uint16_t ChecksumAccumulator::finish() const {
  uint64_t s = sum_;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return htons(static_cast<uint16_t>(~s & 0xffff));
}

uint16_t internet_checksum(const void* data, size_t len) {
  ChecksumAccumulator acc;
  acc.add(data, len);
  return acc.finish();
}

uint16_t raw_sum(const void* data, size_t len) {
  return static_cast<uint16_t>(~internet_checksum(data, len));
}

}  // namespace machnet::wire
