#include "engine/engine.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ring.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "engine/eal.h"
#include "engine/engine_impl.h"
#include "engine/log.h"
#include "engine/memif_guard.h"
#include "engine/ring_repair.h"

namespace machnet::engine {
namespace {

constexpr const char* kLockDir = "/run/machnet";
constexpr int kMaxLockSweep = 4096;

// Whether fd (locked) is still the file at path: a lock taken on a file
// another engine unlinked in the meantime guards nothing.
bool still_at(int fd, const std::string& path) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
         a.st_dev == b.st_dev;
}

// Removes the interface locks of engines that died without unlinking theirs
// (kill -9; a namespace gone with its engine): a lock nobody holds and that
// is still the file at its path has no live owner. Bounded per start.
void sweep_dead_locks(const std::string& mine) {
  DIR* d = opendir(kLockDir);
  if (d == nullptr) return;
  int seen = 0;
  while (dirent* e = readdir(d)) {
    if (++seen > kMaxLockSweep) break;
    std::string name = e->d_name;
    if (name.rfind("af_xdp-", 0) != 0 || name.size() < 5 ||
        name.compare(name.size() - 5, 5, ".lock") != 0)
      continue;
    std::string path = std::string(kLockDir) + "/" + name;
    if (path == mine) continue;
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && still_at(fd, path)) unlink(path.c_str());
    ::close(fd);
  }
  closedir(d);
}

}  // namespace

uint64_t EngineCounters::total_drops() const {
  uint64_t t = 0;
  for (uint64_t d : drops) t += d;
  return t;
}

UdpSocket::UdpSocket(uint16_t port, uint32_t capacity)
    : port_(port), capacity_(capacity), slots_(new Slot[capacity]) {}

UdpSocket::~UdpSocket() {
  while (head_ != tail_) rte_pktmbuf_free(slots_[head_++ % capacity_].m);
  delete[] slots_;
}

Engine::Impl::~Impl() {
  telemetry_detach(this);
  // Once machnetd is gone its memory may be unmapped: mbufs still held are
  // forgotten, never freed (see `detached`).
  bool gone = detached.load();
  for (UdpSocket*& head : sockets) {
    for (UdpSocket* s = head; s != nullptr;) {
      UdpSocket* next = s->next_;
      if (gone) s->head_ = s->tail_;
      delete s;
      s = next;
    }
    head = nullptr;
  }
  bound.clear();
  arp.reset();  // drops every packet still waiting for resolution
  tx_flush(/*keep=*/false);
  if (attached) {
    // The port, its queues and the mempools are the daemon's: nothing is
    // stopped or freed here. Closing the control connection gives the lease
    // (and every port bound through it) back; EAL stays (other threads of
    // the program may still be around, and it cannot be initialised again).
    if (!gone && lease != nullptr) publish_counters();
    ctl.reset();
    if (wake_fd >= 0) close(wake_fd);
    return;
  }
  if (port_probed) {
    // We probed the device: give it back, so a restarted engine finds it free.
    rte_eth_dev_stop(port_id);
    rte_eth_dev_close(port_id);
  }
  // The mempool stays: mbufs may still sit in a driver ring until close.
  if (iface_lock_fd >= 0) {  // the interface is free again
    unlink(iface_lock_path.c_str());
    ::close(iface_lock_fd);
  }
}

void Engine::Impl::set_tsc_hz(uint64_t hz) {
  tsc_hz = hz;
  // 1e9 * 2^32 / hz, rounded: a rate error below 1e-9 (far below the TSC's
  // own), and the base keeps readings equal to the exact conversion at start
  // (machnetd converts the same TSC exactly).
  tsc_to_ns_mult =
      static_cast<uint64_t>(((static_cast<unsigned __int128>(1000000000u) << 32) + hz / 2) / hz);
  base_tsc = rte_get_tsc_cycles();
  base_ns = static_cast<uint64_t>(static_cast<unsigned __int128>(base_tsc) * 1000000000u / hz);
}

