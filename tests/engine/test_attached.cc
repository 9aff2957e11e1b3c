// The engine in attached mode, without machnetd: this process plays the
// daemon. It is the EAL primary (so the engine finds EAL initialised and
// skips the secondary init), owns a 4-queue ring port, the shared memory
// (struct mn_shm in a memzone), one mempool and one steering ring per
// queue, and answers the control protocol through FakeMachnetd. The engine
// leases queue 1. Covered: attach and its refusals, ports claimed through
// the daemon, software steering out of our queue and into it (reassembled
// chains included), no ARP/ICMP answers, neighbours learned from the shared
// table, m->port on every mbuf the engine allocates, counters published to
// the lease, and the daemon going away (ENETDOWN, nothing touched).
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_memzone.h>
#include <rte_ring.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "../unit/frames.h"
#include "common/config.h"
#include "engine/eal.h"
#include "engine/engine.h"
#include "fake_machnetd.h"
#include "ipc/shm.h"

namespace machnet::test {
namespace {

using engine::Engine;
using engine::EngineConfig;
using engine::UdpSocket;

constexpr uint16_t kQueues = 4;
constexpr uint16_t kOurQueue = 1;
constexpr uint16_t kPort = 5000;
constexpr char kShmZone[] = "test_machnetd_shm";
constexpr char kRingName[] = "fakemn0";  // the ethdev is "net_ring_fakemn0"
constexpr uint64_t kOwner = 0xfeedface12345678ull;

void put_neighbour(mn_shm* s, uint32_t ip, const wire::MacAddr& mac) {
  for (uint32_t i = 0; i < MN_SHM_NEIGHBOUR_SLOTS; i++) {
    mn_neighbour& n = s->neighbours[(mn_neighbour_slot(ip) + i) % MN_SHM_NEIGHBOUR_SLOTS];
    if (n.ip != 0 && n.ip != ip) continue;
    mn_neighbour_write(&n, ip, mac.data());
    return;
  }
}

class AttachedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EngineConfig c;
    c.hugepages = false;
    std::string err;
    ASSERT_TRUE(engine::eal_init_once(c, &err)) << err;
    for (uint16_t q = 0; q < kQueues; q++) {
      std::string n = std::to_string(q);
      rx_[q] = rte_ring_create(("arx" + n).c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
      tx_[q] = rte_ring_create(("atx" + n).c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
      // No mempool cache: in-use counts are exact, so leaks show.
      pools_[q] = rte_pktmbuf_pool_create(("mn_pool_" + n).c_str(), 2047, 0, 0,
                                          RTE_MBUF_DEFAULT_BUF_SIZE, 0);
      steer_[q] = rte_ring_create(("mn_steer_" + n).c_str(), 256, 0, RING_F_SC_DEQ);
      ASSERT_TRUE(rx_[q] && tx_[q] && pools_[q] && steer_[q]);
    }
    int port = rte_eth_from_rings(kRingName, rx_, kQueues, tx_, kQueues, 0);
    ASSERT_GE(port, 0);
    port_ = static_cast<uint16_t>(port);
    ASSERT_EQ(rte_eth_dev_get_name_by_port(port_, device_), 0);
    // As machnetd does: the daemon configures and starts the port.
    rte_eth_conf conf{};
    ASSERT_EQ(rte_eth_dev_configure(port_, kQueues, kQueues, &conf), 0);
    for (uint16_t q = 0; q < kQueues; q++) {
      ASSERT_EQ(rte_eth_rx_queue_setup(port_, q, 1024, 0, nullptr, pools_[q]), 0);
      ASSERT_EQ(rte_eth_tx_queue_setup(port_, q, 1024, 0, nullptr), 0);
    }
    ASSERT_EQ(rte_eth_dev_start(port_), 0);
    const rte_memzone* mz = rte_memzone_reserve(kShmZone, sizeof(mn_shm), SOCKET_ID_ANY, 0);
    ASSERT_NE(mz, nullptr);
    shm_ = new (mz->addr) mn_shm();
    shm_->magic = MN_SHM_MAGIC;
    shm_->version = MN_SHM_VERSION;
    shm_->daemon_pid = getpid();
    shm_->port_id = port_;
    shm_->nb_queues = kQueues;
    shm_->ip = kLocalIp;
    shm_->prefix_len = 24;
    memcpy(shm_->mac, kLocalMac.data(), 6);
    shm_->mtu = 1500;
    for (uint16_t q = 0; q < kQueues; q++) {
      mn_lease& l = shm_->leases[q];
      l.queue = q;
      l.lcore_id = q;
      l.steer_ring = steer_[q];
      l.pool = pools_[q];
      mn_lease_set_state(&l, q == 0 ? MN_LEASE_DAEMON : MN_LEASE_FREE);
    }
  }

  void SetUp() override {
    for (uint16_t q = 0; q < kQueues; q++) baseline_[q] = rte_mempool_in_use_count(pools_[q]);
    mn_lease& l = shm_->leases[kOurQueue];
    mn_lease_set_state(&l, MN_LEASE_ACTIVE);
    l.pid = getpid();
    l.owner_id = kOwner;
    l.counters = mn_lease_counters{};
    mn_shm_set_shutting_down(shm_, 0);
    d_ = std::make_unique<FakeMachnetd>();
    d_->info.ip = kLocalIp;
    mn_ctl_attach_reply& r = d_->attach_reply;
    r.queue = kOurQueue;
    r.port_id = port_;
    r.lcore_id = kOurQueue;
    r.mtu = 1500;
    r.owner_id = kOwner;
    r.ip = kLocalIp;
    r.prefix_len = 24;
    memcpy(r.mac, kLocalMac.data(), 6);
    strcpy(r.device, device_);
    strcpy(r.shm_name, kShmZone);
    strcpy(r.eal_prefix, "test");
    d_->on_bind = [](uint16_t port, bool bound) {
      mn_port_set_queue(&shm_->ports[port], bound ? kOurQueue : 0);
    };
  }

  void TearDown() override {
    eng_.reset();
    d_.reset();
    for (uint16_t q = 0; q < kQueues; q++) {
      drain(rx_[q]);
      drain(tx_[q]);
      drain(steer_[q]);
    }
    for (auto& p : shm_->ports) mn_port_set_queue(&p, 0);
    for (auto& n : shm_->neighbours) n.ip = 0;
    if (check_leaks_) {
      for (uint16_t q = 0; q < kQueues; q++)
        EXPECT_EQ(rte_mempool_in_use_count(pools_[q]), baseline_[q]) << "pool " << q;
    }
  }

  EngineConfig config() {
    EngineConfig c;
    c.machnetd = engine::MachnetdMode::kOn;
    c.machnetd_socket = d_->path();
    c.socket_queue_len = 64;
    c.arp.retry_ns = 5'000'000;
    c.arp.max_requests = 3;
    return c;
  }

  void attach(EngineConfig c) {
    std::string err;
    eng_ = Engine::create(c, &err);
    ASSERT_NE(eng_, nullptr) << err;
  }

  static void drain(rte_ring* r) {
    void* o;
    while (rte_ring_dequeue(r, &o) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(o));
  }

  static rte_mbuf* mbuf_of(const Frame& f, rte_mempool* pool) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) return nullptr;
    memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
    m->port = port_;  // as a PMD sets it
    return m;
  }

