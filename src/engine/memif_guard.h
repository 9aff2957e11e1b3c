// Works around a DPDK 22.11 net_memif race: when the peer goes away, the EAL
// interrupt thread runs memif_disconnect(), which munmaps the shared rings
// while the polling thread may be inside rte_eth_rx_burst/tx_burst on them —
// the surviving process dies with SIGSEGV (reproduced here about 1 run in 10
// by killing a peer mid-traffic). The driver has no hook to quiesce the data
// path first, so libmachnet interposes rte_intr_callback_register and its
// unregister variants: callbacks that live in the memif PMD run under a gate
// that the data path holds around its bursts. Nothing else is affected.
// Requires libmachnet in the global symbol scope ahead of librte_eal (true
// when linked, and when dlopen()ed with RTLD_GLOBAL).
#pragma once

#include <rte_ethdev.h>

#include <cstdint>

namespace machnet::engine::memif_guard {

// The data path brackets every burst on a memif port with these: two atomic
// operations, waiting only while a memif control event is being handled.
void enter();
void leave();

// rte_eth_rx_burst / rte_eth_tx_burst, under the gate when the port is memif.
inline uint16_t rx_burst(uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n, bool memif) {
  if (memif) enter();
  n = rte_eth_rx_burst(port, queue, pkts, n);
  if (memif) leave();
  return n;
}
inline uint16_t tx_burst(uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n, bool memif) {
  if (memif) enter();
  n = rte_eth_tx_burst(port, queue, pkts, n);
  if (memif) leave();
  return n;
}

// memif callbacks wrapped so far: 0 after a memif port started means the
// interposition is not in effect (libmachnet loaded with RTLD_LOCAL).
uint64_t wrapped_callbacks();

}  // namespace machnet::engine::memif_guard
