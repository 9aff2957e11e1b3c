#!/usr/bin/env bash
# A dead peer is detected within the transport's bound: a machnet-msg-gen
# client keeps 8 messages in flight, the server is killed with SIGKILL (no
# FIN, no RST: its engine just vanishes), and the client must exit non-zero
# with the flow's error ("timed out") within the dead-peer bound it printed at
# start (keepalive idle + probes * interval) plus a margin. Over memif (the
# link goes down with the server) and over the AF_XDP veth (frames still
# leave, nobody answers); and over memif with the client killed instead: the
# server reports the flow's failure within the same bound and keeps running.
. "$(dirname "$0")/lib.sh"
require_root
MSGGEN="$BUILDDIR/machnet-msg-gen"
[ -x "$MSGGEN" ] || fail "$MSGGEN not built"
MARGIN_S=3  # scheduling on a shared 2-core machine, engine teardown

# kill_server_run NAME SERVER_CMD... -- CLIENT_CMD...
kill_server_run() {
  local name=$1
  shift
  local server_cmd=() client_cmd=()
  while [ "$1" != "--" ]; do server_cmd+=("$1"); shift; done
  shift
  client_cmd=("$@")
  start_bg "${name}_server" "${server_cmd[@]}"
  local server=$LAST_PID
  wait_for_line "${name}_server" "listening on"
  start_bg "${name}_client" "${client_cmd[@]}"
  local client=$LAST_PID log="$TMP/${name}_client.log"
  wait_for_line "${name}_client" "\[ *1\.0s\] TX"
  grep -E -q "\[ *1\.0s\] TX +[1-9]" "$log" || fail "$name: no traffic before the kill: $(cat "$log")"
  local bound
  bound=$(sed -n 's/.*dead-peer bound \([0-9.]*\) s.*/\1/p' "$log")
  [ -n "$bound" ] || fail "$name: client did not print its dead-peer bound"

  kill -KILL "$server"
  local t0 t1 rc=0 limit elapsed
  t0=$(date +%s.%N)
  wait "$server" 2>/dev/null || true
  PIDS=("$client")
  limit=$(awk -v b="$bound" -v m="$MARGIN_S" 'BEGIN { print b + m }')
  for _ in $(seq $(((${bound%.*} + MARGIN_S + 5) * 10))); do
    kill -0 "$client" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$client" 2>/dev/null; then
    fail "$name: client still running $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print a - b }') s after the server was killed"
  fi
  wait "$client" || rc=$?
  t1=$(date +%s.%N)
  PIDS=()
  elapsed=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
  echo "$name: client exited with status $rc, $elapsed s after the kill (bound $bound s + margin $MARGIN_S s)"
  grep "failed" "$log" || true
  [ "$rc" -ne 0 ] || fail "$name: client exited 0 although its peer died"
  grep -q "failed (.*): Connection timed out" "$log" ||
    fail "$name: client did not report the flow's timeout: $(tail -5 "$log")"
  awk -v e="$elapsed" -v l="$limit" 'BEGIN { exit !(e <= l) }' || fail "$name: detection took $elapsed s > $limit s"
  echo "ok: $name"
  BOUND_S=$bound
}

CLIENT_ARGS=(--msg_size 1024 --msg_window 8 --duration 60 --warmup 0 --verify)

SOCK="$TMP/memif.sock"
NET=10.$((RANDOM % 200 + 20)).$((RANDOM % 250)).
memif() { echo "net_memif0,role=$1,id=0,socket=$SOCK,socket-abstract=no,mac=02:00:00:00:00:0$2"; }
kill_server_run memif \
  "$MSGGEN" --set machnetd=off --local_ip "${NET}1/24" --device "$(memif server 1)" --duration 60 -- \
  "$MSGGEN" --set machnetd=off --local_ip "${NET}2/24" --device "$(memif client 2)" --remote_ip "${NET}1" \
  "${CLIENT_ARGS[@]}"

# The other way round: the client is killed; the server reports the flow's
# failure within the bound, releases it and keeps serving.
SOCK2="$TMP/memif2.sock"
start_bg rev_server "$MSGGEN" --set machnetd=off --local_ip "${NET}1/24" --duration 60 \
  --device "net_memif0,role=server,id=0,socket=$SOCK2,socket-abstract=no,mac=02:00:00:00:00:01"
REV_SERVER=$LAST_PID
wait_for_line rev_server "listening on"
start_bg rev_client "$MSGGEN" --set machnetd=off --local_ip "${NET}2/24" --remote_ip "${NET}1" "${CLIENT_ARGS[@]}" \
  --device "net_memif0,role=client,id=0,socket=$SOCK2,socket-abstract=no,mac=02:00:00:00:00:02"
REV_CLIENT=$LAST_PID
wait_for_line rev_client "\[ *1\.0s\] TX"
kill -KILL "$REV_CLIENT"
wait "$REV_CLIENT" 2>/dev/null || true
PIDS=("$REV_SERVER")
LIMIT_DS=$(awk -v b="$BOUND_S" -v m="$MARGIN_S" 'BEGIN { print int((b + m) * 10) }')
LAST_PID=$REV_SERVER
wait_for_line rev_server "failed (receive): Connection timed out" $(((LIMIT_DS + 9) / 10)) ||
  fail "server did not report the dead client: $(tail -5 "$TMP/rev_server.log")"
grep "failed" "$TMP/rev_server.log"
stop_bg "$REV_SERVER" || fail "server exited with an error after its client died"
echo "ok: server survives a dead client"

netns_up
xdp() { echo "net_af_xdp0,iface=$1,start_queue=0,queue_count=1"; }
kill_server_run af_xdp \
  ip netns exec "$MN_NS_A" "$MSGGEN" --set machnetd=off --local_ip "$MN_NET.101/$MN_PREFIX_LEN" \
  --device "$(xdp "$MN_IF_A")" --duration 60 -- \
  ip netns exec "$MN_NS_B" "$MSGGEN" --set machnetd=off --local_ip "$MN_NET.102/$MN_PREFIX_LEN" \
  --device "$(xdp "$MN_IF_B")" --remote_ip "$MN_NET.101" "${CLIENT_ARGS[@]}"
echo "PASS"
