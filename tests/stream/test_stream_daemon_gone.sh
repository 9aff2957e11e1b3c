#!/usr/bin/env bash
# Stream calls of a program attached to machnetd when the daemon goes away:
# the engine has failed for good, so a call blocked in accept() or recv()
# returns ENETDOWN (as UDP calls do), and a program waiting for
# connections that ignores the error still dies on SIGTERM. Before the fix
# such a call looked again for ever with signals blocked: the program spun
# and SIGTERM never got through. Every wait here is bounded. machnetd stops
# its port only once the attached program has acknowledged the shutdown.
#   - a Python program connected to its own listener: one thread blocked in
#     recv() on the accepted connection, the main thread in accept();
#   - sockperf server --tcp, blocked in its accept/select loop (a second
#     daemon: one listening program per host).
. "$(dirname "$0")/../machnetd/lib_machnetd.sh"
require_root
require_machnetd_build
command -v sockperf >/dev/null || fail "sockperf is not installed (tools/install-deps.sh installs it)"
mnd_netns_add NS
D="dg$$"
DIP="$MND_NET.2"
mnd_start "$D" "$NS" "net_memif0,role=server,socket=$TMP/memif.sock,socket-abstract=no,id=0" "$DIP/24"
mnd_app "$NS" "$D"

cat >"$TMP/blocked.py" <<'PY'
import errno, socket, sys, threading
ip, port = sys.argv[1], int(sys.argv[2])
name = lambda e: errno.errorcode.get(e.errno, str(e.errno))
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind((ip, port))
l.listen(8)
c = socket.create_connection((ip, port), timeout=10)
a, _ = l.accept()
res = {}
def reader():
    try:
        res["recv"] = "data %r" % a.recv(10)
    except OSError as e:
        res["recv"] = name(e)
t = threading.Thread(target=reader, daemon=True)
t.start()
print("blocked", flush=True)
try:
    l.accept()
    print("accept: a connection", flush=True)
except OSError as e:
    print("accept:", name(e), flush=True)
t.join(10)
print("recv:", res.get("recv", "still blocked"), flush=True)
PY
start_bg blocked "${APP[@]}" "$PYTHON" -u "$TMP/blocked.py" "$DIP" 7400
BP=$LAST_PID
wait_for_line blocked "^blocked" 30 || fail "the Python program did not start: $(tail -5 "$TMP/blocked.log")"
offloaded blocked
sleep 0.5  # in its blocking calls

mnd_stop "$D"
# The shutdown handshake: the port was stopped only after the program (both
# of its threads asleep, its lease parked) was woken and said it had let go.
grep -q "shutdown: every holder stopped using the port" "$(mnd_log "$D")" ||
  fail "machnetd stopped the port without the holder's acknowledgement: $(grep shutdown "$(mnd_log "$D")")"
rc=0
wait_gone "$BP" 20 || rc=$?
if [ "$rc" -eq 124 ]; then
  kill -KILL "$BP"
  fail "accept()/recv() still blocked 20 s after machnetd left: $(tail -3 "$TMP/blocked.log")"
fi
grep -q "^accept: ENETDOWN" "$TMP/blocked.log" || fail "accept: $(tail -3 "$TMP/blocked.log")"
grep -q "^recv: ENETDOWN" "$TMP/blocked.log" || fail "recv: $(tail -3 "$TMP/blocked.log")"
echo "ok: after machnetd left, the blocked $(grep '^accept:' "$TMP/blocked.log"), $(grep '^recv:' "$TMP/blocked.log")"

# One listening program per host (the rendezvous port): sockperf with a
# daemon of its own.
mnd_start "$D" "$NS" "net_memif0,role=server,socket=$TMP/memif.sock,socket-abstract=no,id=0" "$DIP/24"
start_bg sp_srv "${APP[@]}" sockperf server --tcp -i "$DIP" -p 11111
SP=$LAST_PID
wait_for_line sp_srv "listen on" 30 || fail "sockperf server did not start: $(tail -3 "$TMP/sp_srv.log")"
offloaded sp_srv
sleep 0.5
mnd_stop "$D"
sleep 1
# sockperf may end on the error itself; if not, SIGTERM must end it.
kill -TERM "$SP" 2>/dev/null || true
rc=0
wait_gone "$SP" 20 || rc=$?
if [ "$rc" -eq 124 ]; then
  kill -KILL "$SP"
  fail "sockperf server ignored SIGTERM after machnetd left (spinning in a stream call)"
fi
echo "ok: sockperf server ended after machnetd left (status $rc)"
echo "PASS"
