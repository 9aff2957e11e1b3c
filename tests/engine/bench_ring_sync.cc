// What the HTS mode of machnetd's pools and steering rings costs against
// DPDK's classic multi-producer/multi-consumer mode (src/daemon/port.cc):
// ns per operation, printed, never asserted. Each case runs on one thread
// (an engine alone on its pool: the hot path), then with a second thread
// hammering the same pool or ring (another process steering into it).
//   bench_ring_sync [ITERATIONS]
#include <pthread.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// The second thread runs on CPU 1, the measuring one on CPU 0 (EAL's main
// lcore): two threads sharing one CPU would measure preemption instead.
void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

double ns_per_op(Clock::time_point t0, Clock::time_point t1, unsigned long ops) {
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(ops);
}

// Alloc then free one mbuf (the engine's TX and RX pattern with cache 0),
// and bursts of 32 (an RX refill, a TX completion).
void bench_pool(const char* ops_name, unsigned long iters, bool contended) {
  std::string name = std::string("bench_") + ops_name + (contended ? "_c" : "");
  rte_mempool* mp = rte_pktmbuf_pool_create_by_ops(name.c_str(), 4095, 0, 0,
                                                   RTE_MBUF_DEFAULT_BUF_SIZE, 0, ops_name);
  if (mp == nullptr) {
    std::printf("%-12s cannot create pool\n", ops_name);
    return;
  }
  std::atomic<bool> stop{false};
  std::thread other;
  if (contended)
    other = std::thread([&] {
      pin_to(1);
      while (!stop.load(std::memory_order_relaxed)) {
        rte_mbuf* m = rte_pktmbuf_alloc(mp);
        if (m != nullptr) rte_pktmbuf_free(m);
      }
    });
  auto t0 = Clock::now();
  for (unsigned long i = 0; i < iters; i++) {
    rte_mbuf* m = rte_pktmbuf_alloc(mp);
    if (m != nullptr) rte_pktmbuf_free(m);
  }
  auto t1 = Clock::now();
  rte_mbuf* burst[32];
  unsigned long bursts = iters / 32;
  auto t2 = Clock::now();
  for (unsigned long i = 0; i < bursts; i++) {
    if (rte_pktmbuf_alloc_bulk(mp, burst, 32) == 0) rte_pktmbuf_free_bulk(burst, 32);
  }
  auto t3 = Clock::now();
  stop = true;
  if (other.joinable()) other.join();
  std::printf("pool %-12s %-10s alloc+free 1: %6.1f ns   alloc+free 32: %6.1f ns/mbuf\n", ops_name,
              contended ? "contended" : "alone", ns_per_op(t0, t1, iters),
              ns_per_op(t2, t3, bursts * 32));
  rte_mempool_free(mp);
}

// Enqueue then dequeue one pointer (a steered copy and its pickup).
void bench_ring(const char* label, unsigned flags, unsigned long iters, bool contended) {
  std::string name = std::string("bench_r_") + label + (contended ? "_c" : "");
  rte_ring* r = rte_ring_create(name.c_str(), 4096, 0, flags);
  if (r == nullptr) {
    std::printf("%-12s cannot create ring\n", label);
    return;
  }
  std::atomic<bool> stop{false};
  std::thread other;
  int obj = 0;
  if (contended)
    other = std::thread([&] {
      pin_to(1);
      // Another producer; the single consumer below takes its objects too.
      while (!stop.load(std::memory_order_relaxed)) {
        if (rte_ring_count(r) < 1024) (void)rte_ring_enqueue(r, &obj);
      }
    });
  void* out[32];
  auto t0 = Clock::now();
  for (unsigned long i = 0; i < iters; i++) {
    (void)rte_ring_enqueue(r, &obj);
    (void)rte_ring_dequeue_burst(r, out, 32, nullptr);
  }
  auto t1 = Clock::now();
  stop = true;
  if (other.joinable()) other.join();
  std::printf("ring %-12s %-10s enqueue 1 + dequeue burst: %6.1f ns\n", label,
              contended ? "contended" : "alone", ns_per_op(t0, t1, iters));
  rte_ring_free(r);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long iters = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 2000000;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string prefix = "--file-prefix=bench_ring" + std::to_string(getpid());
  std::vector<std::string> args = {
      "bench_ring_sync", "--no-huge", "--no-shconf", "-m", "512",
      "--no-pci",        prefix,      "--lcores",    "0",  "--log-level=error",
      "--no-telemetry"};
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argp.size()), argp.data()) < 0) {
    std::fprintf(stderr, "rte_eal_init failed\n");
    return 1;
  }
  std::printf("# %lu iterations per case\n", iters);
  for (bool contended : {false, true}) {
    for (int rep = 0; rep < 2; rep++) {
      bench_pool("ring_mp_mc", iters, contended);
      bench_pool("ring_mt_hts", iters, contended);
      bench_ring("mp_sc", RING_F_SC_DEQ, iters, contended);
      bench_ring("mp_hts_sc", RING_F_MP_HTS_ENQ | RING_F_SC_DEQ, iters, contended);
    }
  }
  rte_eal_cleanup();
  return 0;
}
