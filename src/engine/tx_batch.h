// Frames waiting for one TX queue: added one at a time, handed to the PMD in
// one burst per poll (or when the batch is full). The engine and machnetd
// both transmit through one. A full TX ring is retried a few times (with a
// completion cleanup in between) before what is left is dropped and counted
// as tx_ring_full.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

namespace machnet::engine {

class TxBatch {
 public:
  static constexpr uint16_t kMax = 64;
  static constexpr int kRetries = 16;  // bursts tried before a full ring drops

  // Where the batch goes and the owner's counters it adds to (sent frames and
  // bytes, frames dropped on a full ring). memif: bursts under memif_guard.
  void init(uint16_t port_id, uint16_t queue, bool memif, uint64_t* tx_packets, uint64_t* tx_bytes,
            uint64_t* ring_full_drops);

  // A complete frame; sends the batch first when it is full.
  void add(rte_mbuf* m) {
    if (n_ == kMax) flush();
    buf_[n_++] = m;
  }
  // Sends what is waiting; frees what the ring would not take.
  void flush();
  // Forgets what is waiting without freeing it (the mbufs' memory is gone:
  // an attached engine whose daemon went away).
  void forget() { n_ = 0; }
  uint16_t pending() const { return n_; }

 private:
  uint16_t port_ = 0;
  uint16_t queue_ = 0;
  bool memif_ = false;
  uint64_t* tx_packets_ = nullptr;
  uint64_t* tx_bytes_ = nullptr;
  uint64_t* ring_full_ = nullptr;
  rte_mbuf* buf_[kMax];
  uint16_t n_ = 0;
};

}  // namespace machnet::engine