  // A frame arriving on the NIC queue q.
  void inject(const Frame& f, uint16_t q = kOurQueue) {
    rte_mbuf* m = mbuf_of(f, pools_[q]);
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(rte_ring_enqueue(rx_[q], m), 0);
  }

  struct Sent {
    Frame f;
    uint16_t port;
    rte_mempool* pool;
  };
  static std::vector<Sent> take(rte_ring* r) {
    std::vector<Sent> out;
    void* o;
    while (rte_ring_dequeue(r, &o) == 0) {
      auto* m = static_cast<rte_mbuf*>(o);
      Frame f(m->pkt_len);
      const void* d = rte_pktmbuf_read(m, 0, m->pkt_len, f.data());
      if (d != f.data()) memcpy(f.data(), d, m->pkt_len);
      out.push_back({std::move(f), m->port, m->pool});
      rte_pktmbuf_free(m);
    }
    return out;
  }

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
  void poll_ms(int ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) eng_->poll();
  }

  static inline rte_ring* rx_[kQueues];
  static inline rte_ring* tx_[kQueues];
  static inline rte_ring* steer_[kQueues];
  static inline rte_mempool* pools_[kQueues];
  static inline uint16_t port_;
  static inline char device_[RTE_ETH_NAME_MAX_LEN];
  static inline mn_shm* shm_;
  unsigned baseline_[kQueues] = {};
  bool check_leaks_ = true;
  std::unique_ptr<FakeMachnetd> d_;
  std::unique_ptr<Engine> eng_;
};

