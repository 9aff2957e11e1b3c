// machnet.conf for C++ readers: a thin face over common/conf.h, the one
// grammar (libinih, made strict) and the one schema the preload shim uses too,
// so every reader accepts and rejects the same files with the same message.
// "key = value" lines, '#' comments, optional [section] headers (keys inside a
// section are read as "section.key"). Every key can also be set by an
// environment variable MACHNET_<KEY> (upper case, '.' and '-' become '_'),
// which wins over the file. Errors name the file and line. See machnet.conf(5).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

struct mn_conf;  // common/conf.h

namespace machnet {

class Config {
 public:
  struct Entry {
    std::string value;
    std::string origin;  // "file:line" or "env MACHNET_X" or the override's
  };
  struct Override {
    std::string key, value;
    std::string origin;  // "option --device", "override mtu", ...
  };

  // Every reader's way in: the file at `path` (none when empty), then the
  // MACHNET_* variables, then `overrides`; every key and value checked
  // against the schema, then the rules between keys. Replaces what was set.
  // False with *err = "origin: why" at the first problem.
  bool load(const std::string& path, const std::vector<Override>& overrides, std::string* err);
  // The same with `text` as the contents of the file `path` (tests, fuzzing).
  bool load_text(const std::string& text, const std::string& path,
                 const std::vector<Override>& overrides, std::string* err);

  // The grammar alone, no schema (tests, tools with keys of their own): on a
  // malformed line returns false and sets *err to "path:line: what is wrong".
  bool parse(const std::string& text, const std::string& path, std::string* err);
  // The grammar and the schema: an unknown key or a bad value is an error.
  bool load_file(const std::string& path, std::string* err);
  // Applies MACHNET_* variables from the environment for every key in `known`.
  void apply_env(const std::vector<std::string>& known);
  void set(const std::string& key, const std::string& value, const std::string& origin);

  bool has(const std::string& key) const { return entries_.count(key) != 0; }
  const Entry* find(const std::string& key) const;
  std::string get(const std::string& key, const std::string& fallback) const;
  // The schema's verdict on `key` as set here (true when absent).
  bool check(const std::string& key, std::string* err) const;
  // Typed getters: absent keys leave *out alone; false with
  // *err = "origin: key: why" on a bad value.
  // With the range and type the schema gives the key:
  bool get_uint(const std::string& key, uint64_t* out, std::string* err) const;
  bool get_real(const std::string& key, double* out, std::string* err) const;
  // Keys of a few words (machnetd, log_level, rules.default): the word's value.
  bool get_word(const std::string& key, int* out, std::string* err) const;
  // With the caller's range:
  bool get_u64(const std::string& key, uint64_t min, uint64_t max, uint64_t* out,
               std::string* err) const;
  bool get_bool(const std::string& key, bool* out, std::string* err) const;
  bool get_double(const std::string& key, double min, double max, double* out,
                  std::string* err) const;
  // Keys present that are not in `known`: reported so a typo never goes unseen.
  std::vector<std::string> unknown_keys(const std::vector<std::string>& known,
                                        std::string* first_origin) const;

  static std::string env_name(const std::string& key);
  // Every key of the schema (rules.N not included: any number is a key).
  static const std::vector<std::string>& known_keys();

  // The schema's default of `key`, the one source of the readers' defaults
  // (their fields start from these): the text a file would give ("" when the
  // key has none), and that text as the key's type (an octal mode for
  // machnetd.socket_mode, a word's value for machnetd or rules.default). A
  // key the schema does not have, or asked as another type, is a mistake in
  // the caller: it aborts, at the first construction of the reader.
  static std::string default_text(const char* key);
  static uint64_t default_uint(const char* key);
  static bool default_bool(const char* key);
  static double default_real(const char* key);
  static int default_word(const char* key);

 private:
  bool fail(const Entry& e, const std::string& key, const char* why, std::string* err) const;
  // After the file: the environment, the overrides, the rules between keys.
  bool finish(mn_conf* c, bool ok, const std::vector<Override>& overrides, char* buf, size_t len,
              std::string* err);
  std::map<std::string, Entry> entries_;
};

}  // namespace machnet
