// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
//
// machnet XDP steering program.
//
// Loaded by DPDK's net_af_xdp PMD through the devargs "xdp_prog=<this .o>":
// the PMD loads the first program of the object, attaches it to the interface
// and inserts its AF_XDP socket for queue q at key q of the map "xsks_map".
// The engine then configures the program through the maps below
// (src/engine/xdp_steering.{h,cc}).
//
// Steered to the AF_XDP socket of the receive queue (everything else goes to
// the kernel with XDP_PASS; so does a steered packet when no socket is bound on
// that queue):
//   mode 0, "own IP" (the engine has an IPv4 address of its own):
//     - ARP frames whose target protocol address is the engine's IP;
//     - IPv4 packets whose destination is the engine's IP: every protocol,
//       fragments included.
//   mode 1, "shared IP" (the engine uses the kernel's address):
//     - non-fragmented IPv4/UDP packets to the engine's IP whose destination
//       port is marked in mn_ports;
//     - ICMP destination unreachable about a UDP datagram the engine sent
//       (quoted source address the engine's, source port marked): a plain
//       peer refusing a stream probe answers with one, and the engine must
//       see it to fall back to kernel TCP after one round trip.
//     ARP, other ICMP, fragments and all other ports stay with the kernel.
// While mn_config.engine_ip is 0 (not configured yet) everything passes.
//
// Untagged Ethernet only; 802.1Q-tagged frames pass to the kernel.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Keep in sync with src/engine/xdp_steering.cc (checked there at run time
// through the map's value size).
struct mn_config {
  __u32 engine_ip;  // network byte order; 0 = not configured
  __u32 mode;       // MN_MODE_*
};

#define MN_MODE_OWN_IP 0
#define MN_MODE_SHARED_IP 1

// mn_stats keys.
enum {
  MN_STAT_REDIRECTED = 0,  // handed to an AF_XDP socket
  MN_STAT_PASSED = 1,      // given to the kernel (includes NO_SOCKET)
  MN_STAT_NO_SOCKET = 2,   // matched, but no AF_XDP socket on that queue
  MN_STAT_MAX = 3,
};

#define MN_MAX_QUEUES 256  // xsks_map slots: rx queues 0..255

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, MN_MAX_QUEUES);
  __type(key, __u32);
  __type(value, __u32);
} xsks_map SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct mn_config);
} mn_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, __u8);
} mn_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, MN_STAT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} mn_stats SEC(".maps");

// The ARP payload for Ethernet/IPv4 (struct arphdr stops before the addresses).
struct mn_arp_ipv4 {
  __be16 htype;
  __be16 ptype;
  __u8 hlen;
  __u8 plen;
  __be16 oper;
  __u8 sha[ETH_ALEN];
  __u8 spa[4];
  __u8 tha[ETH_ALEN];
  __u8 tpa[4];
} __attribute__((packed));

// The fixed part of an ICMP message (linux/icmp.h drags in more headers).
struct mn_icmp {
  __u8 type;
  __u8 code;
  __be16 checksum;
  __be32 rest;
} __attribute__((packed));
#define MN_ICMP_DEST_UNREACH 3

#define MN_ARPHRD_ETHER 1  // linux/if_arp.h drags in libc headers
#define MN_IP_MF 0x2000
#define MN_IP_OFFSET 0x1fff

static __always_inline void count(__u32 key) {
  __u64* v = bpf_map_lookup_elem(&mn_stats, &key);
  if (v) *v += 1;
}

static __always_inline int pass(void) {
  count(MN_STAT_PASSED);
  return XDP_PASS;
}

static __always_inline int steer(struct xdp_md* ctx) {
  long ret = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
  if (ret == XDP_REDIRECT) {
    count(MN_STAT_REDIRECTED);
  } else {
    count(MN_STAT_NO_SOCKET);
    count(MN_STAT_PASSED);
  }
  return (int)ret;
}

static __always_inline int marked_port(__be16 port_be) {
  __u32 port = bpf_ntohs(port_be);
  __u8* marked = bpf_map_lookup_elem(&mn_ports, &port);
  return marked && *marked;
}

// Shared IP: an ICMP destination unreachable quoting a UDP datagram from one
// of the engine's ports (RFC 792: the quoted IP header and 8 bytes past it).
static __always_inline int shared_ip_icmp(struct xdp_md* ctx, struct iphdr* ip, void* data_end,
                                          __u32 engine_ip) {
  __u32 ihl_bytes = (__u32)ip->ihl * 4;
  struct mn_icmp* icmp = (void*)ip + ihl_bytes;
  if ((void*)(icmp + 1) > data_end) return pass();
  if (icmp->type != MN_ICMP_DEST_UNREACH) return pass();
  struct iphdr* quoted = (void*)(icmp + 1);
  if ((void*)(quoted + 1) > data_end) return pass();
  if (quoted->version != 4 || quoted->ihl < 5 || quoted->protocol != IPPROTO_UDP ||
      quoted->saddr != engine_ip)
    return pass();
  __u32 quoted_ihl = (__u32)quoted->ihl * 4;
  struct udphdr* udp = (void*)quoted + quoted_ihl;
  if ((void*)(udp + 1) > data_end) return pass();
  return marked_port(udp->source) ? steer(ctx) : pass();
}

SEC("xdp")
int machnet_xdp(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;

  __u32 zero = 0;
  struct mn_config* cfg = bpf_map_lookup_elem(&mn_config, &zero);
  if (!cfg) return pass();
  __u32 engine_ip = cfg->engine_ip;
  __u32 mode = cfg->mode;
  if (engine_ip == 0) return pass();

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return pass();

  if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
    if (mode != MN_MODE_OWN_IP) return pass();
    struct mn_arp_ipv4* arp = (void*)(eth + 1);
    if ((void*)(arp + 1) > data_end) return pass();
    if (arp->htype != bpf_htons(MN_ARPHRD_ETHER) || arp->ptype != bpf_htons(ETH_P_IP) ||
        arp->hlen != ETH_ALEN || arp->plen != 4)
      return pass();
    __u32 tpa;
    __builtin_memcpy(&tpa, arp->tpa, sizeof(tpa));
    return tpa == engine_ip ? steer(ctx) : pass();
  }

  if (eth->h_proto != bpf_htons(ETH_P_IP)) return pass();

  struct iphdr* ip = (void*)(eth + 1);
  if ((void*)(ip + 1) > data_end) return pass();
  if (ip->version != 4 || ip->ihl < 5) return pass();
  if (ip->daddr != engine_ip) return pass();

  if (mode == MN_MODE_OWN_IP) return steer(ctx);
  if (mode != MN_MODE_SHARED_IP) return pass();

  // Shared IP: whole UDP datagrams to a marked port, and ICMP errors about
  // the engine's own datagrams.
  if (ip->frag_off & bpf_htons(MN_IP_MF | MN_IP_OFFSET)) return pass();
  if (ip->protocol == IPPROTO_ICMP) return shared_ip_icmp(ctx, ip, data_end, engine_ip);
  if (ip->protocol != IPPROTO_UDP) return pass();
  __u32 ihl_bytes = (__u32)ip->ihl * 4;  // 20..60
  struct udphdr* udp = (void*)ip + ihl_bytes;
  if ((void*)(udp + 1) > data_end) return pass();
  return marked_port(udp->dest) ? steer(ctx) : pass();
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
