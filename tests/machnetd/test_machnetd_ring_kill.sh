#!/usr/bin/env bash
# machnetd: no process killed in the middle of a ring operation may stall
# another process or the daemon. machnetd on a net_tap port in a fresh
# namespace; a preloaded echo server (flow_app.py serve, port 7700) holds a
# lease; a kernel client in the namespace checks it answers. Then
# ring_killer (a DPDK secondary with a lease of its own) reserves ring slots
# and dies with SIGKILL before publishing them, three times:
#   steer: an enqueue on the server's steering ring (the steering copy path)
#   get:   a get from the server's pool (the steering copy's allocation)
#   put:   a put into its own pool (an engine's free of its own mbuf)
#   get0:  a get from the daemon's pool 0 (a steering copy to the daemon)
# After each: its reclaim must be logged, naming the reservation it gave
# back; machnet-stat must answer and count the repair; the server must
# still answer the kernel client (traffic for it is steered by the daemon,
# which uses the server's ring and pool). At the end, with the server
# stopped, every figure of the daemon (pools in use included) must be back
# at its starting value. Without the repair the daemon wedges (steer: in its
# own enqueue on the ring; put: in the sweep; get0: in its RX refill) or the
# server does (get).
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
KILLER="$BUILDDIR/tests/machnetd/ring_killer"
[ -x "$KILLER" ] || fail "$KILLER not built (make check builds it)"
KIP="$MND_NET.1"
DIP="$MND_NET.2"
TAP="mnk$$"
mnd_netns_add NS
# A grace period long enough for traffic to meet each reservation before
# the reclaim gives it back.
echo "machnetd.reclaim_grace_ms = 500" >>"$TMP/machnetd.conf"
D="mnk$$"
mnd_tap "$D" "$NS" "$TAP" "$KIP" "$DIP"
ip netns exec "$NS" ping -c 1 -W 2 "$DIP" >/dev/null || fail "ping $DIP"
sleep 0.2
mnd_figures "$D" "$TMP/start.txt"

mnd_app "$NS" "$D"
start_bg srv "${APP[@]}" "$PYTHON" "$FLOW_APP" serve srv 7700
SRV=$LAST_PID
wait_for_line srv "serving on ports" || fail "the server did not start"
offloaded srv
SRVQ=$(mnd_stat "$D" leases | awk -v p="$SRV" '$5 == p {print $2}')
[ -n "$SRVQ" ] || fail "the server holds no lease: $(mnd_stat "$D" leases)"

# exchange WHAT: the kernel client's datagrams to the server all come back.
exchange() {
  timeout 60 ip netns exec "$NS" "$PYTHON" "$FLOW_APP" client kcli "$DIP" 7700 20 srv \
    >"$TMP/kcli.log" 2>&1 || fail "$1: the server no longer answers: $(tail -3 "$TMP/kcli.log")"
}
exchange "before the kills"
echo "ok: the server (queue $SRVQ, pid $SRV) answers"

n=0
for mode in steer get put get0; do
  n=$((n + 1))
  case $mode in
    put) args=(put) ;;
    get0) args=(get 0) ;;
    *) args=("$mode" 7700) ;;
  esac
  rc=0
  "$KILLER" "${MND_SOCK[$D]}" "${args[@]}" >"$TMP/killer_$mode.log" 2>&1 || rc=$?
  [ $rc -eq 137 ] || fail "$mode: ring_killer exited with status $rc: $(cat "$TMP/killer_$mode.log")"
  kpid=$(sed -n 's/^attached: queue [0-9]* pid \([0-9]*\)$/\1/p' "$TMP/killer_$mode.log")
  kq=$(sed -n 's/^attached: queue \([0-9]*\) pid .*/\1/p' "$TMP/killer_$mode.log")
  echo "ok: $mode: $(grep '^reserved:' "$TMP/killer_$mode.log") (pid $kpid, queue $kq)"
  case $mode in
    steer) want="enqueue mn_steer_$SRVQ (1 slot)" ;;
    get) want="get MP_mn_pool_$SRVQ (1 slot)" ;;
    put) want="put MP_mn_pool_$kq (1 slot)" ;;
    get0) want="get MP_mn_pool_0 (1 slot)" ;;
  esac
  # Traffic while the reservation is still there (the grace period): for
  # the server, which the daemon polls while it sleeps (parked) and steers
  # to when a frame lands on another queue; and datagrams to a port nobody
  # holds, from eight source ports (the tap spreads flows over the queues),
  # which the daemon answers from pool 0 with port unreachable.
  ip netns exec "$NS" "$PYTHON" -c "import socket
for _ in range(8): socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('$DIP', 7999))"
  for f in 1 2 3; do
    timeout 10 ip netns exec "$NS" "$PYTHON" "$FLOW_APP" client "kcli$f" "$DIP" 7700 2 srv \
      --timeout 0.1 >"$TMP/kcli_$f.log" 2>&1 || true
  done
  line=""
  for _ in $(seq 100); do
    line=$(grep "^machnetd: reclaimed queue $kq of pid $kpid " "$(mnd_log "$D")") && break
    sleep 0.1
  done
  [ -n "$line" ] || fail "$mode: no reclaim of pid $kpid within 10 s: $(tail -3 "$(mnd_log "$D")")"
  echo "$line" | grep -qF "gave back half-done ring operations: $want" ||
    fail "$mode: the reclaim did not give back '$want': $line"
  echo "ok: $mode: ${line#machnetd: }"
  got=$(timeout 10 "$PYTHON" "$MND_STAT" daemon-field "${MND_SOCK[$D]}" ring_repairs) ||
    fail "$mode: machnet-stat no longer answers"
  [ "$got" = "$n" ] || fail "$mode: machnet-stat counts $got ring repairs, expected $n"
  exchange "after $mode"
  echo "ok: $mode: machnet-stat counts $got repairs; the server still answers"
