// machnet-kv-load: an open-loop load generator on the raw engine for
// machnet-kv-server (binary format, kv_proto.h) or memcached's UDP protocol.
// Many requests in flight (--window), sent on a schedule (--rate) or as fast
// as the window allows, keys from a Zipf distribution, a GET/SET mix; every
// reply is checked against what was stored.
//
// Checking with requests in flight: every SET of a key carries a new version
// (values are a function of key, version and a per-run nonce). A GET is
// right when it returns a version at least the highest one acknowledged
// before the GET was sent, and at most the highest one sent before its reply
// came; NOT_FOUND only when no SET of the key had been acknowledged then.
#include <getopt.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
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
#include "machnet-kv/kv_proto.h"
#include "wire/headers.h"

using machnet::Config;
using machnet::engine::Engine;
using machnet::engine::EngineConfig;
using machnet::engine::UdpSocket;
namespace kv = machnet::kv;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

void usage(FILE* out) {
  fprintf(out,
          "usage: machnet-kv-load [engine options] --server IP:PORT [load options]\n"
          "\n"
          "  --server IP:PORT   the server (machnet-kv-server, or memcached -U PORT)\n"
          "  --protocol P       kv (machnet-kv-server's binary format, default) or\n"
          "                     memcached (8-byte UDP frame header, ASCII get/set)\n"
          "  --port P           local UDP port (default: ephemeral)\n"
          "  --duration S       measured seconds (default 2)\n"
          "  --window N         requests in flight at most (default 32)\n"
          "  --rate R           requests per second on a fixed schedule (open loop;\n"
          "                     latency counts from the scheduled time); 0: as fast as\n"
          "                     the window allows (default 0)\n"
          "  --keys N           key space (default 10000)\n"
          "  --zipf S           Zipf exponent of the key popularity (default 0.99; 0: uniform)\n"
          "  --get-ratio F      share of GETs (default 0.9)\n"
          "  --value-size B     value bytes, 16..1400 (default 32)\n"
          "  --no-populate      skip storing every key once before measuring\n"
          "  --timeout-ms T     a reply later than this counts as lost (default 500)\n"
          "  --seed N           random seed (default 1)\n"
          "\n"
          "engine options (each also a machnet.conf key / MACHNET_* variable):\n"
          "  --config FILE, --device DEV, --ip ADDR/PREFIX, --gateway ADDR, --mtu N,\n"
          "  --mac MAC, --no-hugepages, --set KEY=VALUE (see machnet-echo(1))\n"
          "Exit status: 0 when replies came and none was lost or invalid, 1 otherwise,\n"
          "2 on bad usage.\n");
}

enum class Proto { kKv, kMemcached };

struct Slot {
  bool busy = false;
  bool measured = false;
  uint8_t op = 0;
  uint16_t gen = 0;
  uint32_t version = 0;  // SET: the version sent; GET: the lowest acceptable
  uint64_t key = 0;
  uint64_t t_sched = 0;  // latency counts from here
};

struct Stats {
  uint64_t sent = 0, done = 0, gets = 0, sets = 0, hits = 0, misses = 0;
  uint64_t lost = 0, invalid = 0, late = 0, send_errors = 0, stalls = 0;
};

class Load {
 public:
  Load(Engine& eng, UdpSocket* sock, Proto proto, uint32_t ip, uint16_t port, uint32_t window,
       uint64_t keys, uint32_t value_size, uint32_t nonce, uint64_t timeout_ns)
      : eng_(eng),
        sock_(sock),
        proto_(proto),
        ip_(ip),
        port_(port),
        slots_(window),
        free_(window),
        sent_ver_(keys, 0),
        acked_ver_(keys, 0),
        value_size_(value_size),
        nonce_(nonce),
        timeout_ns_(timeout_ns),
        tx_(2048),
        rx_(65536) {
    for (uint32_t i = 0; i < window; i++) free_[i] = window - 1 - i;
    nfree_ = window;
    gen_bits_ = 0;
    uint32_t w = 1;
    while (w < window) {
      w <<= 1;
      gen_bits_++;
    }
  }

