// The DPDK engine: one port, one queue pair, run to completion on the thread
// that calls poll(). It answers ARP and ICMP echo for its address, resolves
// neighbours, reassembles and fragments IPv4, and serves UDP sockets.
// Not thread-safe: one thread drives an Engine (the socket layer above adds
// the locking its threading model needs).
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "common/drop_reason.h"
#include "engine/engine_config.h"

namespace machnet::engine {

// In Engine::create's error when machnetd had no free queue to lease: a
// caller that can wait for one (a fork child) retries on it.
inline constexpr const char* kNoFreeQueue = "every queue is leased";

struct EngineCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;
  uint64_t rx_arp = 0;
  uint64_t tx_arp = 0;
  uint64_t icmp_echo_replies = 0;
  uint64_t icmp_unreachable_rx = 0;  // reports about datagrams we sent
  uint64_t icmp_unreachable_tx = 0;  // port unreachable for datagrams to no socket
  uint64_t rx_fragments = 0;
  uint64_t reassembled = 0;
  uint64_t tx_fragments = 0;
  uint64_t udp_rx = 0;  // datagrams queued to a socket
  uint64_t udp_tx = 0;  // datagrams sent
  // Attached to machnetd (software steering between queue owners):
  uint64_t steered_out = 0;  // frames for another queue's owner, copied to its ring
  uint64_t steered_in = 0;   // frames taken from our own steering ring
  uint64_t steer_drops = 0;  // the other owner's ring or mempool was full
  uint64_t drops[kDropReasonCount] = {};

  uint64_t drop(DropReason r) const { return drops[static_cast<size_t>(r)]; }
  uint64_t total_drops() const;
};

// DPDK telemetry for the layers above the engine (the stack publishes the
// transport's counters): registers `cmd` (e.g. "/machnet/transport") on the
// process's telemetry socket; a request runs fill() on DPDK's telemetry
// thread, which adds (name, value) pairs to the reply's dict through add().
// fill must be safe against the data path running meanwhile. Returns false
// when DPDK refuses the command (bad name, table full, or registered before).
using TelemetryAdd = void (*)(void* dict, const char* name, uint64_t value);
using TelemetryFill = void (*)(void* dict, TelemetryAdd add);
bool telemetry_register(const char* cmd, const char* help, TelemetryFill fill);

class Engine;

// How udp_bind binds a socket. Several sockets may share a port when every
// one of them is bound with `shared`: the socket layer's sockets, whose kernel
// twins have already passed the kernel's own check (SO_REUSEADDR or
// SO_REUSEPORT on both) for the same port. A socket without it (the
// transport's ports) holds its port alone.
struct UdpBindOptions {
  uint32_t local_ip = 0;   // host order; 0: any. Otherwise only datagrams to it
  bool shared = false;     // may share the port (see above)
  bool reuseport = false;  // SO_REUSEPORT: equally good matches split flows by hash
  // Attached: the port is held by an ancestor process whose socket this
  // process inherited through fork(): share it (MN_CTL_JOIN) instead of
  // binding it.
  bool fork_join = false;
  // Attached: take the port in this process only, claiming nothing from
  // machnetd. For the rendezvous port, whose frames the daemon steers by
  // the service they name, not by port.
  bool local_only = false;
};

// A bound UDP socket on the engine. Received datagrams wait in a bounded queue
// (EngineConfig::socket_queue_len); when it is full, new ones are dropped and
// counted as kSocketQueueFull.
//
// Demultiplexing follows the kernel's: a datagram goes to the socket of its
// destination port whose local address and peer match it most specifically
// (a socket connected to the datagram's source beats an unconnected one; a
// socket bound to the destination address beats one bound to any); a
// connected socket never receives from anyone else. Among equally good
// matches the last bound wins, or, when they all have reuseport, the hash of
// the source picks one. A port with one socket costs one check.
class UdpSocket {
 public:
  uint16_t port() const { return port_; }

