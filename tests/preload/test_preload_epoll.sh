#!/usr/bin/env bash
# epoll on offloaded UDP sockets, kernel vs preload: epoll_check runs in host
# A once on the kernel and once under libmachnet_preload.so (engine on AF_XDP
# with its own address MN_NET.101) against the same kernel echo peer in host
# B; the outputs (every epoll_wait's count, data and events) must be
# identical: level-triggered, EPOLLET (one report per arrival, every ready
# bit, data queued at ADD/MOD, EPOLLIN|EPOLLOUT), EPOLLONESHOT (level and
# edge, re-armed by MOD), one socket in several epoll sets, an epoll fd
# inside another (level and edge).
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
netns_up
engine_config "$TMP/machnet.conf"
preload_in_a "$TMP/machnet.conf"
start_bg peer ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7100
wait_for_line peer "serving on"

echo "# epoll: level, edge, one-shot, several sets, nested (kernel vs preload)"
EPOLL_CHECK="$BUILDDIR/tests/preload/epoll_check"
[ -x "$EPOLL_CHECK" ] || fail "$EPOLL_CHECK not built"
ip netns exec "$MN_NS_A" "$EPOLL_CHECK" "$MN_IP_B" 7100 44000 >"$TMP/epoll_kernel.out" 2>&1 ||
  fail "epoll_check on the kernel: $(tail -5 "$TMP/epoll_kernel.out")"
grep -q "^done" "$TMP/epoll_kernel.out" || fail "epoll_check kernel run did not finish"
"${PRE_A[@]}" "$EPOLL_CHECK" "$MN_IP_B" 7100 44000 >"$TMP/epoll_preload.out" 2>"$TMP/epoll_preload.err" ||
  fail "epoll_check under the preload: $(tail -5 "$TMP/epoll_preload.out" "$TMP/epoll_preload.err")"
grep -q "machnet: offloading UDP" "$TMP/epoll_preload.err" || fail "epoll_check did not offload its socket"
if ! diff -u "$TMP/epoll_kernel.out" "$TMP/epoll_preload.out" >"$TMP/epoll_diff.log"; then
  cat "$TMP/epoll_diff.log"
  fail "epoll_check differs between the kernel and the preload"
fi
echo "ok: $(grep -c ': ret=' "$TMP/epoll_kernel.out") epoll steps (level, EPOLLET, EPOLLONESHOT, several sets, nested) give the kernel's results"

echo "PASS"
