#!/usr/bin/env bash
# Unmodified programs under the preload in the two-host topology (engine on
# AF_XDP in host A with its own address MN_NET.101, kernel peers in host B):
#   - a preloaded python UDP echo server, a kernel client (1, 1472, 8000 bytes);
#   - the engine of a preloaded program that sleeps answers ARP and ping;
#   - signals sent to the process interrupt a blocking recvfrom;
#   - a preloaded python client (settimeout: poll + non-blocking recvfrom)
#     against a kernel echo server;
#   - flows the rules leave on the kernel (connect side and bind side) still
#     work under the preload, and a process with only such flows never starts
#     the engine.
# sockperf: test_preload_sockperf_*.sh; python and socat: test_preload_python.sh.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
netns_up
ENGINE_IP="$MN_NET.101"
engine_config "$TMP/machnet.conf" \
  "[rules]" \
  "10 = kernel udp connect port 7300" \
  "20 = kernel udp bind port 7301"
preload_in_a "$TMP/machnet.conf"

echo "# preloaded echo server on $ENGINE_IP:7, kernel client in host B"
start_bg server "${PRE_A[@]}" "$PYTHON" "$PEER" serve 7
SERVER=$LAST_PID
wait_for_line server "serving on"
wait_for_line server "machnet: offloading UDP"
ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" client "$ENGINE_IP" 7 1,1472,8000 20 ||
  fail "kernel client <-> preloaded server"
echo "ok: kernel client <-> preloaded python server through the engine, 1/1472/8000 bytes"
stop_bg "$SERVER" || true

echo "# the progress thread: an idle preloaded program still answers ARP and ping"
start_bg idle "${PRE_A[@]}" "$PYTHON" -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7600))
print("bound", flush=True)
time.sleep(30)'
IDLE=$LAST_PID
wait_for_line idle "bound"
ip netns exec "$MN_NS_B" ip neigh flush dev "$MN_IF_B" >/dev/null 2>&1 || true
ip netns exec "$MN_NS_B" ping -c 3 -i 0.2 -W 2 "$ENGINE_IP" >"$TMP/ping.log" 2>&1 ||
  fail "ping $ENGINE_IP while the program sleeps: $(tail -3 "$TMP/ping.log")"
grep -q " 0% packet loss" "$TMP/ping.log" || fail "ping lost packets: $(tail -2 "$TMP/ping.log")"
stop_bg "$IDLE" || true
echo "ok: the engine of a sleeping program answers ARP and ping (progress thread)"

echo "# a process-directed signal ends a blocking recvfrom (EAL's threads block signals)"
start_bg sig "${PRE_A[@]}" "$PYTHON" -c '
import signal, socket
class Stop(Exception):
    pass
def stop(*_):
    raise Stop()
signal.signal(signal.SIGUSR1, stop)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7601))
print("bound", flush=True)
for i in range(5):
    try:
        s.recvfrom(100)
    except Stop:
        print("interrupted", i, flush=True)'
SIG=$LAST_PID
wait_for_line sig "bound"
for _ in 1 2 3 4 5; do
  sleep 0.2
  kill -USR1 "$SIG"
done
wait_for_line sig "interrupted 4" 5 || fail "SIGUSR1 did not interrupt every blocking recvfrom: $(cat "$TMP/sig.log")"
stop_bg "$SIG" || true
echo "ok: 5 of 5 signals to the process ended a blocking recvfrom"

echo "# preloaded client, kernel echo server on $MN_IP_B:7200"
start_bg bserver ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7200
wait_for_line bserver "serving on"
start_bg b7300 ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7300
wait_for_line b7300 "serving on"
"${PRE_A[@]}" "$PYTHON" "$PEER" client "$MN_IP_B" 7200 1,1472,8000 20 \
  >"$TMP/client.log" 2>&1 || fail "preloaded client <-> kernel server: $(tail -5 "$TMP/client.log")"
grep -q "machnet: offloading UDP" "$TMP/client.log" || fail "the client did not start the engine"
saw=$("${PRE_A[@]}" "$PYTHON" "$PEER" whoami "$MN_IP_B" 7200 2>/dev/null)
[ "$saw" = "$ENGINE_IP" ] || fail "the kernel server saw the preloaded client as '$saw', not $ENGINE_IP"
echo "ok: preloaded python client <-> kernel server, seen as $saw"

echo "# flows the rules keep on the kernel"
"${PRE_A[@]}" "$PYTHON" "$PEER" whoami "$MN_IP_B" 7300 >"$TMP/k.out" 2>"$TMP/k.err" ||
  fail "kernel-rule flow: $(cat "$TMP/k.out" "$TMP/k.err")"
[ "$(cat "$TMP/k.out")" = "$MN_IP_A" ] || fail "port 7300 went out as '$(cat "$TMP/k.out")', not the kernel's $MN_IP_A"
grep -q "machnet:" "$TMP/k.err" && fail "a process with only kernel flows started the engine: $(cat "$TMP/k.err")"
echo "ok: connect-side rule: port 7300 stays on the kernel (seen as $MN_IP_A), engine never started"
start_bg kserver "${PRE_A[@]}" "$PYTHON" "$PEER" serve 7301
KSERVER=$LAST_PID
wait_for_line kserver "serving on"
ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" client "$MN_IP_A" 7301 1,1472 5 ||
  fail "bind-side kernel rule: kernel client -> $MN_IP_A:7301"
grep -q "machnet:" "$TMP/kserver.log" && fail "the kernel-rule server started the engine"
stop_bg "$KSERVER" || true
echo "ok: bind-side rule: a preloaded server on port 7301 serves through the kernel"

echo "PASS"
