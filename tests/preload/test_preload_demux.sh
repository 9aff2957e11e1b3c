#!/usr/bin/env bash
# Several UDP sockets on one port, demultiplexed by the full address as the
# kernel does, in the two-host topology:
#   - demux_check (demux_check.c) in host A against kernel peers X and Y in
#     host B: socket A bound to a port and connected to X, socket B bound to
#     the same port unconnected (SO_REUSEADDR), in both orders: X's datagrams
#     reach A only, Y's reach B only; a second bind without SO_REUSEADDR gets
#     EADDRINUSE. Run without and with the preload (engine sharing the
#     kernel's address): the outputs must be the same.
#   - a UDP bind on the port the engine holds for the transport (a stream
#     listener's rendezvous port) fails with EADDRINUSE and one log line,
#     rather than leaving a kernel socket the engine's steering starves;
#   - iperf3 -u -P 3, both ends under machnet-run: the server connects its
#     listening socket to each stream and binds a new one to the same port
#     for the next; every stream's datagrams arrive, and the server's
#     received byte counts match the client's view of them.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
command -v iperf3 >/dev/null || fail "iperf3 is not installed (tools/install-deps.sh installs it)"
DEMUX="$BUILDDIR/tests/preload/demux_check"
[ -x "$DEMUX" ] || fail "$DEMUX not built (make check builds it)"
netns_up
# Engines sharing the kernels' addresses (shared-IP AF_XDP): a bound UDP port
# is steered to the engine, so a socket left on the kernel for it would
# never receive; and the same addresses with and without the preload.
for h in a b; do
  if [ $h = a ]; then ifc=$MN_IF_A ip=$MN_IP_A; else ifc=$MN_IF_B ip=$MN_IP_B; fi
  {
    echo "device = net_af_xdp0,iface=$ifc,start_queue=0,queue_count=1"
    echo "ip = $ip/$MN_PREFIX_LEN"
    echo "xdp_shared_ip = yes"
    echo "library = $ENGINE_LIB"
    echo "machnetd = off"
  } >"$TMP/shared_$h.conf"
done
preload_in_a "$TMP/shared_a.conf"

echo "# connected and unconnected sockets on one port: kernel, then preload"
start_bg dpeer ip netns exec "$MN_NS_B" "$DEMUX" peer 7811 7812 50
wait_for_line dpeer "peer ready" || fail "demux peers did not start"
ip netns exec "$MN_NS_A" "$DEMUX" run "$MN_IP_B" 7811 7812 7820 50 >"$TMP/kernel.out" ||
  fail "kernel sockets: $(tail -n 3 "$TMP/kernel.out")"
"${PRE_A[@]}" "$DEMUX" run "$MN_IP_B" 7811 7812 7820 50 >"$TMP/preload.out" 2>"$TMP/preload.err" ||
  fail "under the preload: $(tail -n 3 "$TMP/preload.out" "$TMP/preload.err")"
cat "$TMP/preload.out"
grep -q "machnet: offloading UDP" "$TMP/preload.err" || fail "demux_check did not offload"
diff -u "$TMP/kernel.out" "$TMP/preload.out" || fail "the preload's results differ from the kernel's"
echo "ok: same results with and without the preload"

echo "# a UDP bind on the transport's rendezvous port"
ip netns exec "$MN_NS_A" "$DEMUX" listen-bind 7830 14700 >"$TMP/lb_kernel.out" 2>&1
grep -qx "bind: ok" "$TMP/lb_kernel.out" || fail "kernel: $(cat "$TMP/lb_kernel.out")"
"${PRE_A[@]}" "$DEMUX" listen-bind 7830 14700 >"$TMP/lb.out" 2>"$TMP/lb.err"
grep -qx "bind: EADDRINUSE" "$TMP/lb.out" || fail "preload: $(cat "$TMP/lb.out" "$TMP/lb.err")"
[ "$(grep -c "UDP port 14700 is the engine's already" "$TMP/lb.err")" = 1 ] ||
  fail "no single log line about port 14700: $(cat "$TMP/lb.err")"
echo "ok: EADDRINUSE and one log line, not a deaf socket"

echo "# iperf3 -u -P 3, both ends under machnet-run"
start_bg iperf_srv ip netns exec "$MN_NS_B" "$RUN" --preload "$PRELOAD_LIB" --config "$TMP/shared_b.conf" -- \
  iperf3 -s -p 5201 -1 -J --logfile "$TMP/iperf_srv.json"
SRV=$LAST_PID
for _ in $(seq 200); do
  ip netns exec "$MN_NS_B" ss -Hlnt "sport = :5201" | grep -q . && break
  kill -0 "$SRV" 2>/dev/null || fail "iperf3 server exited: $(cat "$TMP/iperf_srv.log")"
  sleep 0.1
done
ip netns exec "$MN_NS_A" timeout 60 "$RUN" --preload "$PRELOAD_LIB" --config "$TMP/shared_a.conf" -- \
  iperf3 -c "$MN_IP_B" -p 5201 -u -b 4M -l 1200 -t 3 -P 3 --json \
  >"$TMP/iperf_cli.json" 2>"$TMP/iperf_cli.err" ||
  fail "iperf3 client failed: $(tail -n 5 "$TMP/iperf_cli.err" "$TMP/iperf_cli.json")"
# The server (-1) exits after the test; it is stopped after 30 s (a stream
# that never got its datagrams would keep it waiting).
for _ in $(seq 300); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
stop_bg "$SRV" || true
grep -q "machnet: offloading UDP" "$TMP/iperf_cli.err" || fail "the iperf3 client did not offload"
grep -q "machnet: offloading UDP" "$TMP/iperf_srv.log" || fail "the iperf3 server did not offload"
"$PYTHON" - "$TMP/iperf_cli.json" "$TMP/iperf_srv.json" <<'EOF' || fail "iperf3 -u -P 3: see above"
import json, sys
cli = json.load(open(sys.argv[1]))["end"]["streams"]
srv = json.load(open(sys.argv[2]))
streams = srv["end"]["streams"]
if len(cli) != 3 or len(streams) != 3:
    sys.exit(f"{len(cli)} client and {len(streams)} server streams, not 3")
ok = True
total = 0
for i, (c, s) in enumerate(zip(cli, streams)):
    c, s = c["udp"], s["udp"]
    got = s["packets"] - s["lost_packets"]
    # The server's received bytes are in its intervals (its end figures
    # carry none for UDP).
    nbytes = sum(iv["streams"][i]["bytes"] for iv in srv["intervals"])
    total += nbytes
    print(f"stream {i}: client sent {c['packets']} datagrams ({c['bytes']} bytes); server "
          f"received {got} ({nbytes} bytes), {s['lost_packets']} lost")
    # Whole datagrams; at this rate (nearly) every one arrives, where a deaf
    # or misrouted stream gets none.
    if got <= 0 or nbytes != got * 1200 or got < c["packets"] * 0.9:
        ok = False
if total != srv["end"]["sum_received"]["bytes"]:
    print(f"streams' bytes {total} != the server's sum {srv['end']['sum_received']['bytes']}")
    ok = False
sys.exit(0 if ok else 1)
EOF
echo "ok: iperf3 -u -P 3 through both engines, every stream's datagrams received"
echo "PASS"
