// The engine over DPDK's ring PMD, in one process: the test owns the rings
// behind the port, injects frames on RX and reads what the engine sends on
// TX. Covers what the wire-level tests cannot: ARP and ICMP answers, UDP
// delivery, IPv4 reassembly (the largest datagram, overlapping and endless
// fragments included), fragmentation on send, ARP resolution and failure,
// socket queue limits, fault injection, and that every mbuf comes back.
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "../unit/frames.h"
#include "engine/eal.h"
#include "engine/engine.h"

namespace machnet::test {
namespace {

using engine::Engine;
using engine::EngineConfig;
using engine::UdpSocket;

constexpr uint16_t kPort = 5000;

EngineConfig base_config() {
  EngineConfig c;
  c.ip = kLocalIp;
  c.prefix_len = 24;
  c.hugepages = false;
  c.num_mbufs = 4095;
  c.socket_queue_len = 64;
  c.arp.retry_ns = 5'000'000;
  c.arp.max_requests = 3;
  c.frag_timeout_ms = 50;
  c.frag_max_flows = 64;
  return c;
}

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string err;
    CPU_ZERO(&affinity_before_);
    ASSERT_EQ(sched_getaffinity(0, sizeof(affinity_before_), &affinity_before_), 0);
    fds_before_ = open_fds();
    ASSERT_TRUE(engine::eal_init_once(base_config(), &err)) << err;
    test_pool_ = rte_pktmbuf_pool_create("test_pool", 8191, 0, 0, 9216 + 128, 0);
    ASSERT_NE(test_pool_, nullptr);
  }

  void SetUp() override { make_engine(base_config()); }

  void make_engine(EngineConfig c) {
    eng_.reset();
    static int n = 0;
    std::string name = "t" + std::to_string(n++);
    rx_ = rte_ring_create((name + "rx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    tx_ = rte_ring_create((name + "tx").c_str(), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_NE(rx_, nullptr);
    ASSERT_NE(tx_, nullptr);
    int port = rte_eth_from_rings(name.c_str(), &rx_, 1, &tx_, 1, 0);
    ASSERT_GE(port, 0);
    c.port_id = port;
    c.mac = "02:00:00:00:00:01";
    std::string err;
    eng_ = Engine::create(c, &err);
    ASSERT_NE(eng_, nullptr) << err;
    drain_tx();  // the gratuitous ARP
  }

  void inject(const Frame& f) {
    rte_mbuf* m = rte_pktmbuf_alloc(test_pool_);
    ASSERT_NE(m, nullptr);
    char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(f.size()));
    ASSERT_NE(p, nullptr);
    memcpy(p, f.data(), f.size());
    ASSERT_EQ(rte_ring_enqueue(rx_, m), 0);
  }

  void poll(int times = 3) {
    for (int i = 0; i < times; i++) eng_->poll();
  }

  void drain_rx() {
    while (rte_ring_count(rx_) != 0) eng_->poll();
  }

  std::vector<Frame> drain_tx() {
    std::vector<Frame> out;
    void* obj;
    while (rte_ring_dequeue(tx_, &obj) == 0) {
      auto* m = static_cast<rte_mbuf*>(obj);
      Frame f(m->pkt_len);
      rte_pktmbuf_read(m, 0, m->pkt_len, f.data());
      const void* d = rte_pktmbuf_read(m, 0, m->pkt_len, f.data());
      if (d != f.data()) memcpy(f.data(), d, m->pkt_len);
      rte_pktmbuf_free(m);
      out.push_back(std::move(f));
    }
    return out;
  }

  uint64_t drops(DropReason r) const { return eng_->counters().drop(r); }

  // Polls until pred() or ~2 s pass (never asserts on how long it took).
  template <typename Pred>
  bool poll_until(Pred pred) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (std::chrono::steady_clock::now() < end) {
      eng_->poll();
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return pred();
  }

  // Splits a UDP frame's IP payload into fragments at the given byte offsets
  // (multiples of 8), each a complete frame with a correct header checksum.
  static std::vector<Frame> fragment(const Frame& whole, const std::vector<size_t>& cuts) {
    std::vector<Frame> out;
    size_t l4_len = whole.size() - kL4;
    std::vector<size_t> edges = cuts;
    edges.push_back(l4_len);
    size_t start = 0;
    for (size_t end : edges) {
      Frame f(kL4 + (end - start));
      memcpy(f.data(), whole.data(), kL4);
      memcpy(f.data() + kL4, whole.data() + kL4 + start, end - start);
      put16(&f, kL3 + 2, static_cast<uint16_t>(20 + end - start));
      uint16_t fo = static_cast<uint16_t>(start / 8);
      if (end != l4_len) fo |= wire::kIpFlagMoreFragments;
      put16(&f, kL3 + 6, fo);
      fix_ip_checksum(&f);
      out.push_back(std::move(f));
      start = end;
    }
    return out;
  }

  static inline rte_mempool* test_pool_ = nullptr;
  static inline cpu_set_t affinity_before_;
  static inline std::set<int> fds_before_;  // inherited from whoever started us

  static std::set<int> open_fds() {
    std::set<int> fds;
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) return fds;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d)) fds.insert(atoi(e->d_name));
    }
    closedir(d);
    return fds;
  }
  std::unique_ptr<Engine> eng_;
  rte_ring* rx_ = nullptr;
  rte_ring* tx_ = nullptr;
};

