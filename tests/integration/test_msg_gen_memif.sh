#!/usr/bin/env bash
# Native message API end to end over net_memif: two standalone engines, a
# machnet-msg-gen echo server and clients that verify every reply byte for
# byte: 1 KiB messages with window 1 and 32, a few 8 MiB messages, and 1 KiB
# with 1% of frames dropped on receive and on send by the client's engine.
. "$(dirname "$0")/lib.sh"
require_root
MSGGEN="$BUILDDIR/machnet-msg-gen"
[ -x "$MSGGEN" ] || fail "$MSGGEN not built"
SOCK="$TMP/memif.sock"
NET=10.$((RANDOM % 200 + 20)).$((RANDOM % 250)).
memif() { echo "net_memif0,role=$1,id=0,socket=$SOCK,socket-abstract=no,mac=02:00:00:00:00:0$2"; }

# hello_world (the plain C example) first, on its own memif pair.
HELLO="$BUILDDIR/tools/hello_world/hello_world"
[ -x "$HELLO" ] || fail "$HELLO not built"
HSOCK="$TMP/hello.sock"
start_bg hello_server "$HELLO" --set machnetd=off --server --port 7 --ip "${NET}11/24" \
  --device "net_memif0,role=server,id=0,socket=$HSOCK,socket-abstract=no,mac=02:00:00:00:01:01"
HELLO_SERVER=$LAST_PID
wait_for_line hello_server "listening on"
timeout 20 "$HELLO" --set machnetd=off --client "${NET}11" --port 7 --ip "${NET}12/24" \
  --device "net_memif0,role=client,id=0,socket=$HSOCK,socket-abstract=no,mac=02:00:00:00:01:02" \
  >"$TMP/hello_client.log" 2>&1 || fail "hello_world client: $(cat "$TMP/hello_client.log")"
grep -q 'reply "hello"' "$TMP/hello_client.log" || fail "hello_world: no reply"
stop_bg "$HELLO_SERVER" || fail "hello_world server failed: $(cat "$TMP/hello_server.log")"
grep -q 'received "hello"' "$TMP/hello_server.log" || fail "hello_world server got nothing"
echo "ok: hello_world"

start_bg server "$MSGGEN" --set machnetd=off --local_ip "${NET}1/24" --device "$(memif server 1)" --local_port 888 \
  --duration 120
SERVER=$LAST_PID
wait_for_line server "listening on"

# run_client NAME ARGS...: one verified client run; fails the test on any error.
run_client() {
  local name=$1
  shift
  timeout 60 "$MSGGEN" --set machnetd=off --local_ip "${NET}2/24" --device "$(memif client 2)" \
    --remote_ip "${NET}1" --remote_port 888 --verify "$@" >"$TMP/$name.log" 2>&1 ||
    fail "$name: msg_gen exited $?: $(tail -15 "$TMP/$name.log")"
  grep -q "errors 0, outstanding 0 (verified byte for byte)" "$TMP/$name.log" ||
    fail "$name: errors: $(tail -8 "$TMP/$name.log")"
  echo "ok: $name"
  grep "summary" "$TMP/$name.log"
}

# Nothing bound on port 999 at the server: its engine answers ICMP port
# unreachable and the connect is refused at once (not a timeout).
if timeout 20 "$MSGGEN" --set machnetd=off --local_ip "${NET}2/24" --device "$(memif client 2)" \
    --remote_ip "${NET}1" --remote_port 999 --msg_count 1 \
  >"$TMP/refused.log" 2>&1; then
  fail "connect to a port with nothing bound succeeded"
fi
grep -q "failed: Connection refused" "$TMP/refused.log" ||
  fail "connect to a closed port: $(cat "$TMP/refused.log")"
echo "ok: refused"

run_client e1_1k_w1 --msg_size 1024 --msg_window 1 --duration 2.5 --warmup 0.5
run_client e2_1k_w32 --msg_size 1024 --msg_window 32 --duration 2.5 --warmup 0.5
run_client big_8m --msg_size $((8 << 20)) --msg_window 2 --msg_count 4 --warmup 0
run_client loss_1pct --msg_size 1024 --msg_window 32 --duration 2.5 --warmup 0.5 \
  --set fault.rx_drop=0.01 --set fault.tx_drop=0.01
grep -E -q "injected_loss [1-9]" "$TMP/loss_1pct.log" || fail "loss_1pct: no frame was dropped"
grep -E -q "tx_retransmits [1-9]" "$TMP/loss_1pct.log" || fail "loss_1pct: nothing retransmitted"

stop_bg "$SERVER" || fail "server exited with an error: $(tail -5 "$TMP/server.log")"
grep -q "server echoed [1-9]" "$TMP/server.log" || fail "server echoed nothing"
echo "PASS"
