#!/usr/bin/env bash
# machnetd acceptance: two hosts, each a machnetd in a network namespace of
# its own, joined by net_memif (A is the memif server, B the client; the
# memif socket is a file in $TMP). Host addresses MND_NET.201 (A) and .202
# (B) are on no kernel interface: every datagram goes through the daemons'
# port. Three preloaded programs on each host, each attached to its host's
# daemon (config: library and rules only):
#   - B: servers srv1..srv3, each on two ports of its own, answering every
#     datagram with its tag prepended;
#   - A: clients cli1..cli3, cli<i> sending N numbered datagrams (16..1400
#     bytes, content derived from tag, port and number) to each port of
#     srv<i>, one at a time.
# Every reply must come from the right server process (tag) and port, byte
# for byte, none missing, none retried (memif loses nothing). The servers
# are started in the order srv3, srv1, srv2 so that queue i on A talks to a
# different queue on B: every datagram crosses a queue that is not its
# owner's and must be steered (the clients attach in order cli1..cli3,
# then start sending together). machnet-stat must list three active leases on
# each host, held by those pids, with the exact datagram counts, and the
# steered figures.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
N=${MND_MEMIF_COUNT:-300}
IP_A="$MND_NET.201"
IP_B="$MND_NET.202"
mnd_netns_add NS_A
mnd_netns_add NS_B

DA="mma$$"
DB="mmb$$"
mnd_memif_pair "$DA" "$NS_A" "$IP_A" "$DB" "$NS_B" "$IP_B"
echo "ok: memif link up between $DA ($IP_A) and $DB ($IP_B)"

echo "# three preloaded servers on host B"
mnd_app "$NS_B" "$DB"
declare -A SRV_PID SRV_PORTS CLI_PID
for i in 3 1 2; do
  SRV_PORTS[$i]="$((7100 + i)),$((7200 + i))"
  start_bg "srv$i" "${APP[@]}" "$PYTHON" "$FLOW_APP" serve "srv$i" "${SRV_PORTS[$i]}"
  SRV_PID[$i]=$LAST_PID
  wait_for_line "srv$i" "serving on ports" || fail "server srv$i did not start"
  offloaded "srv$i"
done
mnd_stat "$DB" expect-leases "${SRV_PID[@]}" || fail "host B: the servers do not hold the leases"

echo "# three preloaded clients on host A, $N datagrams to each of two ports"
mnd_app "$NS_A" "$DA"
# One after the other (cli<i> leases queue i on A), then all at once.
for i in 1 2 3; do
  start_bg "cli$i" "${APP[@]}" "$PYTHON" "$FLOW_APP" client "cli$i" "$IP_B" "${SRV_PORTS[$i]}" "$N" "srv$i" \
    --hold --bind $((7300 + i)) --go "$TMP/go"
  CLI_PID[$i]=$LAST_PID
  wait_for_line "cli$i" "bound to port" || fail "client cli$i did not start"
done
t0=$(date +%s%N)
touch "$TMP/go"
for i in 1 2 3; do
  LAST_PID=${CLI_PID[$i]}
  wait_for_line "cli$i" "holding" 120 || fail "client cli$i did not finish"
done
t1=$(date +%s%N)
for i in 1 2 3; do
  offloaded "cli$i"
  line=$(grep "client:" "$TMP/cli$i.log") || fail "cli$i printed no summary"
  echo "ok: ${line#*: }"
  echo "$line" | grep -q ": $((2 * N)) of $((2 * N)) replies exact from srv$i .* 0 bad, 0 retries, 0 stray" ||
    fail "cli$i: not every datagram was answered exactly once by srv$i: $line"
done
echo "ok: 3 clients x 2 ports x $N datagrams, one at a time each, the three at once: $(((t1 - t0) / 1000000)) ms"

