/* fork_race_check: fork() while other threads are inside the preload's
 * socket calls, and fork() while the engine is starting.
 *
 *   fork_race_check PEER_IP PEER_PORT BASE_PORT threads FORKS
 *     Offloaded sockets on BASE_PORT, BASE_PORT+1 and BASE_PORT+10..39 in
 *     an epoll set; threads loop in epoll_wait (three), recvfrom
 *     (SO_RCVTIMEO), sendto and socket/bind/close (BASE_PORT+2) and
 *     epoll_create/epoll_ctl/close,
 *     while the main thread forks FORKS times. Each child closes the
 *     inherited fds, makes a new epoll set and a kernel UDP socket
 *     (BASE_PORT+3), asks the peer who it is through it and exits with
 *     exit() (atexit handlers run).
 *   fork_race_check PEER_IP PEER_PORT BASE_PORT start
 *     A thread's first bind starts the engine (BASE_PORT) while the main
 *     thread forks until that bind has returned; each child binds
 *     BASE_PORT+1 (a port the rules offload), asks the peer who it is and
 *     exits.
 *
 * Every child must exit 0 within a bound (a watchdog kills it otherwise:
 * the test fails); the parent's socket must still work afterwards. Prints
 * one result per line; exit 0 when every step completed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A child that has not exited after this long is hung (deadlocked). */
#define WATCHDOG_S 30

static struct sockaddr_in g_peer;
static int g_base;
static atomic_int g_stop;

static const char* ename(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E?";
}

static int udp_bound(int port) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (bind(s, (struct sockaddr*)&a, sizeof(a)) != 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  return s;
}

/* Sends "whoami" and reads the answer into out (the address the peer saw);
 * a few tries (UDP). 0 or -1. */
static int whoami(int fd, char* out, size_t len) {
  for (int tries = 0; tries < 5; tries++) {
    if (sendto(fd, "whoami", 6, 0, (struct sockaddr*)&g_peer, sizeof(g_peer)) < 0) return -1;
    for (;;) {
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 1000) != 1) break;
      ssize_t n = recv(fd, out, len - 1, MSG_DONTWAIT);
      if (n < 0) return -1;
      out[n] = '\0';
      /* A late echo of the send loop's "x" is not the answer. */
      if (strcmp(out, "x") != 0) return 0;
    }
  }
  errno = ETIMEDOUT;
  return -1;
}

/* Waits for the child; a watchdog kill is a failure. Returns 0 when it
 * exited 0. */
static int reap(pid_t pid, int i, const char* what) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
      printf("%s: child of fork %d: %s %d\n", what, i, WIFEXITED(st) ? "exit" : "signal",
             WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
      return -1;
    }
    if (r < 0 && errno != EINTR) {
      printf("%s: waitpid: %s\n", what, ename(errno));
      return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec >= WATCHDOG_S) {
      char path[64], wchan[64] = "?";
      snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
      FILE* f = fopen(path, "r");
      if (f != NULL) {
        if (fgets(wchan, sizeof(wchan), f) == NULL) strcpy(wchan, "?");
        fclose(f);
      }
      printf("%s: child of fork %d hung for %d s (waiting in %s): watchdog kill\n", what, i,
             WATCHDOG_S, wchan);
      fflush(stdout);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    usleep(1000);
  }
}

/* ---- threads: the parent's threads inside the shim --------------------------- */

#define EXTRA_MEMBERS 30
#define NTHREADS 6
static int g_a, g_b, g_ep;

static void* epoll_loop(void* arg) {
  (void)arg;
  struct epoll_event ev[8];
  char buf[256];
  /* Mostly without sleeping: the shim's set is looked at all the time. */
  for (unsigned it = 0; !atomic_load(&g_stop); it++) {
    int n = epoll_wait(g_ep, ev, 8, (it & 63) == 0 ? 1 : 0);
    for (int i = 0; i < n; i++) recv(ev[i].data.fd, buf, sizeof(buf), MSG_DONTWAIT);
  }
  return NULL;
}

static void* recv_loop(void* arg) {
  (void)arg;
  struct timeval tv = {0, 1000};
  setsockopt(g_b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[256];
  while (!atomic_load(&g_stop)) recvfrom(g_b, buf, sizeof(buf), 0, NULL, NULL);
  return NULL;
}

static void* send_loop(void* arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    sendto(g_a, "x", 1, 0, (struct sockaddr*)&g_peer, sizeof(g_peer));
    usleep(200);
  }
  return NULL;
}

/* socket/bind/close of an offloaded socket (the decision, the socket
 * layer's open and close) and epoll sets made and closed. */
static void* close_loop(void* arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    int s = udp_bound(g_base + 2);
    int e = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = g_a};
    epoll_ctl(e, EPOLL_CTL_ADD, g_a, &ev);
    if (s >= 0) {
      ev.data.fd = s;
      epoll_ctl(e, EPOLL_CTL_ADD, s, &ev);
    }
    struct epoll_event out[4];
    epoll_wait(e, out, 4, 0);
    close(e);
    if (s >= 0) close(s);
  }
  return NULL;
}

