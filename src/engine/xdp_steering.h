// Configuration of the XDP steering program (tools/xdp/machnet_xdp.bpf.c)
// from the engine. Plain C++17 + libbpf: no DPDK here.
//
// Life cycle with DPDK's net_af_xdp PMD:
//   1. the engine probes "net_af_xdp0,iface=IF,start_queue=0,queue_count=1,
//      xdp_prog=<default_xdp_program_path()>"; starting the port makes the
//      PMD load the program, attach it to IF and put its AF_XDP socket into
//      xsks_map;
//   2. XdpSteering::attach(IF) finds that program and its maps;
//   3. configure() sets the engine's IPv4 address and mode; in shared-IP mode
//      set_port() marks each UDP port the engine owns.
// Until configure() is called the program passes everything to the kernel.
// Closing the port detaches the program (the PMD does it); a program left
// behind by a crashed engine can be removed with detach_stale_program().
#pragma once

#include <cstdint>
#include <string>

namespace machnet::engine {

class XdpSteering {
 public:
  XdpSteering() = default;
  ~XdpSteering();
  XdpSteering(const XdpSteering&) = delete;
  XdpSteering& operator=(const XdpSteering&) = delete;

  // Finds the XDP program attached to `ifname` (in the caller's network
  // namespace) and its mn_config / mn_ports / mn_stats maps, checking their
  // types and sizes. Returns false with *err set on failure (no program, not
  // machnet's program, missing privileges, ...). Calling it again re-attaches.
  bool attach(const std::string& ifname, std::string* err);

  // Sets the engine's IPv4 address (host byte order) and mode: own IP
  // (shared_ip = false: ARP for the address and all IPv4 to it are steered)
  // or shared IP (only UDP to the ports marked with set_port()).
  // engine_ip 0 turns steering off (everything passes to the kernel).
  bool configure(uint32_t engine_ip_host_order, bool shared_ip, std::string* err);

  // Marks (steer = true) or unmarks a UDP destination port for shared-IP mode.
  bool set_port(uint16_t port, bool steer, std::string* err);
  // Reads a port's mark back; false on error.
  bool get_port(uint16_t port, bool* steered, std::string* err) const;
  // Unmarks every port.
  bool clear_ports(std::string* err);

  // Packet counters summed over CPUs since the program was loaded:
  // redirected = handed to an AF_XDP socket, passed = given to the kernel,
  // no_socket = matched but no AF_XDP socket on that queue (also in passed).
  bool read_stats(uint64_t* redirected, uint64_t* passed, uint64_t* no_socket = nullptr) const;

  bool attached() const { return config_fd_ >= 0; }
  uint32_t prog_id() const { return prog_id_; }
  const std::string& ifname() const { return ifname_; }

  // Detaches the XDP program on `ifname` if it is machnet's (has the
  // mn_config and xsks_map maps), e.g. left behind by an engine that crashed
  // (the PMD attaches only when no program is present). Leaves any other
  // program alone (returns false, *err says why). True if nothing is attached.
  static bool detach_stale_program(const std::string& ifname, std::string* err);

 private:
  void close_fds();

  std::string ifname_;
  uint32_t prog_id_ = 0;
  int config_fd_ = -1;
  int ports_fd_ = -1;
  int stats_fd_ = -1;
};

// Path of the XDP object to pass as xdp_prog=: $MACHNET_XDP_PROG if set,
// else the installed $(pkglibdir)/machnet_xdp.bpf.o.
std::string default_xdp_program_path();

}  // namespace machnet::engine
