#!/usr/bin/env bash
# A memif peer killed mid-traffic must not take the survivor down. DPDK
# 22.11's memif unmaps the shared rings from the interrupt thread while the
# data path may be using them (SIGSEGV in about 1 of 10 rounds without
# src/engine/memif_guard.cc); 12 rounds, both directions, survivor must exit
# cleanly on SIGTERM.
. "$(dirname "$0")/lib.sh"
require_root
for round in $(seq 12); do
  SOCK="$TMP/memif$round.sock"
  start_bg "server$round" "$ECHO_BIN" --set machnetd=off --server --port 7 --ip 10.251.0.1/24 \
    --device "net_memif0,role=server,socket=$SOCK,socket-abstract=no,mac=02:00:00:00:00:01"
  SERVER=$LAST_PID
  wait_for_line "server$round" "listening on"
  start_bg "client$round" "$ECHO_BIN" --set machnetd=off --client --peer 10.251.0.1:7 --sizes 64,8000 --duration 5 \
    --warmup 0 --timeout-ms 50 --ip 10.251.0.2/24 \
    --device "net_memif0,role=client,socket=$SOCK,socket-abstract=no,mac=02:00:00:00:00:02"
  CLIENT=$LAST_PID
  sleep "0.$((RANDOM % 7 + 2))"
  if [ $((round % 2)) -eq 0 ]; then victim=$SERVER survivor=$CLIENT; else victim=$CLIENT survivor=$SERVER; fi
  kill -KILL "$victim"
  wait "$victim" 2>/dev/null || true
  sleep 0.3
  rc=0
  stop_bg "$survivor" || rc=$?
  # The client exits 1 (replies lost) by design; a signal death is >= 128.
  [ "$rc" -lt 128 ] || fail "round $round: the survivor died with signal $((rc - 128))"
  PIDS=()
done
echo "PASS: 12 rounds, no survivor crashed"
