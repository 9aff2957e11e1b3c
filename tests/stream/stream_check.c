/*
 * Stream socket semantics, checked against what Linux's TCP does: the same
 * program runs on kernel sockets (the reference) and under the preload
 * (offloaded over the machnet transport, or fallen back to kernel TCP), and
 * must see the same results.
 *
 *   stream_check server PORT
 *   stream_check client IP PORT CLOSED_PORT DROP_PORT [SCENARIO...]
 *
 * The server serves any number of connections; the first byte a client
 * sends picks the server's behaviour (see serve()). The client runs the
 * scenarios (all by default) and prints "ok: NAME" or "FAIL: NAME: why";
 * exit status 0 only when every scenario passed. CLOSED_PORT has no
 * listener (refused); SYNs to DROP_PORT are dropped silently by the test
 * (timed out: with net.ipv4.tcp_syn_retries = 1 the kernel gives up in ~3 s).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
  CMD_ECHO = 'e',      /* echo every byte until EOF, then close */
  CMD_HALF = 'h',      /* read to EOF, then send the byte count (8 bytes) and close */
  CMD_RESET = 'r',     /* wait for 1 byte, then close with SO_LINGER {1, 0} (RST) */
  CMD_CLOSE = 'c',     /* close at once (FIN) */
  CMD_TRICKLE = 't',   /* send 1000 bytes in 10 pieces, 20 ms apart, then close */
  CMD_SINK_LATE = 's', /* read nothing for 300 ms, then read to EOF; reply hash */
};

static uint64_t fnv(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
#define FNV0 0xcbf29ce484222325ull

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(int fd, const void* buf, size_t n) {
  const uint8_t* p = buf;
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static ssize_t read_full(int fd, void* buf, size_t n) {
  uint8_t* p = buf;
  size_t got = 0;
  while (got < n) {
    ssize_t k = recv(fd, p + got, n - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return k < 0 ? -1 : (ssize_t)got;
    got += (size_t)k;
  }
  return (ssize_t)got;
}

/* ---- server ---------------------------------------------------------- */

static void* serve(void* arg) {
  int fd = (int)(intptr_t)arg;
  uint8_t cmd;
  uint8_t buf[65536];
  if (read_full(fd, &cmd, 1) != 1) {
    close(fd);
    return NULL;
  }
  switch (cmd) {
    case CMD_ECHO:
      for (;;) {
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k <= 0) break;
        if (write_all(fd, buf, (size_t)k) != 0) break;
      }
      break;
    case CMD_HALF: {
      uint64_t total = 0;
      for (;;) {
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k <= 0) break;
        total += (uint64_t)k;
      }
      /* The client shut its side down; ours still carries the answer. */
      write_all(fd, &total, sizeof(total));
      break;
    }
    case CMD_RESET: {
      read_full(fd, buf, 1);
      struct linger l = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      break;
    }
    case CMD_CLOSE:
      break;
    case CMD_TRICKLE:
      for (int i = 0; i < 10; i++) {
        memset(buf, 'a' + i, 100);
        write_all(fd, buf, 100);
        usleep(20000);
      }
      break;
    case CMD_SINK_LATE: {
      usleep(300000);
      uint64_t h = FNV0, total = 0;
      for (;;) {
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k <= 0) break;
        h = fnv(h, buf, (size_t)k);
        total += (uint64_t)k;
      }
      uint64_t reply[2] = {total, h};
      write_all(fd, reply, sizeof(reply));
      break;
    }
    default:
      break;
  }
  close(fd);
  return NULL;
}

static int run_server(int port) {
  signal(SIGPIPE, SIG_IGN);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (bind(l, (struct sockaddr*)&a, sizeof(a)) != 0 || listen(l, 1024) != 0) {
    perror("server: bind/listen");
    return 1;
  }
  printf("server: listening on %d\n", port);
  fflush(stdout);
  for (;;) {
    int fd = accept(l, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      perror("server: accept");
      return 1;
    }
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    if (pthread_create(&t, &at, serve, (void*)(intptr_t)fd) != 0) close(fd);
    pthread_attr_destroy(&at);
  }
}

/* ---- client ---------------------------------------------------------- */

