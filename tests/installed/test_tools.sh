#!/usr/bin/env bash
# The installed tools, files and system integration, with no daemon, device
# or network: versions and usage, the shim found where machnet-run says and
# loaded from there, machnet-stat without a daemon, every machnet library
# resolved from the package's directory, libmachnet.so.0's exports, the
# machnet group, /run/machnet, the conffiles, and every file the installed
# man pages cite.
. "$(dirname "$0")/lib.sh"

machnetd --version >"$TMP/version.log" 2>&1 || fail "machnetd --version: $(cat "$TMP/version.log")"
grep -Eq '^machnetd \(machnet\) [0-9]+\.[0-9]+\.[0-9]+' "$TMP/version.log" ||
  fail "machnetd --version: $(cat "$TMP/version.log")"
for p in machnet-run machnet-stat machnet-echo machnet-msg-gen machnet-kv-server machnet-kv-load \
  machnet-netns machnetd; do
  "$p" --help >"$TMP/help.log" 2>&1 || fail "$p --help exited $?: $(head -3 "$TMP/help.log")"
  grep -qi "usage" "$TMP/help.log" || fail "$p --help printed no usage"
done
rc=0
machnet-run >"$TMP/norun.log" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "machnet-run without a program exited $rc, not 2"
ok "$(cat "$TMP/version.log"); every tool answers --help"

# machnet-stat with no daemon on a socket: a message and status 1.
rc=0
machnet-stat --socket "$TMP/none.sock" >"$TMP/stat.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "machnet-stat without a daemon exited $rc, not 1"
grep -q "$TMP/none.sock" "$TMP/stat.log" || fail "machnet-stat names no socket: $(cat "$TMP/stat.log")"
ok "machnet-stat without a daemon: $(head -1 "$TMP/stat.log")"

# The shim, preloaded by machnet-run from its fixed path, reads the installed
# /etc/machnet/machnet.conf: an offloaded bind with no machnetd and no device
# stays on the kernel and says why. No datagram is sent. (A bind to port 0
# is not decided at bind.)
machnet-run -- python3 -c '
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 20000 + os.getpid() % 20000))
print("bound", s.getsockname()[1], flush=True)
maps = open("/proc/self/maps").read()
print("\n".join(sorted({l.split()[-1] for l in maps.splitlines() if "libmachnet" in l})))
' >"$TMP/shim.log" 2>&1 || fail "python3 under machnet-run: $(cat "$TMP/shim.log")"
grep -q "^bound " "$TMP/shim.log" || fail "the bind failed under the shim: $(cat "$TMP/shim.log")"
grep -qx "$SHIM" "$TMP/shim.log" || fail "the program did not map $SHIM: $(cat "$TMP/shim.log")"
# shellcheck disable=SC2046
from_libdir $(grep "^/.*libmachnet" "$TMP/shim.log") || fail "machnet libraries mapped from elsewhere than $LIBDIR"
grep -q "machnet: no engine: machnetd is not reachable at /run/machnet/machnetd.sock.*/etc/machnet/machnet.conf" \
  "$TMP/shim.log" || fail "the shim did not report the installed configuration: $(cat "$TMP/shim.log")"
ok "machnet-run preloads $SHIM, which reads /etc/machnet/machnet.conf: $(grep -o 'every socket stays on the kernel' "$TMP/shim.log")"

# Every program resolves machnet's libraries from $LIBDIR.
for b in /usr/bin/machnet-echo /usr/bin/machnet-msg-gen /usr/bin/machnet-stat /usr/sbin/machnetd \
  /usr/bin/machnet-kv-server /usr/bin/machnet-kv-load \
  "$SHIM" "$LIBDIR/libmachnet.so.0"; do
  ldd "$b" >"$TMP/ldd.log" 2>&1 || fail "ldd $b: $(cat "$TMP/ldd.log")"
  ! grep -q "not found" "$TMP/ldd.log" || fail "$b: $(grep 'not found' "$TMP/ldd.log")"
  # shellcheck disable=SC2046
  from_libdir $(awk '/libmachnet/ {print $3}' "$TMP/ldd.log") || fail "$b links machnet from elsewhere"
