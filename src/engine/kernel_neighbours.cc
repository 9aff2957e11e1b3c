// Neighbour resolution through the kernel over rtnetlink: see kernel_neighbours.h.
#include "engine/kernel_neighbours.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

namespace machnet::engine {

namespace {

// Receive buffer: the kernel sizes dump datagrams to at most ~32 KiB; twice
// that leaves room, and a larger datagram is truncated (then the tail is
// simply not parsed: nl_ok() stops at the cut).
constexpr size_t kBufSize = 64 * 1024;
constexpr int kMaxRecvPerPoll = 64;
constexpr int kReplyWaitMs = 100;
constexpr int kMaxDumpDatagrams = 4096;
constexpr uint16_t kDiscardPort = 9;
constexpr int kNotifyRcvBuf = 1 << 20;

constexpr uint16_t kUsableStates =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;

std::string errno_str(const char* what, int e) {
  return std::string(what) + ": " + strerror(e);
}

void set_err(std::string* err, const std::string& s) {
  if (err != nullptr) *err = s;
}

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// NLMSG_OK / NLMSG_NEXT as functions: the same checks (header fits, length
// sane, message within what is left) on an unsigned remaining length that
// cannot wrap when the last message's aligned length overshoots the buffer
// (the macros compare signed with unsigned).
bool nl_ok(const nlmsghdr* nh, size_t left) {
  return left >= sizeof(nlmsghdr) && nh->nlmsg_len >= sizeof(nlmsghdr) && nh->nlmsg_len <= left;
}

nlmsghdr* nl_next(nlmsghdr* nh, size_t* left) {
  const size_t step = NLMSG_ALIGN(nh->nlmsg_len);
  if (step >= *left) {
    *left = 0;
    return nh;
  }
  *left -= step;
  return reinterpret_cast<nlmsghdr*>(reinterpret_cast<char*>(nh) + step);
}

// A neighbour message (RTM_NEWNEIGH / RTM_DELNEIGH) of family AF_INET.
struct NeighMsg {
  int ifindex = 0;
  uint16_t state = 0;
  uint8_t flags = 0;
  bool has_dst = false;
  bool has_mac = false;
  uint32_t ip_host = 0;
  KernelNeighbours::Mac mac{};
};

// Parses the ndmsg header and attributes of nh (already checked with
// nl_ok()). False if it is not an IPv4 neighbour message or is malformed.
bool parse_neigh(const nlmsghdr* nh, NeighMsg* out) {
  if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return false;
  const auto* ndm = static_cast<const ndmsg*>(NLMSG_DATA(nh));
  if (ndm->ndm_family != AF_INET) return false;
  out->ifindex = ndm->ndm_ifindex;
  out->state = ndm->ndm_state;
  out->flags = ndm->ndm_flags;
  int attrlen = static_cast<int>(nh->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg)));
  // RTA_NEXT needs a non-const pointer; nothing is written through it.
  auto* rta = reinterpret_cast<rtattr*>(
      const_cast<char*>(reinterpret_cast<const char*>(ndm) + NLMSG_ALIGN(sizeof(ndmsg))));
  for (; RTA_OK(rta, attrlen); rta = RTA_NEXT(rta, attrlen)) {
    const size_t plen = RTA_PAYLOAD(rta);
    if (rta->rta_type == NDA_DST) {
      if (plen != 4) return false;
      uint32_t be = 0;
      std::memcpy(&be, RTA_DATA(rta), 4);
      out->ip_host = ntohl(be);
      out->has_dst = true;
    } else if (rta->rta_type == NDA_LLADDR) {
      if (plen == out->mac.size()) {
        std::memcpy(out->mac.data(), RTA_DATA(rta), out->mac.size());
        out->has_mac = true;
      }
    }
  }
  return out->has_dst;
}

bool usable(const NeighMsg& n) {
  if ((n.state & kUsableStates) == 0 || !n.has_mac) return false;
  if (n.flags & NTF_PROXY) return false;
  for (uint8_t b : n.mac) {
    if (b != 0) return true;
  }
  return false;  // an all-zero address is no answer
}

// Appends an attribute to the message in buf (capacity cap); false if full.
bool add_attr(nlmsghdr* nh, size_t cap, uint16_t type, const void* data, size_t len) {
  const size_t off = NLMSG_ALIGN(nh->nlmsg_len);
  if (off + RTA_SPACE(len) > cap) return false;
  auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(nh) + off);
  rta->rta_type = type;
  rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(rta), data, len);
  nh->nlmsg_len = static_cast<uint32_t>(off + RTA_SPACE(len));
  return true;
}

