#!/usr/bin/env bash
# The counters of stream sockets, read from live processes with
# machnet-stat --pid (their DPDK telemetry: /machnet/counters and
# /machnet/transport), in the two-host topology with shared-IP engines:
#   - offloaded (preload <-> preload): the client's transport counters move
#     (data segments, a probe answered by machnet, a stream connect);
#   - a preloaded client against kernel servers: every fallback is counted
#     by its reason and printed as such: "no service" (host B runs machnet,
#     but nothing offers that port), "refused" (B runs no machnet: its
#     kernel answers the probe with ICMP port unreachable, which the XDP
#     program steers to A's engine because it quotes one of its ports),
#     "timeout" (B's firewall drops the probe silently), "remembered plain"
#     (the next connect to B, no probe);
#   - a kernel client against a preloaded server: "kernel accepts".
# The held connections (tests/stream/hold_conn.py) keep the processes alive
# while machnet-stat asks them.
. "$(dirname "$0")/lib_stream.sh"
require_root
require_preload_build
STAT="$BUILDDIR/machnet-stat"
HOLD="$SRCDIR/tests/stream/hold_conn.py"
[ -x "$STAT" ] || fail "$STAT not built"
netns_up
OFF=7200 KERN=7201
# Verdicts must not depend on timing: a probe waits 2 s for its answer and
# a verdict is remembered for an hour.
SLOW=("transport.probe_timeout_us = 2000000" "transport.probe_plain_ttl_ms = 3600000"
  "transport.probe_no_service_ttl_ms = 3600000")
stream_config "$TMP/a.conf" "$MN_IF_A" "$MN_IP_A" "${SLOW[@]}"
stream_config "$TMP/b.conf" "$MN_IF_B" "$MN_IP_B"
NS_A=(ip netns exec "$MN_NS_A")
NS_B=(ip netns exec "$MN_NS_B")

# counter PID SECTION KEY: one value of machnet-stat --pid --json.
counter() {
  "$STAT" --pid "$1" --json >"$TMP/stat.json" || fail "machnet-stat --pid $1 --json failed"
  "$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["pid"] == int(sys.argv[2]), d
print(d[sys.argv[3]][sys.argv[4]])' "$TMP/stat.json" "$1" "$2" "$3" ||
    fail "machnet-stat --pid $1: no $2.$3 in $(cat "$TMP/stat.json")"
}
# expect PID SECTION KEY OP N: counter KEY compared with N (-ge, -eq, ...).
expect() {
  local v
  v=$(counter "$1" "$2" "$3")
  [ "$v" "$4" "$5" ] || fail "pid $1: $2.$3 is $v, expected $4 $5"
  echo "  $3 = $v"
}
# hold NAME CONFIG PORT N: a preloaded client on A holding N connections to
# B:PORT; sets HELD (its pid) and GO (the file that lets it finish).
hold() {
  local name=$1 conf=$2 port=$3 n=$4
  GO="$TMP/go_$name"
  preload_in "$MN_NS_A" "$conf"
  start_bg "$name" "${PRE[@]}" "$PYTHON" "$HOLD" client "$MN_IP_B" "$port" "$n" "$GO"
  HELD=$LAST_PID
  wait_for_line "$name" "^held $n" 60 || fail "$name: $(tail -5 "$TMP/$name.log")"
}
release() {
  touch "$GO"
  stop_bg "$HELD" || true
}

preload_in "$MN_NS_B" "$TMP/b.conf"
start_bg srv_off "${PRE[@]}" "$PYTHON" "$HOLD" server "$OFF"
SRV=$LAST_PID
wait_for_line srv_off "listening on" 30
start_bg srv_kern "${NS_B[@]}" "$PYTHON" "$HOLD" server "$KERN"
wait_for_line srv_kern "listening on"

