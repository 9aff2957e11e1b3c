// transport::KernelRoutes over the kernel's routing table, for the probe's
// "can a fallback to kernel TCP connect at all?" (docs/PROTOCOL.md 2.2).
#pragma once

#include <cstdint>

#include "transport/peer_probe.h"

namespace machnet::stack {

class KernelRouteTable final : public transport::KernelRoutes {
 public:
  // A UDP socket connected to ip (nothing is sent) is routed, or the
  // connect fails with ENETUNREACH. Raw system calls: under the preload the
  // shim must not see them (this runs with the stack's lock held). Any
  // other failure answers "reachable", the behaviour without this check.
  bool reachable(uint32_t ip) const override;
};

}  // namespace machnet::stack