static struct sockaddr_in g_srv, g_closed, g_drop;
static int g_failed;

#define FAIL(name, ...)         \
  do {                          \
    printf("FAIL: %s: ", name); \
    printf(__VA_ARGS__);        \
    printf("\n");               \
    fflush(stdout);             \
    g_failed++;                 \
    return;                     \
  } while (0)
#define OK(name)              \
  do {                        \
    printf("ok: %s\n", name); \
    fflush(stdout);           \
  } while (0)

static int dial(const struct sockaddr_in* a, uint8_t cmd) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (connect(fd, (const struct sockaddr*)a, sizeof(*a)) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (cmd != 0 && write_all(fd, &cmd, 1) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void sc_echo(void) {
  const char* name = "echo (random sizes up to 1 MiB, hashed)";
  int fd = dial(&g_srv, CMD_ECHO);
  if (fd < 0) FAIL(name, "connect: %s", strerror(errno));
  static uint8_t out[1 << 20], in[1 << 20];
  unsigned seed = 7;
  for (int round = 0; round < 20; round++) {
    size_t n = 1 + (size_t)(rand_r(&seed) % (round < 10 ? 2000 : sizeof(out)));
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)rand_r(&seed);
    /* Writer and reader interleave: a big write must not wait for the whole
     * echo (the server echoes as it reads), so write in a thread-free way:
     * non-blocking chunks alternating with reads. */
    size_t sent = 0, got = 0;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    double deadline = now_s() + 20;
    while (got < n && now_s() < deadline) {
      if (sent < n) {
        ssize_t k = send(fd, out + sent, n - sent, MSG_NOSIGNAL);
        if (k > 0)
          sent += (size_t)k;
        else if (k < 0 && errno != EAGAIN)
          FAIL(name, "send: %s", strerror(errno));
      }
      ssize_t k = recv(fd, in + got, n - got, 0);
      if (k > 0)
        got += (size_t)k;
      else if (k == 0)
        FAIL(name, "EOF after %zu of %zu", got, n);
      else if (errno != EAGAIN)
        FAIL(name, "recv: %s", strerror(errno));
      if (k < 0) {
        struct pollfd p = {fd, POLLIN | (sent < n ? POLLOUT : 0), 0};
        poll(&p, 1, 100);
      }
    }
    fcntl(fd, F_SETFL, fl);
    if (got != n || memcmp(in, out, n) != 0)
      FAIL(name, "round %d: %zu of %zu bytes echoed intact", round, got, n);
  }
  close(fd);
  OK(name);
}

static void sc_half_close(void) {
  const char* name = "half-close: shutdown(SHUT_WR), peer reads EOF and still answers";
  int fd = dial(&g_srv, CMD_HALF);
  if (fd < 0) FAIL(name, "connect: %s", strerror(errno));
  uint8_t buf[10000];
  memset(buf, 'x', sizeof(buf));
  if (write_all(fd, buf, sizeof(buf)) != 0) FAIL(name, "send: %s", strerror(errno));
  if (shutdown(fd, SHUT_WR) != 0) FAIL(name, "shutdown: %s", strerror(errno));
  /* A write after SHUT_WR: EPIPE. */
  if (send(fd, buf, 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
    FAIL(name, "send after SHUT_WR did not fail with EPIPE (%s)", strerror(errno));
  uint64_t total = 0;
  if (read_full(fd, &total, sizeof(total)) != (ssize_t)sizeof(total))
    FAIL(name, "no answer after our FIN: %s", strerror(errno));
  if (total != sizeof(buf))
    FAIL(name, "peer counted %llu bytes, sent %zu", (unsigned long long)total, sizeof(buf));
  char c;
  ssize_t k = recv(fd, &c, 1, 0);
  if (k != 0) FAIL(name, "no EOF after the answer (%zd, %s)", k, strerror(errno));
  close(fd);
  OK(name);
}

static void sc_linger_reset(void) {
  const char* name = "close with SO_LINGER {1,0}: ECONNRESET at the peer";
  int fd = dial(&g_srv, CMD_RESET);
  if (fd < 0) FAIL(name, "connect: %s", strerror(errno));
  char c = 'z';
  write_all(fd, &c, 1);
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) FAIL(name, "no event within 5 s");
  ssize_t k = recv(fd, &c, 1, 0);
  if (k != -1 || errno != ECONNRESET)
    FAIL(name, "recv gave %zd (%s), want -1 ECONNRESET", k, strerror(errno));
  /* Reported once: then EOF. */
  k = recv(fd, &c, 1, 0);
  if (k != 0) FAIL(name, "second recv gave %zd (%s), want 0", k, strerror(errno));
  close(fd);
  OK(name);
}

static void sc_refused(void) {
  const char* name = "connect to a closed port: ECONNREFUSED";
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int r = connect(fd, (struct sockaddr*)&g_closed, sizeof(g_closed));
  int e = errno;
  close(fd);
  if (r != -1 || e != ECONNREFUSED) FAIL(name, "connect gave %d (%s)", r, strerror(e));
  OK(name);
}

static void sc_timeout(void) {
  const char* name = "connect to a port that drops SYNs: ETIMEDOUT";
  if (g_drop.sin_port == 0) return;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  double t0 = now_s();
  int r = connect(fd, (struct sockaddr*)&g_drop, sizeof(g_drop));
  int e = errno;
  double took = now_s() - t0;
  close(fd);
  if (r != -1 || e != ETIMEDOUT)
    FAIL(name, "connect gave %d (%s) after %.1f s", r, strerror(e), took);
  printf("(timed out after %.1f s)\n", took);
  OK(name);
}

static void sc_nonblocking_connect(void) {
  const char* name = "non-blocking connect: EINPROGRESS, POLLOUT, SO_ERROR 0";
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int r = connect(fd, (struct sockaddr*)&g_srv, sizeof(g_srv));
  if (r == 0) {
    /* Allowed by POSIX (an immediate connect), rare: still check SO_ERROR. */
  } else if (errno != EINPROGRESS) {
    FAIL(name, "connect: %s", strerror(errno));
  }
  struct pollfd p = {fd, POLLOUT, 0};
  if (poll(&p, 1, 5000) != 1 || !(p.revents & POLLOUT))
    FAIL(name, "no POLLOUT (revents %x)", p.revents);
  int err = -1;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
    FAIL(name, "SO_ERROR %d (%s)", err, strerror(err));
  struct sockaddr_in peer;
  len = sizeof(peer);
  if (getpeername(fd, (struct sockaddr*)&peer, &len) != 0)
    FAIL(name, "getpeername: %s", strerror(errno));
  close(fd);

  /* And to a closed port: POLLOUT|POLLERR (or POLLHUP), SO_ERROR ECONNREFUSED. */
  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  r = connect(fd, (struct sockaddr*)&g_closed, sizeof(g_closed));
  if (r == 0 || (errno != EINPROGRESS && errno != ECONNREFUSED))
    FAIL(name, "connect to a closed port: %d %s", r, strerror(errno));
  if (r != 0 && errno == EINPROGRESS) {
    p.fd = fd;
    p.events = POLLOUT;
    if (poll(&p, 1, 5000) != 1) FAIL(name, "closed port: no event within 5 s");
    len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != ECONNREFUSED) FAIL(name, "closed port: SO_ERROR %d (%s)", err, strerror(err));
  }
  close(fd);
  OK(name);
}

static void sc_rdhup(void) {
  const char* name = "EPOLLRDHUP when the peer closes; EOF";
  int fd = dial(&g_srv, CMD_CLOSE);
  if (fd < 0) FAIL(name, "connect: %s", strerror(errno));
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = 42};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  struct epoll_event out[4];
  int n = epoll_wait(ep, out, 4, 5000);
  if (n != 1 || out[0].data.u32 != 42 || !(out[0].events & EPOLLRDHUP) ||
      !(out[0].events & EPOLLIN))
    FAIL(name, "epoll_wait %d, events %x", n, n > 0 ? out[0].events : 0);
  char c;
  if (recv(fd, &c, 1, 0) != 0) FAIL(name, "no EOF");
  /* Our side is still open: no EPOLLHUP yet; after SHUT_WR both are shut. */
  if (out[0].events & EPOLLHUP) FAIL(name, "EPOLLHUP while our side is open");
  shutdown(fd, SHUT_WR);
  n = epoll_wait(ep, out, 4, 5000);
  if (n != 1 || !(out[0].events & EPOLLHUP))
    FAIL(name, "no EPOLLHUP after both sides shut (%x)", n > 0 ? out[0].events : 0);
  close(ep);
  close(fd);
  OK(name);
}

