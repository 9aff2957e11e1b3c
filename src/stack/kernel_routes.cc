#include "stack/kernel_routes.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace machnet::stack {

bool KernelRouteTable::reachable(uint32_t ip) const {
  long fd = syscall(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(9);  // discard; only the route lookup matters
  to.sin_addr.s_addr = htonl(ip);
  long rc = syscall(SYS_connect, fd, &to, sizeof(to));
  int err = rc == 0 ? 0 : errno;
  syscall(SYS_close, fd);
  return err != ENETUNREACH && err != EHOSTUNREACH;
}

}  // namespace machnet::stack
