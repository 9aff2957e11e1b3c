#!/usr/bin/env bash
# machnetd wakes the processes whose threads sleep (parked leases, see
# mn_wake_state in src/ipc/shm.h). Two hosts, each a machnetd in a network
# namespace of its own, joined by net_memif (as test_machnetd_memif.sh). The
# programs never spin (socket.spin_us 0), their blocking calls sleep up to
# 10 s (socket.sleep_us) and their own progress threads look at the port
# only once a second (socket.wake_poll_us and socket.progress_us at their
# maximum, 1 s), so the only timely waker is the daemon's eventfd:
#   - a preloaded server on B, asleep in epoll_wait() between datagrams,
#     and a preloaded client on A, asleep in recvfrom() (0.5 s timeout, then
#     it sends again and counts a retry) exchange N datagrams: every reply
#     must come back, at most N/8 after a retry, and both daemons must count wake-ups
#     for both leases (without them each exchange waits for the 1 s polls
#     and the client's timeout expires every time);
#   - a client with socket.park = no is never woken by its daemon (its lease
#     counts no wake-up) and still gets its replies through its progress
#     thread's polling;
#   - the server, killed with SIGKILL while parked, is reclaimed exactly:
#     host B's pools, rings and leases come back to where they were before
#     it started.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
N=${MND_WAKE_COUNT:-40}
IP_A="$MND_NET.201"
IP_B="$MND_NET.202"
mnd_netns_add NS_A
mnd_netns_add NS_B

DA="mwa$$"
DB="mwb$$"
mnd_memif_pair "$DA" "$NS_A" "$IP_A" "$DB" "$NS_B" "$IP_B"
echo "ok: memif link up between $DA ($IP_A) and $DB ($IP_B)"

# Only the daemon's eventfd wakes these programs in less than a second.
sed '/^\[rules\]$/i socket.spin_us = 0\nsocket.sleep_us = 10000000\nsocket.wake_poll_us = 1000000\nsocket.progress_us = 1000000' \
  "$TMP/attached.conf" >"$TMP/wake.conf"
grep -q "^socket.progress_us = 1000000" "$TMP/wake.conf" || fail "could not write $TMP/wake.conf"
sed 's/^socket.spin_us = 0$/socket.spin_us = 0\nsocket.park = no/' "$TMP/wake.conf" >"$TMP/nopark.conf"
grep -q "^socket.park = no" "$TMP/nopark.conf" || fail "could not write $TMP/nopark.conf"
# The same sleepers, with their progress thread polling every 50 us.
sed -i 's/^socket.wake_poll_us = 1000000$/socket.wake_poll_us = 50/' "$TMP/nopark.conf"

app() { # app NETNS DAEMON CONF: the command prefix (see mnd_app)
  APP=(ip netns exec "$1" env "MACHNET_MACHNETD_SOCKET=${MND_SOCK[$2]}" "$RUN" --preload "$PRELOAD_LIB"
    --config "$3" --)
}

mnd_figures "$DB" "$TMP/start_b.txt"

echo "# a sleeping server on host B, a sleeping client on host A, $N datagrams"
app "$NS_B" "$DB" "$TMP/wake.conf"
start_bg srv "${APP[@]}" "$PYTHON" "$FLOW_APP" serve srv 7401
SRV=$LAST_PID
wait_for_line srv "serving on ports" || fail "server did not start"
offloaded srv
grep -q "wake-ups: by machnetd (parked lease)" "$TMP/srv.log" ||
  fail "server: the start line does not say machnetd wakes it: $(grep 'machnet: offloading' "$TMP/srv.log")"
app "$NS_A" "$DA" "$TMP/wake.conf"
start_bg cli "${APP[@]}" "$PYTHON" "$FLOW_APP" client cli "$IP_B" 7401 "$N" srv --hold --timeout 0.5
CLI=$LAST_PID
wait_for_line cli "holding" 300 || fail "client did not finish"
offloaded cli
line=$(grep "client:" "$TMP/cli.log") || fail "client printed no summary"
echo "ok: ${line#*: }"
# Without the daemon's wake-ups every exchange times out (N retries, seen
# with the eventfd write removed); a rare residual lost wake-up (the
# process parks just as the daemon looks) costs one retry, so a few are
# tolerated.
echo "$line" | grep -q ": $N of $N replies exact from srv .* 0 bad, [0-9]* retries, 0 stray" ||
  fail "not every reply came back exact: $line"