TEST_F(EngineTest, EalKeepsTheCallersCpuSetAndItsFdsAreCloseOnExec) {
  cpu_set_t now;
  CPU_ZERO(&now);
  ASSERT_EQ(sched_getaffinity(0, sizeof(now), &now), 0);
  EXPECT_TRUE(CPU_EQUAL(&now, &affinity_before_)) << "EAL changed the thread's CPU set";
  // Every descriptor EAL and the PMDs opened must not leak into an exec'd child.
  int checked = 0;
  for (int fd : open_fds()) {
    if (fds_before_.count(fd) != 0) continue;
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) continue;
    char target[256] = {};
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    if (readlink(path.c_str(), target, sizeof(target) - 1) < 0) target[0] = '?';
    EXPECT_TRUE(flags & FD_CLOEXEC) << "fd " << fd << " (" << target << ") is not close-on-exec";
    checked++;
  }
  EXPECT_GT(checked, 0);  // EAL opens some (memfds, eventfds, telemetry socket)
}

TEST_F(EngineTest, AnswersArpForItsAddressOnly) {
  inject(make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp));
  inject(make_arp(wire::kArpOpRequest, kPeerIp, kOtherIp));
  poll();
  auto out = drain_tx();
  ASSERT_EQ(out.size(), 1u);
  wire::ParseOptions o;
  o.local_ip = kPeerIp;
  auto pf = parse(out[0], o);
  ASSERT_EQ(pf.kind, wire::FrameKind::kArp);
  EXPECT_EQ(pf.arp_op, wire::kArpOpReply);
  EXPECT_EQ(pf.arp_spa, kLocalIp);
  EXPECT_EQ(pf.arp_sha, kLocalMac);
  EXPECT_EQ(drops(DropReason::kArpNotForUs), 1u);
}

TEST_F(EngineTest, AnswersPingWithValidReply) {
  Frame req = make_icmp_echo(56);
  inject(req);
  poll();
  auto out = drain_tx();
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].size(), req.size());
  EXPECT_EQ(wire::internet_checksum(out[0].data() + kL3, 20), 0);
  EXPECT_EQ(wire::internet_checksum(out[0].data() + kL4, out[0].size() - kL4), 0);
  EXPECT_EQ(out[0][kL4], wire::kIcmpEchoReply);
  EXPECT_EQ(0, memcmp(out[0].data(), kPeerMac.data(), 6));  // back to the sender
  EXPECT_EQ(eng_->counters().icmp_echo_replies, 1u);
}

TEST_F(EngineTest, DeliversUdpToBoundPortAndCountsTheRest) {
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  UdpSocket* dup = nullptr;
  EXPECT_EQ(eng_->udp_bind(kPort, &dup), -EADDRINUSE);
  inject(make_udp(100, 9, 4000, kPort));
  inject(make_udp(100, 9, 4000, kPort + 1));  // nobody there
  Frame bad = make_udp(100, 9, 4000, kPort);
  bad[bad.size() - 1] ^= 0xff;  // payload corrupted: UDP checksum fails
  inject(bad);
  Frame short_ip = make_udp(100, 9, 4000, kPort);
  short_ip.resize(kL4 + 4);  // truncated mid-UDP header
  inject(short_ip);
  poll();
  uint8_t buf[200];
  uint32_t ip;
  uint16_t port;
  ASSERT_EQ(eng_->udp_recvfrom(s, buf, sizeof(buf), &ip, &port), 100);
  EXPECT_EQ(ip, kPeerIp);
  EXPECT_EQ(port, 4000);
  for (int i = 0; i < 100; i++) EXPECT_EQ(buf[i], static_cast<uint8_t>(9 + 7 * i));
  EXPECT_EQ(eng_->udp_recvfrom(s, buf, sizeof(buf), &ip, &port), -EAGAIN);
  EXPECT_EQ(drops(DropReason::kNoSocket), 1u);
  EXPECT_EQ(drops(DropReason::kBadUdpChecksum), 1u);
  EXPECT_GE(drops(DropReason::kTruncatedUdp) + drops(DropReason::kBadIpLength), 1u);
  eng_->udp_close(s);
}

