#!/usr/bin/env bash
# One stack per process: a program using offloaded UDP sockets (through the
# preload shim) and machnet.h together runs one engine, one EAL and one
# progress thread; a blocked native receive gives its core back and still
# wakes on arrival (tests/native/one_stack_check.c). Engine on net_ring0: no
# device, no namespaces.
. "$(dirname "$0")/../integration/lib.sh"
require_root
CHECK="$BUILDDIR/tests/native/one_stack_check"
PRELOAD_LIB="$BUILDDIR/.libs/libmachnet_preload.so"
for f in "$CHECK" "$PRELOAD_LIB"; do [ -e "$f" ] || fail "$f not built"; done
cat >"$TMP/machnet.conf" <<CONF
device = net_ring0
ip = 10.255.78.1/24
hugepages = no
mbufs = 4095
machnetd = off
library = $BUILDDIR/.libs/libmachnet.so.0
[socket]
# Only a real wake-up can end a sleep within the test's bound.
sleep_us = 10000000
CONF
MACHNET_CONFIG="$TMP/machnet.conf" LD_PRELOAD="$PRELOAD_LIB" timeout 60 "$CHECK" 10.255.78.1 \
  >"$TMP/check.log" 2>&1 || fail "one_stack_check: $(cat "$TMP/check.log")"
cat "$TMP/check.log"
grep -q '^PASS' "$TMP/check.log" || fail "no PASS line"
echo "PASS"