uint64_t Engine::Impl::now_ns() const {
  // No overflow: (tsc - base) < 2^64 and mult < 2^52 for any hz above 1 kHz.
  uint64_t d = rte_get_tsc_cycles() - base_tsc;
  return base_ns +
         static_cast<uint64_t>((static_cast<unsigned __int128>(d) * tsc_to_ns_mult) >> 32);
}

bool Engine::Impl::open(const EngineConfig& cfg, std::string* err) {
  config = cfg;
  if (config.ip == 0) {
    *err = "no IPv4 address configured (set ip = a.b.c.d/prefix)";
    return false;
  }
  if (config.device.empty() && config.port_id < 0) {
    *err = "no device configured (set device = net_af_xdp0,iface=... or a PCI address)";
    return false;
  }
  if (config.device.rfind("net_af_xdp", 0) == 0 &&
      config.device.find("xdp_prog=") == std::string::npos) {
    // Our XDP program hands the engine only its own traffic; the kernel keeps
    // everything else on the interface.
    config.device +=
        ",xdp_prog=" + (config.xdp_prog.empty() ? default_xdp_program_path() : config.xdp_prog);
  }
  if (config.device.rfind("net_af_xdp", 0) == 0) {
    // The PMD attaches only where no program is: remove one left behind by
    // an engine that crashed (only if it is ours).
    std::string iface_arg = config.device + ",";
    auto p = iface_arg.find(",iface=");
    if (p != std::string::npos) {
      std::string ifname = iface_arg.substr(p + 7, iface_arg.find(',', p + 7) - p - 7);
      // Only one engine may own the interface: a lock held for the engine's
      // life tells a live owner from a program left behind by a dead one.
      if (!lock_interface(ifname, err)) return false;
      std::string why;
      if (!XdpSteering::detach_stale_program(ifname, &why)) {
        *err = "AF_XDP on " + ifname + ": " + why;
        return false;
      }
    }
  }
  if (!eal_init_once(config, err)) return false;
  set_tsc_hz(rte_get_tsc_hz());
  netmask = config.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - config.prefix_len);

  if (!bring_up_port(err)) return false;
  init_datapath();
  if (!reassembly.init(config, counters.drops, err)) return false;
  start_arp();

  announce_if_link_up();
  telemetry_attach(this);
  return true;
}

bool Engine::Impl::lock_interface(const std::string& ifname, std::string* err) {
  // Interface names are per network namespace: key the lock on both.
  struct stat ns;
  if (stat("/proc/self/ns/net", &ns) != 0) ns.st_ino = 0;
  mkdir("/run/machnet", 0755);
  std::string path = "/run/machnet/af_xdp-" + std::to_string(ns.st_ino) + "-" + ifname + ".lock";
  iface_lock_path = path;
  sweep_dead_locks(path);
  bool locked = false;
  for (int tries = 0;; tries++) {
    iface_lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (iface_lock_fd < 0) {
      *err = "cannot open " + path + ": " + strerror(errno);
      return false;
    }
    locked = flock(iface_lock_fd, LOCK_EX | LOCK_NB) == 0;
    if (!locked || still_at(iface_lock_fd, path) || tries == 8) break;
    // Unlinked by its exiting owner or a sweep between our open and flock.
    ::close(iface_lock_fd);
  }
  if (!locked) {
    char owner[32] = {};
    ssize_t n = pread(iface_lock_fd, owner, sizeof(owner) - 1, 0);
    *err = "interface " + ifname + " is in use by another machnet engine" +
           (n > 0 ? std::string(" (pid ") + owner + ")" : std::string()) +
           "; one standalone engine per interface (machnetd shares one)";
    ::close(iface_lock_fd);
    iface_lock_fd = -1;
    return false;
  }
  std::string pid = std::to_string(getpid());
  if (ftruncate(iface_lock_fd, 0) == 0) {
    ssize_t w = pwrite(iface_lock_fd, pid.data(), pid.size(), 0);
    (void)w;  // the pid is only a hint in the error above
  }
  return true;
}