retries=$(echo "$line" | sed -n 's/.* \([0-9]*\) retries.*/\1/p')
[ "${retries:-$N}" -le $((N / 8)) ] ||
  fail "$retries of $N exchanges needed a retry (nobody woke the sleeper): $line"

for side in "$DA:$CLI:client" "$DB:$SRV:server"; do
  IFS=: read -r d pid what <<<"$side"
  w=$(mnd_stat "$d" lease-field "$pid" wakeups)
  [ "$w" -gt 0 ] 2>/dev/null || fail "$what (pid $pid): its lease counts '$w' wake-ups"
  dw=$(mnd_stat "$d" daemon-field wakeups)
  [ "$dw" -ge "$w" ] || fail "daemon $d counts $dw wake-ups, fewer than the $what's lease ($w)"
  echo "ok: $what: $w wake-ups of its lease by $d (daemon total $dw)"
done
"$MACHNET_STAT" --socket "${MND_SOCK[$DB]}" >"$TMP/stat_b.txt" || fail "machnet-stat failed"
grep -Eq "^  wake-ups: [1-9][0-9]* to parked leases" "$TMP/stat_b.txt" ||
  fail "machnet-stat does not show the daemon's wake-ups: $(grep wake-ups "$TMP/stat_b.txt")"
echo "ok: machnet-stat: $(grep wake-ups "$TMP/stat_b.txt" | sed 's/^ *//')"
stop_bg "$CLI" || fail "client exited with an error"

echo "# socket.park = no: the daemon never wakes that client"
app "$NS_A" "$DA" "$TMP/nopark.conf"
start_bg cli2 "${APP[@]}" "$PYTHON" "$FLOW_APP" client cli2 "$IP_B" 7401 "$N" srv --hold
CLI2=$LAST_PID
wait_for_line cli2 "holding" 300 || fail "client cli2 did not finish"
line=$(grep "client:" "$TMP/cli2.log") || fail "client cli2 printed no summary"
echo "$line" | grep -q ": $N of $N replies exact from srv .* 0 bad," || fail "cli2: $line"
grep -q "wake-ups: progress polls every 50 us" "$TMP/cli2.log" ||
  fail "cli2: the start line does not say it polls: $(grep 'machnet: offloading' "$TMP/cli2.log")"
w=$(mnd_stat "$DA" lease-field "$CLI2" wakeups)
[ "$w" = 0 ] || fail "cli2 (socket.park = no): its lease counts $w wake-ups"
echo "ok: cli2 (socket.park = no): ${line#*client: }; 0 wake-ups of its lease"
stop_bg "$CLI2" || fail "client cli2 exited with an error"

echo "# the server, asleep with its lease parked, killed with SIGKILL"
for _ in $(seq 50); do
  [ "$(mnd_stat "$DB" lease-field "$SRV" wake_state)" = parked ] && break
  sleep 0.1
done
[ "$(mnd_stat "$DB" lease-field "$SRV" wake_state)" = parked ] ||
  fail "the idle server's lease is not parked: $(mnd_stat "$DB" lease-field "$SRV" wake_state)"
kill -KILL "$SRV"
wait "$SRV" 2>/dev/null || true
forget_pid "$SRV"
LAST_PID=${MND_PID[$DB]} # wait_for_line watches that process
wait_for_line "${MND_LOG[$DB]}" "reclaimed queue .* of pid $SRV " 10 || fail "the server's lease was not reclaimed"
echo "ok: $(grep "reclaimed queue .* of pid $SRV " "$(mnd_log "$DB")")"
mnd_figures "$DB" "$TMP/end_b.txt"
# Figures that must be back where they were (reclaim test: in-use counts
# are the PMD's business and may move by a few).
diff <(grep -v -e '^info' -e '_in_use ' "$TMP/start_b.txt") \
  <(grep -v -e '^info' -e '_in_use ' "$TMP/end_b.txt") >"$TMP/figures.diff" ||
  fail "host B's figures differ after the reclaim: $(cat "$TMP/figures.diff")"
unacc=$(grep -c "unaccounted" <(grep "reclaimed queue .* of pid $SRV " "$(mnd_log "$DB")") || true)
[ "$unacc" = 0 ] || fail "the reclaim left unaccounted mbufs"
echo "ok: host B's leases, ports, rings and pools are back to their starting figures"
mnd_stop "$DA"
mnd_stop "$DB"
echo "PASS"
