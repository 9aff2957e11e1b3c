#include "common/runtime_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "common/host.h"

namespace machnet {
namespace {

std::string read_first_line(const std::string& path) {
  std::string text = read_text_file(path, 4096);
  return text.substr(0, text.find('\n'));
}

// The state letter (field 3) of a /proc/.../stat line; 0 when unreadable.
char stat_state(const std::string& line) {
  auto paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return 0;
  return line[paren + 2];
}

bool dead_state(char s) {
  return s == 'Z' || s == 'X' || s == 'x';
}

// The kernel's record for getdents64 (struct linux_dirent64).
struct Dirent64 {
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[];
};

}  // namespace

std::string dpdk_runtime_base() {
  if (getuid() == 0) return "/var/run/dpdk";
  const char* x = getenv("XDG_RUNTIME_DIR");
  return std::string(x != nullptr ? x : "/tmp") + "/dpdk";
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    out.emplace_back(e->d_name);
  }
  closedir(d);
  return out;
}

bool file_locked(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return false;
  bool busy = false;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    busy = errno == EWOULDBLOCK;
  } else {
    flock(fd, LOCK_UN);
  }
  if (!busy) {
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) busy = true;
  }
  close(fd);
  return busy;
}

bool socket_in_use(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sa.sun_path)) return true;  // cannot tell: keep it
  memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  int e = errno;
  close(fd);
  // Accepted, queued (EAGAIN: backlog full) or bound with another socket
  // type (EPROTOTYPE): somebody holds it. Only refusal or absence is dead.
  return rc == 0 || (e != ECONNREFUSED && e != ENOENT);
}

bool pid_alive(long pid) {
  if (pid <= 0 || pid > INT_MAX || pid == getpid()) return false;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  const std::string proc = "/proc/" + std::to_string(pid);
  char s = stat_state(read_first_line(proc + "/stat"));
  if (!dead_state(s)) return true;  // running, or unknown (no /proc): alive
  // A zombie leader: killed and not reaped, or its main thread called
  // pthread_exit() while others run on.
  for (const auto& t : list_dir(proc + "/task"))
    if (!dead_state(stat_state(read_first_line(proc + "/task/" + t + "/stat")))) return true;
  return false;
}

uint64_t parse_stat_start_ticks(const std::string& line) {
  auto paren = line.rfind(')');
  if (paren == std::string::npos) return 0;
  // After "pid (comm)": field 3 (state) is the first; starttime is field 22.
  std::istringstream in(line.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22; i++)
    if (!(in >> field)) return 0;
  if (field.empty() || field.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::strtoull(field.c_str(), nullptr, 10);
}

uint64_t process_start_ticks(long pid) {
  return parse_stat_start_ticks(read_first_line("/proc/" + std::to_string(pid) + "/stat"));
}

bool process_maps_eal(long pid) {
  std::string maps = read_text_file("/proc/" + std::to_string(pid) + "/maps", 64 << 20);
  if (maps.empty()) return true;  // cannot tell: assume it might
  return maps.find("librte_eal") != std::string::npos ||
         maps.find("libmachnet") != std::string::npos;
}

std::string standalone_prefix(pid_t pid) {
  return "machnet-" + std::to_string(pid);
}

long parse_standalone_prefix(const std::string& name) {
  static const std::string kPrefix = "machnet-";
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return 0;
  std::string digits = name.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 10 || digits[0] == '0' ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return 0;
  long pid = std::strtol(digits.c_str(), nullptr, 10);
  return pid > 0 && pid <= INT_MAX ? pid : 0;
}

std::string format_owner(long pid, uint64_t start_ticks) {
  return std::to_string(pid) + " " + std::to_string(start_ticks) + "\n";
}

bool parse_owner(const std::string& text, long* pid, uint64_t* start_ticks) {
  std::istringstream in(text);
  long p = 0;
  uint64_t t = 0;
  std::string rest;
  if (!(in >> p >> t) || p <= 0 || t == 0 || (in >> rest)) return false;
  *pid = p;
  *start_ticks = t;
  return true;
}

SweepResult sweep_standalone_runtime_dirs(const std::string& base, size_t max_remove) {
  SweepResult r;
  for (const auto& name : list_dir(base)) {
    long pid = parse_standalone_prefix(name);
    if (pid == 0) continue;
    r.seen++;
    if (pid == getpid()) continue;  // ours (EAL reuses it), or about to be
    const std::string dir = base + "/" + name;
    if (pid_alive(pid)) {
      // The pid runs. Its directory only if the owner file says another
      // process made it (a different start time) and the one running now
      // maps no EAL, so it cannot be starting an engine in it either.
      std::string text = read_text_file(dir + "/" + kOwnerFile, 4096);
      long opid = 0;
      uint64_t oticks = 0;
      uint64_t now = process_start_ticks(pid);
      bool recycled = parse_owner(text, &opid, &oticks) && opid == pid && now != 0 &&
                      now != oticks && !process_maps_eal(pid);
      if (!recycled) {
        r.live++;
        continue;
      }
    }
    if (r.removed >= max_remove) {
      r.deferred++;
      continue;
    }
    // Still held after all (a process in another pid namespace, or one that
    // inherited the directory's files): a bound socket or a locked file.
    bool busy = false;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) continue;
    while (dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      unsigned char type = e->d_type;
      if (type == DT_UNKNOWN) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        type = S_ISSOCK(st.st_mode) ? DT_SOCK : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
      }
      const std::string path = dir + "/" + e->d_name;
      if ((type == DT_SOCK && socket_in_use(path)) || (type == DT_REG && file_locked(path))) {
        busy = true;
        break;
      }
    }
    closedir(d);
    if (busy || !remove_dir_signal_safe(dir.c_str())) {
      r.busy++;
      continue;
    }
    r.removed++;
  }
  return r;
}

bool remove_dir_signal_safe(const char* dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    // Entries removed while reading may hide others: read again until a
    // pass removes nothing (bounded: EAL makes a handful of files).
    for (int pass = 0; pass < 4; pass++) {
      if (lseek(fd, 0, SEEK_SET) != 0) break;
      bool removed = false;
      alignas(8) char buf[2048];
      for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (n <= 0) break;
        for (long off = 0; off < n;) {
          auto* d = reinterpret_cast<Dirent64*>(buf + off);
          off += d->reclen;
          const char* nm = d->name;
          if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) continue;
          if (unlinkat(fd, nm, 0) == 0) removed = true;
        }
      }
      if (!removed) break;
    }
    close(fd);
  }
  return rmdir(dir) == 0 || errno == ENOENT;
}

}  // namespace machnet
