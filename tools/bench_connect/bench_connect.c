/* bench_connect: connect-to-first-byte time of TCP connections, for
 * tools/bench. Plain POSIX sockets, so it runs the same with or without the
 * preload: the difference between two runs is the stack's, not the tool's.
 *
 *   bench_connect server IP PORT
 *       accepts connections one at a time; answers each byte it reads with
 *       one byte, until the peer closes.
 *   bench_connect client IP PORT COUNT [WARM_IP]
 *       first, with WARM_IP, one UDP datagram to WARM_IP:9 (under the
 *       preload this starts the engine, so that the first sample is the
 *       connect's own cost, not the engine's start); then COUNT times: socket, connect (blocking),
 * write one byte, read the one byte reply, close. The time from just before connect() to the reply
 *       is one sample. Prints every sample (us, in order: the first one is
 *       the one that probed when the peer is remembered afterwards), then
 *       "connect_us samples N p50 A p90 B p99 C max D first E".
 * Exit status 0 only when every connection got its reply. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int parse_addr(const char* ip, const char* port, struct sockaddr_in* sa) {
  memset(sa, 0, sizeof(*sa));
  sa->sin_family = AF_INET;
  sa->sin_port = htons((unsigned short)atoi(port));
  if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1) {
    fprintf(stderr, "bench_connect: bad address %s\n", ip);
    return -1;
  }
  return 0;
}

static int serve(const struct sockaddr_in* sa) {
  int one = 1;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
      bind(l, (const struct sockaddr*)sa, sizeof(*sa)) < 0 || listen(l, 128) < 0) {
    perror("bench_connect: listen");
    return 1;
  }
  printf("bench_connect: listening\n");
  fflush(stdout);
  for (;;) {
    int c = accept(l, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR) continue;
      perror("bench_connect: accept");
      return 1;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char b;
    while (read(c, &b, 1) == 1)
      if (write(c, &b, 1) != 1) break;
    close(c);
  }
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static void warm(const char* ip) {
  struct sockaddr_in w;
  char b = 0;
  if (parse_addr(ip, "9", &w) < 0) return;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0) return;
  if (sendto(s, &b, 1, 0, (const struct sockaddr*)&w, sizeof(w)) < 0)
    fprintf(stderr, "bench_connect: warm-up datagram: %s\n", strerror(errno));
  close(s);
  usleep(200000);
}

static int client(const struct sockaddr_in* sa, int count) {
  double* t = calloc((size_t)count, sizeof(double));
  if (!t) return 1;
  int one = 1;
  for (int i = 0; i < count; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
      perror("bench_connect: socket");
      return 1;
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char b = 'x';
    double t0 = now_us();
    if (connect(s, (const struct sockaddr*)sa, sizeof(*sa)) < 0) {
      fprintf(stderr, "bench_connect: connect %d: %s\n", i, strerror(errno));
      return 1;
    }
    if (write(s, &b, 1) != 1 || read(s, &b, 1) != 1) {
      fprintf(stderr, "bench_connect: no reply on connection %d: %s\n", i, strerror(errno));
      return 1;
    }
    t[i] = now_us() - t0;
    close(s);
    printf("%.1f\n", t[i]);
  }
  double first = t[0];
  qsort(t, (size_t)count, sizeof(double), cmp_double);
#define PCT(p) t[(size_t)((double)(count - 1) * (p))]
  printf("connect_us samples %d p50 %.1f p90 %.1f p99 %.1f max %.1f first %.1f\n", count, PCT(0.5),
         PCT(0.9), PCT(0.99), t[count - 1], first);
  free(t);
  return 0;
}

int main(int argc, char** argv) {
  struct sockaddr_in sa;
  if (argc == 4 && strcmp(argv[1], "server") == 0) {
    if (parse_addr(argv[2], argv[3], &sa) < 0) return 2;
    return serve(&sa);
  }
  if ((argc == 5 || argc == 6) && strcmp(argv[1], "client") == 0 && atoi(argv[4]) > 0) {
    if (parse_addr(argv[2], argv[3], &sa) < 0) return 2;
    if (argc == 6) warm(argv[5]);
    return client(&sa, atoi(argv[4]));
  }
  fprintf(stderr, "usage: bench_connect server IP PORT | client IP PORT COUNT [WARM_IP]\n");
  return 2;
}
