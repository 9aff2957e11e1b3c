#!/usr/bin/env bash
# Offloaded epoll waits where epoll_pwait2 cannot be used: epoll_compat_check
# (timeouts 0, finite, sub-millisecond and infinite; offloaded, pending,
# nested and kernel-only sets) under libmachnet_preload.so,
#   - as is;
#   - with the epoll_pwait2 symbol hidden from the shim (libhide_symbol.so,
#     preloaded after it: what a glibc before 2.35 gives);
#   - under a seccomp filter that refuses the epoll_pwait2 system call with
#     ENOSYS (a kernel before 5.11, or a container's profile).
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
CHECK="$BUILDDIR/tests/preload/epoll_compat_check"
HIDE="$BUILDDIR/tests/preload/.libs/libhide_symbol.so"
[ -x "$CHECK" ] || fail "$CHECK not built"
[ -e "$HIDE" ] || fail "$HIDE not built"
netns_up
engine_config "$TMP/machnet.conf" "log_level = debug"
start_bg peer ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7900
wait_for_line peer "serving on"

run() { # NAME PORT [env...] -- [args]: one run in host A under the preload
  local name=$1 port=$2
  shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  timeout 60 ip netns exec "$MN_NS_A" env "${envs[@]}" "$RUN" --preload "$PRELOAD_LIB" \
    --config "$TMP/machnet.conf" -- "$CHECK" "$MN_IP_B" 7900 "$port" "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" ||
    fail "$name: $(grep -v '^ok' "$TMP/$name.out" | tail -5) $(tail -n 3 "$TMP/$name.err")"
  grep -q "machnet: offloading UDP" "$TMP/$name.err" || fail "$name: nothing offloaded"
  grep -qx "done: 0 failures" "$TMP/$name.out" || fail "$name: $(cat "$TMP/$name.out")"
  echo "ok: $name: $(grep -c '^ok ' "$TMP/$name.out") waits as expected"
}

run plain 46000 MN_NONE=1 --
run hidden 46001 LD_PRELOAD="$HIDE" MN_TEST_HIDE_SYMBOL=epoll_pwait2 --
grep -q "machnet: libc has no epoll_pwait2" "$TMP/hidden.err" ||
  fail "hidden: the shim still found epoll_pwait2: $(head -3 "$TMP/hidden.err")"
echo "ok: with no epoll_pwait2 in libc the shim waits with epoll_pwait"
run seccomp 46002 MN_NONE=1 -- seccomp
grep -q "^seccomp: the epoll_pwait2 system call fails with ENOSYS" "$TMP/seccomp.out" ||
  fail "seccomp: the filter was not installed"
grep -q "machnet: epoll_pwait2: ENOSYS" "$TMP/seccomp.err" ||
  fail "seccomp: the shim never met the refused epoll_pwait2: $(grep epoll "$TMP/seccomp.err")"
echo "ok: with epoll_pwait2 refused (ENOSYS) the shim falls back to epoll_pwait"
echo "PASS"
