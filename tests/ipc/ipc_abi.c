/* Prints the machnetd ABI (src/ipc/control_protocol.h and src/ipc/shm.h) as
 * the C compiler lays it out, as JSON: every constant, and every structure's
 * size and fields (name, offset, size, element type, count). The Python
 * tests read this instead of keeping their own copy of the layout
 * (tests/machnetd/mnd_abi.py).
 *
 * Also a test: it exits 1 when a structure has padding that no field names
 * (implicit padding between fields is how a layout silently changes) or when
 * its fields do not cover it. Types come from the header through _Generic,
 * so only the list of field names is written here, and a field this list
 * misses shows up as a gap. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/control_protocol.h"
#include "ipc/shm.h"

#define ELEM_TYPE(e) \
  _Generic((e), uint8_t: "u8", uint16_t: "u16", uint32_t: "u32", uint64_t: "u64", int32_t: "i32", \
      char: "char", struct rte_ring*: "ptr", struct rte_mempool*: "ptr",                         \
      struct mn_ctl_header: "struct mn_ctl_header",                                              \
      struct mn_lease_counters: "struct mn_lease_counters", struct mn_lease: "struct mn_lease",  \
      struct mn_port_entry: "struct mn_port_entry", struct mn_neighbour: "struct mn_neighbour",   \
      struct mn_port_counters: "struct mn_port_counters",                                        \
      struct mn_port_group: "struct mn_port_group")

struct field {
  const char* name;
  size_t offset, size, count;
  const char* type;
};

/* A scalar (or struct) field, and an array field. */
#define F(T, m) \
  { #m, offsetof(struct T, m), sizeof(((struct T*)0)->m), 1, ELEM_TYPE(((struct T*)0)->m) }
#define A(T, m)                                                                                   \
  {                                                                                               \
#m, offsetof(struct T, m), sizeof(((struct T*)0)->m),                                         \
        sizeof(((struct T*)0)->m) / sizeof(((struct T*)0)->m[0]), ELEM_TYPE(((struct T*)0)->m[0]) \
  }

static const struct field ctl_header[] = {F(mn_ctl_header, magic), F(mn_ctl_header, version),
                                          F(mn_ctl_header, type), F(mn_ctl_header, seq),
                                          F(mn_ctl_header, status)};
static const struct field info_reply[] = {
    F(mn_ctl_info_reply, h),           F(mn_ctl_info_reply, ip),
    F(mn_ctl_info_reply, prefix_len),  A(mn_ctl_info_reply, mac),
    F(mn_ctl_info_reply, pad0),        F(mn_ctl_info_reply, gateway),
    F(mn_ctl_info_reply, mtu),         F(mn_ctl_info_reply, nb_queues),
    F(mn_ctl_info_reply, free_leases), F(mn_ctl_info_reply, rendezvous_port),
    F(mn_ctl_info_reply, daemon_pid),  A(mn_ctl_info_reply, device)};
static const struct field attach_request[] = {F(mn_ctl_attach_request, h),
                                              A(mn_ctl_attach_request, comm)};
static const struct field attach_reply[] = {
    F(mn_ctl_attach_reply, h),          F(mn_ctl_attach_reply, queue),
    F(mn_ctl_attach_reply, port_id),    F(mn_ctl_attach_reply, lcore_id),
    F(mn_ctl_attach_reply, mtu),        F(mn_ctl_attach_reply, owner_id),
    F(mn_ctl_attach_reply, generation), F(mn_ctl_attach_reply, ip),
    F(mn_ctl_attach_reply, gateway),    F(mn_ctl_attach_reply, prefix_len),
    A(mn_ctl_attach_reply, mac),        F(mn_ctl_attach_reply, pad0),
    A(mn_ctl_attach_reply, eal_prefix), A(mn_ctl_attach_reply, device),
    A(mn_ctl_attach_reply, shm_name)};
static const struct field bind_request[] = {
    F(mn_ctl_bind_request, h), F(mn_ctl_bind_request, ip), F(mn_ctl_bind_request, port),
    F(mn_ctl_bind_request, proto), F(mn_ctl_bind_request, flags)};
static const struct field bind_reply[] = {F(mn_ctl_bind_reply, h), F(mn_ctl_bind_reply, port),
                                          F(mn_ctl_bind_reply, shared_ring),
                                          F(mn_ctl_bind_reply, pad1)};
static const struct field unbind_request[] = {
    F(mn_ctl_unbind_request, h), F(mn_ctl_unbind_request, port), F(mn_ctl_unbind_request, proto),
    F(mn_ctl_unbind_request, pad0), F(mn_ctl_unbind_request, pad1)};
static const struct field join_request[] = {
    F(mn_ctl_join_request, h), F(mn_ctl_join_request, port), F(mn_ctl_join_request, proto),
    F(mn_ctl_join_request, flags), F(mn_ctl_join_request, pad1)};
static const struct field lease_counters[] = {
    F(mn_lease_counters, rx_packets),  F(mn_lease_counters, rx_bytes),
    F(mn_lease_counters, tx_packets),  F(mn_lease_counters, tx_bytes),
    F(mn_lease_counters, steered_out), F(mn_lease_counters, steered_in),
    F(mn_lease_counters, steer_drops), F(mn_lease_counters, udp_rx),
    F(mn_lease_counters, udp_tx),      A(mn_lease_counters, drops)};
static const struct field lease[] = {
    F(mn_lease, state),      F(mn_lease, queue),       F(mn_lease, lcore_id),
    F(mn_lease, pid),        F(mn_lease, uid),         F(mn_lease, owner_id),
    F(mn_lease, generation), F(mn_lease, attached_ns), A(mn_lease, comm),
    F(mn_lease, steer_ring), F(mn_lease, pool),        F(mn_lease, posted_baseline),
    F(mn_lease, pad0),       F(mn_lease, counters),    F(mn_lease, wake_state),
    F(mn_lease, pad1),       F(mn_lease, wakeups),     F(mn_lease, ring_op),
    F(mn_lease, quiesced),   F(mn_lease, steer_seq),   F(mn_lease, service_rings)};
static const struct field port_entry[] = {
    F(mn_port_entry, queue),        F(mn_port_entry, pad0),     F(mn_port_entry, generation),
    F(mn_port_entry, rx_datagrams), F(mn_port_entry, rx_bytes), F(mn_port_entry, tx_datagrams)};
static const struct field port_counters[] = {F(mn_port_counters, rx_datagrams),
                                             F(mn_port_counters, rx_bytes),
                                             F(mn_port_counters, tx_datagrams)};
static const struct field port_group[] = {
    F(mn_port_group, seq),    F(mn_port_group, port),       F(mn_port_group, count),
    F(mn_port_group, uid),    F(mn_port_group, generation), A(mn_port_group, members),
    F(mn_port_group, shared), F(mn_port_group, pad1),       F(mn_port_group, share_epoch),
    A(mn_port_group, pad0),   A(mn_port_group, by_queue)};
static const struct field neighbour[] = {F(mn_neighbour, seq), F(mn_neighbour, ip),
                                         A(mn_neighbour, mac), F(mn_neighbour, pad0)};
static const struct field shm[] = {
    F(mn_shm, magic),         F(mn_shm, version),      F(mn_shm, daemon_pid),
    F(mn_shm, port_id),       F(mn_shm, nb_queues),    F(mn_shm, ip),
    F(mn_shm, gateway),       F(mn_shm, prefix_len),   A(mn_shm, mac),
    F(mn_shm, pad0),          F(mn_shm, mtu),          F(mn_shm, pad1),
    F(mn_shm, shutting_down), F(mn_shm, heartbeat_ns), F(mn_shm, active_leases),
    A(mn_shm, pad2),          A(mn_shm, leases),       A(mn_shm, neighbours),
    A(mn_shm, ports),         A(mn_shm, groups),       A(mn_shm, shared_rings),
    F(mn_shm, shared_pool),   A(mn_shm, pad3)};

#define STRUCT(name, fields, align) \
  { #name, sizeof(struct name), align, fields, sizeof(fields) / sizeof(fields[0]) }
static const struct {
  const char* name;
  size_t size;
  size_t align; /* trailing padding up to this alignment is allowed */
  const struct field* fields;
  size_t nfields;
} structs[] = {
    STRUCT(mn_ctl_header, ctl_header, 1),
    STRUCT(mn_ctl_info_reply, info_reply, 1),
    STRUCT(mn_ctl_attach_request, attach_request, 1),
    STRUCT(mn_ctl_attach_reply, attach_reply, 1),
    STRUCT(mn_ctl_bind_request, bind_request, 1),
    STRUCT(mn_ctl_bind_reply, bind_reply, 1),
    STRUCT(mn_ctl_unbind_request, unbind_request, 1),
    STRUCT(mn_ctl_join_request, join_request, 1),
    STRUCT(mn_lease_counters, lease_counters, 1),
    STRUCT(mn_lease, lease, 64),
    STRUCT(mn_port_entry, port_entry, 1),
    STRUCT(mn_port_counters, port_counters, 1),
    STRUCT(mn_port_group, port_group, 64),
    STRUCT(mn_neighbour, neighbour, 1),
    STRUCT(mn_shm, shm, 1),
};

#define C(name) \
  { #name, (unsigned long long)(name) }
static const struct {
  const char* name;
  unsigned long long value;
} constants[] = {
    C(MN_CTL_MAGIC),         C(MN_CTL_VERSION),         C(MN_CTL_MAX_MESSAGE),
    C(MN_CTL_INFO),          C(MN_CTL_ATTACH),          C(MN_CTL_BIND),
    C(MN_CTL_UNBIND),        C(MN_CTL_DETACH),          C(MN_CTL_JOIN),
    C(MN_CTL_STATS),         C(MN_SHM_MAGIC),           C(MN_SHM_VERSION),
    C(MN_SHM_MAX_QUEUES),    C(MN_SHM_NEIGHBOUR_SLOTS), C(MN_SHM_MAX_DROP_REASONS),
    C(MN_SHM_PORTS),         C(MN_LEASE_FREE),          C(MN_LEASE_ACTIVE),
    C(MN_LEASE_RECLAIMING),  C(MN_LEASE_DAEMON),        C(MN_WAKE_RUNNING),
    C(MN_WAKE_PARKED),       C(MN_WAKE_DAEMON),         C(MN_RING_OP_STEER_ENQ),
    C(MN_RING_OP_POOL_GET),  C(MN_RING_OP_POOL_PUT),    C(MN_SHM_GROUPS),
    C(MN_GROUP_MAX_MEMBERS), C(MN_PORT_GROUP),          C(MN_CTL_BIND_REUSEPORT),
    C(MN_CTL_BIND_FLAGS),
};

int main(void) {
  int bad = 0;
  printf("{\n  \"constants\": {\n");
  size_t nc = sizeof(constants) / sizeof(constants[0]);
  for (size_t i = 0; i < nc; i++)
    printf("    \"%s\": %llu%s\n", constants[i].name, constants[i].value, i + 1 < nc ? "," : "");
  printf("  },\n  \"strings\": {\"MN_CTL_DEFAULT_SOCKET\": \"%s\", \"MN_SHM_NAME\": \"%s\"},\n",
         MN_CTL_DEFAULT_SOCKET, MN_SHM_NAME);
  printf("  \"structs\": {\n");
  size_t ns = sizeof(structs) / sizeof(structs[0]);
  for (size_t s = 0; s < ns; s++) {
    printf("    \"%s\": {\"size\": %zu, \"fields\": [\n", structs[s].name, structs[s].size);
    size_t end = 0;
    for (size_t i = 0; i < structs[s].nfields; i++) {
      const struct field* f = &structs[s].fields[i];
      if (f->offset != end) {
        fprintf(stderr, "ipc_abi: %s: %zu bytes of unnamed padding before %s (offset %zu)\n",
                structs[s].name, f->offset - end, f->name, f->offset);
        bad = 1;
      }
      end = f->offset + f->size;
      printf(
          "      {\"name\": \"%s\", \"offset\": %zu, \"size\": %zu, \"type\": \"%s\", "
          "\"count\": %zu}%s\n",
          f->name, f->offset, f->size, f->type, f->count, i + 1 < structs[s].nfields ? "," : "");
    }
    size_t padded = (end + structs[s].align - 1) / structs[s].align * structs[s].align;
    if (padded != structs[s].size) {
      fprintf(stderr, "ipc_abi: %s: fields end at %zu, the structure is %zu bytes\n",
              structs[s].name, end, structs[s].size);
      bad = 1;
    }
    printf("    ]}%s\n", s + 1 < ns ? "," : "");
  }
  printf("  }\n}\n");
  return bad;
}
