#!/usr/bin/env bash
# machnetd acceptance: port conflicts, a crashed daemon, a restart.
# machnetd on a net_tap port in namespace A (kernel MND_NET.1 on the tap,
# daemon MND_NET.2), a kernel echo server there; preloaded programs in
# namespaces A and B, all attached to the daemon:
#   - a program in A holds port 7300; one in B (whose kernel would let it
#     bind 7300: only the daemon can refuse) binding 7300 gets EADDRINUSE,
#     the errno a kernel bind gives (checked against two kernel sockets);
#   - sockets that get ephemeral ports, in two programs, get distinct ports,
#     each listed by machnet-stat with its holder's pid;
#   - machnetd is killed with SIGKILL: a program in the middle of sending,
#     with another thread blocked in recvfrom, sees sendto fail with ENETDOWN
#     and the blocked recvfrom return with an error, and exits by itself
#     (bounded by timeout; its exit status is checked);
#   - machnetd restarted with the same --name and --socket while a program
#     of the dead one is still alive: it starts without any manual cleanup
#     (the stale socket is removed; the dead daemon's EAL directory, still
#     mapped by that program, is left), and a new program attaches and
#     passes traffic;
#   - once that program is gone, the next restart removes the dead daemon's
#     EAL directory and hugepage files, and traffic passes again.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
KIP="$MND_NET.1"
DIP="$MND_NET.2"
TAP="mntap$$"
mnd_netns_add NS_A
mnd_netns_add NS_B
D="mnc$$"

# tap_up: the kernel's end of the tap (re)created by a daemon start.
tap_up() {
  # replace: the tap outlives a killed daemon while a program still holds its queue fds
  ip -n "$NS_A" addr replace "$KIP/24" dev "$TAP"
  ip -n "$NS_A" link set "$TAP" up
  wait_for_line "${MND_LOG[$D]}" "link up on net_tap0" 10 || fail "the tap's link did not come up"
}
# traffic LOGNAME: a new preloaded program in A attaches and passes traffic.
traffic() {
  timeout 60 "${APP_A[@]}" "$PYTHON" "$PY_UDP" client blocking "$KIP" 7200 5 >"$TMP/$1.log" 2>&1 ||
    fail "$1: a new program could not pass traffic: $(tail -5 "$TMP/$1.log")"
  offloaded "$1"
  echo "ok: $1: new program attached and passed traffic: $(grep echoed "$TMP/$1.log" | sed 's/^py_udp: //')"
}

mnd_start "$D" "$NS_A" "net_tap0,iface=$TAP" "$DIP/24"
tap_up
start_bg kpeer ip netns exec "$NS_A" "$PYTHON" "$PEER" serve 7200
wait_for_line kpeer "serving on"
mnd_app "$NS_A" "$D"
APP_A=("${APP[@]}")
mnd_app "$NS_B" "$D"
APP_B=("${APP[@]}")

echo "# the same port twice"
kref=$(ip netns exec "$NS_B" "$PYTHON" "$FLOW_APP" bind-same 7300 | sed -n 's/.*second bind of 7300: //p')
[ "$kref" = EADDRINUSE ] || fail "kernel reference: a second bind of 7300 gave '$kref'"
start_bg holder "${APP_A[@]}" "$PYTHON" "$FLOW_APP" bind-hold 7300 2 "$KIP"
HOLDER=$LAST_PID
wait_for_line holder "ready" || fail "the holder of 7300 did not start"
offloaded holder
[ "$(mnd_stat "$D" port 7300)" = "$HOLDER" ] || fail "machnet-stat: 7300 is not held by pid $HOLDER"
timeout 30 "${APP_B[@]}" "$PYTHON" "$FLOW_APP" bind-try 7300 >"$TMP/contender.log" 2>&1 ||
  fail "contender: $(tail -3 "$TMP/contender.log")"
offloaded contender
got=$(sed -n 's/.*bind 7300: //p' "$TMP/contender.log")
[ "$got" = "$kref" ] || fail "a second program binding 7300 got '$got', a kernel bind gives $kref"
echo "ok: 7300 held by pid $HOLDER (namespace A); a program in namespace B binding it gets $got, as the kernel's bind"
timeout 30 "${APP_B[@]}" "$PYTHON" "$FLOW_APP" bind-same 7301 >"$TMP/same.log" 2>&1 || fail "bind-same: $(tail -3 "$TMP/same.log")"
got=$(sed -n 's/.*second bind of 7301: //p' "$TMP/same.log")
[ "$got" = "$kref" ] || fail "one program binding 7301 twice got '$got', a kernel bind gives $kref"
echo "ok: one preloaded program binding 7301 twice gets $got"

