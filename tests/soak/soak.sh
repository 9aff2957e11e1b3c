#!/usr/bin/env bash
# make soak (not in CI): SOAK_MINUTES (default 30) of mixed traffic between
# two hosts, each a machnetd in a network namespace of its own, joined by
# net_memif (as tests/machnetd/test_machnetd_memif.sh), every program
# attached to its host's daemon:
#   steady   a preloaded UDP client on A doing numbered round trips with a
#            preloaded echo server on B for the whole epoch: it is never
#            killed, so it must see no loss and no wrong reply at all
#   sockperf preloaded sockperf ping-pong clients on A against a preloaded
#            sockperf server on B (UDP), runs of 2-12 s
#   redis    preloaded redis-benchmark on A against a preloaded redis-server
#            on B: stream sockets over the machnet transport
#   msg      a machnet-msg-gen pair (the native message API), --verify
# Every SOAK_KILL_S seconds (default 15) one running client, chosen at
# random, is killed with SIGKILL mid-traffic; machnetd is restarted twice
# (at a third and two thirds of the run: programs stopped, both daemons
# stopped and started again). A client that fails without having been
# killed is a failure. At the end of every epoch, with every program gone:
#   - the frames daemon A sent are the frames daemon B received and the
#     other way round (memif loses nothing), or counted as drops;
#   - each daemon's leases, ports, pools (in use back to the baseline),
#     rings and memzones are back to their values at the epoch's start;
#   - the steady client's round trips: sent = answered, 0 missing, 0 bad.
# After the last epoch: no hugepage file and no DPDK runtime directory of
# the soak's daemons is left (the host's free hugepages are printed: other
# programs on the machine move them too). The daemons'
# heap growth per attach (DPDK's secondary-process cost) is printed.
MND_QUEUES=${MND_QUEUES:-8}
. "$(dirname "$0")/../machnetd/lib_machnetd.sh"
set +e
require_root
require_machnetd_build
MINUTES=${SOAK_MINUTES:-30}
KILL_S=${SOAK_KILL_S:-15}
MSGGEN="$BUILDDIR/machnet-msg-gen"
for t in sockperf redis-server redis-benchmark; do
  command -v $t >/dev/null || fail "$t not installed: run tools/install-deps.sh"
done
IP_A="$MND_NET.201"
IP_B="$MND_NET.202"
mnd_netns_add NS_A
mnd_netns_add NS_B
DA="ska$$"
DB="skb$$"
HP0=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
T0=$(date +%s)
END=$((T0 + MINUTES * 60))
say() { echo "[$(($(date +%s) - T0))s] $*"; }

# A failed client's whole log is kept here (TMP goes at exit); the library
# logs its fallbacks and engine trouble (log_level = info) into it.
KEEP=${SOAK_KEEP_DIR:-/tmp/machnet-soak-$$}
mkdir -p "$KEEP"
sed -i 's/^\[rules\]$/log_level = info\n[rules]/' "$TMP/attached.conf"

declare -A RUNS KILLS FAILS OKS
for w in sockperf redis msg; do RUNS[$w]=0 KILLS[$w]=0 FAILS[$w]=0 OKS[$w]=0; done
STEADY_OK=0 STOPPED=0
CLIENT_PID=() CLIENT_KIND=() CLIENT_LOG=() CLIENT_KILLED=()
SERVERS=()
problems=0
problem() { say "PROBLEM: $*"; problems=$((problems + 1)); }

