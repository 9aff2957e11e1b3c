#!/usr/bin/env bash
# Python 3 UDP programs and socat under machnet-run in the two-host topology
# (engine on AF_XDP in host A with its own address MN_NET.101, kernel peers
# in host B). tests/preload/py_udp.py in each waiting style: blocking,
# non-blocking, selectors (epoll, poll, select) and asyncio:
#   - as a preloaded client against a kernel echo server: every echo of
#     1, 100, 1472 and 8000 bytes back byte for byte, from the server;
#   - as a preloaded echo server, with a kernel client (peer.py);
# then socat as a preloaded client (UDP:) and as a preloaded server
# (UDP-LISTEN: ... PIPE). Every preloaded run must have started the engine.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
command -v socat >/dev/null || fail "socat is not installed (tools/install-deps.sh installs it)"
netns_up
ENGINE_IP="$MN_NET.101"
PY_UDP="$SRCDIR/tests/preload/py_udp.py"
engine_config "$TMP/machnet.conf"
preload_in_a "$TMP/machnet.conf"
MODES="blocking nonblocking selectors selectors-poll selectors-select asyncio"

start_bg kserver ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7200
wait_for_line kserver "serving on"

echo "# preloaded python clients, kernel echo server on $MN_IP_B:7200"
for mode in $MODES; do
  timeout 30 "${PRE_A[@]}" "$PYTHON" "$PY_UDP" client "$mode" "$MN_IP_B" 7200 5 \
    >"$TMP/client_$mode.log" 2>&1 || fail "python $mode client: $(tail -5 "$TMP/client_$mode.log")"
  grep -q "machnet: offloading UDP" "$TMP/client_$mode.log" || fail "python $mode client did not offload"
  echo "ok: preloaded python client ($mode): $(grep 'echoed' "$TMP/client_$mode.log" | sed 's/^py_udp: //')"
done

echo "# preloaded python servers on $ENGINE_IP, kernel client in host B"
port=7510
for mode in $MODES; do
  port=$((port + 1))
  start_bg "server_$mode" "${PRE_A[@]}" "$PYTHON" "$PY_UDP" serve "$mode" "$port"
  SPID=$LAST_PID
  wait_for_line "server_$mode" "server on port" || fail "python $mode server did not start"
  ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" client "$ENGINE_IP" "$port" 1,100,1472,8000 5 \
    >"$TMP/kclient_$mode.log" 2>&1 ||
    fail "kernel client <-> preloaded python $mode server: $(tail -5 "$TMP/kclient_$mode.log")"
  grep -q "machnet: offloading UDP" "$TMP/server_$mode.log" || fail "python $mode server did not offload"
  stop_bg "$SPID" || true
  echo "ok: preloaded python server ($mode): 4 x 5 echoes to a kernel client"
done

echo "# socat"
out=$(printf 'hello from socat\n' | timeout 20 "${PRE_A[@]}" socat -t 2 - "UDP:$MN_IP_B:7200" 2>"$TMP/socat_client.err") ||
  fail "socat client: $(cat "$TMP/socat_client.err")"
[ "$out" = "hello from socat" ] || fail "socat client got '$out'"
grep -q "machnet: offloading UDP" "$TMP/socat_client.err" || fail "socat client did not offload"
saw=$(printf 'whoami' | timeout 20 "${PRE_A[@]}" socat -t 2 - "UDP:$MN_IP_B:7200" 2>/dev/null)
[ "$saw" = "$ENGINE_IP" ] || fail "the kernel server saw the socat client as '$saw', not $ENGINE_IP"
echo "ok: preloaded socat client (UDP:) <-> kernel server, seen as $saw"
start_bg socat_server "${PRE_A[@]}" socat -d -d "UDP-LISTEN:7520,reuseaddr" PIPE
SOCAT=$LAST_PID
wait_for_line socat_server "listening on" || fail "socat server did not start"
ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" client "$ENGINE_IP" 7520 1,100,1472 5 \
  >"$TMP/socat_kclient.log" 2>&1 || fail "kernel client <-> preloaded socat server: $(tail -5 "$TMP/socat_kclient.log")"
grep -q "machnet: offloading UDP" "$TMP/socat_server.log" || fail "socat server did not offload"
stop_bg "$SOCAT" || true
echo "ok: preloaded socat server (UDP-LISTEN, PIPE): 3 x 5 echoes to a kernel client"
echo "PASS"
