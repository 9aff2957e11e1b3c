#include "common/config.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "common/conf.h"

namespace machnet {
namespace {

// An mn_conf freed on scope exit.
struct Conf {
  mn_conf c = MN_CONF_INIT;
  Conf() = default;
  Conf(const Conf&) = delete;
  Conf& operator=(const Conf&) = delete;
  ~Conf() { mn_conf_free(&c); }
};

void copy_into(const mn_conf& c, std::map<std::string, Config::Entry>* out) {
  for (size_t i = 0; i < c.n; i++) (*out)[c.v[i].key] = Config::Entry{c.v[i].value, c.v[i].origin};
}

}  // namespace

bool Config::finish(mn_conf* c, bool ok, const std::vector<Override>& overrides, char* buf,
                    size_t len, std::string* err) {
  ok = ok && mn_conf_apply_env(c, environ, MN_CONF_CHECK, buf, len) == 0;
  for (size_t i = 0; ok && i < overrides.size(); i++) {
    const Override& o = overrides[i];
    ok = mn_conf_set(c, o.key.c_str(), o.value.c_str(), o.origin.c_str(), MN_CONF_CHECK, buf,
                     len) == 0;
  }
  ok = ok && mn_conf_check_relations(c, buf, len) == 0;
  if (!ok) {
    *err = buf;
    return false;
  }
  entries_.clear();
  copy_into(*c, &entries_);
  return true;
}

bool Config::load(const std::string& path, const std::vector<Override>& overrides,
                  std::string* err) {
  Conf c;
  char buf[1024];
  bool ok =
      path.empty() || mn_conf_load_file(&c.c, path.c_str(), MN_CONF_CHECK, buf, sizeof(buf)) == 0;
  return finish(&c.c, ok, overrides, buf, sizeof(buf), err);
}

bool Config::load_text(const std::string& text, const std::string& path,
                       const std::vector<Override>& overrides, std::string* err) {
  Conf c;
  char buf[1024];
  bool ok = mn_conf_parse(&c.c, text.data(), text.size(), path.c_str(), MN_CONF_CHECK, buf,
                          sizeof(buf)) == 0;
  return finish(&c.c, ok, overrides, buf, sizeof(buf), err);
}

bool Config::parse(const std::string& text, const std::string& path, std::string* err) {
  Conf c;
  char buf[1024];
  int rc = mn_conf_parse(&c.c, text.data(), text.size(), path.c_str(), 0, buf, sizeof(buf));
  copy_into(c.c, &entries_);
  if (rc != 0) *err = buf;
  return rc == 0;
}

bool Config::load_file(const std::string& path, std::string* err) {
  Conf c;
  char buf[1024];
  int rc = mn_conf_load_file(&c.c, path.c_str(), MN_CONF_CHECK, buf, sizeof(buf));
  copy_into(c.c, &entries_);
  if (rc != 0) *err = buf;
  return rc == 0;
}

std::string Config::env_name(const std::string& key) {
  std::string n(key.size() + 16, '\0');
  mn_conf_env_name(key.c_str(), &n[0], n.size());
  n.resize(n.find('\0'));
  return n;
}

const std::vector<std::string>& Config::known_keys() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> v;
    size_t n = 0;
    const mn_conf_key* s = mn_conf_schema(&n);
    for (size_t i = 0; i < n; i++) {
      if (s[i].type != MN_CONF_RULE) v.push_back(s[i].name);
    }
    return v;
  }();
  return k;
}

namespace {

// The schema entry of `key` with a default of one of `types`, or abort.
const mn_conf_key* schema_key(const char* key, std::initializer_list<mn_conf_type> types) {
  const mn_conf_key* k = mn_conf_lookup(key);
  bool typed = false;
  for (mn_conf_type t : types) typed = typed || (k != nullptr && k->def != nullptr && k->type == t);
  if (!typed) {
    std::fprintf(stderr, "machnet: no default of that type in the schema for '%s'\n", key);
    std::abort();
  }
  return k;
}

}  // namespace

