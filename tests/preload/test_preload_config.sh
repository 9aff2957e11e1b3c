#!/usr/bin/env bash
# The shim's configuration at start-up and its log level (no root, no
# engine needed):
#   - a bad machnet.conf is reported at start (file:line), once, even by a
#     program that opens no socket; the program runs with nothing offloaded
#     (a UDP socket works on the kernel); under MACHNET_STRICT=1 it exits
#     with status 78 (EX_CONFIG) before main;
#   - log_level (file) and MACHNET_LOG_LEVEL set the shim's level: the
#     "no engine" warning shows by default and not at error; per-socket
#     decisions show at debug (info) and not by default; a bad value is
#     reported;
#   - with no configuration at all the shim says nothing.
. "$(dirname "$0")/lib_preload.sh"
[ -e "$PRELOAD_LIB" ] || fail "$PRELOAD_LIB not built"
[ -e /etc/machnet/machnet.conf ] && echo "note: /etc/machnet/machnet.conf exists; MACHNET_CONFIG overrides it"
pre() { env -u MACHNET_LOG_LEVEL LD_PRELOAD="$PRELOAD_VAR" "$@"; }

echo "# a bad file, reported at start"
printf 'machnetd = off\n[rules]\n10 = offload udp prot 9\n' >"$TMP/bad.conf"
want="machnet: $TMP/bad.conf:3: rules.10: unexpected 'prot'"
rc=0
MACHNET_CONFIG=$TMP/bad.conf pre /bin/true 2>"$TMP/true.err" || rc=$?
[ $rc -eq 0 ] || fail "/bin/true with a bad configuration exited $rc"
[ "$(wc -l <"$TMP/true.err")" -eq 1 ] && grep -q "^$want.*; nothing is offloaded$" "$TMP/true.err" ||
  fail "a program with no socket: expected one line '$want ...; nothing is offloaded', got: $(cat "$TMP/true.err")"
echo "ok: $(cat "$TMP/true.err")"
MACHNET_CONFIG=$TMP/bad.conf pre "$PYTHON" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
for _ in range(3):
    s.sendto(b"x", s.getsockname())
    assert s.recvfrom(10)[0] == b"x"
print("kernel socket works")' >"$TMP/py.out" 2>"$TMP/py.err" || fail "python: $(cat "$TMP/py.err")"
grep -qx "kernel socket works" "$TMP/py.out" || fail "python: $(cat "$TMP/py.out")"
[ "$(grep -c "^$want" "$TMP/py.err")" -eq 1 ] || fail "reported $(grep -c "^$want" "$TMP/py.err") times: $(cat "$TMP/py.err")"
echo "ok: reported once; the UDP socket works on the kernel"
rc=0
MACHNET_STRICT=1 MACHNET_CONFIG=$TMP/bad.conf pre /bin/echo main ran >"$TMP/strict.out" 2>"$TMP/strict.err" || rc=$?
[ $rc -eq 78 ] || fail "strict mode: exit status $rc, want 78 (EX_CONFIG)"
[ ! -s "$TMP/strict.out" ] || fail "strict mode: the program ran: $(cat "$TMP/strict.out")"
grep -q "^$want.*; strict mode (MACHNET_STRICT): exiting$" "$TMP/strict.err" ||
  fail "strict mode: $(cat "$TMP/strict.err")"
echo "ok: MACHNET_STRICT=1: exit 78 before main: $(cat "$TMP/strict.err")"

echo "# log levels"
bind_py='import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
s.sendto(b"x", ("10.254.254.254", 9))
k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
k.sendto(b"x", ("127.0.0.1", 9))'
printf 'machnetd = off\n' >"$TMP/nodev.conf"
printf 'machnetd = off\nlog_level = error\n' >"$TMP/quiet.conf"
printf 'machnetd = off\nlog_level = "debug"   # every decision\n' >"$TMP/debug.conf"
printf 'machnetd = off\nlog_level = loud\n' >"$TMP/badlevel.conf"
MACHNET_CONFIG=$TMP/nodev.conf pre "$PYTHON" -c "$bind_py" 2>"$TMP/default.err" || fail "python (default level)"
grep -q "^machnet: no engine: machnetd = off" "$TMP/default.err" || fail "default level: no warning: $(cat "$TMP/default.err")"
! grep -q "stays on the kernel (loopback)" "$TMP/default.err" || fail "default level printed info lines"
echo "ok: default level: warnings, no info"
MACHNET_CONFIG=$TMP/quiet.conf pre "$PYTHON" -c "$bind_py" 2>"$TMP/quiet.err" || fail "python (error)"
[ ! -s "$TMP/quiet.err" ] || fail "log_level = error: $(cat "$TMP/quiet.err")"
echo "ok: log_level = error: the warning is not printed"
MACHNET_CONFIG=$TMP/debug.conf pre "$PYTHON" -c "$bind_py" 2>"$TMP/debug.err" || fail "python (debug)"
grep -q "^machnet: fd [0-9]*: stays on the kernel (loopback)" "$TMP/debug.err" || fail "log_level = debug: $(cat "$TMP/debug.err")"
echo "ok: log_level = debug: $(grep loopback "$TMP/debug.err")"
MACHNET_LOG_LEVEL=error MACHNET_CONFIG=$TMP/debug.conf LD_PRELOAD="$PRELOAD_VAR" "$PYTHON" -c "$bind_py" 2>"$TMP/env.err" ||
  fail "python (env)"
[ ! -s "$TMP/env.err" ] || fail "MACHNET_LOG_LEVEL=error over the file's debug: $(cat "$TMP/env.err")"
echo "ok: MACHNET_LOG_LEVEL wins over the file"
MACHNET_CONFIG=$TMP/badlevel.conf pre /bin/true 2>"$TMP/badlevel.err"
grep -q "^machnet: $TMP/badlevel.conf:2: log_level: expected a DPDK log level.*got 'loud'" "$TMP/badlevel.err" ||
  fail "bad log_level: $(cat "$TMP/badlevel.err")"
echo "ok: $(cat "$TMP/badlevel.err")"

echo "# no configuration"
out=$(env -u MACHNET_CONFIG LD_PRELOAD="$PRELOAD_VAR" /bin/true 2>&1)
[ -e /etc/machnet/machnet.conf ] || [ -z "$out" ] || fail "no configuration: $out"
echo "ok: no configuration, nothing said"
echo "PASS"
