// IPv4 reassembly table (RFC 791, RFC 815), the rules Linux follows
// (net/ipv4/ip_fragment.c): fragments in any order; a fragment that repeats
// bytes already held is a duplicate and is dropped alone; one that overlaps
// them otherwise kills its whole datagram (RFC 5722's rule, which Linux
// applies to IPv4 too); a last fragment that disagrees with what was seen,
// an empty fragment or a datagram over 65,535 bytes kills it as well.
//
// Pure logic: buffers are opaque handles (mbufs in the engine), time is an
// argument in the caller's units. Every handle given to add() comes back
// exactly once: in completed() or through FragEvents::drop() with the reason
// (or release() from clear()). All storage is allocated in the constructor;
// no call allocates. Bounded: at most max_datagrams in reassembly, at most
// max_fragments handles and max_bytes held, each datagram for at most
// `timeout` after its first fragment (the kernel's ipfrag_time; no refresh).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/drop_reason.h"

namespace machnet::net {

struct FragLimits {
  uint32_t max_datagrams = 4096;      // frag.max_flows
  uint32_t max_fragments = 2048;      // frag.max_mbufs: handles held at once
  uint64_t max_bytes = 4u << 20;      // frag.max_bytes: sum of FragIn::cost held
  uint64_t timeout = 30'000'000'000;  // in the units of `now` (ns: ipfrag_time)
};

struct FragKey {
  uint32_t src = 0, dst = 0;
  uint16_t id = 0;
  uint8_t proto = 0;
  bool operator==(const FragKey& o) const {
    return src == o.src && dst == o.dst && id == o.id && proto == o.proto;
  }
};

// One fragment as received.
struct FragIn {
  uint32_t offset = 0;       // payload byte offset (fragment offset field * 8)
  uint32_t len = 0;          // payload bytes (IPv4 total_length - header length)
  bool more = false;         // MF set
  uint16_t header_len = 20;  // this fragment's IPv4 header length
  uint32_t cost = 0;         // bytes charged against max_bytes (frame size)
  void* buf = nullptr;
};

// A piece of a completed datagram, in offset order. `len` may be less than
// FragIn::len: a non-last fragment's payload is cut to a multiple of 8, as
// Linux does; the caller trims the buffer to it.
struct FragPiece {
  void* buf;
  uint32_t offset;
  uint32_t len;
};

enum class FragResult : uint8_t {
  kHeld,      // kept, waiting for the rest
  kComplete,  // the datagram is whole: completed() lists its pieces
  kDropped,   // the fragment (and maybe its datagram) went to drop()
};

class FragEvents {
 public:
  virtual ~FragEvents() = default;
  virtual void drop(void* buf, DropReason reason) = 0;
  virtual void release(void* buf) = 0;  // clear(): not a drop of the traffic's
};

class FragTable {
 public:
  static constexpr uint32_t kMaxDatagram = 65535;  // IPv4 total_length

  FragTable(const FragLimits& limits, FragEvents* events);
  ~FragTable();
  FragTable(const FragTable&) = delete;
  FragTable& operator=(const FragTable&) = delete;

  FragResult add(const FragKey& key, const FragIn& in, uint64_t now);
  // After kComplete, until the next add(): the pieces in order (the first at
  // offset 0, each starting where the previous ends), the payload length and
  // the first fragment's header length. The caller owns the buffers.
  const FragPiece* completed() const;
  size_t completed_count() const;
  uint32_t completed_len() const;
  uint16_t completed_header_len() const;

  // Drops (kFragTimeout) every datagram whose first fragment came `timeout`
  // or more before now.
  void expire(uint64_t now);
  // Releases everything held (shutdown).
  void clear();

  size_t datagrams() const;
  size_t fragments() const;
  uint64_t bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace machnet::net