// A request: header, ndmsg, room for one or two small attributes.
struct NeighRequest {
  alignas(NLMSG_ALIGNTO) char buf[NLMSG_SPACE(sizeof(ndmsg)) + 2 * RTA_SPACE(16)];
  nlmsghdr* nh() { return reinterpret_cast<nlmsghdr*>(buf); }
  ndmsg* ndm() { return static_cast<ndmsg*>(NLMSG_DATA(nh())); }

  NeighRequest(uint16_t type, uint16_t flags, uint32_t seq, int ifindex) {
    std::memset(buf, 0, sizeof(buf));
    nh()->nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
    nh()->nlmsg_type = type;
    nh()->nlmsg_flags = flags;
    nh()->nlmsg_seq = seq;
    ndm()->ndm_family = AF_INET;
    ndm()->ndm_ifindex = ifindex;
  }
  bool add_dst(uint32_t ip_host) {
    const uint32_t be = htonl(ip_host);
    return add_attr(nh(), sizeof(buf), NDA_DST, &be, sizeof(be));
  }
  bool add_ifindex(int ifindex) {
    const uint32_t v = static_cast<uint32_t>(ifindex);
    return add_attr(nh(), sizeof(buf), NDA_IFINDEX, &v, sizeof(v));
  }
};

int send_to_kernel(int fd, nlmsghdr* nh) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    const ssize_t n =
        sendto(fd, nh, nh->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
    if (n >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

// One datagram from a netlink socket, without waiting (recvmsg's result and
// errno). *from_kernel: the kernel sent it (port id 0), not another process.
ssize_t recv_netlink(int fd, void* buf, size_t cap, bool* from_kernel) {
  sockaddr_nl from{};
  iovec iov{buf, cap};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof(from);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  const ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  *from_kernel = from.nl_pid == 0;
  return n;
}

int open_netlink(uint32_t groups, std::string* err) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    set_err(err, errno_str("socket(NETLINK_ROUTE)", errno));
    return -1;
  }
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = groups;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    set_err(err, errno_str("bind(NETLINK_ROUTE)", errno));
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

KernelNeighbours::~KernelNeighbours() {
  close();
}

void KernelNeighbours::close() {
  for (int* fd : {&notify_fd_, &query_fd_, &udp_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  ifindex_ = 0;
  ifname_.clear();
  netlink_refused_ = false;
}

bool KernelNeighbours::open(const std::string& ifname, std::string* err) {
  close();
  if (ifname.empty() || ifname.size() >= IF_NAMESIZE) {
    set_err(err, "invalid interface name '" + ifname + "'");
    return false;
  }
  const unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) {
    set_err(err, errno_str(("interface '" + ifname + "'").c_str(), errno));
    return false;
  }
  if (!buf_) buf_.reset(new uint8_t[kBufSize]);

  // Subscribe before anything can be requested, so no answer is missed.
  notify_fd_ = open_netlink(RTMGRP_NEIGH, err);
  if (notify_fd_ < 0) return false;
  // A larger buffer makes overruns rarer on a busy host (every interface's
  // neighbour changes are multicast to us). FORCE needs CAP_NET_ADMIN.
  int rcvbuf = kNotifyRcvBuf;
  if (setsockopt(notify_fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0) {
    (void)setsockopt(notify_fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  query_fd_ = open_netlink(0, err);
  if (query_fd_ < 0) {
    close();
    return false;
  }
  // Let the kernel filter a dump by ifindex (Linux >= 4.20); harmless if not.
  int one = 1;
  (void)setsockopt(query_fd_, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
  // Acks without the echoed request.
  (void)setsockopt(query_fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  ifname_ = ifname;
  ifindex_ = static_cast<int>(idx);
  return true;
}

ssize_t KernelNeighbours::recv_reply(uint32_t seq) {
  const int64_t deadline = now_ms() + kReplyWaitMs;
  for (;;) {
    bool from_kernel;
    const ssize_t n = recv_netlink(query_fd_, buf_.get(), kBufSize, &from_kernel);
    const int64_t left = deadline - now_ms();
    if (n < 0) {
      // ENOBUFS: replies were dropped; ours may still come (or time out).
      if (errno != EINTR && errno != ENOBUFS && errno != EAGAIN && errno != EWOULDBLOCK) {
        return -1;
      }
      if (left <= 0) return -1;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{query_fd_, POLLIN, 0};
        (void)::poll(&p, 1, static_cast<int>(left));
      }
      continue;
    }
    const auto* nh = reinterpret_cast<const nlmsghdr*>(buf_.get());
    // Only the kernel's reply to this query; anything else (a stale reply to
    // an abandoned query, a message from another process) is dropped.
    if (from_kernel && nl_ok(nh, static_cast<size_t>(n)) && nh->nlmsg_seq == seq) return n;
    if (left <= 0) return -1;
  }
}

bool KernelNeighbours::lookup_get(uint32_t ip_host, Mac* mac, bool* unsupported) {
  *unsupported = false;
  const uint32_t seq = ++seq_;
  NeighRequest req(RTM_GETNEIGH, NLM_F_REQUEST, seq, ifindex_);
  if (!req.add_dst(ip_host)) return false;
  if (send_to_kernel(query_fd_, req.nh()) != 0) return false;
  const ssize_t n = recv_reply(seq);
  if (n < 0) return false;
  size_t len = static_cast<size_t>(n);
  for (auto* nh = reinterpret_cast<nlmsghdr*>(buf_.get()); nl_ok(nh, len); nh = nl_next(nh, &len)) {
    if (nh->nlmsg_type == NLMSG_ERROR) {
      if (nh->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
        int code = 0;
        std::memcpy(&code, NLMSG_DATA(nh), sizeof(code));
        // No targeted get before Linux 5.0 (EOPNOTSUPP); ENOENT = no entry.
        if (code == -EOPNOTSUPP || code == -EINVAL) *unsupported = true;
      }
      return false;
    }
    if (nh->nlmsg_type != RTM_NEWNEIGH) continue;
    NeighMsg m;
    if (!parse_neigh(nh, &m) || m.ifindex != ifindex_ || m.ip_host != ip_host) continue;
    if (!usable(m)) return false;
    *mac = m.mac;
    return true;
  }
  return false;
}

bool KernelNeighbours::lookup_dump(uint32_t ip_host, Mac* mac) {
  if (!is_open() || mac == nullptr) return false;
  const uint32_t seq = ++seq_;
  // A dump filters on the NDA_IFINDEX attribute; with strict checking a
  // non-zero ndm_ifindex in a dump request is rejected (EINVAL). Entries of
  // other interfaces are skipped below anyway (kernels without the filter).
  NeighRequest req(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq, 0);
  if (!req.add_ifindex(ifindex_)) return false;
  if (send_to_kernel(query_fd_, req.nh()) != 0) return false;
  bool found = false;
  // Read to NLMSG_DONE so that no half-read dump blocks the next query.
  for (int i = 0; i < kMaxDumpDatagrams; i++) {
    const ssize_t n = recv_reply(seq);
    if (n < 0) return found;
    size_t len = static_cast<size_t>(n);
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf_.get()); nl_ok(nh, len);
         nh = nl_next(nh, &len)) {
      if (nh->nlmsg_type == NLMSG_DONE || nh->nlmsg_type == NLMSG_ERROR) return found;
      if (nh->nlmsg_type != RTM_NEWNEIGH || found) continue;
      NeighMsg m;
      if (!parse_neigh(nh, &m) || m.ifindex != ifindex_ || m.ip_host != ip_host) continue;
      if (usable(m)) {
        *mac = m.mac;
        found = true;
      }
    }
  }
  return found;
}

bool KernelNeighbours::lookup(uint32_t ip_host, Mac* mac) {
  if (!is_open() || mac == nullptr) return false;
  bool unsupported = false;
  if (lookup_get(ip_host, mac, &unsupported)) return true;
  return unsupported && lookup_dump(ip_host, mac);
}

int KernelNeighbours::request_netlink(uint32_t ip_host) {
  const uint32_t seq = ++seq_;
  // NTF_USE: neigh_event_send() on the (created if needed) entry, i.e. "a
  // packet wants this neighbour". ndm_state stays NUD_NONE: a new entry then
  // stays subject to garbage collection (iproute2's default NUD_PERMANENT
  // would exempt it), and the state is not applied with NTF_USE anyway.
  NeighRequest req(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq,
                   ifindex_);
  req.ndm()->ndm_state = NUD_NONE;
  req.ndm()->ndm_flags = NTF_USE;
  if (!req.add_dst(ip_host)) return EINVAL;
  if (const int e = send_to_kernel(query_fd_, req.nh()); e != 0) return e;
  const ssize_t n = recv_reply(seq);
  if (n < 0) return ETIMEDOUT;
  size_t len = static_cast<size_t>(n);
  for (auto* nh = reinterpret_cast<nlmsghdr*>(buf_.get()); nl_ok(nh, len); nh = nl_next(nh, &len)) {
    if (nh->nlmsg_type != NLMSG_ERROR) continue;
    if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(int))) return EPROTO;
    int code = 0;
    std::memcpy(&code, NLMSG_DATA(nh), sizeof(code));
    return code <= 0 ? -code : EPROTO;
  }
  return EPROTO;
}

int KernelNeighbours::request_udp(uint32_t ip_host) {
  if (udp_fd_ < 0) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    // Out of our interface even if routing would pick another one. Binding
    // to a device needs CAP_NET_RAW only on kernels before 5.7.
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname_.c_str(),
                   static_cast<socklen_t>(ifname_.size())) != 0) {
      const int e = errno;
      ::close(fd);
      return e;
    }
    udp_fd_ = fd;
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(kDiscardPort);
  dst.sin_addr.s_addr = htonl(ip_host);
  for (;;) {
    if (sendto(udp_fd_, "", 0, 0, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) >= 0) return 0;
    if (errno == EINTR) continue;
    // EAGAIN: the socket's send buffer is full of datagrams already waiting
    // for this (or another) neighbour, i.e. resolution is under way.
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return errno;
  }
}

