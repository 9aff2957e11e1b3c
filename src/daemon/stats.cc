#include "daemon/stats.h"

#include "daemon/leases.h"
#include "daemon/services.h"

#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_memzone.h>
#include <rte_ring.h>
#include <rte_telemetry.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "daemon/clock.h"

namespace machnet::daemon {
namespace {

// Minimal JSON writer: objects, arrays, numbers, escaped strings.
class Json {
 public:
  void open(char c) {
    sep();
    s_ += c;
    first_ = true;
  }
  void close(char c) {
    s_ += c;
    first_ = false;
  }
  void key(const char* k) {
    sep();
    str_raw(k);
    s_ += ':';
    first_ = true;  // the value follows without a comma
  }
  void u(const char* k, uint64_t v) {
    key(k);
    num(v);
  }
  // A value already in JSON.
  void raw(const char* k, const std::string& v) {
    key(k);
    sep();
    s_ += v;
  }
  void i(const char* k, int64_t v) {
    key(k);
    sep();
    s_ += std::to_string(v);
  }
  void d(const char* k, double v) {
    key(k);
    sep();
    char b[32];
    std::snprintf(b, sizeof(b), "%.3f", v);
    s_ += b;
  }
  void str(const char* k, const std::string& v) {
    key(k);
    sep();
    str_raw(v);
  }
  void num(uint64_t v) {
    sep();
    s_ += std::to_string(v);
  }
  const std::string& text() const { return s_; }
  size_t size() const { return s_.size(); }
  void truncate(size_t n) { s_.resize(n); }
  void set_first(bool f) { first_ = f; }

 private:
  void sep() {
    if (!first_) s_ += ',';
    first_ = false;
  }
  void str_raw(const std::string& v) {
    s_ += '"';
    for (unsigned char ch : v) {
      if (ch == '"' || ch == '\\') {
        s_ += '\\';
        s_ += static_cast<char>(ch);
      } else if (ch < 0x20 || ch >= 0x7f) {
        char b[8];
        std::snprintf(b, sizeof(b), "\\u%04x", ch);
        s_ += b;
      } else {
        s_ += static_cast<char>(ch);
      }
    }
    s_ += '"';
  }
  std::string s_;
  bool first_ = true;
};

uint64_t free_hugepages() {
  std::ifstream f("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
  uint64_t v = 0;
  f >> v;
  return v;
}

void count_memzone(const rte_memzone*, void* arg) {
  (*static_cast<unsigned*>(arg))++;
}

std::string comm_of(const mn_lease& l) {
  char c[17];
  memcpy(c, l.comm, 16);
  c[16] = '\0';
  return c;
}

std::string owner_hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof(b), "%016" PRIx64, v);
  return b;
}

uint64_t drops_total(const uint64_t* drops) {
  uint64_t t = 0;
  for (size_t r = 0; r < kDropReasonCount; r++) t += drops[r];
  return t;
}

}  // namespace

const char* lease_state_name(uint32_t state) {
  switch (state) {
    case MN_LEASE_FREE:
      return "free";
    case MN_LEASE_ACTIVE:
      return "active";
    case MN_LEASE_RECLAIMING:
      return "reclaiming";
    case MN_LEASE_DAEMON:
      return "daemon";
    default:
      return "unknown";
  }
}