TEST(AttachedEal, SecondaryArgumentsJoinTheDaemonsEal) {
  EngineConfig c;
  c.log_level = "warning";
  auto a = engine::eal_secondary_arguments(c, "machnetd", 5, "net_memif0");
  auto has = [&](const std::string& s) { return std::find(a.begin(), a.end(), s) != a.end(); };
  EXPECT_TRUE(has("--proc-type=secondary"));
  EXPECT_TRUE(has("--file-prefix=machnetd"));
  EXPECT_TRUE(has("--no-pci"));
  EXPECT_TRUE(has("--log-level=warning"));
  EXPECT_FALSE(has("--in-memory"));
  EXPECT_FALSE(has("--proc-type=auto"));
  EXPECT_FALSE(has("--no-huge"));
  auto l = std::find(a.begin(), a.end(), "--lcores");
  ASSERT_NE(l, a.end());
  ASSERT_NE(l + 1, a.end());
  EXPECT_EQ((l + 1)->rfind("5@(", 0), 0u) << *(l + 1);
  auto p = engine::eal_secondary_arguments(c, "machnetd", 2, "0000:00:04.0");
  auto pa = std::find(p.begin(), p.end(), "-a");
  ASSERT_NE(pa, p.end());
  EXPECT_EQ(*(pa + 1), "0000:00:04.0");
  EXPECT_EQ(std::find(p.begin(), p.end(), "--no-pci"), p.end());
}

TEST(AttachedConfig, MachnetdKeys) {
  const auto& keys = EngineConfig::keys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "machnetd"), keys.end());
  EXPECT_NE(std::find(keys.begin(), keys.end(), "machnetd.socket"), keys.end());
  EXPECT_EQ(Config::env_name("machnetd.socket"), "MACHNET_MACHNETD_SOCKET");
  EngineConfig d;
  EXPECT_EQ(d.machnetd, engine::MachnetdMode::kAuto);
  EXPECT_EQ(d.machnetd_socket, MN_CTL_DEFAULT_SOCKET);
  struct Case {
    const char* text;
    bool ok;
    engine::MachnetdMode mode;
  };
  for (const Case& tc : {Case{"machnetd = on\n", true, engine::MachnetdMode::kOn},
                         Case{"machnetd = off\n", true, engine::MachnetdMode::kOff},
                         Case{"machnetd = no\n", true, engine::MachnetdMode::kOff},
                         Case{"machnetd = auto\n", true, engine::MachnetdMode::kAuto},
                         Case{"machnetd = perhaps\n", false, engine::MachnetdMode::kAuto}}) {
    Config c;
    std::string err;
    ASSERT_TRUE(c.parse(tc.text, "t.conf", &err)) << err;
    EngineConfig e;
    EXPECT_EQ(e.load(c, &err), tc.ok) << tc.text;
    if (tc.ok) {
      EXPECT_EQ(e.machnetd, tc.mode) << tc.text;
    } else {
      EXPECT_NE(err.find("t.conf:1: machnetd"), std::string::npos) << err;
    }
  }
  Config c;
  std::string err;
  ASSERT_TRUE(c.parse("[machnetd]\nsocket = /tmp/m.sock\n", "t.conf", &err)) << err;
  EngineConfig e;
  ASSERT_TRUE(e.load(c, &err)) << err;
  EXPECT_EQ(e.machnetd_socket, "/tmp/m.sock");
  Config bad;  // under the 198-byte line limit, over the path's 100 bytes
  ASSERT_TRUE(bad.parse("machnetd.socket = /" + std::string(150, 'a') + "\n", "t.conf", &err));
  EXPECT_FALSE(e.load(bad, &err));
  EXPECT_NE(err.find("machnetd.socket"), std::string::npos) << err;
}

