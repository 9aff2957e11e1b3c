// The data-path pieces the engine and machnetd share (libmachnet_dataplane),
// each on its own: DPDK checksums against src/wire's reference code (odd
// buffer and segment boundaries included), the TX batch over a ring port,
// the ARP/ICMP responder, IPv4 reassembly and software steering copies.
// EAL on ordinary pages, no devices but net_ring, no root.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../unit/frames.h"
#include "engine/checksum.h"
#include "engine/reassembly.h"
#include "engine/responder.h"
#include "engine/ring_repair.h"
#include "engine/rx_parse.h"
#include "engine/steer.h"
#include "engine/tx_batch.h"

namespace machnet::test {
namespace {

class DataplaneTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string prefix = "--file-prefix=mndp" + std::to_string(getpid());
    std::vector<std::string> args = {
        "dataplane_tests", "--no-huge", "--no-shconf", "-m", "256",
        "--no-pci",        prefix,      "--lcores",    "0",  "--log-level=error",
        "--no-telemetry"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0);
    pool_ = rte_pktmbuf_pool_create("dp_pool", 2047, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    other_ = rte_pktmbuf_pool_create("dp_other", 255, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    ASSERT_NE(pool_, nullptr);
    ASSERT_NE(other_, nullptr);
  }

  void TearDown() override {
    // Every test gives every mbuf back.
    EXPECT_EQ(rte_mempool_in_use_count(pool_), 0u);
    EXPECT_EQ(rte_mempool_in_use_count(other_), 0u);
  }

  static rte_mbuf* mbuf_of(const Frame& f, rte_mempool* mp = pool_) {
    rte_mbuf* m = rte_pktmbuf_alloc(mp);
    EXPECT_NE(m, nullptr);
    memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
    return m;
  }
  // f cut at `cuts` into a chain of segments.
  static rte_mbuf* chain_of(const Frame& f, std::vector<size_t> cuts) {
    rte_mbuf* head = nullptr;
    size_t start = 0;
    cuts.push_back(f.size());
    for (size_t end : cuts) {
      rte_mbuf* m =
          mbuf_of(Frame(f.begin() + static_cast<long>(start), f.begin() + static_cast<long>(end)));
      if (head == nullptr)
        head = m;
      else
        EXPECT_EQ(rte_pktmbuf_chain(head, m), 0);
      start = end;
    }
    return head;
  }
  static Frame bytes_of(const rte_mbuf* m) {
    Frame f(m->pkt_len);
    const void* p = rte_pktmbuf_read(m, 0, m->pkt_len, f.data());
    if (p != f.data()) memcpy(f.data(), p, m->pkt_len);
    return f;
  }

  static inline rte_mempool* pool_;
  static inline rte_mempool* other_;
};

// ---- checksums: DPDK's helpers agree with src/wire's reference ----

TEST_F(DataplaneTest, ChecksumsAgreeWithTheWireLibrary) {
  std::mt19937 rng(7);
  for (size_t len : {0, 1, 2, 3, 20, 21, 64, 1399, 1400, 1472}) {
    Frame f = make_udp(len, static_cast<uint8_t>(len));
    auto* ip = reinterpret_cast<wire::Ipv4Hdr*>(f.data() + kL3);
    auto* udp = reinterpret_cast<wire::UdpHdr*>(f.data() + kL4);
    uint16_t want_udp = udp->checksum, want_ip = ip->checksum;
    ASSERT_NE(want_udp, 0);
    EXPECT_EQ(engine::raw_checksum(ip, sizeof(*ip)), 0xffff) << len;
    EXPECT_EQ(engine::raw_checksum(f.data() + kL4, len + 8),
              wire::raw_sum(f.data() + kL4, len + 8));
    ip->checksum = 0;
    EXPECT_EQ(engine::ipv4_checksum(ip), want_ip) << len;
    ip->checksum = want_ip;
    udp->checksum = 0;
    EXPECT_EQ(engine::udp_checksum(ip, udp), want_udp) << len;
    // The payload as iovecs of every shape: odd lengths, empty ones.
    for (int round = 0; round < 20; round++) {
      std::vector<iovec> iov;
      size_t off = 0;
      while (off < len) {
        size_t n = std::min<size_t>(len - off, rng() % 7 == 0 ? 0 : 1 + rng() % 97);
        iov.push_back({f.data() + kL4 + 8 + off, n});
        off += n;
      }
      EXPECT_EQ(engine::udp_checksum_iov(ip, udp, iov.data(), static_cast<int>(iov.size())),
                want_udp)
          << len << " bytes in " << iov.size() << " pieces";
    }
    udp->checksum = want_udp;
  }
}

// Chains cut at odd offsets: what DPDK 22.11's rte_raw_cksum_mbuf gets wrong.
TEST_F(DataplaneTest, UdpChecksumOverChainsCutAnywhere) {
  Frame f = make_udp(2000, 9);
  const auto* ip = reinterpret_cast<const wire::Ipv4Hdr*>(f.data() + kL3);
  for (std::vector<size_t> cuts : std::vector<std::vector<size_t>>{
           {}, {kL4 + 1}, {kL4 + 3, 1001}, {100, 101, 102, 1500}, {kL4 + 8, 777, 1999}}) {
    rte_mbuf* m = chain_of(f, cuts);
    EXPECT_TRUE(engine::udp_checksum_ok(m, ip, kL4, 2008)) << cuts.size() << " cuts";
    rte_pktmbuf_free(m);
  }
  Frame bad = f;
  bad[1800] ^= 0x01;
  rte_mbuf* m = chain_of(bad, {kL4 + 3, 1001});
  EXPECT_FALSE(engine::udp_checksum_ok(m, ip, kL4, 2008));
  rte_pktmbuf_free(m);
  m = chain_of(f, {1000});
  EXPECT_FALSE(engine::udp_checksum_ok(m, ip, kL4, 2100)) << "longer than the chain";
  rte_pktmbuf_free(m);
}

// The parser verifies with DPDK's sum in the engine and drops what is wrong
// for the same reasons as with its own.
TEST_F(DataplaneTest, ReceivedChecksumsAreVerifiedByDpdk) {
  struct Case {
    Frame f;
    size_t flip;
    DropReason why;
  };
  std::vector<Case> cases = {{make_udp(100), kL3 + 8, DropReason::kBadIpChecksum},
                             {make_udp(101), kL4 + 60, DropReason::kBadUdpChecksum},
                             {make_icmp_echo(57), kL4 + 30, DropReason::kBadIcmpChecksum}};
  for (auto& c : cases) {
    rte_mbuf* m = mbuf_of(c.f);
    wire::ParsedFrame good = engine::parse_rx(m, kLocalIp, 24);
    EXPECT_NE(good.kind, wire::FrameKind::kDrop) << drop_reason_name(good.drop);
    rte_pktmbuf_mtod(m, uint8_t*)[c.flip] ^= 0x40;
    wire::ParsedFrame bad = engine::parse_rx(m, kLocalIp, 24);
    EXPECT_EQ(bad.kind, wire::FrameKind::kDrop);
    EXPECT_EQ(bad.drop, c.why);
    // A NIC that verified it: trusted.
    m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    EXPECT_NE(engine::parse_rx(m, kLocalIp, 24).kind, wire::FrameKind::kDrop);
    rte_pktmbuf_free(m);
  }
}

// ---- the TX batch ----

TEST_F(DataplaneTest, TxBatchSendsCountsAndDropsWhatTheRingRefuses) {
  rte_ring* rx = rte_ring_create("dp_txb_rx", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* tx = rte_ring_create("dp_txb_tx", 128, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  ASSERT_NE(tx, nullptr);
  int port = rte_eth_from_rings("dp_txb", &rx, 1, &tx, 1, 0);
  ASSERT_GE(port, 0);
  rte_eth_conf conf;
  memset(&conf, 0, sizeof(conf));
  uint16_t p = static_cast<uint16_t>(port);
  ASSERT_EQ(rte_eth_dev_configure(p, 1, 1, &conf), 0);
  ASSERT_EQ(rte_eth_rx_queue_setup(p, 0, 64, 0, nullptr, pool_), 0);
  ASSERT_EQ(rte_eth_tx_queue_setup(p, 0, 64, 0, nullptr), 0);
  ASSERT_EQ(rte_eth_dev_start(p), 0);
  uint64_t packets = 0, bytes = 0, full = 0;
  engine::TxBatch b;
  b.init(p, 0, false, &packets, &bytes, &full);
  for (int i = 0; i < 100; i++) b.add(mbuf_of(make_udp(10)));  // flushes itself at 64
  EXPECT_EQ(b.pending(), 36);
  EXPECT_EQ(packets, 64u);
  b.flush();
  EXPECT_EQ(b.pending(), 0);
  EXPECT_EQ(packets, 100u);
  EXPECT_EQ(bytes, 100u * (wire::kUdpHeadersLen + 10));
  EXPECT_EQ(full, 0u);
  // The ring (127 usable slots) is nearly full now: the rest is dropped, freed, counted.
  for (int i = 0; i < 40; i++) b.add(mbuf_of(make_udp(10)));
  b.flush();
  EXPECT_EQ(packets, 127u);
  EXPECT_EQ(full, 13u);
  // forget() leaves frames to whoever owns their memory.
  rte_mbuf* kept = mbuf_of(make_udp(1));
  b.add(kept);
  b.forget();
  b.flush();
  EXPECT_EQ(packets, 127u);
  rte_pktmbuf_free(kept);
  void* obj;
  while (rte_ring_dequeue(tx, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
  rte_eth_dev_stop(p);
  rte_eth_dev_close(p);
}

TEST_F(DataplaneTest, TxBatchKeepsWhatTheRingRefusesWhenAsked) {
  rte_ring* rx = rte_ring_create("dp_txk_rx", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* tx = rte_ring_create("dp_txk_tx", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  ASSERT_NE(tx, nullptr);
  int port = rte_eth_from_rings("dp_txk", &rx, 1, &tx, 1, 0);
  ASSERT_GE(port, 0);
  rte_eth_conf conf;
  memset(&conf, 0, sizeof(conf));
  uint16_t p = static_cast<uint16_t>(port);
  ASSERT_EQ(rte_eth_dev_configure(p, 1, 1, &conf), 0);
  ASSERT_EQ(rte_eth_rx_queue_setup(p, 0, 64, 0, nullptr, pool_), 0);
  ASSERT_EQ(rte_eth_tx_queue_setup(p, 0, 64, 0, nullptr), 0);
  ASSERT_EQ(rte_eth_dev_start(p), 0);
  uint64_t packets = 0, bytes = 0, full = 0;
  engine::TxBatch b;
  b.init(p, 0, false, &packets, &bytes, &full);
  EXPECT_EQ(b.room(), engine::TxBatch::kMax);
  // The ring holds 63: the other 10 stay queued, in order, nothing dropped.
  std::vector<rte_mbuf*> sent;
  for (int i = 0; i < 63 + 10; i++) {
    if (b.room() == 0) b.flush(/*keep=*/true);
    rte_mbuf* m = mbuf_of(make_udp(static_cast<size_t>(i % 7)));
    sent.push_back(m);
    b.add(m);
  }
  b.flush(/*keep=*/true);
  EXPECT_EQ(packets, 63u);
  EXPECT_EQ(full, 0u);
  EXPECT_EQ(b.pending(), 10);
  EXPECT_EQ(b.room(), engine::TxBatch::kMax - 10);
  // The ring drains (the NIC sent them): the rest goes, oldest first.
  std::vector<rte_mbuf*> out;
  void* obj;
  while (rte_ring_dequeue(tx, &obj) == 0) out.push_back(static_cast<rte_mbuf*>(obj));
  b.flush(/*keep=*/true);
  EXPECT_EQ(b.pending(), 0);
  EXPECT_EQ(packets, 73u);
  EXPECT_EQ(full, 0u);
  while (rte_ring_dequeue(tx, &obj) == 0) out.push_back(static_cast<rte_mbuf*>(obj));
  EXPECT_EQ(out, sent);
  for (rte_mbuf* m : out) rte_pktmbuf_free(m);
  rte_eth_dev_stop(p);
  rte_eth_dev_close(p);
}

// ---- the responder ----

TEST_F(DataplaneTest, ArpVerdicts) {
  auto verdict = [](uint16_t op, uint32_t spa, uint32_t tpa) {
    return engine::arp_verdict(parse(make_arp(op, spa, tpa)), kLocalIp);
  };
  auto v = verdict(wire::kArpOpRequest, kPeerIp, kLocalIp);
  EXPECT_TRUE(v.learn && v.addressed && v.reply);
  v = verdict(wire::kArpOpReply, kPeerIp, kLocalIp);
  EXPECT_TRUE(v.learn && v.addressed && !v.reply);
  v = verdict(wire::kArpOpRequest, kPeerIp, kPeerIp);  // gratuitous
  EXPECT_TRUE(v.learn && !v.addressed && !v.reply);
  v = verdict(wire::kArpOpRequest, kLocalIp, kLocalIp);  // someone claims our address
  EXPECT_FALSE(v.learn || v.addressed || v.reply);
}

TEST_F(DataplaneTest, ResponderBuildsArpAndEchoReplies) {
  engine::Responder r;
  r.init(pool_, 7, kLocalMac, kLocalIp, /*pad_frames=*/false);
  rte_mbuf* a = r.arp(wire::kArpOpReply, kPeerMac, kPeerMac, kPeerIp);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->pkt_len, wire::kArpFrameLen);
  EXPECT_EQ(a->port, 7);  // marked for machnetd's sweep
  wire::ParseOptions to_peer;
  to_peer.local_ip = kPeerIp;
  wire::ParsedFrame pf = parse(bytes_of(a), to_peer);
  ASSERT_EQ(pf.kind, wire::FrameKind::kArp);
  EXPECT_EQ(pf.arp_op, wire::kArpOpReply);
  EXPECT_EQ(pf.arp_spa, kLocalIp);
  EXPECT_EQ(pf.arp_sha, kLocalMac);
  rte_pktmbuf_free(a);
  engine::Responder padded;
  padded.init(pool_, 7, kLocalMac, kLocalIp, /*pad_frames=*/true);
  a = padded.arp(wire::kArpOpRequest, wire::kBroadcastMac, wire::kZeroMac, kPeerIp);
  EXPECT_EQ(a->pkt_len, 60u);
  rte_pktmbuf_free(a);

  Frame echo = make_icmp_echo(100);
  echo.resize(echo.size() + 6);  // Ethernet padding
  rte_mbuf* m = mbuf_of(echo);
  pf = engine::parse_rx(m, kLocalIp, 24);
  ASSERT_EQ(pf.kind, wire::FrameKind::kIcmpEcho);
  ASSERT_TRUE(engine::Responder::echo_reply(m, pf));
  EXPECT_EQ(m->pkt_len, echo.size() - 6);
  pf = parse(bytes_of(m), to_peer);
  EXPECT_EQ(pf.kind, wire::FrameKind::kDrop);  // a reply, which nobody answers
  EXPECT_EQ(pf.drop, DropReason::kIcmpUnhandled);
  EXPECT_EQ(pf.src_ip, kLocalIp);
  rte_pktmbuf_free(m);
}

TEST_F(DataplaneTest, PortUnreachableIsRateLimited) {
  engine::Responder r;
  r.init(pool_, 0, kLocalMac, kLocalIp, false);
  Frame dgram = make_udp(20);
  uint64_t now = 5'000'000'000ull;
  int sent = 0;
  for (int i = 0; i < 80; i++) {
    rte_mbuf* u = r.port_unreachable(dgram.data(), static_cast<uint32_t>(dgram.size()), kL3, now);
    if (u == nullptr) continue;
    sent++;
    wire::ParseOptions to_peer;
    to_peer.local_ip = kPeerIp;
    wire::ParsedFrame pf = parse(bytes_of(u), to_peer);
    EXPECT_EQ(pf.kind, wire::FrameKind::kIcmpUnreachable);
    EXPECT_EQ(pf.icmp_code, 3);
    rte_pktmbuf_free(u);
  }
  EXPECT_EQ(sent, 50);  // the burst
  EXPECT_EQ(r.rate_limited(), 30u);
  now += 10'000'000;  // 10 ms: 10 more tokens
  for (int i = 0; i < 20; i++) {
    rte_mbuf* u = r.port_unreachable(dgram.data(), static_cast<uint32_t>(dgram.size()), kL3, now);
    if (u != nullptr) sent++, rte_pktmbuf_free(u);
  }
  EXPECT_EQ(sent, 60);
  // Never for a broadcast.
  Frame bcast = make_udp(20);
  put32(&bcast, kL3 + 16, 0xffffffffu);
  now += 1'000'000'000;
  EXPECT_EQ(r.port_unreachable(bcast.data(), static_cast<uint32_t>(bcast.size()), kL3, now),
            nullptr);
}

// ---- reassembly ----

TEST_F(DataplaneTest, ReassemblyJoinsCountsAndExpires) {
  uint64_t drops[kDropReasonCount] = {};
  engine::Reassembly r;
  std::string err;
  engine::HostSettings hs;
  hs.frag_max_flows = 16;
  hs.frag_timeout_ms = 1;
  ASSERT_TRUE(r.init(hs, drops, &err)) << err;
  // 3000 bytes as three fragments (offsets in 8-byte units), last one first.
  Frame whole = make_udp(3000, 5);
  size_t l4_total = whole.size() - kL4;
  auto fragment = [&](size_t off, size_t n, bool more) {
    Frame f(whole.begin(), whole.begin() + static_cast<long>(kL4));
    f.insert(f.end(), whole.begin() + static_cast<long>(kL4 + off),
             whole.begin() + static_cast<long>(kL4 + off + n));
    put16(&f, kL3 + 2, static_cast<uint16_t>(20 + n));
    put16(&f, kL3 + 6, static_cast<uint16_t>(off / 8 | (more ? 0x2000 : 0)));
    fix_ip_checksum(&f);
    return f;
  };
  std::vector<Frame> frags = {fragment(2960, l4_total - 2960, false), fragment(0, 1480, true),
                              fragment(1480, 1480, true)};
  rte_mbuf* out = nullptr;
  for (const Frame& f : frags) {
    ASSERT_EQ(out, nullptr);
    out = r.add(mbuf_of(f), kL3, kL4);
  }
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->l2_len, kL3);
  EXPECT_EQ(out->l3_len, 20u);
  Frame got = bytes_of(out);
  ASSERT_EQ(got.size(), whole.size());
  EXPECT_EQ(got, whole);  // headers (checksum restored) and payload
  rte_pktmbuf_free(out);
  // A fragment whose datagram never completes expires (1 ms) and is counted.
  EXPECT_EQ(r.add(mbuf_of(frags[1]), kL3, kL4), nullptr);
  usleep(5000);
  r.expire();
  EXPECT_EQ(drops[static_cast<size_t>(DropReason::kFragTimeout)], 1u);
  // A duplicate is dropped alone (counted); the datagram waits on.
  EXPECT_EQ(r.add(mbuf_of(frags[1]), kL3, kL4), nullptr);
  EXPECT_EQ(r.add(mbuf_of(frags[1]), kL3, kL4), nullptr);
  EXPECT_EQ(drops[static_cast<size_t>(DropReason::kFragDuplicate)], 1u);
  EXPECT_EQ(r.mbufs(), 1u);
  usleep(5000);
  r.expire();
  EXPECT_EQ(r.mbufs(), 0u);
  EXPECT_EQ(drops[static_cast<size_t>(DropReason::kFragTimeout)], 2u);
}

// ---- steering copies ----

TEST_F(DataplaneTest, SteeringCopiesIntoTheOwnersPoolAndMarksEverySegment) {
  rte_ring* ring = rte_ring_create("dp_steer", 4, 0, RING_F_SC_DEQ);  // 3 slots
  ASSERT_NE(ring, nullptr);
  Frame f = make_udp(2000);
  for (int i = 0; i < 4; i++) {
    rte_mbuf* m = chain_of(f, {1000});
    EXPECT_EQ(engine::steer_copy(m, other_, ring, 3, nullptr, 0), i < 3) << i;
  }
  void* obj = nullptr;
  ASSERT_EQ(rte_ring_dequeue(ring, &obj), 0);
  auto* c = static_cast<rte_mbuf*>(obj);
  for (rte_mbuf* s = c; s != nullptr; s = s->next) {
    EXPECT_EQ(s->pool, other_);
    EXPECT_EQ(s->port, 3);
  }
  EXPECT_EQ(bytes_of(c), f);
  rte_pktmbuf_free(c);
  EXPECT_EQ(engine::drain_ring(ring), 2u);
  EXPECT_FALSE(engine::steer_copy(mbuf_of(f), other_, nullptr, 3, nullptr, 0));
  rte_ring_free(ring);
}

TEST_F(DataplaneTest, SteeringCopiesMarkTheLeaseAroundEachOperation) {
  rte_ring* ring = rte_ring_create("dp_steer_mark", 4, 0, RING_F_MP_HTS_ENQ | RING_F_SC_DEQ);
  ASSERT_NE(ring, nullptr);
  mn_lease self{};
  Frame f = make_udp(200);
  EXPECT_TRUE(engine::steer_copy(mbuf_of(f), other_, ring, 3, &self, 5));
  EXPECT_EQ(mn_lease_ring_op(&self), 0u);  // cleared once the copy is on the ring
  EXPECT_EQ(engine::drain_ring(ring), 1u);
  rte_ring_free(ring);
}

// ---- giving back reservations of a process killed mid-operation ----

// What a process killed between reserving and publishing leaves: a zero-
// copy start without its finish.
TEST_F(DataplaneTest, HtsProducerGapIsGivenBackAndTheRingWorksOn) {
  rte_ring* r = rte_ring_create("dp_hts_p", 8, 0, RING_F_MP_HTS_ENQ | RING_F_MC_HTS_DEQ);
  ASSERT_NE(r, nullptr);
  int objs[3];
  ASSERT_EQ(rte_ring_enqueue(r, &objs[0]), 0);
  rte_ring_zc_data zcd{};
  ASSERT_EQ(rte_ring_enqueue_zc_burst_start(r, 2, &zcd, nullptr), 2u);
  static_cast<void**>(zcd.ptr1)[0] = &objs[1];  // written, never published
  engine::RingGap g = engine::ring_gap(r, engine::RingSide::kProducer);
  EXPECT_TRUE(g.open());
  EXPECT_EQ(g.slots(), 2u);
  EXPECT_FALSE(engine::ring_gap(r, engine::RingSide::kConsumer).open());
  EXPECT_FALSE(engine::ring_wait_quiet(r, 100));
  // A stale observation is refused: the side moved on meanwhile.
  engine::RingGap stale = g;
  stale.head++;
  EXPECT_EQ(engine::ring_give_back(r, engine::RingSide::kProducer, stale), 0u);
  EXPECT_EQ(engine::ring_give_back(r, engine::RingSide::kProducer, g), 2u);
  EXPECT_TRUE(engine::ring_wait_quiet(r, 0));
  // Only the published object is there, and the ring takes more (an
  // enqueue would have waited for the dead reservation for good).
  EXPECT_EQ(rte_ring_count(r), 1u);
  ASSERT_EQ(rte_ring_enqueue(r, &objs[2]), 0);
  void* out[4];
  ASSERT_EQ(rte_ring_dequeue_burst(r, out, 4, nullptr), 2u);
  EXPECT_EQ(out[0], &objs[0]);
  EXPECT_EQ(out[1], &objs[2]);
  rte_ring_free(r);
}

TEST_F(DataplaneTest, ConsumerGapIsGivenBackWithItsObjects) {
  for (unsigned flags : {unsigned{RING_F_MP_HTS_ENQ | RING_F_MC_HTS_DEQ},
                         unsigned{RING_F_MP_HTS_ENQ | RING_F_SC_DEQ}}) {
    rte_ring* r = rte_ring_create("dp_hts_c", 8, 0, flags);
    ASSERT_NE(r, nullptr);
    int objs[3];
    for (int& o : objs) ASSERT_EQ(rte_ring_enqueue(r, &o), 0);
    rte_ring_zc_data zcd{};
    ASSERT_EQ(rte_ring_dequeue_zc_burst_start(r, 2, &zcd, nullptr), 2u);
    engine::RingGap g = engine::ring_gap(r, engine::RingSide::kConsumer);
    EXPECT_EQ(g.slots(), 2u);
    EXPECT_TRUE(engine::ring_side_repairable(r, engine::RingSide::kConsumer));
    EXPECT_EQ(engine::ring_give_back(r, engine::RingSide::kConsumer, g), 2u);
    void* out[4];
    ASSERT_EQ(rte_ring_dequeue_burst(r, out, 4, nullptr), 3u) << flags;
    for (int i = 0; i < 3; i++) EXPECT_EQ(out[i], &objs[i]);
    rte_ring_free(r);
  }
}

TEST_F(DataplaneTest, MultiProducerGapsOfClassicRingsAreNotTouched) {
  // Several reservations may share one gap there: none can be given back.
  rte_ring* r = rte_ring_create("dp_mpmc", 8, 0, 0);
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(engine::ring_side_repairable(r, engine::RingSide::kProducer));
  engine::RingGap fake;
  fake.head = 1;
  EXPECT_EQ(engine::ring_give_back(r, engine::RingSide::kProducer, fake), 0u);
  EXPECT_FALSE(engine::ring_gap(r, engine::RingSide::kProducer).open());
  rte_ring_free(r);
}

TEST_F(DataplaneTest, PoolRingIsTheHtsRingUnderMachnetdsPools) {
  rte_mempool* mp = rte_pktmbuf_pool_create_by_ops("dp_hts_pool", 63, 0, 0,
                                                   RTE_MBUF_DEFAULT_BUF_SIZE, 0, "ring_mt_hts");
  ASSERT_NE(mp, nullptr);
  rte_ring* r = engine::pool_ring(mp);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(engine::ring_side_repairable(r, engine::RingSide::kProducer));
  EXPECT_TRUE(engine::ring_side_repairable(r, engine::RingSide::kConsumer));
  // A get left half done, given back: every mbuf is in the pool again.
  rte_ring_zc_data zcd{};
  ASSERT_EQ(rte_ring_dequeue_zc_burst_start(r, 1, &zcd, nullptr), 1u);
  EXPECT_EQ(engine::ring_give_back(r, engine::RingSide::kConsumer,
                                   engine::ring_gap(r, engine::RingSide::kConsumer)),
            1u);
  EXPECT_EQ(rte_mempool_avail_count(mp), 63u);
  rte_mbuf* m = rte_pktmbuf_alloc(mp);
  ASSERT_NE(m, nullptr);
  rte_pktmbuf_free(m);
  rte_mempool_free(mp);
}

// EAL leaves its (empty) runtime directory behind: remove it.
class EalCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::string dir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    rmdir(dir.c_str());
  }
};
const auto* const g_cleanup = ::testing::AddGlobalTestEnvironment(new EalCleanup);

}  // namespace
}  // namespace machnet::test
