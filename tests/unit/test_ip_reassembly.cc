// net::FragTable: IPv4 reassembly with Linux's rules, bounded and
// preallocated. Buffers are numbered handles; every test checks that each
// handle comes back exactly once (completed, dropped with its reason, or
// released by clear()).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "net/ip_reassembly.h"

namespace machnet::net {
namespace {

constexpr uint32_t kChunk = 1480;  // MTU 1500 - 20

class Events : public FragEvents {
 public:
  void drop(void* buf, DropReason r) override {
    drops[r]++;
    back(buf);
  }
  void release(void* buf) override {
    released++;
    back(buf);
  }
  void back(void* buf) {
    auto id = reinterpret_cast<uintptr_t>(buf);
    EXPECT_EQ(outstanding.erase(id), 1u) << "handle " << id << " returned twice or never given";
  }
  uint64_t count(DropReason r) const {
    auto it = drops.find(r);
    return it == drops.end() ? 0 : it->second;
  }
  uint64_t total_drops() const {
    uint64_t t = 0;
    for (const auto& d : drops) t += d.second;
    return t;
  }
  std::map<DropReason, uint64_t> drops;
  std::map<uintptr_t, bool> outstanding;
  uint64_t released = 0;
};

class FragTableTest : public ::testing::Test {
 protected:
  void make(FragLimits l = FragLimits()) {
    l.timeout = 1000;
    table_ = std::make_unique<FragTable>(l, &ev_);
  }
  void TearDown() override {
    if (table_) table_->clear();
    EXPECT_TRUE(ev_.outstanding.empty()) << ev_.outstanding.size() << " handles never returned";
  }

  // The fragments of a datagram of `len` payload bytes (UDP header + data),
  // in order, each with a fresh handle.
  std::vector<FragIn> fragments(uint32_t len, uint32_t chunk = kChunk) {
    std::vector<FragIn> v;
    for (uint32_t off = 0; off < len; off += chunk) {
      FragIn f;
      f.offset = off;
      f.len = std::min(chunk, len - off);
      f.more = off + f.len < len;
      f.cost = f.len + 34;
      v.push_back(f);
    }
    return v;
  }
  FragResult add(FragIn f, uint16_t id = 1, uint64_t now = 0) {
    f.buf = reinterpret_cast<void*>(++next_handle_);
    ev_.outstanding[next_handle_] = true;
    FragKey k;
    k.src = 0x0a000002;
    k.dst = 0x0a000001;
    k.id = id;
    k.proto = 17;
    return table_->add(k, f, now);
  }
  // Takes the completed datagram: checks the pieces tile [0, len) and
  // returns their handles.
  void take_completed(uint32_t len) {
    ASSERT_GT(table_->completed_count(), 0u);
    EXPECT_EQ(table_->completed_len(), len);
    uint32_t at = 0;
    for (size_t i = 0; i < table_->completed_count(); i++) {
      const FragPiece& p = table_->completed()[i];
      EXPECT_EQ(p.offset, at);
      at += p.len;
      ev_.back(p.buf);
    }
    EXPECT_EQ(at, len);
    completed_++;
  }
  // Adds `order` of `frags`; expects completion exactly at the last one.
  void expect_whole(const std::vector<FragIn>& frags, const std::vector<size_t>& order,
                    uint32_t len, uint16_t id = 1) {
    for (size_t i = 0; i < order.size(); i++) {
      FragResult r = add(frags[order[i]], id);
      if (i + 1 < order.size()) {
        ASSERT_EQ(r, FragResult::kHeld) << "fragment " << order[i];
      } else {
        ASSERT_EQ(r, FragResult::kComplete);
        take_completed(len);
      }
    }
    EXPECT_EQ(table_->datagrams(), 0u);
    EXPECT_EQ(table_->fragments(), 0u);
    EXPECT_EQ(table_->bytes(), 0u);
  }
  static std::vector<size_t> iota(size_t n) {
    std::vector<size_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = i;
    return v;
  }

