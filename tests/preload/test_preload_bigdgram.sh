#!/usr/bin/env bash
# UDP datagrams of every size up to 65,507 bytes between two preloaded
# engines, as the kernel delivers them: the same echo program
# (tests/preload/py_udp.py, blocking) runs with both ends preloaded (engines
# on AF_XDP in hosts A and B, MTU 1500, so up to 45 fragments each way) and
# with both ends on kernel sockets. Sizes 1, 1472 (the largest unfragmented),
# 1473, 11,832 and 11,841 (either side of the 8 fragments DPDK's ip_frag
# stopped at), 30,000 and 65,507, 5 of each: every one must come back byte
# for byte at the first send (py_udp resends only when a reply does not come
# within 10 s: a resend is a loss). Then sockperf ping-pong with 65,000-byte
# messages, both ends preloaded and both on kernel sockets: each run must
# finish with no dropped, duplicated or out-of-order message; the latencies
# are printed, never compared. Nothing is pinned to a CPU: on a shared
# machine a pinned program can wait behind another's spinning engine.
. "$(dirname "$0")/lib_sockperf.sh"
sockperf_setup
PY_UDP="$SRCDIR/tests/preload/py_udp.py"
export PY_UDP_SIZES=1,1472,1473,11832,11841,30000,65507 PY_UDP_WAIT_S=10
COUNT=5
# At least 3 s: a preloaded client's engine starts inside sockperf's timed
# run, and on a loaded machine that can take most of a second.
PP_SECONDS=$((SP_SECONDS < 3 ? 3 : SP_SECONDS))
TOTAL=$((COUNT * 7))

# pre_for PAIRING HOST: the command prefix running a program in HOST (a|b).
pre_for() {
  PRE=()
  [ "$1" = preload ] && PRE=("$RUN" --preload "$PRELOAD_LIB" --config "$TMP/$2.conf" --)
  return 0
}

echo_run() {
  local pairing=$1 port=$2 ip=$MN_IP_B
  [ "$pairing" = preload ] && ip=$MN_NET.102
  pre_for "$pairing" b
  start_bg "echo_srv_$pairing" ip netns exec "$MN_NS_B" "${PRE[@]}" \
    "$PYTHON" "$PY_UDP" serve blocking "$port"
  local spid=$LAST_PID
  wait_for_line "echo_srv_$pairing" "server on port" 15 || fail "$pairing: the echo server did not start"
  pre_for "$pairing" a
  local log="$TMP/echo_cli_$pairing.log"
  timeout 300 ip netns exec "$MN_NS_A" "${PRE[@]}" \
    "$PYTHON" "$PY_UDP" client blocking "$ip" "$port" "$COUNT" >"$log" 2>&1 ||
    fail "$pairing echo: $(tail -8 "$log")"
  grep -q "client: $TOTAL of $TOTAL echoed, 0 resent" "$log" ||
    fail "$pairing echo: lost datagrams: $(tail -8 "$log")"
  if [ "$pairing" = preload ]; then
    grep -q "machnet: offloading UDP" "$log" || fail "$pairing echo: the client did not offload"
    grep -q "machnet: offloading UDP" "$TMP/echo_srv_$pairing.log" ||
      fail "$pairing echo: the server did not offload"
  fi
  kill -0 "$spid" 2>/dev/null || fail "$pairing echo: the server died"
  stop_bg "$spid" || true
  echo "ok: $pairing pair: $(grep echoed "$log" | sed 's/^py_udp: //') (sizes $PY_UDP_SIZES)"
}

pingpong_run() {
  local pairing=$1 ip=$MN_IP_B
  [ "$pairing" = preload ] && ip=$MN_NET.102
  pre_for "$pairing" b
  start_bg "sp_srv_$pairing" ip netns exec "$MN_NS_B" "${PRE[@]}" \
    sockperf server -i 0.0.0.0 -p "$SP_PORT"
  local spid=$LAST_PID
  wait_for_line "sp_srv_$pairing" "to block on socket" 15 || fail "$pairing: sockperf server did not start"
  pre_for "$pairing" a
  local log="$TMP/sp_cli_$pairing.log"
  timeout 60 ip netns exec "$MN_NS_A" "${PRE[@]}" \
    sockperf ping-pong -i "$ip" -p "$SP_PORT" -t "$PP_SECONDS" -m 65000 >"$log" 2>&1 ||
    fail "$pairing: sockperf ping-pong -m 65000 failed: $(tail -5 "$log")"
  if [ "$pairing" = preload ]; then
    grep -q "machnet: offloading UDP" "$log" || fail "$pairing: the sockperf client did not offload"
  fi
  sp_check "$log" ping-pong "sockperf ping-pong -m 65000, $pairing pair"
  echo "   $pairing: $(grep -oE 'Summary: Latency is [0-9.]+ usec' "$log")"
  stop_bg "$spid" || true
}

echo_run kernel 7310
echo_run preload 7311
pingpong_run kernel
pingpong_run preload
echo "PASS"
