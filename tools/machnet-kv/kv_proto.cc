#include "machnet-kv/kv_proto.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace machnet::kv {

namespace {

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint16_t get16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
uint32_t get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v = (v << 8) | p[i];
  return v;
}
void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}
uint64_t get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

const char kHex[] = "0123456789abcdef";

}  // namespace

void put_header(uint8_t* out, const Header& h) {
  put16(out, kMagic);
  out[2] = h.op;
  out[3] = h.status;
  put32(out + 4, h.id);
  put64(out + 8, h.key);
  put16(out + 16, h.vlen);
  put16(out + 18, 0);
}

bool get_header(const uint8_t* in, size_t len, Header* h) {
  if (len < kHeaderLen || get16(in) != kMagic) return false;
  h->op = in[2];
  h->status = in[3];
  h->id = get32(in + 4);
  h->key = get64(in + 8);
  h->vlen = get16(in + 16);
  return true;
}

int parse_endpoint(const std::string& text, uint32_t* host_order_ip, uint16_t* port,
                   bool allow_zero) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size() || text.size() - colon > 6)
    return -EINVAL;
  unsigned long p = 0;
  for (size_t i = colon + 1; i < text.size(); i++) {
    if (text[i] < '0' || text[i] > '9') return -EINVAL;
    p = p * 10 + static_cast<unsigned long>(text[i] - '0');
  }
  if (p > 65535 || (p == 0 && !allow_zero)) return -EINVAL;
  in_addr a{};
  if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &a) != 1) return -EINVAL;
  *host_order_ip = ntohl(a.s_addr);
  *port = static_cast<uint16_t>(p);
  return 0;
}

Store::Store(uint32_t max_keys, uint32_t max_value) : max_keys_(max_keys), max_value_(max_value) {
  size_t slots = 16;
  while (slots < static_cast<size_t>(max_keys) * 2) slots <<= 1;
  mask_ = slots - 1;
  keys_.assign(slots, 0);
  lens_.assign(slots, 0);
  present_.assign(slots, 0);
  vidx_.assign(slots, 0);
  // Values by insertion order: max_keys of them, not one per slot.
  values_.assign(static_cast<size_t>(max_keys) * max_value, 0);
}

size_t Store::find(uint64_t key) const {
  size_t i = mix(key) & mask_;
  while (present_[i] && keys_[i] != key) i = (i + 1) & mask_;
  return i;
}

const uint8_t* Store::get(uint64_t key, uint16_t* len) const {
  size_t i = find(key);
  if (!present_[i]) return nullptr;
  *len = lens_[i];
  return &values_[static_cast<size_t>(vidx_[i]) * max_value_];
}

KvStatus Store::set(uint64_t key, const uint8_t* value, uint16_t len) {
  if (len > max_value_) return kTooLarge;
  size_t i = find(key);
  if (!present_[i]) {
    if (used_ >= max_keys_) return kFull;
    present_[i] = 1;
    keys_[i] = key;
    vidx_[i] = used_++;
  }
  lens_[i] = len;
  memcpy(&values_[static_cast<size_t>(vidx_[i]) * max_value_], value, len);
  return kOk;
}

size_t handle(Store& store, const uint8_t* req, size_t len, uint8_t* out, size_t out_cap,
              ServerCounters* c) {
  Header h;
  if (!get_header(req, len, &h) || out_cap < kHeaderLen + store.max_value()) {
    c->dropped++;
    return 0;
  }
  Header r;
  r.op = static_cast<uint8_t>(h.op | kReplyBit);
  r.id = h.id;
  r.key = h.key;
  if (h.op == kOpGet && len == kHeaderLen) {
    c->gets++;
    uint16_t vlen = 0;
    const uint8_t* v = store.get(h.key, &vlen);
    if (v != nullptr) {
      c->hits++;
      r.status = kOk;
      r.vlen = vlen;
      memcpy(out + kHeaderLen, v, vlen);
    } else {
      c->misses++;
      r.status = kNotFound;
    }
  } else if (h.op == kOpSet && len == kHeaderLen + h.vlen) {
    c->sets++;
    r.status = store.set(h.key, req + kHeaderLen, h.vlen);
    if (r.status != kOk) c->errors++;
  } else {
    c->errors++;
    r.status = kBadRequest;
  }
  put_header(out, r);
  return kHeaderLen + r.vlen;
}

