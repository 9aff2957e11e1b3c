#!/usr/bin/env bash
# machnetd: UDP sockets shared by fork() (docs/MACHNETD.md, "Ports shared
# by fork"). Two hosts, each a machnetd in a network namespace of its own,
# joined by net_memif:
#   - a pre-fork server on A (fork_share_app.py serve: bind, then fork 4
#     workers that all recvfrom on the inherited socket, under the preload):
#     each worker takes its socket over at its first call (a lease of its
#     own, MN_CTL_JOIN); machnet-stat shows the port fork-shared by the
#     parent and the 4 workers;
#   - a client on B sends 10,000 requests (ids), 16 outstanding: each is
#     answered exactly once, and every worker answered some;
#   - the same with a kill -9 of one worker after 2,000 answers: the others
#     answer the rest; nothing is answered twice, at most the window (what
#     was in flight towards the dead worker) is lost;
#   - once the server is gone: no port, shared ring, lease or mbuf left on A
#     (machnet-stat's figures back to where they started).
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
APPPY="$SRCDIR/tests/machnetd/fork_share_app.py"
IP_A="$MND_NET.201"
IP_B="$MND_NET.202"
PORT=7700
WORKERS=4
REQUESTS=${FORK_SHARE_REQUESTS:-10000}
WINDOW=16
MND_QUEUES=10
trap mnd_cleanup EXIT

mnd_netns_add NS_A
mnd_netns_add NS_B
D="mfsa$$"
DB="mfsb$$"
mnd_memif_pair "$D" "$NS_A" "$IP_A" "$DB" "$NS_B" "$IP_B"
echo "ok: memif link up between $D ($IP_A, server) and $DB ($IP_B, client)"
mnd_figures "$D" "$TMP/start.txt"
mnd_app "$NS_B" "$DB"
APP_B=("${APP[@]}")
mnd_app "$NS_A" "$D"

# shared_holders: the pids machnet-stat lists as PORT's fork-shared holders.
shared_holders() {
  "$PYTHON" - "${MND_SOCK[$D]}" "$PORT" <<'PY'
import json, subprocess, sys, os
j = json.loads(subprocess.run([os.environ["MACHNET_STAT"], "--socket", sys.argv[1], "--json"],
                              capture_output=True, text=True, check=True).stdout)
for p in j["ports"]:
    if p["port"] == int(sys.argv[2]) and "shared_ring" in p:
        print(" ".join(str(m["pid"]) for m in sorted(p["members"], key=lambda m: m["pid"])))
PY
}
export MACHNET_STAT

# check NAME MAX_LOST [DEAD_PID]: the client's answers: none twice, at most
# MAX_LOST unanswered, every live worker with a share, no answer from a
# process that is not a worker.
check() {
  "$PYTHON" - "$TMP/$1.json" "$2" "${3:-0}" "${WPIDS[@]}" <<'PY' || fail "$1: the answers do not add up (see above)"
import collections, json, sys
res = json.load(open(sys.argv[1]))
max_lost, dead, workers = int(sys.argv[2]), int(sys.argv[3]), set(map(int, sys.argv[4:]))
ans = res["answers"]
by = collections.Counter(p for v in ans.values() for p in v)
bad = 0
twice = [k for k, v in ans.items() if len(v) > 1]
lost = res["requests"] - len(ans)
if twice:
    print(f"{len(twice)} requests answered more than once: {twice[:5]}"); bad = 1
if lost > max_lost:
    print(f"{lost} requests unanswered (at most {max_lost} allowed)"); bad = 1
if set(by) - workers:
    print(f"answers from {sorted(set(by) - workers)}, not a worker"); bad = 1
idle = workers - {dead} - set(by)
if idle:
    print(f"workers {sorted(idle)} answered nothing"); bad = 1
if res["bad"]:
    print(f"{res['bad']} bad replies"); bad = 1
print("  shares: " + ", ".join(f"pid {p}: {n}" for p, n in sorted(by.items())) + f"; {lost} lost")
sys.exit(bad)
PY
}

echo "# a pre-fork server: bind port $PORT, then $WORKERS workers on the inherited socket"
start_bg srv "${APP[@]}" "$PYTHON" "$APPPY" serve "$PORT" "$WORKERS"
SRV=$LAST_PID
wait_for_line srv "serving on port" 20 || fail "the server did not start: $(tail -3 "$TMP/srv.log")"
offloaded srv
read -r -a WPIDS <<<"$(sed -n 's/^serving on port [0-9]*, workers //p' "$TMP/srv.log" | tr ',' ' ')"
[ "${#WPIDS[@]}" -eq "$WORKERS" ] || fail "the server did not name $WORKERS workers"
echo "ok: server $SRV, workers ${WPIDS[*]}"

