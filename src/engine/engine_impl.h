// Engine internals shared by engine.cc (set-up, sockets, timers),
// engine_rx.cc (receive path) and engine_tx.cc (transmit path).
#pragma once

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <array>
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/host.h"
#include "engine/engine.h"
#include "engine/kernel_neighbours.h"
#include "engine/reassembly.h"
#include "engine/responder.h"
#include "engine/tx_batch.h"
#include "engine/xdp_steering.h"
#include "ipc/control_client.h"
#include "ipc/shm.h"
#include "net/arp_cache.h"
#include "wire/headers.h"
#include "wire/parse.h"

namespace machnet::engine {

constexpr uint16_t kRxBurst = 32;
constexpr uint64_t kTimerPeriodNs = 1'000'000;  // ARP retries, fragment expiry

struct UdpSocket::Slot {
  rte_mbuf* m;
  uint32_t src_ip;
  uint16_t src_port;
  uint16_t payload_off;
  uint16_t payload_len;
};

// Adapts ArpCache's effects to mbufs and the TX buffer.
class EngineArpEvents : public net::ArpEvents {
 public:
  explicit EngineArpEvents(Engine::Impl* e) : e_(e) {}
  void send_request(uint32_t ip_host) override;
  void release(void* pkt, const wire::MacAddr& mac) override;
  void drop(void* pkt, DropReason reason) override;

 private:
  Engine::Impl* e_;
};

// DPDK telemetry (/machnet/counters) for the process's engine (telemetry.cc).
void telemetry_attach(const Engine::Impl* e);
void telemetry_detach(const Engine::Impl* e);

struct Engine::Impl {
  EngineConfig config;
  uint16_t port_id = 0;
  uint16_t queue = 0;        // the RX/TX queue pair we poll: 0 standalone, the lease attached
  bool port_probed = false;  // standalone: EAL created the device for us (stop/close it at the end)
  std::string device_name;
  std::string iface;  // AF_XDP: the kernel interface
  wire::MacAddr mac{};
  uint16_t mtu = 1500;
  uint32_t netmask = 0;
  bool tx_ip_csum = false;   // NIC fills the IPv4 header checksum
  bool tx_udp_csum = false;  // NIC fills the UDP checksum (unfragmented only)
  bool memif = false;        // bursts go through memif_guard (see memif_guard.h)
  rte_mempool* pool = nullptr;
  // mbufs held by all UDP socket queues, how many queues hold any, and the
  // budget they share (set_socket_budget): past it a queue above its fair
  // share (budget / nonempty queues) takes nothing, so slow readers drop
  // their own datagrams instead of emptying the pool for everyone.
  uint32_t socket_mbufs = 0;
  uint32_t sockets_nonempty = 0;
  uint32_t socket_budget = UINT32_MAX;
  void set_socket_budget();
  void socket_took(UdpSocket* s, uint32_t segs);
  void socket_gave(UdpSocket* s, uint32_t segs);
  void socket_forget(UdpSocket* s);  // before a socket with a queue is deleted
  // A queued datagram's payload into buf (truncated to len) and its source;
  // returns its full length. The mbuf stays where it is.
  static ssize_t read_slot(const UdpSocket::Slot& s, void* buf, size_t len, uint32_t* src_ip,
                           uint16_t* src_port);
  Reassembly reassembly;  // standalone only: machnetd reassembles for attached engines
  Responder responder;    // ARP replies and requests, ICMP echo and port unreachable
  TxBatch tx;             // frames for our TX queue, sent once per poll
  uint64_t tsc_hz = 0;
  // now_ns() = base_ns + (tsc - base_tsc) * tsc_to_ns_mult >> 32: a multiply
  // per reading instead of a 128-bit division (several readings per packet);
  // set by set_tsc_hz().
  uint64_t tsc_to_ns_mult = 0;
  uint64_t base_tsc = 0;
  uint64_t base_ns = 0;
  void set_tsc_hz(uint64_t hz);
  uint64_t last_timer_ns = 0;
  uint16_t ip_id = 1;
  bool announced = false;  // gratuitous ARP sent

  EngineArpEvents arp_events{this};
  std::unique_ptr<net::ArpCache> arp;
  std::unique_ptr<XdpSteering> xdp;
  // Shared-IP mode: ARP stays with the kernel, so neighbours are resolved
  // through its table. Addresses to ask about wait here, because ArpCache
  // callbacks must not call back into the cache.
  std::unique_ptr<KernelNeighbours> kernel_neigh;
  static constexpr size_t kNeighQueue = 64;
  uint32_t neigh_queue[kNeighQueue];
  size_t neigh_queued = 0;

  // By port: the last socket bound there, which links to the others.
  std::array<UdpSocket*, 65536> sockets{};
  // Port 0's ports: outside the kernel's ephemeral range (common/host.h).
  PortRange ephemeral = engine_ephemeral_range();
  uint16_t next_ephemeral = ephemeral.first;

