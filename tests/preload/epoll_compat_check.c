/* epoll_compat_check: offloaded epoll waits where epoll_pwait2 cannot be
 * used. Run under libmachnet_preload.so against the kernel echo peer
 * (tests/preload/peer.py serve), either
 *   - with the epoll_pwait2 symbol hidden from the shim (libhide_symbol.so,
 *     as a glibc before 2.35 has none), or
 *   - with "seccomp": this program first installs a seccomp filter that
 *     refuses the epoll_pwait2 system call with ENOSYS (a kernel before
 *     5.11, or a container's profile), and checks that it does.
 * Waits with 0, finite (whole and sub-millisecond) and infinite timeouts on
 * a set with an offloaded socket, on a set with a socket not decided yet, on
 * a kernel-only set and on a set nested in another; the infinite ones are
 * woken by a late echo (the peer's "delay:MS"), after the shim went to sleep.
 *
 *   epoll_compat_check PEER_IP PEER_PORT LOCAL_PORT [seccomp]
 * Prints one line per step; exit status 0 only when every step gave the
 * expected result. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define MY_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define MY_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static int g_failures;
static struct sockaddr_in g_peer;

static const char* ename(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E?";
}

/* One step: ret and, for ret == 1, the event's data and events. */
static void expect(const char* name, int ret, const struct epoll_event* ev, int want,
                   uint64_t want_data) {
  int ok = ret == want && (want != 1 || (ev->data.u64 == want_data && (ev->events & EPOLLIN)));
  if (ret < 0)
    printf("%s %s: ret=%d errno=%s\n", ok ? "ok" : "FAIL", name, ret, ename(errno));
  else if (ret == 1)
    printf("%s %s: ret=1 data %llu events %#x\n", ok ? "ok" : "FAIL", name,
           (unsigned long long)ev->data.u64, ev->events);
  else
    printf("%s %s: ret=%d (want %d)\n", ok ? "ok" : "FAIL", name, ret, want);
  fflush(stdout);
  if (!ok) g_failures++;
}

static void refuse_epoll_pwait2(void) {
#if defined(MY_AUDIT_ARCH) && defined(SYS_epoll_pwait2)
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MY_AUDIT_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_epoll_pwait2, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    printf("FAIL seccomp: %s\n", strerror(errno));
    exit(1);
  }
  struct epoll_event ev;
  int ep = epoll_create1(0);
  long r = syscall(SYS_epoll_pwait2, ep, &ev, 1, NULL, NULL, (size_t)(_NSIG / 8));
  close(ep);
  if (r != -1 || errno != ENOSYS) {
    printf("FAIL seccomp: epoll_pwait2 gave %ld (%s), not ENOSYS\n", r, ename(errno));
    exit(1);
  }
  printf("seccomp: the epoll_pwait2 system call fails with ENOSYS\n");
#else
  printf("FAIL seccomp: no filter for this architecture\n");
  exit(1);
#endif
}

/* The peer echoes "delay:MS" only after MS milliseconds. */
static void late_echo(int s, int ms) {
  char msg[32];
  int n = snprintf(msg, sizeof(msg), "delay:%d", ms);
  if (sendto(s, msg, (size_t)n, 0, (struct sockaddr*)&g_peer, sizeof(g_peer)) != n) {
    printf("FAIL sendto: %s\n", strerror(errno));
    exit(1);
  }
}

static void drain(int s) {
  char buf[64];
  while (recv(s, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
}

static void* pipe_writer(void* arg) {
  usleep(100000);
  if (write(*(int*)arg, "x", 1) != 1) abort();
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PEER_IP PEER_PORT LOCAL_PORT [seccomp]\n", argv[0]);
    return 2;
  }
  if (argc > 4 && strcmp(argv[4], "seccomp") == 0) refuse_epoll_pwait2();
  g_peer.sin_family = AF_INET;
  g_peer.sin_port = htons((uint16_t)atoi(argv[2]));
  inet_pton(AF_INET, argv[1], &g_peer.sin_addr);
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  if (u < 0 || bind(u, (struct sockaddr*)&local, sizeof(local)) != 0) {
    printf("FAIL socket/bind: %s\n", strerror(errno));
    return 1;
  }
  /* The first datagram may wait for ARP: one echo before the checks. */
  late_echo(u, 0);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, out;
  int ep = epoll_create1(0);
  epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev);
  expect("offloaded member, echo", epoll_wait(ep, &out, 1, 3000), &out, 1, 1);
  drain(u);

  expect("offloaded member, timeout 0", epoll_wait(ep, &out, 1, 0), &out, 0, 0);
  expect("offloaded member, timeout 30 ms", epoll_wait(ep, &out, 1, 30), &out, 0, 0);
  struct timespec sub = {0, 1500000};
  expect("offloaded member, epoll_pwait2 1.5 ms", epoll_pwait2(ep, &out, 1, &sub, NULL), &out, 0,
         0);
  late_echo(u, 300);
  expect("offloaded member, infinite, late echo", epoll_wait(ep, &out, 1, -1), &out, 1, 1);
  drain(u);
  sigset_t mask;
  sigemptyset(&mask);
  late_echo(u, 200);
  expect("offloaded member, epoll_pwait infinite, late echo", epoll_pwait(ep, &out, 1, -1, &mask),
         &out, 1, 1);
  drain(u);
  late_echo(u, 200);
  expect("offloaded member, epoll_pwait2 infinite, late echo",
         epoll_pwait2(ep, &out, 1, NULL, &mask), &out, 1, 1);
  drain(u);

  /* A set nested in another: the outer wait sleeps in short slices. */
  int outer = epoll_create1(0);
  struct epoll_event oev = {.events = EPOLLIN, .data.u64 = 7};
  epoll_ctl(outer, EPOLL_CTL_ADD, ep, &oev);
  expect("nested set, timeout 20 ms", epoll_wait(outer, &out, 1, 20), &out, 0, 0);
  late_echo(u, 200);
  expect("nested set, infinite, late echo", epoll_wait(outer, &out, 1, -1), &out, 1, 7);
  drain(u);

  /* A socket not decided yet (no bind, no send): waits in slices. */
  int p = socket(AF_INET, SOCK_DGRAM, 0);
  int ep2 = epoll_create1(0);
  struct epoll_event pev = {.events = EPOLLIN, .data.u64 = 2};
  epoll_ctl(ep2, EPOLL_CTL_ADD, p, &pev);
  expect("pending member, epoll_pwait2 1.5 ms", epoll_pwait2(ep2, &out, 1, &sub, NULL), &out, 0, 0);
  expect("pending member, timeout 25 ms", epoll_wait(ep2, &out, 1, 25), &out, 0, 0);

  /* Kernel fds only: the program's own call goes to the kernel. */
  int fds[2];
  if (pipe(fds) != 0) return 1;
  int ep3 = epoll_create1(0);
  struct epoll_event kev = {.events = EPOLLIN, .data.u64 = 3};
  epoll_ctl(ep3, EPOLL_CTL_ADD, fds[0], &kev);
  pthread_t t;
  pthread_create(&t, NULL, pipe_writer, &fds[1]);
  expect("kernel-only set, infinite, pipe written", epoll_wait(ep3, &out, 1, -1), &out, 1, 3);
  pthread_join(t, NULL);

  printf("%s: %d failures\n", g_failures ? "FAIL" : "done", g_failures);
  return g_failures ? 1 : 0;
}
