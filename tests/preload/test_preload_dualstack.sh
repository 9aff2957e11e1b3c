#!/usr/bin/env bash
# Dual-stack UDP (AF_INET6 sockets, IPV6_V6ONLY off) under the preload, in
# the two-host topology:
#   - dualstack.py in host A (engine MN_NET.101 on AF_XDP, its own address):
#     a server bound to [::] answering a kernel client in host B, and a
#     client connecting and sending to ::ffff:B; every address it gets is a
#     v4-mapped sockaddr_in6, and the peer sees the engine's address (the
#     datagrams went through the engine); native IPv6 and IPv4 loopback
#     peers are reached through the kernel from the same socket;
#   - iperf3 -u, server and client both under machnet-run (engines sharing
#     the kernels' addresses, so iperf3's TCP control connection stays on
#     the kernel): the test completes, the engines' counters carry the
#     datagrams and the kernels' UDP counters do not.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
command -v iperf3 >/dev/null || fail "iperf3 is not installed (tools/install-deps.sh installs it)"
DUAL="$SRCDIR/tests/preload/dualstack.py"
netns_up
engine_config "$TMP/machnet.conf"
preload_in_a "$TMP/machnet.conf"

echo "# dual-stack server in A, kernel client in B"
start_bg dserver "${PRE_A[@]}" "$PYTHON" "$DUAL" server 7700 60
wait_for_line dserver "serving on" || fail "dual-stack server did not start"
wait_for_line dserver "machnet: offloading UDP" 10 || fail "dual-stack server did not offload"
ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" client "$MN_NET.101" 7700 1,200,1400 20 ||
  fail "kernel client <-> dual-stack server on the engine's address"
for _ in $(seq 50); do grep -q "server echoed" "$TMP/dserver.log" && break; sleep 0.1; done
grep -q "ok: server echoed 60 datagrams" "$TMP/dserver.log" || fail "server: $(tail -n 3 "$TMP/dserver.log")"
grep "^ok:" "$TMP/dserver.log"

echo "# dual-stack client in A, kernel server in B"
start_bg peer ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7701
wait_for_line peer "serving on"
"${PRE_A[@]}" "$PYTHON" "$DUAL" client "$MN_IP_B" 7701 >"$TMP/dclient.out" 2>"$TMP/dclient.err" ||
  fail "dual-stack client: $(tail -n 3 "$TMP/dclient.out" "$TMP/dclient.err")"
cat "$TMP/dclient.out"
grep -q "machnet: offloading UDP" "$TMP/dclient.err" || fail "dual-stack client did not offload"
grep -qx "dualstack: seen as $MN_NET.101" "$TMP/dclient.out" ||
  fail "the peer did not see the engine's address $MN_NET.101"
echo "ok: the peer saw the dual-stack client as the engine, $MN_NET.101"

echo "# iperf3 -u, both ends under machnet-run (dual-stack sockets)"
for h in a b; do
  if [ $h = a ]; then ifc=$MN_IF_A ip=$MN_IP_A; else ifc=$MN_IF_B ip=$MN_IP_B; fi
  {
    echo "device = net_af_xdp0,iface=$ifc,start_queue=0,queue_count=1"
    echo "ip = $ip/$MN_PREFIX_LEN"
    echo "xdp_shared_ip = yes"
    echo "library = $ENGINE_LIB"
    echo "machnetd = off"
  } >"$TMP/iperf_$h.conf"
done
udp_count() { # NS FIELD: the kernel's Udp counter in a namespace
  ip netns exec "$1" awk -v f="$2" '/^Udp:/ { if (!n) { for (i = 1; i <= NF; i++) c[i] = $i; n = 1 } else for (i = 1; i <= NF; i++) if (c[i] == f) print $i }' /proc/net/snmp
}
in_b0=$(udp_count "$MN_NS_B" InDatagrams)
out_a0=$(udp_count "$MN_NS_A" OutDatagrams)
start_bg iperf_srv ip netns exec "$MN_NS_B" "$RUN" --preload "$PRELOAD_LIB" --config "$TMP/iperf_b.conf" -- \
  iperf3 -s -p 5201 --forceflush
SRV=$LAST_PID
wait_for_line iperf_srv "Server listening" || fail "iperf3 server did not start"
ip netns exec "$MN_NS_A" "$RUN" --preload "$PRELOAD_LIB" --config "$TMP/iperf_a.conf" -- \
  iperf3 -c "::ffff:$MN_IP_B" -p 5201 -u -b 20M -l 1200 -t 3 --json >"$TMP/iperf_cli.json" 2>"$TMP/iperf_cli.err" &
CLI=$!
PIDS+=("$CLI")
sleep 1.5
"$PYTHON" "$SRCDIR/tests/integration/udp_peer.py" telemetry "$CLI" udp_tx=1000 ||
  fail "the iperf3 client's engine did not send the datagrams"
wait "$CLI" || fail "iperf3 client failed: $(tail -n 5 "$TMP/iperf_cli.err" "$TMP/iperf_cli.json")"
grep -q "machnet: offloading UDP" "$TMP/iperf_cli.err" || fail "the iperf3 client did not offload"
read -r sent lost < <("$PYTHON" -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]["sum"]
print(e["packets"], e["lost_packets"])' "$TMP/iperf_cli.json") || fail "no iperf3 result: $(tail -n 5 "$TMP/iperf_cli.json")"
received=$((sent - lost))
echo "iperf3 -u: $sent datagrams sent, $lost lost"
[ "$received" -gt 1000 ] || fail "iperf3 -u: only $received datagrams received"
"$PYTHON" "$SRCDIR/tests/integration/udp_peer.py" telemetry "$SRV" "udp_rx=$received" ||
  fail "the iperf3 server's engine did not receive the datagrams"
grep -q "machnet: offloading UDP" "$TMP/iperf_srv.log" || fail "the iperf3 server did not offload"
in_b=$(( $(udp_count "$MN_NS_B" InDatagrams) - in_b0 ))
out_a=$(( $(udp_count "$MN_NS_A" OutDatagrams) - out_a0 ))
echo "kernel UDP during the run: host A sent $out_a, host B received $in_b datagrams"
[ "$in_b" -lt $((received / 10)) ] && [ "$out_a" -lt $((received / 10)) ] ||
  fail "the iperf3 datagrams went through the kernel"
echo "ok: iperf3 -u through both engines: $received datagrams, the kernels' UDP counters flat"
stop_bg "$SRV" || true
echo "PASS"
