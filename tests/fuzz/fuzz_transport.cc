// libFuzzer target for the transport's segment handling: two Transports (a
// client host A and a server host B with a message listener, a stream
// listener and a stream service) joined by a "wire" the input controls. The
// input is a program of operations: connects, deliveries of captured
// datagrams in any order (dropped, duplicated, bit-flipped, or re-encoded
// with any header field changed and a valid checksum), arbitrary datagrams,
// ICMP errors, API calls on any flow (send, receive, peek, options, close,
// abort...), listener changes and time steps.
//
// Checked after every operation (a violation aborts, which libFuzzer
// reports): Flow::check_invariants on every flow (sequence space, byte
// accounting, memory bounds), table bounds, every received datagram counted
// exactly once (rx_accepted or one drop reason), no timer left due after
// poll, and, while no forged datagram was delivered, every byte and message
// a reader gets is exactly what its peer wrote, in order.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <vector>

#include "fuzz_check.h"
#include "transport/transport.h"
#include "transport/wire_format.h"

namespace {

using namespace machnet::transport;

constexpr uint32_t kIpA = 0x0a000001, kIpB = 0x0a000002;
constexpr uint16_t kMsgPort = 7000, kStreamPort = 7001, kService = 80, kServicePort = 9000;
constexpr size_t kWireMax = 256;

struct Input {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t u8() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return u16() | (uint32_t{u16()} << 16); }
};

struct Datagram {
  Endpoint from, to;
  std::vector<uint8_t> bytes;
};

class Wire : public DatagramSink {
 public:
  bool send(const Endpoint& local, const Endpoint& remote, const uint8_t* hdr, size_t hdr_len,
            const iovec* payload, size_t n) override {
    Datagram d;
    d.from = local;
    d.to = remote;
    if (refuse_every != 0 && ++sends % refuse_every == 0) return false;  // TX ring full
    d.bytes.assign(hdr, hdr + hdr_len);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* b = static_cast<const uint8_t*>(payload[i].iov_base);
      d.bytes.insert(d.bytes.end(), b, b + payload[i].iov_len);
    }
    q->push_back(std::move(d));
    if (q->size() > kWireMax) q->pop_front();
    return true;
  }
  std::deque<Datagram>* q = nullptr;
  uint32_t refuse_every = 0;
  uint64_t sends = 0;
};

// Content every writer sends: byte `off` of the stream (or of message `off`
// >> 20) written by flow `id`. Readers check it while nothing was forged.
uint8_t content(uint32_t id, uint64_t off) {
  uint64_t x = (uint64_t{id} * 0x9e3779b97f4a7c15ull) ^ (off * 0xbf58476d1ce4e5b9ull);
  return static_cast<uint8_t>(x >> 29);
}

struct Writer {
  uint64_t stream_off = 0;
  std::vector<uint32_t> msg_sizes;
};
struct Reader {
  uint64_t stream_off = 0;
  size_t msgs = 0;
};

struct World {
  Tunables t;
  std::deque<Datagram> wire;
  Wire sink_a, sink_b;
  std::unique_ptr<Transport> a, b;
  uint64_t now = 0;
  bool forged = false;
  std::vector<std::pair<Transport*, FlowId>> flows;  // every handle ever returned
  std::map<std::pair<Transport*, FlowId>, Writer> writers;
  std::map<std::pair<Transport*, FlowId>, Reader> readers;

  Transport* host(uint32_t ip) { return ip == kIpA ? a.get() : ip == kIpB ? b.get() : nullptr; }
  Transport* other(Transport* t) { return t == a.get() ? b.get() : a.get(); }
};