echo "# leases (machnet-stat)"
mnd_stat "$DA" expect-leases "${CLI_PID[@]}" || fail "host A: the clients do not hold the leases"
echo "host A ($DA):"
mnd_stat "$DA" leases | sed 's/^/  /'
echo "host B ($DB):"
mnd_stat "$DB" leases | sed 's/^/  /'
"$MACHNET_STAT" --socket "${MND_SOCK[$DB]}" >"$TMP/stat_b.txt" || fail "machnet-stat (table) failed"
for i in 1 2 3; do
  grep -Eq "^[0-9]+ +active +${SRV_PID[$i]} +python3 " "$TMP/stat_b.txt" ||
    fail "machnet-stat on host B does not list srv$i (pid ${SRV_PID[$i]}) as active: $(cat "$TMP/stat_b.txt")"
  for p in ${SRV_PORTS[$i]//,/ }; do
    grep -Eq "^$p +[0-9]+ +${SRV_PID[$i]} +python3 +$N " "$TMP/stat_b.txt" ||
      fail "machnet-stat on host B: port $p not held by srv$i with $N datagrams: $(grep -E "^$p " "$TMP/stat_b.txt")"
  done
done
grep -Eq "^  heap [1-9][0-9]* KiB, [1-9][0-9]* KiB in [1-9][0-9]* allocations$" "$TMP/stat_b.txt" ||
  fail "machnet-stat on host B shows no heap line: $(head -4 "$TMP/stat_b.txt")"
echo "ok: machnet-stat on host B lists each server's pid, comm and ports with $N datagrams each, and the daemon's heap"

# Per lease: exact datagram counts, and steering where the peer's queue differs.
check_lease() { # DAEMON PID WHAT PEER_QUEUE
  local d=$1 pid=$2 what=$3 peer_q=$4 q udp_rx udp_tx st_in drops
  q=$(mnd_stat "$d" lease-field "$pid" queue)
  udp_rx=$(mnd_stat "$d" lease-field "$pid" udp_rx)
  udp_tx=$(mnd_stat "$d" lease-field "$pid" udp_tx)
  st_in=$(mnd_stat "$d" lease-field "$pid" steered_in)
  drops=$(mnd_stat "$d" lease-field "$pid" steer_drops)
  [ "$udp_rx" -eq $((2 * N)) ] && [ "$udp_tx" -eq $((2 * N)) ] ||
    fail "$what (queue $q): udp_rx $udp_rx udp_tx $udp_tx, expected $((2 * N)) each"
  [ "$drops" -eq 0 ] || fail "$what (queue $q): $drops steer drops"
  [ "$q" != "$peer_q" ] || fail "$what and its peer both on queue $q: nothing to steer"
  # Everything it received arrived on its peer's queue number: steered.
  [ "$st_in" -ge $((2 * N)) ] || fail "$what (queue $q, peer on queue $peer_q): steered_in $st_in < $((2 * N))"
  echo "ok: $what: queue $q (peer queue $peer_q), udp_rx $udp_rx, udp_tx $udp_tx, steered_in $st_in"
}
for i in 1 2 3; do
  qa=$(mnd_stat "$DA" lease-field "${CLI_PID[$i]}" queue)
  qb=$(mnd_stat "$DB" lease-field "${SRV_PID[$i]}" queue)
  check_lease "$DA" "${CLI_PID[$i]}" "host A cli$i" "$qb"
  check_lease "$DB" "${SRV_PID[$i]}" "host B srv$i" "$qa"
done
steered_a=$(mnd_stat "$DA" daemon-field steered)
steered_b=$(mnd_stat "$DB" daemon-field steered)
echo "ok: daemons steered $steered_a (A) and $steered_b (B) frames themselves (free queues, ARP)"

echo "# stop the programs: their exit status and counts"
for i in 1 2 3; do
  stop_bg "${CLI_PID[$i]}" || fail "cli$i exited with an error"
done
for i in 1 2 3; do
  stop_bg "${SRV_PID[$i]}" || fail "srv$i exited with an error"
  served=$(grep -o "served .*" "$TMP/srv$i.log") || fail "srv$i printed no summary"
  want="served $((7100 + i)):$N $((7200 + i)):$N"
  [ "$served" = "$want" ] || fail "srv$i: $served, expected $want"
  echo "ok: srv$i $served"
done
for d in "$DA" "$DB"; do
  for _ in $(seq 50); do
    [ "$(mnd_stat "$d" daemon-field free_leases)" = $((MND_QUEUES - 1)) ] && break
    sleep 0.1
  done
  [ "$(mnd_stat "$d" daemon-field free_leases)" = $((MND_QUEUES - 1)) ] || fail "$d: leases not all free after the programs exited"
done
echo "ok: every lease free again on both hosts"
# The devices' counters (port_stats: every queue, the programs' own
# included): what one end put on the link the other end received, and at
# least the 2 x 3 x 2N datagrams of the clients crossed it each way.
port_stat() { "$MACHNET_STAT" --socket "${MND_SOCK[$1]}" --json |
  "$PYTHON" -c "import json, sys; print(json.load(sys.stdin)['daemon']['port_stats']['$2'])"; }
a_tx=$(port_stat "$DA" opackets) a_rx=$(port_stat "$DA" ipackets)
b_tx=$(port_stat "$DB" opackets) b_rx=$(port_stat "$DB" ipackets)
[ "$a_tx" = "$b_rx" ] && [ "$b_tx" = "$a_rx" ] ||
  fail "port counters: A sent $a_tx, B received $b_rx; B sent $b_tx, A received $a_rx"
[ "$a_tx" -ge $((6 * N)) ] && [ "$b_tx" -ge $((6 * N)) ] ||
  fail "port counters: A sent $a_tx, B $b_tx frames: fewer than the $((6 * N)) datagrams each way"
echo "ok: port counters: A sent $a_tx frames, B received $b_rx; B sent $b_tx, A received $a_rx"
mnd_stop "$DA"
mnd_stop "$DB"
echo "PASS"