  bool can_send() const { return nfree_ > 0; }
  uint32_t in_flight() const { return static_cast<uint32_t>(slots_.size()) - nfree_; }

  // Sends one request (frames wait for flush()): 1 sent; 0 the TX ring is
  // full (nothing sent, try after a poll); -1 an error (counted as a send
  // error, nothing in flight).
  int send(uint8_t op, uint64_t key, uint64_t t_sched, bool measured) {
    uint32_t si = free_[nfree_ - 1];
    Slot& s = slots_[si];
    uint32_t version = op == kv::kOpSet ? sent_ver_[key] + 1 : acked_ver_[key];
    uint32_t id = request_id(si, static_cast<uint16_t>(s.gen + 1));
    size_t len = 0;
    if (proto_ == Proto::kKv) {
      kv::Header h;
      h.op = op;
      h.id = id;
      h.key = key;
      if (op == kv::kOpSet) {
        h.vlen = static_cast<uint16_t>(value_size_);
        kv::fill_value(tx_.data() + kv::kHeaderLen, value_size_, key, version, nonce_);
      }
      kv::put_header(tx_.data(), h);
      len = kv::kHeaderLen + h.vlen;
    } else {
      kv::mc_put_frame(tx_.data(), static_cast<uint16_t>(id));
      char k[32];
      kv::mc_key(key, k, sizeof(k));
      char* p = reinterpret_cast<char*>(tx_.data() + kv::kMcFrameLen);
      size_t room = tx_.size() - kv::kMcFrameLen;
      int n;
      if (op == kv::kOpSet) {
        n = snprintf(p, room, "set %s 0 0 %u\r\n", k, value_size_);
        kv::fill_value(reinterpret_cast<uint8_t*>(p + n), value_size_, key, version, nonce_);
        memcpy(p + n + value_size_, "\r\n", 2);
        n += static_cast<int>(value_size_) + 2;
      } else {
        n = snprintf(p, room, "get %s\r\n", k);
      }
      len = kv::kMcFrameLen + static_cast<size_t>(n);
    }
    iovec v{tx_.data(), len};
    int rc = eng_.udp_sendv(sock_, ip_, port_, &v, 1, false);
    if (rc == -EAGAIN) return 0;
    if (rc != 0) {
      st_.send_errors++;
      if (st_.send_errors <= 5) fprintf(stderr, "machnet-kv-load: send: %s\n", strerror(-rc));
      return -1;  // the slot stays free
    }
    nfree_--;
    s.busy = true;
    s.gen++;
    s.op = op;
    s.key = key;
    s.version = version;
    s.t_sched = t_sched;
    s.measured = measured;
    if (op == kv::kOpSet) sent_ver_[key] = version;
    st_.sent++;
    return 1;
  }

  void flush() { eng_.flush_tx(); }

  // Takes every reply waiting; records latencies of measured ones.
  void receive(kv::Histogram* hist) {
    uint32_t ip;
    uint16_t port;
    ssize_t n;
    while ((n = eng_.udp_recvfrom(sock_, rx_.data(), rx_.size(), &ip, &port)) >= 0) {
      uint64_t now = eng_.now_ns();
      if (ip != ip_ || port != port_) {
        st_.invalid++;
        continue;
      }
      if (proto_ == Proto::kKv)
        on_kv_reply(static_cast<size_t>(n), now, hist);
      else
        on_mc_reply(static_cast<size_t>(n), now, hist);
    }
  }

