# Shared helpers for the machnetd acceptance tests (sourced): daemons started
# with a unique --name and their own --socket in $TMP, each in a network
# namespace of its own making, and preloaded programs attached to them.
# Everything started here is stopped by PID on every exit path; namespaces
# are deleted, and the runtime and hugepage files of a daemon that was
# killed are removed.
# shellcheck source=../preload/lib_preload.sh
. "$(dirname "${BASH_SOURCE[0]}")/../preload/lib_preload.sh"

MACHNETD="$BUILDDIR/machnetd"
export MACHNET_STAT="$BUILDDIR/machnet-stat"
MND_STAT="$SRCDIR/tests/machnetd/mnd_stat.py"
FLOW_APP="$SRCDIR/tests/machnetd/flow_app.py"
PY_UDP="$SRCDIR/tests/preload/py_udp.py"
MND_QUEUES=${MND_QUEUES:-4}
# A /24 of our own for the namespaces below (they are private: the addresses
# are seen by nothing else). Unique per test process.
MND_NET=10.$((200 + $$ % 50)).$((($$ / 50) % 256))

declare -A MND_PID MND_SOCK MND_PREFIX MND_LOG MND_RUNS
MND_NETNS=()
MND_PREFIXES=() # EAL prefixes of every daemon started: machnetd-<name>-<pid>

require_machnetd_build() {
  for f in "$MACHNETD" "$MACHNET_STAT" "$PRELOAD_LIB" "$ENGINE_LIB"; do
    [ -e "$f" ] || fail "$f not built (make check builds it)"
  done
  [ -c /dev/net/tun ] || fail "/dev/net/tun is missing: net_tap needs the tun driver"
}

hugetlbfs_dirs() { awk '$3 == "hugetlbfs" {print $2}' /proc/mounts; }

