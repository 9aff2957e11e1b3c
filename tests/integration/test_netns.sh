#!/usr/bin/env bash
# Integration test of tools/machnet-netns (the two-host test topology).
# Exit status: 0 pass, 1 failure, 77 skipped (not root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
NETNS="${MACHNET_SRCDIR:-$here/../..}/tools/machnet-netns"
[ -x "$NETNS" ] || NETNS="$here/../../tools/machnet-netns"

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
ok() { echo "ok   $*"; }

# ICMP echo from namespace $1 to $2: ping if installed (iputils-ping), else a
# raw-socket echo in python3.
ns_ping() {
  local ns=$1 dst=$2
  if command -v ping >/dev/null 2>&1; then
    ip netns exec "$ns" ping -c 1 -W 2 "$dst" >/dev/null 2>&1
    return
  fi
  command -v python3 >/dev/null 2>&1 || {
    echo "neither ping (apt-get install iputils-ping) nor python3 found" >&2
    return 1
  }
  ip netns exec "$ns" python3 - "$dst" <<'EOF'
import os, socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xffff
for attempt in range(3):
    hdr = struct.pack('!BBHHH', 8, 0, 0, ident, attempt) + b'machnet'
    pkt = hdr[:2] + struct.pack('!H', csum(hdr)) + hdr[4:]
    s.sendto(pkt, (dst, 0))
    deadline = time.time() + 1
    while time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            break
        ihl = (data[0] & 0xf) * 4
        t, _, _, i, _ = struct.unpack('!BBHHH', data[ihl:ihl + 8])
        if addr[0] == dst and t == 0 and i == ident:
            sys.exit(0)
sys.exit(1)
EOF
}

# ---- the command run inside "machnet-netns run" ----------------------------
if [ "${1:-}" = __inner ]; then
  rc=0
  for v in MN_NAME MN_NS_A MN_NS_B MN_IF_A MN_IF_B MN_IP_A MN_IP_B \
    MN_PREFIX_LEN MN_NET MN_MAC_A MN_MAC_B; do
    [ -n "${!v:-}" ] || {
      echo "FAIL: $v not exported" >&2
      rc=1
    }
  done
  [ "$rc" = 0 ] || exit 1
  if [ "$MN_NS_A" != "$MN_NAME-a" ] || [ "$MN_NS_B" != "$MN_NAME-b" ]; then
    echo "FAIL: namespace names" >&2
    rc=1
  fi
  if [ "$MN_IP_A" != "$MN_NET.1" ] || [ "$MN_IP_B" != "$MN_NET.2" ] ||
    [ "$MN_PREFIX_LEN" != 24 ]; then
    echo "FAIL: addresses $MN_IP_A $MN_IP_B /$MN_PREFIX_LEN" >&2
    rc=1
  fi
  [[ $MN_NET =~ ^10\.[0-9]+\.[0-9]+$ ]] || {
    echo "FAIL: MN_NET=$MN_NET" >&2
    rc=1
  }
  ip -n "$MN_NS_A" -4 addr show dev "$MN_IF_A" | grep -q "inet $MN_IP_A/24" || {
    echo "FAIL: $MN_IP_A not on $MN_IF_A" >&2
    rc=1
  }
  [ "$(ip netns exec "$MN_NS_B" cat "/sys/class/net/$MN_IF_B/address")" = "$MN_MAC_B" ] || {
    echo "FAIL: MN_MAC_B" >&2
    rc=1
  }
  ns_ping "$MN_NS_A" "$MN_IP_B" || {
    echo "FAIL: ping A -> B" >&2
    rc=1
  }
  ns_ping "$MN_NS_B" "$MN_IP_A" || {
    echo "FAIL: ping B -> A" >&2
    rc=1
  }
  for side in A B; do
    ns_var="MN_NS_$side" if_var="MN_IF_$side"
    ip netns exec "${!ns_var}" ethtool -k "${!if_var}" | grep -q '^tx-checksumming: off' || {
      echo "FAIL: TX checksum offload still on for ${!if_var}" >&2
      rc=1
    }
    q=$(ip -n "${!ns_var}" -d link show dev "${!if_var}" | grep -o 'numtxqueues 1 numrxqueues 1' || true)
    [ -n "$q" ] || {
      echo "FAIL: ${!if_var} does not have 1 TX + 1 RX queue" >&2
      rc=1
    }
  done
  exit "$rc"