done
lib=$(ldd /usr/bin/machnet-msg-gen | awk '$1 == "libmachnet.so.0" {print $3}')
[ -n "$lib" ] && from_libdir "$lib" || fail "machnet-msg-gen does not link $LIBDIR/libmachnet.so.0"
ok "machnet-msg-gen links $LIBDIR/libmachnet.so.0; no library missing"

# libmachnet.so.0 exports its C ABI and nothing else.
nm -D --defined-only "$LIBDIR/libmachnet.so.0" | awk '{print $3}' >"$TMP/exports"
n=$(wc -l <"$TMP/exports")
if grep -Ev '^(machnet_[a-z_0-9]+|rte_intr_callback_(register|unregister|unregister_pending))$' "$TMP/exports"; then
  fail "libmachnet.so.0 exports more than its C ABI"
fi
[ "$n" -ge 24 ] || fail "libmachnet.so.0 exports only $n symbols"
ok "libmachnet.so.0 exports $n symbols, all machnet_* or the memif guard's rte_intr_callback_*"

# The XDP object the engine loads by default is installed.
grep -qa "$LIBDIR/machnet" "$LIBDIR/libmachnet.so.0" || fail "libmachnet.so.0 does not name $LIBDIR/machnet"
[ -f "$LIBDIR/machnet/machnet_xdp.bpf.o" ] || fail "$LIBDIR/machnet/machnet_xdp.bpf.o is missing"
ok "the engine's XDP object is $LIBDIR/machnet/machnet_xdp.bpf.o"

# The machnet group, /run/machnet (tmpfiles.d), the conffiles.
getent group machnet >/dev/null || fail "no machnet group"
[ "$(stat -c '%a %U %G' /run/machnet)" = "755 root root" ] ||
  fail "/run/machnet is $(stat -c '%a %U %G' /run/machnet), not 755 root root"
if command -v dpkg-query >/dev/null && dpkg-query -W machnet >/dev/null 2>&1; then
  conffiles=$(dpkg-query -W -f='${Conffiles}\n' machnet | awk 'NF {print $1}')
else
  conffiles=$(rpm -qc machnet)
fi
for f in /etc/machnet/machnet.conf /etc/machnet/machnetd.conf; do
  printf '%s\n' "$conffiles" | grep -qx "$f" || fail "$f is not a conffile"
done
ok "group machnet; /run/machnet 755 root:root; conffiles $(printf '%s ' $conffiles)"

# Every /usr or /etc path the installed man pages cite exists (the rpm's
# paths, /usr/lib64 and the -devel doc directory, are checked against the
# rpm's own file list by test-packages).
pages=$(find /usr/share/man -name 'machnet*' -type f | sort)
[ "$(printf '%s\n' "$pages" | wc -l)" -ge 8 ] || fail "fewer than 8 machnet man pages: $pages"
: >"$TMP/all_cited"
for page in $pages; do
  zcat -f "$page" | sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\&//g' |
    grep -oE '(^|[ "(])/(usr|etc)/[A-Za-z0-9_./+-]*' | sed -E 's/^[ "(]//; s/[.,;)]+$//' |
    sort -u >"$TMP/cited" || true
  while read -r path; do
    case $path in /usr/share/doc/machnet-devel/* | /usr/lib64 | /usr/lib64/*) continue ;; esac
    [ -e "$path" ] || fail "$(basename "$page") cites $path, which is not installed"
    echo "$path" >>"$TMP/all_cited"
  done <"$TMP/cited"
done
ok "the $(printf '%s\n' "$pages" | wc -l) man pages cite $(sort -u "$TMP/all_cited" | wc -l) installed paths, all present"