mnd_cleanup() {
  local rc=$? pid ns pids prefix d
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  for ns in "${MND_NETNS[@]}"; do
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    if [ -n "${pids// /}" ]; then
      echo "cleanup: killing processes left in $ns: $pids" >&2
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      sleep 0.2
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
  for prefix in "${MND_PREFIXES[@]}"; do
    pid=${prefix##*-}
    kill -0 "$pid" 2>/dev/null && continue
    if [ -d "/var/run/dpdk/$prefix" ]; then
      echo "cleanup: removing the runtime files of dead daemon $prefix" >&2
      rm -rf "/var/run/dpdk/$prefix"
    fi
    for d in $(hugetlbfs_dirs); do rm -f "$d/${prefix}map_"*; done
  done
  (exit $rc)
  cleanup
}
trap mnd_cleanup EXIT

# mnd_netns_add VAR: a fresh network namespace (lo up), its name in VAR.
mnd_netns_add() {
  local ns="mnd$$${#MND_NETNS[@]}"
  ip netns add "$ns"
  MND_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  printf -v "$1" '%s' "$ns"
}

# The daemons read no /etc/machnet/machnetd.conf; the applications no
# /etc/machnet/machnet.conf: everything the tests need is here.
: >"$TMP/machnetd.conf"
cat >"$TMP/attached.conf" <<EOF
# Attached to machnetd: no device, no ip (the daemon's), only the library and rules.
library = $ENGINE_LIB
strict = yes
# Streams: only machnet peers here (see tests/stream/test_stream_apps.sh).
transport.probe_timeout_us = 500000
[rules]
default = offload
EOF

# mnd_start NAME NETNS DEVICE IP/LEN [machnetd options...]: starts machnetd
# (--name NAME, --socket ${MND_SOCK_DIR:-$TMP}/NAME.sock, MND_QUEUES queues) in NETNS and waits
# for its start line. Sets MND_PID/MND_SOCK/MND_PREFIX/MND_LOG[NAME].
mnd_start() {
  local name=$1 ns=$2 dev=$3 ip=$4
  shift 4
  local run=$((${MND_RUNS[$name]:-0} + 1))
  MND_RUNS[$name]=$run
  local log="machnetd_${name}_$run"
  MND_LOG[$name]=$log
  MND_SOCK[$name]="${MND_SOCK_DIR:-$TMP}/$name.sock"
  start_bg "$log" ip netns exec "$ns" "$MACHNETD" --config "$TMP/machnetd.conf" --name "$name" \
    --socket "${MND_SOCK[$name]}" --device "$dev" --ip "$ip" --queues "$MND_QUEUES" "$@"
  MND_PID[$name]=$LAST_PID
  wait_for_line "$log" "machnetd: started:" 30 || fail "machnetd $name did not start: $(tail -5 "$TMP/$log.log")"
  MND_PREFIX[$name]=$(sed -n 's/^machnetd: started: .*EAL prefix \([^,]*\), pid .*/\1/p' "$TMP/$log.log")
  [ "${MND_PREFIX[$name]}" = "machnetd-$name-${MND_PID[$name]}" ] ||
    fail "machnetd $name: start line names EAL prefix '${MND_PREFIX[$name]}', pid ${MND_PID[$name]}"
  MND_PREFIXES+=("${MND_PREFIX[$name]}")
  echo "ok: $(grep '^machnetd: started:' "$TMP/$log.log")"
}

# mnd_tap NAME NETNS TAP KERNEL_IP DAEMON_IP: machnetd NAME on a net_tap port
# (kernel interface TAP in NETNS, addressed KERNEL_IP/24 there: the other
# host), DAEMON_IP/24; waits until the tap's link is up.
mnd_tap() {
  mnd_start "$1" "$2" "net_tap0,iface=$3" "$5/24"
  ip -n "$2" addr add "$4/24" dev "$3"
  ip -n "$2" link set "$3" up
  wait_for_line "${MND_LOG[$1]}" "link up on net_tap0" 10 || fail "the tap's link did not come up"
}

# mnd_memif_pair NAME_A NETNS_A IP_A NAME_B NETNS_B IP_B [SECONDS]: two hosts,
# a machnetd each (A the memif server, B its client, socket $TMP/memif.sock),
# and waits until both see the link up.
mnd_memif_pair() {
  local sock="$TMP/memif.sock" secs=${7:-10}
  mnd_start "$1" "$2" "net_memif0,role=server,socket=$sock,socket-abstract=no,id=0" "$3/24"
  mnd_start "$4" "$5" "net_memif0,role=client,socket=$sock,socket-abstract=no,id=0" "$6/24"
  wait_for_line "${MND_LOG[$1]}" "link up on net_memif0" "$secs" || fail "memif link of host A ($1) did not come up"
  wait_for_line "${MND_LOG[$4]}" "link up on net_memif0" "$secs" || fail "memif link of host B ($4) did not come up"
}

# mnd_log NAME: the path of the current log of daemon NAME.
mnd_log() { echo "$TMP/${MND_LOG[$1]}.log"; }

# mnd_stop NAME: SIGTERM; the daemon must exit 0 having cleaned up after itself.
mnd_stop() {
  local name=$1 rc=0
  stop_bg "${MND_PID[$name]}" || rc=$?
  [ $rc -eq 0 ] || fail "machnetd $name exited with status $rc on SIGTERM: $(tail -5 "$(mnd_log "$name")")"
  grep -q "exited cleanly" "$(mnd_log "$name")" || fail "machnetd $name: no 'exited cleanly' line"
  [ ! -e "/var/run/dpdk/${MND_PREFIX[$name]}" ] || fail "machnetd $name left /var/run/dpdk/${MND_PREFIX[$name]}"
  [ ! -e "${MND_SOCK[$name]}" ] || fail "machnetd $name left its socket ${MND_SOCK[$name]}"
  echo "ok: machnetd $name stopped: $(grep -o 'exited cleanly.*' "$(mnd_log "$name")")"
}

# mnd_kill9 NAME: SIGKILL the daemon and reap it.
mnd_kill9() {
  local name=$1 pid=${MND_PID[$1]}
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

# forget_pid PID: PID is gone (reaped): no cleanup for it.
forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# mnd_app NETNS NAME: sets APP, the command prefix running a program in
# NETNS under the preload, attached to daemon NAME (an array: start_bg must
# see the program's own PID; ip netns exec, env and machnet-run all exec).
mnd_app() {
  APP=(ip netns exec "$1" env "MACHNET_MACHNETD_SOCKET=${MND_SOCK[$2]}" "$RUN" --preload "$PRELOAD_LIB"
    --config "$TMP/attached.conf" --)
}

# mnd_two_hosts TAG IP_A IP_B: hosts A and B, each a machnetd (DA, DB) in
# a namespace of its own (NS_A, NS_B), joined by net_memif; B's address on
# no kernel interface, so whatever works went through the daemons. Sets
# CLI and SRV (mnd_app prefixes for A and B) and saves B's starting
# figures in $TMP/start.txt.
mnd_two_hosts() {
  mnd_netns_add NS_A
  mnd_netns_add NS_B
  DA="${1}a$$"
  DB="${1}b$$"
  mnd_memif_pair "$DA" "$NS_A" "$2" "$DB" "$NS_B" "$3"
  ip netns exec "$NS_B" ip -o addr | grep -q "$3" && fail "$3 is on a kernel interface"
  mnd_figures "$DB" "$TMP/start.txt"
  mnd_app "$NS_A" "$DA"
  CLI=("${APP[@]}")
  mnd_app "$NS_B" "$DB"
  SRV=("${APP[@]}")
}

# mnd_figures NAME FILE: the figures that must come back to their starting
# values (mnd_stat.py figures), saved in FILE.
mnd_figures() {
  "$PYTHON" "$MND_STAT" figures "${MND_SOCK[$1]}" "${MND_PREFIX[$1]}" >"$2" ||
    fail "machnet-stat --json of machnetd $1 failed"
}

# mnd_figures_back NAME START END [WHO]: waits up to 10 s for machnetd NAME's
# figures (saved in END) to equal those saved in START; fails naming WHO
# ("machnet-stat's" by default) if they do not.
mnd_figures_back() {
  local name=$1 start=$2 end=$3 who=${4:-machnet-stat\'s}
  for _ in $(seq 100); do
    mnd_figures "$name" "$end"
    diff -q <(grep -v '^info' "$start") <(grep -v '^info' "$end") >/dev/null && return 0
    sleep 0.1
  done
  diff <(grep -v '^info' "$start") <(grep -v '^info' "$end") ||
    fail "$who figures did not come back to their starting values"
}

# mnd_stat NAME ARGS...: mnd_stat.py CMD SOCKET ARGS...
mnd_stat() {
  local name=$1 cmd=$2
  shift 2
  "$PYTHON" "$MND_STAT" "$cmd" "${MND_SOCK[$name]}" "$@"
}

# offloaded LOGNAME: the program's log shows that it attached to a machnetd.
offloaded() {
  grep -q "machnet: offloading UDP .* attached to machnetd pid" "$TMP/$1.log" ||
    fail "$1 did not attach to machnetd: $(head -3 "$TMP/$1.log")"
}

# wait_gone PID [SECONDS]: PID (a start_bg child) exits; returns its status.
wait_gone() {
  local pid=$1 secs=${2:-20} rc=0
  for _ in $(seq $((secs * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && return 124
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return $rc
}