TEST_F(AttachedTest, AttachesToTheLeasedQueue) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  EXPECT_TRUE(eng_->attached());
  EXPECT_EQ(eng_->failure(), 0);
  EXPECT_EQ(eng_->ip(), kLocalIp);
  EXPECT_EQ(eng_->port_id(), port_);
  std::string d = eng_->describe();
  EXPECT_NE(d.find("attached to machnetd pid " + std::to_string(getpid())), std::string::npos) << d;
  EXPECT_NE(d.find("queue 1 (lcore 1) on net_ring_fakemn0"), std::string::npos) << d;
  EXPECT_NE(d.find("ip 10.0.0.1/24 mac 02:00:00:00:00:01"), std::string::npos) << d;
  EXPECT_EQ(d_->requests(MN_CTL_ATTACH), 1);
  // Nothing announced: the host's address is the daemon's.
  poll_ms(3);
  EXPECT_TRUE(take(tx_[kOurQueue]).empty());
}

TEST_F(AttachedTest, PortsAreClaimedThroughTheDaemon) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  EXPECT_EQ(mn_port_queue(&shm_->ports[kPort]), kOurQueue);
  UdpSocket* dup = nullptr;
  EXPECT_EQ(eng_->udp_bind(kPort, &dup), -EADDRINUSE);  // ours already: no round trip
  d_->busy_port = 6000;
  EXPECT_EQ(eng_->udp_bind(6000, &dup), -EADDRINUSE);  // another process holds it
  UdpSocket* eph = nullptr;
  ASSERT_EQ(eng_->udp_bind(0, &eph), 0);
  EXPECT_EQ(eph->port(), 40000);  // the daemon's choice
  EXPECT_EQ(d_->requests(MN_CTL_BIND), 3);
  eng_->udp_close(s);
  EXPECT_EQ(mn_port_queue(&shm_->ports[kPort]), 0);
  EXPECT_EQ(d_->requests(MN_CTL_UNBIND), 1);
  eng_->udp_close(eph);
  EXPECT_TRUE(d_->bound().empty());
}

// Sockets of ours sharing a port (SO_REUSEADDR): one claim from the daemon
// (it refuses a second claim by the same process), given back with the last.
TEST_F(AttachedTest, ASharedPortIsClaimedOnce) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  engine::UdpBindOptions shared;
  shared.shared = true;
  UdpSocket* a = nullptr;
  UdpSocket* b = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, shared, &a), 0);
  ASSERT_EQ(eng_->udp_bind(kPort, shared, &b), 0);
  EXPECT_EQ(d_->requests(MN_CTL_BIND), 1);
  EXPECT_EQ(mn_port_queue(&shm_->ports[kPort]), kOurQueue);
  eng_->udp_connect(a, kPeerIp, 4000);
  inject(make_udp(100, 9, 4000, kPort));
  inject(make_udp(50, 9, 4001, kPort));
  ASSERT_TRUE(poll_until([&] { return eng_->udp_pending(a) == 1 && eng_->udp_pending(b) == 1; }));
  eng_->udp_close(a);
  EXPECT_EQ(d_->requests(MN_CTL_UNBIND), 0);
  EXPECT_EQ(mn_port_queue(&shm_->ports[kPort]), kOurQueue);
  eng_->udp_close(b);
  EXPECT_EQ(d_->requests(MN_CTL_UNBIND), 1);
  EXPECT_EQ(mn_port_queue(&shm_->ports[kPort]), 0);
  EXPECT_EQ(shm_->ports[kPort].rx_datagrams, 2u);  // both sockets' figures
}