done
echo "ok: machnet-stat: $(timeout 10 "$MACHNET_STAT" --socket "${MND_SOCK[$D]}" | grep 'crashed ring')"

# The reclaim's handshake: a live holder inside a steering round when a
# queue's ports are released may still copy into that queue's pool, so the
# sweep waits for the round to end (mn_lease.steer_seq), however long that
# takes, instead of trusting a grace period.
start_bg staller "$KILLER" "${MND_SOCK[$D]}" stall
STALL=$LAST_PID
wait_for_line staller "^stalled" 20 || fail "stall: ring_killer did not start"
rc=0
"$KILLER" "${MND_SOCK[$D]}" put >"$TMP/killer_late.log" 2>&1 || rc=$?
[ $rc -eq 137 ] || fail "late put: ring_killer exited with status $rc: $(cat "$TMP/killer_late.log")"
kpid=$(sed -n 's/^attached: queue [0-9]* pid \([0-9]*\)$/\1/p' "$TMP/killer_late.log")
kq=$(sed -n 's/^attached: queue \([0-9]*\) pid .*/\1/p' "$TMP/killer_late.log")
wait_for_line "${MND_LOG[$D]}" "reclaim of queue $kq waits: pid $STALL is still steering" 10 ||
  fail "stall: the reclaim of queue $kq did not wait for pid $STALL's steering round"
sleep 1.5  # three grace periods: still waiting
! grep -q "^machnetd: reclaimed queue $kq of pid $kpid " "$(mnd_log "$D")" ||
  fail "stall: queue $kq was swept while pid $STALL was still inside its steering round"
kill -USR1 "$STALL"
line=""
for _ in $(seq 100); do
  line=$(grep "^machnetd: reclaimed queue $kq of pid $kpid " "$(mnd_log "$D")") && break
  sleep 0.1
done
[ -n "$line" ] || fail "stall: no reclaim of pid $kpid after the steering round ended"
echo "ok: the reclaim of queue $kq waited for pid $STALL's steering round, then: ${line#machnetd: }"
stop_bg "$STALL" || fail "the staller exited with an error"
exchange "after the stalled round"

# A live process preempted inside an enqueue on the server's steering ring
# (ring_killer hold: the reservation stays open until SIGUSR1). The daemon,
# steering the client's datagram to the server (polling the parked
# server's RX queue, or another queue), finds the ring mid-operation: the
# frame waits in its deferred list and goes out once the enqueue ends,
# instead of being dropped (the client would then resend after its 5 s
# timeout: a retry). The holder's own RX queue is read by nobody while it
# lives: a client whose flow the tap hashes there is not steered by the
# daemon at all, so the check is made again from a new source port then.
held_ok=""
for attempt in 1 2 3 4 5 6; do
  start_bg "holder$attempt" "$KILLER" "${MND_SOCK[$D]}" hold 7700
  HOLD=$LAST_PID
  wait_for_line "holder$attempt" "^held" 20 || fail "hold: ring_killer did not start: $(cat "$TMP/holder$attempt.log")"
  def0=$(mnd_stat "$D" daemon-field steer_deferred)
  timeout 90 ip netns exec "$NS" "$PYTHON" "$FLOW_APP" client "kheld$attempt" "$DIP" 7700 5 srv --timeout 5 \
    >"$TMP/kheld$attempt.log" 2>&1 &
  KHELD=$!
  for _ in $(seq 60); do
    [ "$(mnd_stat "$D" daemon-field steer_deferred)" -gt "$def0" ] && break
    sleep 0.05
  done
  def1=$(mnd_stat "$D" daemon-field steer_deferred)
  kill -USR1 "$HOLD"
  wait_for_line "holder$attempt" "^released" 20 || fail "hold: the reservation did not end"
  stop_bg "$HOLD" || fail "the holder exited with an error"
  wait "$KHELD" || fail "hold: the client lost replies: $(tail -2 "$TMP/kheld$attempt.log")"
  if [ "$def1" -gt "$def0" ]; then
    grep -q " 0 retries" "$TMP/kheld$attempt.log" ||
      fail "hold: a datagram was lost while the ring was held (the client resent): $(tail -1 "$TMP/kheld$attempt.log")"
    held_ok="steer_deferred $def0 -> $def1: $(tail -1 "$TMP/kheld$attempt.log")"
    break
  fi
  echo "note: attempt $attempt: the client's flow went to the holder's own RX queue; again from another port"
done
[ -n "$held_ok" ] || fail "hold: no client flow was steered by the daemon in 6 attempts"
echo "ok: a frame for a ring held mid-enqueue waited and arrived ($held_ok)"

stop_bg "$SRV" || true
for _ in $(seq 50); do
  [ "$(mnd_stat "$D" daemon-field free_leases)" = $((MND_QUEUES - 1)) ] && break
  sleep 0.1
done
mnd_figures "$D" "$TMP/end.txt"
if ! diff <(grep -v -e '^info' -e '^daemon_hugepage_files' "$TMP/start.txt") \
  <(grep -v -e '^info' -e '^daemon_hugepage_files' "$TMP/end.txt") >"$TMP/figs.diff"; then
  cat "$TMP/figs.diff"
  fail "machnetd's leases, ports, pools or rings did not come back to their starting values (above)"
fi
echo "ok: leases, ports, pools (in use, baseline, ring, unaccounted) back to their starting values"
mnd_stop "$D"
echo "PASS"