void mc_put_frame(uint8_t* out, uint16_t request_id) {
  put16(out, request_id);
  put16(out + 2, 0);
  put16(out + 4, 1);
  put16(out + 6, 0);
}

bool mc_get_frame(const uint8_t* in, size_t len, uint16_t* request_id) {
  if (len < kMcFrameLen || get16(in + 2) != 0 || get16(in + 4) != 1) return false;
  *request_id = get16(in);
  return true;
}

size_t mc_key(uint64_t key, char* out, size_t cap) {
  int n = snprintf(out, cap, "kv:%llu", static_cast<unsigned long long>(key));
  return n < 0 ? 0 : static_cast<size_t>(n) < cap ? static_cast<size_t>(n) : cap - 1;
}

void fill_value(uint8_t* out, size_t len, uint64_t key, uint32_t version, uint32_t nonce) {
  uint64_t tag = (static_cast<uint64_t>(nonce) << 32) | version;
  for (int i = 0; i < 16; i++) out[i] = static_cast<uint8_t>(kHex[(tag >> (60 - 4 * i)) & 15]);
  uint64_t h = mix(key ^ mix(tag));
  for (size_t i = 16; i < len; i++) {
    out[i] = static_cast<uint8_t>('a' + (h % 26));
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
  }
}

int64_t check_value(const uint8_t* v, size_t len, uint64_t key, uint32_t nonce) {
  if (len < kMinValue) return -1;
  uint64_t tag = 0;
  for (int i = 0; i < 16; i++) {
    const char* d = static_cast<const char*>(memchr(kHex, v[i], 16));
    if (d == nullptr || v[i] == 0) return -1;
    tag = (tag << 4) | static_cast<uint64_t>(d - kHex);
  }
  if (static_cast<uint32_t>(tag >> 32) != nonce) return -1;
  uint32_t version = static_cast<uint32_t>(tag);
  uint64_t h = mix(key ^ mix(tag));
  for (size_t i = 16; i < len; i++) {
    if (v[i] != static_cast<uint8_t>('a' + (h % 26))) return -1;
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
  }
  return version;
}

Zipf::Zipf(uint64_t n, double s, uint64_t seed) : cdf_(n), state_(seed ? seed : 1) {
  double sum = 0;
  for (uint64_t k = 0; k < n; k++) {
    sum += 1.0 / std::pow(static_cast<double>(k + 1), s);
    cdf_[k] = sum;
  }
  for (double& x : cdf_) x /= sum;
}

uint64_t Zipf::rng() {
  // xorshift64*
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return state_ * 2685821657736338717ULL;
}

double Zipf::uniform() {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t Zipf::next() {
  double u = uniform();
  size_t lo = 0, hi = cdf_.size() - 1;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cdf_[mid] <= u)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

Histogram::Histogram() : buckets_(kBuckets, 0) {}

void Histogram::add(uint64_t ns) {
  uint64_t b = ns / kBucketNs;
  if (b < kBuckets)
    buckets_[b]++;
  else
    overflow_++;
  count_++;
  if (ns > max_) max_ = ns;
}

double Histogram::percentile_us(double p) const {
  if (count_ == 0) return 0;
  // Nearest rank; the epsilon keeps 99.9% of 1000 at 999, not 1000.
  uint64_t rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_) / 100.0 - 1e-9));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t b = 0; b < kBuckets; b++) {
    seen += buckets_[b];
    if (seen >= rank) return static_cast<double>((b + 1) * kBucketNs) / 1000.0;
  }
  return max_us();
}

}  // namespace machnet::kv
