#!/usr/bin/env bash
# Native message API end to end on the two-host topology: machnet-msg-gen on
# AF_XDP engines at MN_NET.101 (host A) and MN_NET.102 (host B), sharing each
# veth with its kernel. Same runs as over memif, every reply verified byte for
# byte: 1 KiB window 1 and 32, a few 8 MiB messages, 1 KiB with 1% loss.
. "$(dirname "$0")/lib.sh"
require_root
MSGGEN="$BUILDDIR/machnet-msg-gen"
[ -x "$MSGGEN" ] || fail "$MSGGEN not built"
netns_up
SERVER_IP="$MN_NET.101"
CLIENT_IP="$MN_NET.102"
xdp() { echo "net_af_xdp0,iface=$1,start_queue=0,queue_count=1"; }

start_bg server ip netns exec "$MN_NS_A" "$MSGGEN" --set machnetd=off --local_ip "$SERVER_IP/$MN_PREFIX_LEN" \
  --device "$(xdp "$MN_IF_A")" --local_port 888 --duration 120
SERVER=$LAST_PID
wait_for_line server "listening on"

# run_client NAME ARGS...: one verified client run on host B.
run_client() {
  local name=$1
  shift
  timeout 60 ip netns exec "$MN_NS_B" "$MSGGEN" --set machnetd=off --local_ip "$CLIENT_IP/$MN_PREFIX_LEN" \
    --device "$(xdp "$MN_IF_B")" --remote_ip "$SERVER_IP" --remote_port 888 --verify "$@" \
    >"$TMP/$name.log" 2>&1 || fail "$name: msg_gen exited $?: $(tail -15 "$TMP/$name.log")"
  grep -q "errors 0, outstanding 0 (verified byte for byte)" "$TMP/$name.log" ||
    fail "$name: errors: $(tail -8 "$TMP/$name.log")"
  echo "ok: $name"
  grep "summary" "$TMP/$name.log"
}

# Nothing bound on port 999 at the server: its engine answers ICMP port
# unreachable and the connect is refused at once (not a timeout).
if timeout 20 ip netns exec "$MN_NS_B" "$MSGGEN" --set machnetd=off --local_ip "$CLIENT_IP/$MN_PREFIX_LEN" \
    --device "$(xdp "$MN_IF_B")" --remote_ip "$SERVER_IP" --remote_port 999 --msg_count 1 \
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

# Host A's kernel still owns its own address on the shared interface.
ip netns exec "$MN_NS_B" ping -c 1 -W 2 "$MN_IP_A" >/dev/null || fail "host A's kernel lost its address"

stop_bg "$SERVER" || fail "server exited with an error: $(tail -5 "$TMP/server.log")"
grep -q "server echoed [1-9]" "$TMP/server.log" || fail "server echoed nothing"
echo "PASS"
