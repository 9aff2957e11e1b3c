// Stream services: a connect names (peer, service port), the SYN goes to the
// peer's rendezvous port, the SYN-ACK comes from the accepting endpoint's own
// port, and a peer without machnet (ICMP, silence) or without the service
// (RST "no such service") ends the connect with a fallback verdict, shared by
// every probe in flight to that peer and remembered per peer.
#include <gtest/gtest.h>

#include "test_util.h"

namespace machnet {
namespace transport {
namespace test {
namespace {

constexpr uint16_t kService = 80;       // the TCP port the program asked for
constexpr uint16_t kServerPort = 9000;  // UDP port of the accepting endpoint

struct ServicePair {
  explicit ServicePair(const Tunables& t = Tunables(), uint64_t seed = 1) : net(seed) {
    a = net.add_host(kIpA, t);
    b = net.add_host(kIpB, t);
    EXPECT_EQ(B().listen_service(kService, kServerPort), Status::kOk);
  }
  Transport& A() { return a->transport(); }
  Transport& B() { return b->transport(); }
  sim::SimNetwork net;
  sim::Host* a;
  sim::Host* b;
};

std::vector<sim::Packet>* record(sim::SimNetwork& net) {
  auto* log = new std::vector<sim::Packet>;
  net.filter = [log](const sim::Packet& p) {
    log->push_back(p);
    return true;
  };
  return log;
}

TEST(Service, ConnectGoesThroughRendezvousAndAdoptsTheServersPort) {
  ServicePair p;
  std::unique_ptr<std::vector<sim::Packet>> log(record(p.net));
  const Tunables& t = p.A().tunables();
  FlowId fa = 0, fb = 0;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) == FlowState::kEstablished; }, kSec));
  EXPECT_EQ(p.net.now(), 20 * kUs);  // one round trip, as any connect
  ASSERT_TRUE(
      p.net.run_until([&] { return p.B().accept_service(kService, &fb) == Status::kOk; }, kSec));
  EXPECT_EQ(p.B().accept(kServerPort, &fb), Status::kNotListening);  // not a UDP-port listener

  // The SYN: to the rendezvous port, stream, service port in `ack`.
  Segment syn, synack;
  ASSERT_TRUE(parse((*log)[0], &syn));
  EXPECT_EQ(syn.type, SegType::kSyn);
  EXPECT_EQ((*log)[0].to.port, t.rendezvous_port);
  EXPECT_EQ((*log)[0].from.port, kPortA);
  EXPECT_TRUE(syn.flags & kFlagService);
  EXPECT_TRUE(syn.flags & kFlagStream);
  EXPECT_EQ(syn.ack, kService);
  // The SYN-ACK: from the accepting endpoint's own port.
  ASSERT_TRUE(parse((*log)[1], &synack));
  EXPECT_EQ(synack.type, SegType::kSynAck);
  EXPECT_TRUE(synack.flags & kFlagService);
  EXPECT_EQ((*log)[1].from.port, kServerPort);
  EXPECT_EQ((*log)[1].to.port, kPortA);

  // Data both ways; afterwards nothing goes to the rendezvous port.
  auto m = pattern(7, 100000);
  size_t acc = 0;
  ASSERT_EQ(p.A().send_stream(p.net.now(), fa, m.data(), m.size(), &acc), Status::kOk);
  ASSERT_EQ(acc, m.size());
  std::vector<uint8_t> got(m.size());
  size_t have = 0;
  ASSERT_TRUE(p.net.run_until(
      [&] {
        size_t n = 0;
        if (p.B().recv_stream(p.net.now(), fb, got.data() + have, got.size() - have, &n) ==
            Status::kOk)
          have += n;
        return have == m.size();
      },
      kSec));
  EXPECT_EQ(got, m);
  ASSERT_EQ(p.B().send_stream(p.net.now(), fb, m.data(), 10, &acc), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().readable_bytes(fa) == 10; }, kSec));
  for (size_t i = 1; i < log->size(); ++i) {
    const sim::Packet& pk = (*log)[i];
    if (pk.from.ip == kIpA) {
      EXPECT_EQ(pk.to.port, kServerPort);
    } else {
      EXPECT_EQ(pk.from.port, kServerPort);
    }
  }
  // The probe never touched UDP port 80 of the peer (an unrelated service).
  for (const sim::Packet& pk : *log) EXPECT_NE(pk.to.port, kService);
  FlowStats sa = stats(p.A(), fa), sb = stats(p.B(), fb);
  EXPECT_EQ(sa.service_port, kService);
  EXPECT_EQ(sb.service_port, kService);
  EXPECT_EQ(sa.fallback, FallbackReason::kNone);
  EXPECT_EQ(p.A().counters().probes_sent, 1u);
  EXPECT_EQ(p.A().counters().probes_machnet, 1u);
  EXPECT_EQ(p.A().peer_verdict(p.net.now(), kIpB, kService), PeerVerdict::kMachnet);
  EXPECT_FALSE(p.A().peer_known_plain(p.net.now(), kIpB, kService));
}