void Engine::Impl::resolve_through_kernel(uint64_t now) {
  // Ask about what the ARP cache wants: a usable kernel entry answers at
  // once; otherwise the kernel resolves it and its notification answers.
  for (size_t i = 0; i < neigh_queued; i++) {
    KernelNeighbours::Mac mac;
    if (kernel_neigh->lookup(neigh_queue[i], &mac)) {
      arp->learn(neigh_queue[i], mac, now, /*create=*/false);
    } else {
      std::string why;
      kernel_neigh->request(neigh_queue[i], &why);
      counters.tx_arp++;  // an ARP request, sent by the kernel for us
    }
  }
  neigh_queued = 0;
  struct Ctx {
    Engine::Impl* e;
    uint64_t now;
  } ctx{this, now};
  kernel_neigh->poll(
      [](void* c, uint32_t ip, const KernelNeighbours::Mac& mac) {
        auto* x = static_cast<Ctx*>(c);
        x->e->counters.rx_arp++;
        x->e->arp->learn(ip, mac, x->now, /*create=*/false);
      },
      &ctx);
}

void Engine::Impl::announce_if_link_up() {
  // Gratuitous ARP once the link is up (a memif server's link comes up only
  // when its peer connects): peers that cached an old MAC for us update it.
  rte_eth_link link;
  if (rte_eth_link_get_nowait(port_id, &link) != 0 || link.link_status != RTE_ETH_LINK_UP) return;
  announced = true;
  if (kernel_neigh != nullptr) return;  // shared IP: the kernel owns ARP for it
  send_arp(wire::kArpOpRequest, wire::kBroadcastMac, wire::kZeroMac, config.ip);
  tx_flush();
}

void Engine::Impl::run_timers(uint64_t now) {
  if (attached) {
    run_attached_timers(now);
    return;
  }
  last_timer_ns = now;
  if (!announced) announce_if_link_up();
  if (kernel_neigh != nullptr) resolve_through_kernel(now);
  arp->tick(now);
  reassembly.expire();
}

void Engine::Impl::start_arp() {
  // Packets waiting for unresolved neighbours hold at most a quarter of the
  // mbuf pool, whatever arp.queue_len allows each neighbour.
  net::ArpConfig a = config.arp;
  a.max_pending_total = std::max<size_t>(1, config.num_mbufs / 4);
  arp = std::make_unique<net::ArpCache>(a, &arp_events);
  last_timer_ns = now_ns();
  for (const auto& [nip, mac_text] : config.static_neighbours) {
    wire::MacAddr m;
    wire::parse_mac(mac_text, &m);
    arp->learn(nip, m, last_timer_ns, /*create=*/true);
  }
}

void Engine::Impl::init_datapath() {
  set_socket_budget();
  tx.init(port_id, queue, memif, &counters.tx_packets, &counters.tx_bytes,
          &counters.drops[static_cast<size_t>(DropReason::kTxRingFull)]);
  responder.init(pool, port_id, mac, config.ip, /*pad_frames=*/false);
}

// A quarter of the pool: with queues at most at their fair share once it is
// reached, all of them together hold at most about half, which leaves the
// rest to the RX descriptors, the TX batch, ARP (a quarter at most) and
// reassembly.
void Engine::Impl::set_socket_budget() {
  uint32_t size = pool != nullptr ? pool->size : config.num_mbufs;
  socket_budget = std::max<uint32_t>(size / 4, 64);
}

void Engine::Impl::socket_took(UdpSocket* s, uint32_t segs) {
  if (s->queued_mbufs_ == 0) sockets_nonempty++;
  s->queued_mbufs_ += segs;
  socket_mbufs += segs;
}

