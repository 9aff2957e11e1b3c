// What a host answers for its address, shared by the engine (standalone) and
// machnetd (for every attached process): ARP requests, ICMP echo, and ICMP
// port unreachable for datagrams nobody receives, at most 1000 a second in
// bursts of 50 (Linux's icmp_ratelimit spirit: a port scan cannot turn us
// into an amplifier). Builds and rewrites frames; the caller transmits them
// and counts.
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdint>

#include "wire/headers.h"
#include "wire/parse.h"

namespace machnet::engine {

// What an ARP frame for us (parse_frame's kArp) asks of the receiver.
struct ArpVerdict {
  bool learn = false;      // the sender's binding is worth recording
  bool addressed = false;  // the frame targets our address (not a gratuitous one)
  bool reply = false;      // a request for our address: answer it
};
ArpVerdict arp_verdict(const wire::ParsedFrame& pf, uint32_t our_ip);

class Responder {
 public:
  static constexpr uint64_t kIcmpTokensPerSec = 1000;
  static constexpr uint64_t kIcmpBurst = 50;

  // Replies come from `pool` with m->port = port_id (attached engines mark
  // every mbuf they allocate: machnetd's crash sweep relies on it).
  // pad_frames: ARP frames padded to the 60-byte Ethernet minimum.
  void init(rte_mempool* pool, uint16_t port_id, const wire::MacAddr& mac, uint32_t ip,
            bool pad_frames);

  // An ARP frame from us; nullptr when the pool is empty.
  rte_mbuf* arp(uint16_t op, const wire::MacAddr& eth_dst, const wire::MacAddr& tha, uint32_t tpa);

  // Turns the echo request in m (parse_frame's kIcmpEcho) into its reply in
  // place, Ethernet padding trimmed and offload flags cleared. False when m
  // is not one segment holding the whole datagram (drop it: truncated_icmp).
  static bool echo_reply(rte_mbuf* m, const wire::ParsedFrame& pf);

  // ICMP port unreachable about the datagram whose IPv4 header is at offset
  // l3 of `frame` (first_len contiguous bytes). nullptr when it was not sent
  // to our unicast address (never for broadcasts, RFC 1122 3.2.2), when the
  // rate limit holds it back (counted in rate_limited()), or when the pool is
  // empty.
  rte_mbuf* port_unreachable(const uint8_t* frame, uint32_t first_len, uint16_t l3,
                             uint64_t now_ns);
  uint64_t rate_limited() const { return rate_limited_; }

 private:
  rte_mbuf* alloc();

  rte_mempool* pool_ = nullptr;
  uint16_t port_id_ = 0;
  wire::MacAddr mac_{};
  uint32_t ip_ = 0;
  bool pad_ = false;
  uint64_t tokens_ = kIcmpBurst;
  uint64_t refill_ns_ = 0;
  uint64_t rate_limited_ = 0;
};

}  // namespace machnet::engine
