// Every reason the engine can drop a packet. Each one has its own counter, so a
// drop is never silent; names are what machnet-echo and machnet-stat print.
#pragma once

#include <cstddef>
#include <cstdint>

namespace machnet {

#define MACHNET_DROP_REASONS(X)                                                  \
  X(kTruncatedEth, "truncated_eth")         /* frame shorter than 14 B */        \
  X(kUnknownEtherType, "unknown_ethertype") /* not IPv4 or ARP */                \
  X(kTruncatedArp, "truncated_arp")                                              \
  X(kBadArp, "bad_arp")             /* not Ethernet/IPv4 ARP */                  \
  X(kArpNotForUs, "arp_not_for_us") /* ARP for another host */                   \
  X(kTruncatedIp, "truncated_ip")                                                \
  X(kBadIpVersion, "bad_ip_version")                                             \
  X(kBadIhl, "bad_ihl")            /* IHL < 5 or past the end */                 \
  X(kBadIpLength, "bad_ip_length") /* total length disagrees */                  \
  X(kBadIpChecksum, "bad_ip_checksum")                                           \
  X(kIpNotForUs, "ip_not_for_us")                                                \
  X(kIpOptions, "ip_options_unsupported")                                        \
  X(kUnknownIpProto, "unknown_ip_proto")                                         \
  X(kTruncatedUdp, "truncated_udp")                                              \
  X(kBadUdpLength, "bad_udp_length")                                             \
  X(kBadUdpChecksum, "bad_udp_checksum")                                         \
  X(kTruncatedIcmp, "truncated_icmp")                                            \
  X(kBadIcmpChecksum, "bad_icmp_checksum")                                       \
  X(kIcmpUnhandled, "icmp_unhandled") /* not an echo request */                  \
  X(kBadFragment, "bad_fragment")     /* inconsistent end, empty */              \
  X(kFragTimeout, "frag_timeout")                                                \
  X(kFragDuplicate, "frag_duplicate") /* bytes already held */                   \
  X(kFragOverlap, "frag_overlap")     /* datagram dropped */                     \
  X(kFragNoRoom, "frag_no_room")      /* frag.max_* reached */                   \
  X(kNoSocket, "no_socket")           /* no one bound the port */                \
  X(kSocketQueueFull, "socket_queue_full")                                       \
  X(kNoArpEntry, "no_arp_entry")     /* resolution failed */                     \
  X(kArpQueueFull, "arp_queue_full") /* too many waiting packets */              \
  X(kTxRingFull, "tx_ring_full")                                                 \
  X(kNoMbuf, "no_mbuf")                                                          \
  X(kTooBig, "too_big")                    /* > 65507 B, or 65535 reassembled */ \
  X(kInjected, "injected_loss")            /* fault injection */                 \
  X(kSocketPoolShare, "socket_pool_share") /* socket over its pool share */

enum class DropReason : uint8_t {
#define MACHNET_X(name, str) name,
  MACHNET_DROP_REASONS(MACHNET_X)
#undef MACHNET_X
      kCount
};

constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kCount);

const char* drop_reason_name(DropReason r);

}  // namespace machnet
