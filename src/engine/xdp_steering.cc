#include "engine/xdp_steering.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifndef MACHNET_PKGLIBDIR
#define MACHNET_PKGLIBDIR "/usr/local/lib/machnet"
#endif

namespace machnet::engine {
namespace {

// Must match struct mn_config in tools/xdp/machnet_xdp.bpf.c (the map's value
// size is checked in attach()).
struct MnConfig {
  uint32_t engine_ip;  // network byte order
  uint32_t mode;       // 0 = own IP, 1 = shared IP
};
static_assert(sizeof(MnConfig) == 8, "mn_config layout");

constexpr uint32_t kModeOwnIp = 0;
constexpr uint32_t kModeSharedIp = 1;
constexpr uint32_t kPortsEntries = 65536;
constexpr uint32_t kStatRedirected = 0;
constexpr uint32_t kStatPassed = 1;
constexpr uint32_t kStatNoSocket = 2;
constexpr uint32_t kStatEntries = 3;

void set_err(std::string* err, const std::string& msg) {
  if (err) *err = msg;
}

std::string errno_str(int e) {
  if (e < 0) e = -e;
  std::string s = std::strerror(e);
  if (e == EPERM || e == EACCES) s += " (needs root, or CAP_BPF+CAP_NET_ADMIN+CAP_SYS_ADMIN)";
  return s;
}

void close_fd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Returns the id of the XDP program attached to ifindex (0 if none), or
// a negative errno.
long query_prog_id(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, opts);
  int rc = bpf_xdp_query(ifindex, 0, &opts);
  if (rc < 0) return rc;
  switch (opts.attach_mode) {
    case XDP_ATTACHED_NONE:
      return 0;
    case XDP_ATTACHED_MULTI:
      // Several modes at once: the native program sees the traffic first.
      return opts.drv_prog_id ? opts.drv_prog_id
                              : (opts.skb_prog_id ? opts.skb_prog_id : opts.hw_prog_id);
    default:
      return opts.prog_id;
  }
}

// Flag of the attach mode of prog_id on ifindex, for detaching it.
uint32_t attach_mode_flag(int ifindex, uint32_t prog_id) {
  LIBBPF_OPTS(bpf_xdp_query_opts, opts);
  if (bpf_xdp_query(ifindex, 0, &opts) < 0) return 0;
  if (opts.drv_prog_id == prog_id) return XDP_FLAGS_DRV_MODE;
  if (opts.skb_prog_id == prog_id) return XDP_FLAGS_SKB_MODE;
  if (opts.hw_prog_id == prog_id) return XDP_FLAGS_HW_MODE;
  return 0;
}

struct MapRef {
  int fd = -1;
  bpf_map_info info{};
};

// Opens every map used by prog_fd. On failure returns false with *err set.
bool open_prog_maps(int prog_fd, std::vector<MapRef>* maps, std::string* err) {
  bpf_prog_info pinfo{};
  uint32_t len = sizeof(pinfo);
  if (bpf_obj_get_info_by_fd(prog_fd, &pinfo, &len) != 0) {
    set_err(err, "bpf_obj_get_info_by_fd(prog): " + errno_str(errno));
    return false;
  }
  uint32_t n = pinfo.nr_map_ids;
  std::vector<uint32_t> ids(n);
  if (n > 0) {
    std::memset(&pinfo, 0, sizeof(pinfo));
    pinfo.nr_map_ids = n;
    pinfo.map_ids = reinterpret_cast<uint64_t>(ids.data());
    len = sizeof(pinfo);
    if (bpf_obj_get_info_by_fd(prog_fd, &pinfo, &len) != 0) {
      set_err(err, "bpf_obj_get_info_by_fd(prog maps): " + errno_str(errno));
      return false;
    }
    if (pinfo.nr_map_ids < n) n = pinfo.nr_map_ids;
  }
  for (uint32_t i = 0; i < n; i++) {
    MapRef m;
    m.fd = bpf_map_get_fd_by_id(ids[i]);
    if (m.fd < 0) {
      int e = errno;
      for (auto& x : *maps) close_fd(&x.fd);
      maps->clear();
      set_err(err, "bpf_map_get_fd_by_id(" + std::to_string(ids[i]) + "): " + errno_str(e));
      return false;
    }
    uint32_t mlen = sizeof(m.info);
    if (bpf_obj_get_info_by_fd(m.fd, &m.info, &mlen) != 0) {
      int e = errno;
      close_fd(&m.fd);
      for (auto& x : *maps) close_fd(&x.fd);
      maps->clear();
      set_err(err, "bpf_obj_get_info_by_fd(map): " + errno_str(e));
      return false;
    }
    maps->push_back(m);
  }
  return true;
}

MapRef* find_map(std::vector<MapRef>& maps, const char* name) {
  for (auto& m : maps)
    if (std::strncmp(m.info.name, name, sizeof(m.info.name)) == 0) return &m;
  return nullptr;
}

// Opens the program attached to ifname and its maps.
bool open_attached(const std::string& ifname, int* ifindex_out, uint32_t* prog_id_out,
                   int* prog_fd_out, std::vector<MapRef>* maps, std::string* err) {
  unsigned ifindex = if_nametoindex(ifname.c_str());
  if (ifindex == 0) {
    set_err(err, "interface '" + ifname + "' not found: " + errno_str(errno));
    return false;
  }
  long id = query_prog_id(static_cast<int>(ifindex));
  if (id < 0) {
    set_err(err, "bpf_xdp_query(" + ifname + "): " + errno_str(static_cast<int>(id)));
    return false;
  }
  *ifindex_out = static_cast<int>(ifindex);
  *prog_id_out = static_cast<uint32_t>(id);
  *prog_fd_out = -1;
  if (id == 0) return true;
  int fd = bpf_prog_get_fd_by_id(static_cast<uint32_t>(id));
  if (fd < 0) {
    set_err(err, "bpf_prog_get_fd_by_id(" + std::to_string(id) + "): " + errno_str(errno));
    return false;
  }
  if (!open_prog_maps(fd, maps, err)) {
    close(fd);
    return false;
  }
  *prog_fd_out = fd;
  return true;
}

}  // namespace

