// The engine options of the programs that run an engine of their own
// (machnet-echo, machnet-kv-server, machnet-kv-load): --config and the
// machnet.conf keys a benchmark sets most, parsed and loaded one way for all.
#pragma once

#include <getopt.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "common/config.h"
#include "engine/engine_config.h"

namespace machnet::cli {

// getopt_long values of the engine options (a program's own start at 0x100).
enum EngineOption : int {
  kEngineConfig = 0x200,
  kEngineDevice,
  kEngineIp,
  kEngineGateway,
  kEngineMtu,
  kEngineMac,
  kEngineNoHugepages,
  kEngineSet,
};

struct EngineOptions {
  std::string config_path;                  // --config, else $MACHNET_CONFIG
  std::vector<Config::Override> overrides;  // in command-line order

  EngineOptions() {
    const char* env = std::getenv("MACHNET_CONFIG");
    if (env != nullptr) config_path = env;
  }
};

// A program's own getopt_long entries followed by the engine options and the
// terminating entry.
inline std::vector<option> with_engine_options(std::initializer_list<option> own) {
  std::vector<option> all(own);
  all.insert(all.end(), {{"config", required_argument, nullptr, kEngineConfig},
                         {"device", required_argument, nullptr, kEngineDevice},
                         {"ip", required_argument, nullptr, kEngineIp},
                         {"gateway", required_argument, nullptr, kEngineGateway},
                         {"mtu", required_argument, nullptr, kEngineMtu},
                         {"mac", required_argument, nullptr, kEngineMac},
                         {"no-hugepages", no_argument, nullptr, kEngineNoHugepages},
                         {"set", required_argument, nullptr, kEngineSet},
                         {nullptr, 0, nullptr, 0}});
  return all;
}

// For the getopt_long loop: 1 when c was an engine option (recorded in eo),
// 0 when it is not one, -1 after printing why its value is a usage error.
inline int engine_option(int c, const char* prog, const char* arg, EngineOptions* eo) {
  auto add = [&](const char* key, const char* value) {
    eo->overrides.push_back({key, value, std::string("command line --") + key});
  };
  switch (c) {
    case kEngineConfig:
      eo->config_path = arg;
      return 1;
    case kEngineDevice:
      add("device", arg);
      return 1;
    case kEngineIp:
      add("ip", arg);
      return 1;
    case kEngineGateway:
      add("gateway", arg);
      return 1;
    case kEngineMtu:
      add("mtu", arg);
      return 1;
    case kEngineMac:
      add("mac", arg);
      return 1;
    case kEngineNoHugepages:
      eo->overrides.push_back({"hugepages", "no", "command line --no-hugepages"});
      return 1;
    case kEngineSet: {
      const char* eq = std::strchr(arg, '=');
      if (eq == nullptr || eq == arg) {
        std::fprintf(stderr, "%s: --set expects KEY=VALUE, got '%s'\n", prog, arg);
        return -1;
      }
      std::string key(arg, static_cast<size_t>(eq - arg));
      eo->overrides.push_back({key, eq + 1, "command line --set " + key});
      return 1;
    }
    default:
      return 0;
  }
}

// The file, the MACHNET_* variables, then the options, checked: prints
// "prog: why" (naming the file line or the option) and returns false.
inline bool load_engine_config(const char* prog, const EngineOptions& eo, Config* cfg,
                               engine::EngineConfig* ec) {
  std::string err;
  if (!cfg->load(eo.config_path, eo.overrides, &err) || !ec->load(*cfg, &err)) {
    std::fprintf(stderr, "%s: %s\n", prog, err.c_str());
    return false;
  }
  return true;
}

}  // namespace machnet::cli