fi

# ---- main -------------------------------------------------------------------
[ -x "$NETNS" ] || {
  echo "FAIL: machnet-netns not found (looked at $NETNS)" >&2
  exit 1
}

help=$("$NETNS" --help) || fail "--help exited non-zero"
grep -q '\.100 - \.199' <<<"$help" || fail "--help does not document the .100-.199 engine range"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: test_netns.sh needs root (network namespaces, veth)"
  exit 77
fi

id=$$
N1="tn${id}r" N2="tn${id}u" N3="tn${id}f"
started_pids=()
cleanup() {
  local p n
  for p in "${started_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for n in "$N1" "$N2" "$N3" "tn${id}x" "tn${id}k" "tn${id}g" "tn${id}s"; do
    "$NETNS" down "$n" >/dev/null 2>&1 || true
  done
  ip netns del "$N3-a" 2>/dev/null || true
}
trap cleanup EXIT

gone() { # gone NAME: neither namespace nor state file left
  [ ! -e "/run/netns/$1-a" ] && [ ! -e "/run/netns/$1-b" ] &&
    ! "$NETNS" list | awk '{print $1}' | grep -qx "$1"
}

# -- non-root refusal (when an unprivileged user can run the tool)
if command -v setpriv >/dev/null 2>&1 &&
  setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$NETNS" 2>/dev/null; then
  st=0
  setpriv --reuid=65534 --regid=65534 --clear-groups "$NETNS" up >/dev/null 2>&1 || st=$?
  [ "$st" = 1 ] || fail "non-root up: exit $st, expected 1"
  st=0
  MACHNET_SKIP_EXIT=77 setpriv --reuid=65534 --regid=65534 --clear-groups "$NETNS" up >/dev/null 2>&1 || st=$?
  [ "$st" = 77 ] || fail "non-root up with MACHNET_SKIP_EXIT=77: exit $st, expected 77"
  ok "non-root: exit 1, or 77 with MACHNET_SKIP_EXIT=77"
fi

# -- run: connectivity, offloads, queues, variables; everything removed after
st=0
"$NETNS" run --name "$N1" -- "$0" __inner || st=$?
if [ "$st" = 0 ]; then ok "run: pings both ways, tx offload off, 1 queue, variables"; else fail "run: inner checks failed ($st)"; fi
if gone "$N1"; then ok "run: topology removed on success"; else fail "run: $N1 left behind"; fi

# -- run propagates a failing status and still cleans up
st=0
"$NETNS" run --name "tn${id}x" -- sh -c 'exit 3' 2>/dev/null || st=$?
[ "$st" = 3 ] || fail "run: exit status $st, expected 3"
if gone "tn${id}x"; then ok "run: failing command (3) propagated, topology removed"; else fail "run: tn${id}x left behind after failure"; fi

# -- a command killed by a signal
st=0
"$NETNS" run --name "tn${id}k" -- sh -c 'kill -KILL $$' 2>/dev/null || st=$?
[ "$st" = 137 ] || fail "run: killed command gave $st, expected 137"
if gone "tn${id}k"; then ok "run: command killed by SIGKILL -> 137, topology removed"; else fail "run: tn${id}k left behind after kill"; fi

# -- the run wrapper itself receives SIGTERM: forwards it, tears down, 143
pidfile=$(mktemp)
# shellcheck disable=SC2016 # $$ and $1 are for the inner sh
"$NETNS" run --name "tn${id}s" -- sh -c 'echo $$ > "$1"; exec sleep 60' sh "$pidfile" 2>/dev/null &
runpid=$!
started_pids+=("$runpid")
for _ in $(seq 100); do [ -s "$pidfile" ] && break; sleep 0.1; done
childpid=$(cat "$pidfile")
[ -n "$childpid" ] && started_pids+=("$childpid")
[ -e "/run/netns/tn${id}s-a" ] || fail "run (SIGTERM case): namespace not created"
kill -TERM "$runpid"
st=0
wait "$runpid" || st=$?
[ "$st" = 143 ] || fail "run: SIGTERM to the wrapper gave $st, expected 143"
sleep 0.2
if [ -n "$childpid" ] && kill -0 "$childpid" 2>/dev/null; then fail "run: command still alive after SIGTERM to the wrapper"; fi
if gone "tn${id}s"; then ok "run: SIGTERM to the wrapper -> command stopped, topology removed, 143"; else fail "run: tn${id}s left behind after SIGTERM"; fi
rm -f "$pidfile"

