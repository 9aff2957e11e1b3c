// libFuzzer target for IPv4 reassembly (net::FragTable): the input is a
// table's limits and then a sequence of fragments (any key, offset, length,
// MF, header length, cost) and clock advances. Checked after every step:
// each handle given to the table comes back exactly once (completed, or
// dropped with a reason), the table stays within its limits, a completed
// datagram's pieces tile [0, len) with no gap or overlap and fit in 65,535
// bytes with their header; at the end clear() returns everything held.
#include <cstddef>
#include <cstdint>
#include <set>

#include "fuzz_check.h"
#include "net/ip_reassembly.h"

namespace {

using machnet::DropReason;
using machnet::kDropReasonCount;
namespace net = machnet::net;

class Events : public net::FragEvents {
 public:
  void drop(void* buf, DropReason r) override {
    FUZZ_CHECK(static_cast<size_t>(r) < kDropReasonCount);
    back(buf);
  }
  void release(void* buf) override { back(buf); }
  void back(void* buf) {
    // Every handle returns once, and only handles that were given.
    FUZZ_CHECK(outstanding.erase(reinterpret_cast<uintptr_t>(buf)) == 1);
  }
  std::set<uintptr_t> outstanding;
};

class Reader {
 public:
  Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool more() const { return i_ < n_; }
  uint8_t u8() { return i_ < n_ ? d_[i_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() << 8 | u8()); }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t i_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  net::FragLimits lim;
  lim.max_datagrams = 1 + in.u8() % 8;
  lim.max_fragments = 1 + in.u8() % 96;
  lim.max_bytes = 64 + uint64_t{in.u16()} * 4;
  lim.timeout = 1 + in.u8();
  Events ev;
  uintptr_t next = 0;
  uint64_t now = 0;
  {
    net::FragTable t(lim, &ev);
    while (in.more()) {
      uint8_t op = in.u8();
      if (op >= 0xf0) {  // the clock moves, expiry runs
        now += in.u8();
        t.expire(now);
      } else {
        net::FragKey k;
        k.src = 0x0a000002 + (op & 1);
        k.id = static_cast<uint16_t>((op >> 1) & 7);
        k.proto = (op & 0x10) ? 17 : 1;
        uint16_t fo = in.u16();
        net::FragIn f;
        // Offsets near the start (small datagrams complete) or anywhere.
        f.offset = (op & 0x20) ? uint32_t{fo & 0x1fffu} * 8 : uint32_t{fo & 0x1fu} * 8;
        uint16_t len = in.u16();
        f.len = (op & 0x40) ? len : len % 300;
        f.more = (fo & 0x2000) != 0;
        f.header_len = (op & 0x80) ? static_cast<uint16_t>(20 + 4 * (fo >> 14)) : 20;
        f.cost = f.len + 34;
        f.buf = reinterpret_cast<void*>(++next);
        ev.outstanding.insert(next);
        net::FragResult r = t.add(k, f, now);
        if (r == net::FragResult::kComplete) {
          size_t n = t.completed_count();
          FUZZ_CHECK(n >= 1);
          uint32_t at = 0;
          for (size_t i = 0; i < n; i++) {
            const net::FragPiece& p = t.completed()[i];
            FUZZ_CHECK(p.offset == at);
            FUZZ_CHECK(p.len > 0);
            at += p.len;
            ev.back(p.buf);
          }
          FUZZ_CHECK(at == t.completed_len());
          FUZZ_CHECK(t.completed_header_len() + at <= net::FragTable::kMaxDatagram);
        } else {
          FUZZ_CHECK(t.completed_count() == 0);
        }
      }
      FUZZ_CHECK(t.datagrams() <= lim.max_datagrams);
      FUZZ_CHECK(t.fragments() <= lim.max_fragments);
      FUZZ_CHECK(t.bytes() <= lim.max_bytes);
      FUZZ_CHECK(t.fragments() == ev.outstanding.size());
    }
    t.clear();
    FUZZ_CHECK(t.datagrams() == 0 && t.fragments() == 0 && t.bytes() == 0);
  }
  FUZZ_CHECK(ev.outstanding.empty());
  return 0;
}