static void sc_backpressure(void) {
  const char* name = "partial writes and EAGAIN under back-pressure; everything arrives";
  int fd = dial(&g_srv, CMD_SINK_LATE);
  if (fd < 0) FAIL(name, "connect: %s", strerror(errno));
  int sz = 65536;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  static uint8_t buf[1 << 20];
  for (size_t i = 0; i < sizeof(buf); i++) buf[i] = (uint8_t)(i * 31 + 7);
  uint64_t h = FNV0, total = 0;
  int eagain = 0, partial = 0;
  double end = now_s() + 0.25; /* the server reads nothing for 300 ms */
  while (now_s() < end) {
    ssize_t k = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
    if (k < 0) {
      if (errno != EAGAIN) FAIL(name, "send: %s", strerror(errno));
      eagain++;
      usleep(1000);
      continue;
    }
    if ((size_t)k < sizeof(buf)) partial++;
    h = fnv(h, buf, (size_t)k);
    total += (uint64_t)k;
  }
  if (eagain == 0 || partial == 0)
    FAIL(name,
         "%d EAGAIN, %d partial writes in 250 ms of writing %llu bytes to a reader that "
         "reads nothing",
         eagain, partial, (unsigned long long)total);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  shutdown(fd, SHUT_WR);
  uint64_t reply[2];
  if (read_full(fd, reply, sizeof(reply)) != (ssize_t)sizeof(reply)) FAIL(name, "no reply");
  if (reply[0] != total || reply[1] != h)
    FAIL(name, "peer got %llu bytes, sent %llu; hash %s", (unsigned long long)reply[0],
         (unsigned long long)total, reply[1] == h ? "same" : "differs");
  close(fd);
  OK(name);
}

