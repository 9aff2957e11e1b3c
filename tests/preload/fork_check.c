/* fork_check: what happens to an offloaded socket across fork() and exec.
 *
 *   fork_check PEER_IP PEER_PORT LOCAL_PORT
 * Binds LOCAL_PORT (offloaded under the preload), checks the parent's socket
 * works (the peer answers "whoami" with the address it saw), then
 *   - fork() without exec: the child uses the inherited socket (documented:
 *     EBADFD under the preload, since the engine stays the parent's), closes
 *     it, and opens a new socket (on the kernel); it must neither hang nor
 *     crash;
 *   - the parent's socket still works after the child is gone;
 *   - fork() + exec of this program ("exec-child FD"): the inherited fd is a
 *     plain kernel socket bound to the same port; the other inherited fds
 *     are listed (the test compares them with a run without the preload:
 *     no engine fd, AF_XDP socket, BPF map or hugepage file, may appear).
 * Prints one result per line; exit 0 when every step completed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_in g_peer;

static const char* ename(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E?";
}

/* Sends "whoami" and prints what the peer saw, or the error. */
static int whoami(const char* who, int fd) {
  char rx[64];
  if (sendto(fd, "whoami", 6, 0, (struct sockaddr*)&g_peer, sizeof(g_peer)) < 0) {
    printf("%s: sendto errno=%s\n", who, ename(errno));
    return -1;
  }
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 2000) != 1) {
    printf("%s: no answer (poll errno=%s)\n", who, ename(errno));
    return -1;
  }
  ssize_t n = recv(fd, rx, sizeof(rx) - 1, 0);
  if (n < 0) {
    printf("%s: recv errno=%s\n", who, ename(errno));
    return -1;
  }
  rx[n] = '\0';
  printf("%s: peer saw %s\n", who, rx);
  fflush(stdout);
  return 0;
}

static int exec_child(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  if (getsockname(fd, (struct sockaddr*)&a, &len) != 0) {
    printf("exec child: inherited fd %d: getsockname errno=%s\n", fd, ename(errno));
    return 1;
  }
  printf("exec child: inherited fd is a kernel socket on port %u\n", ntohs(a.sin_port));
  int extra = 0;
  DIR* d = opendir("/proc/self/fd");
  struct dirent* e;
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    int n = atoi(e->d_name);
    if (n <= 2 || n == fd || n == dirfd(d)) continue;
    char path[64], target[256] = "";
    snprintf(path, sizeof(path), "/proc/self/fd/%d", n);
    ssize_t l = readlink(path, target, sizeof(target) - 1);
    if (l > 0) target[l] = '\0';
    printf("exec child: inherited fd %d -> %s\n", n, target);
    extra++;
  }
  if (d) closedir(d);
  printf("exec child: other inherited fds: %d\n", extra);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int rc = whoami("exec child new socket", s);
  close(s);
  return rc == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "exec-child") == 0) {
    g_peer.sin_family = AF_INET;
    const char* peer = getenv("FORK_CHECK_PEER");
    g_peer.sin_port = htons((uint16_t)atoi(getenv("FORK_CHECK_PORT")));
    inet_pton(AF_INET, peer, &g_peer.sin_addr);
    return exec_child(atoi(argv[2]));
  }
  if (argc != 4) {
    fprintf(stderr, "usage: fork_check PEER_IP PEER_PORT LOCAL_PORT\n");
    return 2;
  }
  g_peer.sin_family = AF_INET;
  g_peer.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &g_peer.sin_addr) != 1) return 2;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
  if (bind(s, (struct sockaddr*)&a, sizeof(a)) != 0) {
    perror("bind");
    return 1;
  }
  if (whoami("parent before fork", s) != 0) return 1;

  pid_t pid = fork();
  if (pid == 0) {
    alarm(10); /* a hang fails the test instead of stalling it */
    char b[16];
    ssize_t n = recv(s, b, sizeof(b), MSG_DONTWAIT);
    printf("fork child: recv inherited: %s\n", n >= 0 ? "ok" : ename(errno));
    n = sendto(s, "x", 1, 0, (struct sockaddr*)&g_peer, sizeof(g_peer));
    printf("fork child: sendto inherited: %s\n", n >= 0 ? "ok" : ename(errno));
    printf("fork child: close inherited: %s\n", close(s) == 0 ? "ok" : ename(errno));
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    int rc = whoami("fork child new socket", c);
    close(c);
    fflush(stdout);
    _exit(rc == 0 ? 0 : 3);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  printf("fork child: %s %d\n", WIFEXITED(st) ? "exit" : "signal",
         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  if (whoami("parent after fork", s) != 0) return 1;

  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    char fdstr[16];
    snprintf(fdstr, sizeof(fdstr), "%d", s);
    setenv("FORK_CHECK_PEER", argv[1], 1);
    setenv("FORK_CHECK_PORT", argv[2], 1);
    /* The exec'd program keeps the preload but not the engine: its new
     * sockets stay on the kernel so it does not compete for the device. */
    setenv("MACHNET_RULES_DEFAULT", "kernel", 1);
    execl("/proc/self/exe", argv[0], "exec-child", fdstr, (char*)NULL);
    _exit(127);
  }
  waitpid(pid, &st, 0);
  printf("exec child: %s %d\n", WIFEXITED(st) ? "exit" : "signal",
         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  if (whoami("parent after exec child", s) != 0) return 1;

  /* vfork() + exec, the way shells and posix_spawn-less programs start
   * commands: the exec'd child must start clean, the parent keep working. */
  fflush(stdout);
  pid = vfork();
  if (pid == 0) {
    execl("/bin/true", "true", (char*)NULL);
    _exit(127);
  }
  waitpid(pid, &st, 0);
  printf("vfork child: %s %d\n", WIFEXITED(st) ? "exit" : "signal",
         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  if (whoami("parent after vfork child", s) != 0) return 1;

  /* daemon(): glibc forks internally, out of the preload's reach unless
   * daemon itself is interposed. The daemon must see the inherited socket as
   * a fork child does, and report through a pipe (its parent exits). */
  int pfd[2];
  if (pipe(pfd) != 0) return 1;
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    if (daemon(1, 1) != 0) _exit(2);
    char rx[16], msg[96];
    ssize_t n = recv(s, rx, sizeof(rx), MSG_DONTWAIT);
    int len = snprintf(msg, sizeof(msg), "daemon child: recv inherited: %s\n",
                       n >= 0 ? "ok" : ename(errno));
    if (write(pfd[1], msg, (size_t)len) != len) _exit(3);
    _exit(0);
  }
  close(pfd[1]);
  waitpid(pid, &st, 0);
  struct pollfd pp = {pfd[0], POLLIN, 0};
  char line[96] = {0};
  if (poll(&pp, 1, 3000) == 1 && read(pfd[0], line, sizeof(line) - 1) > 0) {
    fputs(line, stdout);
  } else {
    printf("daemon child: no report\n");
  }
  close(pfd[0]);
  if (whoami("parent after daemon child", s) != 0) return 1;
  close(s);
  return 0;
}
