#!/usr/bin/env bash
# machnetd: a stop is never a hang. A program killed inside DPDK can leave a
# lock of EAL's shared memory held for good (eal_lock_holder joins the
# daemon's EAL, takes the memory lock and dies with SIGKILL holding it);
# the daemon's own DPDK cleanup then never returns. On SIGTERM the daemon
# must still exit within its bound (5 s) plus slack, say so in its log, and
# leave no hugepage file, runtime directory or socket lock behind.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
HOLDER="$BUILDDIR/tests/machnetd/eal_lock_holder"
[ -x "$HOLDER" ] || fail "$HOLDER not built (make check builds it)"
mnd_netns_add NS
D="mse$$"
mnd_start "$D" "$NS" "net_tap0,iface=mse$$" "$MND_NET.2/24"
rc=0
"$HOLDER" "${MND_PREFIX[$D]}" >"$TMP/holder.log" 2>&1 || rc=$?
grep -q "holding EAL's memory lock" "$TMP/holder.log" || fail "the holder did not take the lock: $(cat "$TMP/holder.log")"
[ $rc -eq 137 ] || fail "the holder exited with status $rc, not by SIGKILL"
echo "ok: a secondary process died holding EAL's memory lock"
# The daemon keeps serving: machnet-stat still answers, a program attaches.
mnd_stat "$D" daemon-field free_leases >/dev/null || fail "machnet-stat no longer answers"
mnd_app "$NS" "$D"
start_bg app "${APP[@]}" "$PYTHON" -c "import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7300))
print('bound', flush=True)
time.sleep(60)"
APP_PID=$LAST_PID
wait_for_line app "bound" 30 || fail "a program could not start after the lock was left held"
offloaded app
stop_bg "$APP_PID" || true
echo "ok: a program still attaches and binds after that"
pid=${MND_PID[$D]}
t0=$(date +%s%N)
kill -TERM "$pid"
rc=0
wait_gone "$pid" 20 || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ $rc -ne 124 ] || fail "machnetd did not exit within 20 s of SIGTERM (stuck in DPDK's cleanup)"
log=$(mnd_log "$D")
grep -q "shutdown stuck inside DPDK" "$log" || fail "no log line about the stuck cleanup: $(tail -3 "$log")"
grep -q "exited without DPDK's cleanup" "$log" || fail "no final log line: $(tail -3 "$log")"
[ $rc -eq 1 ] || fail "machnetd exited with status $rc after a stuck cleanup, expected 1"
[ ! -e "/var/run/dpdk/${MND_PREFIX[$D]}" ] || fail "runtime directory /var/run/dpdk/${MND_PREFIX[$D]} left"
left=0
for d in $(hugetlbfs_dirs); do
  left=$((left + $(find "$d" -maxdepth 1 -name "${MND_PREFIX[$D]}map_*" | wc -l)))
done
[ "$left" -eq 0 ] || fail "$left hugepage files of the daemon left"
echo "ok: machnetd exited $ms ms after SIGTERM with status 1: $(grep -o 'exited without.*' "$log")"
echo "PASS"
