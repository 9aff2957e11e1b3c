#!/usr/bin/env bash
# machnetd: SO_REUSEPORT groups across processes. Two hosts, each a machnetd
# in a network namespace of its own, joined by net_memif (the servers' host
# A needs more leases than a net_tap port can share with other processes:
# four servers and eight members at once; a kernel peer on a tap would
# allow three):
#   - four preloaded echo servers on A (reuseport_app.py serve: SO_REUSEPORT
#     before bind, each its own process and lease) bind one port;
#     machnet-stat shows one group of four members;
#   - a preloaded client on B sends 320 requests over 64 source ports (64
#     flows): every one is answered (none more often than sent), each reply
#     names the server process that took the request, each flow stays with
#     one server, and all four servers got a share;
#   - ICMP: 8 probes, each a flow whose server then sends to the flow's
#     source port, closed meanwhile: the port unreachable that comes back
#     reaches that server (ECONNREFUSED on its connected socket);
#   - kill -9 of one member: machnet-stat shows three members (bounded
#     wait), and 320 requests more are all answered by the remaining three;
#   - five more preloaded servers make 8 members; a 9th process's bind fails
#     with EADDRINUSE;
#   - control protocol by hand (reuseport_app.py ctl): an unknown BIND flag
#     is EINVAL, a bind without the flag EADDRINUSE, the group fills up to 8
#     leases and a 9th is refused (EADDRINUSE), a lease of another uid
#     (nobody; the control socket is mode 0666 here) is refused
#     (EADDRINUSE), a new group when all 256 slots are in use ENOMEM; a
#     preloaded server of that uid is refused too (by the
#     kernel's own reuseport rule, on its twin socket, before machnetd);
#   - once everything is gone: no port, group, lease or mbuf is left on A
#     (machnet-stat's figures back to where they started).
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
ABI="$BUILDDIR/tests/ipc/ipc_abi"
[ -x "$ABI" ] || fail "$ABI not built (make check builds it)"
export MACHNET_IPC_ABI="$ABI"
RP_APP="$SRCDIR/tests/machnetd/reuseport_app.py"
OTHER_USER=nobody
id "$OTHER_USER" >/dev/null 2>&1 || fail "user $OTHER_USER is missing"
command -v setpriv >/dev/null || fail "setpriv is missing (package util-linux)"
IP_A="$MND_NET.201"
IP_B="$MND_NET.202"
PORT=7600
SERVERS=4
FLOWS=64
REQUESTS=320
# Nine leases at once on A (3 servers, 6 control clients), and one that may
# still be in reclaim.
MND_QUEUES=11
# A socket every uid may reach: only the daemon's BIND rules may refuse
# another uid here.
MND_SOCK_DIR="/run/mnrp$$"
rp_cleanup() {
  local rc=$?
  set +e
  rm -rf "$MND_SOCK_DIR"
  (exit $rc)
  mnd_cleanup
}
trap rp_cleanup EXIT
mkdir -m 0755 "$MND_SOCK_DIR"
printf '[machnetd]\nsocket_mode = 0666\n' >"$TMP/machnetd.conf"

mnd_netns_add NS_A
mnd_netns_add NS_B
D="mrpa$$"
DB="mrpb$$"
mnd_memif_pair "$D" "$NS_A" "$IP_A" "$DB" "$NS_B" "$IP_B"
echo "ok: memif link up between $D ($IP_A, servers) and $DB ($IP_B, client), $MND_QUEUES queues each"
mnd_figures "$D" "$TMP/start.txt"
mnd_app "$NS_B" "$DB"
APP_B=("${APP[@]}")
mnd_app "$NS_A" "$D"

# members_are PIDS...: machnet-stat lists exactly these pids as PORT's group
# members, within 5 s.
members_are() {
  local want got
  want=$(printf '%s\n' "$@" | sort -n | tr '\n' ' ' | sed 's/ $//')
  for _ in $(seq 100); do
    got=$(mnd_stat "$D" members "$PORT")
    [ "$got" = "$want" ] && return 0
    sleep 0.05
  done
  echo "machnet-stat: port $PORT members '$got', expected '$want'" >&2
  return 1
}