  // The socket a datagram from src_ip:src_port to dst_ip:port goes to, or
  // nullptr (see UdpSocket: demultiplexing). One check for a lone socket.
  UdpSocket* lookup_udp(uint16_t port, uint32_t dst_ip, uint32_t src_ip, uint16_t src_port) const {
    UdpSocket* s = sockets[port];
    if (s == nullptr) return nullptr;
    if (s->next_ == nullptr) return s->score(dst_ip, src_ip, src_port) >= 0 ? s : nullptr;
    return lookup_shared(s, dst_ip, src_ip, src_port);
  }
  static UdpSocket* lookup_shared(UdpSocket* head, uint32_t dst_ip, uint32_t src_ip,
                                  uint16_t src_port);
  // Whether a socket bound with opt may join the port's sockets (head).
  static bool may_share(const UdpSocket* head, const UdpBindOptions& opt);
  UdpSocket* new_socket(uint16_t port, const UdpBindOptions& opt);
  // Takes sock off its port's list; true when it was the port's last one.
  bool unlink_socket(UdpSocket* sock);

  std::minstd_rand fault_rng{12345};
  std::uniform_real_distribution<double> fault_dist{0.0, 1.0};

  EngineCounters counters;

  // ---- attached mode (a DPDK secondary of machnetd; attach.cc) ----
  // The port, its queues, the lease's mempool and the steering rings belong
  // to the daemon: the engine never configures, starts or stops the port and
  // never allocates hugepage memory of its own (a SIGKILLed secondary would
  // leak it). Mbuf invariant the daemon's crash sweep relies on: every mbuf
  // the engine allocates from the lease pool gets m->port = port_id right
  // after allocation (alloc_mbuf); frames from rx_burst already carry it, and
  // rte_pktmbuf_copy keeps it in copies steered to other queues. The daemon
  // reclaims a dead owner's mbufs by looking for in-use mbufs of pool q with
  // port != RTE_MBUF_PORT_INVALID.
  bool attached = false;
  // The daemon is gone (control socket closed, or it shut down): the port,
  // rings and mempools may not exist any more, so nothing touches them, not
  // even to free an mbuf still held; every call fails with ENETDOWN.
  std::atomic<bool> detached{false};
  std::unique_ptr<ipc::ControlClient> ctl;
  mn_shm* shm = nullptr;
  mn_lease* lease = nullptr;
  uint16_t lcore_id = 0;
  // Our eventfd the daemon writes while the lease is parked (-1: none), and
  // whether it is parked (the daemon may be polling our RX queue: nobody
  // here touches it until unpark()). Guarded like poll().
  int wake_fd = -1;
  bool parked = false;
  uint64_t queue_rx_packets = 0;  // frames taken from our RX queue (steered out included)
  uint64_t queue_rx_bytes = 0;
  // Bound sockets, for the per-port counters published on each tick.
  std::vector<UdpSocket*> bound;
  // Attached: fork-shared rings of stream services whose SYNs we take
  // (Engine::set_ring_reader), and the daemon's rendezvous port.
  std::vector<int> reader_rings;
  uint16_t daemon_rendezvous = 0;
  // Addresses the ARP cache is resolving: ARP replies go to the daemon, which
  // fills shm->neighbours; each tick looks these up there.
  struct SharedNeighbourWait {
    uint32_t ip;
    uint64_t since_ns;
  };
  static constexpr size_t kSharedWaitMax = 64;
  SharedNeighbourWait shared_wait[kSharedWaitMax];
  size_t shared_waiting = 0;
  // Found in the shared table by send_request (an ArpCache callback, which
  // must not call back into the cache): learned right after resolve().
  static constexpr size_t kLearnNowMax = 8;
  std::pair<uint32_t, wire::MacAddr> learn_now[kLearnNowMax];
  size_t learn_now_count = 0;

