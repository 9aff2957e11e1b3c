// Shared helpers for the transport tests: a two-host simulated pair, seeded
// message content, and small event-loop conveniences.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sim_network.h"
#include "transport/transport.h"
#include "transport/wire_format.h"

namespace machnet {
namespace transport {
namespace test {

constexpr uint32_t kIpA = 0x0a000001;  // 10.0.0.1
constexpr uint32_t kIpB = 0x0a000002;  // 10.0.0.2
constexpr uint32_t kIpNowhere = 0x0a0000fe;
constexpr uint16_t kPortA = 40000;
constexpr uint16_t kPortB = 7000;
constexpr uint64_t kUs = 1000;
constexpr uint64_t kMs = 1000 * 1000;
constexpr uint64_t kSec = 1000 * kMs;

// Deterministic message content: byte stream of splitmix64(seed, index).
inline std::vector<uint8_t> pattern(uint64_t seed, size_t len) {
  std::vector<uint8_t> v(len);
  Rng r(seed * 0x9e3779b97f4a7c15ull + len);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w = r.next();
    std::memcpy(v.data() + i, &w, 8);
  }
  uint64_t w = r.next();
  for (size_t k = 0; i < len; ++i, ++k) v[i] = static_cast<uint8_t>(w >> (8 * k));
  return v;
}

// Parses a datagram sent on the simulated network (test-side decoding).
inline bool parse(const sim::Packet& p, Segment* s) {
  return decode_header(p.bytes.data(), p.bytes.size(), s) == DecodeResult::kOk;
}

// Two hosts A (client) and B (server, listening on kPortB).
struct Pair {
  explicit Pair(const Tunables& ta = Tunables(), const Tunables& tb = Tunables(), uint64_t seed = 1,
                bool stream = false)
      : net(seed) {
    a = net.add_host(kIpA, ta);
    b = net.add_host(kIpB, tb);
    EXPECT_EQ(b->transport().listen(kPortB, stream), Status::kOk);
  }
  Transport& A() { return a->transport(); }
  Transport& B() { return b->transport(); }

  // Connects A -> B and accepts on B; runs until both are established.
  bool connect(bool stream = false, uint64_t timeout = 1 * kSec) {
    EXPECT_EQ(A().connect(net.now(), kPortA, {kIpB, kPortB}, &fa, stream), Status::kOk);
    bool ok = net.run_until(
        [&] {
          if (fb == 0 && B().accept(kPortB, &fb) != Status::kOk) fb = 0;
          return fb != 0 && A().state(fa) == FlowState::kEstablished &&
                 B().state(fb) == FlowState::kEstablished;
        },
        net.now() + timeout);
    return ok;
  }

  // Runs until B received `n` messages on fb (collected in `got`).
  bool recv_b(size_t n, std::vector<std::vector<uint8_t>>* got, uint64_t timeout) {
    return net.run_until(
        [&] {
          std::vector<uint8_t> m;
          while (B().recv_message(net.now(), fb, &m) == Status::kOk) got->push_back(std::move(m));
          return got->size() >= n;
        },
        net.now() + timeout);
  }

  sim::SimNetwork net;
  sim::Host* a;
  sim::Host* b;
  FlowId fa = 0;
  FlowId fb = 0;
};

inline FlowStats stats(Transport& t, FlowId id) {
  FlowStats s;
  EXPECT_TRUE(t.flow_stats(id, &s));
  return s;
}

// The only flow of a transport (for tests that need its peer id).
inline const Flow* only_flow(Transport& t) {
  const Flow* out = nullptr;
  t.for_each_flow([&](const Flow& f) { out = &f; });
  return out;
}

}  // namespace test
}  // namespace transport
}  // namespace machnet