# round NAME PIDS...: the kernel client's requests, all answered, by the
# servers PIDS only, all of them with a share, each flow by one server.
round() {
  local name=$1
  shift
  timeout 120 "${APP_B[@]}" "$PYTHON" "$RP_APP" client "$IP_A" "$PORT" "$FLOWS" "$REQUESTS" \
    "$TMP/$name.json" >"$TMP/$name.log" 2>&1 || fail "$name: $(tail -3 "$TMP/$name.log")"
  "$PYTHON" - "$TMP/$name.json" "$@" <<'PY' || fail "$name: the replies do not add up (see above)"
import collections, json, sys
res = json.load(open(sys.argv[1]))
want = set(sys.argv[2:])
by_server = collections.Counter(r["server"].split("|")[1] for r in res)
by_flow = collections.defaultdict(set)
for r in res:
    by_flow[r["flow"]].add(r["server"])
bad = 0
if set(by_server) - want:
    print(f"replies from {sorted(set(by_server) - want)}, not a live member")
    bad = 1
if want - set(by_server):
    print(f"servers {sorted(want - set(by_server))} got no share")
    bad = 1
split = [f for f, s in by_flow.items() if len(s) > 1]
if split:
    print(f"{len(split)} flows answered by more than one server: {split[:5]}")
    bad = 1
print("  shares: " + ", ".join(f"pid {p}: {n} requests" for p, n in sorted(by_server.items())) +
      f"; {len(by_flow)} flows, each with one server")
sys.exit(bad)
PY
  echo "ok: $name: $(grep '^client: ' "$TMP/$name.log" | sed 's/^client: //')"
}

echo "# $SERVERS preloaded servers with SO_REUSEPORT on $IP_A:$PORT"
SPIDS=()
for i in $(seq "$SERVERS"); do
  start_bg "srv$i" "${APP[@]}" "$PYTHON" "$RP_APP" serve "s$i" "$PORT"
  SPIDS+=("$LAST_PID")
  wait_for_line "srv$i" "serving on port" 20 ||
    fail "server $i did not start: $(grep -v '^machnet: .*offloading' "$TMP/srv$i.log" | tail -3)"
  offloaded "srv$i"
done
members_are "${SPIDS[@]}" || fail "the group does not list the $SERVERS servers"
"$MACHNET_STAT" --socket "${MND_SOCK[$D]}" >"$TMP/stat1.txt" || fail "machnet-stat failed"
grep -q "^$PORT .*SO_REUSEPORT group [0-9]*: $SERVERS members" "$TMP/stat1.txt" ||
  fail "machnet-stat's table shows no group of $SERVERS on port $PORT: $(grep "^$PORT" "$TMP/stat1.txt")"
for p in "${SPIDS[@]}"; do
  grep -Eq "^$PORT +[0-9]+ +$p +python3 " "$TMP/stat1.txt" || fail "machnet-stat does not list member $p"
done
grep "^$PORT" "$TMP/stat1.txt" | sed 's/^/  /'
echo "ok: $SERVERS servers (pids ${SPIDS[*]}) share port $PORT: one group in machnet-stat"

round round1 "${SPIDS[@]}"
# Each member publishes its own figures for the port; the port's are their sum.
for _ in $(seq 100); do
  read -r total members <<<"$(mnd_stat "$D" group-rx "$PORT")"
  [ "$total" -ge "$REQUESTS" ] 2>/dev/null && break
  sleep 0.05
done
[ "$total" -ge "$REQUESTS" ] 2>/dev/null ||
  fail "machnet-stat: port $PORT received $total datagrams, expected $REQUESTS or more"
