#!/usr/bin/env bash
# Shared-IP AF_XDP mode: the engine uses host A's kernel address. The XDP
# program hands it only UDP for its bound ports; ARP, ICMP and every other
# port stay with A's kernel, and the engine resolves neighbours through the
# kernel's table (it never sees ARP replies).
. "$(dirname "$0")/lib.sh"
require_root
netns_up
DEV="net_af_xdp0,iface=$MN_IF_A,start_queue=0,queue_count=1"
SHARED=(--device "$DEV" --ip "$MN_IP_A/$MN_PREFIX_LEN" --set xdp_shared_ip=yes)

start_bg kernel_a ip netns exec "$MN_NS_A" python3 "$UDP_PEER" echo 9000 "$MN_IP_A"
wait_for_line kernel_a "echoing on"
# Interface locks (/run/machnet/af_xdp-*.lock) of engines that died without
# removing theirs are swept at the next AF_XDP engine start; one still held
# by a live owner stays.
mkdir -p /run/machnet
STALE="/run/machnet/af_xdp-0-stale$$.lock" HELD="/run/machnet/af_xdp-0-held$$.lock"
echo 999999999 >"$STALE"
: >"$HELD"
start_bg holder python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "w"); fcntl.flock(f, fcntl.LOCK_EX); print("held", flush=True); time.sleep(600)' "$HELD"
HOLDER=$LAST_PID
wait_for_line holder "held"
start_bg server ip netns exec "$MN_NS_A" "$ECHO_BIN" --set machnetd=off --server --port 7 "${SHARED[@]}"
SERVER=$LAST_PID
wait_for_line server "listening on"
grep -q "shared IP" "$TMP/server.log" || fail "engine not in shared-IP mode"
[ ! -e "$STALE" ] || fail "the dead engine's lock $STALE was not swept at start"
[ -e "$HELD" ] || fail "a lock held by a live process ($HELD) was removed"
stop_bg "$HOLDER" || true
rm -f "$HELD"
echo "ok: a dead engine's interface lock swept at start, a held one kept"

ip netns exec "$MN_NS_B" ping -c 2 -i 0.2 -W 2 "$MN_IP_A" >/dev/null || fail "A's kernel stopped answering ping"
echo "ok: ping $MN_IP_A answered by A's kernel"
ip netns exec "$MN_NS_B" python3 "$UDP_PEER" client "$MN_IP_A" 7 1,1472 20 ||
  fail "kernel client <-> engine on the shared address"
echo "ok: UDP port 7 of $MN_IP_A served by the engine"
ip netns exec "$MN_NS_B" python3 "$UDP_PEER" client "$MN_IP_A" 9000 1,1472,8000 5 ||
  fail "kernel service on the same address"
echo "ok: UDP port 9000 of $MN_IP_A still served by A's kernel"
stop_bg "$SERVER" || fail "machnet-echo server exited with an error"
grep -q "udp rx 40 tx 40" "$TMP/server.log" || fail "engine echo count: $(grep counters "$TMP/server.log")"

# The engine as client: B's MAC must come from A's kernel neighbour table.
ip netns exec "$MN_NS_A" ip neigh flush all
start_bg peer ip netns exec "$MN_NS_B" python3 "$UDP_PEER" echo 9001
wait_for_line peer "echoing on"
ip netns exec "$MN_NS_A" "$ECHO_BIN" --set machnetd=off --client --peer "$MN_IP_B:9001" --port 40000 --sizes 1,1472 \
  --count 40 --warmup 0 "${SHARED[@]}" >"$TMP/client.log" 2>&1 ||
  fail "engine client (shared IP) <-> kernel server: $(tail -5 "$TMP/client.log")"
cat "$TMP/client.log"
grep -q "lost 0, bad 0" "$TMP/client.log" || fail "client saw lost or bad replies"
ip netns exec "$MN_NS_A" ip neigh show "$MN_IP_B" | grep -qi "$MN_MAC_B" ||
  fail "A's kernel did not resolve B for the engine"
echo "ok: engine client on the shared address resolved B through the kernel"
echo "PASS"