XdpSteering::~XdpSteering() {
  close_fds();
}

void XdpSteering::close_fds() {
  close_fd(&config_fd_);
  close_fd(&ports_fd_);
  close_fd(&stats_fd_);
  prog_id_ = 0;
}

bool XdpSteering::attach(const std::string& ifname, std::string* err) {
  close_fds();
  ifname_ = ifname;
  int ifindex = 0, prog_fd = -1;
  uint32_t id = 0;
  std::vector<MapRef> maps;
  if (!open_attached(ifname, &ifindex, &id, &prog_fd, &maps, err)) return false;
  if (id == 0) {
    set_err(err, "no XDP program attached to " + ifname +
                     " (is the af_xdp port started with xdp_prog=" + default_xdp_program_path() +
                     "?)");
    return false;
  }
  close(prog_fd);

  std::string why;
  MapRef* cfg = find_map(maps, "mn_config");
  MapRef* ports = find_map(maps, "mn_ports");
  MapRef* stats = find_map(maps, "mn_stats");
  if (!cfg || !ports || !find_map(maps, "xsks_map")) {
    why = "has no mn_config/mn_ports/xsks_map maps";
  } else if (cfg->info.type != BPF_MAP_TYPE_ARRAY || cfg->info.value_size != sizeof(MnConfig) ||
             cfg->info.max_entries < 1) {
    why = "map mn_config has an unexpected layout (value size " +
          std::to_string(cfg->info.value_size) + ", expected " + std::to_string(sizeof(MnConfig)) +
          ")";
  } else if (ports->info.type != BPF_MAP_TYPE_ARRAY || ports->info.value_size != 1 ||
             ports->info.max_entries != kPortsEntries) {
    why = "map mn_ports has an unexpected layout";
  } else if (stats && (stats->info.type != BPF_MAP_TYPE_PERCPU_ARRAY ||
                       stats->info.value_size != sizeof(uint64_t) ||
                       stats->info.max_entries < kStatEntries)) {
    why = "map mn_stats has an unexpected layout";
  }
  if (why.empty()) {
    std::swap(config_fd_, cfg->fd);
    std::swap(ports_fd_, ports->fd);
    if (stats) std::swap(stats_fd_, stats->fd);
    prog_id_ = id;
  }
  for (auto& m : maps) close_fd(&m.fd);
  if (!why.empty()) {
    set_err(err, "XDP program id " + std::to_string(id) + " on " + ifname +
                     " is not machnet's steering program: it " + why);
    return false;
  }
  return true;
}

