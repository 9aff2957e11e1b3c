#!/usr/bin/env bash
# machnetd: stream connections inherited through fork()
# (docs/MACHNETD.md, "Connections across fork"). Two hosts, each a machnetd
# in a network namespace of its own, joined by net_memif; the host
# addresses are on no kernel interface, so a connection that works went
# through the daemons and the transport. Servers on host B under
# machnet-run, clients on host A under machnet-run:
#   - Python's socketserver.ForkingTCPServer (accept, fork, the parent
#     closes its copy, the child serves): 40 connections, 8 at a time, each
#     three 64 KiB requests answered byte for byte, each connection by one
#     child, no two connections by the same process;
#   - socat TCP4-LISTEN:PORT,fork SYSTEM:cat (the child forks again for the
#     shell): 20 connections, 256 KiB echoed after a half close;
#   - a server that forks a helper which execs /bin/true, then serves the
#     connection itself: the parent keeps it (20 connections);
#   - then no service, port, lease or mbuf left on B.
# Before this, a child's use of an inherited connection failed with EBADFD.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
command -v socat >/dev/null || fail "socat is not installed (tools/install-deps.sh installs it)"
APPPY="$SRCDIR/tests/machnetd/fork_conn_app.py"
IP_A="$MND_NET.211"
IP_B="$MND_NET.212"
MND_QUEUES=16
trap mnd_cleanup EXIT

mnd_two_hosts mfc "$IP_A" "$IP_B"

# check NAME MODE PORT N SIZE SERVER_PID: N connections from host A, every
# byte back; MODE client: each connection answered by one process, which
# is not SERVER_PID (forking) or is (keeping: pass "=PID").
check() {
  local name=$1 mode=$2 port=$3 n=$4 size=$5 who=$6
  timeout 300 "${CLI[@]}" "$PYTHON" -u "$APPPY" "$mode" "$IP_B" "$port" "$n" "$size" "$TMP/$name.json" \
    >"$TMP/$name-client.log" 2>&1 || fail "$name: $(tail -3 "$TMP/$name-client.log") $(head -c 600 "$TMP/$name.json" 2>/dev/null)"
  grep -h "connections in" "$TMP/$name-client.log" | sed 's/^/  /'
  "$PYTHON" - "$TMP/$name.json" "$n" "$who" <<'PY' || fail "$name: wrong answers"
import json, sys
r = json.load(open(sys.argv[1]))
n, who = int(sys.argv[2]), sys.argv[3]
got = r["pids"]
print("  connections by answering process:", len(got), "processes,", sum(got.values()), "connections")
ok = not r["errors"] and sum(got.values()) == n
if who.startswith("="):
    ok = ok and set(got) == {who[1:]}
elif who.startswith("!"):
    ok = ok and who[1:] not in got and len(got) == n  # one child per connection
if not ok:
    print("  errors:", r["errors"][:5], "pids:", dict(list(got.items())[:5]))
sys.exit(0 if ok else 1)
PY
}

# serve NAME LINE CMD...: a server on host B, started when its log shows
# LINE, attached to machnetd; sets LAST_PID.
serve() {
  local name=$1 line=$2
  shift 2
  start_bg "$name" "${SRV[@]}" "$@"
  wait_for_line "$name" "$line" 20 || fail "$name did not start: $(tail -3 "$TMP/$name.log")"
  offloaded "$name"
}

echo "# ForkingTCPServer on host B"
serve forking "^listening" "$PYTHON" -u "$APPPY" forking 7020
FP=$LAST_PID
check forking client 7020 40 65536 "!$FP"
grep -q "EBADFD\|cannot be used in the child" "$TMP/forking.log" && fail "forking server: $(grep -m1 EBADFD "$TMP/forking.log")"
echo "ok: ForkingTCPServer: 40 connections, each served by the child forked for it"
stop_bg "$FP" || true

echo "# socat TCP4-LISTEN,fork SYSTEM:cat on host B"
serve socat "listening on" socat -d -d TCP4-LISTEN:7021,fork,reuseaddr SYSTEM:cat
SP=$LAST_PID
check socat raw 7021 20 262144 any
echo "ok: socat TCP4-LISTEN,fork SYSTEM:cat: 20 connections echoed byte for byte after a half close"
stop_bg "$SP" || true

echo "# a server that forks a helper which execs, then serves the connection itself"
serve keeping "^listening" "$PYTHON" -u "$APPPY" keeping 7022
KP=$LAST_PID
check keeping client 7022 20 16384 "=$KP"
echo "ok: the parent kept its connections across fork+exec of a helper: all 20 answered by it"
stop_bg "$KP" || true

mnd_figures_back "$DB" "$TMP/start.txt" "$TMP/end.txt"
echo "ok: figures back to their starting values"
