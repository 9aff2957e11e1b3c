// machnet.conf: "key = value" lines, '#' comments, optional [section] headers
// (keys inside a section are read as "section.key"). Every key can also be set
// by an environment variable MACHNET_<KEY> (upper case, '.' and '-' become '_'),
// which wins over the file. Errors name the file and line.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace machnet {

class Config {
 public:
  struct Entry {
    std::string value;
    std::string origin;  // "file:line" or "env MACHNET_X" or "command line"
  };

  // Parses text (the contents of `path`). On a malformed line returns false
  // and sets *err to "path:line: what is wrong".
  bool parse(const std::string& text, const std::string& path, std::string* err);
  bool load_file(const std::string& path, std::string* err);
  // Applies MACHNET_* variables from the environment for every key in `known`.
  void apply_env(const std::vector<std::string>& known);
  void set(const std::string& key, const std::string& value, const std::string& origin);

  bool has(const std::string& key) const { return entries_.count(key) != 0; }
  const Entry* find(const std::string& key) const;
  std::string get(const std::string& key, const std::string& fallback) const;
  // Typed getters: false with *err = "origin: key: why" on a bad value.
  bool get_u64(const std::string& key, uint64_t min, uint64_t max, uint64_t* out,
               std::string* err) const;
  bool get_bool(const std::string& key, bool* out, std::string* err) const;
  bool get_double(const std::string& key, double min, double max, double* out,
                  std::string* err) const;
  // Keys present that are not in `known`: reported so a typo never goes unseen.
  std::vector<std::string> unknown_keys(const std::vector<std::string>& known,
                                        std::string* first_origin) const;

  static std::string env_name(const std::string& key);

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace machnet