  // Requests older than the timeout count as lost; their slots are reused.
  // Called only after a poll that found nothing: replies that arrived while
  // this process was not running are taken first.
  void expire(uint64_t now) {
    for (uint32_t i = 0; i < slots_.size(); i++) {
      Slot& s = slots_[i];
      if (s.busy && now - s.t_sched > timeout_ns_ && now > s.t_sched) {
        st_.lost++;
        if (st_.lost <= 5)
          fprintf(stderr, "machnet-kv-load: %s of key %" PRIu64 " lost\n",
                  s.op == kv::kOpSet ? "SET" : "GET", s.key);
        release(i);
      }
    }
  }

  Stats& stats() { return st_; }

 private:
  uint32_t request_id(uint32_t slot, uint16_t gen) const {
    if (proto_ == Proto::kMemcached)
      return (slot | (static_cast<uint32_t>(gen) << gen_bits_)) & 0xffff;
    return slot | (static_cast<uint32_t>(gen) << 16);
  }
  // The slot a reply id names, or -1 when it is no request in flight (a late
  // reply to a request already counted lost).
  int64_t slot_of(uint32_t id) const {
    uint32_t si = proto_ == Proto::kMemcached ? id & ((1u << gen_bits_) - 1) : id & 0xffff;
    if (si >= slots_.size() || !slots_[si].busy || request_id(si, slots_[si].gen) != id) return -1;
    return si;
  }
  void release(uint32_t si) {
    slots_[si].busy = false;
    free_[nfree_++] = si;
  }
  void bad(const char* why, const Slot& s) {
    st_.invalid++;
    if (st_.invalid <= 5)
      fprintf(stderr, "machnet-kv-load: invalid reply to %s of key %" PRIu64 ": %s\n",
              s.op == kv::kOpSet ? "SET" : "GET", s.key, why);
  }
  // A GET reply's value: its version must lie between what was acknowledged
  // before the GET and what has been sent since.
  void check_get(const Slot& s, const uint8_t* v, size_t len) {
    int64_t ver = len == value_size_ ? kv::check_value(v, len, s.key, nonce_) : -1;
    if (ver < 0)
      bad("value is no value stored for this key", s);
    else if (ver < s.version || ver > sent_ver_[s.key])
      bad("stale or future version", s);
    else
      st_.hits++;
  }
  void complete(uint32_t si, uint64_t now, kv::Histogram* hist) {
    Slot& s = slots_[si];
    if (s.op == kv::kOpGet)
      st_.gets++;
    else
      st_.sets++;
    st_.done++;
    if (s.measured) hist->add(now - s.t_sched);
    release(si);
  }
  void on_kv_reply(size_t n, uint64_t now, kv::Histogram* hist) {
    kv::Header h;
    if (!kv::get_header(rx_.data(), n, &h)) {
      st_.invalid++;
      return;
    }
    int64_t si = slot_of(h.id);
    if (si < 0) {
      st_.late++;
      return;
    }
    Slot& s = slots_[si];
    if (h.op != (s.op | kv::kReplyBit) || h.key != s.key || n != kv::kHeaderLen + h.vlen) {
      bad("header does not match the request", s);
    } else if (s.op == kv::kOpSet) {
      if (h.status != kv::kOk)
        bad("SET refused", s);
      else if (acked_ver_[s.key] < s.version)
        acked_ver_[s.key] = s.version;
    } else if (h.status == kv::kNotFound) {
      st_.misses++;
      if (s.version != 0) bad("NOT_FOUND after a SET was acknowledged", s);
    } else if (h.status != kv::kOk) {
      bad("GET failed", s);
    } else {
      check_get(s, rx_.data() + kv::kHeaderLen, h.vlen);
    }
    complete(static_cast<uint32_t>(si), now, hist);
  }
  void on_mc_reply(size_t n, uint64_t now, kv::Histogram* hist) {
    uint16_t rid;
    if (!kv::mc_get_frame(rx_.data(), n, &rid)) {
      st_.invalid++;
      return;
    }
    int64_t si = slot_of(rid);
    if (si < 0) {
      st_.late++;
      return;
    }
    Slot& s = slots_[si];
    const char* p = reinterpret_cast<const char*>(rx_.data() + kv::kMcFrameLen);
    size_t len = n - kv::kMcFrameLen;
    auto is = [&](const char* lit) {
      size_t l = strlen(lit);
      return len == l && memcmp(p, lit, l) == 0;
    };
    if (s.op == kv::kOpSet) {
      if (!is("STORED\r\n"))
        bad("SET not STORED", s);
      else if (acked_ver_[s.key] < s.version)
        acked_ver_[s.key] = s.version;
    } else if (is("END\r\n")) {
      st_.misses++;
      if (s.version != 0) bad("miss after a SET was acknowledged", s);
    } else {
      // VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n
      char k[32], line[96];
      kv::mc_key(s.key, k, sizeof(k));
      int hl = snprintf(line, sizeof(line), "VALUE %s 0 %u\r\n", k, value_size_);
      size_t want = static_cast<size_t>(hl) + value_size_ + 7;
      if (len != want || memcmp(p, line, static_cast<size_t>(hl)) != 0 ||
          memcmp(p + hl + value_size_, "\r\nEND\r\n", 7) != 0)
        bad("malformed VALUE reply", s);
      else
        check_get(s, reinterpret_cast<const uint8_t*>(p + hl), value_size_);
    }
    complete(static_cast<uint32_t>(si), now, hist);
  }