echo "# offloaded: preload <-> preload"
hold offloaded "$TMP/a.conf" "$OFF" 2
"$STAT" --pid "$HELD" >"$TMP/table.txt" || fail "machnet-stat --pid $HELD failed"
sed 's/^/  | /' "$TMP/table.txt"
grep -q "^process $HELD " "$TMP/table.txt" || fail "table: no process line"
grep -Eq "data segments [1-9]" "$TMP/table.txt" || fail "table: no data segments"
expect "$HELD" transport tx_data_segments -ge 2
expect "$HELD" transport probes_machnet -eq 2
expect "$HELD" transport stream_connects -eq 2
expect "$HELD" engine udp_tx -ge 2
release
echo "ok: the transport counters of an offloaded client move"

echo "# preloaded client -> kernel server on a machnet host: no service"
hold no_service "$TMP/a.conf" "$KERN" 2
"$STAT" --pid "$HELD" | tee "$TMP/table.txt" | grep "fallbacks" | sed 's/^/  | /'
grep -q "fallbacks to kernel TCP 2: .*no service 1, remembered plain 1" "$TMP/table.txt" ||
  fail "no service: $(grep fallbacks "$TMP/table.txt")"
expect "$HELD" transport fallback_no_service -eq 1
expect "$HELD" transport fallback_cached -eq 1
expect "$HELD" transport tx_data_segments -eq 0
release
echo "ok: no service, then remembered plain"

echo "# kernel client -> preloaded server: kernel accepts"
"${NS_A[@]}" timeout 60 "$PYTHON" "$HOLD" client "$MN_IP_B" "$OFF" 1 /dev/null >"$TMP/kclient.log" 2>&1 ||
  fail "kernel client: $(cat "$TMP/kclient.log")"
expect "$SRV" transport kernel_accepts -eq 1
expect "$SRV" transport tx_data_segments -ge 2
"$STAT" --pid "$SRV" | grep "kernel accepts 1" >/dev/null || fail "table: no kernel accepts 1"
stop_bg "$SRV" || true
echo "ok: the listener counts the plain TCP client it accepted"

echo "# preloaded client -> kernel server on a plain host: refused"
# B's kernel answers the probe (a UDP datagram to its rendezvous port) with
# ICMP port unreachable; in shared-IP mode the XDP program steers ICMP errors
# quoting the engine's own ports to the engine: one round trip, and never
# the 2 s timeout.
hold plain "$TMP/a.conf" "$KERN" 2
"$STAT" --pid "$HELD" | tee "$TMP/table.txt" | grep "fallbacks" | sed 's/^/  | /'
grep -q "fallbacks to kernel TCP 2: refused 1, timeout 0, no service 0, remembered plain 1," \
  "$TMP/table.txt" || fail "plain host: $(grep fallbacks "$TMP/table.txt")"
expect "$HELD" transport fallback_icmp -eq 1
expect "$HELD" transport fallback_cached -eq 1
expect "$HELD" transport probes_sent -eq 1
release
echo "ok: refused (ICMP, one round trip), then remembered plain"

echo "# a plain host whose firewall drops the probe silently: timeout"
ip netns exec "$MN_NS_B" nft -f - <<NFT
table inet probe_drop {
  chain input {
    type filter hook input priority 0;
    udp dport 14700 drop
  }
}
NFT
stream_config "$TMP/a_fast.conf" "$MN_IF_A" "$MN_IP_A" "transport.probe_timeout_us = 20000" \
  "${SLOW[@]:1}"
hold silent "$TMP/a_fast.conf" "$KERN" 2
"$STAT" --pid "$HELD" | tee "$TMP/table.txt" | grep "fallbacks" | sed 's/^/  | /'
grep -q "fallbacks to kernel TCP 2: refused 0, timeout 1, no service 0, remembered plain 1," \
  "$TMP/table.txt" || fail "silent host: $(grep fallbacks "$TMP/table.txt")"
expect "$HELD" transport fallback_timeout -eq 1
release
ip netns exec "$MN_NS_B" nft delete table inet probe_drop
echo "ok: timeout (20 ms bound here), then remembered plain"

"$STAT" --pid 999999999 >"$TMP/nopid.log" 2>&1 && fail "machnet-stat --pid of no process succeeded"
grep -q "no DPDK telemetry socket of pid" "$TMP/nopid.log" || fail "no pid: $(cat "$TMP/nopid.log")"
echo "PASS"