TEST_F(EngineTest, PortUnreachableBothWays) {
  // A datagram to a port nobody bound gets ICMP port unreachable back.
  Frame to_nowhere = make_udp(20, 1, 4000, 4444);
  inject(to_nowhere);
  poll();
  auto out = drain_tx();
  ASSERT_EQ(out.size(), 1u);
  wire::ParseOptions peer;
  peer.local_ip = kPeerIp;
  auto pf = parse(out[0], peer);
  ASSERT_EQ(pf.kind, wire::FrameKind::kIcmpUnreachable);
  EXPECT_EQ(pf.dst_port, 4444);
  EXPECT_EQ(eng_->counters().icmp_unreachable_tx, 1u);
  // ... but never for a broadcast, and at most a burst of them.
  Frame bcast = make_udp(20, 1, 4000, 4444);
  put32(&bcast, kL3 + 16, 0xffffffffu);
  fix_ip_checksum(&bcast);
  fix_udp_checksum(&bcast);
  inject(bcast);
  for (int i = 0; i < 200; i++) inject(to_nowhere);
  drain_rx();
  size_t icmp = drain_tx().size();
  EXPECT_GE(icmp, 40u);
  EXPECT_LE(icmp, 60u);  // burst of 50 plus what refilled meanwhile
  // A peer's report about one of our datagrams surfaces as the socket error.
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  Frame ours = make_udp(30, 1, kPort, 6000);  // as if we had sent it to the peer
  std::swap_ranges(ours.begin() + kL3 + 12, ours.begin() + kL3 + 16, ours.begin() + kL3 + 16);
  Frame report(wire::kUdpHeadersLen + wire::kIcmpQuoteMax);
  report.resize(wire::build_icmp_unreachable(report.data(), 3, kPeerMac, kLocalMac, kPeerIp,
                                             kLocalIp, ours.data() + kL3, ours.size() - kL3));
  inject(report);
  poll();
  uint32_t ip = 0;
  uint16_t port = 0;
  EXPECT_EQ(eng_->udp_take_error(s, &ip, &port), ECONNREFUSED);
  EXPECT_EQ(ip, kPeerIp);
  EXPECT_EQ(port, 6000);
  EXPECT_EQ(eng_->udp_take_error(s, &ip, &port), 0);  // cleared by reading
  eng_->udp_close(s);
}

TEST_F(EngineTest, SocketQueueIsBounded) {
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  for (int i = 0; i < 80; i++) inject(make_udp(10, 1, 4000, kPort));
  poll(5);
  EXPECT_EQ(eng_->udp_pending(s), 64u);
  EXPECT_EQ(drops(DropReason::kSocketQueueFull), 16u);
  eng_->udp_close(s);  // frees the queued mbufs
}

