# Shared helpers for the integration tests (sourced). Each test is a real
# program run: DPDK engines, kernel peers, network namespaces made by
# tools/machnet-netns. Exit 77 = skipped (with the reason printed), as automake expects.
set -euo pipefail

SRCDIR=${MACHNET_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILDDIR=${MACHNET_BUILDDIR:-$SRCDIR/build}
NETNS_TOOL="$SRCDIR/tools/machnet-netns"
ECHO_BIN="$BUILDDIR/machnet-echo"
UDP_PEER="$SRCDIR/tests/integration/udp_peer.py"
export MACHNET_XDP_PROG=${MACHNET_XDP_PROG:-$BUILDDIR/tools/xdp/machnet_xdp.bpf.o}
# The test binaries come from the build tree: use its libmachnet.
export LD_LIBRARY_PATH="$BUILDDIR/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: $(basename "$0") needs root (network namespaces, DPDK, hugepages); run tools/run-tests as root"
    exit 77
  fi
  local hp
  hp=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
  if [ "${hp:-0}" -lt 256 ]; then
    echo "FAIL: fewer than 256 free hugepages: run tools/install-deps.sh" >&2
    exit 1
  fi
}

TMP=$(mktemp -d /tmp/machnet-test.XXXXXX)
PIDS=()
NETNS_NAME=""

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$NETNS_NAME" ]; then "$NETNS_TOOL" down "$NETNS_NAME" >/dev/null 2>&1 || true; fi
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    for f in "$TMP"/*.log; do
      [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }
    done
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# netns_up: two hosts; sets MN_* variables (see machnet-netns --help).
netns_up() {
  NETNS_NAME="mnt$$"
  "$NETNS_TOOL" up --name "$NETNS_NAME" --env "$TMP/netns.env" >/dev/null
  # shellcheck disable=SC1091
  . "$TMP/netns.env"
}

# start_bg LOGNAME CMD...: runs CMD in the background, logging to $TMP/LOGNAME.log
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
    if grep -q -- "$pattern" "$TMP/$name.log" 2>/dev/null; then return 0; fi
    if ! kill -0 "$LAST_PID" 2>/dev/null; then
      echo "FAIL: $name exited before printing '$pattern'" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "FAIL: $name did not print '$pattern' within ${secs}s" >&2
  return 1
}

# stop_bg PID: SIGTERM and wait; returns the process's exit status.
stop_bg() {
  local pid=$1 rc=0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  local keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
  return $rc
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
