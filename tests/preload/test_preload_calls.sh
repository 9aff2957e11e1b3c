#!/usr/bin/env bash
# Every intercepted call on UDP sockets, kernel vs preload: udp_calls runs in
# host A once on the kernel and once under libmachnet_preload.so (engine on
# AF_XDP with its own address MN_NET.101), against the same kernel peer in
# host B. The outputs (results and errno of each call) must be identical, and
# the peer must have seen the engine's address in the preloaded run. Then
# four threads share one offloaded socket.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
netns_up
ENGINE_IP="$MN_NET.101"

start_bg peer ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7100
wait_for_line peer "serving on"

echo "# kernel run"
ip netns exec "$MN_NS_A" "$UDP_CALLS" "$MN_IP_B" 7100 "$MN_IP_A" 41000 >"$TMP/kernel.out" 2>"$TMP/kernel.err" ||
  fail "udp_calls on the kernel: $(tail -5 "$TMP/kernel.err")"
grep -q "^done" "$TMP/kernel.out" || fail "kernel run did not finish"

echo "# preloaded run"
engine_config "$TMP/machnet.conf"
preload_in_a "$TMP/machnet.conf"
"${PRE_A[@]}" "$UDP_CALLS" "$MN_IP_B" 7100 "$ENGINE_IP" 41000 \
  >"$TMP/preload.out" 2>"$TMP/preload.err" ||
  fail "udp_calls under the preload: $(tail -5 "$TMP/preload.err")
last calls: $(tail -5 "$TMP/preload.out")"
cat "$TMP/preload.err"
grep -q "^machnet: offloading UDP .*net_af_xdp" "$TMP/preload.err" ||
  fail "no start-up line naming the device on stderr"
if ! diff -u "$TMP/kernel.out" "$TMP/preload.out" >"$TMP/diff.log"; then
  cat "$TMP/diff.log"
  fail "udp_calls differs between the kernel and the preload"
fi
grep -q "^whoami: peer saw local" "$TMP/preload.out" || fail "the peer did not see the engine's address"
echo "ok: $(grep -c ': ret=' "$TMP/kernel.out") calls give the kernel's results and errno under the preload"

echo "# preloaded run, signals while spinning (socket.spin_us 2 s)"
# Every blocking call spins for up to 2 s, so each SIGALRM (100 ms) lands in
# a spin: without SA_RESTART the call must end with EINTR at once, with it
# the receive must go on, as on the kernel.
MACHNET_SOCKET_SPIN_US=2000000 "${PRE_A[@]}" "$UDP_CALLS" "$MN_IP_B" 7100 "$ENGINE_IP" 41000 \
  >"$TMP/spin.out" 2>"$TMP/spin.err" ||
  fail "udp_calls under the preload with a 2 s spin: $(tail -5 "$TMP/spin.err")
last calls: $(tail -5 "$TMP/spin.out")"
if ! diff -u "$TMP/kernel.out" "$TMP/spin.out" >"$TMP/diff_spin.log"; then
  cat "$TMP/diff_spin.log"
  fail "udp_calls with signals during the spin differs from the kernel"
fi
echo "ok: signals during the spin: EINTR and SA_RESTART as on the kernel"

echo "# threads sharing one socket"
THREADS_CHECK="$BUILDDIR/tests/preload/threads_check"
ip netns exec "$MN_NS_A" "$THREADS_CHECK" "$MN_IP_B" 7100 43000 >"$TMP/threads_kernel.out" 2>&1 ||
  fail "threads_check on the kernel: $(cat "$TMP/threads_kernel.out")"
"${PRE_A[@]}" "$THREADS_CHECK" "$MN_IP_B" 7100 43000 close >"$TMP/threads.out" 2>&1 ||
  fail "threads_check under the preload: $(cat "$TMP/threads.out")"
cat "$TMP/threads.out"
grep -q "received 1000, bad 0, duplicates 0, timeouts 0" "$TMP/threads.out" || fail "threads lost or mixed datagrams"
grep -q "close while another thread waits: EBADF" "$TMP/threads.out" || fail "a wait on a closed socket did not end with EBADF"
echo "ok: 4 threads on one offloaded socket: every echo exactly once; close ends a waiting recv with EBADF"
echo "PASS"
