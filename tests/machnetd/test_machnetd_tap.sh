#!/usr/bin/env bash
# machnetd acceptance: the daemon on a net_tap port in a fresh network
# namespace, whose kernel holds the other end of the tap (MND_NET.1/24;
# the daemon is MND_NET.2/24), and preloaded programs attached to it:
#   - the kernel pings the daemon's address (ARP and ICMP echo answered);
#   - a preloaded python client (py_udp.py, blocking and epoll) against a
#     kernel echo server (peer.py): 1, 100, 1472 and 8000 bytes (the last
#     fragmented both ways: the daemon reassembles and steers it), byte for byte;
#   - a preloaded python echo server with a kernel client (peer.py), up to
#     65,507 bytes (45 fragments each way);
#   - machnet-stat's table lists the server's pid, comm and port;
#   - a kernel datagram to a port nobody holds gets ICMP port unreachable
#     from the daemon (ECONNREFUSED on the kernel's connected socket);
#   - once the programs are gone, leases, ports, pools and memory are back
#     to their starting values, and the daemon stops cleanly.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
KIP="$MND_NET.1"
DIP="$MND_NET.2"
TAP="mntap$$"
mnd_netns_add NS
D="mnt$$"
mnd_tap "$D" "$NS" "$TAP" "$KIP" "$DIP"
echo "ok: $TAP in $NS: kernel $KIP/24, machnetd $DIP/24"
mnd_figures "$D" "$TMP/start.txt"

ip netns exec "$NS" ping -c 3 -i 0.2 -W 2 "$DIP" >"$TMP/ping.log" 2>&1 ||
  fail "ping $DIP: $(tail -3 "$TMP/ping.log")"
grep -q " 0% packet loss" "$TMP/ping.log" || fail "ping lost packets: $(tail -2 "$TMP/ping.log")"
ip -n "$NS" neigh show "$DIP" | grep -Eq "REACHABLE|STALE|DELAY" || fail "the kernel did not learn $DIP by ARP"
echo "ok: the kernel pings machnetd's $DIP: $(tail -1 "$TMP/ping.log")"

start_bg kpeer ip netns exec "$NS" "$PYTHON" "$PEER" serve 7200 "$KIP"
KPEER=$LAST_PID
wait_for_line kpeer "serving on"
mnd_app "$NS" "$D"

echo "# preloaded python clients, kernel echo server on $KIP:7200"
for mode in blocking selectors; do
  timeout 60 "${APP[@]}" "$PYTHON" "$PY_UDP" client "$mode" "$KIP" 7200 10 \
    >"$TMP/client_$mode.log" 2>&1 || fail "preloaded $mode client: $(tail -5 "$TMP/client_$mode.log")"
  offloaded "client_$mode"
  echo "ok: preloaded client ($mode): $(grep 'echoed' "$TMP/client_$mode.log" | sed 's/^py_udp: //')"
done
saw=$(timeout 30 "${APP[@]}" "$PYTHON" "$PEER" whoami "$KIP" 7200 2>/dev/null)
[ "$saw" = "$DIP" ] || fail "the kernel server saw the preloaded client as '$saw', not $DIP"
echo "ok: the kernel server sees the preloaded client as $saw (machnetd's address)"

echo "# preloaded python echo server on $DIP:7510, kernel client"
start_bg server "${APP[@]}" "$PYTHON" "$PY_UDP" serve blocking 7510
SERVER=$LAST_PID
wait_for_line server "server on port" || fail "the preloaded server did not start"
ip netns exec "$NS" "$PYTHON" "$PEER" client "$DIP" 7510 1,100,1472,8000,11841,65507 10 \
  >"$TMP/kclient.log" 2>&1 ||
  fail "kernel client <-> preloaded server: $(tail -5 "$TMP/kclient.log")"
offloaded server
echo "ok: kernel client <-> preloaded server: 6 sizes x 10 echoes (8000 to 65,507 bytes fragmented)"

"$MACHNET_STAT" --socket "${MND_SOCK[$D]}" >"$TMP/stat.txt" || fail "machnet-stat failed"
sed 's/^/  /' "$TMP/stat.txt"
grep -Eq "^[0-9]+ +active +$SERVER +python3 " "$TMP/stat.txt" || fail "machnet-stat does not list the server (pid $SERVER) as active"
grep -Eq "^7510 +[0-9]+ +$SERVER +python3 +60 " "$TMP/stat.txt" ||
  fail "machnet-stat does not list port 7510 held by pid $SERVER with 60 datagrams"
echo "ok: machnet-stat lists pid $SERVER (python3), its queue and port 7510 with 60 datagrams"
reassembled=$(mnd_stat "$D" daemon-field reassembled)
[ "$reassembled" -ge 50 ] ||
  fail "machnetd reassembled $reassembled datagrams, expected >= 50 (those of 8000 bytes and more)"
echo "ok: machnetd reassembled $reassembled fragmented datagrams and steered them to their owners"

echo "# ICMP port unreachable"
before=$(mnd_stat "$D" daemon-field icmp_unreachable_tx)
ip netns exec "$NS" "$PYTHON" "$UDP_PEER" refused "$DIP" 7999 >"$TMP/refused.log" 2>&1 ||
  fail "kernel -> $DIP:7999 (nobody holds it): $(cat "$TMP/refused.log")"
after=$(mnd_stat "$D" daemon-field icmp_unreachable_tx)
[ "$after" -gt "$before" ] || fail "machnetd's icmp_unreachable_tx did not grow ($before -> $after)"
echo "ok: kernel datagram to unbound $DIP:7999 -> ECONNREFUSED (machnetd sent $((after - before)) port unreachable)"

stop_bg "$SERVER" || true
stop_bg "$KPEER" || true
for _ in $(seq 50); do
  [ "$(mnd_stat "$D" daemon-field free_leases)" = $((MND_QUEUES - 1)) ] && break
  sleep 0.1
done
mnd_figures "$D" "$TMP/end.txt"
diff <(grep -v '^info' "$TMP/start.txt") <(grep -v '^info' "$TMP/end.txt") ||
  fail "machnetd's leases, ports, pools or memory did not come back to their starting values"
echo "ok: leases, ports, pools, memzones and hugepage files back to their starting values"
grep '^info' "$TMP/end.txt" | sed 's/^info /  /' | tr '\n' ' '
echo
mnd_stop "$D"
echo "PASS"