std::string Config::default_text(const char* key) {
  const mn_conf_key* k = mn_conf_lookup(key);
  if (k == nullptr) schema_key(key, {});
  return k->def ? k->def : "";
}

uint64_t Config::default_uint(const char* key) {
  const mn_conf_key* k = schema_key(key, {MN_CONF_UINT, MN_CONF_MODE});
  uint64_t v = 0;
  char why[200];
  if (k->type == MN_CONF_MODE) return std::strtoull(k->def, nullptr, 8);
  mn_conf_uint(k->def, k->min, k->max, &v, why, sizeof(why));
  return v;
}

bool Config::default_bool(const char* key) {
  int v = 0;
  mn_conf_bool(schema_key(key, {MN_CONF_BOOL})->def, &v);
  return v != 0;
}

double Config::default_real(const char* key) {
  const mn_conf_key* k = schema_key(key, {MN_CONF_REAL});
  double v = 0;
  char why[200];
  mn_conf_real(k->def, k->rmin, k->rmax, &v, why, sizeof(why));
  return v;
}

int Config::default_word(const char* key) {
  const mn_conf_key* k = schema_key(key, {MN_CONF_WORD});
  int v = 0;
  mn_conf_word(k, k->def, &v);
  return v;
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

bool Config::fail(const Entry& e, const std::string& key, const char* why, std::string* err) const {
  *err = e.origin + ": " + key + ": " + why;
  return false;
}

bool Config::check(const std::string& key, std::string* err) const {
  const Entry* e = find(key);
  if (e == nullptr) return true;
  char why[1024];
  if (mn_conf_check(key.c_str(), e->value.c_str(), e->origin.c_str(), why, sizeof(why)) == 0)
    return true;
  *err = why;
  return false;
}

bool Config::get_uint(const std::string& key, uint64_t* out, std::string* err) const {
  const mn_conf_key* k = mn_conf_lookup(key.c_str());
  if (k == nullptr || k->type != MN_CONF_UINT) {
    *err = key + ": not an integer key of the schema";
    return false;
  }
  return get_u64(key, k->min, k->max, out, err);
}

bool Config::get_real(const std::string& key, double* out, std::string* err) const {
  const mn_conf_key* k = mn_conf_lookup(key.c_str());
  if (k == nullptr || k->type != MN_CONF_REAL) {
    *err = key + ": not a number key of the schema";
    return false;
  }
  return get_double(key, k->rmin, k->rmax, out, err);
}

bool Config::get_word(const std::string& key, int* out, std::string* err) const {
  const mn_conf_key* k = mn_conf_lookup(key.c_str());
  if (k == nullptr || k->words == nullptr) {
    *err = key + ": not a key of words in the schema";
    return false;
  }
  const Entry* e = find(key);
  if (e == nullptr) return true;
  if (!check(key, err)) return false;
  return mn_conf_word(k, e->value.c_str(), out) == 0;
}

bool Config::get_u64(const std::string& key, uint64_t min, uint64_t max, uint64_t* out,
                     std::string* err) const {
  const Entry* e = find(key);
  if (!e) return true;
  char why[512];
  uint64_t v = 0;
  if (mn_conf_uint(e->value.c_str(), min, max, &v, why, sizeof(why)) != 0)
    return fail(*e, key, why, err);
  *out = v;
  return true;
}

bool Config::get_double(const std::string& key, double min, double max, double* out,
                        std::string* err) const {
  const Entry* e = find(key);
  if (!e) return true;
  char why[512];
  double v = 0;
  if (mn_conf_real(e->value.c_str(), min, max, &v, why, sizeof(why)) != 0)
    return fail(*e, key, why, err);
  *out = v;
  return true;
}

bool Config::get_bool(const std::string& key, bool* out, std::string* err) const {
  const Entry* e = find(key);
  if (!e) return true;
  int v = 0;
  if (mn_conf_bool(e->value.c_str(), &v) != 0)
    return fail(*e, key, ("expected yes/no, got '" + e->value + "'").c_str(), err);
  *out = v != 0;
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