TEST_F(AttachedTest, OwnDatagramsAreDeliveredOthersAreSteered) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  mn_port_set_queue(&shm_->ports[6000], 2);
  inject(make_udp(100, 9, 4000, kPort));
  Frame for_q2 = make_udp(50, 3, 4000, 6000);
  inject(for_q2);
  inject(make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp));
  inject(make_icmp_echo(32));
  inject(make_udp(20, 1, 4000, 7000));  // nobody's port
  Frame frag = make_udp(100, 9, 4000, kPort);
  put16(&frag, kL3 + 6, wire::kIpFlagMoreFragments);
  fix_ip_checksum(&frag);
  inject(frag);
  ASSERT_TRUE(poll_until([&] { return eng_->udp_pending(s) == 1; }));
  poll_ms(2);

  uint8_t buf[200];
  uint32_t ip;
  uint16_t port;
  ASSERT_EQ(eng_->udp_recvfrom(s, buf, sizeof(buf), &ip, &port), 100);
  EXPECT_EQ(ip, kPeerIp);
  EXPECT_EQ(port, 4000);
  EXPECT_EQ(buf[99], static_cast<uint8_t>(9 + 7 * 99));

  auto q2 = take(steer_[2]);
  ASSERT_EQ(q2.size(), 1u);
  EXPECT_EQ(q2[0].f, for_q2);
  EXPECT_EQ(q2[0].pool, pools_[2]);  // a copy in the owner's pool
  EXPECT_EQ(q2[0].port, port_);      // keeps m->port for the daemon's sweep
  auto q0 = take(steer_[0]);
  EXPECT_EQ(q0.size(), 4u);  // ARP, echo, port 7000, fragment: the daemon's
  for (const auto& f : q0) EXPECT_EQ(f.pool, pools_[0]);
  // No ARP reply, echo reply, port unreachable or gratuitous ARP from us.
  EXPECT_TRUE(take(tx_[kOurQueue]).empty());
  const auto& c = eng_->counters();
  EXPECT_EQ(c.steered_out, 5u);
  EXPECT_EQ(c.steer_drops, 0u);
  EXPECT_EQ(c.udp_rx, 1u);
  eng_->udp_close(s);
}

TEST_F(AttachedTest, FullRingOrPoolOfTheOwnerIsASteerDrop) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  mn_port_set_queue(&shm_->ports[6000], 3);
  rte_ring* tiny = rte_ring_create("tiny", 2, 0, RING_F_SC_DEQ);  // holds one
  ASSERT_NE(tiny, nullptr);
  shm_->leases[3].steer_ring = tiny;
  inject(make_udp(50, 3, 4000, 6000));
  inject(make_udp(50, 4, 4000, 6000));
  poll_ms(2);
  EXPECT_EQ(eng_->counters().steered_out, 1u);
  EXPECT_EQ(eng_->counters().steer_drops, 1u);
  drain(tiny);
  shm_->leases[3].steer_ring = steer_[3];
  rte_ring_free(tiny);
  mn_port_set_queue(&shm_->ports[7000], 9);  // beyond nb_queues: the daemon's
  inject(make_udp(50, 3, 4000, 7000));
  poll_ms(2);
  EXPECT_EQ(take(steer_[0]).size(), 1u);
}

TEST_F(AttachedTest, FramesOthersSteeredToUsAreReceived) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  ASSERT_EQ(
      rte_ring_enqueue(steer_[kOurQueue], mbuf_of(make_udp(64, 5, 4001, kPort), pools_[kOurQueue])),
      0);
  // Reassembled by the daemon into one segment: DPDK leaves the IPv4 header
  // checksum zero.
  Frame small = make_udp(40, 6, 4002, kPort);
  put16(&small, kL3 + 10, 0);
  ASSERT_EQ(rte_ring_enqueue(steer_[kOurQueue], mbuf_of(small, pools_[kOurQueue])), 0);
  ASSERT_TRUE(poll_until([&] { return eng_->udp_pending(s) == 2; }));
  EXPECT_EQ(eng_->counters().steered_in, 2u);
  uint8_t buf[100];
  uint16_t port;
  EXPECT_EQ(eng_->udp_recvfrom(s, buf, sizeof(buf), nullptr, &port), 64);
  EXPECT_EQ(port, 4001);
  EXPECT_EQ(eng_->udp_recvfrom(s, buf, sizeof(buf), nullptr, &port), 40);
  EXPECT_EQ(port, 4002);
  eng_->udp_close(s);
}