start_epoch() {
  mnd_memif_pair "$DA" "$NS_A" "$IP_A" "$DB" "$NS_B" "$IP_B" 20
  mnd_figures "$DA" "$TMP/start-a.txt"
  mnd_figures "$DB" "$TMP/start-b.txt"
  mnd_app "$NS_B" "$DB"
  SERVERS=()
  start_bg "echo-srv" "${APP[@]}" "$PYTHON" "$SRCDIR/tests/preload/peer.py" serve 7200
  SERVERS+=("$LAST_PID")
  wait_for_line echo-srv "serving on" || fail "echo server did not start"
  start_bg "sp-srv" "${APP[@]}" sockperf server -i "$IP_B" -p 11111
  SERVERS+=("$LAST_PID")
  wait_for_line sp-srv "to block on socket" || fail "sockperf server did not start"
  start_bg "redis-srv" "${APP[@]}" redis-server --port 6379 --save '' --appendonly no --protected-mode no \
    --bind 0.0.0.0 --dir "$TMP"
  SERVERS+=("$LAST_PID")
  wait_for_line redis-srv "Ready to accept" || fail "redis-server did not start"
  start_bg "msg-srv" ip netns exec "$NS_B" env "MACHNET_MACHNETD_SOCKET=${MND_SOCK[$DB]}" "$MSGGEN" \
    --set machnetd=on --set "library=$ENGINE_LIB" --duration 100000
  SERVERS+=("$LAST_PID")
  wait_for_line msg-srv "listening" || fail "machnet-msg-gen server did not start"
  mnd_app "$NS_A" "$DA"
  start_bg steady "${APP[@]}" "$PYTHON" "$FLOW_APP" loop "$IP_B" 7200 7700 20
  STEADY=$LAST_PID
  wait_for_line steady "ready after" || fail "the steady client did not start"
  say "epoch up: daemons $DA/$DB, 4 servers on B, steady client on A"
}

# launch KIND: one client of that kind on A, a random run length.
launch() {
  local kind=$1 secs=$((2 + RANDOM % 11)) n=${RUNS[$1]}
  local log="c-$kind-$n"
  mnd_app "$NS_A" "$DA"
  case $kind in
    sockperf) start_bg "$log" "${APP[@]}" sockperf ping-pong -i "$IP_B" -p 11111 -m $((14 + RANDOM % 1400)) \
      -t "$secs" ;;
    redis) start_bg "$log" "${APP[@]}" redis-benchmark -h "$IP_B" -p 6379 -t get,set -q -c 4 \
      -n $((secs * 5000)) ;;
    msg) start_bg "$log" ip netns exec "$NS_A" env "MACHNET_MACHNETD_SOCKET=${MND_SOCK[$DA]}" "$MSGGEN" \
      --set machnetd=on --set "library=$ENGINE_LIB" --remote_ip "$IP_B" --msg_size $((16 + RANDOM % 8000)) \
      --msg_window 8 --duration "$secs" --warmup 0 --verify ;;
  esac
  RUNS[$kind]=$((n + 1))
  CLIENT_PID+=("$LAST_PID") CLIENT_KIND+=("$kind") CLIENT_LOG+=("$log") CLIENT_KILLED+=(0)
}

# reap: collect clients that ended; a failure without a kill is a problem.
reap() {
  local i rc
  for i in "${!CLIENT_PID[@]}"; do
    local pid=${CLIENT_PID[$i]}
    [ -n "$pid" ] || continue
    kill -0 "$pid" 2>/dev/null && continue
    rc=0
    wait "$pid" || rc=$?
    forget_pid "$pid"
    local kind=${CLIENT_KIND[$i]} log=${CLIENT_LOG[$i]}
    if [ "${CLIENT_KILLED[$i]}" != 0 ]; then
      STOPPED=$((STOPPED + (CLIENT_KILLED[i] == 2)))
    elif [ $rc -ne 0 ] || { [ "$kind" = sockperf ] && ! grep -q "observations" "$TMP/$log.log"; } ||
      { [ "$kind" = redis ] && ! grep -q "requests per second" "$TMP/$log.log"; }; then
      FAILS[$kind]=$((FAILS[$kind] + 1))
      problem "$kind client $log (pid $pid) failed, status $rc: $(tr '\r' '\n' <"$TMP/$log.log" | grep -v '^$' | tail -2 | tr '\n' ' ')"
      cp "$TMP/$log.log" "$KEEP/failed-$log.log"
      tr '\r' '\n' <"$TMP/$log.log" | grep -o "machnet: .*" | grep -v "offloading \|port [0-9]* offloaded" |
        tail -3 | sed 's/^/    /'
      # The servers are still running: what both daemons and every lease
      # (the servers' engines among them) counted by now.
      local d
      for d in "$DA" "$DB"; do
        echo "== daemon $d"
        "$MACHNET_STAT" --socket "${MND_SOCK[$d]}" 2>&1
      done >"$KEEP/stat-at-$log.txt"
      grep -Ei "^== |drop" "$KEEP/stat-at-$log.txt" | sed 's/^/    /'
      echo "    (whole log: $KEEP/failed-$log.log; machnet-stat: $KEEP/stat-at-$log.txt)"
    else
      OKS[$kind]=$((OKS[$kind] + 1))
    fi
    rm -f "$TMP/$log.log"
    CLIENT_PID[i]=""
  done
}

