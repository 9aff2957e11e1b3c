/* epoll_check: epoll semantics on a UDP socket, one result per line. Run
 * once on the kernel and once under libmachnet_preload.so against the same
 * kernel echo peer (tests/preload/peer.py serve): the outputs must be
 * identical, so the values checked are the kernel's.
 *   - level-triggered: reported while readable;
 *   - EPOLLET: one report per arrival (not while the socket stays
 *     readable), with every ready bit; data queued before ADD/MOD;
 *     EPOLLIN|EPOLLOUT edge after a send and an arrival;
 *   - EPOLLONESHOT (level and edge): one report until EPOLL_CTL_MOD;
 *   - one socket in several epoll sets, edge and level;
 *   - an epoll fd inside another epoll fd, level and edge;
 *   - a thread waiting (recv, poll, epoll) on a socket bound to port 0 while
 *     another thread's first sendto decides it (offloads it, under the
 *     preload): the wait ends with the echo.
 *
 *   epoll_check PEER_IP PEER_PORT LOCAL_PORT
 * Exit status 0 when the run completed (the comparison is the test). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in g_peer;
static int g_sock;

static const char* ename(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E?";
}

static long report(const char* name, long ret) {
  if (ret < 0)
    printf("%s: ret=%ld errno=%s\n", name, ret, ename(errno));
  else
    printf("%s: ret=%ld\n", name, ret);
  fflush(stdout);
  return ret;
}

/* epoll_wait, printing the count and each event (data, events). */
static int wait_print(const char* name, int ep, int timeout_ms) {
  struct epoll_event ev[8];
  int n = epoll_wait(ep, ev, 8, timeout_ms);
  report(name, n);
  for (int i = 0; i < n; i++)
    printf("  event data %llu events %#x\n", (unsigned long long)ev[i].data.u64, ev[i].events);
  return n;
}

/* One datagram to the echo peer; the echo comes back to g_sock. */
static void echo(int len) {
  char buf[64];
  memset(buf, 'e', sizeof(buf));
  if (sendto(g_sock, buf, (size_t)len, 0, (struct sockaddr*)&g_peer, sizeof(g_peer)) != len) {
    perror("sendto");
    exit(1);
  }
}

/* Until the echoes sent are back: the first one is waited for with poll
 * (which leaves epoll's state alone), then a margin for a second one. */
static void settle(void) {
  struct pollfd p = {g_sock, POLLIN, 0};
  poll(&p, 1, 2000);
  usleep(150000);
}

static void drain(const char* name) {
  char buf[128];
  int n = 0;
  while (recv(g_sock, buf, sizeof(buf), MSG_DONTWAIT) >= 0) n++;
  printf("%s: drained %d, then %s\n", name, n, ename(errno));
}