TEST(Service, ListenerEventsAreMarkedAsService) {
  ServicePair p;
  std::vector<std::pair<uint16_t, uint32_t>> ev;
  p.B().set_event_handler([&](FlowId f, uint16_t port, uint32_t e) {
    if (f == 0) ev.emplace_back(port, e);
  });
  FlowId fa;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  p.net.run_until(kMs);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].first, kService);
  EXPECT_EQ(ev[0].second, uint32_t{kEvReadable | kEvService});
}

TEST(Service, MachnetHostWithoutTheServiceSaysSoDistinctly) {
  ServicePair p;
  std::unique_ptr<std::vector<sim::Packet>> log(record(p.net));
  FlowId fa;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, 81}, &fa), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(p.net.now(), 20 * kUs);  // one round trip
  EXPECT_EQ(p.A().error(fa), FlowError::kNoService);
  EXPECT_TRUE(falls_back_to_kernel(p.A().error(fa)));
  EXPECT_EQ(stats(p.A(), fa).fallback, FallbackReason::kNoService);
  EXPECT_EQ(p.A().counters().fallback_no_service, 1u);
  EXPECT_EQ(p.B().counters().rx_syn_no_service, 1u);
  EXPECT_EQ(p.B().flow_count(), 0u);
  ASSERT_EQ(log->size(), 2u);
  Segment rst;
  ASSERT_TRUE(parse((*log)[1], &rst));
  EXPECT_EQ(rst.type, SegType::kRst);
  EXPECT_TRUE(rst.flags & kFlagService);
  // Remembered for that service only: no round trip next time, while the
  // host itself is known to run machnet.
  EXPECT_EQ(p.A().peer_verdict(p.net.now(), kIpB, 81), PeerVerdict::kNoService);
  EXPECT_EQ(p.A().peer_verdict(p.net.now(), kIpB, kService), PeerVerdict::kMachnet);
  FlowId again;
  EXPECT_EQ(p.A().connect_service(p.net.now(), kPortA, {kIpB, 81}, &again), Status::kNotMachnet);
  EXPECT_EQ(p.A().counters().fallback_cached, 1u);
  EXPECT_EQ(log->size(), 2u);  // nothing sent
  // ...until the verdict expires (the service may have started meanwhile).
  p.net.run_until(p.net.now() + p.A().tunables().probe_no_service_ttl_ns);
  EXPECT_EQ(p.A().peer_verdict(p.net.now(), kIpB, 81), PeerVerdict::kMachnet);
  ASSERT_EQ(p.B().listen_service(81, kServerPort), Status::kOk);
  ASSERT_EQ(p.A().connect_service(p.net.now(), kPortA + 1, {kIpB, 81}, &again), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(again) == FlowState::kEstablished; },
                              p.net.now() + kSec));
}

TEST(Service, OrdinaryResetOfAProbeIsARefusalNotAFallback) {
  ServicePair p;
  Segment syn;
  sim::Packet synp;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    if (parse(pk, &s) && s.type == SegType::kSyn) {
      syn = s;
      synp = pk;
      return false;
    }
    return true;
  };
  FlowId fa;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  // An RST without the service flag, from the peer, echoing the SYN.
  Segment r;
  r.type = SegType::kRst;
  r.src_conn = 0;
  r.dst_conn = syn.src_conn;
  r.ack = syn.seq + 1;
  uint8_t hdr[kHeaderSize];
  encode_header(r, nullptr, 0, hdr);
  p.A().on_datagram(p.net.now(), {kIpB, synp.to.port}, {kIpA, kPortA}, hdr, kHeaderSize);
  EXPECT_EQ(p.A().error(fa), FlowError::kConnectionRefused);
  EXPECT_FALSE(falls_back_to_kernel(p.A().error(fa)));
  EXPECT_EQ(p.A().counters().fallback_no_service, 0u);
}

