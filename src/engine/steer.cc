#include "engine/steer.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "wire/headers.h"

namespace machnet::engine {

bool steer_copy(rte_mbuf* m, rte_mempool* pool, rte_ring* ring, uint16_t port_id, mn_lease* self,
                uint16_t target, bool shared) {
  const uint32_t get = shared ? MN_RING_OP_SHARED_GET : MN_RING_OP_POOL_GET;
  const uint32_t enq = shared ? MN_RING_OP_SHARED_ENQ : MN_RING_OP_STEER_ENQ;
  const uint32_t put = shared ? MN_RING_OP_SHARED_PUT : MN_RING_OP_POOL_PUT;
  // Each operation on the target's pool or ring is marked in our lease, so
  // that if we die inside it machnetd knows whose reservation to give back.
  if (self != nullptr) mn_lease_ring_op_begin(self, get, target);
  rte_mbuf* c = pool != nullptr ? rte_pktmbuf_copy(m, pool, 0, UINT32_MAX) : nullptr;
  if (self != nullptr) mn_lease_ring_op_end(self);
  rte_pktmbuf_free(m);
  if (c == nullptr) return false;
  // rte_pktmbuf_copy sets the port on the first segment only.
  for (rte_mbuf* s = c; s != nullptr; s = s->next) s->port = port_id;
  if (self != nullptr) mn_lease_ring_op_begin(self, enq, target);
  // rte_ring_enqueue follows the ring's sync type (HTS for steering rings).
  int rc = ring != nullptr ? rte_ring_enqueue(ring, c) : -ENOBUFS;
  if (rc != 0) {
    if (self != nullptr) mn_lease_ring_op_begin(self, put, target);
    rte_pktmbuf_free(c);
  }
  if (self != nullptr) mn_lease_ring_op_end(self);
  return rc == 0;
}

namespace {

// Allocates one mbuf of pool, marked as handed out (port_id), inside a
// marked pool operation.
rte_mbuf* alloc_marked(rte_mempool* pool, uint16_t port_id, mn_lease* self, uint16_t group) {
  if (self != nullptr) mn_lease_ring_op_begin(self, MN_RING_OP_SHARED_GET, group);
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (self != nullptr) mn_lease_ring_op_end(self);
  if (m != nullptr) m->port = port_id;
  return m;
}

void free_marked(rte_mbuf* m, mn_lease* self, uint16_t group) {
  if (self != nullptr) mn_lease_ring_op_begin(self, MN_RING_OP_SHARED_PUT, group);
  rte_pktmbuf_free(m);
  if (self != nullptr) mn_lease_ring_op_end(self);
}

}  // namespace

bool steer_datagram(const rte_mbuf* src, uint32_t off, uint32_t len, const DatagramAddr& a,
                    rte_mempool* pool, rte_ring* ring, uint16_t port_id, mn_lease* self,
                    uint16_t group) {
  constexpr uint32_t kHdr = wire::kEthHdrLen + sizeof(wire::Ipv4Hdr) + sizeof(wire::UdpHdr);
  if (pool == nullptr || ring == nullptr ||
      len > 65535 - sizeof(wire::Ipv4Hdr) - sizeof(wire::UdpHdr))
    return false;
  rte_mbuf* head = alloc_marked(pool, port_id, self, group);
  if (head == nullptr) return false;
  auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(head, kHdr));
  if (f == nullptr) {
    free_marked(head, self, group);
    return false;
  }
  wire::EthHdr eth{};
  eth.ethertype = htons(wire::kEtherTypeIpv4);
  wire::Ipv4Hdr ip{};
  ip.version_ihl = 0x45;
  ip.total_length =
      htons(static_cast<uint16_t>(sizeof(wire::Ipv4Hdr) + sizeof(wire::UdpHdr) + len));
  ip.ttl = 64;
  ip.protocol = wire::kIpProtoUdp;
  ip.src = htonl(a.src_ip);
  ip.dst = htonl(a.dst_ip);
  wire::UdpHdr udp{};
  udp.src_port = htons(a.src_port);
  udp.dst_port = htons(a.dst_port);
  udp.length = htons(static_cast<uint16_t>(sizeof(wire::UdpHdr) + len));
  memcpy(f, &eth, sizeof(eth));
  memcpy(f + wire::kEthHdrLen, &ip, sizeof(ip));
  memcpy(f + wire::kEthHdrLen + sizeof(ip), &udp, sizeof(udp));
  rte_mbuf* last = head;
  for (uint32_t done = 0; done < len;) {
    uint32_t room = rte_pktmbuf_tailroom(last);
    if (room == 0) {
      rte_mbuf* seg = alloc_marked(pool, port_id, self, group);
      if (seg == nullptr) {
        free_marked(head, self, group);
        return false;
      }
      last->next = seg;
      head->nb_segs++;
      last = seg;
      continue;
    }
    uint32_t n = std::min(room, len - done);
    uint8_t* dst = rte_pktmbuf_mtod_offset(last, uint8_t*, last->data_len);
    const void* p = rte_pktmbuf_read(src, off + done, n, dst);
    if (p == nullptr) {  // src is shorter than off + len
      free_marked(head, self, group);
      return false;
    }
    if (p != dst) memcpy(dst, p, n);
    last->data_len = static_cast<uint16_t>(last->data_len + n);
    head->pkt_len += n;
    done += n;
  }
  if (self != nullptr) mn_lease_ring_op_begin(self, MN_RING_OP_SHARED_ENQ, group);
  int rc = rte_ring_enqueue(ring, head);
  if (self != nullptr) mn_lease_ring_op_end(self);
  if (rc != 0) free_marked(head, self, group);
  return rc == 0;
}

unsigned drain_ring(rte_ring* ring) {
  unsigned total = 0, n;
  void* objs[32];
  while ((n = rte_ring_dequeue_burst(ring, objs, 32, nullptr)) != 0) {
    for (unsigned i = 0; i < n; i++) rte_pktmbuf_free(static_cast<rte_mbuf*>(objs[i]));
    total += n;
  }
  return total;
}

}  // namespace machnet::engine
