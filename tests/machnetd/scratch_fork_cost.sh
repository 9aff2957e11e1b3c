#!/usr/bin/env bash
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
KIP="$MND_NET.1"
DIP="$MND_NET.2"
TAP="mnfc$$"
MND_QUEUES=10
trap mnd_cleanup EXIT
mnd_netns_add NS
D="mnfc$$"
mnd_tap "$D" "$NS" "$TAP" "$KIP" "$DIP"
mnd_app "$NS" "$D"
cat >"$TMP/fc.py" <<'PY'
import os, socket, sys, time, statistics
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7400))
s.sendto(b"x", (sys.argv[2], 9))
ts = []
for i in range(int(sys.argv[3])):
    r, w = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        s.sendto(b"y", (sys.argv[2], 9))
        os.write(w, str(time.monotonic() - t0).encode())
        os._exit(0)
    os.close(w)
    d = float(os.read(r, 64).decode())
    os.waitpid(pid, 0)
    os.close(r)
    ts.append(d * 1e3)
print("adopt ms: median %.2f min %.2f max %.2f" % (statistics.median(ts), min(ts), max(ts)), [round(t,1) for t in ts[:10]])
PY
start_bg fc "${APP[@]}" "$PYTHON" -u "$TMP/fc.py" "$DIP" "$KIP" 20
P=$LAST_PID
wait_gone "$P" 60 || true
cat "$TMP/fc.log"
if [ -n "${FC_STRACE:-}" ]; then
  ip netns exec "$NS" env "MACHNET_MACHNETD_SOCKET=${MND_SOCK[$D]}" strace -f -tt -o "$TMP/st.txt" "$RUN" --preload "$PRELOAD_LIB" --config "$TMP/attached.conf" -- "$PYTHON" -u "$TMP/fc.py" "$DIP" "$KIP" 2 || true
  cp "$TMP/st.txt" /tmp/scratch/st.txt
fi
mnd_stop "$D"
