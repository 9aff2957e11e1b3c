#include "common/config.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace machnet {
namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) b++;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) e--;
  return s.substr(b, e - b);
}

bool valid_key(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

}  // namespace

bool Config::parse(const std::string& text, const std::string& path, std::string* err) {
  std::istringstream in(text);
  std::string line, section;
  int lineno = 0;
  while (std::getline(in, line)) {
    lineno++;
    std::string where = path + ":" + std::to_string(lineno);
    // A '#' starts a comment anywhere except inside a value that needs it:
    // no value here needs one, so keep the rule simple.
    auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    line = trim(line);
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']') {
        *err = where + ": unterminated section header '" + line + "'";
        return false;
      }
      section = trim(line.substr(1, line.size() - 2));
      if (!valid_key(section)) {
        *err = where + ": bad section name '" + section + "'";
        return false;
      }
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      *err = where + ": expected 'key = value', got '" + line + "'";
      return false;
    }
    std::string key = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    if (!valid_key(key)) {
      *err = where + ": bad key '" + key + "'";
      return false;
    }
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    if (!section.empty()) key = section + "." + key;
    entries_[key] = Entry{value, where};
  }
  return true;
}

bool Config::load_file(const std::string& path, std::string* err) {
  std::ifstream f(path);
  if (!f) {
    *err = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path, err);
}

std::string Config::env_name(const std::string& key) {
  std::string n = "MACHNET_";
  for (char c : key) n += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(c));
  return n;
}

void Config::apply_env(const std::vector<std::string>& known) {
  for (const auto& k : known) {
    std::string n = env_name(k);
    const char* v = std::getenv(n.c_str());
    if (v != nullptr) entries_[k] = Entry{v, "env " + n};
  }
}

void Config::set(const std::string& key, const std::string& value, const std::string& origin) {
  entries_[key] = Entry{value, origin};
}

const Config::Entry* Config::find(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string Config::get(const std::string& key, const std::string& fallback) const {
  const Entry* e = find(key);
  return e ? e->value : fallback;
}

bool Config::get_u64(const std::string& key, uint64_t min, uint64_t max, uint64_t* out,
                     std::string* err) const {
  const Entry* e = find(key);
  if (!e) return true;
  const char* s = e->value.c_str();
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (e->value.empty() || e->value[0] == '-' || errno != 0 || *end != '\0' || v < min || v > max) {
    *err = e->origin + ": " + key + ": expected an integer in [" + std::to_string(min) + ", " +
           std::to_string(max) + "], got '" + e->value + "'";
    return false;
  }
  *out = v;
  return true;
}

bool Config::get_double(const std::string& key, double min, double max, double* out,
                        std::string* err) const {
  const Entry* e = find(key);
  if (!e) return true;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(e->value.c_str(), &end);
  if (e->value.empty() || errno != 0 || *end != '\0' || !(v >= min && v <= max)) {
    *err = e->origin + ": " + key + ": expected a number in [" + std::to_string(min) + ", " +
           std::to_string(max) + "], got '" + e->value + "'";
    return false;
  }
  *out = v;
  return true;
}

bool Config::get_bool(const std::string& key, bool* out, std::string* err) const {
  const Entry* e = find(key);
  if (!e) return true;
  const std::string& v = e->value;
  if (v == "1" || v == "yes" || v == "true" || v == "on") {
    *out = true;
  } else if (v == "0" || v == "no" || v == "false" || v == "off") {
    *out = false;
  } else {
    *err = e->origin + ": " + key + ": expected yes/no, got '" + v + "'";
    return false;
  }
  return true;
}

std::vector<std::string> Config::unknown_keys(const std::vector<std::string>& known,
                                              std::string* first_origin) const {
  std::vector<std::string> out;
  for (const auto& [k, e] : entries_) {
    bool found = false;
    for (const auto& kk : known) found = found || kk == k;
    if (!found) {
      if (out.empty() && first_origin) *first_origin = e.origin;
      out.push_back(k);
    }
  }
  return out;
}

}  // namespace machnet
