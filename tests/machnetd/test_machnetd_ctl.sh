#!/usr/bin/env bash
# machnetd's control protocol from a client that is not the engine: the
# daemon on a net_tap port in a fresh network namespace (the kernel holds the
# other end, MND_NET.1/24; the daemon is MND_NET.2/24), driven by
# ctl_smoke.py, which lays every message out from tests/ipc/ipc_abi's JSON:
# INFO, ATTACH until -EBUSY, BIND/UNBIND and their errors, DETACH, STATS,
# a wrong protocol version, malformed messages, datagrams steered to a
# lease's ring, and reclaim after SIGKILL and after the attaching process
# dies while a forked child keeps its socket. Then the daemon's leases,
# ports, pools and memory must be back to their starting values.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
ABI="$BUILDDIR/tests/ipc/ipc_abi"
[ -x "$ABI" ] || fail "$ABI not built (make check builds it)"
export MACHNET_IPC_ABI="$ABI"
KIP="$MND_NET.1"
DIP="$MND_NET.2"
TAP="mnctap$$"
mnd_netns_add NS
D="mnc$$"
mnd_tap "$D" "$NS" "$TAP" "$KIP" "$DIP"
mnd_figures "$D" "$TMP/start.txt"

ip netns exec "$NS" "$PYTHON" "$SRCDIR/tests/machnetd/ctl_smoke.py" --socket "${MND_SOCK[$D]}" \
  --udp >"$TMP/smoke.log" 2>&1 || {
  sed 's/^/  /' "$TMP/smoke.log"
  fail "ctl_smoke.py failed"
}
sed 's/^/  /' "$TMP/smoke.log"
grep -q "^PASS$" "$TMP/smoke.log" || fail "ctl_smoke.py did not say PASS"
echo "ok: $(grep -c '^ok ' "$TMP/smoke.log") control protocol checks passed"

mnd_figures "$D" "$TMP/end.txt"
grep -v '^info ' "$TMP/start.txt" >"$TMP/start.cmp"
grep -v '^info ' "$TMP/end.txt" >"$TMP/end.cmp"
diff "$TMP/start.cmp" "$TMP/end.cmp" || fail "the daemon's figures did not come back to their starting values"
echo "ok: leases, ports, pools, memzones and hugepage files back to their starting values"
mnd_stop "$D"
echo PASS