// A datagram machnetd reassembled: a chain of segments, no fragment bits,
// the IPv4 total length covering all of it.
TEST_F(AttachedTest, ReassembledChainsFromTheDaemonAreDelivered) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  auto chain = [&](const Frame& f, std::vector<size_t> cuts) {
    rte_mbuf* head = nullptr;
    size_t start = 0;
    cuts.push_back(f.size());
    for (size_t end : cuts) {
      Frame part(f.begin() + static_cast<long>(start), f.begin() + static_cast<long>(end));
      rte_mbuf* m = mbuf_of(part, pools_[kOurQueue]);
      if (head == nullptr)
        head = m;
      else
        EXPECT_EQ(rte_pktmbuf_chain(head, m), 0);
      start = end;
    }
    return head;
  };
  Frame big = make_udp(3000, 7, 4003, kPort);
  put16(&big, kL3 + 10, 0);
  ASSERT_EQ(rte_ring_enqueue(steer_[kOurQueue], chain(big, {100, 1500})), 0);
  // UDP header split across segments.
  Frame split = make_udp(2000, 8, 4004, kPort);
  ASSERT_EQ(rte_ring_enqueue(steer_[kOurQueue], chain(split, {kL4 + 3, 1000})), 0);
  Frame corrupt = make_udp(2000, 8, 4005, kPort);
  corrupt[1800] ^= 0x55;
  ASSERT_EQ(rte_ring_enqueue(steer_[kOurQueue], chain(corrupt, {1000})), 0);
  Frame lying = make_udp(2000, 8, 4006, kPort);
  put16(&lying, kL3 + 2, 2100);  // longer than the chain
  ASSERT_EQ(rte_ring_enqueue(steer_[kOurQueue], chain(lying, {1000})), 0);
  Frame tiny_head = make_udp(2000, 8, 4007, kPort);
  ASSERT_EQ(rte_ring_enqueue(steer_[kOurQueue], chain(tiny_head, {20})), 0);  // IP header split
  ASSERT_TRUE(poll_until([&] { return eng_->counters().steered_in == 5; }));
  poll_ms(2);
  std::vector<uint8_t> buf(4000);
  uint16_t port;
  ASSERT_EQ(eng_->udp_recvfrom(s, buf.data(), buf.size(), nullptr, &port), 3000);
  EXPECT_EQ(port, 4003);
  for (int i = 0; i < 3000; i++) ASSERT_EQ(buf[i], static_cast<uint8_t>(7 + 7 * i)) << i;
  ASSERT_EQ(eng_->udp_recvfrom(s, buf.data(), buf.size(), nullptr, &port), 2000);
  EXPECT_EQ(port, 4004);
  EXPECT_EQ(eng_->udp_recvfrom(s, buf.data(), buf.size(), nullptr, &port), -EAGAIN);
  EXPECT_EQ(eng_->counters().drop(DropReason::kBadUdpChecksum), 1u);
  EXPECT_EQ(eng_->counters().drop(DropReason::kBadIpLength), 1u);
  EXPECT_EQ(eng_->counters().drop(DropReason::kTruncatedIp), 1u);
  eng_->udp_close(s);
}

TEST_F(AttachedTest, NeighboursComeFromTheDaemonsTable) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  // Unknown peer: we ask ourselves (the reply will reach the daemon).
  ASSERT_EQ(eng_->udp_sendto(s, kPeerIp, 4000, "hello", 5), 0);
  auto out = take(tx_[kOurQueue]);
  ASSERT_EQ(out.size(), 1u);
  wire::ParseOptions o;
  o.local_ip = kPeerIp;
  auto pf = parse(out[0].f, o);
  ASSERT_EQ(pf.kind, wire::FrameKind::kArp);
  EXPECT_EQ(pf.arp_op, wire::kArpOpRequest);
  EXPECT_EQ(out[0].port, port_);  // allocated by us: m->port set
  EXPECT_EQ(out[0].pool, pools_[kOurQueue]);
  // The daemon hears the reply and fills the shared table.
  put_neighbour(shm_, kPeerIp, kPeerMac);
  std::vector<Sent> sent;
  ASSERT_TRUE(poll_until([&] {
    auto t = take(tx_[kOurQueue]);
    sent.insert(sent.end(), t.begin(), t.end());
    return !sent.empty();
  }));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(0, memcmp(sent[0].f.data(), kPeerMac.data(), 6));
  EXPECT_EQ(sent[0].port, port_);
  EXPECT_EQ(sent[0].pool, pools_[kOurQueue]);
  auto u = parse(sent[0].f, o);
  ASSERT_EQ(u.kind, wire::FrameKind::kUdp);
  EXPECT_EQ(u.src_port, kPort);

  // Known to the daemon already: no request at all, sent at once. Larger
  // than the MTU: every fragment carries m->port too.
  put_neighbour(shm_, kOtherIp, kPeerMac);
  std::vector<uint8_t> big(4000, 0x5a);
  ASSERT_EQ(eng_->udp_sendto(s, kOtherIp, 4000, big.data(), big.size()), 0);
  out = take(tx_[kOurQueue]);
  ASSERT_EQ(out.size(), 3u);
  for (const auto& f : out) {
    EXPECT_EQ(0, memcmp(f.f.data(), kPeerMac.data(), 6));
    EXPECT_NE(get16(f.f, kL3 + 6) & (wire::kIpFlagMoreFragments | wire::kIpFragOffsetMask), 0);
    EXPECT_EQ(f.port, port_);
  }
  eng_->udp_close(s);
}

