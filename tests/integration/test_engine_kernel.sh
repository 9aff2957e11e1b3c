#!/usr/bin/env bash
# Acceptance 2 of the foundation: the standalone engine on AF_XDP, sharing the
# veth of host A with A's kernel, talks to host B's kernel:
#   - host B pings the engine's address with no static neighbour entry
#     (the engine answers ARP and ICMP echo);
#   - a kernel UDP client on B exchanges 1, 1472 and 8000-byte datagrams
#     (the last fragmented both ways) with machnet-echo, byte for byte;
#   - machnet-echo as the client against a kernel UDP echo server on B;
#   - host A's kernel keeps its own address on the same interface.
. "$(dirname "$0")/lib.sh"
require_root
netns_up
ENGINE_IP="$MN_NET.101"
DEV="net_af_xdp0,iface=$MN_IF_A,start_queue=0,queue_count=1"

echo "# engine as echo server on $ENGINE_IP ($MN_IF_A in $MN_NS_A)"
start_bg server ip netns exec "$MN_NS_A" "$ECHO_BIN" --set machnetd=off --server --port 7 \
  --device "$DEV" --ip "$ENGINE_IP/$MN_PREFIX_LEN"
SERVER=$LAST_PID
wait_for_line server "listening on"

ip netns exec "$MN_NS_B" ip neigh show | grep -q PERMANENT && fail "static neighbour entries in $MN_NS_B"
ip netns exec "$MN_NS_B" ping -c 3 -i 0.2 -W 2 "$ENGINE_IP" >"$TMP/ping.log" 2>&1 ||
  fail "ping $ENGINE_IP from $MN_NS_B: $(tail -3 "$TMP/ping.log")"
grep -q " 0% packet loss" "$TMP/ping.log" || fail "ping lost packets: $(tail -2 "$TMP/ping.log")"
ip netns exec "$MN_NS_B" ip neigh show "$ENGINE_IP" | grep -q -E "REACHABLE|STALE|DELAY" ||
  fail "host B did not learn the engine's MAC by ARP"
echo "ok: ping $ENGINE_IP (engine answered ARP and ICMP echo)"

# A second engine on the same interface is refused, and the first keeps it.
if ip netns exec "$MN_NS_A" "$ECHO_BIN" --set machnetd=off --server --port 8 --device "$DEV" \
  --ip "$MN_NET.103/$MN_PREFIX_LEN" --count 1 >"$TMP/second.log" 2>&1; then
  fail "a second engine took over $MN_IF_A"
fi
grep -q "in use by another machnet engine (pid $SERVER" "$TMP/second.log" ||
  fail "second engine: unexpected error: $(tail -2 "$TMP/second.log")"
echo "ok: a second engine on $MN_IF_A is refused"

# The kernel of host A still owns its address on the same interface.
ip netns exec "$MN_NS_B" ping -c 1 -W 2 "$MN_IP_A" >/dev/null || fail "host A's kernel lost its address"
echo "ok: host A's kernel still answers on $MN_IP_A"

ip netns exec "$MN_NS_B" python3 "$UDP_PEER" client "$ENGINE_IP" 7 1,1472,8000 20 ||
  fail "kernel client <-> machnet-echo server"
echo "ok: kernel UDP client <-> engine, 1/1472/8000 bytes"

ip netns exec "$MN_NS_B" python3 "$UDP_PEER" refused "$ENGINE_IP" 4444 ||
  fail "no ICMP port unreachable from the engine for a closed port"
echo "ok: closed engine port -> ECONNREFUSED on the kernel's connected socket"

# The live engine's counters over DPDK telemetry (/machnet/counters).
python3 "$UDP_PEER" telemetry "$SERVER" udp_rx=60 udp_tx=60 icmp_echo_replies=3 \
  icmp_unreachable_tx=1 reassembled=20 || fail "telemetry counters"
echo "ok: counters readable through DPDK telemetry"

stop_bg "$SERVER" || fail "machnet-echo server exited with an error"
cat "$TMP/server.log"
grep -q "reassembled [1-9]" "$TMP/server.log" || fail "server reassembled no datagram"
grep -q "icmp echo replies [1-9]" "$TMP/server.log" || fail "server sent no ICMP echo reply"
grep -q "unreachable rx 0 tx [1-9]" "$TMP/server.log" || fail "server sent no port unreachable"

echo "# machnet-echo as client against a kernel echo server on $MN_IP_B"
start_bg peer ip netns exec "$MN_NS_B" python3 "$UDP_PEER" echo 9000
wait_for_line peer "echoing on"
ip netns exec "$MN_NS_A" "$ECHO_BIN" --set machnetd=off --client --peer "$MN_IP_B:9000" --sizes 1,1472,8000 \
  --count 60 --warmup 0 --device "$DEV" --ip "$ENGINE_IP/$MN_PREFIX_LEN" >"$TMP/client.log" 2>&1 ||
  fail "machnet-echo client <-> kernel echo server: $(tail -5 "$TMP/client.log")"
cat "$TMP/client.log"
grep -q "lost 0, bad 0" "$TMP/client.log" || fail "client saw lost or bad replies"
echo "ok: engine client <-> kernel UDP server, 1/1472/8000 bytes"
echo "PASS"
