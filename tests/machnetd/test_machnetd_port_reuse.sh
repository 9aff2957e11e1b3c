#!/usr/bin/env bash
# machnetd: a port the kernel picks for a program is never refused because a
# program that has just died still holds it in the daemon. The namespace's
# ephemeral range is one port, so the kernel must give the second program
# the first one's port: program 1 (preloaded, attached) sends from an
# unbound socket and so holds that port in the daemon; program 2 is started
# and waits with an unbound socket; program 1 is killed with SIGKILL and at
# once program 2 (attached already, through another socket) sends. Its kernel twin gets the port the moment program 1
# is gone, while the daemon is still reclaiming program 1's lease (tens of
# ms): the send must wait for that and succeed (before: EADDRINUSE), and the
# reply must come back on that port.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
KIP="$MND_NET.1"
DIP="$MND_NET.2"
TAP="mnpr$$"
PORT=40123
mnd_netns_add NS
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="$PORT $PORT"
D="mnp$$"
mnd_tap "$D" "$NS" "$TAP" "$KIP" "$DIP"
start_bg kpeer ip netns exec "$NS" "$PYTHON" "$PEER" serve 7200 "$KIP"
wait_for_line kpeer "serving on"
ip netns exec "$NS" ping -c 1 -W 2 "$DIP" >/dev/null || fail "ping $DIP"
mnd_app "$NS" "$D"

cat >"$TMP/prog.py" <<'PY'
import os, socket, sys, time
host, mode, go = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
if mode == "wait":
    # Attached already (another socket's round trip started the engine), so
    # the send below only has to claim its port: well inside the reclaim.
    s0 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s0.settimeout(3)
    s0.bind(("0.0.0.0", 7300))
    s0.sendto(b"warm", (host, 7200))
    s0.recvfrom(100)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
t0 = time.monotonic()
try:
    s.sendto(b"hello", (host, 7200))
    data, _ = s.recvfrom(100)
except OSError as e:
    print(f"error: {e}", flush=True)
    sys.exit(1)
port = s.getsockname()[1]
print(f"reply {data!r} on port {port} after {(time.monotonic() - t0) * 1000:.1f} ms", flush=True)
if mode == "hold":
    time.sleep(600)
PY
rounds=${MND_PORT_REUSE_ROUNDS:-5}
for r in $(seq "$rounds"); do
  rm -f "$TMP/go"
  start_bg "p1-$r" "${APP[@]}" "$PYTHON" "$TMP/prog.py" "$KIP" hold "$TMP/go"
  P1=$LAST_PID
  wait_for_line "p1-$r" "reply b'hello' on port $PORT" 20 || fail "round $r: program 1 got no reply on port $PORT: $(tail -3 "$TMP/p1-$r.log")"
  offloaded "p1-$r"
  [ "$(mnd_stat "$D" port "$PORT")" = "$P1" ] || fail "round $r: the daemon does not show port $PORT held by program 1"
  start_bg "p2-$r" "${APP[@]}" "$PYTHON" "$TMP/prog.py" "$KIP" wait "$TMP/go"
  P2=$LAST_PID
  wait_for_line "p2-$r" "ready" 20 || fail "round $r: program 2 did not start"
  # Reaped: its kernel socket is gone (the port is free for the kernel);
  # the daemon learns of the death only now and reclaims in the background.
  kill -KILL "$P1"
  wait "$P1" 2>/dev/null || true
  touch "$TMP/go"
  forget_pid "$P1"
  rc=0
  wait_gone "$P2" 20 || rc=$?
  [ $rc -eq 0 ] || fail "round $r: program 2 failed (status $rc): $(grep -v '^machnet' "$TMP/p2-$r.log" | tail -2)"
  line=$(grep "^reply" "$TMP/p2-$r.log")
  echo "$line" | grep -q "on port $PORT " || fail "round $r: program 2: $line (expected port $PORT)"
  grep -q "EADDRINUSE\|is the engine's already" "$TMP/p2-$r.log" && fail "round $r: program 2 logged a port conflict"
  echo "ok: round $r: program 1 killed holding port $PORT; program 2 sent at once from the same port: $line"
  for _ in $(seq 100); do [ "$(mnd_stat "$D" port "$PORT")" = free ] && break; sleep 0.05; done
done
mnd_stop "$D"
echo "PASS"
