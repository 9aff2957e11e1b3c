#!/usr/bin/env bash
# Stream sockets over the machnet transport under faults, both ends offloaded
# in the two-host topology (tests/stream/stream_fault.c):
#   - with fault.rx_drop = 0.01 on both engines, a 256 MiB pseudo-random
#     stream arrives intact (SHA-256 of what was sent = of what arrived),
#     over the transport (the kernels' TCP counters stay flat), and the
#     sender's TCP_INFO shows the retransmissions the drops caused;
#   - kill -9 of one end leaves the other with ECONNRESET or ETIMEDOUT
#     within the transport's dead-peer bound (plus a margin for a loaded
#     machine), never a hang: a sender and a receiver in mid-transfer (on
#     either side of the connection), a receiver blocked in recv on an idle
#     connection (with SO_KEEPALIVE and TCP_KEEPIDLE/INTVL/CNT, as the
#     kernel needs too) and a sender blocked in send on a full buffer.
# An engine killed with its process answers nothing: unlike a kernel, which
# outlives its processes and resets their connections, the dead end's host
# stays silent and only the survivor's timers can tell.
. "$(dirname "$0")/lib_stream.sh"
require_root
require_preload_build
FAULT="$BUILDDIR/tests/stream/stream_fault"
[ -x "$FAULT" ] || fail "$FAULT not built"
netns_up

# Transport timers so that a death is seen within 3-4 s: keepalive after 2 s
# of silence, 3 probes 300 ms apart (the default is 1 s + 5 x 100 ms); a flow
# whose data goes unacknowledged fails after 15 consecutive RTOs, each at most
# 200 ms (the default is 10). Not shorter: on a loaded 2-core machine a
# process can stall long enough to fail a live transfer (with 8 RTOs, 2 runs
# in 6 did).
# The probe that tells a machnet peer from a plain one waits 500 ms instead
# of 3 ms: a server process descheduled on a loaded machine answers late, the
# connect would fall back to kernel TCP, and this test is about the transport.
KA_IDLE_MS=2000 KA_INTVL_MS=300 KA_PROBES=3 MAX_RTX=15 RTO_MAX_MS=200
CONF=(
  "fault.rx_drop = 0.01"
  "transport.probe_timeout_us = 500000"
  "transport.keepalive_idle_ms = $KA_IDLE_MS"
  "transport.keepalive_interval_ms = $KA_INTVL_MS"
  "transport.keepalive_probes = $KA_PROBES"
  "transport.max_retransmits = $MAX_RTX"
  "transport.rto_max_us = $((RTO_MAX_MS * 1000))"
)
stream_config "$TMP/a.conf" "$MN_IF_A" "$MN_IP_A" "${CONF[@]}"
stream_config "$TMP/b.conf" "$MN_IF_B" "$MN_IP_B" "${CONF[@]}"
preload_in "$MN_NS_B" "$TMP/b.conf"
SRV=("${PRE[@]}")
preload_in "$MN_NS_A" "$TMP/a.conf"
CLI=("${PRE[@]}")

# The bound a survivor must meet, in ms: keepalive (idle + probes * interval)
# or the retransmission limit (at most MAX_RTX + 1 RTOs of RTO_MAX_MS each),
# whichever is later. MARGIN covers start-up and a loaded shared machine: the
# check is that the death is seen, not how fast.
KA_BOUND_MS=$((KA_IDLE_MS + KA_PROBES * KA_INTVL_MS))
RTX_BOUND_MS=$(((MAX_RTX + 1) * RTO_MAX_MS))
BOUND_MS=$((KA_BOUND_MS > RTX_BOUND_MS ? KA_BOUND_MS : RTX_BOUND_MS))
MARGIN_MS=5000
echo "# dead-peer bound ${BOUND_MS} ms (keepalive ${KA_BOUND_MS} ms, retransmissions ${RTX_BOUND_MS} ms), margin ${MARGIN_MS} ms"

