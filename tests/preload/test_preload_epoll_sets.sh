#!/usr/bin/env bash
# epoll sets beyond the shim's old limits, kernel vs preload: epoll_sets_check
# runs in host A once on the kernel and once under libmachnet_preload.so
# (engine on AF_XDP, its own address MN_NET.101) against the same kernel echo
# peer in host B; the outputs must be identical: 200 offloaded members in one
# set all reported (and an infinite wait woken by late echoes), and members
# closed without EPOLL_CTL_DEL gone from every set once their last fd is
# closed (a dup keeps them), as in the kernel.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
CHECK="$BUILDDIR/tests/preload/epoll_sets_check"
[ -x "$CHECK" ] || fail "$CHECK not built"
netns_up
engine_config "$TMP/machnet.conf"
preload_in_a "$TMP/machnet.conf"
start_bg peer ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7800
wait_for_line peer "serving on"

timeout 120 ip netns exec "$MN_NS_A" "$CHECK" "$MN_IP_B" 7800 45000 >"$TMP/kernel.out" 2>&1 ||
  fail "epoll_sets_check on the kernel: $(tail -n 5 "$TMP/kernel.out")"
grep -q "^done" "$TMP/kernel.out" || fail "kernel run did not finish"
grep -qx "200 members in one set: 200 woken" "$TMP/kernel.out" || fail "kernel run: $(head -3 "$TMP/kernel.out")"
timeout 120 "${PRE_A[@]}" "$CHECK" "$MN_IP_B" 7800 45000 >"$TMP/preload.out" 2>"$TMP/preload.err" ||
  fail "epoll_sets_check under the preload: $(tail -n 5 "$TMP/preload.out" "$TMP/preload.err")"
grep -q "machnet: offloading UDP" "$TMP/preload.err" || fail "epoll_sets_check did not offload"
cat "$TMP/preload.out"
if ! diff -u "$TMP/kernel.out" "$TMP/preload.out" >"$TMP/diff.log"; then
  cat "$TMP/diff.log"
  fail "epoll_sets_check differs between the kernel and the preload"
fi
echo "ok: 200 offloaded members in one set, and members closed without EPOLL_CTL_DEL, as on the kernel"
echo "PASS"