static void sc_peek_waitall(void) {
  const char* name = "MSG_PEEK then read; MSG_WAITALL across pieces; FIONREAD";
  int fd = dial(&g_srv, CMD_TRICKLE);
  if (fd < 0) FAIL(name, "connect: %s", strerror(errno));
  char a[100], b[100];
  ssize_t k = recv(fd, a, 10, MSG_PEEK);
  if (k <= 0 || a[0] != 'a') FAIL(name, "peek gave %zd (%s)", k, strerror(errno));
  int avail = -1;
  if (ioctl(fd, FIONREAD, &avail) != 0 || avail < k)
    FAIL(name, "FIONREAD %d after a %zd-byte peek", avail, k);
  k = recv(fd, b, 10, 0);
  if (k <= 0 || memcmp(a, b, (size_t)k) != 0) FAIL(name, "read after peek differs");
  /* The rest of the first piece plus nine more, 20 ms apart: one call. */
  static char all[1000];
  size_t want = 1000 - (size_t)k;
  k = recv(fd, all, want, MSG_WAITALL);
  if (k != (ssize_t)want) FAIL(name, "MSG_WAITALL gave %zd of %zu", k, want);
  if (all[want - 1] != 'j') FAIL(name, "last byte '%c'", all[want - 1]);
  if (recv(fd, a, 1, 0) != 0) FAIL(name, "no EOF at the end");
  close(fd);
  OK(name);
}

struct conn {
  int fd;
  size_t len, sent, got;
  uint8_t* out;
  uint64_t h_in;
};