 private:
  friend class Engine;
  struct Slot;
  UdpSocket(uint16_t port, uint32_t capacity);
  ~UdpSocket();
  // Whether a datagram from src to dst_ip is for this socket, and how well:
  // -1 no, otherwise higher is more specific.
  int score(uint32_t dst_ip, uint32_t src_ip, uint16_t src_port) const {
    int sc = 0;
    if (local_ip_ != 0) {
      if (local_ip_ != dst_ip) return -1;
      sc += 1;
    }
    if (peer_port_ != 0) {
      if (peer_ip_ != src_ip || peer_port_ != src_port) return -1;
      sc += 2;
    }
    return sc;
  }
  uint16_t port_;
  uint32_t capacity_;
  UdpSocket* next_ = nullptr;  // the next socket on the same port
  uint32_t local_ip_ = 0;
  uint32_t peer_ip_ = 0;  // connected (peer_port_ != 0): only this source
  uint16_t peer_port_ = 0;
  bool shared_ = false;
  bool reuseport_ = false;
  // Attached: not claimed from machnetd (UdpBindOptions::local_only).
  bool local_only_ = false;
  int error_ = 0;  // from ICMP, like the kernel's sk_err: ECONNREFUSED, EHOSTUNREACH
  uint32_t error_ip_ = 0;
  uint16_t error_port_ = 0;
  uint32_t head_ = 0;  // next to read
  uint32_t tail_ = 0;  // next to write
  // mbufs the queued datagrams hold: bounded by capacity_ as well, so a slow
  // reader of reassembled datagrams (up to 45 mbufs each) holds no more of
  // the pool than one of small ones.
  uint32_t queued_mbufs_ = 0;
  Slot* slots_;
  // Attached mode: published to machnetd's per-port counters on each tick.
  uint64_t rx_datagrams_ = 0;
  uint64_t rx_bytes_ = 0;
  uint64_t tx_datagrams_ = 0;
  uint64_t published_rx_ = ~uint64_t{0};
  uint64_t published_tx_ = ~uint64_t{0};
};

class Engine {
 public:
  // Attaches to machnetd when it answers on config.machnetd_socket (unless
  // machnetd = off): EAL joins the daemon's as a secondary and the engine
  // polls the queue pair the daemon leases. Otherwise (standalone)
  // initialises EAL (once per process) and brings the configured port up.
  static std::unique_ptr<Engine> create(const EngineConfig& config, std::string* err);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One iteration: receive a burst, process it, run due timers, flush TX.
  // Returns the number of packets received. Does nothing once failure() != 0.
  size_t poll();

  // 0 while the engine is usable. ENETDOWN once an attached engine lost
  // machnetd (it exited, crashed or shut down): from then on poll() does
  // nothing, udp_bind/udp_sendto/udp_sendv/udp_recvfrom return -ENETDOWN,
  // udp_pending() is 0, and datagrams still queued are lost. It never comes
  // back: the socket layer should fail offloaded sockets with ENETDOWN.
  // Standalone engines always return 0. Cheap (one relaxed atomic load);
  // may be called from any thread.
  int failure() const;
  // True when the engine is a secondary of machnetd.
  bool attached() const;
  // Sleeping while attached (see mn_wake_state in ipc/shm.h). park() hands
  // the RX queue to machnetd, which writes wake_fd() when something arrives
  // for us, and returns 1. 0: not parked, poll on your own schedule
  // (standalone, no wake fd, detached, or an address being resolved, which
  // the timer tick of poll() completes). -1: not parked, something is
  // already waiting: poll now. The next poll() takes the queue back
  // (unpark() does so explicitly). Same locking as poll().
  int wake_fd() const;
  int park();
  void unpark();
  // The processes that may be polling the port on this host (machnetd's
  // active leases); 0 when standalone.
  uint32_t host_pollers() const;

