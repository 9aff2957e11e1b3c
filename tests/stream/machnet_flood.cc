// machnet-flood: a SYN flood and blind-injection generator on a raw machnet
// engine, for tests/stream/test_stream_flood.sh (a test tool: not installed).
//
// Sends, paced at --rate per second in bursts of --burst, service SYNs
// (SERVICE|STREAM, the service port in `ack`) to the target's rendezvous
// port, each with a random connection id, ISN, ring size and segment size,
// from a random one of --ports UDP ports of the engine's own address (the
// engine writes the IP header: the source address cannot be spoofed, the
// source port and the ids are random). With --blind-rate, also DATA, ACK,
// FIN, RST and keepalive segments with guessed connection ids at
// --blind-port (default: the port the target's first SYN-ACK came from, the
// listener's own port, where its established flows live). Every segment is
// built by the transport's own encoder (transport/wire_format.h), so it is
// valid on the wire and reaches the target's transport.
//
// Before flooding it sends one SYN and waits for its SYN-ACK (neighbour
// resolution done both ways, the listener's port learnt), prints "flooding",
// and floods until --duration ends or SIGINT/SIGTERM. SYN-ACKs that come
// back are read and discarded (bound ports: no ICMP port unreachable that
// would cut the flood's half-open flows short). At the end one line:
//   flood: syn_sent N blind_sent N seconds S syn_rate R/s synacks_rx N
//   rsts_rx N engine_tx_drops N warmup_syns N
// syn_sent/blind_sent count the datagrams the engine accepted for sending
// (engine_tx_drops of them were dropped by the engine itself, counted).
#include <getopt.h>
#include <signal.h>
#include <time.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/config.h"
#include "engine/engine.h"
#include "engine/engine_cli.h"
#include "transport/wire_format.h"
#include "wire/headers.h"

using machnet::Config;
using machnet::engine::Engine;
using machnet::engine::EngineConfig;
using machnet::engine::UdpSocket;
namespace tp = machnet::transport;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  uint32_t next32() { return static_cast<uint32_t>(next() >> 16); }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
};

void usage(FILE* out) {
  fprintf(out,
          "Usage: machnet-flood --target IP --service PORT [options] [engine options]\n"
          "  --target IP            the listener's host\n"
          "  --service PORT         the service (TCP) port its SYNs ask for\n"
          "  --rendezvous-port P    the target's rendezvous port (default 14700)\n"
          "  --rate N               SYNs per second (default 100000; 0: no SYNs)\n"
          "  --blind-rate N         blind segments per second (default 0)\n"
          "  --blind-port P         their destination port (default: the listener's port,\n"
          "                         learnt from the first SYN-ACK)\n"
          "  --burst N              segments per burst (default 32)\n"
          "  --ports N              source ports to send from (default 256)\n"
          "  --duration S           seconds (default: until SIGINT/SIGTERM)\n"
          "  --seed N               PRNG seed (default: from the clock)\n"
          "Engine options: --config FILE --device --ip --gateway --mtu --mac\n"
          "  --no-hugepages --set KEY=VALUE (machnet.conf keys)\n");
}

constexpr const char* kProg = "machnet-flood";

// One encoded segment (header, and a payload for DATA).
struct Wire {
  uint8_t buf[tp::kHeaderSize + 256];
  size_t len = 0;
};

void make_syn(Rng& r, uint16_t service, Wire* w) {
  tp::Segment s;
  s.type = tp::SegType::kSyn;
  s.flags = tp::kFlagStream | tp::kFlagService;
  s.ack = service;
  s.src_conn = r.next32() | 1;
  s.seq = r.next32();
  s.msg_id = 1u << (4 + r.below(10));  // rings and segment sizes that look real
  s.msg_len = 512 + r.below(8000);
  s.msg_offset = 1u << 16;
  s.tsval = r.next32();
  tp::encode_header(s, nullptr, 0, w->buf);
  w->len = tp::kHeaderSize;
}

void make_blind(Rng& r, Wire* w) {
  static const tp::SegType kTypes[] = {tp::SegType::kData, tp::SegType::kAck, tp::SegType::kFin,
                                       tp::SegType::kRst, tp::SegType::kKeepalive};
  tp::Segment s;
  s.type = kTypes[r.below(5)];
  s.flags = tp::kFlagAck;
  s.src_conn = r.next32() | 1;
  s.dst_conn = r.next32() | 1;  // guessed
  s.seq = r.next32();
  s.ack = r.next32();
  s.rwnd = r.next32();
  s.tsval = r.next32();
  size_t n = 0;
  if (s.type == tp::SegType::kData) {
    n = 1 + r.below(200);
    for (size_t i = 0; i < n; i++) w->buf[tp::kHeaderSize + i] = static_cast<uint8_t>(r.next());
    s.flags |= tp::kFlagPayloadCsum;
    s.payload_len = static_cast<uint16_t>(n);
    s.msg_id = r.next32();
    s.msg_len = static_cast<uint32_t>(n);
  }
  iovec iov{w->buf + tp::kHeaderSize, n};
  tp::encode_header(s, &iov, n == 0 ? 0 : 1, w->buf);
  w->len = tp::kHeaderSize + n;
}

}  // namespace