// socket_queue_len (64 here) bounds the mbufs queued datagrams hold too: a
// reassembled 65,507-byte datagram holds 45. A queue below the bound takes
// the next datagram whatever its size; one at or over it takes none.
TEST_F(EngineTest, SocketQueueBoundsTheMbufsItHolds) {
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  unsigned avail_before = rte_mempool_avail_count(test_pool_);
  std::vector<size_t> cuts;
  for (size_t c = 1480; c < wire::kMaxUdpPayload + 8; c += 1480) cuts.push_back(c);
  auto big = [&](uint16_t id) {
    Frame whole = make_udp(wire::kMaxUdpPayload, 3, 4000, kPort);
    put16(&whole, kL3 + 4, id);
    fix_ip_checksum(&whole);
    for (const Frame& f : fragment(whole, cuts)) inject(f);
    drain_rx();
  };
  big(1);  // 45 mbufs
  big(2);  // 45 < 64: taken, 90 now
  big(3);  // 90 >= 64: dropped
  EXPECT_EQ(eng_->counters().reassembled, 3u);
  EXPECT_EQ(eng_->udp_pending(s), 2u);
  EXPECT_EQ(drops(DropReason::kSocketQueueFull), 1u);
  inject(make_udp(10, 1, 4000, kPort));  // small ones neither
  drain_rx();
  EXPECT_EQ(drops(DropReason::kSocketQueueFull), 2u);
  std::vector<uint8_t> buf(70000);
  ASSERT_EQ(eng_->udp_recvfrom(s, buf.data(), buf.size(), nullptr, nullptr),
            static_cast<ssize_t>(wire::kMaxUdpPayload));
  big(4);  // 45 < 64 again
  EXPECT_EQ(eng_->udp_pending(s), 2u);
  for (int i = 0; i < 19; i++) inject(make_udp(10, 1, 4000, kPort));
  drain_rx();
  EXPECT_EQ(eng_->udp_pending(s), 2u);  // 90 held: none of them
  EXPECT_EQ(drops(DropReason::kSocketQueueFull), 21u);
  while (eng_->udp_recvfrom(s, buf.data(), buf.size(), nullptr, nullptr) > 0) {
  }
  for (int i = 0; i < 70; i++) inject(make_udp(10, 1, 4000, kPort));
  drain_rx();
  EXPECT_EQ(eng_->udp_pending(s), 64u);  // emptied: small datagrams as before
  eng_->udp_close(s);
  EXPECT_TRUE(poll_until([&] { return rte_mempool_avail_count(test_pool_) == avail_before; }))
      << "mbufs still held: " << avail_before - rte_mempool_avail_count(test_pool_);
}

TEST_F(EngineTest, ReassemblesFragmentsInAnyOrder) {
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  Frame whole = make_udp(4000, 5, 4000, kPort);
  auto frags = fragment(whole, {1480, 2960});
  inject(frags[2]);
  inject(frags[0]);
  inject(frags[1]);
  poll();
  std::vector<uint8_t> buf(5000);
  ASSERT_EQ(eng_->udp_recvfrom(s, buf.data(), buf.size(), nullptr, nullptr), 4000);
  EXPECT_EQ(0, memcmp(buf.data(), whole.data() + wire::kUdpHeadersLen, 4000));
  EXPECT_EQ(eng_->counters().reassembled, 1u);
  eng_->udp_close(s);
}

TEST_F(EngineTest, OverlappingFragmentsAreDroppedAndFreed) {
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  unsigned avail_before = rte_mempool_avail_count(test_pool_);
  Frame whole = make_udp(4000, 5, 4000, kPort);
  auto a = fragment(whole, {1480, 2960});
  auto b = fragment(whole, {1000, 2000});  // overlaps a's pieces
  inject(a[0]);
  inject(b[1]);
  inject(a[2]);
  inject(a[1]);
  poll();
  std::vector<uint8_t> buf(5000);
  // As Linux: an overlap that is not a plain duplicate drops the datagram
  // (a[0] and b[1]); a[2] and a[1] start another one that never completes.
  EXPECT_EQ(eng_->udp_recvfrom(s, buf.data(), buf.size(), nullptr, nullptr), -EAGAIN);
  EXPECT_EQ(drops(DropReason::kFragOverlap), 2u);
  // Whatever was held is released by the reassembly timeout.
  EXPECT_TRUE(poll_until([&] { return rte_mempool_avail_count(test_pool_) == avail_before; }))
      << "mbufs still held: " << avail_before - rte_mempool_avail_count(test_pool_);
  eng_->udp_close(s);
}

TEST_F(EngineTest, EndlessFragmentsUseBoundedMemoryAndExpire) {
  unsigned avail_before = rte_mempool_avail_count(test_pool_);
  // 1000 datagrams whose last fragment never comes, each with its own IP id:
  // far more than frag.max_flows (64).
  for (int id = 0; id < 1000; id++) {
    Frame whole = make_udp(3000, 1, 4000, kPort);
    put16(&whole, kL3 + 4, static_cast<uint16_t>(id));
    fix_ip_checksum(&whole);
    auto frags = fragment(whole, {1480});
    inject(frags[0]);
    if (id % 100 == 99) drain_rx();
  }
  // frag.max_flows (64) at a time: every other datagram was refused or had
  // already timed out (a slow run, e.g. under ASan on a loaded machine, lets
  // some expire while the rest arrive), none is lost silently.
  EXPECT_GE(drops(DropReason::kFragNoRoom) + drops(DropReason::kFragTimeout), 1000u - 64u);
  EXPECT_GT(drops(DropReason::kFragNoRoom), 0u);
  EXPECT_TRUE(poll_until([&] { return rte_mempool_avail_count(test_pool_) == avail_before; }))
      << "mbufs still held: " << avail_before - rte_mempool_avail_count(test_pool_);
  EXPECT_EQ(drops(DropReason::kFragNoRoom) + drops(DropReason::kFragTimeout), 1000u);
}

