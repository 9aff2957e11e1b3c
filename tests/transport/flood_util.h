// Attack traffic for the flood test and benchmark: SYN floods from random
// spoofed sources with random ids, and blind injection of segments with
// guessed connection ids at an established flow's addresses. Everything is
// injected into the simulated network ahead of time from one seed.
#pragma once

#include <cstdint>
#include <vector>

#include "sim_network.h"
#include "transport/wire_format.h"

namespace machnet {
namespace transport {
namespace flood {

inline std::vector<uint8_t> encode(const Segment& s, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> d(kHeaderSize + payload.size());
  Segment h = s;
  h.payload_len = static_cast<uint16_t>(payload.size());
  if (!payload.empty()) h.flags |= kFlagPayloadCsum;
  iovec iov{const_cast<uint8_t*>(payload.data()), payload.size()};
  encode_header(h, &iov, payload.empty() ? 0 : 1, d.data());
  if (!payload.empty()) std::copy(payload.begin(), payload.end(), d.begin() + kHeaderSize);
  return d;
}

// A spoofed source outside the simulated hosts' 10.0.0.0/24: 100.64.0.0/10.
inline uint32_t random_source(Rng& r) {
  return 0x64400000u | (r.next32() & 0x003fffffu);
}

// `rate` SYNs per second in [start, end) at `target` (the rendezvous port
// for a service SYN). Returns how many were injected.
inline uint64_t syn_flood(sim::SimNetwork& net, Rng& r, uint64_t start, uint64_t end, double rate,
                          const Endpoint& target, uint16_t service) {
  const uint64_t gap = static_cast<uint64_t>(1e9 / rate);
  uint64_t n = 0;
  for (uint64_t t = start; t < end; t += gap, ++n) {
    Segment s;
    s.type = SegType::kSyn;
    s.flags = kFlagStream;
    if (service != 0) {
      s.flags |= kFlagService;
      s.ack = service;
    }
    s.src_conn = r.next32() | 1;
    s.seq = r.next32();
    s.msg_id = 1u << (4 + r.below(10));  // rings and segment sizes that look real
    s.msg_len = 512 + static_cast<uint32_t>(r.below(8000));
    s.msg_offset = 1u << 16;
    s.tsval = r.next32();
    sim::Packet p;
    p.from = {random_source(r), static_cast<uint16_t>(1024 + r.below(60000))};
    p.to = target;
    p.bytes = encode(s, {});
    net.inject(t, std::move(p));
  }
  return n;
}

// Blind injection at the flow between `peer` (the spoofed source) and
// `victim`, whose connection id is `victim_id` and whose peer's id is
// `peer_id`. Three kinds, in turn: a guessed destination id (the attacker
// does not know it: counted rx_no_flow), the right destination id with a
// guessed source id (rx_bad_conn_id), and both right ids from the wrong
// address (rx_bad_conn_id). Segment types, sequence numbers, ACKs, windows
// and payloads are random.
struct BlindCounts {
  uint64_t guessed_dst = 0, guessed_src = 0, wrong_address = 0;
  uint64_t total() const { return guessed_dst + guessed_src + wrong_address; }
};

inline BlindCounts blind_injection(sim::SimNetwork& net, Rng& r, uint64_t start, uint64_t end,
                                   double rate, const Endpoint& peer, const Endpoint& victim,
                                   uint32_t victim_id, uint32_t peer_id) {
  const uint64_t gap = static_cast<uint64_t>(1e9 / rate);
  const SegType types[] = {SegType::kData, SegType::kAck,       SegType::kFin,
                           SegType::kRst,  SegType::kKeepalive, SegType::kSynAck};
  BlindCounts c;
  uint64_t i = 0;
  for (uint64_t t = start; t < end; t += gap, ++i) {
    Segment s;
    s.type = types[r.below(6)];
    s.flags = kFlagAck;
    s.seq = r.next32();
    s.ack = r.next32();
    s.rwnd = r.next32();
    s.tsval = r.next32();
    std::vector<uint8_t> payload;
    if (s.type == SegType::kData) {
      payload.resize(1 + r.below(200));
      for (auto& b : payload) b = static_cast<uint8_t>(r.next());
      s.msg_id = r.next32();
      s.msg_len = static_cast<uint32_t>(payload.size());
    }
    sim::Packet p;
    p.from = peer;
    p.to = victim;
    switch (i % 3) {
      case 0:
        s.dst_conn = r.next32();
        if (s.dst_conn == victim_id) ++s.dst_conn;
        s.src_conn = r.next32();
        ++c.guessed_dst;
        break;
      case 1:
        s.dst_conn = victim_id;
        s.src_conn = r.next32();
        if (s.src_conn == peer_id) ++s.src_conn;
        ++c.guessed_src;
        break;
      default:
        s.dst_conn = victim_id;
        s.src_conn = peer_id;
        p.from.ip = random_source(r);
        ++c.wrong_address;
        break;
    }
    p.bytes = encode(s, payload);
    net.inject(t, std::move(p));
  }
  return c;
}

}  // namespace flood
}  // namespace transport
}  // namespace machnet