running_of() {  # running_of KIND: how many clients of KIND are running
  local i n=0
  for i in "${!CLIENT_PID[@]}"; do
    [ -n "${CLIENT_PID[$i]}" ] && [ "${CLIENT_KIND[$i]}" = "$1" ] && n=$((n + 1))
  done
  echo $n
}

kill_one() {
  local live=() i
  for i in "${!CLIENT_PID[@]}"; do [ -n "${CLIENT_PID[$i]}" ] && live+=("$i"); done
  [ ${#live[@]} -gt 0 ] || return 0
  i=${live[$((RANDOM % ${#live[@]}))]}
  kill -KILL "${CLIENT_PID[$i]}" 2>/dev/null && CLIENT_KILLED[i]=1 &&
    KILLS[${CLIENT_KIND[$i]}]=$((KILLS[${CLIENT_KIND[$i]}] + 1))
}

# port_counters NAME: opackets ipackets imissed+ierrors of the daemon's device.
port_counters() {
  "$MACHNET_STAT" --socket "${MND_SOCK[$1]}" --json | "$PYTHON" -c 'import json, sys
p = json.load(sys.stdin)["daemon"]["port_stats"]
print(p["opackets"], p["ipackets"], p["imissed"] + p["ierrors"])'
}
# drops_of NAME: the daemon's nonzero drop counters and the leases' ones.
drops_of() {
  "$MACHNET_STAT" --socket "${MND_SOCK[$1]}" --json | "$PYTHON" -c 'import json, sys
d = json.load(sys.stdin)["daemon"]
print(" ".join(f"{k} {v}" for k, v in d["drops"].items() if v) or "none")'
}

# end_epoch: every program stopped, then the checks, then the daemons.
end_epoch() {
  local i
  # Stopped, not failed: a client ended by the epoch's end is not counted.
  for i in "${!CLIENT_PID[@]}"; do
    [ -n "${CLIENT_PID[$i]}" ] || continue
    CLIENT_KILLED[i]=2
    kill -TERM "${CLIENT_PID[$i]}" 2>/dev/null
  done
  for _ in $(seq 100); do
    reap
    [ "$(running_of sockperf)$(running_of redis)$(running_of msg)" = 000 ] && break
    sleep 0.1
  done
  CLIENT_PID=() CLIENT_KIND=() CLIENT_LOG=() CLIENT_KILLED=()
  stop_bg "$STEADY"
  local line
  line=$(grep -o "loop: .*" "$TMP/steady.log")
  say "steady client: ${line#loop: }"
  echo "$line" | grep -q " 0 missing, 0 bad" || problem "the steady client lost or got wrong replies: $line"
  STEADY_OK=$((STEADY_OK + $(echo "$line" | awk '{print $2}')))
  for p in "${SERVERS[@]}"; do stop_bg "$p" || true; done
  sleep 1
  # The devices' counters (every queue: the programs send on theirs
  # directly): what one end put on the memif link the other end received,
  # or counted as missed or in error.
  local a_tx a_rx a_lost b_tx b_rx b_lost
  read -r a_tx a_rx a_lost < <(port_counters "$DA")
  read -r b_tx b_rx b_lost < <(port_counters "$DB")
  say "frames on the link: A sent $a_tx, B received $b_rx (+$b_lost missed/errors);" \
    "B sent $b_tx, A received $a_rx (+$a_lost missed/errors)"
  [ -n "$a_tx" ] && [ "$a_tx" -gt 0 ] || problem "no port counters from $DA"
  [ "$a_tx" = $((b_rx + b_lost)) ] || problem "A sent $a_tx frames, B received $b_rx and counted $b_lost"
  [ "$b_tx" = $((a_rx + a_lost)) ] || problem "B sent $b_tx frames, A received $a_rx and counted $a_lost"
  for d in "$DA" "$DB"; do
    say "daemon $d: drops by reason: $(drops_of "$d")"
  done
  for d in a b; do
    local name=$DA
    [ $d = b ] && name=$DB
    for _ in $(seq 50); do
      [ "$(mnd_stat "$name" daemon-field free_leases)" = $((MND_QUEUES - 1)) ] && break
      sleep 0.1
    done
    mnd_figures "$name" "$TMP/end-$d.txt"
    if ! diff <(grep -v -e '^info' -e '^daemon_hugepage_files' "$TMP/start-$d.txt") \
      <(grep -v -e '^info' -e '^daemon_hugepage_files' "$TMP/end-$d.txt") >"$TMP/diff-$d.txt"; then
      problem "daemon $name: figures not back to their start: $(tr '\n' ' ' <"$TMP/diff-$d.txt")"
    fi
    local h0 h1 att
    h0=$(awk '$1 == "info" && $2 == "heap_alloc_bytes" {print $3}' "$TMP/start-$d.txt")
    h1=$(awk '$1 == "info" && $2 == "heap_alloc_bytes" {print $3}' "$TMP/end-$d.txt")
    att=$("$PYTHON" "$MND_STAT" daemon-field "${MND_SOCK[$name]}" attaches)
    say "daemon $name: $att attaches, $(grep -c "^machnetd: reclaimed queue" "$(mnd_log "$name")") reclaims," \
      "heap ${h0:-?} -> ${h1:-?} bytes ($(( (${h1:-0} - ${h0:-0}) / (att > 0 ? att : 1) )) per attach: DPDK's" \
      "per-secondary allocations, never freed; a daemon restart gives them back)"
  done
  mnd_stop "$DA"
  mnd_stop "$DB"
}

start_epoch
restarts=0
next_kill=$(($(date +%s) + KILL_S))
while [ "$(date +%s)" -lt "$END" ]; do
  reap
  [ "$(running_of sockperf)" -ge 2 ] || launch sockperf
  [ "$(running_of redis)" -ge 1 ] || launch redis
  [ "$(running_of msg)" -ge 1 ] || launch msg
  now=$(date +%s)
  if [ "$now" -ge "$next_kill" ]; then
    kill_one
    next_kill=$((now + KILL_S))
  fi
  if [ $restarts -lt 2 ] && [ "$now" -ge $((T0 + (restarts + 1) * MINUTES * 60 / 3)) ]; then
    say "restarting both daemons ($((restarts + 1)) of 2)"
    end_epoch
    start_epoch
    restarts=$((restarts + 1))
  fi
  kill -0 "$STEADY" 2>/dev/null || { problem "the steady client died: $(tail -3 "$TMP/steady.log")"; break; }
  sleep 0.5
done
end_epoch
HP1=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
# The host's free count moves with whatever else runs on the machine; the
# soak's own hugepage files (its daemons' EAL prefixes) must all be gone.
files=0
for d in $(hugetlbfs_dirs); do
  files=$((files + $(find "$d" -maxdepth 1 \( -name "machnetd-$DA-*" -o -name "machnetd-$DB-*" \) | wc -l)))
done
[ "$files" -eq 0 ] || problem "$files hugepage files of the soak's daemons left"
left=$(find /var/run/dpdk -maxdepth 1 \( -name "machnetd-$DA-*" -o -name "machnetd-$DB-*" \) | wc -l)
[ "$left" -eq 0 ] || problem "$left runtime directories of the soak's daemons left in /var/run/dpdk"
echo
echo "soak: $MINUTES min, 2 daemon restarts, a SIGKILL every $KILL_S s"
printf '  %-9s %6s %6s %6s %6s\n' client runs ok killed failed
for w in sockperf redis msg; do
  printf '  %-9s %6s %6s %6s %6s\n' "$w" "${RUNS[$w]}" "${OKS[$w]}" "${KILLS[$w]}" "${FAILS[$w]}"
done
echo "  (clients stopped at an epoch's end, not counted as ok or failed: $STOPPED)"
echo "  steady client: $STEADY_OK round trips answered, over 3 epochs"
echo "  free hugepages on the host: $HP0 at the start, $HP1 at the end; soak hugepage files left: $files"
rmdir "$KEEP" 2>/dev/null || true  # nothing kept: nothing failed
if [ $problems -ne 0 ]; then
  echo "failed clients' logs and machnet-stat at each failure: $KEEP"
  fail "$problems problem(s) (above)"
fi
echo "ok: soak passed"
