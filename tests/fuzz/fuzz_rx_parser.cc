// libFuzzer target for the receive path: parse_frame under several option
// sets, then the follow-up steps the engine runs on accepted frames
// (parse_udp, icmp_echo_request_to_reply), and an ArpCache driven by the same
// bytes. Every invariant violation aborts, which libFuzzer reports as a crash.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "fuzz_check.h"
#include "net/arp_cache.h"
#include "wire/build.h"
#include "wire/checksum.h"
#include "wire/parse.h"

namespace {

using machnet::DropReason;
using machnet::kDropReasonCount;
namespace wire = machnet::wire;
namespace net = machnet::net;

constexpr uint32_t kLocalIp = 0x0a000001;

uint32_t be32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return ntohl(v);
}

// Option sets: a fixed address, and addresses taken from the frame itself so
// the fuzzer reaches L4 without having to guess 10.0.0.1.
std::vector<wire::ParseOptions> option_variants(const uint8_t* data, size_t size) {
  std::vector<wire::ParseOptions> v;
  wire::ParseOptions o;
  o.local_ip = kLocalIp;
  v.push_back(o);
  o.ip_checksum_ok = o.l4_checksum_ok = true;
  o.accept_broadcast_ip = true;
  v.push_back(o);
  if (size >= wire::kEthHdrLen + 20) {
    wire::ParseOptions d;
    d.local_ip = be32_at(data + wire::kEthHdrLen + 16);  // IPv4 dst
    d.accept_broadcast_ip = size > 0 && (data[size - 1] & 1);
    d.prefix_len = static_cast<uint8_t>(size > 0 ? data[size - 1] % 34 : 24);
    v.push_back(d);
    d.l4_checksum_ok = true;
    v.push_back(d);
  }
  if (size >= wire::kArpFrameLen) {
    wire::ParseOptions a;
    a.local_ip = be32_at(data + wire::kEthHdrLen + 24);  // ARP tpa
    v.push_back(a);
  }
  return v;
}

void check_udp(const std::vector<uint8_t>& frame, const wire::ParsedFrame& p, bool l4_ok) {
  const size_t len = frame.size();
  FUZZ_CHECK(p.l3_offset == wire::kEthHdrLen);
  FUZZ_CHECK(p.l4_offset >= p.l3_offset + 20 && p.l4_offset <= p.l3_offset + 60);
  FUZZ_CHECK(static_cast<size_t>(p.l3_offset) + p.ip_total_len <= len);
  FUZZ_CHECK(p.payload_offset == p.l4_offset + sizeof(wire::UdpHdr));
  FUZZ_CHECK(static_cast<size_t>(p.payload_offset) + p.payload_len <=
             static_cast<size_t>(p.l3_offset) + p.ip_total_len);
  // The reassembly path must agree with the single-frame path on the same
  // datagram. Exact-size copy so ASan sees any overread.
  std::vector<uint8_t> dgram(frame.begin() + p.l3_offset,
                             frame.begin() + p.l3_offset + p.ip_total_len);
  wire::ParsedFrame q;
  const DropReason r = wire::parse_udp(dgram.data(), dgram.size(), l4_ok, &q);
  FUZZ_CHECK(r == DropReason::kCount);
  FUZZ_CHECK(q.src_port == p.src_port && q.dst_port == p.dst_port);
  FUZZ_CHECK(q.payload_len == p.payload_len);
  FUZZ_CHECK(q.payload_offset + p.l3_offset == p.payload_offset);
  FUZZ_CHECK(q.src_ip == p.src_ip && q.dst_ip == p.dst_ip);
}

void check_icmp(const std::vector<uint8_t>& frame, const wire::ParsedFrame& p, bool l4_ok) {
  FUZZ_CHECK(static_cast<size_t>(p.l3_offset) + p.ip_total_len <= frame.size());
  FUZZ_CHECK(p.ip_total_len >= (p.l4_offset - p.l3_offset) + sizeof(wire::IcmpHdr));
  std::vector<uint8_t> reply(frame.begin(), frame.begin() + p.l3_offset + p.ip_total_len);
  wire::icmp_echo_request_to_reply(reply.data(), p.l3_offset, p.l4_offset, p.ip_total_len);
  const size_t hl = p.l4_offset - p.l3_offset;
  FUZZ_CHECK(wire::internet_checksum(reply.data() + p.l3_offset, hl) == 0);
  FUZZ_CHECK(reply[p.l4_offset] == wire::kIcmpEchoReply);
  if (!l4_ok) {  // the request verified, so the reply must too
    FUZZ_CHECK(wire::internet_checksum(reply.data() + p.l4_offset, p.ip_total_len - hl) == 0);
  }
  FUZZ_CHECK(std::memcmp(reply.data(), frame.data() + 6, 6) == 0);
}

// Handles are (index + 1) * 8; each must come back exactly once.
class Events : public net::ArpEvents {
 public:
  void send_request(uint32_t) override { ++requests; }
  void release(void* pkt, const wire::MacAddr& mac) override {
    FUZZ_CHECK((mac[0] & 1) == 0);
    give_back(pkt);
  }
  void drop(void* pkt, DropReason reason) override {
    FUZZ_CHECK(reason == DropReason::kNoArpEntry || reason == DropReason::kArpQueueFull);
    give_back(pkt);
  }
  void give_back(void* pkt) {
    FUZZ_CHECK(pkt != nullptr);
    FUZZ_CHECK(returned.insert(pkt).second);  // never twice
    FUZZ_CHECK(outstanding.erase(pkt) == 1 || just_given == pkt);
  }
  std::set<void*> outstanding;  // queued (kPending), not yet returned
  std::set<void*> returned;
  void* just_given = nullptr;  // the handle of the resolve() in progress
  uint64_t requests = 0;
};

