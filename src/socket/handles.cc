// The handle table: socket objects in chunks that are never freed, named by
// handles (generation << 32 | slot + 1) that stay safe to use after another
// thread closed the fd; the engine port is released by whoever drops the
// last reference.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "socket/socket_internal.h"
#include "socket/socket_layer.h"
#include "socket/stream.h"

namespace machnet::socket {

Globals g;

Sock* slot_ptr(uint32_t slot) {
  if (slot >= kMaxChunks * kChunkSize) return nullptr;
  Sock* chunk = g.chunks[slot >> kChunkBits].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr : &chunk[slot & (kChunkSize - 1)];
}

Sock* acquire(uint64_t h) {
  if (static_cast<uint32_t>(h) == 0) return nullptr;
  Sock* s = slot_ptr(handle_slot(h));
  if (s == nullptr) return nullptr;
  uint64_t st = s->state.load(std::memory_order_acquire);
  do {
    if (static_cast<uint32_t>(st >> 32) != handle_gen(h)) return nullptr;
  } while (!s->state.compare_exchange_weak(st, st + 1, std::memory_order_acq_rel));
  return s;
}

Sock* live_sock(uint64_t h) {
  if (h == 0) return nullptr;
  Sock* s = slot_ptr(handle_slot(h));
  if (s == nullptr || static_cast<uint32_t>(s->state.load() >> 32) != handle_gen(h)) return nullptr;
  return s;
}

namespace {

void finalize(Sock* s, uint32_t slot) {
  stack::Lock lock(mu());
  if (s->kind != Kind::kUdp) {
    stream_finalize(s);
    s->kind = Kind::kUdp;
  }
  if (s->us != nullptr && !g.stack->down()) eng().udp_close(s->us);
  s->us = nullptr;
  s->twin = -1;
  s->connected = false;
  s->unfiltered = 0;
  s->shut_rd.store(false);
  s->shut_wr.store(false);
  s->next_free = g.free_head;
  g.free_head = slot + 1;
}

}  // namespace

void release(Sock* s, uint64_t h) {
  uint64_t st = s->state.fetch_sub(1, std::memory_order_acq_rel) - 1;
  // The socket was closed while this call ran and this was the last call.
  if (static_cast<uint32_t>(st >> 32) != handle_gen(h) && static_cast<uint32_t>(st) == 0)
    finalize(s, handle_slot(h));
}

int op_udp_open(int twin, const sockaddr_in* local, uint64_t* handle) {
  if (g.stack == nullptr) return -ENETDOWN;
  stack::Lock lock(mu());
  if (g.stack->down()) return -ENETDOWN;
  uint32_t slot;
  if (g.free_head != 0) {
    slot = g.free_head - 1;
  } else {
    slot = g.next_slot;
    if (slot >= kMaxChunks * kChunkSize) return -EMFILE;
    if (g.chunks[slot >> kChunkBits].load() == nullptr) {
      Sock* chunk = new (std::nothrow) Sock[kChunkSize];
      if (chunk == nullptr) return -ENOMEM;
      g.chunks[slot >> kChunkBits].store(chunk, std::memory_order_release);
    }
  }
  Sock* s = slot_ptr(slot);
  // The twin holds the port in the kernel already: the kernel has applied
  // its SO_REUSEADDR / SO_REUSEPORT rules to this bind, so the engine lets
  // the socket share the port with the other sockets of ours there (never
  // with a transport port, which has no twin). SO_REUSEPORT also makes
  // equally good matches split flows, as in the kernel.
  engine::UdpBindOptions opt;
  opt.local_ip = ntohl(local->sin_addr.s_addr);
  opt.shared = true;
  int reuseport = 0;
  socklen_t optlen = sizeof(reuseport);
  opt.reuseport =
      getsockopt(twin, SOL_SOCKET, SO_REUSEPORT, &reuseport, &optlen) == 0 && reuseport != 0;
  engine::UdpSocket* us = nullptr;
  int rc = eng().udp_bind(ntohs(local->sin_port), opt, &us);
  if (rc != 0) return rc;
  if (g.free_head != 0)
    g.free_head = s->next_free;
  else
    g.next_slot++;
  s->us = us;
  s->twin = twin;
  s->fd_refs = 1;
  s->local_ip = ntohl(local->sin_addr.s_addr);
  s->local_port = us->port();
  s->connected = false;
  *handle = (s->state.load() & ~uint64_t{0xffffffff}) | (slot + 1);
  return 0;
}

int op_dup(uint64_t h) {
  Ref ref(h);
  if (ref.get() == nullptr) return -EBADF;
  stack::Lock lock(mu());
  ref.get()->fd_refs++;
  return 0;
}

int op_close(uint64_t h) {
  Sock* s = acquire(h);
  if (s == nullptr) return -EBADF;
  bool last;
  {
    stack::Lock lock(mu());
    last = --s->fd_refs == 0;
  }
  if (!last) {
    release(s, h);  // outside the lock: it may finalize, which takes it
    return 0;
  }
  // Last fd: a new generation makes every outstanding handle stale; whoever
  // drops the last reference (this call, or a call still waiting) finalizes.
  uint64_t st = s->state.load();
  while (!s->state.compare_exchange_weak(st, st + (uint64_t{1} << 32))) {
  }
  release(s, h);
  return 0;
}

}  // namespace machnet::socket