int main(int argc, char** argv) {
  machnet::cli::EngineOptions engine_opts;
  std::string target;
  unsigned long service = 0, rendezvous = 14700, rate = 100000, blind_rate = 0, blind_port = 0;
  unsigned long burst = 32, nports = 256, seed = 0;
  double duration = 0;
  enum {
    kTarget = 0x100,
    kService,
    kRendezvous,
    kRate,
    kBlindRate,
    kBlindPort,
    kBurst,
    kPorts,
    kDuration,
    kSeed
  };
  const std::vector<option> opts = machnet::cli::with_engine_options(
      {{"target", required_argument, nullptr, kTarget},
       {"service", required_argument, nullptr, kService},
       {"rendezvous-port", required_argument, nullptr, kRendezvous},
       {"rate", required_argument, nullptr, kRate},
       {"blind-rate", required_argument, nullptr, kBlindRate},
       {"blind-port", required_argument, nullptr, kBlindPort},
       {"burst", required_argument, nullptr, kBurst},
       {"ports", required_argument, nullptr, kPorts},
       {"duration", required_argument, nullptr, kDuration},
       {"seed", required_argument, nullptr, kSeed},
       {"help", no_argument, nullptr, 'h'}});
  int c;
  while ((c = getopt_long(argc, argv, "h", opts.data(), nullptr)) != -1) {
    int engine = machnet::cli::engine_option(c, "machnet-flood", optarg, &engine_opts);
    if (engine < 0) return 2;
    if (engine > 0) continue;
    bool ok = true;
    switch (c) {
      case kTarget:
        target = optarg;
        break;
      case kService:
        ok = machnet::cli::number(kProg, "--service", optarg, 1, 65535, &service);
        break;
      case kRendezvous:
        ok = machnet::cli::number(kProg, "--rendezvous-port", optarg, 1, 65535, &rendezvous);
        break;
      case kRate:
        ok = machnet::cli::number(kProg, "--rate", optarg, 0, 100000000, &rate);
        break;
      case kBlindRate:
        ok = machnet::cli::number(kProg, "--blind-rate", optarg, 0, 100000000, &blind_rate);
        break;
      case kBlindPort:
        ok = machnet::cli::number(kProg, "--blind-port", optarg, 1, 65535, &blind_port);
        break;
      case kBurst:
        ok = machnet::cli::number(kProg, "--burst", optarg, 1, 512, &burst);
        break;
      case kPorts:
        ok = machnet::cli::number(kProg, "--ports", optarg, 1, 4096, &nports);
        break;
      case kDuration:
        ok = machnet::cli::real(kProg, "--duration", optarg, 0.001, 86400, &duration);
        break;
      case kSeed:
        ok = machnet::cli::number(kProg, "--seed", optarg, 0, ~0UL, &seed);
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
    if (!ok) return 2;
  }
  if (optind < argc) {
    fprintf(stderr, "machnet-flood: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  uint32_t dst_ip = 0;
  if (target.empty() || !machnet::wire::parse_ipv4(target, &dst_ip)) {
    fprintf(stderr, "machnet-flood: --target expects an IPv4 address, got '%s'\n", target.c_str());
    return 2;
  }
  if (service == 0) {
    fprintf(stderr, "machnet-flood: --service PORT is required\n");
    return 2;
  }
  Config cfg;
  EngineConfig ec;
  if (!machnet::cli::load_engine_config("machnet-flood", engine_opts, &cfg, &ec)) return 2;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::string err;
  std::unique_ptr<Engine> eng = Engine::create(ec, &err);
  if (!eng) {
    fprintf(stderr, "machnet-flood: %s\n", err.c_str());
    return 1;
  }
  printf("machnet-flood: engine up: %s\n", eng->describe().c_str());
  std::vector<UdpSocket*> socks;
  for (unsigned long i = 0; i < nports; i++) {
    UdpSocket* s = nullptr;
    int rc = eng->udp_bind(0, &s);
    if (rc != 0) {
      fprintf(stderr, "machnet-flood: bind source port %lu of %lu: %s\n", i + 1, nports,
              strerror(-rc));
      return 1;
    }
    socks.push_back(s);
  }
  Rng rng{seed != 0 ? seed : (eng->now_ns() ^ 0x9e3779b97f4a7c15ULL) | 1};
  uint64_t synacks = 0, rsts = 0;
  uint8_t rx[2048];
  size_t drain_at = 0;
  // Reads what came back on a few of the ports (all of them over a few
  // polls): SYN-ACKs (learning the listener's port) and RSTs.
  auto drain = [&](size_t n) {
    for (size_t k = 0; k < n; k++) {
      UdpSocket* s = socks[drain_at];
      drain_at = (drain_at + 1) % socks.size();
      uint32_t sip;
      uint16_t sport;
      ssize_t len;
      while ((len = eng->udp_recvfrom(s, rx, sizeof(rx), &sip, &sport)) >= 0) {
        tp::Segment seg;
        if (tp::decode_header(rx, static_cast<size_t>(len), &seg) != tp::DecodeResult::kOk)
          continue;
        if (seg.type == tp::SegType::kSynAck) {
          ++synacks;
          if (blind_port == 0) blind_port = sport;
        } else if (seg.type == tp::SegType::kRst) {
          ++rsts;
        }
      }
    }
  };
  auto send = [&](const Wire& w, uint16_t port) {
    UdpSocket* s = socks[rng.below(static_cast<uint32_t>(socks.size()))];
    iovec iov{const_cast<uint8_t*>(w.buf), w.len};
    for (;;) {
      int rc = eng->udp_sendv(s, dst_ip, port, &iov, 1, false);
      if (rc != -EAGAIN) return rc == 0;
      eng->poll();  // TX ring full: nothing sent, drain it and retry
      if (g_stop) return false;
    }
  };

  // One SYN answered: both neighbours resolved, the listener's port known.
  Wire w;
  uint64_t warmup = 0;
  {
    const uint64_t give_up = eng->now_ns() + 10'000'000'000ULL;
    uint64_t next_try = 0;
    while (synacks == 0 && !g_stop) {
      if (eng->now_ns() >= give_up) {
        fprintf(stderr, "machnet-flood: no SYN-ACK from %s:%lu (service %lu) within 10 s\n",
                target.c_str(), rendezvous, service);
        return 1;
      }
      if (eng->now_ns() >= next_try) {
        make_syn(rng, static_cast<uint16_t>(service), &w);
        if (send(w, static_cast<uint16_t>(rendezvous))) ++warmup;
        eng->flush_tx();
        next_try = eng->now_ns() + 200'000'000ULL;
      }
      eng->poll();
      drain(socks.size());
    }
  }
  printf(
      "machnet-flood: flooding %s:%lu (service %lu) with %lu SYNs/s, %lu blind/s at port %lu "
      "from %lu ports\n",
      target.c_str(), rendezvous, service, rate, blind_rate, blind_port, nports);
  fflush(stdout);

  // The engine's own losses of what we handed it (its RX drops are other
  // hosts' frames: AF_PACKET sees the whole link).
  auto tx_losses = [&]() {
    using machnet::DropReason;
    const machnet::engine::EngineCounters& k = eng->counters();
    return k.drop(DropReason::kTxRingFull) + k.drop(DropReason::kNoMbuf) +
           k.drop(DropReason::kArpQueueFull) + k.drop(DropReason::kNoArpEntry);
  };
  const uint64_t before_drops = tx_losses();
  const uint64_t start = eng->now_ns();
  const uint64_t end = duration > 0 ? start + static_cast<uint64_t>(duration * 1e9) : ~0ULL;
  uint64_t syn_sent = 0, blind_sent = 0, now = start;
  while (!g_stop && (now = eng->now_ns()) < end) {
    const double secs = static_cast<double>(now - start) / 1e9;
    const uint64_t syn_due = static_cast<uint64_t>(secs * static_cast<double>(rate));
    const uint64_t blind_due = static_cast<uint64_t>(secs * static_cast<double>(blind_rate));
    size_t n = 0;
    while (n < burst && (syn_sent < syn_due || blind_sent < blind_due)) {
      // Interleaved in the asked proportion, also when behind schedule.
      bool syn = syn_sent < syn_due &&
                 (blind_sent >= blind_due || syn_sent * blind_rate <= blind_sent * rate);
      if (syn) {
        make_syn(rng, static_cast<uint16_t>(service), &w);
        if (send(w, static_cast<uint16_t>(rendezvous))) ++syn_sent;
      } else {
        make_blind(rng, &w);
        if (send(w, static_cast<uint16_t>(blind_port))) ++blind_sent;
      }
      ++n;
    }
    eng->flush_tx();
    eng->poll();
    drain(8);
    if (n == 0) {
      timespec ts{0, 20'000};  // ahead of schedule: let the other engines run
      nanosleep(&ts, nullptr);
    }
  }
  const double secs = static_cast<double>(now - start) / 1e9;
  for (int i = 0; i < 100; i++) eng->poll();  // the last bursts leave
  drain(socks.size());
  const uint64_t tx_drops = tx_losses() - before_drops;
  printf("flood: syn_sent %" PRIu64 " blind_sent %" PRIu64
         " seconds %.3f syn_rate %.0f/s "
         "blind_rate %.0f/s synacks_rx %" PRIu64 " rsts_rx %" PRIu64 " engine_tx_drops %" PRIu64
         " warmup_syns %" PRIu64 "\n",
         syn_sent, blind_sent, secs, secs > 0 ? static_cast<double>(syn_sent) / secs : 0.0,
         secs > 0 ? static_cast<double>(blind_sent) / secs : 0.0, synacks, rsts, tx_drops, warmup);
  eng->print_counters(stdout);
  fflush(stdout);
  return 0;
}