Tunables make_tunables(Input& in) {
  Tunables t;
  t.mtu_payload = 64 + in.u8() % 200;
  t.max_message_bytes = 4096;
  t.stream_chunk_bytes = 256 + in.u8() % 2048;
  t.send_buffer_bytes = 16384;
  t.recv_buffer_bytes = 8192;
  t.max_inflight_segments = 32;
  t.max_reassembly_messages = 8;
  t.max_flows = 12;
  t.max_half_open = 3;
  t.listen_backlog = 3;
  t.syn_rto_ns = 100'000;
  t.syn_max_retries = 2;
  t.rto_initial_ns = 100'000;
  t.rto_min_ns = 50'000;
  t.rto_max_ns = 1'000'000;
  t.max_retransmits = 4;
  t.ack_every_segments = 1 + in.u8() % 3;
  t.delayed_ack_ns = 10'000;
  t.reply_grace_ns = in.u8() % 2 ? 5'000 : 0;
  t.keepalive_idle_ns = 1'000'000;
  t.keepalive_interval_ns = 200'000;
  t.keepalive_probes = 3;
  t.time_wait_ns = 500'000;
  t.initial_cwnd_segments = 1 + in.u8() % 8;
  t.payload_checksum = in.u8() % 4 != 0;
  t.half_open_evict_ns = 200'000;
  t.probe_timeout_ns = 300'000;
  t.probe_plain_ttl_ns = 2'000'000;
  t.probe_no_service_ttl_ns = 1'000'000;
  t.probe_machnet_ttl_ns = 2'000'000;
  t.probe_cache_entries = 4;
  t.cork_max_ns = 1'000'000;
  t.min_flow_buffer_bytes = 1024;
  t.rst_burst = 20;
  t.rst_rate_per_sec = 100'000;
  return t;
}

void check_world(World& w) {
  for (Transport* tr : {w.a.get(), w.b.get()}) {
    const Counters& c = tr->counters();
    FUZZ_CHECK(c.rx_datagrams == c.rx_accepted + c.rx_dropped());
    FUZZ_CHECK(c.timer_stalls == 0);
    FUZZ_CHECK(tr->flow_count() <= w.t.max_flows);
    FUZZ_CHECK(tr->half_open_count() <= w.t.max_half_open);
    FUZZ_CHECK(tr->peer_cache_size() <= w.t.probe_cache_entries);
    tr->for_each_flow([&](const Flow& f) {
      const char* why = f.check_invariants();
      if (why != nullptr) {
        std::fprintf(stderr, "flow %u (%s): %s\n", f.id(), flow_state_name(f.state()), why);
        FUZZ_CHECK(why == nullptr);
      }
      FlowStats s = f.stats();
      FUZZ_CHECK(s.recv_reserved_bytes <= uint64_t{w.t.recv_buffer_bytes} + w.t.max_message_bytes);
      FUZZ_CHECK(s.send_buffered_bytes <= w.t.send_buffer_bytes);
      FUZZ_CHECK(s.unsent_bytes <= s.unacked_bytes);
      FUZZ_CHECK(s.readable_bytes <= s.recv_reserved_bytes);
      const uint32_t ev = f.events();
      FUZZ_CHECK(((ev & kEvReadable) != 0) == f.readable());
      FUZZ_CHECK(!(ev & kEvError) || f.state() == FlowState::kFailed);
    });
  }
}

void deliver(World& w, const Datagram& d) {
  Transport* tr = w.host(d.to.ip);
  if (tr == nullptr) return;
  const Counters& c = tr->counters();
  const uint64_t before = c.rx_accepted + c.rx_dropped();
  tr->on_datagram(w.now, d.from, d.to, d.bytes.data(), d.bytes.size());
  FUZZ_CHECK(c.rx_accepted + c.rx_dropped() == before + 1);  // exactly one verdict
}

void advance(World& w, uint64_t dt) {
  w.now += dt;
  for (int i = 0;; ++i) {
    FUZZ_CHECK(i < 100000);  // a timer that never stops firing is a livelock
    uint64_t next = std::min(w.a->next_timer_ns(), w.b->next_timer_ns());
    if (next > w.now) break;
    w.a->poll(w.now);
    w.b->poll(w.now);
  }
}