  Engine& eng_;
  UdpSocket* sock_;
  Proto proto_;
  uint32_t ip_;
  uint16_t port_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  uint32_t nfree_ = 0;
  uint32_t gen_bits_;
  std::vector<uint32_t> sent_ver_, acked_ver_;
  uint32_t value_size_, nonce_;
  uint64_t timeout_ns_;
  std::vector<uint8_t> tx_, rx_;
  Stats st_;
};

}  // namespace

constexpr const char* kProg = "machnet-kv-load";

int main(int argc, char** argv) {
  machnet::cli::EngineOptions engine_opts;
  std::string server;
  Proto proto = Proto::kKv;
  unsigned long port = 0, window = 32, keys = 10000, value_size = 32, timeout_ms = 500, seed = 1;
  double duration = 2, rate = 0, zipf = 0.99, get_ratio = 0.9;
  bool populate = true;
  enum {
    kServer = 256,
    kProtocol,
    kPort,
    kDuration,
    kWindow,
    kRate,
    kKeys,
    kZipf,
    kGetRatio,
    kValueSize,
    kNoPopulate,
    kTimeout,
    kSeed
  };
  const std::vector<option> opts =
      machnet::cli::with_engine_options({{"server", required_argument, nullptr, kServer},
                                         {"protocol", required_argument, nullptr, kProtocol},
                                         {"port", required_argument, nullptr, kPort},
                                         {"duration", required_argument, nullptr, kDuration},
                                         {"window", required_argument, nullptr, kWindow},
                                         {"rate", required_argument, nullptr, kRate},
                                         {"keys", required_argument, nullptr, kKeys},
                                         {"zipf", required_argument, nullptr, kZipf},
                                         {"get-ratio", required_argument, nullptr, kGetRatio},
                                         {"value-size", required_argument, nullptr, kValueSize},
                                         {"no-populate", no_argument, nullptr, kNoPopulate},
                                         {"timeout-ms", required_argument, nullptr, kTimeout},
                                         {"seed", required_argument, nullptr, kSeed},
                                         {"help", no_argument, nullptr, 'h'}});
  int c;
  while ((c = getopt_long(argc, argv, "h", opts.data(), nullptr)) != -1) {
    int engine = machnet::cli::engine_option(c, "machnet-kv-load", optarg, &engine_opts);
    if (engine < 0) return 2;
    if (engine > 0) continue;
    switch (c) {
      case kServer:
        server = optarg;
        break;
      case kProtocol:
        if (strcmp(optarg, "kv") == 0) {
          proto = Proto::kKv;
        } else if (strcmp(optarg, "memcached") == 0) {
          proto = Proto::kMemcached;
        } else {
          fprintf(stderr, "machnet-kv-load: --protocol is kv or memcached, got '%s'\n", optarg);
          return 2;
        }
        break;
      case kPort:
        if (!machnet::cli::number(kProg, "--port", optarg, 0, 65535, &port)) return 2;
        break;
      case kDuration:
        if (!machnet::cli::real(kProg, "--duration", optarg, 0.001, 86400, &duration)) return 2;
        break;
      case kWindow:
        if (!machnet::cli::number(kProg, "--window", optarg, 1, 4096, &window)) return 2;
        break;
      case kRate:
        if (!machnet::cli::real(kProg, "--rate", optarg, 0, 1e9, &rate)) return 2;
        break;
      case kKeys:
        if (!machnet::cli::number(kProg, "--keys", optarg, 1, 1UL << 24, &keys)) return 2;
        break;
      case kZipf:
        if (!machnet::cli::real(kProg, "--zipf", optarg, 0, 10, &zipf)) return 2;
        break;
      case kGetRatio:
        if (!machnet::cli::real(kProg, "--get-ratio", optarg, 0, 1, &get_ratio)) return 2;
        break;
      case kValueSize:
        if (!machnet::cli::number(kProg, "--value-size", optarg, kv::kMinValue, 1400, &value_size))
          return 2;
        break;
      case kNoPopulate:
        populate = false;
        break;
      case kTimeout:
        if (!machnet::cli::number(kProg, "--timeout-ms", optarg, 1, 60000, &timeout_ms)) return 2;
        break;
      case kSeed:
        if (!machnet::cli::number(kProg, "--seed", optarg, 0, ~0UL, &seed)) return 2;
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "machnet-kv-load: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  uint32_t sip = 0;
  uint16_t sport = 0;
  if (kv::parse_endpoint(server, &sip, &sport) != 0) {
    fprintf(stderr, "machnet-kv-load: --server expects IP:PORT, got '%s'\n", server.c_str());
    return 2;
  }
  if (proto == Proto::kMemcached && window > 1024) {
    fprintf(stderr, "machnet-kv-load: --window is at most 1024 with memcached (16-bit ids)\n");
    return 2;
  }
  Config cfg;
  EngineConfig ec;
  std::string err;
  if (!machnet::cli::load_engine_config("machnet-kv-load", engine_opts, &cfg, &ec)) return 2;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  kv::Zipf zipf_keys(keys, zipf, seed);
  std::unique_ptr<Engine> eng = Engine::create(ec, &err);
  if (!eng) {
    fprintf(stderr, "machnet-kv-load: %s\n", err.c_str());
    return 1;
  }
  printf("machnet-kv-load: engine up: %s\n", eng->describe().c_str());
  UdpSocket* sock = nullptr;
  int rc = eng->udp_bind(static_cast<uint16_t>(port), &sock);
  if (rc != 0) {
    fprintf(stderr, "machnet-kv-load: bind port %lu: %s\n", port, strerror(-rc));
    return 1;
  }
  uint32_t nonce = static_cast<uint32_t>(eng->now_ns() ^ (static_cast<uint64_t>(getpid()) << 20));
  Load load(*eng, sock, proto, sip, sport, static_cast<uint32_t>(window), keys,
            static_cast<uint32_t>(value_size), nonce, timeout_ms * 1'000'000);
  kv::Histogram hist;
  const uint64_t timeout_ns = timeout_ms * 1'000'000;

  // Populate: every key once, window-limited, not measured.
  if (populate) {
    uint64_t next_key = 0;
    uint64_t last_expire = eng->now_ns();
    while (!g_stop && (next_key < keys || load.in_flight() > 0)) {
      size_t got = eng->poll();
      load.receive(&hist);
      uint64_t now = eng->now_ns();
      // A key whose SET failed to go out (an error, counted) is not retried.
      int r;
      while (next_key < keys && load.can_send() &&
             (r = load.send(kv::kOpSet, next_key, now, false)) != 0) {
        next_key++;
        if (r < 0) break;
      }
      load.flush();
      if (got == 0 && now - last_expire > 1'000'000) {
        load.expire(now);
        last_expire = now;
      }
    }
    Stats& p = load.stats();
    printf("machnet-kv-load: populated %lu keys (lost %" PRIu64 ", invalid %" PRIu64 ")\n", keys,
           p.lost, p.invalid);
  }
  Stats base = load.stats();

  // Measured phase.
  const uint64_t start = eng->now_ns();
  const uint64_t end = start + static_cast<uint64_t>(duration * 1e9);
  const double interval = rate > 0 ? 1e9 / rate : 0;
  double next_ns = static_cast<double>(start);
  uint64_t last_expire = start;
  bool was_stalled = false;
  while (!g_stop) {
    size_t got = eng->poll();
    load.receive(&hist);
    uint64_t now = eng->now_ns();
    if (now >= end) break;
    // Sends due: all the window allows (rate 0), or those whose time came.
    while (rate == 0 || next_ns <= static_cast<double>(now)) {
      if (!load.can_send()) {
        if (rate > 0 && !was_stalled) load.stats().stalls++;
        was_stalled = true;
        break;
      }
      was_stalled = false;
      uint8_t op = zipf_keys.uniform() < get_ratio ? kv::kOpGet : kv::kOpSet;
      uint64_t sched = rate > 0 ? static_cast<uint64_t>(next_ns) : now;
      int r = load.send(op, zipf_keys.next(), sched, true);
      if (r == 0) break;  // TX ring full: after the next poll
      if (rate > 0) next_ns += interval;
      if (r < 0) break;  // an error (counted): poll before trying again
    }
    load.flush();
    if (got == 0 && now - last_expire > 1'000'000) {
      load.expire(now);
      last_expire = now;
    }
  }
  const uint64_t measured_end = eng->now_ns();
  // Drain: replies to what is still in flight count, until the timeout.
  uint64_t drain_end = measured_end + timeout_ns + 1'000'000;
  while (!g_stop && load.in_flight() > 0 && eng->now_ns() < drain_end) {
    eng->poll();
    load.receive(&hist);
  }
  load.expire(~uint64_t{0} / 2);  // whatever is left is lost

  Stats s = load.stats();
  double secs = static_cast<double>(measured_end - start) / 1e9;
  uint64_t done = s.done - base.done;
  printf(
      "machnet-kv-load: %s %s, %.2f s, window %lu, rate %s, keys %lu zipf %.2f, get %.2f, "
      "value %lu B\n",
      proto == Proto::kKv ? "kv" : "memcached", server.c_str(), secs, window,
      rate > 0 ? std::to_string(static_cast<uint64_t>(rate)).c_str() : "max", keys, zipf, get_ratio,
      value_size);
  printf("machnet-kv-load: requests %" PRIu64 " (gets %" PRIu64 " hits %" PRIu64 " misses %" PRIu64
         ", sets %" PRIu64 "), lost %" PRIu64 ", invalid %" PRIu64 ", late %" PRIu64
         ", send errors %" PRIu64 ", window stalls %" PRIu64 "\n",
         done, s.gets - base.gets, s.hits - base.hits, s.misses - base.misses, s.sets - base.sets,
         s.lost, s.invalid, s.late, s.send_errors, s.stalls);
  printf("kv_rps %.0f p50_us %.2f p99_us %.2f p999_us %.2f max_us %.2f\n",
         secs > 0 ? static_cast<double>(hist.count()) / secs : 0, hist.percentile_us(50),
         hist.percentile_us(99), hist.percentile_us(99.9), hist.max_us());
  eng->print_counters(stdout);
  fflush(stdout);
  eng->udp_close(sock);
  return (done > 0 && s.lost == 0 && s.invalid == 0 && s.send_errors == 0) ? 0 : 1;
}
