#!/usr/bin/env bash
# Bursts lose nothing the kernel would deliver: sockperf ping-pong with
# bursts of 100 and 200 datagrams (-b), every request of a burst sent before
# any reply is read, so 100/200 datagrams cross host A -> B and then B -> A
# back to back. The same run with both ends on kernel sockets is the
# reference, and both start with empty neighbour tables (the first burst
# waits for ARP: the kernel holds ~270 small datagrams per unresolved
# neighbour). The preloaded pair (engines in both hosts, AF_XDP) must lose
# no more than the kernel pair. A run whose burst never completes (sockperf
# prints no latency summary) counts every unanswered datagram as lost.
# Nothing about timing is asserted.
. "$(dirname "$0")/lib_sockperf.sh"
sockperf_setup

# burst_run PAIRING BURST: prints the datagrams lost by one run.
burst_run() {
  local pairing=$1 burst=$2 srv_pre=() cli_pre=() ip=$MN_IP_B tag="$1, -b$2"
  if [ "$pairing" = preload ]; then
    srv_pre=("$RUN" --preload "$PRELOAD_LIB" --config "$TMP/b.conf" --)
    cli_pre=("$RUN" --preload "$PRELOAD_LIB" --config "$TMP/a.conf" --)
    ip=$MN_NET.102
  fi
  # Cold neighbour tables for the kernel pair too (engines start empty).
  ip -n "$MN_NS_A" neigh flush all
  ip -n "$MN_NS_B" neigh flush all
  start_bg "srv_${pairing}_$burst" ip netns exec "$MN_NS_B" taskset -c "$SP_CPU_SERVER" \
    "${srv_pre[@]}" sockperf server -i 0.0.0.0 -p "$SP_PORT" >&2
  local spid=$LAST_PID
  wait_for_line "srv_${pairing}_$burst" "to block on socket" 15 >&2 ||
    fail "$tag: the server did not start"
  local log="$TMP/cli_${pairing}_$burst.log"
  timeout 30 ip netns exec "$MN_NS_A" taskset -c "$SP_CPU_CLIENT" "${cli_pre[@]}" \
    sockperf ping-pong -i "$ip" -p "$SP_PORT" -t "$SP_SECONDS" -m 64 -b "$burst" >"$log" 2>&1 ||
    fail "$tag: sockperf failed: $(tail -5 "$log")"
  if [ "$pairing" = preload ]; then
    grep -q "machnet: offloading UDP" "$log" || fail "$tag: the client did not offload"
    grep -q "machnet: offloading UDP" "$TMP/srv_${pairing}_$burst.log" ||
      fail "$tag: the server did not offload"
  fi
  kill -0 "$spid" 2>/dev/null || fail "$tag: the server died"
  stop_bg "$spid" >&2 || true
  local sent recv dropped
  sent=$(grep -oE "SentMessages=[0-9]+" "$log" | head -1 | cut -d= -f2)
  recv=$(grep -oE "ReceivedMessages=[0-9]+" "$log" | head -1 | cut -d= -f2)
  [ -n "$sent" ] && [ -n "$recv" ] || fail "$tag: no message counts: $(tail -5 "$log")"
  if grep -q "Summary: Latency" "$log"; then
    dropped=$(grep -oE "# dropped messages = [0-9]+" "$log" | head -1 | awk '{print $NF}')
    [ -n "$dropped" ] || fail "$tag: sockperf printed no dropped counter"
    # Duplicates or reordering are losses of a kind too.
    grep -qE "duplicated messages = 0; # out-of-order messages = 0" "$log" ||
      fail "$tag: duplicated or out-of-order messages: $(grep 'dropped messages' "$log")"
  else
    dropped=$((sent - recv))  # the burst never completed
  fi
  echo "$tag: sent $sent, received $recv, lost $dropped" >&2
  echo "$dropped"
}

for burst in 100 200; do
  k=$(burst_run kernel "$burst")
  p=$(burst_run preload "$burst")
  [ "$p" -le "$k" ] || fail "-b$burst: preloaded pair lost $p datagrams, the kernel pair $k"
  echo "ok: -b$burst: lost $p preloaded, $k on kernel sockets"
done
echo "PASS"
