/*
 * Stream sockets under faults (tests/stream/test_stream_faults.sh): a bulk
 * transfer whose integrity is checked by SHA-256, and the ends a kill -9
 * leaves behind, which must learn of the death (ECONNRESET or ETIMEDOUT),
 * never hang.
 *
 *   stream_fault gen BYTES SEED              the payload stream on stdout
 *   stream_fault sha256                      SHA-256 of stdin (self-check)
 *   stream_fault listen PORT ROLE [OPTS]     accept one connection, then ROLE
 *   stream_fault connect IP PORT ROLE [OPTS] connect, then ROLE
 *   stream_fault serve PORT                  accept connections one after
 *                                            the other, recv on each
 *
 * ROLE:
 *   send BYTES SEED  send the pseudo-random stream, shut down the sending
 *                    side, wait for the peer's close; prints the hash sent,
 *                    goodput and TCP_INFO's retransmission count
 *   recv             read to EOF; prints the byte count and hash received
 *   fill             fill the send buffer (the peer reads nothing) until a
 *                    non-blocking send says EAGAIN, then block in send
 *   sleep            hold the connection, read nothing (the victim)
 * OPTS:
 *   -k IDLE,INTVL,CNT  SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT (seconds)
 *
 * Every line is flushed at once. "connected" once the connection is up; an
 * error ends the role with "error NAME after N bytes at T" (T: the
 * CLOCK_REALTIME seconds, for the test to time the detection) and exit 2.
 * EOF where the role expects data more is an error too ("error EOF ...").
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- SHA-256 (FIPS 180-4) --------------------------------------------- */

typedef struct {
  uint32_t h[8];
  uint64_t len;
  uint8_t buf[64];
  size_t nbuf;
} sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

static void sha256_block(sha256_ctx* c, const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3];
  uint32_t e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
    uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = cc;
    cc = b;
    b = a;
    a = t1 + t2;
  }
  c->h[0] += a;
  c->h[1] += b;
  c->h[2] += cc;
  c->h[3] += d;
  c->h[4] += e;
  c->h[5] += f;
  c->h[6] += g;
  c->h[7] += h;
}

static void sha256_init(sha256_ctx* c) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, h0, sizeof(h0));
  c->len = 0;
  c->nbuf = 0;
}

static void sha256_update(sha256_ctx* c, const uint8_t* p, size_t n) {
  c->len += n;
  if (c->nbuf > 0) {
    size_t k = 64 - c->nbuf < n ? 64 - c->nbuf : n;
    memcpy(c->buf + c->nbuf, p, k);
    c->nbuf += k;
    p += k;
    n -= k;
    if (c->nbuf < 64) return;
    sha256_block(c, c->buf);
    c->nbuf = 0;
  }
  for (; n >= 64; p += 64, n -= 64) sha256_block(c, p);
  memcpy(c->buf, p, n);
  c->nbuf = n;
}

