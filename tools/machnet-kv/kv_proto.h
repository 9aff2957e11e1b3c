// The KV-store benchmark's shared pieces (machnet-kv-server, machnet-kv-load):
// the binary request/reply format, memcached's UDP framing, the server's
// fixed-size store, the generator's Zipf sampler and latency histogram, and
// "IP:PORT" parsing. DPDK-free: the unit tests link it.
//
// Binary format (all fields big-endian), one datagram per request and reply:
//   offset 0  u16 magic   0x4b56 ("KV")
//          2  u8  op      request: 1 GET, 2 SET; reply: op | 0x80
//          3  u8  status  request: 0; reply: kv_status
//          4  u32 id      chosen by the client, echoed in the reply
//          8  u64 key
//         16  u16 vlen    value length (SET request; GET reply on a hit)
//         18  u16 reserved (0)
//         20  value (vlen bytes)
// A datagram shorter than 20 bytes or with another magic is no request: the
// server drops it without a reply (and counts it). A SET reply and a GET
// miss carry no value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace machnet::kv {

constexpr uint16_t kMagic = 0x4b56;
constexpr size_t kHeaderLen = 20;
constexpr uint8_t kOpGet = 1;
constexpr uint8_t kOpSet = 2;
constexpr uint8_t kReplyBit = 0x80;

enum KvStatus : uint8_t {
  kOk = 0,
  kNotFound = 1,
  kBadRequest = 2,  // unknown op, or a length that disagrees with the datagram
  kTooLarge = 3,    // SET value over the server's --max-value
  kFull = 4,        // SET of a new key with --keys keys stored
};

struct Header {
  uint8_t op = 0;
  uint8_t status = 0;
  uint32_t id = 0;
  uint64_t key = 0;
  uint16_t vlen = 0;
};

// Writes the 20-byte header to out (which must hold kHeaderLen bytes).
void put_header(uint8_t* out, const Header& h);
// Reads a header; false if len < kHeaderLen or the magic is wrong.
bool get_header(const uint8_t* in, size_t len, Header* h);

// "A.B.C.D:PORT" (port 1..65535; with allow_zero, 0 too). Returns 0, or
// -EINVAL on anything else (no port, a non-digit, out of range, bad address).
int parse_endpoint(const std::string& text, uint32_t* host_order_ip, uint16_t* port,
                   bool allow_zero = false);

// The server's store: up to max_keys keys with values of up to max_value
// bytes, all memory allocated up front (open addressing, linear probing; no
// deletes). Not thread-safe.
class Store {
 public:
  Store(uint32_t max_keys, uint32_t max_value);
  // Returns the stored value's bytes and length, or nullptr when absent.
  const uint8_t* get(uint64_t key, uint16_t* len) const;
  KvStatus set(uint64_t key, const uint8_t* value, uint16_t len);
  uint32_t size() const { return used_; }
  uint32_t max_value() const { return max_value_; }

 private:
  size_t find(uint64_t key) const;  // its slot, or the empty slot it would take
  uint32_t max_keys_, max_value_;
  size_t mask_;
  uint32_t used_ = 0;
  std::vector<uint64_t> keys_;
  std::vector<uint16_t> lens_;
  std::vector<uint8_t> present_;
  std::vector<uint32_t> vidx_;  // where a slot's value is in values_
  std::vector<uint8_t> values_;
};

struct ServerCounters {
  uint64_t gets = 0, sets = 0, hits = 0, misses = 0, errors = 0, dropped = 0;
};

// Answers one request datagram: writes the reply to out (out_cap bytes, at
// least kHeaderLen + max_value) and returns its length, or 0 when the
// datagram is no request (no reply is sent).
size_t handle(Store& store, const uint8_t* req, size_t len, uint8_t* out, size_t out_cap,
              ServerCounters* c);

// ---- memcached's UDP protocol ---------------------------------------------
// Each datagram starts with an 8-byte frame header: request id, sequence
// number, datagram count, reserved (u16 each, big-endian); then ASCII.
constexpr size_t kMcFrameLen = 8;
void mc_put_frame(uint8_t* out, uint16_t request_id);
// Parses a reply datagram's frame; false when shorter than 8 bytes or not
// the only datagram of its reply (seq 0 of 1: the generator's values fit).
bool mc_get_frame(const uint8_t* in, size_t len, uint16_t* request_id);

// The key "kv:<decimal>" written to out; returns its length.
size_t mc_key(uint64_t key, char* out, size_t cap);

// The value bytes the load generator stores: a function of (key, version,
// run nonce), printable ASCII so that both protocols carry them as they are.
// The first 16 bytes are the nonce and version in hex. len >= 16.
void fill_value(uint8_t* out, size_t len, uint64_t key, uint32_t version, uint32_t nonce);
// Checks value bytes against fill_value: returns the version they carry, or
// -1 when they are not a value of (key, nonce) at all.
int64_t check_value(const uint8_t* v, size_t len, uint64_t key, uint32_t nonce);
constexpr size_t kMinValue = 16;

// Keys 0..n-1 with P(rank k) proportional to 1/(k+1)^s (s = 0: uniform).
// The CDF is computed once; next() is a binary search.
class Zipf {
 public:
  Zipf(uint64_t n, double s, uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1)

 private:
  uint64_t rng();
  std::vector<double> cdf_;
  uint64_t state_;
};

// Latency histogram: 50 ns buckets up to 50 ms, the rest in one overflow
// bucket (reported as the maximum). Allocated once; add() is O(1).
class Histogram {
 public:
  Histogram();
  void add(uint64_t ns);
  uint64_t count() const { return count_; }
  // The p-th percentile (0..100) in microseconds: the upper bound of the
  // bucket holding the sample of that rank (0 when empty).
  double percentile_us(double p) const;
  double max_us() const { return static_cast<double>(max_) / 1000.0; }

 private:
  static constexpr uint64_t kBucketNs = 50;
  static constexpr size_t kBuckets = 1000000;
  std::vector<uint32_t> buckets_;
  uint64_t overflow_ = 0, count_ = 0, max_ = 0;
};

}  // namespace machnet::kv
