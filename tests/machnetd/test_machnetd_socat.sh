#!/usr/bin/env bash
# machnetd: socat's forking UDP server, `socat UDP4-RECVFROM:PORT,fork
# SYSTEM:cat`, unmodified under machnet-run. For every datagram its parent
# peeks (MSG_PEEK) to learn the sender, forks, and closes its socket; the
# child inherits the offloaded socket, takes it over (a lease of its own,
# the port fork-shared), reads the datagram its parent peeked at and echoes
# it through cat. The datagram sat in the parent's queue: the parent's
# engine hands it to the port's shared ring, where the child finds it.
# Two hosts: machnetd on a net_tap port in a namespace whose kernel holds
# the other end (the kernel client's host).
#   - 200 datagrams of 1 to 1400 bytes from a kernel client, one at a time,
#     all echoed byte for byte;
#   - the same client against the same socat on kernel sockets (loopback in
#     the namespace): the round-trip medians, printed, never asserted;
#   - once socat is gone: port, shared rings, leases and pools back to
#     their starting values.
#   - Python's socketserver.ForkingUDPServer (children reply on the
#     inherited socket): 50 requests answered; then machnetd stops under it
#     and it must still be alive a second later.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
command -v socat >/dev/null || fail "socat is not installed (tools/install-deps.sh installs it)"
KIP="$MND_NET.1"
DIP="$MND_NET.2"
TAP="mnsc$$"
PORT=9000
COUNT=${SOCAT_DATAGRAMS:-200}
# socat, its child and a child that is still exiting hold a lease each.
MND_QUEUES=10
trap mnd_cleanup EXIT

mnd_netns_add NS
D="mnsc$$"
mnd_tap "$D" "$NS" "$TAP" "$KIP" "$DIP"
echo "ok: $TAP in $NS: kernel $KIP/24, machnetd $DIP/24"
mnd_figures "$D" "$TMP/start.txt"
joins0=$(mnd_stat "$D" daemon-field shared_joins)
mnd_app "$NS" "$D"

# client HOST NAME: COUNT datagrams of 1..1400 bytes, one at a time, each
# echoed byte for byte within 10 s; prints the round trips' median and p99.
client() {
  ip netns exec "$NS" "$PYTHON" - "$1" "$PORT" "$COUNT" >"$TMP/$2.log" 2>&1 <<'PY'
import os, socket, statistics, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
rtts = []
for i in range(count):
    size = 1 + (i * 7919) % 1400
    msg = (i.to_bytes(4, "big") + os.urandom(size))[:size] if size >= 4 else os.urandom(size)
    t0 = time.monotonic()
    s.sendto(msg, (host, port))
    try:
        got, src = s.recvfrom(2048)
    except socket.timeout:
        sys.exit(f"datagram {i} ({size} bytes): no echo within 10 s")
    rtts.append((time.monotonic() - t0) * 1e3)
    if got != msg:
        sys.exit(f"datagram {i}: echo differs ({len(got)} bytes back, {size} sent)")
    if src[0] != host:
        sys.exit(f"datagram {i}: echo from {src}, not {host}")
rtts.sort()
print(f"client: {count} datagrams echoed byte for byte, round trip median "
      f"{statistics.median(rtts):.1f} ms, p99 {rtts[int(len(rtts) * 0.99) - 1]:.1f} ms")
PY
}

echo "# socat UDP4-RECVFROM:$PORT,fork SYSTEM:cat under machnet-run on $DIP"
start_bg socat "${APP[@]}" socat -d -d UDP4-RECVFROM:$PORT,fork SYSTEM:cat
SOCAT=$LAST_PID
wait_for_line socat "receiving on" 20 || fail "socat did not start: $(tail -3 "$TMP/socat.log")"
client "$DIP" offloaded ||
  fail "kernel client -> socat under machnet-run: $(tail -3 "$TMP/offloaded.log"); socat: $(grep -E ' [EF] ' "$TMP/socat.log" | tail -3)"
offloaded socat
joins=$(($(mnd_stat "$D" daemon-field shared_joins) - joins0))
[ "$joins" -ge "$COUNT" ] ||
  fail "machnetd counted $joins fork-shared joins: not every socat child took its socket over"
echo "ok: offloaded, $joins children took the socket over: $(sed -n 's/^client: //p' "$TMP/offloaded.log")"
stop_bg "$SOCAT" >/dev/null 2>&1 || true
for _ in $(seq 100); do [ "$(mnd_stat "$D" port "$PORT")" = free ] && break; sleep 0.1; done
[ "$(mnd_stat "$D" port "$PORT")" = free ] || fail "port $PORT still held after socat exited"

echo "# the same socat on kernel sockets (loopback in $NS), same client"
start_bg ksocat ip netns exec "$NS" socat UDP4-RECVFROM:$PORT,fork SYSTEM:cat
KSOCAT=$LAST_PID
sleep 0.5
client 127.0.0.1 kernel || fail "kernel client -> kernel socat: $(tail -3 "$TMP/kernel.log")"
echo "ok: kernel: $(sed -n 's/^client: //p' "$TMP/kernel.log")"
stop_bg "$KSOCAT" >/dev/null 2>&1 || true

mnd_figures_back "$D" "$TMP/start.txt" "$TMP/end.txt"
echo "ok: port, shared rings, leases, pools back to their starting values"

# Python's socketserver.ForkingUDPServer: the parent reads each request and
# forks a child that replies on the inherited socket (the child takes it
# over to send). Then machnetd stops under it: the server must outlive the
# daemon (a readiness check read the daemon's shared memory after detach,
# which the daemon's shutdown had unmapped: SIGSEGV in poll()).
cat >"$TMP/forking.py" <<'PY'
import socketserver
class Upper(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data.upper(), self.client_address)
class Server(socketserver.ForkingUDPServer):
    def handle_error(self, request, client_address):
        pass  # ENETDOWN once machnetd is gone: keep serving (and polling)
with Server(("0.0.0.0", 9100), Upper) as s:
    print("serving", flush=True)
    s.serve_forever()
PY
start_bg forking "${APP[@]}" "$PYTHON" "$TMP/forking.py"
FORKING=$LAST_PID
wait_for_line forking "serving" 20 || fail "ForkingUDPServer did not start: $(tail -3 "$TMP/forking.log")"
ip netns exec "$NS" "$PYTHON" - "$DIP" >"$TMP/forking_client.log" 2>&1 <<'PY' ||
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for i in range(50):
    m = f"request {i}".encode()
    s.sendto(m, (sys.argv[1], 9100))
    if s.recvfrom(100)[0] != m.upper():
        sys.exit(f"request {i}: bad reply")
print("50 requests answered by forked children")
PY
  fail "ForkingUDPServer: $(tail -3 "$TMP/forking_client.log")"
echo "ok: ForkingUDPServer under machnet-run: $(cat "$TMP/forking_client.log")"
mnd_stop "$D"
sleep 1
kill -0 "$FORKING" 2>/dev/null ||
  fail "ForkingUDPServer died when machnetd stopped: $(tail -3 "$TMP/forking.log")"
echo "ok: ForkingUDPServer outlived machnetd's shutdown"
stop_bg "$FORKING" >/dev/null 2>&1 || true
echo "PASS"
