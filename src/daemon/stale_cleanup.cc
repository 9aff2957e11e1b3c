#include "daemon/stale_cleanup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "daemon/clock.h"
#include "engine/log.h"

namespace machnet::daemon {
namespace {

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

// True when some process holds a lock on the file: flock (fbarray files
// and hugepage files are flock'ed shared by every process mapping them) or
// an fcntl lock (the primary's "config" file).
bool locked(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
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

bool pid_alive(long pid) {
  if (pid <= 0 || pid == getpid()) return false;  // our own pid: a recycled number
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  // A zombie (killed, not yet reaped) holds no files any more.
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(f, line);
  auto paren = line.rfind(')');
  if (paren != std::string::npos && paren + 2 < line.size()) {
    char state = line[paren + 2];
    if (state == 'Z' || state == 'X') return false;
  }
  return true;
}

std::vector<std::string> hugepage_files(const std::string& hugedir, const std::string& prefix) {
  std::vector<std::string> out;
  if (hugedir.empty()) return out;
  std::string p = prefix + "map_";
  for (const auto& f : list_dir(hugedir))
    if (f.compare(0, p.size(), p) == 0) out.push_back(hugedir + "/" + f);
  return out;
}

}  // namespace

std::string dpdk_runtime_base() {
  if (getuid() == 0) return "/var/run/dpdk";
  const char* x = getenv("XDG_RUNTIME_DIR");
  return std::string(x != nullptr ? x : "/tmp") + "/dpdk";
}

void stale_cleanup(const std::string& hugedir) {
  const std::string base = dpdk_runtime_base();
  for (const auto& name : list_dir(base)) {
    if (name.rfind("machnetd-", 0) != 0) continue;
    auto dash = name.rfind('-');
    if (dash == std::string::npos || dash + 1 >= name.size() || dash < 9) continue;
    char* end = nullptr;
    long pid = std::strtol(name.c_str() + dash + 1, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    const std::string dir = base + "/" + name;
    if (pid_alive(pid)) {
      MN_LOG(DAEMON, NOTICE, "stale cleanup: leaving %s (pid %ld is running)", dir.c_str(), pid);
      continue;
    }
    std::vector<std::string> files = list_dir(dir);
    std::vector<std::string> pages = hugepage_files(hugedir, name);
    std::string busy;
    for (const auto& f : files) {
      if ((f.rfind("fbarray_", 0) == 0 || f == "config") && locked(dir + "/" + f)) {
        busy = dir + "/" + f;
        break;
      }
    }
    for (size_t i = 0; busy.empty() && i < pages.size(); i++)
      if (locked(pages[i])) busy = pages[i];
    if (!busy.empty()) {
      MN_LOG(DAEMON, WARNING,
             "stale cleanup: leaving %s: still in use (%s is locked by a process attached to it)",
             dir.c_str(), busy.c_str());
      continue;
    }
    for (const auto& f : files) unlink((dir + "/" + f).c_str());
    rmdir(dir.c_str());
    for (const auto& p : pages) unlink(p.c_str());
    MN_LOG(DAEMON, NOTICE,
           "stale cleanup: removed %s (%zu files) and %zu hugepage files of dead daemon pid %ld",
           dir.c_str(), files.size(), pages.size(), pid);
  }
}

unsigned remove_runtime(const std::string& prefix, const std::string& hugedir) {
  const std::string dir = dpdk_runtime_base() + "/" + prefix;
  for (const auto& f : list_dir(dir)) unlink((dir + "/" + f).c_str());
  rmdir(dir.c_str());
  unsigned n = 0;
  for (const auto& p : hugepage_files(hugedir, prefix))
    if (unlink(p.c_str()) == 0) n++;
  return n;
}

}  // namespace machnet::daemon