bool XdpSteering::configure(uint32_t engine_ip_host_order, bool shared_ip, std::string* err) {
  if (config_fd_ < 0) {
    set_err(err, "XdpSteering::configure: not attached");
    return false;
  }
  MnConfig c{};
  c.engine_ip = htonl(engine_ip_host_order);
  c.mode = shared_ip ? kModeSharedIp : kModeOwnIp;
  uint32_t key = 0;
  if (bpf_map_update_elem(config_fd_, &key, &c, BPF_ANY) != 0) {
    set_err(err, "updating mn_config: " + errno_str(errno));
    return false;
  }
  return true;
}

bool XdpSteering::set_port(uint16_t port, bool steer, std::string* err) {
  if (ports_fd_ < 0) {
    set_err(err, "XdpSteering::set_port: not attached");
    return false;
  }
  uint32_t key = port;
  uint8_t v = steer ? 1 : 0;
  if (bpf_map_update_elem(ports_fd_, &key, &v, BPF_ANY) != 0) {
    set_err(err, "updating mn_ports[" + std::to_string(port) + "]: " + errno_str(errno));
    return false;
  }
  return true;
}

bool XdpSteering::get_port(uint16_t port, bool* steered, std::string* err) const {
  if (ports_fd_ < 0) {
    set_err(err, "XdpSteering::get_port: not attached");
    return false;
  }
  uint32_t key = port;
  uint8_t v = 0;
  if (bpf_map_lookup_elem(ports_fd_, &key, &v) != 0) {
    set_err(err, "reading mn_ports[" + std::to_string(port) + "]: " + errno_str(errno));
    return false;
  }
  *steered = v != 0;
  return true;
}

bool XdpSteering::clear_ports(std::string* err) {
  for (uint32_t p = 0; p < kPortsEntries; p++) {
    bool on = false;
    if (!get_port(static_cast<uint16_t>(p), &on, err)) return false;
    if (on && !set_port(static_cast<uint16_t>(p), false, err)) return false;
  }
  return true;
}

bool XdpSteering::read_stats(uint64_t* redirected, uint64_t* passed, uint64_t* no_socket) const {
  if (stats_fd_ < 0) return false;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return false;
  std::vector<uint64_t> vals(static_cast<size_t>(ncpu));
  uint64_t sums[kStatEntries] = {0, 0, 0};
  for (uint32_t key = 0; key < kStatEntries; key++) {
    if (bpf_map_lookup_elem(stats_fd_, &key, vals.data()) != 0) return false;
    for (uint64_t v : vals) sums[key] += v;
  }
  if (redirected) *redirected = sums[kStatRedirected];
  if (passed) *passed = sums[kStatPassed];
  if (no_socket) *no_socket = sums[kStatNoSocket];
  return true;
}

bool XdpSteering::detach_stale_program(const std::string& ifname, std::string* err) {
  int ifindex = 0, prog_fd = -1;
  uint32_t id = 0;
  std::vector<MapRef> maps;
  if (!open_attached(ifname, &ifindex, &id, &prog_fd, &maps, err)) return false;
  if (id == 0) return true;
  bool ours = find_map(maps, "mn_config") && find_map(maps, "xsks_map");
  for (auto& m : maps) close_fd(&m.fd);
  if (!ours) {
    close(prog_fd);
    set_err(err, "XDP program id " + std::to_string(id) + " on " + ifname +
                     " is not machnet's; not detaching it");
    return false;
  }
  // XDP_FLAGS_REPLACE + old_prog_fd: detach only if it is still that program.
  LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = prog_fd);
  uint32_t flags = XDP_FLAGS_REPLACE | attach_mode_flag(ifindex, id);
  int rc = bpf_xdp_detach(ifindex, flags, &opts);
  close(prog_fd);
  if (rc != 0) {
    set_err(err, "bpf_xdp_detach(" + ifname + "): " + errno_str(rc));
    return false;
  }
  return true;
}

std::string default_xdp_program_path() {
  const char* env = std::getenv("MACHNET_XDP_PROG");
  if (env && *env) return env;
  return std::string(MACHNET_PKGLIBDIR) + "/machnet_xdp.bpf.o";
}

}  // namespace machnet::engine