bool KernelNeighbours::request(uint32_t ip_host, std::string* err) {
  if (!is_open()) {
    set_err(err, "KernelNeighbours: not open");
    return false;
  }
  if (method_ == RequestMethod::kNetlink ||
      (method_ == RequestMethod::kAuto && !netlink_refused_)) {
    const int e = request_netlink(ip_host);
    if (e == 0) {
      last_method_ = RequestMethod::kNetlink;
      return true;
    }
    const bool refused = e == EPERM || e == EACCES || e == EOPNOTSUPP || e == EINVAL;
    if (method_ == RequestMethod::kNetlink || !refused) {
      set_err(err, errno_str("RTM_NEWNEIGH (NTF_USE)", e));
      return false;
    }
    netlink_refused_ = true;  // it will not change: go straight to UDP from now on
  }
  const int e = request_udp(ip_host);
  if (e != 0) {
    set_err(err, errno_str("UDP probe to port 9", e));
    return false;
  }
  last_method_ = RequestMethod::kUdp;
  return true;
}

size_t KernelNeighbours::parse(const void* buf, size_t len, int ifindex, UsableFn fn, void* ctx,
                               LostFn lost) {
  if (buf == nullptr) return 0;
  size_t calls = 0;
  size_t left = len;
  // nl_next needs a non-const pointer; nothing is written through it.
  for (auto* nh = reinterpret_cast<nlmsghdr*>(const_cast<void*>(buf)); nl_ok(nh, left);
       nh = nl_next(nh, &left)) {
    if (nh->nlmsg_type != RTM_NEWNEIGH && nh->nlmsg_type != RTM_DELNEIGH) continue;
    NeighMsg m;
    if (!parse_neigh(nh, &m) || m.ifindex != ifindex) continue;
    if (m.flags & NTF_PROXY) continue;
    if (nh->nlmsg_type == RTM_NEWNEIGH && usable(m)) {
      if (fn != nullptr) {
        fn(ctx, m.ip_host, m.mac);
        calls++;
      }
    } else if (nh->nlmsg_type == RTM_DELNEIGH || (m.state & NUD_FAILED)) {
      if (lost != nullptr) {
        lost(ctx, m.ip_host);
        calls++;
      }
    }
  }
  return calls;
}

size_t KernelNeighbours::poll(UsableFn fn, void* ctx, LostFn lost) {
  if (!is_open()) return 0;
  size_t calls = 0;
  for (int i = 0; i < kMaxRecvPerPoll; i++) {
    bool from_kernel;
    const ssize_t n = recv_netlink(notify_fd_, buf_.get(), kBufSize, &from_kernel);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {  // the kernel dropped notifications
        overruns_++;
        continue;
      }
      break;  // EAGAIN: drained (or an error that retrying will not fix)
    }
    if (!from_kernel) continue;  // only the kernel speaks here
    const size_t got = static_cast<size_t>(n) < kBufSize ? static_cast<size_t>(n) : kBufSize;
    calls += parse(buf_.get(), got, ifindex_, fn, ctx, lost);
  }
  return calls;
}

}  // namespace machnet::engine