static void sha256_hex(sha256_ctx* c, char out[65]) {
  uint64_t bits = c->len * 8;
  uint8_t pad[72] = {0x80};
  size_t padlen = (c->nbuf < 56 ? 56 : 120) - c->nbuf;
  for (int i = 0; i < 8; i++) pad[padlen + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(c, pad, padlen + 8);
  for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", c->h[i]);
}

/* ---- payload: splitmix64, 8 bytes at a time ------------------------------ */

typedef struct {
  uint64_t state;
} prng;

static void prng_fill(prng* r, uint8_t* p, size_t n) { /* n: a multiple of 8 */
  for (size_t i = 0; i < n; i += 8) {
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    memcpy(p + i, &z, 8);
  }
}

/* ---- helpers ------------------------------------------------------------ */

enum { CHUNK = 64 * 1024 };
static uint8_t g_buf[CHUNK];

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char* errname(int e) {
  switch (e) {
    case ECONNRESET:
      return "ECONNRESET";
    case ETIMEDOUT:
      return "ETIMEDOUT";
    case EPIPE:
      return "EPIPE";
    case ECONNREFUSED:
      return "ECONNREFUSED";
    case ECONNABORTED:
      return "ECONNABORTED";
    case ENETDOWN:
      return "ENETDOWN";
    default:
      return strerror(e);
  }
}

static uint32_t retransmits(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  memset(&ti, 0, sizeof(ti));
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return 0;
  return ti.tcpi_total_retrans;
}

/* The error line, then what TCP_INFO still says (for the test's log). */
static int fail_with(int fd, int e, uint64_t bytes) {
  double t = wall();
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  memset(&ti, 0, sizeof(ti));
  getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
  printf("error %s after %llu bytes at %.6f\n", e == 0 ? "EOF" : errname(e),
         (unsigned long long)bytes, t);
  printf("tcp_info: state %u rto %u us rtt %u us unacked %u segments retrans %u\n", ti.tcpi_state,
         ti.tcpi_rto, ti.tcpi_rtt, ti.tcpi_unacked, ti.tcpi_total_retrans);
  return 2;
}

static int set_keepalive(int fd, const char* spec) {
  int idle, intvl, cnt, on = 1;
  if (sscanf(spec, "%d,%d,%d", &idle, &intvl, &cnt) != 3) {
    fprintf(stderr, "bad -k %s (IDLE,INTVL,CNT)\n", spec);
    return -1;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0) {
    perror("setsockopt keepalive");
    return -1;
  }
  return 0;
}

/* ---- roles -------------------------------------------------------------- */

static int role_send(int fd, uint64_t bytes, uint64_t seed) {
  prng r = {seed};
  sha256_ctx h;
  sha256_init(&h);
  uint64_t sent = 0;
  double t0 = mono();
  while (sent < bytes) {
    size_t n = bytes - sent < CHUNK ? (size_t)(bytes - sent) : CHUNK;
    prng_fill(&r, g_buf, CHUNK);
    sha256_update(&h, g_buf, n);
    size_t off = 0;
    while (off < n) {
      ssize_t k = send(fd, g_buf + off, n - off, MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) return fail_with(fd, errno, sent + off);
      off += (size_t)k;
    }
    sent += n;
  }
  /* All handed over; the peer's close after its EOF says it has it all. */
  if (shutdown(fd, SHUT_WR) != 0) return fail_with(fd, errno, sent);
  ssize_t k;
  while ((k = recv(fd, g_buf, sizeof(g_buf), 0)) < 0 && errno == EINTR) {
  }
  if (k < 0) return fail_with(fd, errno, sent);
  double dt = mono() - t0;
  char hex[65];
  sha256_hex(&h, hex);
  printf("sent %llu bytes sha256 %s in %.3f s (%.1f MiB/s) retrans %u\n", (unsigned long long)sent,
         hex, dt, (double)sent / dt / 1048576.0, retransmits(fd));
  return 0;
}

static int role_recv(int fd) {
  sha256_ctx h;
  sha256_init(&h);
  uint64_t got = 0;
  double t0 = mono();
  for (;;) {
    ssize_t k = recv(fd, g_buf, sizeof(g_buf), 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return fail_with(fd, errno, got);
    if (k == 0) break;
    sha256_update(&h, g_buf, (size_t)k);
    got += (uint64_t)k;
  }
  double dt = mono() - t0;
  char hex[65];
  sha256_hex(&h, hex);
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  memset(&ti, 0, sizeof(ti));
  getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
  printf("received %llu bytes sha256 %s in %.3f s (tcp state %u) at %.6f\n",
         (unsigned long long)got, hex, dt, ti.tcpi_state, wall());
  return 0;
}

static int role_fill(int fd) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  memset(g_buf, 'f', sizeof(g_buf));
  uint64_t sent = 0;
  /* The peer reads nothing: its window and then our buffer fill up. A
   * transient EAGAIN while the window is still open is retried briefly. */
  int quiet = 0;
  while (quiet < 50) {
    ssize_t k = send(fd, g_buf, sizeof(g_buf), MSG_NOSIGNAL);
    if (k > 0) {
      sent += (uint64_t)k;
      quiet = 0;
      continue;
    }
    if (k < 0 && errno != EAGAIN && errno != EINTR) return fail_with(fd, errno, sent);
    quiet++;
    usleep(10000);
  }
  fcntl(fd, F_SETFL, fl);
  printf("full after %llu bytes\n", (unsigned long long)sent);
  fflush(stdout);
  for (;;) {
    ssize_t k = send(fd, g_buf, sizeof(g_buf), MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return fail_with(fd, errno, sent);
    sent += (uint64_t)k;
  }
}

static int run_role(int fd, int argc, char** argv, const char* ka) {
  if (ka != NULL && set_keepalive(fd, ka) != 0) return 1;
  printf("connected\n");
  fflush(stdout);
  if (strcmp(argv[0], "send") == 0 && argc >= 3)
    return role_send(fd, strtoull(argv[1], NULL, 0), strtoull(argv[2], NULL, 0));
  if (strcmp(argv[0], "recv") == 0) return role_recv(fd);
  if (strcmp(argv[0], "fill") == 0) return role_fill(fd);
  if (strcmp(argv[0], "sleep") == 0) {
    for (;;) pause();
  }
  fprintf(stderr, "unknown role %s\n", argv[0]);
  return 1;
}

static int usage(void) {
  fprintf(stderr,
          "usage: stream_fault gen BYTES SEED | sha256 |\n"
          "       listen PORT ROLE [ARGS] [-k I,V,C] | connect IP PORT ROLE [ARGS] [-k I,V,C] |\n"
          "       serve PORT\n"
          "ROLE: send BYTES SEED | recv | fill | sleep\n");
  return 1;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return usage();
  if (strcmp(argv[1], "gen") == 0 && argc == 4) {
    prng r = {strtoull(argv[3], NULL, 0)};
    uint64_t left = strtoull(argv[2], NULL, 0);
    while (left > 0) {
      size_t n = left < CHUNK ? (size_t)left : CHUNK;
      prng_fill(&r, g_buf, CHUNK);
      if (fwrite(g_buf, 1, n, stdout) != n) return 1;
      left -= n;
    }
    return 0;
  }
  if (strcmp(argv[1], "sha256") == 0) {
    sha256_ctx h;
    char hex[65];
    size_t n;
    sha256_init(&h);
    while ((n = fread(g_buf, 1, sizeof(g_buf), stdin)) > 0) sha256_update(&h, g_buf, n);
    sha256_hex(&h, hex);
    printf("%s\n", hex);
    return 0;
  }
  /* Trailing -k I,V,C */
  const char* ka = NULL;
  if (argc >= 3 && strcmp(argv[argc - 2], "-k") == 0) {
    ka = argv[argc - 1];
    argc -= 2;
  }
  struct sockaddr_in a = {.sin_family = AF_INET};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  if (strcmp(argv[1], "listen") == 0 && argc >= 4) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    a.sin_port = htons((uint16_t)atoi(argv[2]));
    if (bind(fd, (struct sockaddr*)&a, sizeof(a)) != 0 || listen(fd, 4) != 0) {
      perror("bind/listen");
      return 1;
    }
    printf("listening on %s\n", argv[2]);
    fflush(stdout);
    int c;
    while ((c = accept(fd, NULL, NULL)) < 0 && errno == EINTR) {
    }
    if (c < 0) {
      perror("accept");
      return 1;
    }
    return run_role(c, argc - 3, argv + 3, ka);
  }
  if (strcmp(argv[1], "serve") == 0 && argc == 3) {
    /* One process serving every client in turn (the flood test: one engine
     * per host); the next connection waits in the backlog meanwhile. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    a.sin_port = htons((uint16_t)atoi(argv[2]));
    if (bind(fd, (struct sockaddr*)&a, sizeof(a)) != 0 || listen(fd, 16) != 0) {
      perror("bind/listen");
      return 1;
    }
    printf("listening on %s\n", argv[2]);
    for (;;) {
      int c = accept(fd, NULL, NULL);
      if (c < 0 && errno == EINTR) continue;
      if (c < 0) {
        perror("accept");
        return 1;
      }
      printf("connected\n");
      role_recv(c);
      close(c);
    }
  }
  if (strcmp(argv[1], "connect") == 0 && argc >= 5) {
    a.sin_port = htons((uint16_t)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) return usage();
    if (connect(fd, (struct sockaddr*)&a, sizeof(a)) != 0) {
      perror("connect");
      return 1;
    }
    return run_role(fd, argc - 4, argv + 4, ka);
  }
  return usage();
}
