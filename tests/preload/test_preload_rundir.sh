#!/usr/bin/env bash
# Standalone engines leave nothing in DPDK's runtime directory base
# (/var/run/dpdk): a preloaded python UDP program (tests/preload/rundir_prog.py,
# engine on its own net_memif socket, no peer needed) ends in each way, and
# its /var/run/dpdk/machnet-<pid>/ must be gone after a return from main,
# exit() from a second thread, _exit(), SIGTERM and SIGSEGV at their
# default action, and SIGINT, which Python re-sends itself after its
# KeyboardInterrupt (status and signal kept each time). After kill -9 it stays; the next
# engine start removes it, and leaves the directory of an engine running in
# parallel (whose telemetry still answers), of a live process without an
# owner file, and anything not named machnet-<pid>.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
RUNBASE=/var/run/dpdk
PROG="$SRCDIR/tests/preload/rundir_prog.py"
ulimit -c 0 # SIGSEGV below: no core files
N=0
EXTRA_DIRS=()
# The directories made here go too, whatever happens (then lib.sh's cleanup).
trap 'rc=$?; set +e; for d in "${EXTRA_DIRS[@]}"; do rm -rf "$d"; done; (exit $rc); cleanup' EXIT
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
# conf FILE: a standalone engine on a memif socket of its own.
conf() {
  N=$((N + 1))
  cat >"$1" <<EOF
device = net_memif0,role=server,id=0,socket=$TMP/memif$N.sock,socket-abstract=no,mac=02:00:00:00:77:$(printf %02x $N)
ip = 10.77.0.1/24
library = $ENGINE_LIB
machnetd = off
log_level = info
EOF
}

# start NAME MODE: runs the program, waits for it to be ready; sets PID.
start() {
  conf "$TMP/$1.conf"
  start_bg "$1" "$RUN" --preload "$PRELOAD_LIB" --config "$TMP/$1.conf" -- \
    "$PYTHON" "$PROG" "$2" "$TMP/go_$1"
  wait_for_line "$1" "^ready" 60 || fail "$1 did not start"
  PID=$(sed -n 's/^ready //p' "$TMP/$1.log")
  [ "$PID" = "$LAST_PID" ] || fail "$1: ready line says pid $PID, started $LAST_PID"
  grep -q "machnet: offloading UDP" "$TMP/$1.log" || fail "$1 did not offload: $(head -5 "$TMP/$1.log")"
  [ -d "$RUNBASE/machnet-$PID" ] || fail "$1: no $RUNBASE/machnet-$PID while it runs"
  local owner
  owner=$(cat "$RUNBASE/machnet-$PID/machnet.owner") || fail "$1: no owner file"
  [ "${owner%% *}" = "$PID" ] || fail "$1: owner file says '$owner'"
}

# finish NAME PID WANT_STATUS: waits for the program; its status and no directory.
finish() {
  local rc=0
  for _ in $(seq 600); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$2" 2>/dev/null && fail "$1: pid $2 still runs after 60 s"
  wait "$2" || rc=$?
  forget "$2"
  [ "$rc" = "$3" ] || fail "$1 ended with status $rc, not $3: $(tail -5 "$TMP/$1.log")"
  [ ! -e "$RUNBASE/machnet-$2" ] || fail "$1 (status $rc) left $RUNBASE/machnet-$2: $(ls -A "$RUNBASE/machnet-$2")"
  echo "ok: $1: status $rc, $RUNBASE/machnet-$2 removed"
}

start ret return
touch "$TMP/go_ret"
finish "return from main" "$PID" 0

start thr thread-exit
touch "$TMP/go_thr"
finish "exit() from a second thread" "$PID" 0

start ux _exit
touch "$TMP/go_ux"
finish "_exit(3)" "$PID" 3

start term wait
kill -TERM "$PID"
finish "SIGTERM" "$PID" 143

# Python's own SIGINT handler raises KeyboardInterrupt; unhandled, Python
# finalises, resets SIGINT and sends it to itself (kill, no exit()).
start int wait
kill -INT "$PID"
finish "SIGINT (python: KeyboardInterrupt, then kill(getpid(), SIGINT))" "$PID" 130

start segv wait
kill -SEGV "$PID"
finish "SIGSEGV" "$PID" 139

# kill -9: nothing runs in the process; the directory stays.
start victim wait
VICTIM=$PID
start live wait
LIVE=$PID
kill -KILL "$VICTIM"
wait "$VICTIM" || true
forget "$VICTIM"
[ -d "$RUNBASE/machnet-$VICTIM" ] || fail "kill -9 left no directory to clean up (test broken?)"
echo "ok: kill -9 leaves $RUNBASE/machnet-$VICTIM ($(ls -A "$RUNBASE/machnet-$VICTIM" | tr '\n' ' '))"
# Beside it: a directory of a process that ran without an owner file (as
# before owner files; its pid is gone), one of a live process without an
# owner file (cannot be told from a starting engine: kept), and one not
# named machnet-<pid>.
sh -c 'exit 0' &
GONE=$!
wait "$GONE"
sleep 600 &
SLEEPER=$!
PIDS+=("$SLEEPER")
for d in "machnet-$GONE" "machnet-$SLEEPER" "machnet-0$GONE"; do
  mkdir "$RUNBASE/$d"
  EXTRA_DIRS+=("$RUNBASE/$d")
done
before=$(find "$RUNBASE" -maxdepth 1 -name 'machnet-*' | wc -l)
start next return
# The sweep runs in the background (removals can wait on the disk): its
# line says it is done.
wait_for_line next "runtime directories of exited engines" 300 || fail "the next engine's sweep did not finish"
[ ! -e "$RUNBASE/machnet-$VICTIM" ] || fail "the next engine start left the killed engine's $RUNBASE/machnet-$VICTIM"
[ ! -e "$RUNBASE/machnet-$GONE" ] || fail "the next engine start left $RUNBASE/machnet-$GONE (dead pid, no owner file)"
[ -d "$RUNBASE/machnet-$LIVE" ] || fail "the next engine start removed the live engine's $RUNBASE/machnet-$LIVE"
[ -d "$RUNBASE/machnet-$SLEEPER" ] || fail "the next engine start removed $RUNBASE/machnet-$SLEEPER (live pid)"
[ -d "$RUNBASE/machnet-0$GONE" ] || fail "the next engine start removed $RUNBASE/machnet-0$GONE (not a prefix)"
line=$(grep "runtime directories of exited engines" "$TMP/next.log")
echo "ok: the next engine start removed the killed engine's directory, kept the live ones ($before machnet-* before: ${line#machnet: })"
# The live engine is untouched: its telemetry socket answers.
"$PYTHON" - "$RUNBASE/machnet-$LIVE/dpdk_telemetry.v2" <<'PY' || fail "the live engine's telemetry does not answer"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(10)
s.connect(sys.argv[1])
json.loads(s.recv(4096))
s.send(b"/machnet/counters")
assert "udp_rx" in json.loads(s.recv(16384))["/machnet/counters"]
PY
echo "ok: the live engine's telemetry still answers"
touch "$TMP/go_next"
finish "the next engine" "$PID" 0
kill -TERM "$LIVE"
finish "the live engine (SIGTERM)" "$LIVE" 143
kill -KILL "$SLEEPER"
wait "$SLEEPER" || true
forget "$SLEEPER"
for d in "${EXTRA_DIRS[@]}"; do rm -rf "$d"; done
echo "PASS"
