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

# ICMP port unreachable from host B's kernel reaches a connected offloaded
# socket as ECONNREFUSED on its next receive, as with a kernel socket (which
# also needs no IP_RECVERR for a connected socket).
refused_py='import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3)
s.connect((sys.argv[1],int(sys.argv[2]))); s.send(b"anyone?")
try:
    s.recv(100); print("answered")
except ConnectionRefusedError: print("refused")
except socket.timeout: print("timeout")'
out=$(timeout 20 "${PRE_A[@]}" "$PYTHON" -c "$refused_py" "$MN_IP_B" 7999 2>"$TMP/refused.err") ||
  fail "refused check: $(cat "$TMP/refused.err")"
grep -q "machnet: offloading UDP" "$TMP/refused.err" || fail "refused check did not offload"
[ "$out" = refused ] || fail "a connected offloaded socket to a closed port got '$out', not ECONNREFUSED"
echo "ok: ICMP port unreachable -> ECONNREFUSED on a connected offloaded socket"

# Wake-ups: no spinning and a 10 s backstop on every sleep, so each receive
# and each selector wait sleeps at once and returns in time only if the
# engine side wakes it on arrival (the eventfd written by the progress
# thread). 10 echoes of 4 sizes per mode, answered 2 ms late; the client waits 1 s per reply
# before it looks again: without a wake-up every receive is late.
echo "# wake-ups on arrival (socket.spin_us 0, socket.sleep_us 10 s, replies 2 ms late)"
start_bg kserver_late ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7201 0.0.0.0 2
wait_for_line kserver_late "serving on"
for mode in blocking selectors selectors-poll selectors-select asyncio; do
  MACHNET_SOCKET_SPIN_US=0 MACHNET_SOCKET_SLEEP_US=10000000 timeout 120 "${PRE_A[@]}" \
    "$PYTHON" "$PY_UDP" client "$mode" "$MN_IP_B" 7201 10 >"$TMP/wake_$mode.log" 2>&1 ||
    fail "python $mode client without spinning was not woken: $(tail -5 "$TMP/wake_$mode.log")"
  grep -q "socket.spin_us 0, socket.sleep_us 10000000" "$TMP/wake_$mode.log" ||
    fail "python $mode client did not run with spin 0 / sleep 10 s: $(head -3 "$TMP/wake_$mode.log")"
  # A receive that is never woken waits out its 1 s timeout (then finds the
  # reply): a reply sent 2 ms later must be taken long before 0.5 s. The
  # first datagram may wait for ARP.
  late=$(sed -n 's/.* resent, \([0-9]*\) late/\1/p' "$TMP/wake_$mode.log")
  [ -n "$late" ] && [ "$late" -le 1 ] ||
    fail "python $mode client without spinning: receives not woken on arrival ($(grep echoed "$TMP/wake_$mode.log"))"
  echo "ok: woken on arrival ($mode): $(grep 'echoed' "$TMP/wake_$mode.log" | sed 's/^py_udp: //')"
done
port=7530
start_bg wake_server env MACHNET_SOCKET_SPIN_US=0 MACHNET_SOCKET_SLEEP_US=10000000 \
  "${PRE_A[@]}" "$PYTHON" "$PY_UDP" serve blocking "$port"
WPID=$LAST_PID
wait_for_line wake_server "server on port" || fail "python wake-up server did not start"
timeout 60 ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" client "$ENGINE_IP" "$port" 1,100,1472,8000 20 \
  >"$TMP/wake_kclient.log" 2>&1 || fail "preloaded server without spinning was not woken: $(tail -5 "$TMP/wake_kclient.log")"
stop_bg "$WPID" || true
echo "ok: preloaded blocking server without spinning woken on arrival: 4 x 20 echoes"

# Spinners: four threads block in poll() (Python's socket timeouts) on four
# offloaded sockets with a 2 s spin. With socket.spinners 1 one of them
# spins and three sleep at once (spin_refused, machnet-stat --pid); with 4,
# none is refused.
echo "# at most socket.spinners threads spin at once"
cat >"$TMP/spinners.py" <<'PY'
import socket, sys, threading
socks = []
for i in range(4):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 7610 + i))
    s.settimeout(4)
    socks.append(s)
def wait(s):
    try:
        s.recv(100)
    except socket.timeout:
        pass
threads = [threading.Thread(target=wait, args=(s,)) for s in socks]
for t in threads:
    t.start()
print("waiting", flush=True)
for t in threads:
    t.join()
PY
for cap in 1 4; do
  start_bg "spinners$cap" env MACHNET_SOCKET_SPIN_US=2000000 MACHNET_SOCKET_SPINNERS=$cap \
    "${PRE_A[@]}" "$PYTHON" "$TMP/spinners.py"
  SPID=$LAST_PID
  wait_for_line "spinners$cap" "waiting" || fail "spinners.py did not start"
  sleep 1
  # The python process is the one that loaded the engine (machnet-run and
  # ip netns exec exec into it, or stay as its parents).
  ppid=""
  for p in $SPID $(pgrep -f "$TMP/spinners.py" || true); do
    [ -d "/proc/$p" ] && grep -q libmachnet.so "/proc/$p/maps" 2>/dev/null && ppid=$p && break
  done
  [ -n "$ppid" ] || fail "no preloaded python process for spinners.py"
  "$BUILDDIR/machnet-stat" --pid "$ppid" --json >"$TMP/spin$cap.json" ||
    fail "machnet-stat --pid $ppid failed: $(cat "$TMP/spin$cap.json")"
  refused=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["transport"]["spin_refused"])' \
    "$TMP/spin$cap.json") || fail "no transport.spin_refused in $(cat "$TMP/spin$cap.json")"
  stop_bg "$SPID" || true
  if [ "$cap" = 1 ]; then
    [ "$refused" -ge 3 ] || fail "socket.spinners 1: $refused of 4 waiting threads slept at once (want 3 or more)"
  else
    [ "$refused" -eq 0 ] || fail "socket.spinners 4: $refused waiting threads were refused a spin"
  fi
  echo "ok: socket.spinners $cap: $refused of 4 waiting threads slept at once"
done
echo "PASS"
