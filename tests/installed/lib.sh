# shellcheck shell=bash
# Helpers for the tests of an installed machnet (sourced): they run only what
# the packages installed under /usr and /etc, as root, and refuse to start
# when anything in the environment points elsewhere (a build tree). Every
# process they start is stopped by PID, every namespace they make deleted.
# Exit status: 0 pass, 1 fail (never skipped).
set -euo pipefail
export LC_ALL=C
NAME=$(basename "$0" .sh)

fail() {
  echo "FAIL: $NAME: $*" >&2
  exit 1
}
ok() { echo "ok: $NAME: $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root"
for v in LD_LIBRARY_PATH LD_PRELOAD MACHNET_CONFIG MACHNET_LIBRARY MACHNET_PRELOAD_LIB \
  MACHNET_XDP_PROG MACHNET_BUILDDIR MACHNET_SRCDIR MACHNET_MACHNETD_SOCKET; do
  [ -z "${!v:-}" ] || fail "$v is set (${!v}): these tests use only the installed files"
done
case ":$PATH:" in
  *:/usr/sbin:*/usr/bin:* | *:/usr/bin:*/usr/sbin:*) ;;
  *) fail "PATH ($PATH) lacks /usr/bin or /usr/sbin" ;;
esac
# Each installed program must be the one found on PATH.
for p in machnet-run machnet-stat machnet-echo machnet-msg-gen machnet-kv-server machnet-kv-load \
  machnet-netns; do
  [ "$(command -v "$p")" = "/usr/bin/$p" ] || fail "$p is $(command -v "$p" || echo missing), not /usr/bin/$p"
done
[ "$(command -v machnetd)" = /usr/sbin/machnetd ] || fail "machnetd is not /usr/sbin/machnetd"

# The library directory the packages were built for, as machnet-run has it.
SHIM=$(sed -n 's|^\[ -n "\$preload" \] \|\| preload="\(/.*\)"$|\1|p' /usr/bin/machnet-run)
[ -n "$SHIM" ] || fail "/usr/bin/machnet-run names no shim path"
LIBDIR=$(dirname "$SHIM")
[ -f "$SHIM" ] || fail "machnet-run's shim $SHIM is not installed"
[ -f "$LIBDIR/libmachnet.so.0" ] || fail "no $LIBDIR/libmachnet.so.0 next to the shim"
# /lib is /usr/lib on Debian 12 (merged /usr): compare resolved paths.
REAL_LIBDIR=$(readlink -f "$LIBDIR")

# from_libdir FILE...: every FILE resolves into $LIBDIR.
from_libdir() {
  local f
  for f in "$@"; do
    [ "$(dirname "$(readlink -f "$f")")" = "$REAL_LIBDIR" ] || return 1
  done
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/machnet-installed.XXXXXX")
PIDS=()
NETNS=()
TOPOLOGY=""
CLEANUP_HOOKS=()

cleanup() {
  local rc=$? pid ns pids h
  set +e
  for h in "${CLEANUP_HOOKS[@]}"; do "$h"; done
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  [ -z "$TOPOLOGY" ] || machnet-netns down "$TOPOLOGY" >/dev/null 2>&1
  for ns in "${NETNS[@]}"; do
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    # shellcheck disable=SC2086
    [ -z "${pids// /}" ] || kill -KILL $pids 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  if [ $rc -ne 0 ]; then
    for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# start_bg LOGNAME CMD...: CMD in the background, output in $TMP/LOGNAME.log.
start_bg() {
  local name=$1
  shift
  "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
}

# wait_for_line LOGNAME PATTERN [SECONDS]
wait_for_line() {
  local name=$1 pattern=$2 secs=${3:-20}
  for _ in $(seq $((secs * 10))); do
    grep -q -- "$pattern" "$TMP/$name.log" 2>/dev/null && return 0
    kill -0 "$LAST_PID" 2>/dev/null || fail "$name exited before printing '$pattern'"
    sleep 0.1
  done
  fail "$name did not print '$pattern' within ${secs}s"
}

# stop_bg PID: SIGTERM, wait; returns the exit status.
stop_bg() {
  local pid=$1 rc=0 keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
  return $rc
}

# require_hugepages: at least 512 free 2 MiB pages on a hugetlbfs.
require_hugepages() {
  local free
  free=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
  if [ "${free:-0}" -lt 512 ]; then
    echo $(($(awk '/^HugePages_Total/ {print $2}' /proc/meminfo) + 512 - free)) >/proc/sys/vm/nr_hugepages
    free=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
    [ "$free" -ge 512 ] || fail "only $free free hugepages"
  fi
  grep -qs " hugetlbfs " /proc/mounts || {
    mkdir -p /dev/hugepages
    mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
  }
}

# maps_only_installed PID: the process maps machnet's libraries from
# $LIBDIR only.
maps_only_installed() {
  local pid=$1 libs
  libs=$(grep -o '/[^ ]*libmachnet[^ ]*' "/proc/$pid/maps" | sort -u || true)
  [ -n "$libs" ] || fail "pid $pid maps no machnet library"
  # shellcheck disable=SC2086
  from_libdir $libs || fail "pid $pid maps machnet libraries from elsewhere than $LIBDIR: $libs"
}