TEST_F(AttachedTest, StaticNeighboursStillWork) {
  EngineConfig c = config();
  c.static_neighbours.emplace_back(kPeerIp, "02:00:00:00:00:02");
  ASSERT_NO_FATAL_FAILURE(attach(c));
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  ASSERT_EQ(eng_->udp_sendto(s, kPeerIp, 4000, "x", 1), 0);
  auto out = take(tx_[kOurQueue]);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(0, memcmp(out[0].f.data(), kPeerMac.data(), 6));
  eng_->udp_close(s);
}

TEST_F(AttachedTest, CountersArePublishedToTheLease) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  put_neighbour(shm_, kPeerIp, kPeerMac);
  inject(make_udp(100, 9, 4000, kPort));
  inject(make_udp(100, 9, 4000, 7777));
  ASSERT_EQ(eng_->udp_sendto(s, kPeerIp, 4000, "hello", 5), 0);
  const mn_lease_counters& lc = shm_->leases[kOurQueue].counters;
  ASSERT_TRUE(poll_until([&] { return lc.udp_rx == 1 && lc.rx_packets == 2; }));
  EXPECT_EQ(lc.udp_tx, 1u);
  EXPECT_EQ(lc.tx_packets, 1u);
  EXPECT_EQ(lc.steered_out, 1u);
  EXPECT_GT(lc.rx_bytes, 200u);
  const mn_port_entry& pe = shm_->ports[kPort];
  EXPECT_EQ(pe.rx_datagrams, 1u);
  EXPECT_EQ(pe.rx_bytes, 100u);
  EXPECT_EQ(pe.tx_datagrams, 1u);
  uint8_t buf[200];
  eng_->udp_recvfrom(s, buf, sizeof(buf), nullptr, nullptr);
  eng_->udp_close(s);
}

TEST_F(AttachedTest, DaemonGoneMeansEnetdownAndHandsOff) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  inject(make_udp(100, 9, 4000, kPort));
  ASSERT_TRUE(poll_until([&] { return eng_->udp_pending(s) == 1; }));
  d_->hang_up_all();
  ASSERT_TRUE(poll_until([&] { return eng_->failure() == ENETDOWN; }));
  EXPECT_NE(eng_->describe().find("DETACHED"), std::string::npos);
  EXPECT_EQ(eng_->udp_sendto(s, kPeerIp, 4000, "x", 1), -ENETDOWN);
  iovec iov{const_cast<char*>("x"), 1};
  EXPECT_EQ(eng_->udp_sendv(s, kPeerIp, 4000, &iov, 1), -ENETDOWN);
  UdpSocket* s2 = nullptr;
  EXPECT_EQ(eng_->udp_bind(kPort + 1, &s2), -ENETDOWN);
  EXPECT_EQ(eng_->udp_pending(s), 0u);
  uint8_t buf[200];
  EXPECT_EQ(eng_->udp_recvfrom(s, buf, sizeof(buf), nullptr, nullptr), -ENETDOWN);
  // The queue is not polled any more.
  inject(make_udp(100, 9, 4000, kPort));
  for (int i = 0; i < 10; i++) EXPECT_EQ(eng_->poll(), 0u);
  EXPECT_EQ(rte_ring_count(rx_[kOurQueue]), 1u);
  eng_->udp_close(s);  // works, touches nothing
  eng_.reset();
  // The datagram that was queued is forgotten, not freed (the daemon's
  // memory may be gone): one mbuf of pool 1 is lost on purpose.
  drain(rx_[kOurQueue]);
  EXPECT_EQ(rte_mempool_in_use_count(pools_[kOurQueue]), baseline_[kOurQueue] + 1);
  check_leaks_ = false;
}