// Turns a frame the engine sent to the peer into the same frame coming back
// from the peer: swapping MACs, IPs and ports keeps every checksum valid.
Frame mirror(Frame f) {
  for (int i = 0; i < 6; i++) std::swap(f[i], f[6 + i]);
  for (int i = 0; i < 4; i++) std::swap(f[kL3 + 12 + i], f[kL3 + 16 + i]);
  uint16_t fo = get16(f, kL3 + 6);
  if ((fo & wire::kIpFragOffsetMask) == 0) {
    for (int i = 0; i < 2; i++) std::swap(f[kL4 + i], f[kL4 + 2 + i]);
  }
  return f;
}

TEST_F(EngineTest, SendResolvesArpThenFragmentsLargeDatagrams) {
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  std::vector<uint8_t> msg(8000);
  for (size_t i = 0; i < msg.size(); i++) msg[i] = static_cast<uint8_t>(i * 13 + 5);
  ASSERT_EQ(eng_->udp_sendto(s, kPeerIp, 6000, msg.data(), msg.size()), 0);
  // Nothing but an ARP request until the peer answers.
  auto out = drain_tx();
  ASSERT_EQ(out.size(), 1u);
  wire::ParseOptions peer_opts;
  peer_opts.local_ip = kPeerIp;
  ASSERT_EQ(parse(out[0], peer_opts).kind, wire::FrameKind::kArp);
  inject(make_arp(wire::kArpOpReply, kPeerIp, kLocalIp));
  poll();
  out = drain_tx();
  ASSERT_EQ(out.size(), 6u);  // 8008 bytes of UDP in 1480-byte pieces
  size_t total = 0;
  for (auto& f : out) {
    EXPECT_EQ(0, memcmp(f.data(), kPeerMac.data(), 6));
    EXPECT_LE(f.size() - kL3, 1500u);
    EXPECT_EQ(wire::internet_checksum(f.data() + kL3, 20), 0);
    total += f.size() - kL4;
  }
  EXPECT_EQ(total, 8008u);
  // Loop the fragments back (reversed) and receive our own datagram intact.
  for (auto it = out.rbegin(); it != out.rend(); ++it) inject(mirror(*it));
  poll();
  std::vector<uint8_t> buf(9000);
  uint32_t ip;
  uint16_t port;
  ASSERT_EQ(eng_->udp_recvfrom(s, buf.data(), buf.size(), &ip, &port), 8000);
  EXPECT_EQ(0, memcmp(buf.data(), msg.data(), 8000));
  EXPECT_EQ(ip, kPeerIp);
  EXPECT_EQ(port, 6000);
  // A second send goes straight out: the neighbour is cached.
  ASSERT_EQ(eng_->udp_sendto(s, kPeerIp, 6000, msg.data(), 100), 0);
  EXPECT_EQ(drain_tx().size(), 1u);
  EXPECT_EQ(eng_->udp_sendto(s, kPeerIp, 6000, msg.data(), 65508), -EMSGSIZE);
  EXPECT_EQ(eng_->udp_sendto(s, 0x0b000001, 6000, msg.data(), 10), -ENETUNREACH);
  eng_->udp_close(s);
}