  // port 0 picks a free ephemeral port. Errors: -EADDRINUSE, -EAGAIN (no free
  // ephemeral port), -EINVAL. Attached: the port is claimed from machnetd (a
  // control-socket round trip; port 0 takes the daemon's ephemeral port) and
  // its errors come back as they are (-EADDRINUSE when another process holds
  // it, -ETIMEDOUT...); -ENETDOWN once the daemon is gone. A socket joining a
  // port this engine holds already (UdpBindOptions::shared) claims nothing:
  // the daemon sees one claim per port, given back with the port's last
  // socket. The first form binds exclusively, on any address.
  int udp_bind(uint16_t port, UdpSocket** out);
  int udp_bind(uint16_t port, const UdpBindOptions& opt, UdpSocket** out);
  void udp_close(UdpSocket* sock);
  // Connects a socket for demultiplexing: from now on it receives only from
  // peer_ip:peer_port (host order), ahead of the port's unconnected sockets.
  // Datagrams already queued stay. peer_port 0: unconnected again.
  void udp_connect(UdpSocket* sock, uint32_t peer_ip, uint16_t peer_port);
  // Sends one datagram (fragmented above the MTU). Returns 0 or -errno:
  // -EMSGSIZE (> 65507 bytes), -ENETUNREACH (off-subnet, no gateway),
  // -ENOBUFS (no mbufs: the datagram was dropped and counted), -EAGAIN (the
  // TX ring is full: nothing was sent or lost; poll and try again).
  int udp_sendto(UdpSocket* sock, uint32_t dst_ip, uint16_t dst_port, const void* data, size_t len);
  // Gather form of udp_sendto: the datagram is the concatenation of iov.
  // flush false: the frames wait in the TX batch for flush_tx(), the next
  // poll() or a full batch, so a caller sending many datagrams in a row (the
  // transport's window) hands them to the device in one burst: on AF_XDP
  // one kick (a syscall) per burst instead of per datagram.
  int udp_sendv(UdpSocket* sock, uint32_t dst_ip, uint16_t dst_port, const iovec* iov, int iovcnt,
                bool flush = true);
  // Hands the frames waiting in the TX batch to the device.
  void flush_tx();
  // Copies the oldest datagram into buf (truncated to len; the rest is
  // discarded, like recvfrom). Returns its full length, or -EAGAIN.
  ssize_t udp_recvfrom(UdpSocket* sock, void* buf, size_t len, uint32_t* src_ip,
                       uint16_t* src_port);
  // The error an ICMP destination-unreachable reported for a datagram this
  // socket sent (ECONNREFUSED for port unreachable, EHOSTUNREACH,
  // ENETUNREACH), with the destination it concerned; 0 if none. Reading
  // clears it, like SO_ERROR.
  int udp_take_error(UdpSocket* sock, uint32_t* dst_ip, uint16_t* dst_port);
  // The same without clearing it (poll's POLLERR).
  int udp_peek_error(const UdpSocket* sock, uint32_t* dst_ip, uint16_t* dst_port) const;
  // Datagrams waiting on the socket.
  uint32_t udp_pending(const UdpSocket* sock) const;
  // The oldest datagram, left where it is (MSG_PEEK, FIONREAD): copied into
  // buf (truncated to len); returns its full length, or -EAGAIN. Our own
  // queue comes first; then, attached and the port fork-shared (a socket
  // inherited through fork()), the head of the ring every holder reads,
  // which another process may take before we read it (*from_ring is set).
  ssize_t udp_peek(UdpSocket* sock, void* buf, size_t len, uint32_t* src_ip, uint16_t* src_port,
                   bool* from_ring);
  // Moves with every datagram put on the socket's fork-shared ring (0: not
  // shared): a wake-up for sleepers.
  uint64_t udp_shared_seq(const UdpSocket* sock) const;
  // Datagrams ever put on machnetd's fork-shared rings (all of them: a few
  // loads), 0 when standalone or detached. Sleepers of a fork-shared socket
  // wait for what lands there, which counts in no counter of ours until a
  // holder reads it: the stack's wake-up check adds this.
  uint64_t shared_arrivals() const;

  // Stream services under machnetd (attached; standalone engines -ENOTSUP):
  // the daemon steers each service SYN arriving on the host's rendezvous
  // port to a listener of its service (docs/MACHNETD.md, "Stream
  // services"). service_listen: this process listens on `service`
  // (reuseport: its SO_REUSEPORT group, flows split by hash);
  // service_join: it shares `service` with an ancestor that listens on it
  // (fork): SYNs then go to fork-shared ring *ring, read with ring_recv.
  // Errors as the daemon gives them (-EADDRINUSE, -EACCES, -ENOMEM...),
  // -ENETDOWN once it is gone.
  int service_listen(uint16_t service, bool reuseport);
  int service_join(uint16_t service, int* ring);
  void service_unlisten(uint16_t service);
  // The daemon's rendezvous port (0: standalone, or a daemon too old to say).
  uint16_t rendezvous_port() const;
  // One datagram for `sock`'s port from fork-shared ring `ring` (peek,
  // copy, take: as a fork-shared UDP socket's receive). -EAGAIN when empty.
  ssize_t ring_recv(int ring, UdpSocket* sock, void* buf, size_t len, uint32_t* src_ip,
                    uint16_t* src_port);
  // Whether this process takes what lands on fork-shared ring `ring`: a
  // holder never parks while a ring it reads holds anything.
  void set_ring_reader(int ring, bool on);
  // The fork-shared rings the daemon steers this lease's services' SYNs to
  // (bit i: ring i; mn_lease.service_rings): a listener whose service a
  // fork child joined learns of the ring here. 0 standalone or detached.
  uint32_t service_rings() const;

  const EngineCounters& counters() const;
  void print_counters(FILE* out) const;
  // One line: device, address, MAC, MTU, checksum offloads, XDP steering.
  std::string describe() const;
  uint64_t now_ns() const;
  uint32_t ip() const;
  uint16_t port_id() const;

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace machnet::engine
