#!/usr/bin/env bash
# fork() and exec under the preload, and strict mode:
#   - fork without exec: the child gets EBADFD on the inherited offloaded
#     socket (the engine stays the parent's), can close it, and its new
#     sockets use the kernel; it neither hangs nor crashes, and the parent's
#     socket keeps working;
#   - fork + exec: the inherited fd is a plain kernel socket, no engine fd is
#     inherited, and the preload works in the new program;
#   - an engine that cannot start: the socket falls back to the kernel with a
#     log line, or fails with ENETDOWN under MACHNET_STRICT=1.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
FORK_CHECK="$BUILDDIR/tests/preload/fork_check"
[ -x "$FORK_CHECK" ] || fail "$FORK_CHECK not built"
netns_up
ENGINE_IP="$MN_NET.101"
engine_config "$TMP/machnet.conf"
preload_in_a "$TMP/machnet.conf"

start_bg peer ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7400
wait_for_line peer "serving on"

ip netns exec "$MN_NS_A" "$FORK_CHECK" "$MN_IP_B" 7400 42000 >"$TMP/kernel.out" 2>&1 ||
  fail "fork_check on the kernel: $(cat "$TMP/kernel.out")"
"${PRE_A[@]}" "$FORK_CHECK" "$MN_IP_B" 7400 42000 >"$TMP/preload.out" 2>&1 ||
  fail "fork_check under the preload: $(cat "$TMP/preload.out")"
cat "$TMP/preload.out"
expect() { grep -qx -- "$1" "$TMP/preload.out" || fail "expected '$1'"; }
expect "parent before fork: peer saw $ENGINE_IP"
expect "fork child: recv inherited: EBADFD"
expect "fork child: sendto inherited: EBADFD"
expect "fork child: close inherited: ok"
expect "fork child new socket: peer saw $MN_IP_A"
expect "fork child: exit 0"
expect "parent after fork: peer saw $ENGINE_IP"
expect "exec child: inherited fd is a kernel socket on port 42000"
grep "^exec child: .*inherited fd" "$TMP/kernel.out" >"$TMP/fds.kernel" || true
grep "^exec child: .*inherited fd" "$TMP/preload.out" >"$TMP/fds.preload" || true
diff -u "$TMP/fds.kernel" "$TMP/fds.preload" || fail "the exec'd child inherited fds the kernel run did not have"
expect "exec child new socket: peer saw $MN_IP_A"
expect "exec child: exit 0"
expect "parent after exec child: peer saw $ENGINE_IP"
expect "vfork child: exit 0"
expect "parent after vfork child: peer saw $ENGINE_IP"
expect "daemon child: recv inherited: EBADFD"
expect "parent after daemon child: peer saw $ENGINE_IP"
echo "ok: fork and fork+exec behave as documented"

echo "# an engine that cannot start"
cat >"$TMP/bad.conf" <<CONF
device = net_af_xdp0,iface=no-such-if0
ip = $MN_NET.101/$MN_PREFIX_LEN
library = $ENGINE_LIB
machnetd = off
CONF
preload_in_a "$TMP/bad.conf"
bind_py='import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.bind(("0.0.0.0", 7500))
    print("bind ok")
except OSError as e:
    print("bind failed", e.errno)'
"${PRE_A[@]}" "$PYTHON" -c "$bind_py" >"$TMP/fallback.out" 2>"$TMP/fallback.err"
grep -qx "bind ok" "$TMP/fallback.out" || fail "non-strict fallback: $(cat "$TMP/fallback.out" "$TMP/fallback.err")"
grep -q "machnet: cannot start the engine: .*every socket stays on the kernel" "$TMP/fallback.err" ||
  fail "no log line for the failed engine: $(cat "$TMP/fallback.err")"
echo "ok: non-strict: the socket falls back to the kernel, loudly"
MACHNET_STRICT=1 "${PRE_A[@]}" "$PYTHON" -c "$bind_py" >"$TMP/strict.out" 2>"$TMP/strict.err"
grep -qx "bind failed 100" "$TMP/strict.out" || fail "strict: expected ENETDOWN (100): $(cat "$TMP/strict.out" "$TMP/strict.err")"
echo "ok: MACHNET_STRICT=1: the bind fails with ENETDOWN"

echo "# a configuration error names file:line"
printf 'ip = %s/24\n[rules]\n10 = offload udp prot 9\n' "$MN_NET.101" >"$TMP/typo.conf"
preload_in_a "$TMP/typo.conf"
"${PRE_A[@]}" "$PYTHON" -c "$bind_py" >"$TMP/typo.out" 2>"$TMP/typo.err"
grep -q "machnet: $TMP/typo.conf:3: rules.10: unexpected 'prot'" "$TMP/typo.err" ||
  fail "bad rule not reported with file:line: $(cat "$TMP/typo.err")"
echo "ok: $(head -1 "$TMP/typo.err")"
printf 'device = net_af_xdp0,iface=%s\nip = %s/24\nlibrary = %s\nmtu_size = 1500\n' \
  "$MN_IF_A" "$MN_NET.101" "$ENGINE_LIB" >"$TMP/typo2.conf"
preload_in_a "$TMP/typo2.conf"
"${PRE_A[@]}" "$PYTHON" -c "$bind_py" >"$TMP/typo2.out" 2>"$TMP/typo2.err"
# The shim checks the whole file (engine keys too) when it loads it.
grep -q "machnet: $TMP/typo2.conf:4: unknown key 'mtu_size'; nothing is offloaded" "$TMP/typo2.err" ||
  fail "unknown engine key not reported with file:line: $(cat "$TMP/typo2.err")"
echo "ok: $(head -1 "$TMP/typo2.err")"
# machnetd = auto (the default) with a socket nobody listens on: not the
# default one, which a daemon outside this test may own.
printf 'ip = %s/24\nmachnetd.socket = %s\n' "$MN_NET.101" "$TMP/no-machnetd.sock" >"$TMP/nodev.conf"
preload_in_a "$TMP/nodev.conf"
"${PRE_A[@]}" "$PYTHON" -c "$bind_py" >"$TMP/nodev.out" 2>"$TMP/nodev.err"
grep -qx "bind ok" "$TMP/nodev.out" || fail "no device: $(cat "$TMP/nodev.out" "$TMP/nodev.err")"
grep -q "machnet: no engine: machnetd is not reachable at .*, and no standalone engine is configured: set device and ip in $TMP/nodev.conf" "$TMP/nodev.err" ||
  fail "no device: no clear log line: $(cat "$TMP/nodev.err")"
echo "ok: $(head -1 "$TMP/nodev.err")"
echo "PASS"