  Events ev_;
  std::unique_ptr<FragTable> table_;
  uintptr_t next_handle_ = 0;
  int completed_ = 0;
};

TEST_F(FragTableTest, InOrder) {
  make();
  auto f = fragments(4008);
  expect_whole(f, iota(f.size()), 4008);
  EXPECT_EQ(ev_.total_drops(), 0u);
}

TEST_F(FragTableTest, Reverse) {
  make();
  auto f = fragments(4008);
  auto o = iota(f.size());
  std::reverse(o.begin(), o.end());
  expect_whole(f, o, 4008);
}

TEST_F(FragTableTest, ShuffledMaximumDatagramIs45Fragments) {
  make();
  // 65,507 bytes of UDP data + 8 of header: the largest datagram, 45
  // fragments at MTU 1500.
  auto f = fragments(65515);
  ASSERT_EQ(f.size(), 45u);
  std::mt19937 rng(7);
  for (int round = 0; round < 20; round++) {
    auto o = iota(f.size());
    std::shuffle(o.begin(), o.end(), rng);
    expect_whole(f, o, 65515, static_cast<uint16_t>(round));
  }
  EXPECT_EQ(completed_, 20);
  EXPECT_EQ(ev_.total_drops(), 0u);
}

TEST_F(FragTableTest, InterleavedDatagramsAreKeptApart) {
  make();
  auto a = fragments(3000), b = fragments(5000);
  ASSERT_EQ(add(a[0], 1), FragResult::kHeld);
  ASSERT_EQ(add(b[3], 2), FragResult::kHeld);
  ASSERT_EQ(add(b[0], 2), FragResult::kHeld);
  ASSERT_EQ(add(a[2], 1), FragResult::kHeld);
  ASSERT_EQ(add(b[1], 2), FragResult::kHeld);
  EXPECT_EQ(table_->datagrams(), 2u);
  ASSERT_EQ(add(a[1], 1), FragResult::kComplete);
  take_completed(3000);
  ASSERT_EQ(add(b[2], 2), FragResult::kComplete);
  take_completed(5000);
}

TEST_F(FragTableTest, DuplicatesAreDroppedAloneAndTheDatagramCompletes) {
  make();
  auto f = fragments(4008);
  ASSERT_EQ(add(f[1]), FragResult::kHeld);
  ASSERT_EQ(add(f[1]), FragResult::kDropped);
  ASSERT_EQ(add(f[0]), FragResult::kHeld);
  // Within two held, contiguous fragments: still a duplicate (Linux: a run).
  FragIn inside;
  inside.offset = 1000;
  inside.len = 1000;
  inside.more = true;
  ASSERT_EQ(add(inside), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kFragDuplicate), 2u);
  ASSERT_EQ(add(f[2]), FragResult::kComplete);
  take_completed(4008);
}

TEST_F(FragTableTest, OverlapDropsTheWholeDatagram) {
  make();
  auto f = fragments(4008);
  ASSERT_EQ(add(f[0]), FragResult::kHeld);
  ASSERT_EQ(add(f[2]), FragResult::kHeld);
  FragIn over;  // starts inside f[0], runs past its end into the hole
  over.offset = 1000;
  over.len = 1000;
  over.more = true;
  ASSERT_EQ(add(over), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kFragOverlap), 3u);
  EXPECT_EQ(table_->datagrams(), 0u);
  // What follows starts a new datagram, which never completes.
  ASSERT_EQ(add(f[1]), FragResult::kHeld);
  // Overlapping the start of a held fragment: also an overlap.
  FragIn before;
  before.offset = 1000;
  before.len = 800;
  before.more = true;
  ASSERT_EQ(add(before), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kFragOverlap), 5u);
}

TEST_F(FragTableTest, InconsistentEndsAndEmptyFragmentsAreBad) {
  make();
  auto f = fragments(4008);
  ASSERT_EQ(add(f[2]), FragResult::kHeld);  // last: ends at 4008
  FragIn other_end = f[2];
  other_end.len -= 8;  // a second, different last fragment
  ASSERT_EQ(add(other_end), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kBadFragment), 2u);
  // Data beyond a known end.
  ASSERT_EQ(add(f[1]), FragResult::kHeld);
  FragIn last_short;
  last_short.offset = 0;
  last_short.len = 800;  // ends before bytes already held
  ASSERT_EQ(add(last_short), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kBadFragment), 4u);
  FragIn empty;
  empty.offset = 80;
  empty.more = true;
  ASSERT_EQ(add(empty), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kBadFragment), 5u);
  EXPECT_EQ(table_->datagrams(), 0u);
}

TEST_F(FragTableTest, NonLastFragmentIsCutToEightByteUnits) {
  make();
  FragIn a;
  a.offset = 0;
  a.len = 1003;  // Linux keeps 1000 of it
  a.more = true;
  FragIn b;
  b.offset = 1000;
  b.len = 500;
  ASSERT_EQ(add(a), FragResult::kHeld);
  ASSERT_EQ(add(b), FragResult::kComplete);
  EXPECT_EQ(table_->completed()[0].len, 1000u);
  take_completed(1500);
}