echo "# ephemeral ports"
start_bg eph "${APP_A[@]}" "$PYTHON" "$FLOW_APP" bind-hold 7302 3 "$KIP"
EPH=$LAST_PID
wait_for_line eph "ready" || fail "the second port holder did not start"
read -r -a hp <<<"$(sed -n 's/.*: ports //p' "$TMP/holder.log")"
read -r -a ep <<<"$(sed -n 's/.*: ports //p' "$TMP/eph.log")"
all=("${hp[@]:1}" "${ep[@]:1}")
[ "${#all[@]}" -eq 5 ] || fail "expected 5 ephemeral ports, got '${all[*]}'"
[ "$(printf '%s\n' "${all[@]}" | sort -u | wc -l)" -eq 5 ] || fail "ephemeral ports not distinct: ${all[*]}"
for p in "${hp[@]}"; do
  [ "$(mnd_stat "$D" port "$p")" = "$HOLDER" ] || fail "machnet-stat: port $p is not held by pid $HOLDER"
done
for p in "${ep[@]}"; do
  [ "$(mnd_stat "$D" port "$p")" = "$EPH" ] || fail "machnet-stat: port $p is not held by pid $EPH"
done
echo "ok: ephemeral ports ${hp[*]:1} (pid $HOLDER) and ${ep[*]:1} (pid $EPH): distinct, each held by its pid in machnet-stat"
stop_bg "$EPH" || fail "the second port holder exited with an error"

echo "# machnetd killed with SIGKILL under a running program"
start_bg loser timeout 30 "${APP_A[@]}" "$PYTHON" "$FLOW_APP" daemon-loss "$KIP" 7200
LOSER=$LAST_PID
wait_for_line loser "ready: blocked in recvfrom" || fail "the program did not start"
sleep 0.3
OLD_PREFIX=${MND_PREFIX[$D]}
OLD_PID=${MND_PID[$D]}
t_kill=$(date +%s%N)
mnd_kill9 "$D"
rc=0
wait_gone "$LOSER" 30 || rc=$?
t_exit=$(date +%s%N)
sed -n 's/^flow_app\[[0-9]*\]: /  /p' "$TMP/loser.log"
[ $rc -ne 124 ] || fail "the program hung after machnetd died (killed by timeout)"
[ $rc -eq 0 ] || fail "the program exited with status $rc after machnetd died: $(tail -5 "$TMP/loser.log")"
grep -q "machnetd closed the control connection" "$TMP/loser.log" || fail "the engine did not say that machnetd went away"
echo "ok: after SIGKILL of machnetd: sendto -> ENETDOWN, blocked recvfrom -> error, program exited 0" \
  "$(((t_exit - t_kill) / 1000000)) ms after the kill"
kill -0 "$HOLDER" || fail "the holder of 7300 died with machnetd"
[ -d "/var/run/dpdk/$OLD_PREFIX" ] || fail "no EAL directory of the killed daemon to clean up"
[ -S "${MND_SOCK[$D]}" ] || fail "the killed daemon's socket is gone: nothing stale to handle"

echo "# restart with the same --name and --socket, a program of the dead daemon still alive"
mnd_start "$D" "$NS_A" "net_tap0,iface=$TAP" "$DIP/24"
tap_up
grep -q "removed stale control socket ${MND_SOCK[$D]}" "$(mnd_log "$D")" || fail "restart: stale socket not reported removed"
grep -q "stale cleanup: leaving /var/run/dpdk/$OLD_PREFIX: still in use" "$(mnd_log "$D")" ||
  fail "restart: the dead daemon's EAL directory, still mapped by pid $HOLDER, not reported as in use: $(grep stale "$(mnd_log "$D")")"
echo "ok: restarted: stale socket removed, $OLD_PREFIX left (still mapped by pid $HOLDER)"
traffic after_restart
stop_bg "$HOLDER" || fail "the holder of 7300 (attached to the dead daemon) exited with an error"
echo "ok: the dead daemon's program exited cleanly on SIGTERM"

echo "# restart once more: the dead daemon's files are removed"
mnd_stop "$D"
mnd_start "$D" "$NS_A" "net_tap0,iface=$TAP" "$DIP/24"
tap_up
line=$(grep "stale cleanup: removed /var/run/dpdk/$OLD_PREFIX " "$(mnd_log "$D")") ||
  fail "the second restart did not remove $OLD_PREFIX: $(grep stale "$(mnd_log "$D")")"
echo "ok: ${line#machnetd: }"
[ ! -e "/var/run/dpdk/$OLD_PREFIX" ] || fail "/var/run/dpdk/$OLD_PREFIX still there"
for d in $(hugetlbfs_dirs); do
  n=$(find "$d" -maxdepth 1 -name "${OLD_PREFIX}map_*" | wc -l)
  [ "$n" -eq 0 ] || fail "$n hugepage files of the killed daemon (pid $OLD_PID) left in $d"
done
echo "ok: no EAL directory or hugepage file of the killed daemon left"
traffic after_cleanup
mnd_stop "$D"
echo "PASS"
