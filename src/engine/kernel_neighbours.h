// Neighbour (ARP) resolution through the kernel, for shared-IP mode.
//
// In shared-IP mode (xdp_shared_ip = yes) the XDP program steers only the
// engine's UDP ports to the engine: ARP, ICMP and everything else stay with
// the kernel, which owns the same IPv4 address on the interface. The engine
// therefore never sees an ARP reply and cannot resolve neighbours itself; it
// asks the kernel instead, over a raw NETLINK_ROUTE socket (no libnl):
//
//   KernelNeighbours kn;
//   kn.open("eth1", &err);                 // once, in the interface's netns
//   if (!kn.lookup(ip, &mac))              // miss:
//     kn.request(ip, &err);                //   kernel starts ARP for ip
//   ...
//   kn.poll(on_usable, ctx, on_failed);    // from the engine's timer / when
//                                          // fd() is readable: learn results
//
// Maps onto net::ArpCache: ArpEvents::send_request(ip) -> request(ip) (also
// right for refreshing a stale entry: the kernel re-probes it), and every
// usable notification from poll() -> the cache's "answer received" path. The
// engine's own retry timer keeps working: request() is idempotent while the
// kernel is resolving, and restarts probing once the kernel gave up (FAILED).
//
// Plain C++17 + Linux headers, no DPDK. All sockets are non-blocking and
// close-on-exec. Not thread-safe: one owner thread (the engine's).
// Every netlink message is parsed with NLMSG_OK / RTA_OK bounds checks; a
// malformed or truncated message is skipped, never trusted.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace machnet::engine {

class KernelNeighbours {
 public:
  using Mac = std::array<uint8_t, 6>;
  // An entry for ip_host (host byte order) on our interface became usable
  // (NUD_REACHABLE|STALE|DELAY|PROBE|PERMANENT|NOARP) with this MAC.
  using UsableFn = void (*)(void* ctx, uint32_t ip_host, const Mac& mac);
  // The kernel gave up on ip_host (NUD_FAILED) or deleted its entry.
  using LostFn = void (*)(void* ctx, uint32_t ip_host);

  // How request() asks the kernel to resolve (see request()).
  enum class RequestMethod : uint8_t {
    kAuto,     // netlink NTF_USE; UDP probe if the kernel refuses it (e.g. no CAP_NET_ADMIN)
    kNetlink,  // only RTM_NEWNEIGH + NTF_USE
    kUdp,      // only the zero-length UDP datagram to port 9
  };

  KernelNeighbours() = default;
  ~KernelNeighbours();
  KernelNeighbours(const KernelNeighbours&) = delete;
  KernelNeighbours& operator=(const KernelNeighbours&) = delete;

  // Opens two NETLINK_ROUTE sockets in the caller's network namespace: one
  // subscribed to neighbour notifications (RTNLGRP_NEIGH; fd()), one for
  // queries so that replies never interleave with notifications. ifname must
  // exist. Calling open() again closes the previous sockets first.
  // Allocates its receive buffer here (poll() and lookup() never allocate).
  bool open(const std::string& ifname, std::string* err);
  void close();
  bool is_open() const { return notify_fd_ >= 0; }

  // Asks the kernel for its entry of ip_host on our interface (targeted
  // RTM_GETNEIGH; a filtered dump on kernels before 5.0). True and *mac set
  // if the entry is usable. Does not wait for the network: rtnetlink answers
  // a query synchronously, so the reply is already queued when send returns
  // (a bounded 100 ms wait covers the pathological case).
  bool lookup(uint32_t ip_host, Mac* mac);
  // lookup() through a dump of the interface's IPv4 neighbours only (the
  // path lookup() takes on kernels without targeted RTM_GETNEIGH, < 5.0).
  bool lookup_dump(uint32_t ip_host, Mac* mac);

