#include "net/ip_reassembly.h"

#include <vector>

namespace machnet::net {

namespace {

constexpr uint32_t kNone = UINT32_MAX;
// The largest payload any fragment may reach: 65,535 minus the smallest
// IPv4 header. Anything beyond can never make a valid datagram.
constexpr uint32_t kMaxPayload = FragTable::kMaxDatagram - 20;

}  // namespace

struct FragTable::Impl {
  struct Slot {
    void* buf;
    uint32_t offset, end, cost;
    uint32_t next;  // in its datagram (offset order) or on the free list
  };
  struct Entry {
    FragKey key;
    uint64_t created;
    uint32_t len;       // highest end seen; the datagram's length once last_in
    uint32_t received;  // payload bytes held (no overlaps, so complete at len)
    uint32_t head, tail, count;
    uint64_t bytes;
    uint32_t hash_next;  // bucket chain, or the free list
    uint32_t age_prev, age_next;
    uint16_t first_header_len;
    bool last_in;
  };

  Impl(const FragLimits& l, FragEvents* e) : limits(l), events(e) {
    if (limits.max_datagrams == 0) limits.max_datagrams = 1;
    entries.resize(limits.max_datagrams);
    slots.resize(limits.max_fragments);
    done.resize(limits.max_fragments);
    uint32_t nb = 1;
    while (nb < 2 * limits.max_datagrams) nb <<= 1;
    buckets.assign(nb, kNone);
    mask = nb - 1;
    for (uint32_t i = 0; i < entries.size(); i++)
      entries[i].hash_next = i + 1 < entries.size() ? i + 1 : kNone;
    free_entry = 0;
    for (uint32_t i = 0; i < slots.size(); i++)
      slots[i].next = i + 1 < slots.size() ? i + 1 : kNone;
    free_slot = slots.empty() ? kNone : 0;
  }

  uint32_t bucket_of(const FragKey& k) const {
    uint64_t h = (uint64_t{k.src} * 0x9e3779b97f4a7c15ull) ^ (uint64_t{k.dst} << 17) ^
                 (uint64_t{k.id} << 1) ^ k.proto;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return static_cast<uint32_t>(h) & mask;
  }

  uint32_t find(const FragKey& k) const {
    for (uint32_t i = buckets[bucket_of(k)]; i != kNone; i = entries[i].hash_next)
      if (entries[i].key == k) return i;
    return kNone;
  }

  uint32_t create(const FragKey& k, uint64_t now) {
    uint32_t i = free_entry;
    if (i == kNone) return kNone;
    Entry& e = entries[i];
    free_entry = e.hash_next;
    e = Entry{};
    e.key = k;
    e.created = now;
    e.head = e.tail = kNone;
    uint32_t b = bucket_of(k);
    e.hash_next = buckets[b];
    buckets[b] = i;
    // Newest at the tail of the age list: expire() walks from the head.
    e.age_next = kNone;
    e.age_prev = age_tail;
    if (age_tail != kNone)
      entries[age_tail].age_next = i;
    else
      age_head = i;
    age_tail = i;
    in_use++;
    return i;
  }

  // Unlinks entry i and returns it to the free list; its slots must be gone.
  void destroy(uint32_t i) {
    Entry& e = entries[i];
    uint32_t* p = &buckets[bucket_of(e.key)];
    while (*p != i) p = &entries[*p].hash_next;
    *p = e.hash_next;
    if (e.age_prev != kNone)
      entries[e.age_prev].age_next = e.age_next;
    else
      age_head = e.age_next;
    if (e.age_next != kNone)
      entries[e.age_next].age_prev = e.age_prev;
    else
      age_tail = e.age_prev;
    held_frags -= e.count;
    held_bytes -= e.bytes;
    e.hash_next = free_entry;
    free_entry = i;
    in_use--;
  }

  void free_slots(uint32_t head) {
    while (head != kNone) {
      uint32_t next = slots[head].next;
      slots[head].next = free_slot;
      free_slot = head;
      head = next;
    }
  }

  // Drops the datagram and everything it holds, each buffer with `r`.
  void kill(uint32_t i, DropReason r) {
    for (uint32_t s = entries[i].head; s != kNone; s = slots[s].next) events->drop(slots[s].buf, r);
    free_slots(entries[i].head);
    destroy(i);
  }

  FragResult reject(void* buf, DropReason r) {
    events->drop(buf, r);
    return FragResult::kDropped;
  }

  FragResult kill_with(uint32_t i, void* buf, DropReason r) {
    kill(i, r);
    return reject(buf, r);
  }