// The largest UDP datagram, 65,507 bytes: 45 fragments out, and back in a
// shuffled order as one datagram, byte for byte, with every mbuf returned.
TEST_F(EngineTest, LargestDatagramGoesOutAndComesBackWhole) {
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  unsigned avail_before = rte_mempool_avail_count(test_pool_);
  std::vector<uint8_t> msg(wire::kMaxUdpPayload);
  for (size_t i = 0; i < msg.size(); i++) msg[i] = static_cast<uint8_t>(i * 7 + i / 251);
  ASSERT_EQ(eng_->udp_sendto(s, kPeerIp, 6000, msg.data(), 1), 0);
  inject(make_arp(wire::kArpOpReply, kPeerIp, kLocalIp));
  poll();
  drain_tx();
  ASSERT_EQ(eng_->udp_sendto(s, kPeerIp, 6000, msg.data(), msg.size()), 0);
  auto out = drain_tx();
  ASSERT_EQ(out.size(), 45u);
  size_t total = 0;
  for (size_t i = 0; i < out.size(); i++) {
    const Frame& f = out[i];
    EXPECT_LE(f.size() - kL3, 1500u);
    uint16_t fo = get16(f, kL3 + 6);
    EXPECT_EQ((fo & wire::kIpFragOffsetMask) * 8u, i * 1480) << i;
    EXPECT_EQ((fo & wire::kIpFlagMoreFragments) != 0, i + 1 < out.size()) << i;
    total += f.size() - kL4;
  }
  EXPECT_EQ(total, msg.size() + 8);
  std::mt19937 rng(3);
  std::shuffle(out.begin(), out.end(), rng);
  for (auto& f : out) inject(mirror(f));
  poll(5);
  std::vector<uint8_t> buf(70000);
  ASSERT_EQ(eng_->udp_recvfrom(s, buf.data(), buf.size(), nullptr, nullptr),
            static_cast<ssize_t>(msg.size()));
  EXPECT_EQ(0, memcmp(buf.data(), msg.data(), msg.size()));
  eng_->udp_close(s);
  EXPECT_TRUE(poll_until([&] { return rte_mempool_avail_count(test_pool_) == avail_before; }))
      << "mbufs still held: " << avail_before - rte_mempool_avail_count(test_pool_);
}

TEST_F(EngineTest, GatherSendMatchesContiguousSend) {
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  inject(make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp));  // peer known
  poll();
  drain_tx();
  for (size_t len : {1u, 7u, 1471u, 1472u, 1473u, 5000u}) {
    std::vector<uint8_t> msg(len);
    for (size_t i = 0; i < len; i++) msg[i] = static_cast<uint8_t>(i * 31 + len);
    // Odd-sized pieces so checksums and fragment copies cross iovec edges.
    std::vector<iovec> iov;
    for (size_t off = 0; off < len;) {
      size_t n = std::min<size_t>(len - off, 3 + (off % 11) * 97);
      iov.push_back({msg.data() + off, n});
      off += n;
    }
    ASSERT_EQ(eng_->udp_sendv(s, kPeerIp, 6000, iov.data(), static_cast<int>(iov.size())), 0);
    auto out = drain_tx();
    ASSERT_FALSE(out.empty());
    for (auto& f : out) inject(mirror(f));
    poll();
    std::vector<uint8_t> buf(len + 10);
    ASSERT_EQ(eng_->udp_recvfrom(s, buf.data(), buf.size(), nullptr, nullptr),
              static_cast<ssize_t>(len))
        << "len " << len;
    EXPECT_EQ(0, memcmp(buf.data(), msg.data(), len)) << "len " << len;
  }
  EXPECT_EQ(drops(DropReason::kBadUdpChecksum), 0u);
  eng_->udp_close(s);
}

TEST_F(EngineTest, StaticNeighboursNeedNoArp) {
  EngineConfig c = base_config();
  c.static_neighbours.emplace_back(kPeerIp, "02:00:00:00:00:02");
  make_engine(c);
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  uint8_t b[10] = {};
  ASSERT_EQ(eng_->udp_sendto(s, kPeerIp, 6000, b, sizeof(b)), 0);
  auto out = drain_tx();
  ASSERT_EQ(out.size(), 1u);  // the datagram itself, no ARP request first
  EXPECT_EQ(0, memcmp(out[0].data(), kPeerMac.data(), 6));
  eng_->udp_close(s);
}

TEST_F(EngineTest, UnansweredArpDropsWaitingPackets) {
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  uint8_t b[10] = {};
  ASSERT_EQ(eng_->udp_sendto(s, kOtherIp, 6000, b, sizeof(b)), 0);
  ASSERT_EQ(eng_->udp_sendto(s, kOtherIp, 6000, b, sizeof(b)), 0);
  EXPECT_TRUE(poll_until([&] { return drops(DropReason::kNoArpEntry) == 2; }));
  size_t requests = 0;
  for (auto& f : drain_tx()) requests += f.size() == wire::kArpFrameLen;
  EXPECT_EQ(requests, 3u);  // arp.max_requests
  eng_->udp_close(s);
}

TEST_F(EngineTest, FaultInjectionDropsReceivedFrames) {
  EngineConfig c = base_config();
  c.fault_rx_drop = 1.0;
  make_engine(c);
  for (int i = 0; i < 10; i++) inject(make_icmp_echo(8));
  poll();
  EXPECT_EQ(drops(DropReason::kInjected), 10u);
  EXPECT_TRUE(drain_tx().empty());
}

