// Frames waiting for one TX queue: added one at a time, handed to the PMD in
// one burst per poll (or when the batch is full). The engine and machnetd
// both transmit through one. A full TX ring is retried a few times (with a
// completion cleanup in between); then what is left either stays queued for
// the next flush (the engine: its senders wait for room, see room()) or is
// dropped and counted as tx_ring_full.
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
  // Sends what is waiting. What the ring would not take stays queued when
  // keep is set, and is freed and counted as tx_ring_full otherwise.
  void flush(bool keep = false);
  // Frames that can be added before the batch must send (or drop) anything.
  uint16_t room() const { return static_cast<uint16_t>(kMax - n_); }
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