static void sc_many(int nconn) {
  char name[96];
  snprintf(name, sizeof(name), "%d concurrent connections, random sizes, hashed", nconn);
  struct conn* c = calloc((size_t)nconn, sizeof(*c));
  int ep = epoll_create1(0);
  unsigned seed = 99;
  size_t bytes = 0;
  for (int i = 0; i < nconn; i++) {
    c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(c[i].fd, (struct sockaddr*)&g_srv, sizeof(g_srv));
    if (r != 0 && errno != EINPROGRESS) FAIL(name, "connect %d: %s", i, strerror(errno));
    c[i].len = 1 + (size_t)(rand_r(&seed) % 20000);
    c[i].out = malloc(c[i].len + 1);
    c[i].out[0] = CMD_ECHO;
    for (size_t k = 1; k <= c[i].len; k++) c[i].out[k] = (uint8_t)rand_r(&seed);
    c[i].h_in = FNV0;
    bytes += c[i].len;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
  }
  int done = 0;
  double deadline = now_s() + 60;
  static uint8_t buf[65536];
  struct epoll_event evs[256];
  while (done < nconn && now_s() < deadline) {
    int n = epoll_wait(ep, evs, 256, 1000);
    for (int e = 0; e < n; e++) {
      struct conn* k = &c[evs[e].data.u32];
      if (k->fd < 0) continue;
      /* Edge-triggered: drain both directions until EAGAIN. */
      while (k->sent < k->len + 1) {
        ssize_t w = send(k->fd, k->out + k->sent, k->len + 1 - k->sent, MSG_NOSIGNAL);
        if (w <= 0) break;
        k->sent += (size_t)w;
        if (k->sent == k->len + 1) shutdown(k->fd, SHUT_WR);
      }
      for (;;) {
        ssize_t r = recv(k->fd, buf, sizeof(buf), 0);
        if (r > 0) {
          k->h_in = fnv(k->h_in, buf, (size_t)r);
          k->got += (size_t)r;
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          uint64_t want = fnv(FNV0, k->out + 1, k->len);
          if (r != 0 || k->got != k->len || k->h_in != want)
            FAIL(name, "connection %u: %zu of %zu bytes back, %s", evs[e].data.u32, k->got, k->len,
                 r == 0 ? "hash differs or short" : strerror(errno));
          epoll_ctl(ep, EPOLL_CTL_DEL, k->fd, NULL);
          close(k->fd);
          k->fd = -1;
          done++;
        }
        break;
      }
    }
  }
  if (done != nconn) FAIL(name, "%d of %d connections completed in 60 s", done, nconn);
  for (int i = 0; i < nconn; i++) free(c[i].out);
  free(c);
  close(ep);
  printf("(%zu bytes each way)\n", bytes);
  OK(name);
}

static int run_client(const char* ip, int port, int closed_port, int drop_port, int argc,
                      char** argv) {
  signal(SIGPIPE, SIG_IGN);
  g_srv = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  g_closed = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)closed_port)};
  g_drop = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)drop_port)};
  if (inet_pton(AF_INET, ip, &g_srv.sin_addr) != 1) return 2;
  g_closed.sin_addr = g_srv.sin_addr;
  g_drop.sin_addr = g_srv.sin_addr;
  struct {
    const char* name;
    void (*fn)(void);
  } all[] = {{"echo", sc_echo},
             {"half_close", sc_half_close},
             {"linger_reset", sc_linger_reset},
             {"refused", sc_refused},
             {"timeout", sc_timeout},
             {"nonblocking_connect", sc_nonblocking_connect},
             {"rdhup", sc_rdhup},
             {"backpressure", sc_backpressure},
             {"peek_waitall", sc_peek_waitall}};
  size_t nall = sizeof(all) / sizeof(all[0]);
  for (size_t i = 0; i < nall; i++) {
    int want = argc == 0;
    for (int k = 0; k < argc; k++) want |= strcmp(argv[k], all[i].name) == 0;
    if (want) all[i].fn();
  }
  int many = 0;
  for (int k = 0; k < argc; k++) {
    if (strncmp(argv[k], "many=", 5) == 0) many = atoi(argv[k] + 5);
  }
  if (argc == 0) many = 1000;
  if (many > 0) sc_many(many);
  printf("%s: %d failed\n", g_failed ? "FAIL" : "PASS", g_failed);
  return g_failed ? 1 : 0;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && strcmp(argv[1], "server") == 0) return run_server(atoi(argv[2]));
  if (argc >= 6 && strcmp(argv[1], "client") == 0)
    return run_client(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argc - 6, argv + 6);
  fprintf(stderr,
          "usage: stream_check server PORT | client IP PORT CLOSED_PORT DROP_PORT [SCENARIO...]\n");
  return 2;
}
