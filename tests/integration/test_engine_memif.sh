#!/usr/bin/env bash
# Acceptance 3 of the foundation: two standalone engines joined by net_memif
# exchange UDP through machnet-echo (sizes up to a fragmented 8000 bytes).
. "$(dirname "$0")/lib.sh"
require_root
SOCK="$TMP/memif.sock"
NET=10.$((RANDOM % 200 + 20)).$((RANDOM % 250)).
start_bg server "$ECHO_BIN" --set machnetd=off --server --port 7 --ip "${NET}1/24" \
  --device "net_memif0,role=server,id=0,socket=$SOCK,socket-abstract=no,mac=02:00:00:00:00:01"
SERVER=$LAST_PID
wait_for_line server "listening on"
"$ECHO_BIN" --set machnetd=off --client --peer "${NET}1:7" --sizes 1,64,1472,8000 --count 2000 --warmup 10 \
  --ip "${NET}2/24" \
  --device "net_memif0,role=client,id=0,socket=$SOCK,socket-abstract=no,mac=02:00:00:00:00:02" \
  >"$TMP/client.log" 2>&1 || fail "memif client: $(tail -5 "$TMP/client.log")"
cat "$TMP/client.log"
grep -q "lost 0, bad 0" "$TMP/client.log" || fail "client saw lost or bad replies"
stop_bg "$SERVER" || fail "server exited with an error"
cat "$TMP/server.log"
grep -q "echoed 20[0-9][0-9] datagrams" "$TMP/server.log" || fail "server echo count wrong"
echo "PASS"
