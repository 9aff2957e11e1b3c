// Software steering: which queue's owner a received frame belongs to. Used
// by every process that polls a queue of a machnetd port (the daemon for
// queue 0 and unleased queues, each engine for its leased queue), on every
// frame, so it only reads the first bytes of the frame, one mn_port_entry and,
// for a port an SO_REUSEPORT group shares, that group (a bounded seqlock
// read: mn_group_pick).
// No DPDK types: the caller passes the frame's first segment.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>

#include "ipc/shm.h"
#include "wire/headers.h"

namespace machnet::ipc {

// Queue 0 (the daemon) gets ARP, ICMP it must answer, fragments (it
// reassembles them and forwards the datagram), frames for other addresses
// and datagrams for ports nobody holds (port unreachable is its job).
inline uint16_t steer_target(const mn_shm& shm, const uint8_t* p, uint32_t len) {
  using namespace wire;
  if (len < sizeof(EthHdr) + sizeof(Ipv4Hdr)) return 0;
  uint16_t et;
  std::memcpy(&et, p + 12, 2);
  if (et != htons(kEtherTypeIpv4)) return 0;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(p + sizeof(EthHdr));
  size_t ihl = ip->header_len();
  if (ip->version() != 4 || ihl < 20 || len < sizeof(EthHdr) + ihl + sizeof(UdpHdr)) return 0;
  if (ip->is_fragment()) return 0;
  if (ip->dst != htonl(shm.ip)) return 0;
  const uint8_t* l4 = p + sizeof(EthHdr) + ihl;
  if (ip->protocol == kIpProtoUdp) {
    uint16_t sport, dport;
    std::memcpy(&sport, l4, 2);
    std::memcpy(&dport, l4 + 2, 2);
    uint16_t v = mn_port_queue(&shm.ports[ntohs(dport)]);
    if ((v & MN_PORT_GROUP) == 0) return v;
    return mn_group_pick(&shm, MN_PORT_GROUP_INDEX(v), ntohs(dport),
                         mn_flow_hash(ntohl(ip->src), ntohs(sport), ntohl(ip->dst), ntohs(dport)));
  }
  if (ip->protocol == kIpProtoIcmp && l4[0] == kIcmpDestUnreachable) {
    // An error about a datagram we sent: it quotes our IPv4 + UDP header; the
    // quoted source port says whose it was; for a group's port, the member
    // the quoted flow hashes to (the one its requests go to).
    const uint8_t* q = l4 + 8;
    if (q + 20 + 8 > p + len || (q[0] >> 4) != 4 || q[9] != kIpProtoUdp) return 0;
    size_t qihl = static_cast<size_t>(q[0] & 0x0f) * 4;
    if (qihl < 20 || q + qihl + 8 > p + len) return 0;
    uint16_t sport, dport;
    std::memcpy(&sport, q + qihl, 2);
    std::memcpy(&dport, q + qihl + 2, 2);
    uint16_t v = mn_port_queue(&shm.ports[ntohs(sport)]);
    if ((v & MN_PORT_GROUP) == 0) return v;
    uint32_t qsrc, qdst;
    std::memcpy(&qsrc, q + 12, 4);
    std::memcpy(&qdst, q + 16, 4);
    return mn_group_pick(&shm, MN_PORT_GROUP_INDEX(v), ntohs(sport),
                         mn_flow_hash(ntohl(qdst), ntohs(dport), ntohl(qsrc), ntohs(sport)));
  }
  return 0;
}

}  // namespace machnet::ipc
