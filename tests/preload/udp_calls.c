/* udp_calls: every socket call the preload shim intercepts, on UDP sockets,
 * with its result and errno printed one per line. Run once on the kernel and
 * once under libmachnet_preload.so against the same kernel peer
 * (tests/preload/peer.py serve): the two outputs must be identical, so the
 * values checked are the kernel's. Addresses are printed symbolically
 * ("peer", "local") so the two runs compare.
 *
 *   udp_calls PEER_IP PEER_PORT LOCAL_IP LOCAL_PORT
 * LOCAL_IP is the address the peer must see (the kernel's address of this
 * host, or the engine's under the preload); LOCAL_PORT and LOCAL_PORT + 1
 * are bound. Exit status 0 when the run completed (the comparison is the
 * test), 1 on a setup failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in g_peer, g_local;

static const char* ename(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E?";
}

/* "name: ret=R" or "name: ret=-1 errno=ENAME" */
static long report(const char* name, long ret) {
  if (ret < 0)
    printf("%s: ret=%ld errno=%s\n", name, ret, ename(errno));
  else
    printf("%s: ret=%ld\n", name, ret);
  fflush(stdout);
  return ret;
}

static const char* addr_name(const struct sockaddr_in* a) {
  static char buf[64];
  if (a->sin_family != AF_INET) return "not-inet";
  if (a->sin_addr.s_addr == g_peer.sin_addr.s_addr) {
    snprintf(buf, sizeof(buf), "peer:%s",
             a->sin_port == g_peer.sin_port ? "peer-port" : "other-port");
  } else if (a->sin_addr.s_addr == g_local.sin_addr.s_addr) {
    snprintf(buf, sizeof(buf), "local:%u", ntohs(a->sin_port) - ntohs(g_local.sin_port));
  } else if (a->sin_addr.s_addr == htonl(INADDR_ANY)) {
    snprintf(buf, sizeof(buf), "any:%u", ntohs(a->sin_port) - ntohs(g_local.sin_port));
  } else {
    snprintf(buf, sizeof(buf), "unexpected %s:%u", inet_ntoa(a->sin_addr), ntohs(a->sin_port));
  }
  return buf;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int udp_socket(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("socket");
    exit(1);
  }
  return fd;
}

static struct sockaddr_in any_port(int delta) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_port = htons((uint16_t)(ntohs(g_local.sin_port) + delta));
  return a;
}

/* Waits up to 2 s for a datagram (the first exchange may wait for ARP). */
static int wait_readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 2000);
}

static void set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

static void fill(char* b, size_t n, int seed) {
  for (size_t i = 0; i < n; i++) b[i] = (char)('a' + (i * 7 + (size_t)seed) % 26);
}

static void on_alarm(int sig) {
  (void)sig;
}

static volatile sig_atomic_t g_alarms;
static void on_alarm_count(int sig) {
  (void)sig;
  g_alarms++;
}