# -- up + down, env file, list, processes inside are killed, idempotent down
envf=$(mktemp)
out=$("$NETNS" up --name "$N2" --env "$envf") || fail "up failed"
cmp -s <(printf '%s\n' "$out") "$envf" || fail "--env file differs from stdout"
(
  set -a
  # shellcheck disable=SC1090
  . "$envf"
  set +a
  [ "$MN_NAME" = "$N2" ] && ns_ping "$MN_NS_A" "$MN_IP_B"
) || fail "up: sourcing the env file / ping failed"
if "$NETNS" list | awk '{print $1}' | grep -qx "$N2"; then ok "up: listed"; else fail "list does not show $N2"; fi
ip netns exec "$N2-b" sleep 300 &
inside=$!
started_pids+=("$inside")
sleep 0.2
"$NETNS" down "$N2" 2>/dev/null || fail "down failed"
sleep 0.1
if kill -0 "$inside" 2>/dev/null; then fail "down did not kill the process inside $N2-b"; fi
wait "$inside" 2>/dev/null || true
if gone "$N2"; then ok "up/down: removed, process inside killed"; else fail "down: $N2 left behind"; fi
if "$NETNS" down "$N2"; then ok "down: idempotent"; else fail "second down failed"; fi
rm -f "$envf"

# -- two default-named ups never collide
a=$("$NETNS" up) || fail "default up #1"
b=$("$NETNS" up) || fail "default up #2"
na=$(sed -n 's/^MN_NAME=//p' <<<"$a") nb=$(sed -n 's/^MN_NAME=//p' <<<"$b")
neta=$(sed -n 's/^MN_NET=//p' <<<"$a") netb=$(sed -n 's/^MN_NET=//p' <<<"$b")
if [ -n "$na" ] && [ -n "$nb" ] && [ "$na" != "$nb" ] && [ "$neta" != "$netb" ]; then
  ok "default names differ ($na $neta, $nb $netb)"
else
  fail "default names/networks collide: $na/$neta $nb/$netb"
fi
[ -n "$na" ] && { "$NETNS" down "$na" || fail "down $na"; }
[ -n "$nb" ] && { "$NETNS" down "$nb" || fail "down $nb"; }

# -- invalid names are rejected and create nothing
for bad in "bad name" "x-y" "abcdefghijklmn" "9abc" ""; do
  st=0
  "$NETNS" up --name "$bad" >/dev/null 2>&1 || st=$?
  [ "$st" != 0 ] || {
    fail "up accepted the name '$bad'"
    "$NETNS" down --force "$bad" >/dev/null 2>&1 || true
  }
done
ok "invalid names rejected"

# -- down refuses namespaces the tool did not create
ip netns add "$N3-a"
st=0
"$NETNS" down "$N3" >/dev/null 2>&1 || st=$?
if [ "$st" != 0 ] && [ -e "/run/netns/$N3-a" ]; then ok "down refuses foreign namespaces"; else fail "down removed (or accepted) a foreign namespace"; fi
ip netns del "$N3-a"

# -- gc removes the topology of a run wrapper killed with SIGKILL
pidfile=$(mktemp)
# shellcheck disable=SC2016 # $$ and $1 are for the inner sh
"$NETNS" run --name "tn${id}g" -- sh -c 'echo $$ > "$1"; exec sleep 60' sh "$pidfile" 2>/dev/null &
runpid=$!
started_pids+=("$runpid")
for _ in $(seq 100); do [ -s "$pidfile" ] && break; sleep 0.1; done
childpid=$(cat "$pidfile")
[ -n "$childpid" ] && started_pids+=("$childpid")
kill -KILL "$runpid"
wait "$runpid" 2>/dev/null || true
if [ -n "$childpid" ]; then kill -KILL "$childpid" 2>/dev/null || true; fi
[ -e "/run/netns/tn${id}g-a" ] || fail "gc case: namespace missing before gc"
"$NETNS" gc 2>/dev/null || fail "gc failed"
if gone "tn${id}g"; then ok "gc: removed the topology of a SIGKILLed run"; else fail "gc: tn${id}g left behind"; fi
rm -f "$pidfile"

if [ "$failures" -ne 0 ]; then
  echo "test_netns.sh: $failures failure(s)"
  exit 1
fi
echo "test_netns.sh: all passed"