std::string stats_json(const Daemon& d, size_t max_len) {
  const mn_shm& shm = *d.shm;
  const DaemonCounters& c = d.counters;
  Json j;
  j.open('{');
  j.key("daemon");
  j.open('{');
  j.i("pid", getpid());
  j.str("name", d.cfg.name);
  j.str("device", d.device_name);
  j.u("port_id", d.port_id);
  j.str("ip", wire::format_ipv4(d.cfg.ip));
  j.u("prefix_len", d.cfg.prefix_len);
  j.str("gateway", d.cfg.gateway ? wire::format_ipv4(d.cfg.gateway) : "");
  j.str("mac", wire::format_mac(d.mac));
  j.u("mtu", d.mtu);
  j.u("queues", d.nb_queues);
  uint16_t free_leases = 0, active = 0;
  for (uint16_t q = 1; q < d.nb_queues; q++) {
    uint32_t s = mn_lease_state(&shm.leases[q]);
    free_leases += s == MN_LEASE_FREE;
    active += s == MN_LEASE_ACTIVE;
  }
  j.u("free_leases", free_leases);
  j.u("active_leases", active);
  j.d("uptime_s", static_cast<double>(mono_ns() - d.start_mono_ns) / 1e9);
  j.str("eal_prefix", d.eal_prefix);
  j.str("socket", d.cfg.socket);
  j.u("hugepages_free", free_hugepages());
  unsigned mz = 0;
  rte_memzone_walk(count_memzone, &mz);
  j.u("memzones", mz);
  // The shared heap: what attached programs' EAL starts and PMDs leave in
  // it shows here (docs/MACHNETD.md, "Memory an attach leaves behind").
  uint64_t heap_total = 0, heap_alloc = 0, heap_count = 0;
  for (unsigned sock = 0; sock < rte_socket_count(); sock++) {
    rte_malloc_socket_stats st;
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(sock), &st) != 0) continue;
    heap_total += st.heap_totalsz_bytes;
    heap_alloc += st.heap_allocsz_bytes;
    heap_count += st.alloc_count;
  }
  j.u("heap_bytes", heap_total);
  j.u("heap_alloc_bytes", heap_alloc);
  j.u("heap_alloc_count", heap_count);
  j.u("rx_packets", c.rx_packets);
  j.u("rx_bytes", c.rx_bytes);
  j.u("ring_rx", c.ring_rx);
  j.u("tx_packets", c.tx_packets);
  j.u("tx_bytes", c.tx_bytes);
  j.u("arp_rx", c.arp_rx);
  j.u("arp_tx", c.arp_tx);
  j.u("arp_learned", c.arp_learned);
  j.u("icmp_echo_replies", c.icmp_echo_replies);
  j.u("icmp_unreachable_tx", c.icmp_unreachable_tx);
  j.u("icmp_rate_limited", c.icmp_rate_limited);
  j.u("fragments_rx", c.fragments_rx);
  j.u("reassembled", c.reassembled);
  j.u("steered", c.steered);
  j.u("steer_drops", c.steer_drops);
  j.u("ctl_connections", c.ctl_connections);
  j.u("ctl_requests", c.ctl_requests);
  j.u("ctl_malformed", c.ctl_malformed);
  j.u("ctl_denied", c.ctl_denied);
  j.u("attaches", c.attaches);
  j.u("reclaims", c.reclaims);
  j.u("mbufs_swept", c.mbufs_swept);
  j.u("ring_repairs", c.ring_repairs);
  j.u("ring_repair_slots", c.ring_repair_slots);
  j.u("ring_busy", c.ring_busy);
  j.u("steer_deferred", c.steer_deferred);
  j.u("deferred_expired", c.deferred_expired);
  j.u("wakeups", c.wakeups);
  j.u("parked_rx", c.parked_rx);
  j.u("reuseport_groups", d.leases->groups_in_use());
  j.u("group_joins", c.group_joins);
  j.u("group_leaves", c.group_leaves);
  j.u("shared_ports", d.leases->shared_in_use());
  j.u("shared_joins", c.shared_joins);
  j.u("shared_leaves", c.shared_leaves);
  j.u("shared_copies", c.shared_copies);
  j.u("shared_drops", c.shared_drops);
  j.u("stream_services", d.services->size());
  j.u("service_syns", c.service_syns);
  j.u("service_syns_unknown", c.service_syns_unknown);
  uint64_t unaccounted = 0;
  for (uint64_t u : c.unaccounted) unaccounted += u;
  j.u("mbufs_unaccounted", unaccounted);
  j.u("drops_total", drops_total(c.drops));
  j.key("drops");
  j.open('{');
  for (size_t r = 0; r < kDropReasonCount; r++)
    j.u(drop_reason_name(static_cast<DropReason>(r)), c.drops[r]);
  j.close('}');
  // The device's own counters, every queue together: attached programs
  // send on their leased queues directly, which the daemon's counters above
  // never see (what machnet-stat compares across the two ends of a link).
  rte_eth_stats es{};
  if (rte_eth_stats_get(d.port_id, &es) == 0) {
    j.key("port_stats");
    j.open('{');
    j.u("ipackets", es.ipackets);
    j.u("opackets", es.opackets);
    j.u("ibytes", es.ibytes);
    j.u("obytes", es.obytes);
    j.u("imissed", es.imissed);
    j.u("ierrors", es.ierrors);
    j.u("oerrors", es.oerrors);
    j.u("rx_nombuf", es.rx_nombuf);
    j.close('}');
  }
  j.close('}');

  j.key("pools");
  j.open('[');
  for (uint16_t q = 0; q < d.nb_queues; q++) {
    j.open('{');
    j.u("queue", q);
    j.u("size", d.pools[q]->size);
    j.u("in_use", rte_mempool_in_use_count(d.pools[q]));
    j.u("baseline", shm.leases[q].posted_baseline);
    j.u("ring", rte_ring_count(d.rings[q]));
    j.u("unaccounted", c.unaccounted[q]);
    j.close('}');
  }
  j.close(']');

  // Fork-shared ports: the pool of the copies on their rings.
  j.key("shared_pool");
  j.open('{');
  j.u("size", d.shared_pool->size);
  j.u("in_use", rte_mempool_in_use_count(d.shared_pool));
  uint64_t on_rings = 0;
  for (rte_ring* r : d.shared_rings) on_rings += rte_ring_count(r);
  j.u("ring", on_rings);
  j.u("rings_in_use", d.leases->shared_in_use());
  j.close('}');

  j.key("leases");
  j.open('[');
  for (uint16_t q = 1; q < d.nb_queues; q++) {
    const mn_lease& l = shm.leases[q];
    const mn_lease_counters& lc = l.counters;
    j.open('{');
    j.u("queue", q);
    j.str("state", lease_state_name(mn_lease_state(&l)));
    j.i("pid", l.pid);
    j.u("uid", l.uid);
    j.str("comm", comm_of(l));
    j.str("owner_id", owner_hex(l.owner_id));
    j.u("generation", l.generation);
    j.u("lcore", l.lcore_id);
    j.u("attached_ns", l.attached_ns);
    j.u("rx_packets", lc.rx_packets);
    j.u("rx_bytes", lc.rx_bytes);
    j.u("tx_packets", lc.tx_packets);
    j.u("tx_bytes", lc.tx_bytes);
    j.u("steered_in", lc.steered_in);
    j.u("steered_out", lc.steered_out);
    j.u("steer_drops", lc.steer_drops);
    j.u("udp_rx", lc.udp_rx);
    j.u("udp_tx", lc.udp_tx);
    j.u("wakeups", l.wakeups);
    j.str("wake_state", mn_lease_wake_state(&l) == MN_WAKE_RUNNING ? "running" : "parked");
    j.u("drops_total", drops_total(lc.drops));
    j.key("drops");
    j.open('{');
    for (size_t r = 0; r < kDropReasonCount; r++)
      if (lc.drops[r] != 0) j.u(drop_reason_name(static_cast<DropReason>(r)), lc.drops[r]);
    j.close('}');
    j.close('}');
  }
  j.close(']');

  j.raw("services", d.services->json());
  j.key("ports");
  j.open('[');
  uint64_t truncated = 0;
  const size_t reserve = 64;  // for the closing text
  for (uint32_t p = 1; p < 65536; p++) {
    uint16_t q = mn_port_queue(&shm.ports[p]);
    if (q == 0) continue;
    const size_t need = (q & MN_PORT_GROUP) != 0 ? 512 + 160 * MN_GROUP_MAX_MEMBERS : 256;
    if (j.size() + need + reserve > max_len) {
      truncated++;
      continue;
    }
    const mn_port_entry& e = shm.ports[p];
    if ((q & MN_PORT_GROUP) != 0) {
      // An SO_REUSEPORT group: the port's figures are its members' sums;
      // "queue", "pid" and "comm" name the first member.
      uint16_t gi = MN_PORT_GROUP_INDEX(q);
      const mn_port_group& g = shm.groups[gi < MN_SHM_GROUPS ? gi : 0];
      uint16_t n = std::min<uint16_t>(mn_group_count(&g), MN_GROUP_MAX_MEMBERS);
      uint16_t members[MN_GROUP_MAX_MEMBERS];
      mn_port_counters sum{};
      for (uint16_t i = 0; i < n; i++) {
        members[i] = std::min<uint16_t>(g.members[i], MN_SHM_MAX_QUEUES - 1);
        const mn_port_counters& c = g.by_queue[members[i]];
        sum.rx_datagrams += c.rx_datagrams;
        sum.rx_bytes += c.rx_bytes;
        sum.tx_datagrams += c.tx_datagrams;
      }
      const mn_lease& first = shm.leases[n != 0 ? members[0] : 0];
      j.open('{');
      j.u("port", p);
      j.u("queue", n != 0 ? members[0] : 0);
      j.i("pid", first.pid);
      j.str("comm", comm_of(first));
      j.u("generation", e.generation);
      j.u("rx_datagrams", sum.rx_datagrams);
      j.u("rx_bytes", sum.rx_bytes);
      j.u("tx_datagrams", sum.tx_datagrams);
      j.u("group", gi);
      if (g.shared != 0) {
        // Fork-shared: one ring every holder reads.
        j.u("shared_ring", g.shared - 1u);
        j.u("shared_queued", rte_ring_count(d.shared_rings[(g.shared - 1u) % MN_SHM_SHARED_RINGS]));
      }
      j.u("group_uid", g.uid);
      j.u("group_generation", g.generation);
      j.key("members");
      j.open('[');
      for (uint16_t i = 0; i < n; i++) {
        const mn_lease& l = shm.leases[members[i]];
        const mn_port_counters& c = g.by_queue[members[i]];
        j.open('{');
        j.u("queue", members[i]);
        j.i("pid", l.pid);
        j.str("comm", comm_of(l));
        j.u("rx_datagrams", c.rx_datagrams);
        j.u("rx_bytes", c.rx_bytes);
        j.u("tx_datagrams", c.tx_datagrams);
        j.close('}');
      }
      j.close(']');
      j.close('}');
      continue;
    }
    const mn_lease& l = shm.leases[q < MN_SHM_MAX_QUEUES ? q : 0];
    j.open('{');
    j.u("port", p);
    j.u("queue", q);
    j.i("pid", l.pid);
    j.str("comm", comm_of(l));
    j.u("generation", e.generation);
    j.u("rx_datagrams", e.rx_datagrams);
    j.u("rx_bytes", e.rx_bytes);
    j.u("tx_datagrams", e.tx_datagrams);
    j.close('}');
  }
  j.close(']');
  j.u("ports_truncated", truncated);
  j.close('}');
  return j.text();
}

