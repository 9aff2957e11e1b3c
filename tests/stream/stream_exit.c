/*
 * Short-lived stream clients that exit right after sending: their peer must
 * read the end of the stream as it would from the kernel's TCP, whatever way
 * the client ends (the kernel closes a process's sockets at exit).
 *
 *   stream_exit server PORT N     serves N connections, one thread each: reads
 *                                 to the end and prints "conn MODE BYTES END"
 *                                 (END: eof, or the errno name), in order of
 *                                 arrival; exits 0 after N.
 *   stream_exit client IP PORT MODE
 *
 * Every client sends 1000 bytes and then, by MODE:
 *   exit     exit() with the socket still open;
 *   close    close(), then exit();
 *   _exit    _exit() with the socket still open;
 *   shut     shutdown(SHUT_WR), close(), exit();
 *   blocked  a second thread sleeps in recv() on the socket while the main
 *            thread closes it and exits (the kernel: the socket stays open
 *            until the process ends, then FIN).
 * The first byte is the mode's letter, so the server's lines name it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_done;

static const char* end_name(int e) {
  switch (e) {
    case 0:
      return "eof";
    case ECONNRESET:
      return "ECONNRESET";
    case ETIMEDOUT:
      return "ETIMEDOUT";
    case EPIPE:
      return "EPIPE";
    default:
      return strerror(e);
  }
}

static void* serve(void* arg) {
  int fd = (int)(intptr_t)arg;
  uint8_t buf[4096];
  uint64_t total = 0;
  char mode = '?';
  int err = 0;
  for (;;) {
    ssize_t k = recv(fd, buf, sizeof(buf), 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      err = errno;
      break;
    }
    if (k == 0) break;
    if (total == 0) mode = (char)buf[0];
    total += (uint64_t)k;
  }
  close(fd);
  pthread_mutex_lock(&g_mu);
  printf("conn %c %llu %s\n", mode, (unsigned long long)total, end_name(err));
  fflush(stdout);
  g_done++;
  pthread_cond_signal(&g_cv);
  pthread_mutex_unlock(&g_mu);
  return NULL;
}

static int run_server(int port, int n) {
  signal(SIGPIPE, SIG_IGN);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (bind(l, (struct sockaddr*)&a, sizeof(a)) != 0 || listen(l, 64) != 0) {
    perror("server: bind/listen");
    return 1;
  }
  printf("server: listening on %d\n", port);
  fflush(stdout);
  for (int i = 0; i < n; i++) {
    int fd = accept(l, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        i--;
        continue;
      }
      perror("server: accept");
      return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, serve, (void*)(intptr_t)fd) != 0) return 1;
    pthread_detach(t);
  }
  pthread_mutex_lock(&g_mu);
  while (g_done < n) pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  printf("server: %d connections done\n", n);
  return 0;
}

static int g_fd;

static void* blocked_reader(void* arg) {
  (void)arg;
  char c;
  pthread_mutex_lock(&g_mu);
  g_done = 1;
  pthread_cond_signal(&g_cv);
  pthread_mutex_unlock(&g_mu);
  recv(g_fd, &c, 1, 0); /* the server never sends: sleeps until exit */
  return NULL;
}

static int run_client(const char* ip, int port, const char* mode) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) return 2;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr*)&a, sizeof(a)) != 0) {
    perror("client: connect");
    return 1;
  }
  char buf[1000];
  memset(buf, 'x', sizeof(buf));
  buf[0] = mode[0] == '_' ? 'u' : mode[0];
  for (size_t off = 0; off < sizeof(buf);) {
    ssize_t k = send(fd, buf + off, sizeof(buf) - off, MSG_NOSIGNAL);
    if (k < 0) {
      perror("client: send");
      return 1;
    }
    off += (size_t)k;
  }
  if (strcmp(mode, "exit") == 0) exit(0);
  if (strcmp(mode, "_exit") == 0) _exit(0);
  if (strcmp(mode, "shut") == 0) shutdown(fd, SHUT_WR);
  if (strcmp(mode, "blocked") == 0) {
    g_fd = fd;
    pthread_t t;
    if (pthread_create(&t, NULL, blocked_reader, NULL) != 0) return 1;
    pthread_mutex_lock(&g_mu);
    while (!g_done) pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    struct timespec ts = {0, 20 * 1000 * 1000}; /* let it block in recv */
    nanosleep(&ts, NULL);
  }
  close(fd);
  exit(0);
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 4 && strcmp(argv[1], "server") == 0) return run_server(atoi(argv[2]), atoi(argv[3]));
  if (argc == 5 && strcmp(argv[1], "client") == 0)
    return run_client(argv[2], atoi(argv[3]), argv[4]);
  fprintf(stderr,
          "usage: stream_exit server PORT N | client IP PORT exit|close|_exit|shut|blocked\n");
  return 2;
}