void Engine::Impl::socket_gave(UdpSocket* s, uint32_t segs) {
  s->queued_mbufs_ -= segs;
  socket_mbufs -= segs;
  if (s->queued_mbufs_ == 0) sockets_nonempty--;
}

void Engine::Impl::socket_forget(UdpSocket* s) {
  if (s->queued_mbufs_ != 0) socket_gave(s, s->queued_mbufs_);
}

std::unique_ptr<Engine> Engine::create(const EngineConfig& config, std::string* err) {
  if (!log::set_level(config.log_level, err)) return nullptr;
  auto impl = std::make_unique<Impl>();
  // A port the caller made itself (port_id, tests) is always standalone.
  if (config.machnetd != MachnetdMode::kOff && config.port_id < 0) {
    // Connecting is the "daemon alive" check that must come before EAL: a
    // secondary whose primary is missing fails init, and EAL cannot retry.
    const std::string& path = config.machnetd_socket;
    auto client = std::make_unique<ipc::ControlClient>();
    std::string why;
    int rc = client->connect(path, &why);
    if (rc == 0) {
      if (!impl->open_attached(config, std::move(client), path, err)) return nullptr;
      return std::unique_ptr<Engine>(new Engine(std::move(impl)));
    }
    if (config.machnetd == MachnetdMode::kOn) {
      *err = "machnetd not reachable at " + path + ": " + strerror(-rc) +
             " (machnetd = on; is machnetd running? machnetd.socket names its socket)";
      return nullptr;
    }
    if (rc != -ENOENT && rc != -ECONNREFUSED) {
      // Something is there but we may not use it: do not fight a daemon for
      // its device by starting standalone behind its back.
      *err = why + " (set machnetd = off to run standalone)";
      return nullptr;
    }
    if (config.device.empty()) {
      *err = "neither machnetd nor a device is available: nothing listens on " + path +
             " (machnetd.socket) and no device is configured for a standalone engine "
             "(device = net_af_xdp0,iface=... or a PCI address)";
      return nullptr;
    }
  }
  if (!impl->open(config, err)) return nullptr;
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

size_t Engine::poll() {
  Impl& e = *impl_;
  if (e.attached) return e.poll_attached();
  rte_mbuf* burst[kRxBurst];
  uint16_t n = memif_guard::rx_burst(e.port_id, 0, burst, kRxBurst, e.memif);
  for (uint16_t i = 0; i < n; i++) e.rx_one(burst[i]);
  uint64_t now = e.now_ns();
  if (now - e.last_timer_ns >= kTimerPeriodNs) e.run_timers(now);
  e.tx_flush();
  return n;
}

int Engine::failure() const {
  return impl_->detached.load(std::memory_order_relaxed) ? ENETDOWN : 0;
}

bool Engine::attached() const {
  return impl_->attached;
}

int Engine::wake_fd() const {
  return impl_->attached && !impl_->detached.load() ? impl_->wake_fd : -1;
}

int Engine::park() {
  return impl_->attached ? impl_->park() : 0;
}

void Engine::unpark() {
  if (impl_->attached && impl_->parked) impl_->unpark();
}

uint32_t Engine::host_pollers() const {
  const Impl& e = *impl_;
  if (!e.attached || e.shm == nullptr || e.detached.load(std::memory_order_relaxed)) return 0;
  return mn_shm_active_leases(e.shm);
}

// ---- sockets and their ports ---------------------------------------------

UdpSocket* Engine::Impl::lookup_shared(UdpSocket* head, uint32_t dst_ip, uint32_t src_ip,
                                       uint16_t src_port) {
  // The best score wins; the first of equals is the last bound (new sockets
  // go to the head), unless all of them have reuseport: then a hash of the
  // source picks one, so each flow stays with one socket.
  UdpSocket* best = nullptr;
  int best_score = -1;
  uint32_t group = 0;  // reuseport sockets with the best score
  for (UdpSocket* s = head; s != nullptr; s = s->next_) {
    int sc = s->score(dst_ip, src_ip, src_port);
    if (sc > best_score) {
      best = s;
      best_score = sc;
      group = s->reuseport_ ? 1 : 0;
    } else if (sc == best_score && group != 0) {
      group = s->reuseport_ ? group + 1 : 0;
    }
  }
  if (group <= 1) return best;
  uint32_t h = src_ip * 0x9e3779b1u ^ src_port * 0x85ebca6bu;
  h ^= h >> 16;
  uint32_t pick = h % group;
  for (UdpSocket* s = best; s != nullptr; s = s->next_) {
    if (s->score(dst_ip, src_ip, src_port) != best_score) continue;
    if (pick-- == 0) return s;
  }
  return best;
}

bool Engine::Impl::may_share(const UdpSocket* head, const UdpBindOptions& opt) {
  if (!opt.shared) return false;
  for (const UdpSocket* s = head; s != nullptr; s = s->next_)
    if (!s->shared_) return false;
  return true;
}

UdpSocket* Engine::Impl::new_socket(uint16_t port, const UdpBindOptions& opt) {
  auto* s = new UdpSocket(port, config.socket_queue_len);
  s->local_ip_ = opt.local_ip;
  s->shared_ = opt.shared;
  s->reuseport_ = opt.reuseport;
  s->local_only_ = opt.local_only;
  s->next_ = sockets[port];
  sockets[port] = s;
  return s;
}

bool Engine::Impl::unlink_socket(UdpSocket* sock) {
  for (UdpSocket** p = &sockets[sock->port()]; *p != nullptr; p = &(*p)->next_) {
    if (*p == sock) {
      *p = sock->next_;
      break;
    }
  }
  sock->next_ = nullptr;
  return sockets[sock->port()] == nullptr;
}

int Engine::udp_bind(uint16_t port, UdpSocket** out) {
  return udp_bind(port, UdpBindOptions{}, out);
}

int Engine::udp_bind(uint16_t port, const UdpBindOptions& opt, UdpSocket** out) {
  Impl& e = *impl_;
  if (e.attached) return e.attached_bind(port, opt, out);
  if (port == 0) {
    const PortRange& r = e.ephemeral;
    for (uint32_t tries = 0; tries <= static_cast<uint32_t>(r.last - r.first); tries++) {
      uint16_t p = e.next_ephemeral;
      e.next_ephemeral = p == r.last ? r.first : static_cast<uint16_t>(p + 1);
      if (e.sockets[p] == nullptr) {
        port = p;
        break;
      }
    }
    if (port == 0) return -EAGAIN;
  } else if (e.sockets[port] != nullptr) {
    // Joining sockets of ours: the port is steered here already.
    if (!Impl::may_share(e.sockets[port], opt)) return -EADDRINUSE;
    *out = e.new_socket(port, opt);
    return 0;
  }
  if (e.xdp != nullptr && e.config.xdp_shared_ip) {
    std::string err;
    if (!e.xdp->set_port(port, true, &err)) {
      MN_LOG(ENGINE, ERR, "cannot steer UDP port %u: %s", port, err.c_str());
      return -EIO;
    }
  }
  *out = e.new_socket(port, opt);
  return 0;
}

void Engine::udp_close(UdpSocket* sock) {
  if (sock == nullptr) return;
  Impl& e = *impl_;
  if (e.attached) {
    e.attached_close(sock);
    return;
  }
  if (e.unlink_socket(sock) && e.xdp != nullptr && e.config.xdp_shared_ip) {
    std::string err;
    e.xdp->set_port(sock->port(), false, &err);
  }
  e.socket_forget(sock);
  delete sock;
}

void Engine::udp_connect(UdpSocket* sock, uint32_t peer_ip, uint16_t peer_port) {
  sock->peer_ip_ = peer_port != 0 ? peer_ip : 0;
  sock->peer_port_ = peer_port;
}

int Engine::udp_sendto(UdpSocket* sock, uint32_t dst_ip, uint16_t dst_port, const void* data,
                       size_t len) {
  if (!impl_->usable()) return -ENETDOWN;
  iovec iov{const_cast<void*>(data), len};
  return impl_->udp_sendv(sock, dst_ip, dst_port, &iov, 1, true);
}

int Engine::udp_sendv(UdpSocket* sock, uint32_t dst_ip, uint16_t dst_port, const iovec* iov,
                      int iovcnt, bool flush) {
  if (!impl_->usable()) return -ENETDOWN;
  return impl_->udp_sendv(sock, dst_ip, dst_port, iov, iovcnt, flush);
}

void Engine::flush_tx() {
  if (impl_->usable()) impl_->tx_flush();
}

ssize_t Engine::Impl::read_slot(const UdpSocket::Slot& s, void* buf, size_t len, uint32_t* src_ip,
                                uint16_t* src_port) {
  size_t n = len < s.payload_len ? len : s.payload_len;
  if (n > 0) {
    // rte_pktmbuf_read copies only when the payload spans segments.
    const void* p = rte_pktmbuf_read(s.m, s.payload_off, static_cast<uint32_t>(n), buf);
    if (p != buf && p != nullptr) memcpy(buf, p, n);
  }
  if (src_ip) *src_ip = s.src_ip;
  if (src_port) *src_port = s.src_port;
  return s.payload_len;
}

ssize_t Engine::udp_recvfrom(UdpSocket* sock, void* buf, size_t len, uint32_t* src_ip,
                             uint16_t* src_port) {
  if (!impl_->usable()) return -ENETDOWN;
  if (sock->head_ == sock->tail_) {
    // Attached, the port fork-shared: the ring its holders read.
    uint16_t g = 0;
    rte_ring* r = impl_->shared_ring_of(sock->port(), &g);
    if (r == nullptr) return -EAGAIN;
    return impl_->shared_recv(sock, r, g, buf, len, src_ip, src_port, false);
  }
  UdpSocket::Slot& s = sock->slots_[sock->head_ % sock->capacity_];
  ssize_t full = Impl::read_slot(s, buf, len, src_ip, src_port);
  impl_->socket_gave(sock, s.m->nb_segs);
  rte_pktmbuf_free(s.m);
  sock->head_++;
  return full;
}

int Engine::udp_take_error(UdpSocket* sock, uint32_t* dst_ip, uint16_t* dst_port) {
  int e = sock->error_;
  if (dst_ip) *dst_ip = sock->error_ip_;
  if (dst_port) *dst_port = sock->error_port_;
  sock->error_ = 0;
  return e;
}

int Engine::udp_peek_error(const UdpSocket* sock, uint32_t* dst_ip, uint16_t* dst_port) const {
  if (dst_ip) *dst_ip = sock->error_ip_;
  if (dst_port) *dst_port = sock->error_port_;
  return sock->error_;
}

uint32_t Engine::udp_pending(const UdpSocket* sock) const {
  if (impl_->detached.load(std::memory_order_relaxed)) return 0;
  uint32_t n = sock->tail_ - sock->head_;
  // One shm load when the port is not fork-shared.
  if (rte_ring* r = impl_->shared_ring_of(sock->port(), nullptr)) n += rte_ring_count(r);
  return n;
}

ssize_t Engine::udp_peek(UdpSocket* sock, void* buf, size_t len, uint32_t* src_ip,
                         uint16_t* src_port, bool* from_ring) {
  if (!impl_->usable()) return -ENETDOWN;
  if (sock->head_ != sock->tail_) {
    *from_ring = false;
    return Impl::read_slot(sock->slots_[sock->head_ % sock->capacity_], buf, len, src_ip, src_port);
  }
  *from_ring = true;
  uint16_t g = 0;
  rte_ring* r = impl_->shared_ring_of(sock->port(), &g);
  if (r == nullptr) return -EAGAIN;
  return impl_->shared_recv(sock, r, g, buf, len, src_ip, src_port, true);
}

uint64_t Engine::udp_shared_seq(const UdpSocket* sock) const {
  rte_ring* r = impl_->shared_ring_of(sock->port(), nullptr);
  return r == nullptr ? 0 : ring_gap(r, RingSide::kProducer).tail;
}

uint64_t Engine::shared_arrivals() const {
  const Impl& e = *impl_;
  if (!e.attached || e.shm == nullptr || e.detached.load(std::memory_order_relaxed)) return 0;
  uint64_t n = 0;
  for (const rte_ring* r : e.shm->shared_rings)
    if (r != nullptr) n += ring_gap(r, RingSide::kProducer).tail;
  return n;
}

const EngineCounters& Engine::counters() const {
  return impl_->counters;
}
uint64_t Engine::now_ns() const {
  return impl_->now_ns();
}
uint32_t Engine::ip() const {
  return impl_->config.ip;
}
uint16_t Engine::port_id() const {
  return impl_->port_id;
}

void Engine::print_counters(FILE* out) const {
  const EngineCounters& c = impl_->counters;
  fprintf(out,
          "engine counters: rx %" PRIu64 " pkts %" PRIu64 " B, tx %" PRIu64 " pkts %" PRIu64
          " B, udp rx %" PRIu64 " tx %" PRIu64 ", arp rx %" PRIu64 " tx %" PRIu64
          ", icmp echo replies %" PRIu64 " unreachable rx %" PRIu64 " tx %" PRIu64
          ", fragments rx %" PRIu64 " reassembled %" PRIu64 " tx %" PRIu64 "\n",
          c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes, c.udp_rx, c.udp_tx, c.rx_arp,
          c.tx_arp, c.icmp_echo_replies, c.icmp_unreachable_rx, c.icmp_unreachable_tx,
          c.rx_fragments, c.reassembled, c.tx_fragments);
  if (impl_->attached)
    fprintf(out,
            "machnetd steering: out %" PRIu64 ", in %" PRIu64 ", drops %" PRIu64
            "; queue rx %" PRIu64 " pkts %" PRIu64 " B%s\n",
            c.steered_out, c.steered_in, c.steer_drops, impl_->queue_rx_packets,
            impl_->queue_rx_bytes, failure() != 0 ? "; DETACHED (machnetd gone)" : "");
  fprintf(out, "engine drops: %" PRIu64 " total", c.total_drops());
  for (size_t i = 0; i < kDropReasonCount; i++) {
    if (c.drops[i] != 0)
      fprintf(out, ", %s %" PRIu64, drop_reason_name(static_cast<DropReason>(i)), c.drops[i]);
  }
  fprintf(out, "\n");
}

std::string Engine::describe() const {
  const Impl& e = *impl_;
  if (e.attached) return e.describe_attached();
  std::string s = e.device_name + " (port " + std::to_string(e.port_id) + ") ip " +
                  wire::format_ipv4(e.config.ip) + "/" + std::to_string(e.config.prefix_len) +
                  " mac " + wire::format_mac(e.mac) + " mtu " + std::to_string(e.mtu) +
                  ", checksums: ip " + (e.tx_ip_csum ? "offloaded" : "software") + ", udp " +
                  (e.tx_udp_csum ? "offloaded" : "software");
  if (e.xdp != nullptr)
    s += std::string(", xdp steering on ") + e.iface +
         (e.config.xdp_shared_ip ? " (shared IP: bound UDP ports and ICMP errors about them; ARP "
                                   "and the rest to the kernel, neighbours from its table)"
                                 : " (own IP: ARP and IPv4 for it)");
  return s;
}

}  // namespace machnet::engine
