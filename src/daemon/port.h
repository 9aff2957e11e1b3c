// The port machnetd owns: per-queue mbuf pools and steering rings, the shared
// memzone (struct mn_shm), queue setup, start and stop.
#pragma once

#include <string>

#include "daemon/daemon.h"

namespace machnet::daemon {

// Finds the port EAL created for cfg.device, configures cfg.queues queue
// pairs, creates pool "mn_pool_<q>" (no per-lcore cache: several processes
// use every pool) and ring "mn_steer_<q>" per queue, the MN_SHM_NAME memzone,
// starts the port and records each queue's posted_baseline.
bool setup_port(Daemon* d, std::string* err);

// Stops and closes the port (after the data path stopped).
void close_port(Daemon* d);

}  // namespace machnet::daemon