void fuzz_arp(const uint8_t* data, size_t size, const std::vector<wire::ParsedFrame>& arps) {
  if (size < 2) return;
  net::ArpConfig cfg;
  cfg.reachable_ns = 1000;
  cfg.stale_ns = 4000;
  cfg.retry_ns = 100;
  cfg.max_requests = 1 + data[0] % 4;
  cfg.max_entries = 1 + data[1] % 8;
  cfg.max_pending_per_entry = data[0] >> 5;  // 0..7
  Events ev;
  uint64_t now = 0;
  uintptr_t next = 1;
  {
    net::ArpCache cache(cfg, &ev);
    for (const auto& a : arps) cache.learn(a.arp_spa, a.arp_sha, now, a.arp_tpa == kLocalIp);
    // Two bytes per operation: opcode/time step, then an address in a small
    // range so entries collide and the table fills.
    for (size_t i = 2; i + 1 < size; i += 2) {
      const uint8_t op = data[i];
      const uint32_t ip = 0x0a000000u + (data[i + 1] & 0x0f);
      now += (op >> 2) * 10;
      switch (op & 3) {
        case 0:
        case 1: {
          void* pkt = (data[i + 1] & 0x80) ? nullptr : reinterpret_cast<void*>(next++ * 8);
          ev.just_given = pkt;
          wire::MacAddr mac{};
          const net::ArpLookup r = cache.resolve(ip, now, pkt, &mac);
          ev.just_given = nullptr;
          if (pkt == nullptr) break;
          if (r == net::ArpLookup::kPending) {
            FUZZ_CHECK(ev.returned.count(pkt) == 0);
            ev.outstanding.insert(pkt);
          } else if (r == net::ArpLookup::kHit) {
            FUZZ_CHECK(ev.returned.insert(pkt).second);  // caller sends it
            FUZZ_CHECK((mac[0] & 1) == 0);
          } else {
            FUZZ_CHECK(ev.returned.count(pkt) == 1);  // already handed to drop()
          }
          break;
        }
        case 2: {
          const wire::MacAddr mac = {0x02, 0, 0, 0, 0, static_cast<uint8_t>(data[i + 1] >> 4)};
          cache.learn(ip, mac, now, (data[i + 1] & 0x40) != 0);
          FUZZ_CHECK(cache.state(ip, now) != net::ArpState::kIncomplete);
          break;
        }
        default:
          cache.tick(now);
          break;
      }
      FUZZ_CHECK(cache.size() <= cfg.max_entries);
    }
    FUZZ_CHECK(cache.requests_sent() == ev.requests);
  }
  // The destructor returned the rest: every handle exactly once.
  FUZZ_CHECK(ev.outstanding.empty());
  FUZZ_CHECK(ev.returned.size() == static_cast<size_t>(next - 1));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Exact-size heap copy: reads past `size` hit ASan's redzone.
  const std::vector<uint8_t> frame(data, data + size);
  std::vector<wire::ParsedFrame> arps;
  for (const wire::ParseOptions& o : option_variants(data, size)) {
    const wire::ParsedFrame p = wire::parse_frame(frame.data(), frame.size(), o);
    switch (p.kind) {
      case wire::FrameKind::kDrop:
        FUZZ_CHECK(static_cast<size_t>(p.drop) < kDropReasonCount);
        break;
      case wire::FrameKind::kUdp:
        check_udp(frame, p, o.l4_checksum_ok);
        break;
      case wire::FrameKind::kIcmpEcho:
        check_icmp(frame, p, o.l4_checksum_ok);
        break;
      case wire::FrameKind::kArp:
        FUZZ_CHECK(size >= wire::kArpFrameLen);
        FUZZ_CHECK(p.arp_tpa == o.local_ip || p.arp_spa == p.arp_tpa);
        arps.push_back(p);
        break;
      case wire::FrameKind::kIpv4Fragment:
        FUZZ_CHECK(static_cast<size_t>(p.l3_offset) + p.ip_total_len <= size);
        FUZZ_CHECK(p.l4_offset <= p.l3_offset + p.ip_total_len);
        break;
      case wire::FrameKind::kIcmpUnreachable: {
        // The quoted datagram is one we sent, and quoting it back must work:
        // the engine answers closed ports with the same builder.
        FUZZ_CHECK(static_cast<size_t>(p.l4_offset) + 8 + 20 + 8 <= size);
        const uint8_t* quoted = frame.data() + p.l4_offset + 8;
        const size_t quoted_len = p.l3_offset + p.ip_total_len - (p.l4_offset + 8u);
        std::vector<uint8_t> out(wire::kUdpHeadersLen + wire::kIcmpQuoteMax);
        const size_t n =
            wire::build_icmp_unreachable(out.data(), 3, wire::kZeroMac, wire::kZeroMac, o.local_ip,
                                         p.inner_dst_ip, quoted, quoted_len);
        FUZZ_CHECK(n <= out.size());
        if (n != 0) {
          wire::ParseOptions peer;
          peer.local_ip = p.inner_dst_ip;
          out.resize(n);
          // The builder's output is a valid frame for its destination.
          const wire::ParsedFrame q = wire::parse_frame(out.data(), out.size(), peer);
          FUZZ_CHECK(q.kind != wire::FrameKind::kDrop || q.drop == DropReason::kIcmpUnhandled ||
                     q.drop == DropReason::kIpNotForUs || q.drop == DropReason::kTruncatedIcmp);
        }
        break;
      }
    }
  }
  fuzz_arp(data, size, arps);
  return 0;
}
