#!/usr/bin/env bash
# machnetd: stream services of several processes on one host
# (docs/MACHNETD.md, "Stream services"). Two hosts, each a machnetd in a
# network namespace of its own, joined by net_memif; the host addresses are
# on no kernel interface, so a connection that works went through the
# daemons and the transport. On host B:
#   - two unrelated servers on two ports: each client connection is
#     answered by the server of its port (machnet-stat lists both services);
#   - a connect to a port nothing listens on: host B's machnet says "no such
#     service" (a listener's transport answers the SYN the daemon steered to
#     it), the client falls back to kernel TCP, which has no route here:
#     ENETUNREACH, not a timeout;
#   - four servers on one port with SO_REUSEPORT: 64 connections (each from
#     a new client port) spread over all four by flow hash, each answered by
#     the process that accepted it; after a kill -9 of one, 64 more are all
#     answered by the other three;
#   - then no service, port, lease or mbuf left on B.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
APPPY="$SRCDIR/tests/machnetd/stream_service_app.py"
IP_A="$MND_NET.201"
IP_B="$MND_NET.202"
MND_QUEUES=10
trap mnd_cleanup EXIT

mnd_two_hosts mss "$IP_A" "$IP_B"
export MACHNET_STAT

# service_pids PORT: the pids machnet-stat lists as listening on PORT.
service_pids() {
  "$PYTHON" - "${MND_SOCK[$DB]}" "$1" <<'PY'
import json, subprocess, sys, os
j = json.loads(subprocess.run([os.environ["MACHNET_STAT"], "--socket", sys.argv[1], "--json"],
                              capture_output=True, text=True, check=True).stdout)
print(" ".join(sorted(str(m["pid"]) for s in j["services"] if s["port"] == int(sys.argv[2])
                      for m in s["members"])))
PY
}

# start_server NAME PORT [reuseport]: a server on host B; sets LAST_PID.
start_server() {
  start_bg "$1" "${SRV[@]}" "$PYTHON" -u "$APPPY" serve "$2" ${3:-}
  wait_for_line "$1" "^listening" 20 || fail "$1 did not start: $(tail -3 "$TMP/$1.log")"
  offloaded "$1"
}

# check NAME PORT N PIDS...: N connections to PORT from host A, every one
# answered, only by the given pids, each of which answered some.
check() {
  local name=$1 port=$2 n=$3
  shift 3
  timeout 120 "${CLI[@]}" "$PYTHON" -u "$APPPY" connect "$IP_B" "$port" "$n" "$TMP/$name.json" \
    >"$TMP/$name.log" 2>&1 || fail "$name: $(tail -3 "$TMP/$name.log") $(cat "$TMP/$name.json" 2>/dev/null)"
  "$PYTHON" - "$TMP/$name.json" "$n" "$@" <<'PY' || fail "$name: wrong answers"
import json, sys
r = json.load(open(sys.argv[1]))
n, want = int(sys.argv[2]), set(sys.argv[3:])
got = r["pids"]
print("  answers by pid:", ", ".join(f"{p}: {c}" for p, c in sorted(got.items())))
ok = not r["errors"] and sum(got.values()) == n and set(got) == want
if not ok:
    print("  errors:", r["errors"][:5], "expected pids", sorted(want))
sys.exit(0 if ok else 1)
PY
}

echo "# two unrelated servers on host B"
start_server one 7001
P1=$LAST_PID
start_server two 7002
P2=$LAST_PID
[ "$(service_pids 7001)" = "$P1" ] || fail "machnet-stat: service 7001 held by '$(service_pids 7001)', not $P1"
[ "$(service_pids 7002)" = "$P2" ] || fail "machnet-stat: service 7002 held by '$(service_pids 7002)', not $P2"
check conn_one 7001 20 "$P1"
check conn_two 7002 20 "$P2"
echo "ok: two unrelated processes listen through machnetd on one host, each gets its own connections"

echo "# a port nothing listens on"
u0=$(mnd_stat "$DB" daemon-field service_syns_unknown)
got=$(timeout 30 "${CLI[@]}" "$PYTHON" -u "$APPPY" refused "$IP_B" 7003 2>"$TMP/refused.err" | tail -1)
[ "$got" = ENETUNREACH ] || fail "connect to a port nothing listens on ended with '$got', not ENETUNREACH (kernel TCP after machnet's 'no such service'): $(tail -3 "$TMP/refused.err")"
u1=$(mnd_stat "$DB" daemon-field service_syns_unknown)
[ "$u1" -gt "$u0" ] || fail "machnetd did not steer the SYN for an unknown service (service_syns_unknown $u0 -> $u1)"
echo "ok: no such service: the client fell back to kernel TCP (ENETUNREACH here), service_syns_unknown $u0 -> $u1"
check conn_one_again 7001 5 "$P1"
stop_bg "$P1" || true
stop_bg "$P2" || true

echo "# four servers on one port with SO_REUSEPORT"
R=()
for i in 1 2 3 4; do
  start_server "rp$i" 7010 reuseport
  R+=("$LAST_PID")
done
[ "$(service_pids 7010 | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" = "$(printf '%s\n' "${R[@]}" | sort | tr '\n' ' ' | sed 's/ $//')" ] ||
  fail "machnet-stat: service 7010 held by '$(service_pids 7010)', not ${R[*]}"
check reuse1 7010 64 "${R[@]}"
kill -9 "${R[0]}"
wait_gone "${R[0]}" 10 || true
for _ in $(seq 100); do
  [ "$(service_pids 7010 | wc -w)" -eq 3 ] && break
  sleep 0.1
done
[ "$(service_pids 7010 | wc -w)" -eq 3 ] || fail "the killed member did not leave service 7010: $(service_pids 7010)"
check reuse2 7010 64 "${R[@]:1}"
echo "ok: SO_REUSEPORT across 4 processes: connections spread by flow hash, the 3 left take over after a kill -9"
for p in "${R[@]:1}"; do stop_bg "$p" || true; done

mnd_figures_back "$DB" "$TMP/start.txt" "$TMP/end.txt"
[ "$(mnd_stat "$DB" daemon-field stream_services)" = 0 ] || fail "machnetd still lists stream services"
echo "ok: nothing left on $DB (services, ports, leases, pools)"
mnd_stop "$DB"
mnd_stop "$DA"
echo "PASS"