TEST(Service, HostWithoutMachnetRefusesByIcmpInOneRoundTrip) {
  ServicePair p;
  p.b->icmp_unreachable = true;  // nobody on the rendezvous port: the kernel answers
  FlowId fa;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(p.net.now(), 20 * kUs);
  EXPECT_EQ(p.A().error(fa), FlowError::kNotMachnet);
  EXPECT_EQ(stats(p.A(), fa).fallback, FallbackReason::kIcmpRefused);
  EXPECT_EQ(p.A().counters().fallback_icmp, 1u);
  EXPECT_EQ(p.A().peer_verdict(p.net.now(), kIpB, kService), PeerVerdict::kPlain);
  // Any service of that host goes straight to kernel TCP now.
  FlowId again;
  EXPECT_TRUE(p.A().peer_known_plain(p.net.now(), kIpB, 22));
  EXPECT_EQ(p.A().connect_service(p.net.now(), kPortA, {kIpB, 22}, &again), Status::kNotMachnet);
  EXPECT_EQ(p.A().counters().fallback_cached, 1u);
  EXPECT_EQ(p.A().counters().probes_sent, 1u);
}

// 100 connects at once to a plain peer whose kernel rate-limits ICMP (a
// burst of 6, then one per second): the first ICMP settles all 100.
TEST(Service, HundredConnectsToAPlainPeerAllFallBackOnOneIcmp) {
  ServicePair p;
  p.b->icmp_unreachable = true;
  p.b->icmp_rate_limited = true;
  // Exhaust the peer's ICMP burst towards A first (earlier traffic).
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(p.b->icmp_allow(kIpA, 0));
  p.net.run_until(1 * kSec);  // one token back: exactly one ICMP will be sent
  std::vector<FlowId> ids(100);
  for (size_t i = 0; i < ids.size(); ++i)
    ASSERT_EQ(p.A().connect_service(p.net.now(), static_cast<uint16_t>(kPortA + i),
                                    {kIpB, kService}, &ids[i]),
              Status::kOk);
  const uint64_t t0 = p.net.now();
  ASSERT_TRUE(p.net.run_until(
      [&] {
        for (FlowId id : ids)
          if (p.A().state(id) != FlowState::kFailed) return false;
        return true;
      },
      t0 + kSec));
  EXPECT_EQ(p.net.now() - t0, 20 * kUs);  // one round trip, not the probe bound
  EXPECT_EQ(p.b->icmp_sent, 1u);
  EXPECT_EQ(p.b->icmp_suppressed, 99u);
  for (FlowId id : ids) EXPECT_EQ(p.A().error(id), FlowError::kNotMachnet);
  const Counters& c = p.A().counters();
  EXPECT_EQ(c.fallback_icmp, 100u);
  EXPECT_EQ(c.probes_settled_by_peer, 99u);
  EXPECT_EQ(c.fallback_timeout, 0u);
}

