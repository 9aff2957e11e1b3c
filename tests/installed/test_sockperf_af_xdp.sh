#!/usr/bin/env bash
# sockperf ping-pong between the two hosts of machnet-netns, both ends
# unmodified sockperf under the installed machnet-run, each with a standalone
# engine on AF_XDP (own addresses MN_NET.101 and .102) loading the installed
# XDP program: the run must finish with no lost, duplicated or reordered
# message, and both processes must map machnet's libraries from the
# package's directory only. Figures printed, never asserted.
. "$(dirname "$0")/lib.sh"
require_hugepages
command -v sockperf >/dev/null || fail "sockperf is not installed"

TOPOLOGY="mni$$"
machnet-netns up --name "$TOPOLOGY" --env "$TMP/netns.env" >/dev/null || fail "machnet-netns up"
# shellcheck disable=SC1091
. "$TMP/netns.env"
for side in A B; do
  if_var=MN_IF_$side
  host=$([ $side = A ] && echo 101 || echo 102)
  cat >"$TMP/$side.conf" <<EOC
# the engine of host $side: standalone on AF_XDP, its own address
machnetd = off
device = net_af_xdp0,iface=${!if_var},start_queue=0,queue_count=1
ip = $MN_NET.$host/$MN_PREFIX_LEN
EOC
done
cpus=$(nproc)
cpu_server=0 cpu_client=$((cpus > 1 ? 1 : 0))

start_bg server ip netns exec "$MN_NS_B" taskset -c $cpu_server \
  machnet-run --strict --config "$TMP/B.conf" -- sockperf server -i 0.0.0.0 -p 11111
SERVER=$LAST_PID
wait_for_line server "machnet: offloading UDP" 20
wait_for_line server "to block on socket" 20
ip -n "$MN_NS_B" -d link show "$MN_IF_B" | grep -q "prog/xdp" ||
  fail "no XDP program on $MN_IF_B: the engine did not attach $LIBDIR/machnet/machnet_xdp.bpf.o"
ok "server on $MN_NET.102 ($MN_IF_B, XDP program attached): $(grep -o 'machnet: offloading UDP.*' "$TMP/server.log" | head -1)"

# Host A's kernel reaches the server's engine (ARP and ICMP echo answered by it).
ip netns exec "$MN_NS_A" ping -c 3 -i 0.2 -W 2 "$MN_NET.102" >"$TMP/ping.log" 2>&1 ||
  fail "host A's kernel cannot ping the server's engine $MN_NET.102: $(tail -3 "$TMP/ping.log")"

start_bg client ip netns exec "$MN_NS_A" taskset -c $cpu_client \
  machnet-run --strict --config "$TMP/A.conf" -- sockperf ping-pong -i "$MN_NET.102" -p 11111 -t 3 -m 64
CLIENT=$LAST_PID
wait_for_line client "machnet: offloading UDP" 20
maps_only_installed "$SERVER"
maps_only_installed "$CLIENT"
rc=0
for _ in $(seq 300); do kill -0 "$CLIENT" 2>/dev/null || break; sleep 0.1; done
wait "$CLIENT" || rc=$?
PIDS=("$SERVER")
[ $rc -eq 0 ] || fail "sockperf ping-pong exited $rc"
log=$TMP/client.log
grep -q "Summary: Latency is" "$log" ||
  fail "sockperf printed no latency summary; host A neighbours: $(ip -n "$MN_NS_A" neigh show | tr '\n' ';')"
grep -q "# dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0" "$log" ||
  fail "sockperf reports lost messages: $(grep 'dropped messages' "$log")"
obs=$(grep -oE "Total [0-9]+ observations" "$log" | awk '{print $2}')
[ "${obs:-0}" -gt 0 ] || fail "no observation"
kill -0 "$SERVER" 2>/dev/null || fail "the server died"
stop_bg "$SERVER" || true
p50=$(grep -E "percentile 50.000 =" "$log" | awk '{print $NF}')
p99=$(grep -E "percentile 99.000 =" "$log" | awk '{print $NF}')
ok "sockperf ping-pong $MN_NET.101 -> $MN_NET.102 over AF_XDP, both ends under machnet-run: $obs observations, p50 $p50 us, p99 $p99 us, nothing lost"