// Re-encodes a captured datagram with one header field changed (valid CRC).
void forge(World& w, Input& in) {
  if (w.wire.empty()) return;
  Datagram d = w.wire[in.u8() % w.wire.size()];
  Segment s;
  if (decode_header(d.bytes.data(), d.bytes.size(), &s) != DecodeResult::kOk) return;
  std::vector<uint8_t> payload(d.bytes.begin() + kHeaderSize, d.bytes.end());
  const int32_t delta = static_cast<int8_t>(in.u8());
  switch (in.u8() % 16) {
    case 0:
      s.seq += delta;
      break;
    case 1:
      s.ack += delta;
      break;
    case 2:
      s.type = static_cast<SegType>(1 + in.u8() % kMaxSegType);
      break;
    case 3:
      s.flags ^= static_cast<uint8_t>(1u << (in.u8() % 8));  // kFlagMigrated too
      break;
    case 4:
      s.msg_id += delta;
      break;
    case 5:
      s.msg_len += delta;
      break;
    case 6:
      s.msg_offset += delta;
      break;
    case 7:
      s.rwnd = in.u32();
      break;
    case 8:
      s.src_conn += delta;
      break;
    case 9:
      s.dst_conn = in.u8() % 2 ? 0 : s.dst_conn + delta;
      break;
    case 10:
      s.sack_count = in.u8() % (kMaxSackBlocks + 1);
      for (size_t i = 0; i < s.sack_count; ++i) {
        s.sack[i].start = s.ack + static_cast<int8_t>(in.u8());
        s.sack[i].end = s.sack[i].start + 1 + in.u8() % 40;
      }
      break;
    case 11:
      payload.resize(in.u8() % 300, static_cast<uint8_t>(delta));
      break;
    case 12:
      s.tsecr += static_cast<uint32_t>(delta) * 1000;
      break;
    case 13:
      d.from.port = static_cast<uint16_t>(d.from.port + delta);
      break;
    case 14:
      s.ack = in.u16();
      break;  // e.g. a service port
    default:
      std::swap(d.from, d.to);
      break;
  }
  s.payload_len = static_cast<uint16_t>(payload.size());
  if (s.payload_len > 0 && (in.u8() & 1)) s.flags |= kFlagPayloadCsum;
  d.bytes.assign(kHeaderSize, 0);
  iovec iov{payload.data(), payload.size()};
  encode_header(s, &iov, payload.empty() ? 0 : 1, d.bytes.data());
  d.bytes.insert(d.bytes.end(), payload.begin(), payload.end());
  w.forged = true;
  deliver(w, d);
}

void raw(World& w, Input& in) {
  Datagram d;
  const uint8_t sel = in.u8();
  d.to = sel & 1 ? Endpoint{kIpB, static_cast<uint16_t>(sel & 2 ? w.t.rendezvous_port : kMsgPort)}
                 : Endpoint{kIpA, 40000};
  d.from = sel & 1 ? Endpoint{kIpA, 40000} : Endpoint{kIpB, kMsgPort};
  size_t len = in.u8();
  for (size_t i = 0; i < len && !in.empty(); ++i) d.bytes.push_back(in.u8());
  if ((sel & 4) && d.bytes.size() >= kHeaderSize) {
    // A well-formed header the fuzzer fills in itself.
    d.bytes[0] = 0x4d;
    d.bytes[1] = 0x4e;
    d.bytes[2] = kWireVersion;
    d.bytes[6] = static_cast<uint8_t>((d.bytes.size() - kHeaderSize) >> 8);
    d.bytes[7] = static_cast<uint8_t>(d.bytes.size() - kHeaderSize);
    iovec iov{d.bytes.data() + kHeaderSize, d.bytes.size() - kHeaderSize};
    uint32_t crc = compute_checksum(d.bytes.data(), &iov, 1, d.bytes[4] & kFlagPayloadCsum);
    d.bytes[28] = static_cast<uint8_t>(crc >> 24);
    d.bytes[29] = static_cast<uint8_t>(crc >> 16);
    d.bytes[30] = static_cast<uint8_t>(crc >> 8);
    d.bytes[31] = static_cast<uint8_t>(crc);
    w.forged = true;
  }
  // Coverage feedback can also solve the CRC comparison by itself: any
  // datagram that passes validation counts as forged.
  Segment tmp;
  if (decode_header(d.bytes.data(), d.bytes.size(), &tmp) == DecodeResult::kOk) w.forged = true;
  deliver(w, d);
}

