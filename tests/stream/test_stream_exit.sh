#!/usr/bin/env bash
# Short-lived clients (tests/stream/stream_exit.c) connect, send 1000 bytes
# and end at once: exit() or _exit() with the socket open, close() then
# exit(), shutdown+close, or close() while another thread sleeps in recv()
# on the socket. The server must read all 1000 bytes and then EOF on every
# connection, as from the kernel's TCP (the reference run), never ETIMEDOUT
# (the client's FIN lost with its process) or ECONNRESET. Offloaded: both
# ends under the preload, standalone shared-IP AF_XDP engines; the clients
# run back to back, each starting as the previous one exits.
. "$(dirname "$0")/lib_stream.sh"
require_root
require_preload_build
EXIT_BIN="$BUILDDIR/tests/stream/stream_exit"
[ -x "$EXIT_BIN" ] || fail "$EXIT_BIN not built"
netns_up
stream_config "$TMP/a.conf" "$MN_IF_A" "$MN_IP_A"
stream_config "$TMP/b.conf" "$MN_IF_B" "$MN_IP_B"
MODES=(exit close _exit shut blocked)
ROUNDS=4
N=$((ROUNDS * ${#MODES[@]}))
PORT=7300

# run NAME SERVER_PREFIX... :: CLIENT_PREFIX...
run() {
  local name=$1 srv_pre=() cli_pre=()
  shift
  while [ "$1" != "::" ]; do srv_pre+=("$1"); shift; done
  shift
  cli_pre=("$@")
  start_bg "server_$name" "${srv_pre[@]}" "$EXIT_BIN" server "$PORT" "$N"
  local srv=$LAST_PID
  wait_for_line "server_$name" "listening on"
  for _ in $(seq "$ROUNDS"); do
    for m in "${MODES[@]}"; do
      timeout 30 "${cli_pre[@]}" "$EXIT_BIN" client "$MN_IP_B" "$PORT" "$m" \
        >>"$TMP/clients_$name.log" 2>&1 || fail "$name: client $m failed: $(tail -3 "$TMP/clients_$name.log")"
    done
  done
  # Every connection ends within the dead-peer bound (a lost FIN shows as
  # ETIMEDOUT after it); the server exits once it has seen all of them.
  local rc=0
  for _ in $(seq 300); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
  stop_bg "$srv" || rc=$?
  [ "$rc" -eq 0 ] || fail "$name: server exit status $rc: $(tail -5 "$TMP/server_$name.log")"
  local lines bad
  lines=$(grep -c '^conn ' "$TMP/server_$name.log" || true)
  [ "$lines" -eq "$N" ] || fail "$name: $lines of $N connections ended"
  bad=$(grep '^conn ' "$TMP/server_$name.log" | grep -v ' 1000 eof$' || true)
  [ -z "$bad" ] || fail "$name: connections not ended by EOF after 1000 bytes: $(echo "$bad" | sort | uniq -c | tr '\n' ';')"
  echo "ok: $name: $N clients ($(IFS=,; echo "${MODES[*]}") x $ROUNDS), every connection read to EOF"
}

run kernel ip netns exec "$MN_NS_B" :: ip netns exec "$MN_NS_A"
preload_in "$MN_NS_B" "$TMP/b.conf"
SRV=("${PRE[@]}")
preload_in "$MN_NS_A" "$TMP/a.conf"
CLI=("${PRE[@]}")
a0=$(tcp_segments "$MN_NS_A")
run offloaded "${SRV[@]}" :: "${CLI[@]}"
da=$(($(tcp_segments "$MN_NS_A") - a0))
[ "$da" -eq 0 ] || fail "offloaded: host A's kernel carried $da TCP segments"
echo "PASS"
