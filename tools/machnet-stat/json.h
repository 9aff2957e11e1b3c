// A small JSON reader for machnet-stat: what machnetd and DPDK telemetry
// write (objects, arrays, strings, numbers; true/false/null for
// completeness). Header-only, no DPDK.
#pragma once

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace machnet::stat {

struct JVal {
  enum Type { kNull, kBool, kNum, kStr, kArr, kObj } type = kNull;
  std::string text;  // string value, or the number's text
  bool b = false;
  std::vector<JVal> arr;
  std::vector<std::pair<std::string, JVal>> obj;

  const JVal& operator[](const char* key) const {
    static const JVal none;
    if (type != kObj) return none;
    for (const auto& kv : obj)
      if (kv.first == key) return kv.second;
    return none;
  }
  bool has(const char* key) const { return (*this)[key].type != kNull; }
  uint64_t u() const { return type == kNum ? std::strtoull(text.c_str(), nullptr, 10) : 0; }
  int64_t i() const { return type == kNum ? std::strtoll(text.c_str(), nullptr, 10) : 0; }
  double d() const { return type == kNum ? std::strtod(text.c_str(), nullptr) : 0; }
  const std::string& s() const { return text; }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& t) : p_(t.c_str()), end_(t.c_str() + t.size()) {}
  bool parse(JVal* out) {
    if (!value(out, 0)) return false;
    ws();
    return p_ == end_;
  }

 private:
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\t' || *p_ == '\r')) p_++;
  }
  bool lit(const char* w) {
    size_t n = std::strlen(w);
    if (static_cast<size_t>(end_ - p_) < n || std::strncmp(p_, w, n) != 0) return false;
    p_ += n;
    return true;
  }
  bool str(std::string* out) {
    if (p_ >= end_ || *p_ != '"') return false;
    p_++;
    while (p_ < end_ && *p_ != '"') {
      char c = *p_++;
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (p_ >= end_) return false;
      char e = *p_++;
      switch (e) {
        case 'n':
          *out += '\n';
          break;
        case 't':
          *out += '\t';
          break;
        case 'r':
          *out += '\r';
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'u': {
          if (end_ - p_ < 4) return false;
          unsigned v = static_cast<unsigned>(std::strtoul(std::string(p_, 4).c_str(), nullptr, 16));
          p_ += 4;
          *out += v < 0x80 ? static_cast<char>(v) : '?';
          break;
        }
        default:
          *out += e;
      }
    }
    if (p_ >= end_) return false;
    p_++;
    return true;
  }
  bool value(JVal* v, int depth) {
    if (depth > 32) return false;
    ws();
    if (p_ >= end_) return false;
    char c = *p_;
    if (c == '{') {
      v->type = JVal::kObj;
      p_++;
      ws();
      if (p_ < end_ && *p_ == '}') {
        p_++;
        return true;
      }
      for (;;) {
        ws();
        std::string k;
        if (!str(&k)) return false;
        ws();
        if (p_ >= end_ || *p_++ != ':') return false;
        JVal x;
        if (!value(&x, depth + 1)) return false;
        v->obj.emplace_back(std::move(k), std::move(x));
        ws();
        if (p_ >= end_) return false;
        if (*p_ == ',') {
          p_++;
          continue;
        }
        if (*p_++ == '}') return true;
        return false;
      }
    }
    if (c == '[') {
      v->type = JVal::kArr;
      p_++;
      ws();
      if (p_ < end_ && *p_ == ']') {
        p_++;
        return true;
      }
      for (;;) {
        JVal x;
        if (!value(&x, depth + 1)) return false;
        v->arr.push_back(std::move(x));
        ws();
        if (p_ >= end_) return false;
        if (*p_ == ',') {
          p_++;
          continue;
        }
        if (*p_++ == ']') return true;
        return false;
      }
    }
    if (c == '"') {
      v->type = JVal::kStr;
      return str(&v->text);
    }
    if (lit("true")) {
      v->type = JVal::kBool;
      v->b = true;
      return true;
    }
    if (lit("false")) {
      v->type = JVal::kBool;
      return true;
    }
    if (lit("null")) return true;
    const char* s = p_;
    while (p_ < end_ && (std::isdigit(static_cast<unsigned char>(*p_)) || *p_ == '-' ||
                         *p_ == '+' || *p_ == '.' || *p_ == 'e' || *p_ == 'E'))
      p_++;
    if (p_ == s) return false;
    v->type = JVal::kNum;
    v->text.assign(s, p_);
    return true;
  }
  const char* p_;
  const char* end_;
};

}  // namespace machnet::stat