# forget PID...: the processes have ended; cleanup need not stop them.
forget() {
  local keep=() p q
  for p in "${PIDS[@]}"; do
    for q in "$@"; do [ "$p" != "$q" ] || continue 2; done
    keep+=("$p")
  done
  PIDS=("${keep[@]}")
}

mark() { A0=$(tcp_segments "$MN_NS_A"); B0=$(tcp_segments "$MN_NS_B"); }
flat() {
  local da=$(($(tcp_segments "$MN_NS_A") - A0)) db=$(($(tcp_segments "$MN_NS_B") - B0))
  [ "$da" -eq 0 ] && [ "$db" -eq 0 ] || fail "$1: the kernels carried TCP (A $da, B $db segments)"
}

# The checker's own SHA-256 against sha256sum (the transfer relies on it).
for n in 0 55 64 1048583; do
  [ "$("$FAULT" gen $n 9 | "$FAULT" sha256)" = "$("$FAULT" gen $n 9 | sha256sum | cut -c1-64)" ] ||
    fail "stream_fault's SHA-256 disagrees with sha256sum for $n bytes"
done

echo "# 256 MiB with fault.rx_drop = 0.01 on both engines"
BYTES=$((256 << 20)) SEED=20261203
mark
start_bg bulk_srv "${SRV[@]}" "$FAULT" listen 7200 recv
BS=$LAST_PID
wait_for_line bulk_srv "listening on" 20
timeout 300 "${CLI[@]}" "$FAULT" connect "$MN_IP_B" 7200 send "$BYTES" "$SEED" \
  >"$TMP/bulk_cli.log" 2>&1 || fail "sender: $(tail -5 "$TMP/bulk_cli.log")"
for _ in $(seq 100); do kill -0 "$BS" 2>/dev/null || break; sleep 0.1; done
wait "$BS" || fail "receiver: $(tail -5 "$TMP/bulk_srv.log")"
forget "$BS"
flat "256 MiB transfer"
sent=$(awk '/^sent/ {print $2, $5}' "$TMP/bulk_cli.log")
got=$(awk '/^received/ {print $2, $5}' "$TMP/bulk_srv.log")
want=$("$FAULT" gen "$BYTES" "$SEED" | sha256sum | cut -c1-64)
[ "$sent" = "$BYTES $want" ] || fail "sender: sent '$sent', expected '$BYTES $want'"
[ "$got" = "$sent" ] || fail "received '$got' differs from sent '$sent'"
retrans=$(awk '/^sent/ {print $NF}' "$TMP/bulk_cli.log")
[ "${retrans:-0}" -gt 0 ] || fail "no retransmissions with 1% of the packets dropped: $(cat "$TMP/bulk_cli.log")"
grep -E '^(sent|received)' "$TMP/bulk_cli.log" | sed 's/^/  [sender] /'
grep -E '^(sent|received)' "$TMP/bulk_srv.log" | sed 's/^/  [receiver] /'
took=$(awk '/^sent/ {print $7, "s,", substr($9, 2), "MiB/s"}' "$TMP/bulk_cli.log")
echo "ok: 256 MiB intact (sha256 $want) over the transport with 1% drops in $took, $retrans retransmissions"