sum=0
for m in $members; do sum=$((sum + ${m#*:})); done
[ "$sum" -eq "$total" ] || fail "machnet-stat: the members' figures ($members) do not add up to $total"
echo "ok: machnet-stat: port $PORT received $total datagrams, per member (pid:count) $members"

echo "# ICMP errors about a flow go to the member that took it"
timeout 120 "${APP_B[@]}" "$PYTHON" "$RP_APP" icmp "$IP_A" "$PORT" 8 >"$TMP/icmp.log" 2>&1 ||
  fail "ICMP errors: $(grep '^icmp' "$TMP/icmp.log" | tail -9)"
grep '^icmp: probe' "$TMP/icmp.log" | sed 's/^icmp: /  /'
echo "ok: $(grep '^icmp: [0-9]' "$TMP/icmp.log" | sed 's/^icmp: //')"

echo "# kill -9 of member ${SPIDS[0]}"
kill -KILL "${SPIDS[0]}"
wait "${SPIDS[0]}" 2>/dev/null || true
forget_pid "${SPIDS[0]}"
LEFT=("${SPIDS[@]:1}")
members_are "${LEFT[@]}" || fail "machnet-stat does not show the 3 remaining members"
echo "ok: machnet-stat shows ${#LEFT[@]} members (${LEFT[*]}) after the kill"
round round2 "${LEFT[@]}"

echo "# the group's limits, through the control protocol"
FILL=$((8 - ${#LEFT[@]}))
# Let the killed server's lease come back first: nine leases at once below.
for _ in $(seq 100); do
  [ "$(mnd_stat "$D" daemon-field reclaims)" -ge 1 ] && break
  sleep 0.05
done
"$PYTHON" "$RP_APP" ctl "${MND_SOCK[$D]}" "$PORT" "$FILL" --user "$OTHER_USER" >"$TMP/ctl.log" 2>&1 || {
  sed 's/^/  /' "$TMP/ctl.log"
  fail "control protocol checks failed"
}
sed 's/^/  /' "$TMP/ctl.log"
grep -q "refused BIND of port $PORT held by SO_REUSEPORT group" "$(mnd_log "$D")" ||
  fail "the daemon's log does not name the group in a refusal"
grep -q "with SO_REUSEPORT from pid .*: all 256 group slots in use" "$(mnd_log "$D")" ||
  fail "the daemon's log does not say why a BIND got ENOMEM"
members_are "${LEFT[@]}" || fail "the control clients' members did not leave with their connections"
echo "ok: 8 members at most, 9th refused (EADDRINUSE), another uid refused (EADDRINUSE), no group slot left (ENOMEM); back to ${#LEFT[@]} members"

echo "# preloaded servers up to 8 members, then a 9th process"
EXTRA=()
for i in $(seq $((SERVERS + 1)) $((SERVERS + 8 - ${#LEFT[@]}))); do
  start_bg "srv$i" "${APP[@]}" "$PYTHON" "$RP_APP" serve "s$i" "$PORT"
  EXTRA+=("$LAST_PID")
  wait_for_line "srv$i" "serving on port" 20 ||
    fail "server $i did not start: $(grep -v '^machnet: .*offloading' "$TMP/srv$i.log" | tail -3)"
done
members_are "${LEFT[@]}" "${EXTRA[@]}" || fail "the group does not list 8 members"
full="held by SO_REUSEPORT group [0-9]* (8 of 8 members"
before=$(grep -c "refused BIND of port $PORT $full" "$(mnd_log "$D")")
timeout 60 "${APP[@]}" "$PYTHON" "$RP_APP" try "$PORT" >"$TMP/ninth.log" 2>&1 || true
grep -q "^bind: EADDRINUSE" "$TMP/ninth.log" ||
  fail "a 9th preloaded process joined the group: $(tail -3 "$TMP/ninth.log")"
after=$(grep -c "refused BIND of port $PORT $full" "$(mnd_log "$D")")
[ "$after" -gt "$before" ] || fail "the 9th process was not refused by machnetd (no log line for a full group)"
for p in "${EXTRA[@]}"; do stop_bg "$p" >/dev/null 2>&1 || true; done
members_are "${LEFT[@]}" || fail "the extra servers did not leave the group"
echo "ok: 8 preloaded members; a 9th process's bind fails with EADDRINUSE; back to ${#LEFT[@]} members"

echo "# a preloaded process of uid $OTHER_USER"
# Its configuration where it can read it ($TMP is root's alone).
install -m 0644 "$TMP/attached.conf" "$MND_SOCK_DIR/attached.conf"
ip netns exec "$NS_A" setpriv --reuid="$OTHER_USER" --regid=nogroup --clear-groups \
  env "MACHNET_MACHNETD_SOCKET=${MND_SOCK[$D]}" "$RUN" --preload "$PRELOAD_LIB" \
  --config "$MND_SOCK_DIR/attached.conf" -- "$PYTHON" "$RP_APP" try "$PORT" >"$TMP/other.log" 2>&1 || true
grep -q "^bind: EADDRINUSE" "$TMP/other.log" ||
  fail "a preloaded process of $OTHER_USER joined root's group: $(tail -3 "$TMP/other.log")"
echo "ok: a preloaded process of $OTHER_USER binding port $PORT with SO_REUSEPORT: EADDRINUSE"
round round3 "${LEFT[@]}"

for p in "${LEFT[@]}"; do stop_bg "$p" >/dev/null 2>&1 || true; done
for _ in $(seq 100); do [ "$(mnd_stat "$D" port "$PORT")" = free ] && break; sleep 0.05; done
[ "$(mnd_stat "$D" port "$PORT")" = free ] || fail "port $PORT still held after every server exited"
mnd_figures_back "$D" "$TMP/start.txt" "$TMP/end.txt"
echo "ok: port, groups, leases, pools back to their starting values: $(grep -E '^(ports_held|reuseport_groups|free_leases|pool[0-9]+_in_use) ' "$TMP/end.txt" | tr '\n' ' ')"
mnd_stop "$D"
mnd_stop "$DB"
echo "PASS"