  // Makes the kernel resolve ip_host (the next hop: an address on the
  // interface's subnet) so that a later lookup() or notification succeeds.
  // Returns at once; the result arrives through poll(). Safe to call again
  // while resolution is in progress. How, by default:
  //
  //  * RTM_NEWNEIGH with NLM_F_CREATE|NLM_F_REPLACE and ndm_flags = NTF_USE.
  //    The kernel creates the entry if needed and calls neigh_event_send()
  //    on it, exactly as if it had a packet to send: NONE/FAILED -> INCOMPLETE
  //    with broadcast ARP requests, STALE -> DELAY -> PROBE (unicast
  //    re-confirmation), REACHABLE -> nothing. No packet goes to the peer.
  //    ("ip neigh replace IP dev IF use" does the same.)
  //    Adding an entry with ndm_state = NUD_INCOMPLETE does NOT work: the
  //    kernel's __neigh_update() just stores a non-valid state without
  //    starting the timer, so no ARP request is ever sent and the entry sits
  //    INCOMPLETE. Needs CAP_NET_ADMIN in the netns (the engine has it: it
  //    attaches XDP programs).
  //  * Fallback (kernel refuses NTF_USE: EPERM, EOPNOTSUPP, EINVAL): one
  //    zero-length UDP datagram to ip_host:9 (discard) from a kernel UDP
  //    socket bound to the device (SO_BINDTODEVICE). The kernel's output path
  //    resolves the neighbour and queues the datagram until it has. It does
  //    put a packet on the wire (the peer may answer ICMP port unreachable,
  //    which the unconnected socket ignores), hence only the fallback.
  //
  // An entry that is already usable produces no notification (its state does
  // not change): lookup() before request(). After the kernel refused NTF_USE
  // once, kAuto uses the UDP probe directly until the next open().
  bool request(uint32_t ip_host, std::string* err);
  void set_request_method(RequestMethod m) { method_ = m; }
  // The method the last successful request() used (kNetlink or kUdp).
  RequestMethod last_request_method() const { return last_method_; }

  // Drains pending notifications without blocking and calls fn for each
  // entry of our interface that is usable, and lost (if not null) for each
  // entry that failed or was deleted. Returns the number of callbacks made.
  // No allocation; at most 64 receives per call (call again while fd() is
  // readable). Notifications may repeat (e.g. REACHABLE -> STALE): the
  // callback must be idempotent. If the socket buffer overflowed,
  // overruns() grows: notifications were lost, so lookup() what is pending.
  size_t poll(UsableFn fn, void* ctx, LostFn lost = nullptr);

  // The notification socket: readable when poll() has work (for epoll).
  int fd() const { return notify_fd_; }
  int ifindex() const { return ifindex_; }
  const std::string& ifname() const { return ifname_; }
  uint64_t overruns() const { return overruns_; }

  // Parses a buffer of netlink messages as poll() does (exposed for tests:
  // any byte string is safe; buf must be 4-byte aligned, as netlink
  // buffers are). Messages for other interfaces or families
  // are ignored. Returns the number of callbacks made.
  static size_t parse(const void* buf, size_t len, int ifindex, UsableFn fn, void* ctx,
                      LostFn lost);

 private:
  bool lookup_get(uint32_t ip_host, Mac* mac, bool* unsupported);
  // Receives the next reply to sequence number seq on query_fd_ into buf_
  // (waiting at most ~100 ms). Returns its length, or -1.
  ssize_t recv_reply(uint32_t seq);
  int request_netlink(uint32_t ip_host);  // 0 or a positive errno
  int request_udp(uint32_t ip_host);      // 0 or a positive errno

  std::string ifname_;
  int ifindex_ = 0;
  int notify_fd_ = -1;
  int query_fd_ = -1;
  int udp_fd_ = -1;  // created on first UDP request
  uint32_t seq_ = 0;
  uint64_t overruns_ = 0;
  RequestMethod method_ = RequestMethod::kAuto;
  RequestMethod last_method_ = RequestMethod::kAuto;
  bool netlink_refused_ = false;
  std::unique_ptr<uint8_t[]> buf_;
};

}  // namespace machnet::engine
