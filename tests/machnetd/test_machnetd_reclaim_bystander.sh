#!/usr/bin/env bash
# machnetd: a killed process loses only its own traffic, also while its
# queue is being reclaimed (issue 14, item 5). Two hosts joined by net_memif
# (as test_machnetd_memif.sh): memif pairs the queues of the two ends, so
# what host B's queue 1 sends arrives on host A's RX queue 1, whoever holds
# it.
#   B: a sender S (flow_app blast) takes queue 1 and sends BLAST_N numbered
#      datagrams at BLAST_RATE per second to a receiver on A.
#   A: a victim V (flow_app serve: idle, its lease parked) takes queue 1,
#      the receiver R (flow_app sink) queue 2: every datagram for R arrives
#      on V's queue and is steered to R.
# V is killed with SIGKILL while S sends, with the reclaim's grace period at
# its maximum, 1 s (machnetd.reclaim_grace_ms). R's datagrams keep arriving
# on the dead V's queue meanwhile: the daemon must steer them at once
# instead of leaving them there for the reclaim and dropping them with its
# drain of the RX queue (before: hundreds lost). R may lose at most the one
# burst (32) V had taken off the queue when it died; memif loses nothing.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
BLAST_N=${BLAST_N:-6000}
BLAST_RATE=${BLAST_RATE:-1500}
IP_A="$MND_NET.201"
IP_B="$MND_NET.202"
mnd_netns_add NS_A
mnd_netns_add NS_B
echo "machnetd.reclaim_grace_ms = 1000" >>"$TMP/machnetd.conf"
DA="mba$$"
DB="mbb$$"
mnd_memif_pair "$DA" "$NS_A" "$IP_A" "$DB" "$NS_B" "$IP_B"
mnd_figures "$DA" "$TMP/start-a.txt"

mnd_app "$NS_B" "$DB"
start_bg sender "${APP[@]}" "$PYTHON" "$FLOW_APP" blast "$IP_A" 7700 7100 "$BLAST_RATE" "$BLAST_N" "$TMP/go"
SENDER=$LAST_PID
wait_for_line sender "bound to port" || fail "the sender did not start: $(tail -3 "$TMP/sender.log")"
mnd_app "$NS_A" "$DA"
start_bg victim "${APP[@]}" "$PYTHON" "$FLOW_APP" serve v 7600
VICTIM=$LAST_PID
wait_for_line victim "serving on ports" || fail "the victim did not start"
start_bg sink "${APP[@]}" "$PYTHON" "$FLOW_APP" sink 7700 "$BLAST_N"
SINK=$LAST_PID
wait_for_line sink "listening on port" || fail "the receiver did not start: $(tail -3 "$TMP/sink.log")"
qv=$(mnd_stat "$DA" lease-field "$VICTIM" queue)
qr=$(mnd_stat "$DA" lease-field "$SINK" queue)
qs=$(mnd_stat "$DB" lease-field "$SENDER" queue)
[ "$qv" = "$qs" ] && [ "$qr" != "$qv" ] ||
  fail "queues: victim $qv and receiver $qr on A, sender $qs on B: the sender's datagrams must arrive on the victim's queue"
echo "ok: the sender's datagrams (B queue $qs) arrive on the victim's queue $qv; the receiver holds queue $qr"

touch "$TMP/go"
# A second into the run: the receiver has datagrams before and after.
sleep 1
ms=$(mnd_stat "$DA" kill-wait "$VICTIM" 7600 10000) || fail "the victim's lease was not reclaimed: $ms"
forget_pid "$VICTIM"
echo "ok: victim killed mid-stream, its queue reclaimed in $ms ms"
grep "^machnetd: reclaimed queue $qv " "$(mnd_log "$DA")" | sed 's/^/  /'
LAST_PID=$SENDER
wait_for_line sender "sent $BLAST_N" 60 || fail "the sender did not finish: $(tail -3 "$TMP/sender.log")"
LAST_PID=$SINK
wait_for_line sink "sink: got" 30 || fail "the receiver did not finish: $(tail -3 "$TMP/sink.log")"
line=$(grep -o "sink: .*" "$TMP/sink.log")
echo "receiver: $line"
missing=$(echo "$line" | awk '{print $7}' | tr -d ,)
dups=$(echo "$line" | awk '{print $9}')
[ "$dups" = 0 ] || fail "the receiver got duplicates: $line"
[ -n "$missing" ] && [ "$missing" -le 32 ] ||
  fail "the receiver lost $missing datagrams to another process's death (at most the 32 the victim held may go): $line"
echo "ok: the receiver lost $missing of $BLAST_N datagrams to another process's death: its traffic was steered off the dead queue"
stop_bg "$SENDER" || true
stop_bg "$SINK" || true
mnd_figures_back "$DA" "$TMP/start-a.txt" "$TMP/end-a.txt" "host A's machnet-stat"
echo "ok: host A's leases, ports and pools back to their starting values"
mnd_stop "$DA"
mnd_stop "$DB"
echo "PASS"
