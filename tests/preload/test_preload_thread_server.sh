#!/usr/bin/env bash
# A UDP socket served by a thread other than the one that made it (as
# memcached does, and Python servers with a worker thread), under machnet-run
# on AF_XDP: every one of 20,000 requests from a kernel client in host B is
# answered, and the kernel's statistics of the engine's AF_XDP socket
# (XDP_STATISTICS, read with pidfd_getfd) count no invalid TX descriptor.
# Such a thread has no DPDK lcore and no mempool cache: its mbufs cycle
# through the whole pool, so every mbuf of it is sent from sooner or later.
# net_af_xdp (DPDK before 24.07) registers a UMEM that holds the pool only if
# its objects lie packed end to end; with a default pool (no object across a
# hugepage boundary) the last ~11 of 16383 lay past the UMEM's end and the
# kernel rejected every reply sent from them (5 per pass through the pool).
# Both memory modes: hugepages (the default) and hugepages = no.
# The same server and client on the kernel first: the client itself is right.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
netns_up
ENGINE_IP="$MN_NET.101"
TS="$SRCDIR/tests/preload/thread_server.py"
N=20000

echo "# the kernel: server in host B, client in host A"
start_bg kserver ip netns exec "$MN_NS_B" "$PYTHON" "$TS" serve 7300
KPID=$LAST_PID
wait_for_line kserver "serving port" || fail "kernel thread server did not start"
ip netns exec "$MN_NS_A" "$PYTHON" "$TS" client "$MN_IP_B" 7300 "$N" >"$TMP/kclient.log" 2>&1 ||
  fail "kernel client <-> kernel thread server: $(cat "$TMP/kclient.log")"
stop_bg "$KPID" || true
echo "ok: kernel: $(sed 's/^thread_server: //' "$TMP/kclient.log")"

# preloaded_load LABEL PORT N [CONFIG LINE]: the thread server under the
# preload with that engine configuration, N requests from host B; fails
# unless all are answered and the kernel rejected no TX descriptor.
preloaded_load() {
  local label=$1 port=$2 n=$3 conf="$TMP/machnet_$1.conf" ppid="" p rc=0 invalid
  shift 3
  engine_config "$conf" "$@"
  preload_in_a "$conf"
  echo "# preloaded server on $ENGINE_IP ($label; socket served by a second thread), kernel client in host B"
  start_bg "server_$label" "${PRE_A[@]}" "$PYTHON" "$TS" serve "$port"
  SPID=$LAST_PID
  wait_for_line "server_$label" "serving port" || fail "preloaded thread server ($label) did not start"
  grep -q "machnet: offloading UDP" "$TMP/server_$label.log" || fail "the thread server ($label) did not offload"
  # The python process is the one that loaded the engine (machnet-run and
  # ip netns exec exec into it, or stay as its parents).
  for p in $SPID $(pgrep -f "$TS serve $port" || true); do
    [ -d "/proc/$p" ] && grep -q libmachnet.so "/proc/$p/maps" 2>/dev/null && ppid=$p && break
  done
  [ -n "$ppid" ] || fail "no preloaded python process for the thread server ($label)"
  ip netns exec "$MN_NS_B" "$PYTHON" "$TS" client "$ENGINE_IP" "$port" "$n" \
    >"$TMP/client_$label.log" 2>&1 || rc=$?
  "$PYTHON" "$TS" xsk-stats "$ppid" >"$TMP/xsk_$label.log" 2>&1 ||
    fail "no AF_XDP socket statistics for pid $ppid: $(cat "$TMP/xsk_$label.log")"
  echo "  AF_XDP socket: $(cat "$TMP/xsk_$label.log")"
  invalid=$(sed -n 's/.*tx_invalid_descs=\([0-9]*\).*/\1/p' "$TMP/xsk_$label.log")
  [ -n "$invalid" ] || fail "no tx_invalid_descs in $(cat "$TMP/xsk_$label.log")"
  [ "$rc" -eq 0 ] || fail "kernel client <-> preloaded thread server ($label):" \
    "$(cat "$TMP/client_$label.log"); the kernel rejected $invalid TX descriptors"
  [ "$invalid" -eq 0 ] || fail "the kernel rejected $invalid TX descriptors of the engine's AF_XDP socket ($label)"
  stop_bg "$SPID" || true
  echo "ok: preloaded ($label): $(sed 's/^thread_server: //' "$TMP/client_$label.log"), tx_invalid_descs 0"
}

preloaded_load hugepages 7301 "$N"
# Without hugepages the default pool kept each object within a 4 KiB page:
# over a third of the mbufs lay past the UMEM (28% of replies lost).
preloaded_load no-hugepages 7302 5000 "hugepages = no"
echo "PASS"