/* A lost datagram must fail the test, not hang it. */
static void* watchdog(void* arg) {
  (void)arg;
  sleep(60);
  fprintf(stderr, "udp_calls: still running after 60 s (a lost datagram?)\n");
  _exit(3);
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: udp_calls PEER_IP PEER_PORT LOCAL_IP LOCAL_PORT\n");
    return 2;
  }
  g_peer.sin_family = AF_INET;
  g_peer.sin_port = htons((uint16_t)atoi(argv[2]));
  g_local.sin_family = AF_INET;
  g_local.sin_port = htons((uint16_t)atoi(argv[4]));
  if (inet_pton(AF_INET, argv[1], &g_peer.sin_addr) != 1 ||
      inet_pton(AF_INET, argv[3], &g_local.sin_addr) != 1) {
    fprintf(stderr, "udp_calls: bad address\n");
    return 2;
  }
  pthread_t wd;
  pthread_create(&wd, NULL, watchdog, NULL);
  const struct sockaddr* peer = (const struct sockaddr*)&g_peer;
  char buf[9000], big[70000], rx[9000];
  struct sockaddr_in from;
  socklen_t fl;
  int v;
  socklen_t vl;
  long n;

  /* ---- an undecided socket: pure kernel semantics ---- */
  int p = udp_socket();
  report("pending recv MSG_DONTWAIT", recv(p, buf, 10, MSG_DONTWAIT));
  report("pending send unconnected", send(p, "x", 1, 0));
  report("pending close", close(p));

  /* ---- bound socket (offloaded under the preload) ---- */
  int s = udp_socket();
  struct sockaddr_in a = any_port(0);
  report("bind", bind(s, (struct sockaddr*)&a, sizeof(a)));
  report("bind again", bind(s, (struct sockaddr*)&a, sizeof(a)));
  int s_busy = udp_socket();
  report("bind port in use", bind(s_busy, (struct sockaddr*)&a, sizeof(a)));
  close(s_busy);
  fl = sizeof(from);
  memset(&from, 0, sizeof(from));
  report("getsockname", getsockname(s, (struct sockaddr*)&from, &fl));
  printf("getsockname addr: %s len=%u\n", addr_name(&from), fl);
  fl = sizeof(from);
  report("getpeername unconnected", getpeername(s, (struct sockaddr*)&from, &fl));
  report("send unconnected", send(s, "x", 1, 0));
  report("write unconnected", write(s, "x", 1));
  vl = sizeof(v);
  report("getsockopt SO_TYPE", getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vl));
  printf("SO_TYPE: %d\n", v);
  vl = sizeof(v);
  report("getsockopt SO_ERROR", getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &vl));
  printf("SO_ERROR: %d\n", v);

  /* non-blocking, nothing queued */
  report("fcntl F_SETFL O_NONBLOCK", fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK));
  printf("fcntl F_GETFL O_NONBLOCK: %d\n", (fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
  report("recv empty nonblocking", recv(s, buf, 10, 0));
  report("read empty nonblocking", read(s, buf, 10));
  fl = sizeof(from);
  report("recvfrom empty nonblocking", recvfrom(s, buf, 10, 0, (struct sockaddr*)&from, &fl));
  struct iovec iov = {buf, 10};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  report("recvmsg empty nonblocking", recvmsg(s, &m, 0));
  v = -1;
  report("ioctl FIONREAD empty", ioctl(s, FIONREAD, &v));
  printf("FIONREAD empty: %d\n", v);
  struct pollfd pf = {s, POLLIN, 0};
  report("poll empty 100ms", poll(&pf, 1, 100));
  printf("poll empty revents: %#x\n", pf.revents);
  pf.events = POLLIN | POLLOUT;
  report("poll POLLOUT", poll(&pf, 1, 0));
  printf("poll POLLOUT revents: %#x\n", pf.revents);

  /* sizes */
  memset(big, 'z', sizeof(big));
  report("sendto 65508 bytes", sendto(s, big, 65508, 0, peer, sizeof(g_peer)));
  report("sendto 70000 bytes", sendto(s, big, 70000, 0, peer, sizeof(g_peer)));
  report("sendto short addrlen", sendto(s, "x", 1, 0, peer, 4));

  /* who does the peer see? (proves which path the datagram took) */
  set_nonblock(s, 0);
  report("sendto whoami", sendto(s, "whoami", 6, 0, peer, sizeof(g_peer)));
  report("poll whoami", wait_readable(s));
  fl = sizeof(from);
  n = recvfrom(s, rx, sizeof(rx) - 1, 0, (struct sockaddr*)&from, &fl);
  report("recvfrom whoami", n > 0 ? 0 : n);
  rx[n > 0 ? n : 0] = '\0';
  printf("whoami: peer saw %s\n", strcmp(rx, argv[3]) == 0 ? "local" : rx);
  printf("recvfrom source: %s len=%u\n", addr_name(&from), fl);

  /* echo of 100 bytes: readiness, FIONREAD, MSG_PEEK, truncation */
  fill(buf, 100, 1);
  report("sendto 100", sendto(s, buf, 100, 0, peer, sizeof(g_peer)));
  pf.events = POLLIN;
  report("poll echo", wait_readable(s));
  pf.revents = 0;
  report("poll echo 0ms", poll(&pf, 1, 0));
  printf("poll echo revents: %#x\n", pf.revents);
  v = -1;
  report("ioctl FIONREAD", ioctl(s, FIONREAD, &v));
  printf("FIONREAD: %d\n", v);
  report("recv MSG_PEEK 2", recv(s, rx, 2, MSG_PEEK));
  printf("peeked: %.2s\n", rx);
  iov.iov_base = rx;
  iov.iov_len = 10;
  m = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1};
  report("recvmsg truncated to 10", recvmsg(s, &m, 0));
  printf("recvmsg msg_flags MSG_TRUNC: %d data ok: %d\n", (m.msg_flags & MSG_TRUNC) != 0,
         memcmp(rx, buf, 10) == 0);

  report("sendto 100 again", sendto(s, buf, 100, 0, peer, sizeof(g_peer)));
  wait_readable(s);
  report("recv MSG_TRUNC into 10", recv(s, rx, 10, MSG_TRUNC));

  /* two queued datagrams: FIONREAD is the first one's length */
  report("sendto 30", sendto(s, buf, 30, 0, peer, sizeof(g_peer)));
  wait_readable(s);
  report("sendto 50", sendto(s, buf, 50, 0, peer, sizeof(g_peer)));
  usleep(200000);
  v = -1;
  report("ioctl FIONREAD two queued", ioctl(s, FIONREAD, &v));
  printf("FIONREAD two queued: %d\n", v);
  report("recv first", recv(s, rx, sizeof(rx), 0));
  wait_readable(s);
  report("recv second", recv(s, rx, sizeof(rx), 0));

  /* gather send, scatter receive */
  struct iovec out[3] = {{"abc", 3}, {"defg", 4}, {"hi", 2}};
  m = (struct msghdr){
      .msg_name = (void*)peer, .msg_namelen = sizeof(g_peer), .msg_iov = out, .msg_iovlen = 3};
  report("sendmsg 3 iovecs", sendmsg(s, &m, 0));
  wait_readable(s);
  char p1[4], p2[10] = {0};
  struct iovec in[2] = {{p1, 4}, {p2, 10}};
  memset(&from, 0, sizeof(from));
  m = (struct msghdr){
      .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = in, .msg_iovlen = 2};
  report("recvmsg 2 iovecs", recvmsg(s, &m, 0));
  printf("scatter: %.4s|%s namelen=%u from %s\n", p1, p2, m.msg_namelen, addr_name(&from));

  /* 8000 bytes: IPv4 fragments both ways */
  fill(buf, 8000, 3);
  report("sendto 8000", sendto(s, buf, 8000, 0, peer, sizeof(g_peer)));
  wait_readable(s);
  n = report("recv 8000", recv(s, rx, sizeof(rx), 0));
  printf("8000 data ok: %d\n", n == 8000 && memcmp(rx, buf, 8000) == 0);

  /* sendmmsg / recvmmsg */
  struct mmsghdr mm[4];
  struct iovec mio[4];
  char mb[4][64];
  memset(mm, 0, sizeof(mm));
  for (int i = 0; i < 3; i++) {
    mio[i] = (struct iovec){buf, (size_t)(10 + i)};
    mm[i].msg_hdr = (struct msghdr){.msg_name = (void*)peer,
                                    .msg_namelen = sizeof(g_peer),
                                    .msg_iov = &mio[i],
                                    .msg_iovlen = 1};
  }
  report("sendmmsg 3", sendmmsg(s, mm, 3, 0));
  wait_readable(s);
  usleep(200000);
  for (int i = 0; i < 4; i++) {
    mio[i] = (struct iovec){mb[i], sizeof(mb[i])};
    mm[i].msg_hdr = (struct msghdr){.msg_iov = &mio[i], .msg_iovlen = 1};
  }
  n = report("recvmmsg MSG_WAITFORONE", recvmmsg(s, mm, 4, MSG_WAITFORONE, NULL));
  for (long i = 0; i < n; i++) printf("recvmmsg[%ld] len %u\n", i, mm[i].msg_len);

  /* options: pass-through values */
  v = 65536;
  report("setsockopt SO_RCVBUF", setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)));
  vl = sizeof(v);
  report("getsockopt SO_RCVBUF", getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &vl));
  printf("SO_RCVBUF: %d\n", v);
  v = 1;
  report("setsockopt SO_REUSEADDR", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v)));
  vl = sizeof(v);
  report("getsockopt SO_REUSEADDR", getsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, &vl));
  printf("SO_REUSEADDR: %d\n", v);
  struct timeval tv = {0, 200000};
  report("setsockopt SO_RCVTIMEO 200ms", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
  memset(&tv, 0, sizeof(tv));
  vl = sizeof(tv);
  report("getsockopt SO_RCVTIMEO", getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &vl));
  printf("SO_RCVTIMEO: %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
  tv = (struct timeval){1, 0};
  report("setsockopt SO_SNDTIMEO", setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
  vl = sizeof(tv);
  report("getsockopt SO_SNDTIMEO", getsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, &vl));
  printf("SO_SNDTIMEO: %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
  tv = (struct timeval){0, -1};
  report("setsockopt SO_RCVTIMEO bad", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
  int64_t t0 = now_ms();
  report("recv blocking with SO_RCVTIMEO", recv(s, rx, 10, 0));
  int64_t took = now_ms() - t0;
  printf("SO_RCVTIMEO waited 150-1000ms: %d\n", took >= 150 && took < 1000);

  /* FIONBIO */
  v = 1;
  report("ioctl FIONBIO 1", ioctl(s, FIONBIO, &v));
  t0 = now_ms();
  report("recv after FIONBIO", recv(s, rx, 10, 0));
  printf("FIONBIO returned at once: %d\n", now_ms() - t0 < 100);
  v = 0;
  report("ioctl FIONBIO 0", ioctl(s, FIONBIO, &v));

  /* signals interrupt a blocking receive */
  tv = (struct timeval){0, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sigaction sa = {.sa_handler = on_alarm};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART */
  struct itimerval it = {{0, 0}, {0, 100000}};
  setitimer(ITIMER_REAL, &it, NULL);
  t0 = now_ms();
  report("recv interrupted by SIGALRM", recv(s, rx, 10, 0));
  printf("EINTR within 1s: %d\n", now_ms() - t0 < 1000);
  setitimer(ITIMER_REAL, &it, NULL);
  pf = (struct pollfd){s, POLLIN, 0};
  report("poll interrupted by SIGALRM", poll(&pf, 1, 5000));
  /* SA_RESTART: the receive goes on after the handler and gets the late echo */
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_alarm_count;
  sigaction(SIGALRM, &sa, NULL);
  report("sendto delay:300", sendto(s, "delay:300", 9, 0, peer, sizeof(g_peer)));
  setitimer(ITIMER_REAL, &it, NULL);
  report("recv across an SA_RESTART handler", recv(s, rx, sizeof(rx), 0));
  printf("SA_RESTART handler ran: %d\n", g_alarms);
  tv = (struct timeval){2, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setitimer(ITIMER_REAL, &it, NULL);
  report("recv with SO_RCVTIMEO and SA_RESTART", recv(s, rx, 10, 0));
  tv = (struct timeval){0, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sa.sa_flags = 0;
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);

  /* What the program installed is what it reads back (the shim runs every
   * handler through a counting wrapper of its own). */
  struct sigaction qa;
  report("sigaction query", sigaction(SIGALRM, NULL, &qa));
  printf("SIGALRM handler ours %d, SA_RESTART %d, SA_SIGINFO %d\n", qa.sa_handler == on_alarm,
         !!(qa.sa_flags & SA_RESTART), !!(qa.sa_flags & SA_SIGINFO));
  printf("signal() returns the previous handler: %d\n",
         signal(SIGALRM, on_alarm_count) == on_alarm);
  report("sigaction query after signal()", sigaction(SIGALRM, NULL, &qa));
  printf("after signal(): ours %d, SA_RESTART %d\n", qa.sa_handler == on_alarm_count,
         !!(qa.sa_flags & SA_RESTART));
  struct sigaction once = {.sa_handler = on_alarm_count, .sa_flags = SA_RESETHAND};
  sigemptyset(&once.sa_mask);
  report("sigaction SA_RESETHAND", sigaction(SIGUSR1, &once, NULL));
  g_alarms = 0;
  report("raise SIGUSR1", raise(SIGUSR1));
  report("sigaction query after the one-shot handler", sigaction(SIGUSR1, NULL, &qa));
  printf("one-shot handler ran %d, then SIG_DFL %d\n", g_alarms, qa.sa_handler == SIG_DFL);
  sigaction(SIGALRM, &sa, NULL);

  /* poll and select over a kernel pipe and the socket */
  int pipefd[2];
  if (pipe(pipefd) != 0) return 1;
  report("write pipe", write(pipefd[1], "p", 1));
  struct pollfd two[2] = {{pipefd[0], POLLIN, 0}, {s, POLLIN, 0}};
  report("poll pipe+socket", poll(two, 2, 1000));
  printf("poll pipe revents %#x socket revents %#x\n", two[0].revents, two[1].revents);
  report("sendto 20", sendto(s, buf, 20, 0, peer, sizeof(g_peer)));
  two[0].revents = two[1].revents = 0;
  char c;
  report("read pipe", read(pipefd[0], &c, 1));
  report("poll socket via mix", poll(two, 2, 2000));
  printf("poll pipe revents %#x socket revents %#x\n", two[0].revents, two[1].revents);
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(s, &rs);
  FD_SET(pipefd[0], &rs);
  struct timeval stv = {2, 0};
  int maxfd = (s > pipefd[0] ? s : pipefd[0]) + 1;
  report("select", select(maxfd, &rs, NULL, NULL, &stv));
  printf("select socket %d pipe %d\n", FD_ISSET(s, &rs) != 0, FD_ISSET(pipefd[0], &rs) != 0);
  report("recv 20", recv(s, rx, sizeof(rx), 0));

  /* pselect: the same, with a signal mask and a timespec */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR1);
  struct timespec pts = {0, 50 * 1000 * 1000};
  FD_ZERO(&rs);
  FD_SET(s, &rs);
  report("pselect empty 50ms", pselect(s + 1, &rs, NULL, NULL, &pts, &mask));
  printf("pselect socket %d\n", FD_ISSET(s, &rs) != 0);
  report("sendto 22", sendto(s, buf, 22, 0, peer, sizeof(g_peer)));
  pts.tv_sec = 2;
  pts.tv_nsec = 0;
  FD_ZERO(&rs);
  FD_SET(s, &rs);
  report("pselect socket", pselect(s + 1, &rs, NULL, NULL, &pts, &mask));
  printf("pselect socket %d\n", FD_ISSET(s, &rs) != 0);
  report("recv 22", recv(s, rx, sizeof(rx), 0));

  /* epoll over the socket and the pipe */
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ee = {.events = EPOLLIN, .data.u64 = 0x50c};
  report("epoll_ctl add socket", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ee));
  report("epoll_ctl add socket again", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ee));
  ee = (struct epoll_event){.events = EPOLLIN, .data.u64 = 0x919e};
  report("epoll_ctl add pipe", epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ee));
  struct epoll_event got[4];
  report("epoll_wait empty 100ms", epoll_wait(ep, got, 4, 100));
  report("sendto 21", sendto(s, buf, 21, 0, peer, sizeof(g_peer)));
  n = report("epoll_wait socket", epoll_wait(ep, got, 4, 2000));
  for (long i = 0; i < n; i++)
    printf("epoll event data %#llx events %#x\n", (unsigned long long)got[i].data.u64,
           got[i].events);
  report("epoll_wait still readable", epoll_wait(ep, got, 4, 0));
  report("recv 21", recv(s, rx, sizeof(rx), 0));
  report("epoll_wait drained", epoll_wait(ep, got, 4, 0));
  int ep_sig = epoll_create1(0);
  ee = (struct epoll_event){.events = EPOLLIN, .data.u64 = 1};
  report("epoll_ctl add socket to a second set", epoll_ctl(ep_sig, EPOLL_CTL_ADD, s, &ee));
  setitimer(ITIMER_REAL, &it, NULL);
  t0 = now_ms();
  report("epoll_wait interrupted by SIGALRM", epoll_wait(ep_sig, got, 4, 5000));
  printf("epoll_wait EINTR within 1s: %d\n", now_ms() - t0 < 1000);
  close(ep_sig);
  ee = (struct epoll_event){.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 0x50c};
  report("epoll_ctl mod oneshot", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ee));
  report("sendto 22", sendto(s, buf, 22, 0, peer, sizeof(g_peer)));
  report("epoll_wait oneshot", epoll_wait(ep, got, 4, 2000));
  report("epoll_wait oneshot disarmed", epoll_wait(ep, got, 4, 50));
  report("epoll_ctl del", epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
  report("epoll_ctl del again", epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
  report("recv 22", recv(s, rx, sizeof(rx), 0));
  close(ep);
  close(pipefd[0]);
  close(pipefd[1]);

  /* connected */
  report("connect", connect(s, peer, sizeof(g_peer)));
  fl = sizeof(from);
  report("getpeername", getpeername(s, (struct sockaddr*)&from, &fl));
  printf("getpeername addr: %s\n", addr_name(&from));
  fl = sizeof(from);
  report("getsockname connected", getsockname(s, (struct sockaddr*)&from, &fl));
  printf("getsockname connected addr: %s\n", addr_name(&from));
  fill(buf, 64, 5);
  report("send connected", send(s, buf, 64, 0));
  wait_readable(s);
  report("read connected", read(s, rx, sizeof(rx)));
  report("write connected", write(s, buf, 33));
  wait_readable(s);
  char r1[16], r2[64];
  struct iovec rv[2] = {{r1, 16}, {r2, 64}};
  report("readv connected", readv(s, rv, 2));
  struct iovec wv[2] = {{buf, 5}, {buf + 5, 6}};
  report("writev connected", writev(s, wv, 2));
  wait_readable(s);
  report("recv connected", recv(s, rx, sizeof(rx), 0));
  report("connect AF_UNSPEC",
         connect(s, (struct sockaddr*)&(struct sockaddr){.sa_family = AF_UNSPEC},
                 sizeof(struct sockaddr)));
  fl = sizeof(from);
  report("getpeername after AF_UNSPEC", getpeername(s, (struct sockaddr*)&from, &fl));

  /* dup: the copy keeps the socket */
  int d = dup(s);
  report("dup", d >= 0 ? 0 : -1);
  report("close original", close(s));
  report("sendto via dup", sendto(d, buf, 12, 0, peer, sizeof(g_peer)));
  wait_readable(d);
  report("recv via dup", recv(d, rx, sizeof(rx), 0));
  report("close dup", close(d));

  /* closed */
  report("close again", close(d));
  report("recv closed", recv(d, rx, 10, MSG_DONTWAIT));
  report("send closed", sendto(d, buf, 1, 0, peer, sizeof(g_peer)));
  fl = sizeof(from);
  report("getsockname closed", getsockname(d, (struct sockaddr*)&from, &fl));

  /* a socket decided at its first sendto (no bind) */
  int c2 = udp_socket();
  report("sendto unbound whoami", sendto(c2, "whoami", 6, 0, peer, sizeof(g_peer)));
  wait_readable(c2);
  n = recv(c2, rx, sizeof(rx) - 1, 0);
  report("recv unbound whoami", n > 0 ? 0 : n);
  rx[n > 0 ? n : 0] = '\0';
  printf("unbound whoami: peer saw %s\n", strcmp(rx, argv[3]) == 0 ? "local" : rx);
  fl = sizeof(from);
  getsockname(c2, (struct sockaddr*)&from, &fl);
  printf("unbound has a port: %d\n", from.sin_port != 0);
  close(c2);

  /* a socket decided at connect, second port */
  int c3 = udp_socket();
  a = any_port(1);
  report("bind second port", bind(c3, (struct sockaddr*)&a, sizeof(a)));
  report("connect second", connect(c3, peer, sizeof(g_peer)));
  report("send whoami second", send(c3, "whoami", 6, 0));
  wait_readable(c3);
  n = recv(c3, rx, sizeof(rx) - 1, 0);
  report("recv whoami second", n > 0 ? 0 : n);
  rx[n > 0 ? n : 0] = '\0';
  printf("second whoami: peer saw %s\n", strcmp(rx, argv[3]) == 0 ? "local" : rx);
  close(c3);

  /* connect() keeps what is already queued (the kernel filters by peer on
   * arrival), a peeked datagram included; later datagrams from others are
   * dropped */
  int q = udp_socket();
  a = any_port(5);
  report("bind sixth port", bind(q, (struct sockaddr*)&a, sizeof(a)));
  report("sendto whoami before connect", sendto(q, "whoami", 6, 0, peer, sizeof(g_peer)));
  usleep(200000);
  struct sockaddr_in other = g_peer;
  other.sin_port = htons((uint16_t)(ntohs(g_peer.sin_port) + 1));
  report("connect elsewhere, one datagram queued",
         connect(q, (struct sockaddr*)&other, sizeof(other)));
  n = recv(q, rx, sizeof(rx), MSG_DONTWAIT);
  report("recv datagram queued before connect", n > 0 ? 1 : n);
  report("sendto peer while connected elsewhere", sendto(q, "whoami", 6, 0, peer, sizeof(g_peer)));
  usleep(200000);
  report("recv reply from a non-peer", recv(q, rx, sizeof(rx), MSG_DONTWAIT));
  report("connect AF_UNSPEC again",
         connect(q, (struct sockaddr*)&(struct sockaddr){.sa_family = AF_UNSPEC},
                 sizeof(struct sockaddr)));
  report("sendto whoami to peek", sendto(q, "whoami", 6, 0, peer, sizeof(g_peer)));
  wait_readable(q);
  report("recv MSG_PEEK before connect", recv(q, rx, 2, MSG_PEEK) > 0 ? 1 : -1);
  report("connect to the sender", connect(q, peer, sizeof(g_peer)));
  n = recv(q, rx, sizeof(rx), MSG_DONTWAIT);
  report("recv peeked datagram after connect", n > 0 ? 1 : n);
  close(q);

  /* shutdown(2) on UDP: the kernel sets the bits even when it answers
   * ENOTCONN (unconnected); SHUT_RD makes a blocking receive on an empty
   * queue return 0 (datagrams still arrive), SHUT_WR makes sends fail with
   * EPIPE (no SIGPIPE for UDP) */
  struct sigaction pipe_sa = {.sa_handler = on_alarm_count};
  sigemptyset(&pipe_sa.sa_mask);
  sigaction(SIGPIPE, &pipe_sa, NULL);
  g_alarms = 0;
  int pd = udp_socket();
  report("shutdown pending socket", shutdown(pd, SHUT_RDWR));
  a = any_port(2);
  report("bind after shutdown", bind(pd, (struct sockaddr*)&a, sizeof(a)));
  report("sendto after shutdown before bind", sendto(pd, "x", 1, 0, peer, sizeof(g_peer)));
  report("recv blocking after shutdown before bind", recv(pd, rx, 10, 0));
  close(pd);
  int u = udp_socket();
  a = any_port(4);
  report("bind fifth port", bind(u, (struct sockaddr*)&a, sizeof(a)));
  report("shutdown bad how", shutdown(u, 7));
  report("shutdown SHUT_RD unconnected", shutdown(u, SHUT_RD));
  pf = (struct pollfd){u, POLLIN | POLLOUT | POLLRDHUP, 0};
  report("poll after SHUT_RD", poll(&pf, 1, 0));
  printf("poll after SHUT_RD revents: %#x\n", pf.revents);
  report("recv MSG_DONTWAIT after SHUT_RD", recv(u, rx, 10, MSG_DONTWAIT));
  report("recv blocking after SHUT_RD", recv(u, rx, 10, 0));
  report("sendto whoami after SHUT_RD", sendto(u, "whoami", 6, 0, peer, sizeof(g_peer)));
  usleep(200000);
  n = recv(u, rx, sizeof(rx), 0);
  report("recv datagram after SHUT_RD", n > 0 ? 1 : n);
  report("recv blocking after SHUT_RD, drained", recv(u, rx, 10, 0));
  report("shutdown SHUT_WR unconnected", shutdown(u, SHUT_WR));
  report("sendto after SHUT_WR", sendto(u, "x", 1, 0, peer, sizeof(g_peer)));
  pf = (struct pollfd){u, POLLIN | POLLOUT | POLLRDHUP, 0};
  report("poll after SHUT_RDWR", poll(&pf, 1, 0));
  printf("poll after SHUT_RDWR revents: %#x\n", pf.revents);
  close(u);
  int w = udp_socket();
  a = any_port(3);
  report("bind fourth port", bind(w, (struct sockaddr*)&a, sizeof(a)));
  report("connect fourth", connect(w, peer, sizeof(g_peer)));
  report("shutdown SHUT_WR connected", shutdown(w, SHUT_WR));
  report("send after SHUT_WR", send(w, "x", 1, 0));
  report("write after SHUT_WR", write(w, "x", 1));
  report("recv MSG_DONTWAIT after SHUT_WR", recv(w, rx, 10, MSG_DONTWAIT));
  pf = (struct pollfd){w, POLLIN | POLLOUT | POLLRDHUP, 0};
  report("poll after SHUT_WR", poll(&pf, 1, 0));
  printf("poll after SHUT_WR revents: %#x\n", pf.revents);
  report("shutdown SHUT_RDWR connected", shutdown(w, SHUT_RDWR));
  report("read after SHUT_RDWR", read(w, rx, 10));
  report("connect again after shutdown", connect(w, peer, sizeof(g_peer)));
  report("send after reconnect", send(w, "x", 1, 0));
  printf("SIGPIPE: %d\n", g_alarms);
  report("close fourth", close(w));
  report("shutdown closed", shutdown(w, SHUT_RD));
  printf("done\n");
  return 0;
}