void check_read(World& w, Transport* tr, FlowId id, const uint8_t* data, size_t n, bool message) {
  if (w.forged) return;
  uint32_t peer = 0;
  tr->for_each_flow([&](const Flow& f) {
    if (f.id() == id) peer = f.peer_id();
  });
  auto wi = w.writers.find({w.other(tr), peer});
  if (wi == w.writers.end()) return;
  Reader& r = w.readers[{tr, id}];
  if (message) {
    FUZZ_CHECK(r.msgs < wi->second.msg_sizes.size());
    FUZZ_CHECK(n == wi->second.msg_sizes[r.msgs]);
    for (size_t i = 0; i < n; ++i) FUZZ_CHECK(data[i] == content(peer, (r.msgs << 20) + i));
    ++r.msgs;
  } else {
    FUZZ_CHECK(r.stream_off + n <= wi->second.stream_off);
    for (size_t i = 0; i < n; ++i) FUZZ_CHECK(data[i] == content(peer, r.stream_off + i));
    r.stream_off += n;
  }
}

void api(World& w, Input& in) {
  if (w.flows.empty()) return;
  auto [tr, id] = w.flows[in.u8() % w.flows.size()];
  const uint8_t op = in.u8();
  std::vector<uint8_t> buf;
  switch (op % 12) {
    case 0: {  // send a message
      Writer& wr = w.writers[{tr, id}];
      size_t len = 1 + in.u16() % 5000;
      buf.resize(len);
      for (size_t i = 0; i < len; ++i) buf[i] = content(id, (wr.msg_sizes.size() << 20) + i);
      if (tr->send_message(w.now, id, buf.data(), len) == Status::kOk)
        wr.msg_sizes.push_back(static_cast<uint32_t>(len));
      break;
    }
    case 1: {  // write to a stream
      Writer& wr = w.writers[{tr, id}];
      size_t len = in.u16() % 20000;
      buf.resize(len);
      for (size_t i = 0; i < len; ++i) buf[i] = content(id, wr.stream_off + i);
      size_t acc = 0;
      tr->send_stream(w.now, id, buf.data(), len, &acc);
      FUZZ_CHECK(acc <= len);
      wr.stream_off += acc;
      break;
    }
    case 2: {
      std::vector<uint8_t> m;
      if (tr->recv_message(w.now, id, &m) == Status::kOk)
        check_read(w, tr, id, m.data(), m.size(), true);
      break;
    }
    case 3: {
      buf.resize(in.u16() % 20000);
      size_t got = 0;
      const size_t avail = tr->readable_bytes(id);
      if (tr->recv_stream(w.now, id, buf.data(), buf.size(), &got) == Status::kOk) {
        FUZZ_CHECK(got == std::min(avail, buf.size()));
        check_read(w, tr, id, buf.data(), got, false);
      }
      break;
    }
    case 4: {  // peek must match the read that follows
      buf.resize(in.u16() % 5000);
      std::vector<uint8_t> again(buf.size());
      size_t got = 0, got2 = 0;
      if (tr->peek_stream(id, buf.data(), buf.size(), &got) == Status::kOk && got > 0) {
        FUZZ_CHECK(tr->recv_stream(w.now, id, again.data(), got, &got2) == Status::kOk);
        FUZZ_CHECK(got2 == got && std::memcmp(buf.data(), again.data(), got) == 0);
        check_read(w, tr, id, again.data(), got2, false);
      }
      break;
    }
    case 5:
      tr->shutdown_send(w.now, id);
      break;
    case 6:
      tr->close(w.now, id);
      break;
    case 7:
      tr->abort(w.now, id);
      break;
    case 8: {
      FlowOptions o;
      if (tr->get_flow_options(id, &o) != Status::kOk) break;
      o.recv_buffer_bytes = in.u16() * 4u;
      o.send_buffer_bytes = in.u16() * 4u;
      const uint8_t f = in.u8();
      o.keepalive = f & 1;
      o.keepalive_idle_ns = 1000u * in.u8();
      o.keepalive_interval_ns = 1000u * in.u8();
      o.keepalive_probes = in.u8() % 5;
      o.nodelay = f & 2;
      o.cork = f & 4;
      o.quickack = f & 8;
      FUZZ_CHECK(tr->set_flow_options(w.now, id, o) == Status::kOk);
      FlowOptions got;
      FUZZ_CHECK(tr->get_flow_options(id, &got) == Status::kOk);
      FUZZ_CHECK(got.recv_buffer_bytes >= w.t.min_flow_buffer_bytes &&
                 got.recv_buffer_bytes <= w.t.recv_buffer_bytes);
      FUZZ_CHECK(got.send_buffer_bytes <= w.t.send_buffer_bytes);
      break;
    }
    case 9: {
      FlowStats s;
      if (tr->flow_stats(id, &s)) {
        FUZZ_CHECK(s.readable_bytes == tr->readable_bytes(id));
        FUZZ_CHECK(s.unacked_bytes == tr->unacked_bytes(id));
      }
      break;
    }
    default: {  // accept on every listener of that host
      FlowId f = 0;
      Transport* t = in.u8() % 2 ? w.a.get() : w.b.get();
      for (uint16_t port : {kMsgPort, kStreamPort})
        while (t->accept(port, &f) == Status::kOk) w.flows.push_back({t, f});
      while (t->accept_service(kService, &f) == Status::kOk) w.flows.push_back({t, f});
      break;
    }
  }
}

