/* Two UDP sockets on one port, demultiplexed by the full address, as the
 * kernel does (run the same with and without the preload; the output must be
 * the same):
 *
 *   demux_check peer PORT_X PORT_Y COUNT
 *       in the other host: peers X and Y (kernel sockets on PORT_X, PORT_Y);
 *       each answers a "go" with COUNT datagrams "X <i>" / "Y <i>" to its
 *       sender
 *   demux_check run PEER_IP PORT_X PORT_Y PORT COUNT
 *       socket A bound to PORT and connected to X, socket B bound to PORT
 *       unconnected (both SO_REUSEADDR), in the iperf3 server's order (A
 *       binds and connects, then B binds) and the other (B binds first): X's
 *       datagrams must reach A and only A, Y's B and only B. Then, on
 *       PORT + 2 and PORT + 3: a second bind without SO_REUSEADDR on both
 *       sockets fails with EADDRINUSE.
 *   demux_check listen-bind TCP_PORT UDP_PORT
 *       listens on TCP_PORT, then binds a UDP socket (SO_REUSEADDR) to
 *       UDP_PORT and prints "bind: ok" or "bind: <errno name>"; under the
 *       preload the listener holds the transport's rendezvous port, so a
 *       UDP bind there must fail loudly instead of leaving a deaf socket.
 *
 * Prints "ok: ..." lines and exits 0, or "FAIL: ..." and exits 1. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fail(const char* what) {
  printf("FAIL: %s\n", what);
  fflush(stdout);
  exit(1);
}

static struct sockaddr_in addr(const char* ip, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = ip != NULL ? inet_addr(ip) : htonl(INADDR_ANY);
  return a;
}

/* A UDP socket bound to 0.0.0.0:port; -errno when the bind fails. */
static int bound(int port, int reuse) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) fail("socket");
  if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) != 0)
    fail("SO_REUSEADDR");
  struct sockaddr_in a = addr(NULL, port);
  if (bind(fd, (struct sockaddr*)&a, sizeof(a)) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int peer(int port_x, int port_y, int count) {
  int fds[2] = {bound(port_x, 0), bound(port_y, 0)};
  if (fds[0] < 0 || fds[1] < 0) fail("peer bind");
  printf("peer ready\n");
  fflush(stdout);
  double end = now_s() + 120; /* the test kills it long before */
  while (now_s() < end) {
    struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    if (poll(p, 2, 1000) <= 0) continue;
    for (int i = 0; i < 2; i++) {
      if (!(p[i].revents & POLLIN)) continue;
      char buf[64];
      struct sockaddr_in from;
      socklen_t len = sizeof(from);
      ssize_t n = recvfrom(fds[i], buf, sizeof(buf), 0, (struct sockaddr*)&from, &len);
      if (n != 2 || memcmp(buf, "go", 2) != 0) continue;
      for (int k = 0; k < count; k++) {
        char out[32];
        int m = snprintf(out, sizeof(out), "%c %d", i == 0 ? 'X' : 'Y', k);
        sendto(fds[i], out, (size_t)m, 0, (struct sockaddr*)&from, len);
      }
    }
  }
  return 0;
}

/* Receives on a and b until each has count datagrams (or 10 s pass), then
 * 300 ms more for strays; every datagram on a must be "X ..." from x, every
 * one on b "Y ..." from y. */
static void collect(const char* order, int a, int b, const struct sockaddr_in* x,
                    const struct sockaddr_in* y, int count) {
  int got[2] = {0, 0};
  int fds[2] = {a, b};
  const struct sockaddr_in* want[2] = {x, y};
  double end = now_s() + 10, quiet_end = 0;
  for (;;) {
    double t = now_s();
    if (got[0] >= count && got[1] >= count && quiet_end == 0) quiet_end = t + 0.3;
    if (t >= (quiet_end != 0 ? quiet_end : end)) break;
    struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (poll(p, 2, 50) <= 0) continue;
    for (int i = 0; i < 2; i++) {
      if (!(p[i].revents & POLLIN)) continue;
      char buf[64];
      struct sockaddr_in from;
      socklen_t len = sizeof(from);
      ssize_t n =
          recvfrom(fds[i], buf, sizeof(buf) - 1, MSG_DONTWAIT, (struct sockaddr*)&from, &len);
      if (n < 0) continue;
      buf[n] = 0;
      char what[160];
      if (from.sin_addr.s_addr != want[i]->sin_addr.s_addr || from.sin_port != want[i]->sin_port ||
          buf[0] != (i == 0 ? 'X' : 'Y')) {
        snprintf(what, sizeof(what), "%s: socket %c got \"%s\" from port %u", order,
                 i == 0 ? 'A' : 'B', buf, ntohs(from.sin_port));
        fail(what);
      }
      got[i]++;
    }
  }
  if (got[0] != count || got[1] != count) {
    char what[160];
    snprintf(what, sizeof(what), "%s: A got %d of %d datagrams from X, B %d of %d from Y", order,
             got[0], count, got[1], count);
    fail(what);
  }
  printf("ok: %s: A (connected to X) got X's %d datagrams, B (unconnected) Y's %d\n", order, count,
         count);
}

static void scenario(const char* order, int b_first, const char* peer_ip, int port_x, int port_y,
                     int port, int count) {
  struct sockaddr_in x = addr(peer_ip, port_x), y = addr(peer_ip, port_y);
  int b = b_first ? bound(port, 1) : -1;
  int a = bound(port, 1);
  if (a < 0) fail("bind A");
  if (connect(a, (struct sockaddr*)&x, sizeof(x)) != 0) fail("connect A to X");
  if (!b_first) b = bound(port, 1);
  if (b < 0) {
    char what[120];
    snprintf(what, sizeof(what), "%s: bind B to the port of A: %s", order, strerror(-b));
    fail(what);
  }
  if (send(a, "go", 2, 0) != 2) fail("send from A to X");
  if (sendto(b, "go", 2, 0, (struct sockaddr*)&y, sizeof(y)) != 2) fail("send from B to Y");
  collect(order, a, b, &x, &y, count);
  close(a);
  close(b);
}

static void no_reuse(int port, int first_reuse) {
  int c = bound(port, first_reuse);
  if (c < 0) fail("bind the first socket");
  int d = bound(port, 0);
  char what[160];
  snprintf(what, sizeof(what), "second bind without SO_REUSEADDR (first %s): %s",
           first_reuse ? "with it" : "without", d >= 0 ? "succeeded" : strerror(-d));
  if (d != -EADDRINUSE) fail(what);
  printf("ok: %s\n", what);
  close(c);
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 5 && strcmp(argv[1], "peer") == 0)
    return peer(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
  if (argc == 4 && strcmp(argv[1], "listen-bind") == 0) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in la = addr(NULL, atoi(argv[2]));
    if (l < 0 || bind(l, (struct sockaddr*)&la, sizeof(la)) != 0 || listen(l, 4) != 0)
      fail("listen");
    int fd = bound(atoi(argv[3]), 1);
    printf("bind: %s\n", fd >= 0 ? "ok" : -fd == EADDRINUSE ? "EADDRINUSE" : strerror(-fd));
    return 0;
  }
  if (argc != 7 || strcmp(argv[1], "run") != 0) {
    fprintf(stderr,
            "usage: demux_check peer PORT_X PORT_Y COUNT | run PEER_IP PORT_X PORT_Y PORT COUNT | "
            "listen-bind TCP_PORT UDP_PORT\n");
    return 2;
  }
  const char* ip = argv[2];
  int port_x = atoi(argv[3]), port_y = atoi(argv[4]), port = atoi(argv[5]), count = atoi(argv[6]);
  scenario("connected first", 0, ip, port_x, port_y, port, count);
  scenario("unconnected first", 1, ip, port_x, port_y, port + 1, count);
  no_reuse(port + 2, 0);
  no_reuse(port + 3, 1);
  printf("PASS\n");
  return 0;
}