static int child_work(void) {
  close(g_ep);
  close(g_a);
  close(g_b);
  int e = epoll_create1(0);
  int k = udp_bound(g_base + 3);
  if (e < 0 || k < 0) {
    printf("child: epoll_create1/socket/bind: %s\n", ename(errno));
    return 3;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = k};
  if (epoll_ctl(e, EPOLL_CTL_ADD, k, &ev) != 0) {
    printf("child: epoll_ctl: %s\n", ename(errno));
    return 3;
  }
  char saw[64];
  if (whoami(k, saw, sizeof(saw)) != 0) {
    printf("child: kernel socket: no answer (%s)\n", ename(errno));
    return 3;
  }
  close(k);
  close(e);
  return 0;
}

static int threads_mode(int forks) {
  char saw[64];
  g_a = udp_bound(g_base);
  g_b = udp_bound(g_base + 1);
  g_ep = epoll_create1(0);
  if (g_a < 0 || g_b < 0 || g_ep < 0) {
    printf("setup: %s\n", ename(errno));
    return 1;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = g_a};
  epoll_ctl(g_ep, EPOLL_CTL_ADD, g_a, &ev);
  ev.data.fd = g_b;
  epoll_ctl(g_ep, EPOLL_CTL_ADD, g_b, &ev);
  /* More members: each look at the set takes longer. */
  for (int i = 0; i < EXTRA_MEMBERS; i++) {
    int s = udp_bound(g_base + 10 + i);
    ev.data.fd = s;
    if (s < 0 || epoll_ctl(g_ep, EPOLL_CTL_ADD, s, &ev) != 0) {
      printf("setup: member %d: %s\n", i, ename(errno));
      return 1;
    }
  }
  if (whoami(g_a, saw, sizeof(saw)) != 0) {
    printf("parent before forks: no answer (%s)\n", ename(errno));
    return 1;
  }
  printf("parent before forks: peer saw %s\n", saw);
  fflush(stdout);
  pthread_t t[NTHREADS];
  void* (*fn[NTHREADS])(void*) = {epoll_loop, epoll_loop, epoll_loop,
                                  recv_loop,  send_loop,  close_loop};
  for (int i = 0; i < NTHREADS; i++) pthread_create(&t[i], NULL, fn[i], NULL);
  usleep(100000);
  int ok = 0, failed = 0;
  for (int i = 0; i < forks && failed == 0; i++) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
      printf("fork: %s\n", ename(errno));
      failed++;
      break;
    }
    if (pid == 0) {
      int rc = child_work();
      fflush(stdout);
      exit(rc);
    }
    if (reap(pid, i, "threads") == 0)
      ok++;
    else
      failed++;
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  printf("threads: %d forks, %d children exited 0, %d failed\n", ok + failed, ok, failed);
  /* Drain the echoes of the send loop, then the parent's socket again. */
  char buf[256];
  while (recv(g_a, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
  if (whoami(g_a, saw, sizeof(saw)) != 0) {
    printf("parent after forks: no answer (%s)\n", ename(errno));
    return 1;
  }
  printf("parent after forks: peer saw %s\n", saw);
  return failed == 0 && ok == forks ? 0 : 1;
}

/* ---- start: forks while the engine starts -------------------------------------- */

static atomic_int g_starting, g_started;
static int g_first = -1;

static void* start_engine(void* arg) {
  (void)arg;
  atomic_store(&g_starting, 1);
  g_first = udp_bound(g_base); /* the first offloaded socket: the engine starts */
  atomic_store(&g_started, 1);
  return NULL;
}

static int start_mode(void) {
  pthread_t t;
  pthread_create(&t, NULL, start_engine, NULL);
  while (!atomic_load(&g_starting)) {
  }
  usleep(2000); /* let the thread get into the engine's start */
  int forks = 0, ok = 0, failed = 0;
  while (!atomic_load(&g_started) && failed == 0) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
      printf("fork: %s\n", ename(errno));
      failed++;
      break;
    }
    if (pid == 0) {
      int k = udp_bound(g_base + 1);
      char saw[64];
      int rc = k >= 0 && whoami(k, saw, sizeof(saw)) == 0 ? 0 : 3;
      if (rc != 0) printf("start child: %s\n", ename(errno));
      fflush(stdout);
      exit(rc);
    }
    forks++;
    if (reap(pid, forks, "start") == 0)
      ok++;
    else
      failed++;
  }
  pthread_join(t, NULL);
  printf("start: %d forks during the engine's start, %d children exited 0, %d failed\n", forks, ok,
         failed);
  char saw[64];
  if (g_first < 0 || whoami(g_first, saw, sizeof(saw)) != 0) {
    printf("parent after start: no answer (%s)\n", ename(errno));
    return 1;
  }
  printf("parent after start: peer saw %s\n", saw);
  return failed == 0 && forks > 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: fork_race_check PEER_IP PEER_PORT BASE_PORT threads FORKS\n"
            "       fork_race_check PEER_IP PEER_PORT BASE_PORT start\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_peer.sin_family = AF_INET;
  g_peer.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &g_peer.sin_addr) != 1) return 2;
  g_base = atoi(argv[3]);
  if (strcmp(argv[4], "threads") == 0 && argc == 6) return threads_mode(atoi(argv[5]));
  if (strcmp(argv[4], "start") == 0) return start_mode();
  return 2;
}
