/* threads_check: several threads on one UDP socket.
 *
 *   threads_check PEER_IP PEER_PORT LOCAL_PORT [close]
 * THREADS threads share one bound socket; each sends ROUNDS tagged datagrams
 * to the echo peer and receives one datagram after each (whichever thread's
 * it is), with a 2 s SO_RCVTIMEO. Every echo must arrive exactly once.
 * With "close": a thread waits in recv() on a second socket while the main
 * thread closes it; under the preload the wait ends with EBADF (the kernel
 * would keep waiting, so the kernel run leaves this out). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 250

static struct sockaddr_in g_peer;
static int g_sock;
static _Atomic int g_seen[THREADS * ROUNDS];
static _Atomic int g_received, g_bad, g_dup, g_timeouts;

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  for (int i = 0; i < ROUNDS; i++) {
    int tag = id * ROUNDS + i;
    char out[64];
    memset(out, 'a' + id, sizeof(out));
    memcpy(out, &tag, sizeof(tag));
    if (sendto(g_sock, out, sizeof(out), 0, (struct sockaddr*)&g_peer, sizeof(g_peer)) !=
        (ssize_t)sizeof(out)) {
      atomic_fetch_add(&g_bad, 1);
      continue;
    }
    char in[128];
    ssize_t n = recv(g_sock, in, sizeof(in), 0);
    if (n < 0) {
      atomic_fetch_add(&g_timeouts, 1);
      continue;
    }
    int got;
    memcpy(&got, in, sizeof(got));
    if (n != (ssize_t)sizeof(out) || got < 0 || got >= THREADS * ROUNDS ||
        in[10] != 'a' + got / ROUNDS) {
      atomic_fetch_add(&g_bad, 1);
    } else if (atomic_exchange(&g_seen[got], 1)) {
      atomic_fetch_add(&g_dup, 1);
    } else {
      atomic_fetch_add(&g_received, 1);
    }
  }
  return NULL;
}

static int g_waiting_sock;
static _Atomic int g_wait_errno = -1;

static void* waiter(void* arg) {
  (void)arg;
  char b[16];
  ssize_t n = recv(g_waiting_sock, b, sizeof(b), 0);
  atomic_store(&g_wait_errno, n < 0 ? errno : 0);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: threads_check PEER_IP PEER_PORT LOCAL_PORT [close]\n");
    return 2;
  }
  alarm(60); /* never hang the test */
  g_peer.sin_family = AF_INET;
  g_peer.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &g_peer.sin_addr) != 1) return 2;
  g_sock = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
  if (bind(g_sock, (struct sockaddr*)&a, sizeof(a)) != 0) {
    perror("bind");
    return 1;
  }
  struct timeval tv = {2, 0};
  setsockopt(g_sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  /* The first exchange resolves ARP both ways before the threads start. */
  char b[64];
  sendto(g_sock, "warmup", 6, 0, (struct sockaddr*)&g_peer, sizeof(g_peer));
  if (recv(g_sock, b, sizeof(b), 0) != 6) {
    fprintf(stderr, "threads_check: no warm-up echo\n");
    return 1;
  }
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void*)(intptr_t)i);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  printf("threads %d x %d: received %d, bad %d, duplicates %d, timeouts %d\n", THREADS, ROUNDS,
         atomic_load(&g_received), atomic_load(&g_bad), atomic_load(&g_dup),
         atomic_load(&g_timeouts));
  int ok = atomic_load(&g_received) == THREADS * ROUNDS;
  close(g_sock);

  if (argc > 4 && strcmp(argv[4], "close") == 0) {
    g_waiting_sock = socket(AF_INET, SOCK_DGRAM, 0);
    a.sin_port = htons((uint16_t)(atoi(argv[3]) + 1));
    bind(g_waiting_sock, (struct sockaddr*)&a, sizeof(a));
    pthread_t w;
    pthread_create(&w, NULL, waiter, NULL);
    usleep(200000);
    close(g_waiting_sock);
    for (int i = 0; i < 100 && atomic_load(&g_wait_errno) < 0; i++) usleep(20000);
    int e = atomic_load(&g_wait_errno);
    printf("close while another thread waits: %s\n", e < 0    ? "still waiting"
                                                     : e == 0 ? "data"
                                                              : strerrorname_np(e));
    if (e < 0) return 1;
    pthread_join(w, NULL);
  }
  return ok ? 0 : 1;
}