namespace {

Daemon* g_daemon = nullptr;

int tel_daemon(const char*, const char*, rte_tel_data* t) {
  rte_tel_data_start_dict(t);
  Daemon* d = g_daemon;
  if (d == nullptr || d->stopping.load()) return 0;
  const DaemonCounters& c = d->counters;
  rte_tel_data_add_dict_int(t, "pid", getpid());
  rte_tel_data_add_dict_string(t, "device", d->device_name.c_str());
  rte_tel_data_add_dict_string(t, "ip", wire::format_ipv4(d->cfg.ip).c_str());
  rte_tel_data_add_dict_string(t, "mac", wire::format_mac(d->mac).c_str());
  rte_tel_data_add_dict_u64(t, "queues", d->nb_queues);
  rte_tel_data_add_dict_u64(t, "uptime_s", (mono_ns() - d->start_mono_ns) / 1'000'000'000ull);
  rte_tel_data_add_dict_u64(t, "rx_packets", c.rx_packets);
  rte_tel_data_add_dict_u64(t, "tx_packets", c.tx_packets);
  rte_tel_data_add_dict_u64(t, "ring_rx", c.ring_rx);
  rte_tel_data_add_dict_u64(t, "arp_rx", c.arp_rx);
  rte_tel_data_add_dict_u64(t, "arp_tx", c.arp_tx);
  rte_tel_data_add_dict_u64(t, "icmp_echo_replies", c.icmp_echo_replies);
  rte_tel_data_add_dict_u64(t, "icmp_unreachable_tx", c.icmp_unreachable_tx);
  rte_tel_data_add_dict_u64(t, "steered", c.steered);
  rte_tel_data_add_dict_u64(t, "steer_drops", c.steer_drops);
  rte_tel_data_add_dict_u64(t, "ctl_malformed", c.ctl_malformed);
  rte_tel_data_add_dict_u64(t, "ctl_denied", c.ctl_denied);
  rte_tel_data_add_dict_u64(t, "reclaims", c.reclaims);
  rte_tel_data_add_dict_u64(t, "mbufs_swept", c.mbufs_swept);
  rte_tel_data_add_dict_u64(t, "ring_repairs", c.ring_repairs);
  rte_tel_data_add_dict_u64(t, "ring_repair_slots", c.ring_repair_slots);
  rte_tel_data_add_dict_u64(t, "ring_busy", c.ring_busy);
  rte_tel_data_add_dict_u64(t, "steer_deferred", c.steer_deferred);
  rte_tel_data_add_dict_u64(t, "deferred_expired", c.deferred_expired);
  rte_tel_data_add_dict_u64(t, "wakeups", c.wakeups);
  rte_tel_data_add_dict_u64(t, "group_joins", c.group_joins);
  rte_tel_data_add_dict_u64(t, "group_leaves", c.group_leaves);
  rte_tel_data_add_dict_u64(t, "hugepages_free", free_hugepages());
  for (size_t r = 0; r < kDropReasonCount; r++) {
    std::string n = std::string("drop_") + drop_reason_name(static_cast<DropReason>(r));
    rte_tel_data_add_dict_u64(t, n.c_str(), c.drops[r]);
  }
  for (uint16_t q = 0; q < d->nb_queues; q++) {
    std::string n = "pool" + std::to_string(q) + "_in_use";
    rte_tel_data_add_dict_u64(t, n.c_str(), rte_mempool_in_use_count(d->pools[q]));
    n = "pool" + std::to_string(q) + "_baseline";
    rte_tel_data_add_dict_u64(t, n.c_str(), d->shm->leases[q].posted_baseline);
  }
  return 0;
}

int tel_leases(const char*, const char*, rte_tel_data* t) {
  rte_tel_data_start_dict(t);
  Daemon* d = g_daemon;
  if (d == nullptr || d->stopping.load()) return 0;
  for (uint16_t q = 1; q < d->nb_queues; q++) {
    const mn_lease& l = d->shm->leases[q];
    rte_tel_data* x = rte_tel_data_alloc();
    if (x == nullptr) break;
    rte_tel_data_start_dict(x);
    rte_tel_data_add_dict_string(x, "state", lease_state_name(mn_lease_state(&l)));
    rte_tel_data_add_dict_int(x, "pid", l.pid);
    rte_tel_data_add_dict_string(x, "comm", comm_of(l).c_str());
    rte_tel_data_add_dict_string(x, "owner_id", owner_hex(l.owner_id).c_str());
    rte_tel_data_add_dict_u64(x, "generation", l.generation);
    rte_tel_data_add_dict_u64(x, "lcore", l.lcore_id);
    rte_tel_data_add_dict_u64(x, "rx_packets", l.counters.rx_packets);
    rte_tel_data_add_dict_u64(x, "tx_packets", l.counters.tx_packets);
    rte_tel_data_add_dict_u64(x, "steered_in", l.counters.steered_in);
    rte_tel_data_add_dict_u64(x, "steered_out", l.counters.steered_out);
    rte_tel_data_add_dict_u64(x, "steer_drops", l.counters.steer_drops);
    rte_tel_data_add_dict_u64(x, "udp_rx", l.counters.udp_rx);
    rte_tel_data_add_dict_u64(x, "udp_tx", l.counters.udp_tx);
    for (size_t r = 0; r < kDropReasonCount; r++) {
      if (l.counters.drops[r] == 0) continue;
      std::string n = std::string("drop_") + drop_reason_name(static_cast<DropReason>(r));
      rte_tel_data_add_dict_u64(x, n.c_str(), l.counters.drops[r]);
    }
    rte_tel_data_add_dict_container(t, std::to_string(q).c_str(), x, 0);
  }
  return 0;
}

int tel_ports(const char*, const char*, rte_tel_data* t) {
  rte_tel_data_start_dict(t);
  Daemon* d = g_daemon;
  if (d == nullptr || d->stopping.load()) return 0;
  unsigned n = 0;
  for (uint32_t p = 1; p < 65536 && n < 200; p++) {
    const mn_port_entry& e = d->shm->ports[p];
    uint16_t q = mn_port_queue(&e);
    if (q == 0) continue;
    rte_tel_data* x = rte_tel_data_alloc();
    if (x == nullptr) break;
    rte_tel_data_start_dict(x);
    if ((q & MN_PORT_GROUP) != 0) {
      // A group: its index and member count (machnet-stat --json lists them).
      const mn_port_group& g = d->shm->groups[MN_PORT_GROUP_INDEX(q) % MN_SHM_GROUPS];
      rte_tel_data_add_dict_u64(x, "group", MN_PORT_GROUP_INDEX(q));
      rte_tel_data_add_dict_u64(x, "members", mn_group_count(&g));
      q = g.members[0] < MN_SHM_MAX_QUEUES ? g.members[0] : 0;
    }
    rte_tel_data_add_dict_u64(x, "queue", q);
    rte_tel_data_add_dict_int(x, "pid", d->shm->leases[q < MN_SHM_MAX_QUEUES ? q : 0].pid);
    rte_tel_data_add_dict_u64(x, "rx_datagrams", e.rx_datagrams);
    rte_tel_data_add_dict_u64(x, "rx_bytes", e.rx_bytes);
    rte_tel_data_add_dict_u64(x, "tx_datagrams", e.tx_datagrams);
    rte_tel_data_add_dict_container(t, std::to_string(p).c_str(), x, 0);
    n++;
  }
  return 0;
}

}  // namespace

void register_telemetry(Daemon* d) {
  g_daemon = d;
  rte_telemetry_register_cmd("/machnetd/daemon", tel_daemon,
                             "machnetd: device, address, counters, drops, pools. No parameters.");
  rte_telemetry_register_cmd("/machnetd/leases", tel_leases,
                             "machnetd: leased queues, holders and their counters. No parameters.");
  rte_telemetry_register_cmd("/machnetd/ports", tel_ports,
                             "machnetd: bound UDP ports (first 200). No parameters.");
}

}  // namespace machnet::daemon