// Several sockets on one port (the socket layer's, whose kernel twins passed
// the kernel's SO_REUSEADDR check): each datagram goes to the best match, as
// in the kernel; the transport's exclusive ports are never shared.
TEST_F(EngineTest, DemultiplexesByTheFullAddress) {
  engine::UdpBindOptions shared;
  shared.shared = true;
  UdpSocket* only = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort + 1, &only), 0);  // exclusive
  UdpSocket* dup = nullptr;
  EXPECT_EQ(eng_->udp_bind(kPort + 1, shared, &dup), -EADDRINUSE);
  eng_->udp_close(only);

  UdpSocket* a = nullptr;  // connected to kPeerIp:4000
  UdpSocket* b = nullptr;  // unconnected, bound later
  ASSERT_EQ(eng_->udp_bind(kPort, shared, &a), 0);
  EXPECT_EQ(eng_->udp_bind(kPort, &dup), -EADDRINUSE);  // an exclusive bind never joins
  ASSERT_EQ(eng_->udp_bind(kPort, shared, &b), 0);
  eng_->udp_connect(a, kPeerIp, 4000);
  inject(make_udp(10, 1, 4000, kPort));
  inject(make_udp(20, 2, 4001, kPort));
  inject(make_udp(30, 3, 4000, kPort));
  poll();
  uint8_t buf[64];
  uint32_t ip;
  uint16_t port;
  EXPECT_EQ(eng_->udp_pending(a), 2u);
  EXPECT_EQ(eng_->udp_pending(b), 1u);
  EXPECT_EQ(eng_->udp_recvfrom(a, buf, sizeof(buf), &ip, &port), 10);
  EXPECT_EQ(port, 4000);
  EXPECT_EQ(eng_->udp_recvfrom(a, buf, sizeof(buf), &ip, &port), 30);
  EXPECT_EQ(eng_->udp_recvfrom(b, buf, sizeof(buf), &ip, &port), 20);
  EXPECT_EQ(port, 4001);

  // A socket bound to the engine's address beats one bound to any; a
  // connected one beats both.
  UdpSocket* c = nullptr;
  engine::UdpBindOptions specific = shared;
  specific.local_ip = kLocalIp;
  ASSERT_EQ(eng_->udp_bind(kPort, specific, &c), 0);
  inject(make_udp(11, 1, 4002, kPort));
  inject(make_udp(12, 1, 4000, kPort));
  poll();
  EXPECT_EQ(eng_->udp_pending(c), 1u);
  EXPECT_EQ(eng_->udp_pending(a), 1u);
  EXPECT_EQ(eng_->udp_pending(b), 0u);
  eng_->udp_close(c);  // frees its queued datagram

  // Without the unconnected socket, the connected one hears nobody else: the
  // datagram gets port unreachable, as from the kernel.
  eng_->udp_close(b);
  drain_tx();
  inject(make_udp(20, 2, 4001, kPort));
  poll();
  EXPECT_EQ(eng_->udp_pending(a), 1u);
  EXPECT_EQ(drops(DropReason::kNoSocket), 1u);
  EXPECT_EQ(eng_->counters().icmp_unreachable_tx, 1u);
  // Unconnected again: it hears everyone.
  eng_->udp_connect(a, 0, 0);
  inject(make_udp(20, 2, 4001, kPort));
  poll();
  EXPECT_EQ(eng_->udp_pending(a), 2u);
  eng_->udp_close(a);
  // The port is free again, for an exclusive bind too.
  ASSERT_EQ(eng_->udp_bind(kPort, &a), 0);
  eng_->udp_close(a);
}

// SO_REUSEPORT sockets of one port: each flow sticks to one socket, and the
// flows are spread over all of them.
TEST_F(EngineTest, ReuseportSpreadsFlowsOverTheGroup) {
  engine::UdpBindOptions rp;
  rp.shared = true;
  rp.reuseport = true;
  UdpSocket* s[3] = {};
  for (auto& x : s) ASSERT_EQ(eng_->udp_bind(kPort, rp, &x), 0);
  for (int round = 0; round < 2; round++) {
    for (uint16_t sp = 4000; sp < 4030; sp++) inject(make_udp(8, 1, sp, kPort));
    drain_rx();
    poll();
  }
  uint32_t total = 0;
  for (auto* x : s) {
    EXPECT_GT(eng_->udp_pending(x), 0u);
    total += eng_->udp_pending(x);
    // Both datagrams of every flow went to the same socket.
    std::set<uint16_t> once, twice;
    uint8_t buf[16];
    uint32_t ip;
    uint16_t port;
    while (eng_->udp_recvfrom(x, buf, sizeof(buf), &ip, &port) >= 0)
      if (!once.insert(port).second) twice.insert(port);
    EXPECT_EQ(once, twice);
  }
  EXPECT_EQ(total, 60u);
  for (auto* x : s) eng_->udp_close(x);
}

