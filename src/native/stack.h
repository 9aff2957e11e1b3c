// The glue under the native API: one Engine and one transport::Transport on
// the engine's IP. The transport runs over UDP; every transport local port is
// one engine UDP port (listeners bind theirs, each connect binds an ephemeral
// one), so the engine's own port demultiplexing, XDP steering of bound ports
// and socket queues apply to transport traffic unchanged.
//
// Not thread-safe by itself: the caller serialises every call through mutex()
// (machnet_api.cc holds it around each API call).
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "native/native_config.h"
#include "transport/transport.h"

namespace machnet::native {

class Stack final : public transport::DatagramSink {
 public:
  static std::unique_ptr<Stack> create(const NativeConfig& cfg, std::string* err);
  ~Stack() override;
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  std::mutex& mutex() { return mu_; }
  const NativeConfig& config() const { return cfg_; }
  engine::Engine& engine() { return *eng_; }
  transport::Transport& transport() { return *tp_; }
  uint32_t ip() const { return ip_; }
  uint64_t now_ns() const { return eng_->now_ns(); }

  // One round: engine RX/TX, every received datagram into the transport, due
  // transport timers, and release of ports whose flows have finished.
  // Returns the number of datagrams handed to the transport.
  size_t progress();
  // Number of progress() calls so far. Readable without the mutex (unlike
  // anything touching the engine, which may be stopped at exit): the idle
  // progress thread looks at it before deciding to take the mutex at all.
  uint64_t progress_count() const { return progress_count_.load(std::memory_order_relaxed); }

  // Port references: a port stays bound while a listener or a flow uses it.
  // acquire_port(0, ...) picks an ephemeral port. Returns 0 or -errno
  // (-EADDRINUSE, -EAGAIN: no ephemeral port left).
  int acquire_port(uint16_t port, uint16_t* out);
  // Takes a reference on a port already bound (an accepted flow).
  void ref_port(uint16_t port);
  void unref_port(uint16_t port);
  // The application released flow `id` (close/abort): its port reference is
  // dropped once the transport has finished with it (FIN exchange, TIME_WAIT),
  // so late segments are still answered from the right port.
  void release_flow_port(transport::FlowId id, uint16_t port);
  // Flows released but not finished yet.
  size_t lingering() const { return lingering_.size(); }

  // transport::DatagramSink: header + payload iovecs straight into the
  // engine's gather send (no copy here; the engine copies into mbufs).
  // Datagrams to the engine's own address are looped back here: the engine
  // (like a NIC) does not deliver frames to itself, and a process may well
  // connect to its own listener.
  bool send(const transport::Endpoint& local, const transport::Endpoint& remote, const uint8_t* hdr,
            size_t hdr_len, const iovec* payload, size_t n_payload) override;

  uint64_t sink_errors() const { return sink_errors_; }

  // Stops the engine (port closed, XDP program detached) and the transport.
  // Only at process exit, with mutex() held for good: nothing may call in
  // afterwards.
  void shutdown();

 private:
  Stack(const NativeConfig& cfg, std::unique_ptr<engine::Engine> eng);
  void reap_lingering();

  bool loop_send(const transport::Endpoint& local, const transport::Endpoint& remote,
                 const uint8_t* hdr, size_t hdr_len, const iovec* payload, size_t n_payload);
  size_t deliver_loopback(uint64_t now);

  struct Looped {
    transport::Endpoint from, to;
    std::vector<uint8_t> data;
    bool unreachable = false;  // "ICMP port unreachable" back to `to` about `from`
  };
  struct Lingering {
    transport::FlowId id;
    uint16_t port;
  };

  std::mutex mu_;
  NativeConfig cfg_;
  std::unique_ptr<engine::Engine> eng_;
  std::unique_ptr<transport::Transport> tp_;
  uint32_t ip_;
  // Indexed by port: O(1) lookup on every send.
  std::vector<engine::UdpSocket*> socks_;
  std::vector<uint32_t> refs_;
  std::vector<uint16_t> bound_;  // ports to drain on every progress()
  std::vector<Lingering> lingering_;
  std::vector<uint8_t> rxbuf_;                   // one datagram; reused
  std::deque<Looped> loop_;                      // bounded by socket_queue_len, like a socket
  std::vector<std::vector<uint8_t>> loop_pool_;  // buffers reused by loop_send
  std::atomic<uint64_t> progress_count_{0};
  uint64_t next_reap_ns_ = 0;
  uint64_t sink_errors_ = 0;
};

}  // namespace machnet::native
