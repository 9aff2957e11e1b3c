#!/usr/bin/env bash
# What libmachnet_preload.so brings into every preloaded program: no
# libstdc++ (nor anything but libc's own libraries), libinih linked in
# statically, and nothing exported but the intercepted calls (not the
# configuration module, not libinih, which another library of the program
# may bring in another build of). No root needed.
set -euo pipefail
BUILDDIR=${MACHNET_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
lib=$BUILDDIR/.libs/libmachnet_preload.so
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -e "$lib" ] || fail "$lib not built"

needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
echo "NEEDED: $needed"
sanitized=no
for n in $needed; do
  case $n in
    libc.so.* | libdl.so.* | libpthread.so.* | ld-linux*) ;;
    libasan.so.* | libubsan.so.*) sanitized=yes ;; # --enable-sanitizers builds only
    *) fail "libmachnet_preload.so needs $n (only libc's libraries allowed)" ;;
  esac
done
# (libubsan itself needs libstdc++: in a sanitizer build, only the direct
# dependencies above can be checked.)
if [ $sanitized = no ] && ldd "$lib" | grep -q 'libstdc++'; then
  fail "libstdc++ is loaded with the preload: $(ldd "$lib")"
fi
exported=$(nm -D --defined-only "$lib" | awk '{print $3}')
leaked=$(printf '%s\n' "$exported" | grep -E '^(ini_|mn_)' || true)
[ -z "$leaked" ] || fail "exported beyond the interposers: $leaked"
printf '%s\n' "$exported" | grep -qx socket || fail "socket is not exported: $exported"
echo "ok: no libstdc++, libinih inside, $(printf '%s\n' "$exported" | wc -l) symbols exported"
echo "PASS"
