#include "engine/tx_batch.h"

#include <rte_ethdev.h>

#include "engine/memif_guard.h"

namespace machnet::engine {

void TxBatch::init(uint16_t port_id, uint16_t queue, bool memif, uint64_t* tx_packets,
                   uint64_t* tx_bytes, uint64_t* ring_full_drops) {
  port_ = port_id;
  queue_ = queue;
  memif_ = memif;
  tx_packets_ = tx_packets;
  tx_bytes_ = tx_bytes;
  ring_full_ = ring_full_drops;
}

void TxBatch::flush(bool keep) {
  if (n_ == 0) return;
  // Lengths first: once the PMD has a frame it may free it at any time.
  uint32_t lens[kMax];
  for (uint16_t i = 0; i < n_; i++) lens[i] = buf_[i]->pkt_len;
  uint16_t sent = 0;
  for (int tries = 0; sent < n_ && tries < kRetries; tries++) {
    uint16_t k = memif_guard::tx_burst(port_, queue_, buf_ + sent, n_ - sent, memif_);
    sent += k;
    if (k == 0) rte_eth_tx_done_cleanup(port_, queue_, 0);
  }
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < sent; i++) bytes += lens[i];
  *tx_packets_ += sent;
  *tx_bytes_ += bytes;
  if (keep) {
    // The oldest first next time, so a flow's frames keep their order.
    for (uint16_t i = sent; i < n_; i++) buf_[i - sent] = buf_[i];
    n_ = static_cast<uint16_t>(n_ - sent);
    return;
  }
  for (uint16_t i = sent; i < n_; i++) rte_pktmbuf_free(buf_[i]);
  *ring_full_ += n_ - sent;
  n_ = 0;
}

}  // namespace machnet::engine
