/* epoll_sets_check: epoll sets with many members, and members closed without
 * EPOLL_CTL_DEL. Run once on the kernel and once under libmachnet_preload.so
 * against the same kernel echo peer (tests/preload/peer.py serve): the
 * outputs must be identical, so the values checked are the kernel's.
 *   - N UDP sockets (200 by default) in one epoll set, each sends one
 *     datagram to the peer: every one is reported readable; then two late
 *     echoes (the peer's "delay:MS") wake an infinite wait on the set;
 *   - a socket in two sets, dup'ed, its first fd closed without
 *     EPOLL_CTL_DEL: both sets still report it (the open file lives on);
 *     once the dup is closed too, it is in no set, and a new socket that
 *     gets the same fd number is reported only once added;
 *   - a socket not decided yet, closed without EPOLL_CTL_DEL: a new socket
 *     with the same fd number is not a member.
 *
 *   epoll_sets_check PEER_IP PEER_PORT BASE_PORT [N]
 * Uses ports BASE_PORT .. BASE_PORT + N + 1. Exit status 0 when the run
 * completed (the comparison is the test). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in g_peer;

static int udp_bound(int port) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (s < 0 || bind(s, (struct sockaddr*)&a, sizeof(a)) != 0) {
    printf("socket/bind port %d: %s\n", port, strerror(errno));
    exit(1);
  }
  return s;
}

static void send_peer(int s, const char* msg) {
  if (sendto(s, msg, strlen(msg), 0, (struct sockaddr*)&g_peer, sizeof(g_peer)) < 0) {
    printf("sendto: %s\n", strerror(errno));
    exit(1);
  }
}

static int drain(int s) {
  char buf[64];
  int n = 0;
  while (recv(s, buf, sizeof(buf), MSG_DONTWAIT) > 0) n++;
  return n;
}

/* One wait, printed as count and the data of each event (sorted). */
static int wait_print(const char* name, int ep, int timeout_ms) {
  struct epoll_event ev[8];
  int n = epoll_wait(ep, ev, 8, timeout_ms);
  printf("%s: ret=%d", name, n);
  if (n < 0) printf(" errno=%s", strerrorname_np(errno));
  for (int i = 0; i < n; i++) printf(" data=%llu", (unsigned long long)ev[i].data.u64);
  printf("\n");
  fflush(stdout);
  return n;
}

static void many(int base, int n) {
  int* s = calloc((size_t)n, sizeof(int));
  char* seen = calloc((size_t)n, 1);
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    s[i] = udp_bound(base + i);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s[i], &ev) != 0) {
      printf("epoll_ctl add %d: %s\n", i, strerror(errno));
      exit(1);
    }
  }
  /* One echo at a time (the first one also waits for ARP): each wait scans
   * the whole set and must find the member, wherever it sits. */
  int woken = 0;
  struct epoll_event ev[64];
  for (int i = 0; i < n; i++) {
    send_peer(s[i], "x");
    for (int idle = 0; !seen[i] && idle < 3;) {
      int k = epoll_wait(ep, ev, 64, 2000);
      if (k <= 0) idle++;
      for (int j = 0; j < k; j++) {
        int m = (int)ev[j].data.u64;
        if (m < 0 || m >= n) continue;
        drain(s[m]);
        if (!seen[m]) woken++;
        seen[m] = 1;
      }
    }
  }
  printf("%d members in one set: %d woken\n", n, woken);
  /* Late echoes to two members: the wait sleeps, then wakes. */
  send_peer(s[n - 1], "delay:300");
  send_peer(s[n / 2], "delay:300");
  int got = 0;
  while (got < 2) {
    int k = epoll_wait(ep, ev, 64, -1);
    if (k < 0) break;
    for (int j = 0; j < k; j++) got += drain(s[ev[j].data.u64]);
  }
  printf("%d members in one set: late echoes woke an infinite wait: %d\n", n, got);
  for (int i = 0; i < n; i++) close(s[i]);
  close(ep);
  free(s);
  free(seen);
}

static void closed_members(int port) {
  int e1 = epoll_create1(0), e2 = epoll_create1(0), e3 = epoll_create1(0);
  int s = udp_bound(port);
  struct epoll_event a = {.events = EPOLLIN, .data.u64 = 1001};
  struct epoll_event b = {.events = EPOLLIN, .data.u64 = 1002};
  epoll_ctl(e1, EPOLL_CTL_ADD, s, &a);
  epoll_ctl(e2, EPOLL_CTL_ADD, s, &b);
  int d = dup(s);
  int sfd = s;
  close(s);
  send_peer(d, "x");
  wait_print("dup alive, first fd closed: set 1", e1, 3000);
  wait_print("dup alive, first fd closed: set 2", e2, 3000);
  printf("echo read through the dup: %d\n", drain(d));
  close(d);
  int n = udp_bound(port + 1);
  printf("new socket reuses the closed fd number: %s\n", n == sfd || n == d ? "yes" : "no");
  send_peer(n, "x");
  wait_print("last fd closed: set 1", e1, 300);
  wait_print("last fd closed: set 2", e2, 100);
  struct epoll_event c = {.events = EPOLLIN, .data.u64 = 1003};
  printf("new socket added to set 1: ret=%d\n", epoll_ctl(e1, EPOLL_CTL_ADD, n, &c));
  wait_print("new socket: set 1", e1, 3000);
  wait_print("new socket: set 2", e2, 100);
  drain(n);
  close(n);

  /* A socket not decided yet (no bind, no send), closed in a set. */
  int p = socket(AF_INET, SOCK_DGRAM, 0);
  struct epoll_event pe = {.events = EPOLLIN, .data.u64 = 1004};
  epoll_ctl(e3, EPOLL_CTL_ADD, p, &pe);
  close(p);
  int q = socket(AF_INET, SOCK_DGRAM, 0);
  printf("new socket reuses the pending fd number: %s\n", q == p ? "yes" : "no");
  send_peer(q, "x");
  wait_print("pending socket closed: set 3", e3, 300);
  struct epoll_event qe = {.events = EPOLLIN, .data.u64 = 1005};
  printf("new socket added to set 3: ret=%d\n", epoll_ctl(e3, EPOLL_CTL_ADD, q, &qe));
  wait_print("new socket: set 3", e3, 3000);
  drain(q);
  close(q);
  close(e1);
  close(e2);
  close(e3);
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PEER_IP PEER_PORT BASE_PORT [N]\n", argv[0]);
    return 2;
  }
  g_peer.sin_family = AF_INET;
  g_peer.sin_port = htons((uint16_t)atoi(argv[2]));
  inet_pton(AF_INET, argv[1], &g_peer.sin_addr);
  int base = atoi(argv[3]);
  int n = argc > 4 ? atoi(argv[4]) : 200;
  struct rlimit rl = {4096, 4096};
  setrlimit(RLIMIT_NOFILE, &rl);
  many(base, n);
  closed_members(base + n);
  printf("done\n");
  return 0;
}