void connect(World& w, Input& in) {
  const uint8_t sel = in.u8();
  Transport* tr = sel & 0x80 ? w.b.get() : w.a.get();  // B connects to A too (no listener)
  const uint32_t peer = tr == w.a.get() ? kIpB : kIpA;
  const uint16_t local = static_cast<uint16_t>(40000 + (sel >> 3) % 4);
  FlowId id = 0;
  Status st;
  switch (sel % 5) {
    case 0:
      st = tr->connect(w.now, local, {peer, kMsgPort}, &id);
      break;
    case 1:
      st = tr->connect(w.now, local, {peer, kStreamPort}, &id, true);
      break;
    case 2:
      st = tr->connect_service(w.now, local, {peer, kService}, &id);
      break;
    case 3:
      st = tr->connect_service(w.now, local, {peer, static_cast<uint16_t>(kService + 1)}, &id);
      break;
    default:
      st = tr->connect(w.now, local, {peer, static_cast<uint16_t>(in.u16() | 1)}, &id);
      break;
  }
  if (st == Status::kOk) w.flows.push_back({tr, id});
}

void listeners(World& w, Input& in) {
  const uint8_t sel = in.u8();
  switch (sel % 6) {
    case 0:
      w.b->unlisten(kMsgPort);
      break;
    case 1:
      w.b->listen(kMsgPort);
      break;
    case 2:
      w.b->unlisten_service(kService);
      break;
    case 3:
      w.b->listen_service(kService, kServicePort, 1 + sel % 4);
      break;
    case 4: {
      FlowOptions o = w.b->default_flow_options();
      o.recv_buffer_bytes = in.u16();
      o.nodelay = sel & 0x10;
      w.b->set_service_options(kService, o);
      w.b->set_listen_options(kStreamPort, o);
      break;
    }
    default:
      w.a->forget_peer(kIpB);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  World w;
  w.t = make_tunables(in);
  FUZZ_CHECK(w.t.validate().empty());
  w.sink_a.q = w.sink_b.q = &w.wire;
  const uint8_t refuse = in.u8();
  w.sink_a.refuse_every = w.sink_b.refuse_every = refuse < 200 ? 0 : refuse - 190;
  w.a = std::make_unique<Transport>(w.t, &w.sink_a, kIpA, 1);
  w.b = std::make_unique<Transport>(w.t, &w.sink_b, kIpB, 2);
  FUZZ_CHECK(w.b->listen(kMsgPort) == Status::kOk);
  FUZZ_CHECK(w.b->listen(kStreamPort, true) == Status::kOk);
  FUZZ_CHECK(w.b->listen_service(kService, kServicePort) == Status::kOk);
  // Readiness reports must agree with the state the caller can query, and
  // arrive only for flows the application holds or for listeners.
  for (Transport* tr : {w.a.get(), w.b.get()}) {
    tr->set_event_handler([tr](FlowId flow, uint16_t port, uint32_t ev) {
      if (flow == 0) {
        FUZZ_CHECK(port != 0 && (ev & kEvReadable));
        FUZZ_CHECK(((ev & kEvService) != 0) == (port == kService));
        return;
      }
      FUZZ_CHECK(port == 0);
      FUZZ_CHECK(tr->events(flow) == ev);
    });
  }
  while (!in.empty()) {
    const uint8_t op = in.u8();
    switch (op % 12) {
      case 0:
        connect(w, in);
        break;
      case 1:
      case 2: {  // deliver one (in any order)
        if (w.wire.empty()) break;
        size_t i = in.u8() % w.wire.size();
        Datagram d = std::move(w.wire[i]);
        w.wire.erase(w.wire.begin() + static_cast<ptrdiff_t>(i));
        deliver(w, d);
        break;
      }
      case 3: {  // deliver everything queued, in order
        for (size_t k = in.u8() % 64; k > 0 && !w.wire.empty(); --k) {
          Datagram d = std::move(w.wire.front());
          w.wire.pop_front();
          deliver(w, d);
        }
        break;
      }
      case 4:  // drop
        if (!w.wire.empty()) w.wire.erase(w.wire.begin() + in.u8() % w.wire.size());
        break;
      case 5:  // duplicate
        if (!w.wire.empty()) deliver(w, Datagram(w.wire[in.u8() % w.wire.size()]));
        break;
      case 6: {  // flip bits (the checksum should catch it)
        if (w.wire.empty()) break;
        Datagram d = w.wire[in.u8() % w.wire.size()];
        d.bytes[in.u16() % d.bytes.size()] ^= static_cast<uint8_t>(1 + in.u8() % 255);
        Segment tmp;  // a flip the checksum does not cover (payload unprotected)
        if (decode_header(d.bytes.data(), d.bytes.size(), &tmp) == DecodeResult::kOk)
          w.forged = true;
        deliver(w, d);
        break;
      }
      case 7:
        forge(w, in);
        break;
      case 8:
        raw(w, in);
        break;
      case 9:
        advance(w, (uint64_t{1} << (in.u8() % 22)) + in.u8());
        break;
      case 10:
        api(w, in);
        break;
      default:
        if (op & 0x80) {
          listeners(w, in);
        } else if (!w.wire.empty()) {  // ICMP for a datagram we sent
          const Datagram& d = w.wire[in.u8() % w.wire.size()];
          if (Transport* t = w.host(d.from.ip)) t->on_icmp_unreachable(w.now, d.from, d.to);
        }
        break;
    }
    check_world(w);
  }
  // Let everything settle: the wire drains, timers run out; still sound.
  for (int round = 0; round < 50 && !w.wire.empty(); ++round) {
    while (!w.wire.empty()) {
      Datagram d = std::move(w.wire.front());
      w.wire.pop_front();
      deliver(w, d);
    }
    advance(w, 20'000);
    check_world(w);
  }
  if (std::getenv("FUZZ_TRANSPORT_TRACE") != nullptr) {  // what a reproducer did
    for (Transport* tr : {w.a.get(), w.b.get()}) {
      const Counters& c = tr->counters();
      std::fprintf(stderr, "%s: rx %llu accepted %llu dropped %llu flows %zu created %llu\n",
                   tr == w.a.get() ? "A" : "B", (unsigned long long)c.rx_datagrams,
                   (unsigned long long)c.rx_accepted, (unsigned long long)c.rx_dropped(),
                   tr->flow_count(), (unsigned long long)c.flows_created);
      tr->for_each_flow([&](const Flow& f) {
        FlowStats st = f.stats();
        std::fprintf(stderr, "  flow %08x %s %s sent %llu acked %llu received %llu\n", f.id(),
                     flow_state_name(st.state), flow_error_string(st.error),
                     (unsigned long long)st.bytes_sent, (unsigned long long)st.bytes_acked,
                     (unsigned long long)st.bytes_received);
      });
    }
    std::fprintf(stderr, "forged %d, %zu handles\n", w.forged, w.flows.size());
  }
  return 0;
}
