#!/usr/bin/env bash
# Stream socket semantics against the kernel's own TCP (tests/stream/
# stream_check.c): the same client and server run four ways in the two-host
# topology and must give the same results every time:
#   kernel <-> kernel          the reference;
#   preload <-> preload        offloaded over the machnet transport: the
#                              kernels' TCP counters stay flat while the
#                              engines' transport counters move;
#   preload client -> kernel   the probe is refused: kernel TCP (fallback);
#   kernel client -> preload   plain TCP to the listener's kernel twin.
# Scenarios: echo, half-close, linger reset, refused and timed-out connects,
# non-blocking connect, EPOLLRDHUP/EPOLLHUP, back-pressure (partial writes,
# EAGAIN), MSG_PEEK/MSG_WAITALL/FIONREAD, 1,000 concurrent connections.
. "$(dirname "$0")/lib_stream.sh"
require_root
require_preload_build
[ -x "$STREAM_CHECK" ] || fail "$STREAM_CHECK not built"
netns_up
PORT=7100 CLOSED=7101 DROP=7102
# Timed-out connects in seconds, not minutes: one SYN retry on host A, and
# host B drops every SYN to $DROP.
ip netns exec "$MN_NS_A" sysctl -qw net.ipv4.tcp_syn_retries=1
ip netns exec "$MN_NS_B" nft -f - <<NFT
table inet stream_test {
  chain input {
    type filter hook input priority 0;
    tcp dport $DROP drop
  }
}
NFT
stream_config "$TMP/a.conf" "$MN_IF_A" "$MN_IP_A"
stream_config "$TMP/b.conf" "$MN_IF_B" "$MN_IP_B"

# run MODE SERVER_PREFIX... :: CLIENT_PREFIX...: one full run of the scenarios.
run() {
  local mode=$1 srv_pre=() cli_pre=()
  shift
  while [ "$1" != "::" ]; do srv_pre+=("$1"); shift; done
  shift
  cli_pre=("$@")
  start_bg "server_$mode" "${srv_pre[@]}" "$STREAM_CHECK" server "$PORT"
  local srv=$LAST_PID
  wait_for_line "server_$mode" "listening on"
  local a0 b0
  a0=$(tcp_segments "$MN_NS_A")
  b0=$(tcp_segments "$MN_NS_B")
  if ! timeout 180 "${cli_pre[@]}" "$STREAM_CHECK" client "$MN_IP_B" "$PORT" "$CLOSED" "$DROP" \
      >"$TMP/client_$mode.log" 2>&1; then
    cat "$TMP/client_$mode.log"
    fail "$mode: scenarios failed"
  fi
  TCP_DELTA_A=$(($(tcp_segments "$MN_NS_A") - a0))
  TCP_DELTA_B=$(($(tcp_segments "$MN_NS_B") - b0))
  grep -q '^PASS' "$TMP/client_$mode.log" || fail "$mode: no PASS line"
  sed "s/^/  [$mode] /" "$TMP/client_$mode.log"
  stop_bg "$srv" || true
}

NS_A=(ip netns exec "$MN_NS_A")
NS_B=(ip netns exec "$MN_NS_B")
run kernel "${NS_B[@]}" :: "${NS_A[@]}"
echo "ok: kernel <-> kernel (reference); kernel TCP segments: A $TCP_DELTA_A, B $TCP_DELTA_B"

preload_in "$MN_NS_A" "$TMP/a.conf"
PRE_CLIENT=("${PRE[@]}")
preload_in "$MN_NS_B" "$TMP/b.conf"
PRE_SERVER=("${PRE[@]}")

run offloaded "${PRE_SERVER[@]}" :: "${PRE_CLIENT[@]}"
# Only the refused and timed-out connects (which fall back by design: nothing
# offers those ports) may touch kernel TCP: a handful of SYNs and RSTs.
[ "$TCP_DELTA_A" -le 20 ] && [ "$TCP_DELTA_B" -le 20 ] ||
  fail "offloaded: the kernels carried TCP segments (A $TCP_DELTA_A, B $TCP_DELTA_B)"
echo "ok: preload <-> preload over the transport; kernel TCP segments: A $TCP_DELTA_A, B $TCP_DELTA_B"

run fallback_client "${NS_B[@]}" :: "${PRE_CLIENT[@]}"
echo "ok: preloaded client -> kernel server (fallback to kernel TCP)"
run plain_client "${PRE_SERVER[@]}" :: "${NS_A[@]}"
echo "ok: kernel client -> preloaded server (the listener's kernel twin)"
echo "PASS"