TEST_F(EngineTest, EphemeralPortsAreDistinct) {
  UdpSocket* a = nullptr;
  UdpSocket* b = nullptr;
  ASSERT_EQ(eng_->udp_bind(0, &a), 0);
  ASSERT_EQ(eng_->udp_bind(0, &b), 0);
  EXPECT_NE(a->port(), b->port());
  // Outside the kernel's ephemeral range: a kernel socket bound to port 0
  // is never given a port the engine holds.
  PortRange r = engine_ephemeral_range();
  EXPECT_GE(a->port(), r.first);
  EXPECT_LE(a->port(), r.last);
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned lo = 0, hi = 0;
  if (f >> lo >> hi) {
    EXPECT_TRUE(a->port() < lo || a->port() > hi) << a->port();
  }
  eng_->udp_close(a);
  eng_->udp_close(b);
}

}  // namespace
}  // namespace machnet::test

namespace machnet::test {
namespace {

TEST(EngineConfigTest, BadValuesNameTheirOrigin) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"ip = 10.0.0.300/24\n", "e.conf:1: ip"},
      {"ip = 10.0.0.1/33\n", "e.conf:1: ip: bad prefix"},
      {"\n\ngateway = nowhere\n", "e.conf:3: gateway"},
      {"mac = 02:00:00:00:00\n", "e.conf:1: mac"},
      {"mtu = 100\n", "e.conf:1: mtu"},
      {"fault.rx_drop = 2\n", "e.conf:1: fault.rx_drop"},
      {"hugepages = perhaps\n", "e.conf:1: hugepages"},
      {"arp.static = 10.0.0.2@02:00:00:00:00:02,10.0.0.3\n", "e.conf:1: arp.static"},
  };
  for (const auto& c : cases) {
    Config cfg;
    std::string err;
    ASSERT_TRUE(cfg.parse(c.text, "e.conf", &err)) << err;
    engine::EngineConfig ec;
    EXPECT_FALSE(ec.load(cfg, &err)) << c.text;
    EXPECT_NE(err.find(c.want), std::string::npos) << "got: " << err;
  }
  Config good;
  std::string err;
  ASSERT_TRUE(good.parse("ip = 10.1.2.3/16\ngateway = 10.1.0.1\nmtu = 9000\narp.retry_ms = 7\n",
                         "e.conf", &err));
  engine::EngineConfig ec;
  ASSERT_TRUE(ec.load(good, &err)) << err;
  EXPECT_EQ(ec.ip, 0x0a010203u);
  EXPECT_EQ(ec.prefix_len, 16);
  EXPECT_EQ(ec.gateway, 0x0a010001u);
  EXPECT_EQ(ec.mtu, 9000);
  EXPECT_EQ(ec.arp.retry_ns, 7'000'000u);
}

TEST(EalArgsTest, KeepsCallerCpuSetAndAvoidsPciAndSharedFiles) {
  engine::EngineConfig c;
  c.device = "net_memif0,role=server";
  auto args = engine::eal_arguments(c);
  auto has = [&](const std::string& a) {
    for (auto& x : args)
      if (x == a) return true;
    return false;
  };
  EXPECT_TRUE(has("--no-pci"));
  EXPECT_TRUE(has("--in-memory"));
  EXPECT_TRUE(has("--vdev=net_memif0,role=server"));
  EXPECT_TRUE(has("--lcores"));
  c.device = "0000:00:04.0";
  args = engine::eal_arguments(c);
  EXPECT_FALSE(has("--no-pci"));
  EXPECT_TRUE(has("0000:00:04.0"));
  c.hugepages = false;
  args = engine::eal_arguments(c);
  EXPECT_TRUE(has("--no-huge"));
  EXPECT_FALSE(has("--in-memory"));  // EAL refuses the pair
}

}  // namespace
}  // namespace machnet::test
