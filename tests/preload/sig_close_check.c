/* sig_close_check: close() of an offloaded socket from a signal handler
 * that interrupted a send or receive on another offloaded socket.
 *
 *   sig_close_check PEER_IP PEER_PORT BASE_PORT COUNT
 * The main thread ping-pongs with the peer (an echo server) on a socket
 * bound to BASE_PORT, in sendto and a blocking recvfrom; an interval timer
 * (SIGALRM, SA_RESTART) fires every 200 us, and its handler sends a
 * datagram on the main socket (MSG_DONTWAIT), reads the flags of the
 * "victim", a second socket bound to BASE_PORT+1, and closes it. After each
 * such close,
 * outside the handler:
 *   - the victim's fd number, taken by a pipe, must behave as a pipe (the
 *     closed socket left nothing behind in the fd table);
 *   - a new victim binds BASE_PORT+1 again; every 50th one asks the peer
 *     who it is (the port must be the new socket's, not held by the old).
 * Ends after COUNT closes by the handler. Prints one result per line; exit
 * 0 when every step completed. A hang is the failure this guards against:
 * the test script runs it under a watchdog. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static struct sockaddr_in g_peer;
static volatile sig_atomic_t g_victim = -1;
static volatile sig_atomic_t g_closed, g_close_err;

static const char* ename(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E?";
}

static int g_main = -1;

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  /* What else a handler plausibly does: a non-blocking send on the
   * interrupted socket, the flags of the one it closes. */
  if (g_main >= 0) sendto(g_main, "h", 1, MSG_DONTWAIT, (struct sockaddr*)&g_peer, sizeof(g_peer));
  int fd = g_victim;
  if (fd >= 0 && fcntl(fd, F_GETFL) < 0) g_close_err = errno;
  if (fd >= 0) {
    g_victim = -1;
    if (close(fd) == 0)
      g_closed++;
    else
      g_close_err = errno;
  }
  errno = saved;
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

/* "whoami" to the peer and its answer, a few tries; late echoes of the
 * ping-pong ("ping") and of the handler's sends ("h") are skipped. */
static int whoami(int fd, char* out, size_t len) {
  for (int tries = 0; tries < 5; tries++) {
    if (sendto(fd, "whoami", 6, 0, (struct sockaddr*)&g_peer, sizeof(g_peer)) < 0) return -1;
    for (;;) {
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 1000) != 1) break;
      ssize_t n = recv(fd, out, len - 1, MSG_DONTWAIT);
      if (n < 0) return -1;
      out[n] = '\0';
      if (strcmp(out, "ping") != 0 && strcmp(out, "h") != 0) return 0;
    }
  }
  errno = ETIMEDOUT;
  return -1;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: sig_close_check PEER_IP PEER_PORT BASE_PORT COUNT\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_peer.sin_family = AF_INET;
  g_peer.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &g_peer.sin_addr) != 1) return 2;
  int base = atoi(argv[3]), count = atoi(argv[4]);
  int r = udp_bound(base);
  int v = udp_bound(base + 1);
  if (r < 0 || v < 0) {
    printf("setup: %s\n", ename(errno));
    return 1;
  }
  char saw[64];
  if (whoami(r, saw, sizeof(saw)) != 0 || whoami(v, saw, sizeof(saw)) != 0) {
    printf("setup: no answer (%s)\n", ename(errno));
    return 1;
  }
  printf("before: peer saw %s\n", saw);
  /* A lost echo must not stall the ping-pong: resend after 1 s. */
  struct timeval tv = {1, 0};
  setsockopt(r, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  sigset_t alrm;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  g_main = r;
  g_victim = v;
  struct itimerval it = {{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &it, NULL);

  long pings = 0, checked = 0;
  int last = v, reused = 0;
  while (g_closed < count) {
    char buf[64];
    if (sendto(r, "ping", 4, 0, (struct sockaddr*)&g_peer, sizeof(g_peer)) == 4) {
      ssize_t n = recvfrom(r, buf, sizeof(buf), 0, NULL, NULL);
      if (n == 4) pings++;
      /* EINTR (SO_RCVTIMEO: never restarted), EAGAIN (a lost datagram): again. */
      else if (n < 0 && errno != EINTR && errno != EAGAIN) {
        printf("recvfrom: %s\n", ename(errno));
        return 1;
      }
    }
    if (g_close_err != 0) {
      printf("close in the handler: %s\n", ename(g_close_err));
      return 1;
    }
    if (g_victim >= 0) continue;
    /* The handler closed the victim: check and replace it, with the timer's
     * signal held. */
    sigprocmask(SIG_BLOCK, &alrm, NULL);
    int p[2];
    if (pipe(p) != 0) {
      printf("pipe: %s\n", ename(errno));
      return 1;
    }
    if (p[0] == last || p[1] == last) reused++;
    if (write(p[1], "ok", 2) != 2 || read(p[0], buf, 2) != 2 || memcmp(buf, "ok", 2) != 0) {
      printf("a pipe on fd %d (the closed socket's number was %d) does not work: %s\n", p[0], last,
             ename(errno));
      return 1;
    }
    close(p[0]);
    close(p[1]);
    v = udp_bound(base + 1);
    if (v < 0) {
      printf("close %d: bind of the new victim: %s\n", (int)g_closed, ename(errno));
      return 1;
    }
    if (g_closed % 50 == 0) {
      if (whoami(v, saw, sizeof(saw)) != 0) {
        printf("close %d: the new victim gets no answer (%s)\n", (int)g_closed, ename(errno));
        return 1;
      }
      checked++;
    }
    last = v;
    if (g_closed < count) g_victim = v;
    sigprocmask(SIG_UNBLOCK, &alrm, NULL);
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  printf(
      "handler closed %d offloaded sockets (%d fd numbers reused by a pipe, %ld new victims "
      "answered) during %ld ping-pongs\n",
      (int)g_closed, reused, checked, pings);
  if (whoami(r, saw, sizeof(saw)) != 0) {
    printf("after: no answer (%s)\n", ename(errno));
    return 1;
  }
  printf("after: peer saw %s\n", saw);
  return 0;
}