TEST_F(FragTableTest, MissingLastFragmentTimesOut) {
  make();
  auto f = fragments(4008);
  ASSERT_EQ(add(f[0], 1, 100), FragResult::kHeld);
  ASSERT_EQ(add(f[1], 1, 600), FragResult::kHeld);
  ASSERT_EQ(add(f[0], 2, 500), FragResult::kHeld);
  table_->expire(1099);  // the timer runs from the first fragment: not yet
  EXPECT_EQ(table_->datagrams(), 2u);
  table_->expire(1100);
  EXPECT_EQ(ev_.count(DropReason::kFragTimeout), 2u);
  EXPECT_EQ(table_->datagrams(), 1u);
  table_->expire(1500);
  EXPECT_EQ(ev_.count(DropReason::kFragTimeout), 3u);
  EXPECT_EQ(table_->datagrams(), 0u);
  EXPECT_EQ(table_->fragments(), 0u);
}

TEST_F(FragTableTest, FullTableDropsNewDatagramsAndKeepsOld) {
  FragLimits l;
  l.max_datagrams = 4;
  make(l);
  auto f = fragments(3000);
  for (uint16_t id = 0; id < 4; id++) ASSERT_EQ(add(f[0], id), FragResult::kHeld);
  ASSERT_EQ(add(f[0], 9), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kFragNoRoom), 1u);
  // The datagrams already in complete.
  ASSERT_EQ(add(f[2], 3), FragResult::kHeld);
  ASSERT_EQ(add(f[1], 3), FragResult::kComplete);
  take_completed(3000);
  // And the slot it freed takes a new one.
  ASSERT_EQ(add(f[0], 9), FragResult::kHeld);
}

TEST_F(FragTableTest, MbufAndByteBoundsDropTheDatagramThatWouldExceedThem) {
  FragLimits l;
  l.max_fragments = 50;
  make(l);
  auto big = fragments(65515);  // 45 fragments
  for (size_t i = 0; i + 1 < big.size(); i++) ASSERT_EQ(add(big[i], 1), FragResult::kHeld);
  auto small = fragments(9000);  // 7: the 7th would be the 51st held
  for (size_t i = 0; i < 6; i++) ASSERT_EQ(add(small[i], 2), FragResult::kHeld);
  ASSERT_EQ(add(big[44], 1), FragResult::kDropped);  // 45 + 6 > 50
  EXPECT_EQ(ev_.count(DropReason::kFragNoRoom), 45u);
  EXPECT_EQ(table_->fragments(), 6u);
  ASSERT_EQ(add(small[6], 2), FragResult::kComplete);
  take_completed(9000);

  table_->clear();
  l = FragLimits();
  l.max_bytes = 3 * (kChunk + 34);
  make(l);
  auto f = fragments(9000);
  for (size_t i = 0; i < 3; i++) ASSERT_EQ(add(f[i], 3), FragResult::kHeld);
  EXPECT_EQ(table_->bytes(), 3u * (kChunk + 34));
  ASSERT_EQ(add(f[3], 3), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kFragNoRoom), 45u + 4u);
  EXPECT_EQ(table_->bytes(), 0u);
}

TEST_F(FragTableTest, OversizeDatagramsAreRejected) {
  make();
  // A fragment reaching past 65,535 - 20: dropped at once, with its datagram.
  auto f = fragments(65515);
  ASSERT_EQ(add(f[0]), FragResult::kHeld);
  FragIn past;
  past.offset = 65528;  // the largest offset the header can say
  past.len = 100;
  ASSERT_EQ(add(past), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kTooBig), 2u);
  EXPECT_EQ(table_->datagrams(), 0u);
  // Exactly 65,515 bytes of payload but a 24-byte header: 65,539 in all.
  auto g = fragments(65515);
  g[0].header_len = 24;
  for (size_t i = 0; i + 1 < g.size(); i++) ASSERT_EQ(add(g[i], 2), FragResult::kHeld);
  ASSERT_EQ(add(g.back(), 2), FragResult::kDropped);
  EXPECT_EQ(ev_.count(DropReason::kTooBig), 2u + 45u);
  EXPECT_EQ(table_->fragments(), 0u);
}

TEST_F(FragTableTest, ClearReleasesEverything) {
  make();
  auto f = fragments(9000);
  for (uint16_t id = 0; id < 10; id++) ASSERT_EQ(add(f[id % 6], id), FragResult::kHeld);
  table_->clear();
  EXPECT_EQ(ev_.released, 10u);
  EXPECT_EQ(ev_.total_drops(), 0u);
  EXPECT_EQ(table_->datagrams(), 0u);
}

}  // namespace
}  // namespace machnet::net