  // False once the engine is detached. Attached engines also look at the
  // daemon's shutting_down flag here (one load), so an engine the daemon is
  // about to tear down stops touching its memory at its next call, not only
  // at its next timer tick.
  bool usable() {
    if (detached.load(std::memory_order_relaxed)) return false;
    if (shm != nullptr && mn_shm_shutting_down(shm) != 0) {
      go_detached("machnetd is shutting down");
      return false;
    }
    return true;
  }
  bool open_attached(const EngineConfig& cfg, std::unique_ptr<ipc::ControlClient> client,
                     const std::string& socket_path, std::string* err);
  size_t poll_attached();
  int park();
  void unpark();
  void steer_out(rte_mbuf* m, uint16_t target);
  // Fork-shared ports (attached): the ring every holder of `port` reads,
  // or nullptr when the port is not fork-shared (one shm load then).
  rte_ring* shared_ring_of(uint16_t port, uint16_t* group) const;
  // One datagram from a fork-shared ring: peek at the head, copy it out,
  // then take it (or leave it there: peek). -EAGAIN when empty.
  ssize_t shared_recv(UdpSocket* sock, rte_ring* ring, uint16_t group, void* buf, size_t len,
                      uint32_t* src_ip, uint16_t* src_port, bool peek);
  // Whether a fork-shared port of ours has datagrams waiting.
  bool shared_ready() const;
  // Datagrams our queues hold for ports that became fork-shared after they
  // arrived (a child joined): moved to the port's ring, where every holder
  // finds them. One socket's (sock) or all of them; cheap when none is
  // fork-shared with anything queued.
  void hand_over_shared(UdpSocket* sock = nullptr);
  uint32_t memif_link_ticks = 0;
  void rx_steered(rte_mbuf* m);  // from our own steering ring
  void rx_chain(rte_mbuf* m);    // a multi-segment datagram machnetd reassembled
  void run_attached_timers(uint64_t now);
  void wait_shared_neighbour(uint32_t ip);
  // The daemon's neighbour table: 1 and the MAC, 0 when unknown (for now),
  // -ENETDOWN when the daemon died mid-write (the engine is then detached).
  int shared_neighbour(uint32_t ip, uint8_t mac[6]);
  void learn_shared_neighbours(uint64_t now);
  void learn_found_now(uint64_t now);
  void publish_counters();
  void go_detached(const char* why);
  int attached_bind(uint16_t port, const UdpBindOptions& opt, UdpSocket** out);
  void attached_close(UdpSocket* sock);
  std::string describe_attached() const;

  ~Impl();
  bool open(const EngineConfig& cfg, std::string* err);
  bool bring_up_port(std::string* err);
  void init_datapath();  // TX batch and responder, once port, pool, MAC and address are known
  void start_arp();      // the ARP cache, with arp.static's neighbours
  rte_mbuf* alloc_mbuf() {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m != nullptr) m->port = port_id;  // see the mbuf invariant above
    return m;
  }

  uint64_t now_ns() const;
  void count_drop(DropReason r) { counters.drops[static_cast<size_t>(r)]++; }
  void drop_mbuf(rte_mbuf* m, DropReason r) {
    count_drop(r);
    if (!detached.load(std::memory_order_relaxed)) rte_pktmbuf_free(m);
  }
  void run_timers(uint64_t now);
  void announce_if_link_up();
  bool lock_interface(const std::string& ifname, std::string* err);
  int iface_lock_fd = -1;
  std::string iface_lock_path;
  void resolve_through_kernel(uint64_t now);

  // Receive path (engine_rx.cc)
  void rx_one(rte_mbuf* m);
  // Handlers of receive() (rx_parse.h), one per kind of frame.
  void rx_drop(rte_mbuf* m, DropReason r) { drop_mbuf(m, r); }
  void rx_arp(rte_mbuf* m, const wire::ParsedFrame& pf);
  void rx_echo(rte_mbuf* m, const wire::ParsedFrame& pf);
  void rx_fragment(rte_mbuf* m, const wire::ParsedFrame& pf);
  void rx_udp(rte_mbuf* m, const wire::ParsedFrame& pf);
  void rx_unreachable(rte_mbuf* m, const wire::ParsedFrame& pf);
  void send_port_unreachable(rte_mbuf* m, uint16_t l3_off);
  void rx_reassembled(rte_mbuf* m);
  void deliver_udp(rte_mbuf* m, uint16_t l3_off, uint32_t dst_ip, uint32_t src_ip,
                   uint16_t src_port, uint16_t dst_port, uint16_t payload_off,
                   uint16_t payload_len);

  // Transmit path (engine_tx.cc)
  int udp_sendv(UdpSocket* sock, uint32_t dst_ip, uint16_t dst_port, const iovec* iov, int iovcnt,
                bool flush);
  bool next_hop(uint32_t dst_ip, uint32_t* nh, bool* broadcast) const;
  void send_resolved(rte_mbuf* m, uint32_t next_hop_ip, bool broadcast);
  void send_arp(uint16_t op, const wire::MacAddr& eth_dst, const wire::MacAddr& tha, uint32_t tpa);
  // The IPv4 header checksum of a frame we send (field 0): the NIC's job
  // (offload flags) or DPDK's helper's. Sets l2_len and l3_len.
  void ipv4_header_checksum(rte_mbuf* m, wire::Ipv4Hdr* ip) const;
  void tx_enqueue(rte_mbuf* m);  // frame complete, dst MAC set
  // Hands the batch to the PMD; what the ring refuses waits for the next
  // flush (keep) or is dropped and counted (at close).
  void tx_flush(bool keep = true);
};

}  // namespace machnet::engine