timeout 300 "${APP_B[@]}" "$PYTHON" "$APPPY" client "$IP_A" "$PORT" "$REQUESTS" "$WINDOW" \
  "$TMP/round1.json" >"$TMP/round1.log" 2>&1 || fail "client: $(tail -3 "$TMP/round1.log")"
check round1 0
echo "ok: round 1: $(grep '^client: ' "$TMP/round1.log" | sed 's/^client: //')"
want=$(printf '%s\n' "$SRV" "${WPIDS[@]}" | sort -n | tr '\n' ' ' | sed 's/ $//')
got=$(shared_holders)
[ "$got" = "$want" ] || fail "machnet-stat: port $PORT fork-shared by '$got', expected '$want'"
echo "ok: machnet-stat: port $PORT fork-shared by $got"

echo "# kill -9 of worker ${WPIDS[0]} after 2000 answers"
timeout 300 "${APP_B[@]}" "$PYTHON" "$APPPY" client "$IP_A" "$PORT" "$REQUESTS" "$WINDOW" \
  "$TMP/round2.json" "${WPIDS[0]}" 2000 >"$TMP/round2.log" 2>&1 ||
  fail "client: $(tail -3 "$TMP/round2.log")"
check round2 "$WINDOW" "${WPIDS[0]}"
echo "ok: round 2: $(grep '^client: ' "$TMP/round2.log" | sed 's/^client: //' | tr '\n' ' ')"

# No worker but the killed one ended on its own (a crash taking the socket
# over would show here).
crashed=$(grep "^worker .* ended (status" "$TMP/srv.log" | grep -v "^worker ${WPIDS[0]} ended (status 9)" || true)
[ -z "$crashed" ] || fail "workers ended: $crashed"
stop_bg "$SRV" >/dev/null 2>&1 || true
for _ in $(seq 100); do [ "$(mnd_stat "$D" port "$PORT")" = free ] && break; sleep 0.05; done
[ "$(mnd_stat "$D" port "$PORT")" = free ] || fail "port $PORT still held after the server exited"
mnd_figures_back "$D" "$TMP/start.txt" "$TMP/end.txt"
echo "ok: port, shared rings, leases, pools back to their starting values: $(grep -E '^(ports_held|shared_[a-z_]+|free_leases|pool[0-9a-z_]+_in_use) ' "$TMP/end.txt" | tr '\n' ' ')"

# FORK_SHARE_BENCH=1: requests/s of the pre-fork server with 1, 2 and 4
# workers, offloaded (memif between the daemons) and on kernel sockets (a
# veth pair between the same namespaces), same client program, same run.
# Printed, never asserted (docs/BENCHMARKS.md).
if [ "${FORK_SHARE_BENCH:-0}" = 1 ]; then
  echo "# benchmark: ${FORK_SHARE_BENCH_SECONDS:-5} s per row, 16 requests outstanding"
  KNET="192.168.$((100 + $$ % 100))"
  ip link add "vfa$$" netns "$NS_A" type veth peer name "vfb$$" netns "$NS_B" ||
    fail "cannot make a veth pair"
  ip -n "$NS_A" addr add "$KNET.1/24" dev "vfa$$" && ip -n "$NS_A" link set "vfa$$" up
  ip -n "$NS_B" addr add "$KNET.2/24" dev "vfb$$" && ip -n "$NS_B" link set "vfb$$" up
  for w in 1 2 4; do
    for mode in offloaded kernel; do
      if [ $mode = offloaded ]; then
        srv=("${APP[@]}") cli=("${APP_B[@]}") host=$IP_A
      else
        srv=(ip netns exec "$NS_A") cli=(ip netns exec "$NS_B") host=$KNET.1
      fi
      start_bg "bsrv$mode$w" "${srv[@]}" "$PYTHON" "$APPPY" serve "$PORT" "$w"
      bpid=$LAST_PID
      wait_for_line "bsrv$mode$w" "serving on port" 20 || fail "bench server did not start"
      # Every worker takes its socket over on its first datagram: warm up.
      timeout 60 "${cli[@]}" "$PYTHON" "$APPPY" bench "$host" "$PORT" 1 16 >/dev/null 2>&1
      r=$(timeout 120 "${cli[@]}" "$PYTHON" "$APPPY" bench "$host" "$PORT" \
        "${FORK_SHARE_BENCH_SECONDS:-5}" 16 2>&1 | sed -n 's/^bench: \([0-9]*\) requests.*/\1/p')
      echo "bench: $mode, $w worker(s): ${r:-?} requests/s"
      stop_bg "$bpid" >/dev/null 2>&1 || true
      for _ in $(seq 100); do [ "$(mnd_stat "$D" port "$PORT")" = free ] && break; sleep 0.05; done
    done
  done
fi
mnd_stop "$D"
mnd_stop "$DB"
echo "PASS"