TEST(Service, SilentPeerFallsBackWithinTheProbeBound) {
  Tunables t;
  sim::SimNetwork net(5);
  sim::Host* a = net.add_host(kIpA, t);
  std::vector<FlowId> ids(100);
  // 100 connects spread over the first millisecond.
  for (size_t i = 0; i < ids.size(); ++i) {
    net.run_until(i * 10 * kUs);
    ASSERT_EQ(a->transport().connect_service(net.now(), static_cast<uint16_t>(kPortA + i),
                                             {kIpNowhere, kService}, &ids[i]),
              Status::kOk);
  }
  ASSERT_TRUE(net.run_until(
      [&] {
        for (FlowId id : ids)
          if (a->transport().state(id) != FlowState::kFailed) return false;
        return true;
      },
      kSec));
  // The first probe's bound settles them all.
  EXPECT_EQ(net.now(), t.probe_timeout_ns);
  const Counters& c = a->transport().counters();
  EXPECT_EQ(c.fallback_timeout, 100u);
  EXPECT_EQ(c.probes_settled_by_peer, 99u);
  for (FlowId id : ids) {
    EXPECT_EQ(a->transport().error(id), FlowError::kNotMachnet);
    EXPECT_EQ(stats(a->transport(), id).fallback, FallbackReason::kTimeout);
  }
  // Each probe sent its SYN three times inside the bound (at 0, 1 and 2 ms
  // of its own life), none after the verdict.
  EXPECT_EQ(c.tx_syn, 300u);
  // Remembered: the next connect costs nothing, until the verdict expires.
  FlowId again;
  EXPECT_EQ(a->transport().connect_service(net.now(), kPortA, {kIpNowhere, kService}, &again),
            Status::kNotMachnet);
  net.run_until(net.now() + t.probe_plain_ttl_ns);
  EXPECT_EQ(a->transport().peer_verdict(net.now(), kIpNowhere, kService), PeerVerdict::kUnknown);
  EXPECT_EQ(a->transport().connect_service(net.now(), kPortA, {kIpNowhere, kService}, &again),
            Status::kOk);
}

TEST(Service, ProbeBoundIsConfigurableAndSurvivesALostSyn) {
  Tunables t;
  t.probe_timeout_ns = 1500 * kUs;
  ServicePair p(t);
  int syns = 0;
  p.net.filter = [&](const sim::Packet& pk) {
    Segment s;
    return !(parse(pk, &s) && s.type == SegType::kSyn && ++syns == 1);  // lose the first SYN
  };
  FlowId fa;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) == FlowState::kEstablished; }, kSec));
  EXPECT_EQ(p.net.now(), 500 * kUs + 20 * kUs);  // resent at a third of the bound
  EXPECT_EQ(p.A().counters().fallback_timeout, 0u);
}

TEST(Service, LateSynAckAfterAFallbackResetsTheServersHalfOpenFlow) {
  ServicePair p;
  sim::LinkParams slow;
  slow.delay_ns = 2 * kMs;  // RTT 4 ms > probe bound 3 ms
  p.net.set_links(slow);
  FlowId fa;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(p.A().error(fa), FlowError::kNotMachnet);
  EXPECT_EQ(p.B().half_open_count(), 1u);
  // The SYN-ACK arrives at 4 ms; the client answers RST; the server's
  // half-open flow is gone at 6 ms, before its SYN-ACK timer (7 ms) fires.
  p.net.run_until(6 * kMs + 10 * kUs);
  EXPECT_EQ(p.B().half_open_count(), 0u);
  EXPECT_EQ(p.B().flow_count(), 0u);
  EXPECT_GE(p.A().counters().rx_flow_finished, 1u);
  // One SYN-ACK per SYN received (the client sent three), none by timer.
  EXPECT_EQ(p.B().counters().tx_syn, 3u);
}

// What the kernel's routing table would say, and how often it was asked.
struct FakeRoutes : KernelRoutes {
  bool routed = false;
  mutable int asked = 0;
  bool reachable(uint32_t) const override {
    ++asked;
    return routed;
  }
};

TEST(Service, SlowMachnetPeerTheKernelCannotReachIsNotGivenUp) {
  // As above (RTT 4 ms > probe bound 3 ms), but kernel TCP has no route to
  // B (machnetd owns the only interface on that network): falling back
  // could only fail, so the probe goes on as an ordinary connect.
  ServicePair p;
  FakeRoutes routes;
  p.A().set_kernel_routes(&routes);
  sim::LinkParams slow;
  slow.delay_ns = 2 * kMs;
  p.net.set_links(slow);
  FlowId fa;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fa) != FlowState::kSynSent; }, kSec));
  EXPECT_EQ(p.A().state(fa), FlowState::kEstablished);
  EXPECT_EQ(routes.asked, 1);  // once, at the bound
  const Counters& c = p.A().counters();
  EXPECT_EQ(c.probes_no_route, 1u);
  EXPECT_EQ(c.probes_extended, 0u);
  EXPECT_EQ(c.fallback_timeout, 0u);
  EXPECT_EQ(p.A().peer_verdict(p.net.now(), kIpB, kService), PeerVerdict::kMachnet);

  // With a route, the same silence is a fallback, as without the check.
  ServicePair q;
  FakeRoutes routed;
  routed.routed = true;
  q.A().set_kernel_routes(&routed);
  q.net.set_links(slow);
  ASSERT_EQ(q.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  ASSERT_TRUE(q.net.run_until([&] { return q.A().state(fa) == FlowState::kFailed; }, kSec));
  EXPECT_EQ(q.A().error(fa), FlowError::kNotMachnet);
  EXPECT_EQ(routed.asked, 1);
  EXPECT_EQ(q.A().counters().fallback_timeout, 1u);
  EXPECT_EQ(q.A().counters().probes_no_route, 0u);
}

