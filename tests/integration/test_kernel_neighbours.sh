#!/usr/bin/env bash
# Integration test of machnet::engine::KernelNeighbours (neighbour resolution
# through the kernel for shared-IP mode), driven by kernel_neighbours_check,
# on the two-host topology of tools/machnet-netns. In host A:
#   1. parser self-test (valid, foreign, truncated, mutated messages) and
#      open/close without fd leaks;
#   2. lookup of host B's address fails before any traffic; request() makes
#      the kernel resolve it and poll() reports MN_MAC_B within a bounded
#      wait; lookup then succeeds — with each request method (netlink NTF_USE,
#      the UDP fallback, auto), three rounds, the kernel's entry flushed each
#      time;
#   3. auto falls back to the UDP probe when CAP_NET_ADMIN is dropped;
#   4. MN_NET.250 (nobody): lookup fails, request() returns at once, no
#      notification claims a MAC for it, the kernel's failure is reported.
# Exit status: 0 pass, 1 failure, 77 skipped (not root).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: $(basename "$0") needs root (network namespaces, RTM_NEWNEIGH)"
  exit 77
fi

# shellcheck source=tests/integration/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

CHECK="$BUILDDIR/tests/integration/kernel_neighbours_check"
[ -x "$CHECK" ] || fail "$CHECK not found (build first: make check; MACHNET_BUILDDIR=$BUILDDIR)"
command -v ip >/dev/null 2>&1 || {
  echo "SKIP: iproute2 (ip) not installed"
  exit 77
}

ok() { echo "ok   $*"; }

# in_a CMD...: runs CMD in host A with a hard time bound (never hangs the suite).
in_a() { timeout -k 2 30 ip netns exec "$MN_NS_A" "$@"; }

# kernel_mac_of IP: the lladdr of A's kernel neighbour entry for IP (or nothing).
kernel_mac_of() {
  ip -n "$MN_NS_A" neigh show to "$1" dev "$MN_IF_A" |
    awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }'
}

flush_a() {
  ip -n "$MN_NS_A" neigh flush dev "$MN_IF_A" >/dev/null 2>&1 || true
  # a flushed entry may linger unusable (FAILED/NONE) until GC: that is fine,
  # lookup() treats it as a miss; delete it when the kernel lets us.
  ip -n "$MN_NS_A" neigh del "$MN_IP_B" dev "$MN_IF_A" >/dev/null 2>&1 || true
}

# 1. self-test (needs no topology; run in a fresh namespace anyway)
netns_up
in_a "$CHECK" selftest >"$TMP/selftest.log" 2>&1 || fail "selftest: $(cat "$TMP/selftest.log")"
ok "selftest (parser robustness, open/close)"

MAC_B=$(echo "$MN_MAC_B" | tr 'A-F' 'a-f')
NOBODY="$MN_NET.250"

# 2. resolution, each method, several rounds
[ -z "$(kernel_mac_of "$MN_IP_B")" ] || fail "A already has a neighbour entry for $MN_IP_B"
for round in 1 2 3; do
  for method in netlink udp auto; do
    flush_a
    log="$TMP/resolve-$method-$round.log"
    in_a "$CHECK" resolve "$MN_IF_A" "$MN_IP_B" "$MAC_B" 3000 "$method" expect-miss \
      >"$log" 2>&1 || fail "resolve ($method, round $round): $(cat "$log")"
    grep -q "via=$([ "$method" = auto ] && echo netlink || echo "$method")" "$log" ||
      fail "resolve ($method): unexpected method: $(cat "$log")"
    kmac=$(kernel_mac_of "$MN_IP_B")
    [ "$kmac" = "$MAC_B" ] || fail "kernel entry for $MN_IP_B is '$kmac', want $MAC_B"
    ok "round $round, $method: $(cat "$log")"
  done
done

# A resolved entry is found by a fresh object (another process) too.
out=$(in_a "$CHECK" lookup "$MN_IF_A" "$MN_IP_B") || fail "lookup of resolved $MN_IP_B failed"
[ "$out" = "$MAC_B" ] || fail "lookup gave '$out', want $MAC_B"
ok "lookup from a fresh process: $out"

# 3. auto without CAP_NET_ADMIN falls back to the UDP probe
if command -v setpriv >/dev/null 2>&1; then
  flush_a
  log="$TMP/resolve-nocap.log"
  in_a setpriv --inh-caps=-net_admin --bounding-set=-net_admin -- \
    "$CHECK" resolve "$MN_IF_A" "$MN_IP_B" "$MAC_B" 3000 auto expect-miss >"$log" 2>&1 ||
    fail "resolve without CAP_NET_ADMIN: $(cat "$log")"
  grep -q "via=udp" "$log" || fail "without CAP_NET_ADMIN auto did not fall back: $(cat "$log")"
  ok "no CAP_NET_ADMIN, auto: $(cat "$log")"
else
  echo "note: setpriv not installed, fallback without CAP_NET_ADMIN not tested"
fi

# 4. nobody answers for MN_NET.250 (the kernel gives up after ~3 s)
for method in netlink udp; do
  log="$TMP/unresolvable-$method.log"
  in_a "$CHECK" unresolvable "$MN_IF_A" "$NOBODY" 6000 "$method" >"$log" 2>&1 ||
    fail "unresolvable ($method): $(cat "$log")"
  [ -z "$(kernel_mac_of "$NOBODY")" ] || fail "kernel has a MAC for $NOBODY"
  ok "$method: $(cat "$log")"
  ip -n "$MN_NS_A" neigh del "$NOBODY" dev "$MN_IF_A" >/dev/null 2>&1 || true
done

echo "PASS: test_kernel_neighbours.sh"