# kill_case NAME VICTIM(server|client) "SERVER ROLE..." "CLIENT ROLE..." [WAIT_FOR]:
# connects a server in host B and a client in host A, both offloaded, waits
# until the survivor's log shows WAIT_FOR (default "connected") and 1 s more,
# kills the victim with SIGKILL and expects the survivor (over the transport:
# the kernels' TCP counters stay flat) to fail with
# ECONNRESET or ETIMEDOUT within its bound (CASE_BOUND_MS, default
# BOUND_MS) + MARGIN_MS.
PORT=7210
kill_case() {
  local name=$1 victim=$2 srv_role=$3 cli_role=$4 ready=${5:-connected}
  local bound=${CASE_BOUND_MS:-$BOUND_MS}
  PORT=$((PORT + 1))
  # shellcheck disable=SC2086 # roles are word lists
  start_bg "${name}_srv" "${SRV[@]}" "$FAULT" listen "$PORT" $srv_role
  local sp=$LAST_PID
  wait_for_line "${name}_srv" "listening on" 20
  mark
  # shellcheck disable=SC2086
  start_bg "${name}_cli" "${CLI[@]}" "$FAULT" connect "$MN_IP_B" "$PORT" $cli_role
  local cp=$LAST_PID
  wait_for_line "${name}_cli" "connected" 20
  LAST_PID=$sp wait_for_line "${name}_srv" "connected" 20
  local vp=$sp sp_=$cp slog=${name}_cli
  [ "$victim" = server ] || { vp=$cp; sp_=$sp; slog=${name}_srv; }
  LAST_PID=$sp_ wait_for_line "$slog" "$ready" 30
  sleep 1
  kill -0 "$sp_" 2>/dev/null || fail "$name: the survivor ended before the kill: $(cat "$TMP/$slog.log")"
  local t0
  t0=$(date +%s.%N)
  kill -KILL "$vp"
  wait "$vp" 2>/dev/null || true
  local waited=0
  while kill -0 "$sp_" 2>/dev/null; do
    [ $waited -lt $((bound + MARGIN_MS)) ] ||
      fail "$name: the survivor still blocked $((waited / 1000)) s after the kill (a hang): $(tail -3 "$TMP/$slog.log")"
    sleep 0.05
    waited=$((waited + 50))
  done
  wait "$sp_" 2>/dev/null || true
  # Over kernel TCP a killed end's kernel would close for it (FIN or RST).
  flat "$name"
  local line
  line=$(grep '^error' "$TMP/$slog.log" || true)
  [ -n "$line" ] ||
    fail "$name: the survivor ended without an error (killed at $t0): $(tail -2 "$TMP/$slog.log")"
  local err t1 ms
  err=$(awk '{print $2}' <<<"$line")
  t1=$(awk '{print $NF}' <<<"$line")
  ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%d", (b - a) * 1000}')
  case $err in
    ECONNRESET | ETIMEDOUT) ;;
    *) fail "$name: the survivor got $err, not ECONNRESET or ETIMEDOUT: $line" ;;
  esac
  [ "$ms" -le $((bound + MARGIN_MS)) ] ||
    fail "$name: $err only after $ms ms (bound $bound ms + $MARGIN_MS ms)"
  forget "$vp" "$sp_"
  echo "ok: $name: $err $ms ms after the kill (bound $bound ms; $(awk '{print $4}' <<<"$line") bytes sent or received)"
}

echo "# kill -9 of one end"
HUGE=$((1 << 40))
kill_case "receiver killed mid-transfer, sender survives" server \
  "recv" "send $HUGE 1"
kill_case "sender killed mid-transfer, receiver (accepted) survives" client \
  "recv" "send $HUGE 2"
kill_case "sender killed mid-transfer, receiver (connected) survives" server \
  "send $HUGE 3" "recv"
# Without SO_KEEPALIVE the transport's own keepalive (dead_peer_floor) finds
# the death; with it, TCP_KEEPIDLE 1 s, TCP_KEEPINTVL 1 s, TCP_KEEPCNT 1
# asks for 2 s, earlier than the transport's 2.9 s: the program's wins.
CASE_BOUND_MS=$KA_BOUND_MS kill_case "idle peer killed, receiver blocked in recv" server \
  "sleep" "recv"
CASE_BOUND_MS=2000 kill_case "idle peer killed, receiver blocked in recv (SO_KEEPALIVE 1,1,1)" \
  server "sleep" "recv -k 1,1,1"
kill_case "reader killed, sender blocked in send on a full buffer" server \
  "sleep" "fill" "full after"
echo "PASS"