TEST_F(AttachedTest, DaemonShuttingDownMeansEnetdown) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  EXPECT_EQ(eng_->failure(), 0);
  mn_shm_set_shutting_down(shm_, 1);
  ASSERT_TRUE(poll_until([&] { return eng_->failure() == ENETDOWN; }));
  // The engine closed its control connection: the daemon sees it detach.
  EXPECT_TRUE(poll_until([&] { return d_->clients() == 0; }));
}

TEST_F(AttachedTest, DestroyingTheEngineGivesTheLeaseBack) {
  ASSERT_NO_FATAL_FAILURE(attach(config()));
  UdpSocket* s = nullptr;
  ASSERT_EQ(eng_->udp_bind(kPort, &s), 0);
  inject(make_udp(100, 9, 4000, kPort));
  ASSERT_TRUE(poll_until([&] { return eng_->udp_pending(s) == 1; }));
  EXPECT_EQ(d_->clients(), 1);
  eng_.reset();  // with a datagram still queued: freed
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (d_->clients() != 0 && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(d_->clients(), 0);
  // The port is still the daemon's and still running.
  inject(make_udp(10, 1, 4000, kPort));
  rte_mbuf* m = nullptr;
  EXPECT_EQ(rte_eth_rx_burst(port_, kOurQueue, &m, 1), 1);
  rte_pktmbuf_free(m);
}

TEST_F(AttachedTest, AttachRefusals) {
  struct Case {
    const char* name;
    std::function<void(FakeMachnetd&, EngineConfig&)> setup;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"configured ip differs", [](FakeMachnetd&, EngineConfig& c) { c.ip = 0x0a000009; },
       "10.0.0.9"},
      {"no free queue", [](FakeMachnetd& d, EngineConfig&) { d.attach_status = -EBUSY; },
       "every queue is leased"},
      {"queue 0", [](FakeMachnetd& d, EngineConfig&) { d.attach_reply.queue = 0; },
       "unusable lease"},
      {"unknown device",
       [](FakeMachnetd& d, EngineConfig&) { strcpy(d.attach_reply.device, "net_nothing9"); },
       "not visible"},
      {"wrong port id", [](FakeMachnetd& d, EngineConfig&) { d.attach_reply.port_id += 7; },
       "in the daemon"},
      {"no shared memory",
       [](FakeMachnetd& d, EngineConfig&) { strcpy(d.attach_reply.shm_name, "nothing"); },
       "was not found"},
      {"lease of someone else", [](FakeMachnetd& d, EngineConfig&) { d.attach_reply.owner_id++; },
       "not this process"},
      {"machnetd = on, no daemon",
       [](FakeMachnetd&, EngineConfig& c) { c.machnetd_socket = "/nonexistent/mn.sock"; },
       "machnetd not reachable at /nonexistent/mn.sock"},
      {"auto, no daemon, no device",
       [](FakeMachnetd&, EngineConfig& c) {
         c.machnetd = engine::MachnetdMode::kAuto;
         c.machnetd_socket = "/nonexistent/mn.sock";
       },
       "neither machnetd nor a device"},
  };
  for (const auto& tc : cases) {
    auto d = std::make_unique<FakeMachnetd>();
    d->attach_reply = d_->attach_reply;
    d->info = d_->info;
    EngineConfig c = config();
    c.machnetd_socket = d->path();
    tc.setup(*d, c);
    std::string err;
    auto e = Engine::create(c, &err);
    EXPECT_EQ(e, nullptr) << tc.name;
    EXPECT_NE(err.find(tc.expect), std::string::npos) << tc.name << ": " << err;
    if (std::string(tc.name) == "configured ip differs") {
      EXPECT_NE(err.find("10.0.0.1"), std::string::npos) << err;
    }
    // The lease is given back: the connection is closed.
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (d->clients() != 0 && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(d->clients(), 0) << tc.name;
  }
}

}  // namespace
}  // namespace machnet::test
