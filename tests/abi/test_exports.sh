#!/bin/sh
# libmachnet.so exports exactly the C ABI of include/machnet/machnet.h, the
# preload shim's entry table (machnet_socket_ops_v1) and the memif guard's
# interposers (rte_intr_callback_*), under the SONAME the shim dlopen()s.
# Anything else exported (C++ internals) or missing fails. No root needed.
set -eu
S=${MACHNET_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${MACHNET_BUILDDIR:-$S/build}
lib=$B/.libs/libmachnet.so
[ -f "$lib" ] || { echo "FAIL: $lib not built"; exit 1; }

# Functions the header declares (comments removed by the preprocessor).
declared=$(${CC:-cc} -E -P "$S/include/machnet/machnet.h" |
  grep -oE '(^|[^A-Za-z0-9_])machnet_[a-z0-9_]+[[:space:]]*\(' |
  sed -E 's/^[^m]*//; s/[[:space:](]+$//' | sort -u)
n=$(printf '%s\n' "$declared" | grep -c . || true)
[ "$n" -ge 20 ] || { echo "FAIL: found only $n functions in machnet.h"; exit 1; }
expected=$(printf '%s\n' $declared machnet_socket_ops_v1 rte_intr_callback_register \
  rte_intr_callback_unregister rte_intr_callback_unregister_pending | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$expected" >"$tmp/expected"
printf '%s\n' "$exported" >"$tmp/exported"
extra=$(comm -13 "$tmp/expected" "$tmp/exported")
missing=$(comm -23 "$tmp/expected" "$tmp/exported")
status=0
if [ -n "$extra" ]; then
  echo "FAIL: exported but not in the ABI ($(printf '%s\n' "$extra" | wc -l)):"
  printf '%s\n' "$extra" | head -20
  status=1
fi
if [ -n "$missing" ]; then
  echo "FAIL: part of the ABI but not exported:"
  printf '%s\n' "$missing"
  status=1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
if [ "$soname" != libmachnet.so.0 ]; then
  echo "FAIL: SONAME is '$soname', the shim dlopen()s libmachnet.so.0"
  status=1
fi
[ $status -eq 0 ] && echo "ok: $(printf '%s\n' "$exported" | wc -l) symbols exported, SONAME $soname"
exit $status
