# shellcheck shell=bash
# sockperf UDP through the preload in the two-host topology (sourced by
# test_preload_sockperf_*.sh). Engines on AF_XDP with their own addresses:
# host A MN_NET.101, host B MN_NET.102. sockperf_suite runs, for one pairing
# of client and server (each preloaded or on the kernel):
#   - one socket, sockperf's default recvfrom(): ping-pong, throughput,
#     under-load;
#   - a feed file of 3 sockets with -F e (epoll): ping-pong, throughput,
#     under-load; with -F p (poll) and -F s (select): ping-pong;
# each for 1 s. Ping-pong must report no dropped, duplicated or
# out-of-order message; every run must finish with sockperf's summary. The
# figures are printed, never asserted. Server and client run on separate
# CPUs (the engines spin).
# shellcheck source=lib_preload.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_preload.sh"

SP_PORT=11111
SP_SECONDS=${MACHNET_SOCKPERF_SECONDS:-1}

# sockperf_setup: topology, engine configurations, sockperf present.
sockperf_setup() {
  require_root
  require_preload_build
  command -v sockperf >/dev/null || fail "sockperf is not installed (tools/install-deps.sh installs it)"
  netns_up
  engine_config "$TMP/a.conf"
  {
    echo "device = net_af_xdp0,iface=$MN_IF_B,start_queue=0,queue_count=1"
    echo "ip = $MN_NET.102/$MN_PREFIX_LEN"
    echo "library = $ENGINE_LIB"
    echo "machnetd = off"
  } >"$TMP/b.conf"
  local ncpu
  ncpu=$(nproc)
  SP_CPU_SERVER=0
  SP_CPU_CLIENT=$((ncpu > 1 ? 1 : 0))
}

# sp_pct LOG P: sockperf's percentile line P (50.000, 99.000).
sp_pct() { grep -E "percentile $2 =" "$1" | head -1 | awk '{print $NF}'; }

# sp_check LOG MODE LABEL: the run finished; ping-pong lost nothing.
sp_check() {
  local log=$1 mode=$2 label=$3
  if [ "$mode" = throughput ]; then
    grep -q "Summary: Message Rate is" "$log" || fail "$label: no message rate: $(tail -5 "$log")"
    local rate
    rate=$(grep -oE "Message Rate is [0-9]+" "$log" | awk '{print $NF}')
    [ "${rate:-0}" -gt 0 ] || fail "$label: message rate ${rate:-none}"
    echo "ok: $label: $rate msg/s sent"
    return 0
  fi
  grep -q "Summary: Latency is" "$log" || fail "$label: no latency summary: $(tail -5 "$log")"
  local counters bad obs
  counters=$(grep -E "# dropped messages = " "$log" || true)
  [ -n "$counters" ] || fail "$label: sockperf printed no dropped/out-of-order counters"
  bad=$(printf '%s\n' "$counters" |
    grep -vE "dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0" || true)
  obs=$(grep -oE "Total [0-9]+ observations" "$log" | head -1 | awk '{print $2}')
  if [ "$mode" = ping-pong ] && [ -n "$bad" ]; then
    fail "$label: sockperf reports lost messages: $bad"
  fi
  echo "ok: $label: p50 $(sp_pct "$log" 50.000) p99 $(sp_pct "$log" 99.000) usec," \
    "${obs:-?} observations; $(printf '%s' "$counters" | head -1 | sed 's/.*# dropped/dropped/')"
}

# sockperf_suite SERVER CLIENT: each "preload" or "kernel". The server runs
# in host B when the client is preloaded in host A; with a kernel client
# (host B), the preloaded server runs in host A.
sockperf_suite() {
  local server=$1 client=$2 srv_ns cli_ns srv_ip srv_pre=() cli_pre=()
  if [ "$client" = preload ]; then
    cli_ns=$MN_NS_A srv_ns=$MN_NS_B
    cli_pre=("$RUN" --preload "$PRELOAD_LIB" --config "$TMP/a.conf" --)
    if [ "$server" = preload ]; then
      srv_ip=$MN_NET.102
      srv_pre=("$RUN" --preload "$PRELOAD_LIB" --config "$TMP/b.conf" --)
    else
      srv_ip=$MN_IP_B
    fi
  else
    cli_ns=$MN_NS_B srv_ns=$MN_NS_A srv_ip=$MN_NET.101
    srv_pre=("$RUN" --preload "$PRELOAD_LIB" --config "$TMP/a.conf" --)
  fi
  : >"$TMP/srv.feed"
  : >"$TMP/cli.feed"
  for p in 0 1 2; do
    echo "U:0.0.0.0:$((SP_PORT + 1 + p))" >>"$TMP/srv.feed"
    echo "U:$srv_ip:$((SP_PORT + 1 + p))" >>"$TMP/cli.feed"
  done
  local mux sargs cargs modes mode tag
  for mux in recvfrom e p s; do
    if [ "$mux" = recvfrom ]; then
      sargs=(-i 0.0.0.0 -p "$SP_PORT")
      cargs=(-i "$srv_ip" -p "$SP_PORT")
      modes="ping-pong throughput under-load"
    else
      sargs=(-f "$TMP/srv.feed" -F "$mux")
      cargs=(-f "$TMP/cli.feed" -F "$mux")
      modes="ping-pong"
      [ "$mux" = e ] && modes="ping-pong throughput under-load"
    fi
    tag="server $server, client $client, $( [ "$mux" = recvfrom ] && echo "1 socket" || echo "3 sockets -F $mux")"
    start_bg "srv_$mux" ip netns exec "$srv_ns" taskset -c "$SP_CPU_SERVER" "${srv_pre[@]}" \
      sockperf server "${sargs[@]}"
    local spid=$LAST_PID
    wait_for_line "srv_$mux" "to block on socket" 15 || fail "$tag: the server did not start"
    if [ "$server" = preload ]; then
      wait_for_line "srv_$mux" "machnet: offloading UDP" 5 || fail "$tag: the server did not offload"
    fi
    for mode in $modes; do
      local extra=()
      [ "$mode" = under-load ] && extra=(--mps 10000)
      local log="$TMP/cli_${mux}_$mode.log"
      timeout 30 ip netns exec "$cli_ns" taskset -c "$SP_CPU_CLIENT" "${cli_pre[@]}" \
        sockperf "$mode" "${cargs[@]}" -t "$SP_SECONDS" -m 64 "${extra[@]}" >"$log" 2>&1 ||
        fail "$tag: sockperf $mode failed: $(tail -5 "$log")"
      if [ "$client" = preload ]; then
        grep -q "machnet: offloading UDP" "$log" || fail "$tag: the client did not offload"
      fi
      sp_check "$log" "$mode" "$tag, $mode"
    done
    kill -0 "$spid" 2>/dev/null || fail "$tag: the server died: $(tail -5 "$TMP/srv_$mux.log")"
    stop_bg "$spid" || true
  done
}