  FragResult add(const FragKey& key, const FragIn& in, uint64_t now) {
    uint32_t end = in.offset + in.len;
    if (in.more) end &= ~7u;  // Linux cuts a non-last fragment to 8-byte units
    uint32_t i = find(key);
    if (i == kNone) {
      if (end > kMaxPayload) return reject(in.buf, DropReason::kTooBig);
      i = create(key, now);
      if (i == kNone) return reject(in.buf, DropReason::kFragNoRoom);
    }
    Entry& e = entries[i];
    if (end > kMaxPayload) return kill_with(i, in.buf, DropReason::kTooBig);
    if (!in.more) {
      // Bytes already beyond the end, or a second, different end: corrupt.
      if (end < e.len || (e.last_in && end != e.len))
        return kill_with(i, in.buf, DropReason::kBadFragment);
      e.last_in = true;
      e.len = end;
    } else if (end > e.len) {
      if (e.last_in) return kill_with(i, in.buf, DropReason::kBadFragment);
      e.len = end;
    }
    if (end <= in.offset) return kill_with(i, in.buf, DropReason::kBadFragment);

    // Where it goes: after `prev` (kNone: at the head).
    uint32_t prev = kNone;
    if (e.tail != kNone && in.offset >= slots[e.tail].end) {
      prev = e.tail;  // the common case: in order
    } else {
      for (uint32_t s = e.head; s != kNone; prev = s, s = slots[s].next) {
        const Slot& x = slots[s];
        if (end <= x.offset) break;
        if (in.offset >= x.end) continue;
        // Overlaps x. A duplicate if [offset, end) lies within x and the
        // fragments contiguous with it; otherwise an overlap.
        if (in.offset < x.offset) return kill_with(i, in.buf, DropReason::kFragOverlap);
        uint32_t covered = x.end;
        for (uint32_t t = x.next; covered < end && t != kNone && slots[t].offset == covered;
             t = slots[t].next)
          covered = slots[t].end;
        if (covered >= end) return reject(in.buf, DropReason::kFragDuplicate);
        return kill_with(i, in.buf, DropReason::kFragOverlap);
      }
    }
    if (free_slot == kNone || held_bytes + in.cost > limits.max_bytes)
      return kill_with(i, in.buf, DropReason::kFragNoRoom);

    uint32_t s = free_slot;
    free_slot = slots[s].next;
    slots[s] = Slot{in.buf, in.offset, end, in.cost, kNone};
    if (prev == kNone) {
      slots[s].next = e.head;
      e.head = s;
    } else {
      slots[s].next = slots[prev].next;
      slots[prev].next = s;
    }
    if (slots[s].next == kNone) e.tail = s;
    e.count++;
    e.bytes += in.cost;
    e.received += end - in.offset;
    held_frags++;
    held_bytes += in.cost;
    if (in.offset == 0) e.first_header_len = in.header_len;

    if (!e.last_in || e.received != e.len) return FragResult::kHeld;
    // Whole: every byte in [0, len) once.
    if (e.first_header_len + e.len > FragTable::kMaxDatagram) {
      kill(i, DropReason::kTooBig);
      return FragResult::kDropped;
    }
    done_count = 0;
    for (uint32_t t = e.head; t != kNone; t = slots[t].next)
      done[done_count++] = FragPiece{slots[t].buf, slots[t].offset, slots[t].end - slots[t].offset};
    done_len = e.len;
    done_header_len = e.first_header_len;
    free_slots(e.head);
    destroy(i);
    return FragResult::kComplete;
  }

  void expire(uint64_t now) {
    while (age_head != kNone && now - entries[age_head].created >= limits.timeout)
      kill(age_head, DropReason::kFragTimeout);
  }

  void clear() {
    while (age_head != kNone) {
      Entry& e = entries[age_head];
      for (uint32_t s = e.head; s != kNone; s = slots[s].next) events->release(slots[s].buf);
      free_slots(e.head);
      destroy(age_head);
    }
  }

  FragLimits limits;
  FragEvents* events;
  std::vector<Entry> entries;
  std::vector<Slot> slots;
  std::vector<FragPiece> done;
  std::vector<uint32_t> buckets;
  uint32_t mask = 0;
  uint32_t free_entry = kNone, free_slot = kNone;
  uint32_t age_head = kNone, age_tail = kNone;
  size_t in_use = 0, held_frags = 0, done_count = 0;
  uint64_t held_bytes = 0;
  uint32_t done_len = 0;
  uint16_t done_header_len = 0;
};

FragTable::FragTable(const FragLimits& limits, FragEvents* events)
    : impl_(std::make_unique<Impl>(limits, events)) {}

FragTable::~FragTable() {
  impl_->clear();
}

FragResult FragTable::add(const FragKey& key, const FragIn& in, uint64_t now) {
  impl_->done_count = 0;
  return impl_->add(key, in, now);
}

const FragPiece* FragTable::completed() const {
  return impl_->done.data();
}
size_t FragTable::completed_count() const {
  return impl_->done_count;
}
uint32_t FragTable::completed_len() const {
  return impl_->done_len;
}
uint16_t FragTable::completed_header_len() const {
  return impl_->done_header_len;
}
void FragTable::expire(uint64_t now) {
  impl_->expire(now);
}
void FragTable::clear() {
  impl_->clear();
}
size_t FragTable::datagrams() const {
  return impl_->in_use;
}
size_t FragTable::fragments() const {
  return impl_->held_frags;
}
uint64_t FragTable::bytes() const {
  return impl_->held_bytes;
}

}  // namespace machnet::net
