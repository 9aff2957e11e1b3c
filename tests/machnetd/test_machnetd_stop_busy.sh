#!/usr/bin/env bash
# machnetd stops cleanly (status 0, its files gone, within a bound) while a
# program attached to it is stopped (SIGSTOP) and cannot answer anything:
# freeing hugepage memory one object at a time would make DPDK ask every
# secondary to unmap it and wait 5 s for the stopped one, and the shutdown
# watchdog would end the daemon with status 1 (the same wait hit a program
# exiting just as the daemon freed its rings). Then the program is
# continued: its blocked receive fails with ENETDOWN, and it exits on its
# own, not by a signal.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
mnd_netns_add NS
D="msb$$"
DIP="$MND_NET.2"
mnd_start "$D" "$NS" "net_memif0,role=server,socket=$TMP/memif.sock,socket-abstract=no,id=0" "$DIP/24"
mnd_app "$NS" "$D"

cat >"$TMP/blocked.py" <<'PY'
import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7300))
print("blocked", flush=True)
try:
    s.recvfrom(2048)
    print("recvfrom: data (unexpected)", flush=True)
except OSError as e:
    print("recvfrom:", errno.errorcode.get(e.errno, e.errno), flush=True)
PY
start_bg blocked "${APP[@]}" "$PYTHON" -u "$TMP/blocked.py" "$DIP"
P=$LAST_PID
wait_for_line blocked "^blocked" 20 || fail "the program did not start: $(tail -3 "$TMP/blocked.log")"
offloaded blocked
# The Python process itself (machnet-run execs it: same pid).
kill -STOP "$P"
t0=$(date +%s%N)
mnd_stop "$D"
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q "attached program(s) still running" "$(mnd_log "$D")" ||
  fail "the daemon did not say it left the shared memory to the stopped program"
# The quiesce bound (2 s) plus the rest; DPDK's request timeout alone is 5 s.
[ "$ms" -lt 4500 ] || fail "the daemon took $ms ms to stop"
echo "ok: machnetd stopped in $ms ms with an attached program stopped (SIGSTOP)"
kill -CONT "$P"
rc=0
wait_gone "$P" 20 || rc=$?
[ "$rc" -lt 128 ] || fail "the program ended by signal $((rc - 128)) after the daemon left: $(tail -3 "$TMP/blocked.log")"
grep -q "^recvfrom: ENETDOWN" "$TMP/blocked.log" ||
  fail "the blocked receive did not fail with ENETDOWN: $(tail -3 "$TMP/blocked.log")"
echo "ok: continued, the program's receive failed with ENETDOWN and it exited ($rc)"
echo "PASS"
