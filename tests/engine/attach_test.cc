// machnetd's client side without DPDK: the control client against an
// in-test SOCK_SEQPACKET server (tests/engine/fake_machnetd.h), including
// timeouts, late replies, malformed replies and a daemon that goes away;
// and the software steering decision (steering.h) on built frames, truncated
// at every length.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "../unit/frames.h"
#include "fake_machnetd.h"
#include "ipc/control_client.h"
#include "ipc/steering.h"

namespace machnet::test {
namespace {

using ipc::ControlClient;
using Bytes = FakeMachnetd::Bytes;

// ---- control client -------------------------------------------------------

TEST(ControlClient, ConnectToNothingSaysEnoentAndNamesThePath) {
  ControlClient c;
  std::string err;
  EXPECT_EQ(c.connect("/nonexistent/machnetd.sock", &err), -ENOENT);
  EXPECT_NE(err.find("/nonexistent/machnetd.sock"), std::string::npos) << err;
  EXPECT_FALSE(c.connected());
  mn_ctl_info_reply info;
  EXPECT_EQ(c.info(&info), -ENOTCONN);
  EXPECT_TRUE(c.peer_closed());
}

TEST(ControlClient, ConnectToADeadSocketSaysEconnrefused) {
  char tmpl[] = "/tmp/cc_dead.XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/s";
  int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);  // bound, never listens
  ControlClient c;
  std::string err;
  EXPECT_EQ(c.connect(path, &err), -ECONNREFUSED);
  close(fd);
  unlink(path.c_str());
  rmdir(dir.c_str());
}

TEST(ControlClient, PathTooLongIsRejected) {
  ControlClient c;
  std::string err;
  EXPECT_LT(c.connect(std::string(200, 'x'), &err), 0);
  EXPECT_FALSE(err.empty());
}

TEST(ControlClient, SocketIsCloseOnExec) {
  FakeMachnetd d;
  ControlClient c;
  std::string err;
  ASSERT_EQ(c.connect(d.path(), &err), 0) << err;
  EXPECT_TRUE(fcntl(c.fd(), F_GETFD) & FD_CLOEXEC);
}

TEST(ControlClient, InfoAttachBindUnbindDetachStats) {
  FakeMachnetd d;
  std::string comm_seen;
  d.set_responder([&](const mn_ctl_header& h, const Bytes& req, std::vector<Bytes>* out) {
    if (h.type == MN_CTL_ATTACH && req.size() >= sizeof(mn_ctl_attach_request)) {
      mn_ctl_attach_request a;
      memcpy(&a, req.data(), sizeof(a));
      comm_seen.assign(a.comm, strnlen(a.comm, sizeof(a.comm)));
    }
    EXPECT_EQ(h.magic, MN_CTL_MAGIC);
    EXPECT_EQ(h.version, MN_CTL_VERSION);
    return d.respond(h, req, out);
  });
  ControlClient c;
  std::string err;
  ASSERT_EQ(c.connect(d.path(), &err), 0) << err;

  mn_ctl_info_reply info{};
  ASSERT_EQ(c.info(&info), 0);
  EXPECT_EQ(info.ip, 0x0a000001u);
  EXPECT_EQ(info.daemon_pid, getpid());
  EXPECT_STREQ(info.device, "net_fake0");

  mn_ctl_attach_reply a{};
  ASSERT_EQ(c.attach("a-very-long-program-name", &a), 0);
  EXPECT_EQ(comm_seen, "a-very-long-pro");  // 15 characters and a NUL
  EXPECT_EQ(a.queue, 1);
  EXPECT_EQ(a.owner_id, 0x1234567890abcdefull);
  EXPECT_STREQ(a.eal_prefix, "fake");
  EXPECT_STREQ(a.shm_name, "machnetd_shm");

  uint16_t port = 0;
  ASSERT_EQ(c.bind_udp(0x0a000001, 5000, &port), 0);
  EXPECT_EQ(port, 5000);
  EXPECT_EQ(c.bind_udp(0x0a000001, 5000, &port), -EADDRINUSE);
  ASSERT_EQ(c.bind_udp(0, 0, &port), 0);  // ephemeral: the daemon picks
  EXPECT_EQ(port, 40000);
  d.busy_port = 6000;
  EXPECT_EQ(c.bind_udp(0, 6000, &port), -EADDRINUSE);
  EXPECT_EQ(c.unbind_udp(5000), 0);
  EXPECT_EQ(c.unbind_udp(5000), -ENOENT);
  std::string json;
  ASSERT_EQ(c.stats(&json), 0);
  EXPECT_EQ(json, "{\"leases\": []}");
  EXPECT_EQ(c.detach(), 0);
  EXPECT_TRUE(c.connected());
  EXPECT_FALSE(c.peer_closed());
  EXPECT_EQ(d.requests(MN_CTL_BIND), 4);
}

TEST(ControlClient, ErrorStatusIsReturnedAsIs) {
  FakeMachnetd d;
  d.attach_status = -EBUSY;
  ControlClient c;
  std::string err;
  ASSERT_EQ(c.connect(d.path(), &err), 0);
  mn_ctl_attach_reply a{};
  EXPECT_EQ(c.attach("x", &a), -EBUSY);
  EXPECT_TRUE(c.connected());  // a refusal is not a transport error
  d.set_responder([](const mn_ctl_header& h, const Bytes&, std::vector<Bytes>* out) {
    mn_ctl_header r = FakeMachnetd::reply_header(h, -EPROTONOSUPPORT);
    r.version = 7;  // a daemon of another version answers with its own
    out->push_back(FakeMachnetd::bytes_of(r));
    return true;
  });
  mn_ctl_info_reply info{};
  EXPECT_EQ(c.info(&info), -EPROTONOSUPPORT);
  EXPECT_TRUE(c.connected());
}

TEST(ControlClient, SilentDaemonTimesOutAndTheLateReplyIsSkipped) {
  FakeMachnetd d;
  bool first = true;
  mn_ctl_header old{};
  d.set_responder([&](const mn_ctl_header& h, const Bytes& req, std::vector<Bytes>* out) {
    if (first) {
      first = false;
      old = h;  // no answer now
      return true;
    }
    d.respond(old, req, out);  // the late answer first...
    d.respond(h, req, out);    // ...then this one
    return true;
  });
  ControlClient c;
  std::string err;
  ASSERT_EQ(c.connect(d.path(), &err), 0);
  mn_ctl_info_reply info{};
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(c.info(&info, 50), -ETIMEDOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(45));
  EXPECT_TRUE(c.connected());  // a slow daemon is not a dead one
  uint16_t port = 0;
  EXPECT_EQ(c.bind_udp(0, 7000, &port), 0);  // got its own reply, not INFO's
  EXPECT_EQ(port, 7000);
}

TEST(ControlClient, PeerClosedDiscardsLateRepliesBetweenRequests) {
  FakeMachnetd d;
  bool first = true;
  d.set_responder([&](const mn_ctl_header& h, const Bytes& req, std::vector<Bytes>* out) {
    if (first) {
      first = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // too slow
    }
    return d.respond(h, req, out);
  });
  ControlClient c;
  std::string err;
  ASSERT_EQ(c.connect(d.path(), &err), 0);
  mn_ctl_info_reply info{};
  EXPECT_EQ(c.info(&info, 20), -ETIMEDOUT);
  // Wait for the late reply to arrive (without taking it).
  char peek;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (recv(c.fd(), &peek, 1, MSG_PEEK | MSG_DONTWAIT) <= 0 &&
         std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(c.peer_closed());
  EXPECT_EQ(c.info(&info, 1000), 0);
  EXPECT_EQ(info.ip, 0x0a000001u);
}

TEST(ControlClient, DaemonGoneIsNoticed) {
  FakeMachnetd d;
  ControlClient c;
  std::string err;
  ASSERT_EQ(c.connect(d.path(), &err), 0);
  mn_ctl_info_reply info{};
  ASSERT_EQ(c.info(&info), 0);
  EXPECT_FALSE(c.peer_closed());
  d.hang_up_all();
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!c.peer_closed() && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(c.peer_closed());
  int rc = c.info(&info);
  EXPECT_TRUE(rc == -ECONNRESET || rc == -EPIPE) << rc;
  EXPECT_FALSE(c.connected());
}

TEST(ControlClient, HangUpInsteadOfAReplyIsAConnectionReset) {
  FakeMachnetd d;
  d.set_responder([](const mn_ctl_header&, const Bytes&, std::vector<Bytes>*) { return false; });
  ControlClient c;
  std::string err;
  ASSERT_EQ(c.connect(d.path(), &err), 0);
  uint16_t port;
  EXPECT_EQ(c.bind_udp(0, 5000, &port), -ECONNRESET);
  EXPECT_FALSE(c.connected());
  EXPECT_TRUE(c.peer_closed());
  EXPECT_EQ(c.unbind_udp(5000), -ENOTCONN);
}

// Each malformed reply: -EPROTO, and the connection is dropped (nothing it
// says afterwards can be trusted).
struct Malformed {
  const char* name;
  std::function<void(const mn_ctl_header& h, FakeMachnetd& d, const Bytes& req, Bytes* r)> make;
};

TEST(ControlClient, MalformedRepliesAreProtocolErrors) {
  std::vector<Malformed> cases = {
      {"bad magic",
       [](const mn_ctl_header& h, FakeMachnetd& d, const Bytes& req, Bytes* r) {
         d.respond_one(h, req, r);
         (*r)[0] ^= 0xff;
       }},
      {"wrong type",
       [](const mn_ctl_header& h, FakeMachnetd& d, const Bytes& req, Bytes* r) {
         d.respond_one(h, req, r);
         mn_ctl_header x;
         memcpy(&x, r->data(), sizeof(x));
         x.type = MN_CTL_STATS;
         memcpy(r->data(), &x, sizeof(x));
       }},
      {"future seq",
       [](const mn_ctl_header& h, FakeMachnetd& d, const Bytes& req, Bytes* r) {
         d.respond_one(h, req, r);
         mn_ctl_header x;
         memcpy(&x, r->data(), sizeof(x));
         x.seq += 5;
         memcpy(r->data(), &x, sizeof(x));
       }},
      {"positive status",
       [](const mn_ctl_header& h, FakeMachnetd& d, const Bytes& req, Bytes* r) {
         d.respond_one(h, req, r);
         mn_ctl_header x;
         memcpy(&x, r->data(), sizeof(x));
         x.status = 3;
         memcpy(r->data(), &x, sizeof(x));
       }},
      {"wrong version with success",
       [](const mn_ctl_header& h, FakeMachnetd& d, const Bytes& req, Bytes* r) {
         d.respond_one(h, req, r);
         mn_ctl_header x;
         memcpy(&x, r->data(), sizeof(x));
         x.version = MN_CTL_VERSION + 1;
         memcpy(r->data(), &x, sizeof(x));
       }},
      {"short body",
       [](const mn_ctl_header& h, FakeMachnetd& d, const Bytes& req, Bytes* r) {
         d.respond_one(h, req, r);
         r->resize(r->size() - 1);
       }},
      {"header only",
       [](const mn_ctl_header& h, FakeMachnetd&, const Bytes&, Bytes* r) {
         *r = FakeMachnetd::bytes_of(FakeMachnetd::reply_header(h, 0));
       }},
      {"shorter than a header",
       [](const mn_ctl_header& h, FakeMachnetd&, const Bytes&, Bytes* r) {
         *r = FakeMachnetd::bytes_of(FakeMachnetd::reply_header(h, 0));
         r->resize(10);
       }},
      {"larger than the reply",
       [](const mn_ctl_header& h, FakeMachnetd& d, const Bytes& req, Bytes* r) {
         d.respond_one(h, req, r);
         r->resize(4096, 0xaa);
       }},
  };
  for (const auto& mc : cases) {
    FakeMachnetd d;
    d.set_responder([&](const mn_ctl_header& h, const Bytes& req, std::vector<Bytes>* out) {
      out->emplace_back();
      mc.make(h, d, req, &out->back());
      return true;
    });
    ControlClient c;
    std::string err;
    ASSERT_EQ(c.connect(d.path(), &err), 0);
    mn_ctl_info_reply info{};
    EXPECT_EQ(c.info(&info, 500), -EPROTO) << mc.name;
    EXPECT_FALSE(c.connected()) << mc.name;
  }
}

TEST(ControlClient, BindReplyWithTheWrongPortIsAProtocolError) {
  FakeMachnetd d;
  d.set_responder([&](const mn_ctl_header& h, const Bytes& req, std::vector<Bytes>* out) {
    mn_ctl_bind_reply r{};
    r.h = FakeMachnetd::reply_header(h, 0);
    r.port = 1234;  // asked for 5000
    out->push_back(FakeMachnetd::bytes_of(r));
    (void)req;
    return true;
  });
  ControlClient c;
  std::string err;
  ASSERT_EQ(c.connect(d.path(), &err), 0);
  uint16_t port = 0;
  EXPECT_EQ(c.bind_udp(0, 5000, &port), -EPROTO);
}

TEST(ControlClient, StatsTextWithoutNulIsBounded) {
  FakeMachnetd d;
  d.set_responder([&](const mn_ctl_header& h, const Bytes&, std::vector<Bytes>* out) {
    Bytes r = FakeMachnetd::bytes_of(FakeMachnetd::reply_header(h, 0));
    for (int i = 0; i < 100; i++) r.push_back('x');  // no terminating NUL
    out->push_back(r);
    return true;
  });
  ControlClient c;
  std::string err;
  ASSERT_EQ(c.connect(d.path(), &err), 0);
  std::string json;
  ASSERT_EQ(c.stats(&json), 0);
  EXPECT_EQ(json, std::string(100, 'x'));
}

// ---- steering ---------------------------------------------------------------

class Steering : public ::testing::Test {
 protected:
  void SetUp() override {
    shm_ = std::make_unique<mn_shm>();
    shm_->ip = kLocalIp;
    shm_->nb_queues = 4;
    mn_port_set_queue(&shm_->ports[5000], 2);
    mn_port_set_queue(&shm_->ports[6000], 3);
  }
  uint16_t steer(const Frame& f) { return ipc::steer_target(*shm_, f.data(), f.size()); }

  // ICMP destination unreachable from the peer about a UDP datagram we sent
  // from `our_port` (quoted: its IPv4 header, with ihl_words, and 8 bytes).
  static Frame icmp_unreachable(uint16_t our_port, uint8_t ihl_words = 5,
                                uint8_t quoted_proto = wire::kIpProtoUdp) {
    Frame inner = make_udp(16, 1, our_port, 9999);
    // The quoted datagram went from us to the peer.
    put32(&inner, kL3 + 12, kLocalIp);
    put32(&inner, kL3 + 16, kPeerIp);
    Frame quote;
    size_t qhl = ihl_words * 4u;
    quote.insert(quote.end(), inner.begin() + kL3, inner.begin() + kL3 + 20);
    quote[0] = static_cast<uint8_t>(0x40 | ihl_words);
    quote[9] = quoted_proto;
    quote.resize(qhl, 0x01);  // options (NOPs)
    quote.insert(quote.end(), inner.begin() + kL4, inner.begin() + kL4 + 8);
    Frame f = make_icmp_echo(0);
    f.resize(kL4 + 8);
    f[kL4] = wire::kIcmpDestUnreachable;
    f[kL4 + 1] = 3;
    f.insert(f.end(), quote.begin(), quote.end());
    put16(&f, kL3 + 2, static_cast<uint16_t>(f.size() - kL3));
    fix_ip_checksum(&f);
    fix_icmp_checksum(&f);
    return f;
  }

  std::unique_ptr<mn_shm> shm_;
};

TEST_F(Steering, UdpGoesToThePortsOwnerAndUnownedPortsToTheDaemon) {
  EXPECT_EQ(steer(make_udp(100, 1, 4000, 5000)), 2);
  EXPECT_EQ(steer(make_udp(100, 1, 4000, 6000)), 3);
  EXPECT_EQ(steer(make_udp(100, 1, 4000, 5001)), 0);
  EXPECT_EQ(steer(make_udp(0, 1, 4000, 5000)), 2);
}

TEST_F(Steering, ArpAndEchoGoToTheDaemon) {
  EXPECT_EQ(steer(make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp)), 0);
  EXPECT_EQ(steer(make_arp(wire::kArpOpReply, kPeerIp, kLocalIp)), 0);
  EXPECT_EQ(steer(make_icmp_echo(32)), 0);
}

TEST_F(Steering, FragmentsGoToTheDaemon) {
  Frame f = make_udp(100, 1, 4000, 5000);
  put16(&f, kL3 + 6, wire::kIpFlagMoreFragments);  // first fragment
  fix_ip_checksum(&f);
  EXPECT_EQ(steer(f), 0);
  put16(&f, kL3 + 6, 10);  // a later one (its "ports" are payload)
  fix_ip_checksum(&f);
  EXPECT_EQ(steer(f), 0);
  put16(&f, kL3 + 6, wire::kIpFlagDontFragment);  // DF alone is not a fragment
  fix_ip_checksum(&f);
  EXPECT_EQ(steer(f), 2);
}

TEST_F(Steering, OtherAddressesAndProtocolsGoToTheDaemon) {
  Frame f = make_udp(100, 1, 4000, 5000);
  put32(&f, kL3 + 16, kOtherIp);
  EXPECT_EQ(steer(f), 0);
  put32(&f, kL3 + 16, 0xffffffff);
  EXPECT_EQ(steer(f), 0);
  put32(&f, kL3 + 16, 0x0a0000ff);  // directed broadcast
  EXPECT_EQ(steer(f), 0);
  Frame v6 = make_udp(100, 1, 4000, 5000);
  put16(&v6, 12, 0x86dd);
  EXPECT_EQ(steer(v6), 0);
  Frame tcp = make_udp(100, 1, 4000, 5000);
  tcp[kL3 + 9] = 6;
  EXPECT_EQ(steer(tcp), 0);
  Frame bad_version = make_udp(100, 1, 4000, 5000);
  bad_version[kL3] = 0x65;
  EXPECT_EQ(steer(bad_version), 0);
  Frame bad_ihl = make_udp(100, 1, 4000, 5000);
  bad_ihl[kL3] = 0x44;
  EXPECT_EQ(steer(bad_ihl), 0);
}

TEST_F(Steering, UdpWithIpOptionsUsesTheRealHeaderLength) {
  Frame f = make_udp(100, 1, 4000, 5000);
  Frame g(f.begin(), f.begin() + kL4);
  g.insert(g.end(), 4, 0x01);  // one word of NOP options
  g.insert(g.end(), f.begin() + kL4, f.end());
  g[kL3] = 0x46;
  put16(&g, kL3 + 2, static_cast<uint16_t>(g.size() - kL3));
  EXPECT_EQ(steer(g), 2);
}

TEST_F(Steering, IcmpUnreachableGoesToTheOwnerOfTheQuotedSourcePort) {
  EXPECT_EQ(steer(icmp_unreachable(5000)), 2);
  EXPECT_EQ(steer(icmp_unreachable(6000)), 3);
  EXPECT_EQ(steer(icmp_unreachable(7000)), 0);
  EXPECT_EQ(steer(icmp_unreachable(6000, 7)), 3);     // quoted header with options
  EXPECT_EQ(steer(icmp_unreachable(5000, 5, 6)), 0);  // quoted TCP: not ours
  Frame bad = icmp_unreachable(5000, 4);              // quoted IHL < 5
  EXPECT_EQ(steer(bad), 0);
  Frame other_type = icmp_unreachable(5000);
  other_type[kL4] = 11;  // time exceeded: the daemon's
  EXPECT_EQ(steer(other_type), 0);
}

// ---- SO_REUSEPORT groups -----------------------------------------------------

class GroupSteering : public Steering {
 protected:
  static constexpr uint16_t kPort = 7000;
  static constexpr uint16_t kGroup = 5;
  void SetUp() override {
    Steering::SetUp();
    set_members({1, 2, 3});
    mn_port_set_queue(&shm_->ports[kPort], static_cast<uint16_t>(MN_PORT_GROUP | kGroup));
  }
  void set_members(std::vector<uint16_t> qs) {
    mn_port_group& g = shm_->groups[kGroup];
    mn_group_write_begin(&g);
    mn_group_set_port(&g, kPort);
    for (uint16_t i = 0; i < qs.size(); i++) mn_group_set_member(&g, i, qs[i]);
    mn_group_set_count(&g, static_cast<uint16_t>(qs.size()));
    mn_group_write_end(&g);
  }
  // The member a datagram from the peer's sport to kPort goes to.
  uint16_t expected(uint16_t sport) const {
    const mn_port_group& g = shm_->groups[kGroup];
    return g.members[mn_flow_hash(kPeerIp, sport, kLocalIp, kPort) % g.count];
  }
};

TEST_F(GroupSteering, FlowsSpreadOverTheMembersAndEachStaysWithOne) {
  std::map<uint16_t, int> share;
  for (uint16_t sport = 1000; sport < 1064; sport++) {
    uint16_t t = steer(make_udp(100, 1, sport, kPort));
    EXPECT_EQ(t, expected(sport)) << "source port " << sport;
    EXPECT_EQ(steer(make_udp(10, 2, sport, kPort)), t) << "source port " << sport;
    share[t]++;
  }
  EXPECT_EQ(share.size(), 3u);
  for (auto& [q, n] : share) EXPECT_GE(n, 5) << "queue " << q;
  // Ports that are not the group's are unchanged.
  EXPECT_EQ(steer(make_udp(100, 1, 4000, 5000)), 2);
}

// A fork-shared port (a group with a shared ring): every datagram, whatever
// its flow, goes to the group's ring (MN_STEER_SHARED | group), which every
// holder reads; other ports are unchanged.
TEST_F(GroupSteering, ForkSharedPortGoesToItsRing) {
  mn_port_group& g = shm_->groups[kGroup];
  mn_group_write_begin(&g);
  mn_group_set_shared(&g, 3);
  mn_group_write_end(&g);
  for (uint16_t sport = 1000; sport < 1064; sport++)
    EXPECT_EQ(steer(make_udp(100, 1, sport, kPort)), MN_STEER_SHARED | kGroup) << sport;
  EXPECT_EQ(MN_STEER_SHARED_GROUP(steer(make_udp(100, 1, 1000, kPort))), kGroup);
  EXPECT_EQ(steer(make_udp(100, 1, 4000, 5000)), 2);
  // The daemon's own pick (reassembled datagrams, broadcasts) agrees.
  EXPECT_EQ(mn_port_target(shm_.get(), kPort, 12345), MN_STEER_SHARED | kGroup);
  // A group slot freed and reused for another port: nobody's (the daemon).
  mn_group_write_begin(&g);
  mn_group_set_port(&g, kPort + 1);
  mn_group_write_end(&g);
  EXPECT_EQ(steer(make_udp(100, 1, 1000, kPort)), 0);
  // An empty group, or a shared index out of range, is never a ring.
  mn_group_write_begin(&g);
  mn_group_set_port(&g, kPort);
  mn_group_set_count(&g, 0);
  mn_group_write_end(&g);
  EXPECT_EQ(steer(make_udp(100, 1, 1000, kPort)), 0);
  set_members({1, 2, 3});
  mn_group_write_begin(&g);
  mn_group_set_shared(&g, MN_SHM_SHARED_RINGS + 1);
  mn_group_write_end(&g);
  uint16_t t = steer(make_udp(100, 1, 1000, kPort));
  EXPECT_EQ(t, expected(1000));
  EXPECT_EQ(t & MN_STEER_SHARED, 0);
  // Never mistaken for a queue or a group entry of the port table.
  static_assert(MN_STEER_SHARED >= MN_SHM_MAX_QUEUES, "MN_STEER_SHARED is not a queue");
}

TEST_F(GroupSteering, IcmpErrorGoesToTheMemberOfTheQuotedFlow) {
  // icmp_unreachable quotes a datagram from kPort to the peer's port 9999:
  // the member that the peer's datagrams from 9999 go to gets it.
  uint16_t want = steer(make_udp(100, 1, 9999, kPort));
  EXPECT_NE(want, 0);
  EXPECT_EQ(steer(icmp_unreachable(kPort)), want);
  EXPECT_EQ(steer(icmp_unreachable(kPort, 7)), want);
}

TEST_F(GroupSteering, AMemberLeavingMovesItsFlowsToTheOthers) {
  set_members({3, 2});  // 1 left: the last member (3) took its slot
  std::map<uint16_t, int> share;
  for (uint16_t sport = 1000; sport < 1064; sport++) {
    uint16_t t = steer(make_udp(100, 1, sport, kPort));
    EXPECT_EQ(t, expected(sport));
    share[t]++;
  }
  EXPECT_EQ(share.size(), 2u);
  EXPECT_EQ(share.count(1), 0u);
}

TEST_F(GroupSteering, MidWriteEmptyOrReusedGroupsGoToTheDaemon) {
  mn_port_group& g = shm_->groups[kGroup];
  mn_group_write_begin(&g);  // a write that never ends: bounded retries, then 0
  EXPECT_EQ(steer(make_udp(100, 1, 1000, kPort)), 0);
  mn_group_write_end(&g);
  EXPECT_NE(steer(make_udp(100, 1, 1000, kPort)), 0);
  set_members({});
  EXPECT_EQ(steer(make_udp(100, 1, 1000, kPort)), 0);
  set_members({1, 2});
  mn_group_write_begin(&g);
  mn_group_set_port(&g, kPort + 1);  // freed and taken by another port since
  mn_group_write_end(&g);
  EXPECT_EQ(steer(make_udp(100, 1, 1000, kPort)), 0);
  mn_port_set_queue(&shm_->ports[kPort], static_cast<uint16_t>(MN_PORT_GROUP | 300));
  EXPECT_EQ(steer(make_udp(100, 1, 1000, kPort)), 0);  // no such group
}

// Truncated at every length: the decision only ever reads inside the frame
// (each prefix is its own exactly-sized buffer) and is the daemon's until
// every byte it needs is there.
TEST_F(Steering, TruncatedFramesGoToTheDaemonAtEveryLength) {
  struct Case {
    Frame f;
    uint16_t full;
    size_t needed;
  };
  std::vector<Case> cases = {
      {make_udp(64, 1, 4000, 5000), 2, kL4 + 8},
      {icmp_unreachable(5000), 2, kL4 + 8 + 20 + 8},
      {icmp_unreachable(6000, 7), 3, kL4 + 8 + 28 + 8},
      {make_arp(wire::kArpOpRequest, kPeerIp, kLocalIp), 0, 0},
  };
  for (const Case& c : cases) {
    for (size_t len = 0; len <= c.f.size(); len++) {
      auto buf = std::make_unique<uint8_t[]>(len == 0 ? 1 : len);
      memcpy(buf.get(), c.f.data(), len);
      uint16_t t = ipc::steer_target(*shm_, buf.get(), static_cast<uint32_t>(len));
      EXPECT_EQ(t, len >= c.needed ? c.full : 0) << "length " << len;
    }
  }
}

}  // namespace
}  // namespace machnet::test