TEST(Service, SilentHostTheKernelCannotReachTimesOutAsAConnect) {
  // No machnet there and no kernel route: no fallback to make; the connect
  // ends as an unanswered TCP connect does (ETIMEDOUT), not as a fallback.
  Tunables t;
  sim::SimNetwork net(7);
  sim::Host* a = net.add_host(kIpA, t);
  FakeRoutes routes;
  a->transport().set_kernel_routes(&routes);
  FlowId id;
  ASSERT_EQ(a->transport().connect_service(net.now(), kPortA, {kIpNowhere, kService}, &id),
            Status::kOk);
  ASSERT_TRUE(
      net.run_until([&] { return a->transport().state(id) == FlowState::kFailed; }, 600 * kSec));
  EXPECT_EQ(a->transport().error(id), FlowError::kConnectTimeout);
  EXPECT_GT(net.now(), t.probe_timeout_ns);
  EXPECT_EQ(a->transport().counters().fallback_timeout, 0u);
  EXPECT_EQ(a->transport().counters().probes_no_route, 1u);
  EXPECT_EQ(a->transport().peer_verdict(net.now(), kIpNowhere, kService), PeerVerdict::kUnknown);
}

TEST(Service, ForgedIcmpMustNameAProbesPort) {
  ServicePair p;
  p.net.filter = [](const sim::Packet&) { return false; };  // nothing arrives
  FlowId fa;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  const uint16_t r = p.A().tunables().rendezvous_port;
  p.A().on_icmp_unreachable(0, {kIpA, kPortA + 1}, {kIpB, r});        // wrong local port
  p.A().on_icmp_unreachable(0, {kIpA, kPortA}, {kIpB, kServerPort});  // wrong remote port
  p.A().on_icmp_unreachable(0, {kIpA, kPortA}, {kIpNowhere, r});      // wrong host
  EXPECT_EQ(p.A().state(fa), FlowState::kSynSent);
  EXPECT_EQ(p.A().peer_verdict(0, kIpB, kService), PeerVerdict::kUnknown);
  EXPECT_EQ(p.A().counters().rx_icmp_unreachable, 3u);
  // ...and an established service flow ignores ICMP altogether.
  p.net.filter = nullptr;
  FlowId fb;
  ASSERT_EQ(p.A().connect_service(0, kPortA + 1, {kIpB, kService}, &fb), Status::kOk);
  ASSERT_TRUE(p.net.run_until([&] { return p.A().state(fb) == FlowState::kEstablished; }, kSec));
  p.A().on_icmp_unreachable(p.net.now(), {kIpA, kPortA + 1}, {kIpB, kServerPort});
  p.A().on_icmp_unreachable(p.net.now(), {kIpA, kPortA + 1}, {kIpB, r});
  EXPECT_EQ(p.A().state(fb), FlowState::kEstablished);
}

TEST(Service, ServiceSynOffTheRendezvousPortIsDroppedUnanswered) {
  ServicePair p;
  std::unique_ptr<std::vector<sim::Packet>> log(record(p.net));
  Segment s;
  s.type = SegType::kSyn;
  s.flags = kFlagService | kFlagStream;
  s.src_conn = 77;
  s.seq = 5;
  s.ack = kService;
  s.msg_id = 64;
  s.msg_len = 1400;
  uint8_t hdr[kHeaderSize];
  encode_header(s, nullptr, 0, hdr);
  p.B().on_datagram(0, {kIpA, kPortA}, {kIpB, kServerPort}, hdr, kHeaderSize);
  EXPECT_EQ(p.B().counters().rx_syn_not_rendezvous, 1u);
  s.ack = 0x10050;  // not a port
  encode_header(s, nullptr, 0, hdr);
  p.B().on_datagram(0, {kIpA, kPortA}, {kIpB, p.B().tunables().rendezvous_port}, hdr, kHeaderSize);
  EXPECT_EQ(p.B().counters().rx_bad_fragment, 1u);
  EXPECT_EQ(p.B().flow_count(), 0u);
  EXPECT_TRUE(log->empty());
  const Counters& c = p.B().counters();
  EXPECT_EQ(c.rx_datagrams, c.rx_accepted + c.rx_dropped());
}