static int add(int ep, int fd, uint32_t events, uint64_t data) {
  struct epoll_event ev = {.events = events, .data.u64 = data};
  return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int mod(int ep, int fd, uint32_t events, uint64_t data) {
  struct epoll_event ev = {.events = events, .data.u64 = data};
  return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* A waiter on a socket nobody has sent from yet. */
struct pend_arg {
  int fd, how;
  long ret;
};

static void* pend_waiter(void* p) {
  struct pend_arg* a = p;
  char buf[64];
  if (a->how == 0) {
    a->ret = recv(a->fd, buf, sizeof(buf), 0);
  } else if (a->how == 1) {
    struct pollfd pf = {a->fd, POLLIN, 0};
    a->ret = poll(&pf, 1, 3000);
    if (a->ret > 0) a->ret = pf.revents;
  } else {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 99};
    epoll_ctl(ep, EPOLL_CTL_ADD, a->fd, &ev);
    a->ret = epoll_wait(ep, &ev, 1, 3000);
    if (a->ret > 0) a->ret = (long)ev.data.u64;
    close(ep);
  }
  return NULL;
}

static void* watchdog(void* arg) {
  (void)arg;
  sleep(60);
  fprintf(stderr, "epoll_check: still running after 60 s\n");
  _exit(3);
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: epoll_check PEER_IP PEER_PORT LOCAL_PORT\n");
    return 2;
  }
  g_peer.sin_family = AF_INET;
  g_peer.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &g_peer.sin_addr) != 1) return 2;
  pthread_t wd;
  pthread_create(&wd, NULL, watchdog, NULL);
  g_sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
  if (g_sock < 0 || bind(g_sock, (struct sockaddr*)&local, sizeof(local)) != 0) {
    perror("socket/bind");
    return 1;
  }
  /* First exchange: ARP, and the engine's start. */
  echo(8);
  usleep(500000);
  drain("warm-up");

  /* ---- level-triggered ---- */
  int ep = epoll_create1(0);
  report("lt add", add(ep, g_sock, EPOLLIN, 1));
  wait_print("lt empty", ep, 50);
  echo(10);
  wait_print("lt arrival", ep, 2000);
  wait_print("lt still readable", ep, 0);
  drain("lt");
  wait_print("lt drained", ep, 50);

  /* ---- edge-triggered ---- */
  report("et mod", mod(ep, g_sock, EPOLLIN | EPOLLET, 2));
  wait_print("et empty", ep, 50);
  echo(11);
  wait_print("et arrival", ep, 2000);
  wait_print("et no new arrival", ep, 100);
  echo(12);
  wait_print("et second arrival", ep, 2000);
  char one[64];
  report("et recv one", recv(g_sock, one, sizeof(one), 0));
  wait_print("et after recv one", ep, 100);
  drain("et");
  wait_print("et drained", ep, 50);
  echo(13);
  echo(14);
  settle();
  wait_print("et two arrivals, one report", ep, 0);
  wait_print("et two arrivals, then nothing", ep, 50);
  report("et mod re-arms", mod(ep, g_sock, EPOLLIN | EPOLLET, 3));
  wait_print("et queued at mod", ep, 0);
  wait_print("et queued at mod, once", ep, 50);
  drain("et 2");
  report("et mod in|out", mod(ep, g_sock, EPOLLIN | EPOLLOUT | EPOLLET, 4));
  wait_print("et out at mod", ep, 0);
  wait_print("et out once", ep, 50);
  echo(15);
  settle();
  wait_print("et send and arrival", ep, 0);
  wait_print("et send and arrival, once", ep, 50);
  drain("et 3");
  report("et del", epoll_ctl(ep, EPOLL_CTL_DEL, g_sock, NULL));
  echo(16);
  settle();
  report("et add with data queued", add(ep, g_sock, EPOLLIN | EPOLLET, 5));
  wait_print("et queued at add", ep, 0);
  wait_print("et queued at add, once", ep, 50);
  drain("et 4");

  /* ---- EPOLLONESHOT ---- */
  report("oneshot mod", mod(ep, g_sock, EPOLLIN | EPOLLONESHOT, 6));
  echo(17);
  wait_print("oneshot arrival", ep, 2000);
  wait_print("oneshot disarmed", ep, 100);
  echo(18);
  settle();
  wait_print("oneshot disarmed, new arrival", ep, 50);
  report("oneshot re-arm", mod(ep, g_sock, EPOLLIN | EPOLLONESHOT, 7));
  wait_print("oneshot re-armed, readable", ep, 0);
  wait_print("oneshot disarmed again", ep, 50);
  drain("oneshot");
  report("oneshot et mod", mod(ep, g_sock, EPOLLIN | EPOLLET | EPOLLONESHOT, 8));
  echo(19);
  wait_print("oneshot et arrival", ep, 2000);
  echo(20);
  settle();
  wait_print("oneshot et disarmed", ep, 50);
  drain("oneshot et");

  /* ---- several epoll sets ---- */
  report("multi mod et", mod(ep, g_sock, EPOLLIN | EPOLLET, 9));
  int ep2 = epoll_create1(EPOLL_CLOEXEC);
  int ep3 = epoll_create1(0);
  report("multi add lt", add(ep2, g_sock, EPOLLIN, 10));
  report("multi add et", add(ep3, g_sock, EPOLLIN | EPOLLET, 11));
  echo(21);
  settle();
  wait_print("multi et set 1", ep, 0);
  wait_print("multi lt set", ep2, 0);
  wait_print("multi et set 2", ep3, 0);
  wait_print("multi et set 1 again", ep, 0);
  wait_print("multi lt set again", ep2, 0);
  wait_print("multi et set 2 again", ep3, 0);
  echo(22);
  wait_print("multi et set 2 arrival", ep3, 2000);
  wait_print("multi et set 1 arrival", ep, 0);
  drain("multi");
  wait_print("multi lt set drained", ep2, 50);
  report("multi del from set 1", epoll_ctl(ep, EPOLL_CTL_DEL, g_sock, NULL));
  echo(23);
  wait_print("multi lt set after del from set 1", ep2, 2000);
  wait_print("multi set 1 after del", ep, 50);
  drain("multi 2");
  report("multi close set 3", close(ep3));

  /* ---- an epoll fd inside another one ---- */
  int outer = epoll_create1(0);
  report("nested add (level)", add(outer, ep2, EPOLLIN, 12));
  wait_print("nested empty", outer, 50);
  echo(24);
  wait_print("nested arrival", outer, 2000);
  wait_print("nested still ready", outer, 0);
  wait_print("nested inner", ep2, 0);
  drain("nested");
  wait_print("nested drained", outer, 50);
  int outer_et = epoll_create1(0);
  report("nested add (edge)", add(outer_et, ep2, EPOLLIN | EPOLLET, 13));
  wait_print("nested et empty", outer_et, 50);
  echo(25);
  wait_print("nested et arrival", outer_et, 2000);
  wait_print("nested et once", outer_et, 100);
  wait_print("nested level meanwhile", outer, 0);
  drain("nested et");
  wait_print("nested et drained", outer_et, 50);
  report("nested del", epoll_ctl(outer, EPOLL_CTL_DEL, ep2, NULL));
  echo(26);
  settle();
  wait_print("nested after del", outer, 50);
  drain("nested 2");
  report("nested close inner", close(ep2));
  echo(27);
  settle();
  wait_print("nested et after inner closed", outer_et, 50);
  drain("nested 3");
  close(outer);
  close(outer_et);
  close(ep);
  close(g_sock);

  /* ---- waiting on a socket decided by another thread's first sendto ---- */
  const char* how_name[3] = {"recv", "poll", "epoll_wait"};
  for (int how = 0; how < 3; how++) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in any = {.sin_family = AF_INET};
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (fd < 0 || bind(fd, (struct sockaddr*)&any, sizeof(any)) != 0) return 1;
    struct pend_arg arg = {fd, how, 0};
    pthread_t t;
    pthread_create(&t, NULL, pend_waiter, &arg);
    usleep(100000);
    char name[64];
    snprintf(name, sizeof(name), "undecided, %s in another thread: sendto", how_name[how]);
    report(name, sendto(fd, "pending", 7, 0, (struct sockaddr*)&g_peer, sizeof(g_peer)));
    pthread_join(t, NULL);
    snprintf(name, sizeof(name), "undecided, %s in another thread", how_name[how]);
    errno = 0;
    report(name, arg.ret);
    close(fd);
  }
  printf("done\n");
  return 0;
}
