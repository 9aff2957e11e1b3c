#!/usr/bin/env bash
# Slow readers drop their own datagrams and never starve the others
# (machnet.conf(5), socket_queue_len): a program with 12 UDP sockets that it
# never reads and one echo socket; a kernel peer fills the 12 queues (1,000
# datagrams each: 12,000, more than the engine's pool of 8,191 mbufs), then
# pings the echo socket 200 times. Every ping must be answered, as it is with
# the same program on kernel sockets (the reference, run first); the slow
# sockets' excess is counted (drop_socket_pool_share) and the pool is not
# emptied.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
PROG="$SRCDIR/tests/preload/slow_readers.py"
ECHO_PORT=7600 SLOW_BASE=7610 NSLOW=12 PER_PORT=1000 PINGS=200
netns_up
engine_config "$TMP/machnet.conf" "mbufs = 8191"
preload_in_a "$TMP/machnet.conf"

# run TAG IP PREFIX...: serve in host A, flood and ping from host B.
run() {
  local tag=$1 ip=$2
  shift 2
  start_bg "srv_$tag" "$@" "$PYTHON" "$PROG" serve $ECHO_PORT $SLOW_BASE $NSLOW
  SRV=$LAST_PID
  wait_for_line "srv_$tag" "echo on" || fail "$tag: the server did not start"
  ip netns exec "$MN_NS_B" "$PYTHON" "$PROG" ping "$ip" $ECHO_PORT 3 >/dev/null ||
    fail "$tag: the echo socket does not answer before the flood"
  ip netns exec "$MN_NS_B" "$PYTHON" "$PROG" flood "$ip" $SLOW_BASE $NSLOW $PER_PORT
  sleep 0.5
  ip netns exec "$MN_NS_B" "$PYTHON" "$PROG" ping "$ip" $ECHO_PORT $PINGS >"$TMP/ping_$tag.out" ||
    fail "$tag: $(cat "$TMP/ping_$tag.out") after the slow sockets filled"
  echo "$tag: $(cat "$TMP/ping_$tag.out")"
}

run kernel "$MN_IP_A" ip netns exec "$MN_NS_A"
stop_bg "$SRV" || true

run preload "$MN_NET.101" "${PRE_A[@]}"
grep -q "machnet: offloading UDP" "$TMP/srv_preload.log" || fail "the server did not offload"
# The slow queues took their share and no more: the excess is counted, the
# echo socket's datagrams all arrived.
"$PYTHON" "$SRCDIR/tests/integration/udp_peer.py" telemetry "$SRV" drop_socket_pool_share=1 \
  "udp_rx=$((PINGS + 3))" || fail "the engine's counters do not show the slow sockets' drops"
kill -0 "$SRV" 2>/dev/null || fail "the preloaded server died"
echo "PASS"