TEST(Service, AcceptedFlowsInheritTheListenersOptionsAndBacklog) {
  Tunables t;
  ServicePair p(t);
  ASSERT_EQ(p.B().unlisten_service(kService), Status::kOk);
  ASSERT_EQ(p.B().listen_service(kService, kServerPort, /*backlog=*/2), Status::kOk);
  EXPECT_EQ(p.B().listen_service(kService, kServerPort), Status::kAddressInUse);
  FlowOptions o = p.B().default_flow_options();
  o.recv_buffer_bytes = 64 << 10;
  o.nodelay = false;
  o.keepalive = false;
  ASSERT_EQ(p.B().set_service_options(kService, o), Status::kOk);
  std::vector<FlowId> ids(3);
  for (size_t i = 0; i < ids.size(); ++i)
    ASSERT_EQ(
        p.A().connect_service(0, static_cast<uint16_t>(kPortA + i), {kIpB, kService}, &ids[i]),
        Status::kOk);
  p.net.run_until(2 * kMs);
  int reset = 0;
  for (FlowId id : ids) reset += p.A().error(id) == FlowError::kReset;
  EXPECT_EQ(reset, 0);  // all three admitted at their SYN: none refused
  FlowId fb;
  ASSERT_EQ(p.B().accept_service(kService, &fb), Status::kOk);
  FlowOptions got;
  ASSERT_EQ(p.B().get_flow_options(fb, &got), Status::kOk);
  EXPECT_EQ(got.recv_buffer_bytes, 64u << 10);
  EXPECT_FALSE(got.nodelay);
  EXPECT_FALSE(got.keepalive);
  // The window the client saw is the listener's buffer, and the largest
  // chunk it may send is capped by it too.
  FlowStats sa = stats(p.A(), ids[0]);
  EXPECT_EQ(sa.peer_rwnd, 64u << 10);
  EXPECT_LE(sa.max_message_bytes, 64u << 10);
}

TEST(Service, StreamQueuedBeforeTheHandshakeIsRechunkedToThePeersLimit) {
  Tunables t;
  ServicePair p(t);
  FlowOptions o = p.B().default_flow_options();
  o.recv_buffer_bytes = 8 << 10;  // the server accepts chunks of 8 KiB at most
  ASSERT_EQ(p.B().set_service_options(kService, o), Status::kOk);
  FlowId fa, fb = 0;
  ASSERT_EQ(p.A().connect_service(0, kPortA, {kIpB, kService}, &fa), Status::kOk);
  auto m = pattern(3, 200000);
  size_t acc = 0;
  ASSERT_EQ(p.A().send_stream(0, fa, m.data(), m.size(), &acc), Status::kOk);  // 64 KiB chunks
  EXPECT_EQ(acc, m.size());
  std::vector<uint8_t> got(m.size());
  size_t have = 0;
  ASSERT_TRUE(p.net.run_until(
      [&] {
        if (fb == 0 && p.B().accept_service(kService, &fb) != Status::kOk) fb = 0;
        size_t n = 0;
        if (fb != 0 && p.B().recv_stream(p.net.now(), fb, got.data() + have, got.size() - have,
                                         &n) == Status::kOk)
          have += n;
        return have == m.size();
      },
      kSec));
  EXPECT_EQ(got, m);
  EXPECT_EQ(p.A().state(fa), FlowState::kEstablished);
  EXPECT_EQ(p.B().counters().rx_bad_fragment, 0u);
  EXPECT_LE(stats(p.B(), fb).max_recv_reserved_bytes, 16u << 10);
}

}  // namespace
}  // namespace test
}  // namespace transport
}  // namespace machnet
