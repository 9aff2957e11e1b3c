#!/usr/bin/env bash
# Integration test of the XDP steering program (tools/xdp/machnet_xdp.bpf.c)
# and machnet::engine::XdpSteering (driven by xdp_steering_check).
#   1. the object passes the verifier and attaches in native (driver) mode on
#      a veth (ip link ... xdpdrv obj ... sec xdp);
#   2. with no AF_XDP socket bound, kernel ping and UDP between the namespaces
#      keep working, unconfigured and configured alike;
#   3. XdpSteering finds the program and its maps and updates them, and the
#      program's verdicts are right (BPF_PROG_TEST_RUN, xdp_steering_check
#      selftest);
#   4. with dpdk-testpmd installed: DPDK's net_af_xdp PMD loads the object via
#      xdp_prog=, steered packets reach DPDK while the kernel keeps its
#      traffic, in own-IP and shared-IP mode; closing the port detaches it.
# Exit status: 0 pass, 1 failure, 77 skipped (not root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
NETNS="${MACHNET_SRCDIR:-$here/../..}/tools/machnet-netns"
[ -x "$NETNS" ] || NETNS="$here/../../tools/machnet-netns"
BUILD=${MACHNET_BUILDDIR:-$here/../..}
OBJ=${MACHNET_XDP_PROG:-$BUILD/tools/xdp/machnet_xdp.bpf.o}
CHECK=$BUILD/tests/integration/xdp_steering_check

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: test_xdp_steering.sh needs root (namespaces, XDP, BPF maps)"
  exit 77
fi
for f in "$NETNS" "$OBJ" "$CHECK"; do
  [ -e "$f" ] || {
    echo "FAIL: $f not found (build first; MACHNET_BUILDDIR=$BUILD)" >&2
    exit 1
  }
done
command -v python3 >/dev/null 2>&1 || {
  echo "SKIP: python3 needed for the ping/UDP probes"
  exit 77
}

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
ok() { echo "ok   $*"; }

NAME="tx$$"
started_pids=()
cleanup() {
  local p
  for p in "${started_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${started_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$NETNS" down "$NAME" >/dev/null 2>&1 || true
  # testpmd's EAL runtime directory (--file-prefix $NAME), killed above.
  rm -rf "/var/run/dpdk/$NAME"
  rm -rf "$tmp"
}
tmp=$(mktemp -d)
trap cleanup EXIT

vars=$("$NETNS" up --name "$NAME") || {
  echo "FAIL: machnet-netns up" >&2
  exit 1
}
eval "$vars"
ENGINE_IP_A="$MN_NET.101"

# ---- probes -----------------------------------------------------------------
# ns_ping NS DST: one ICMP echo answered within ~3 s.
ns_ping() {
  if command -v ping >/dev/null 2>&1; then
    ip netns exec "$1" ping -c 1 -W 2 "$2" >/dev/null 2>&1
    return
  fi
  ip netns exec "$1" python3 - "$2" <<'EOF'
import os, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xffff
for seq in range(3):
    hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq) + b'machnet!'
    s.sendto(hdr[:2] + struct.pack('!H', csum(hdr)) + hdr[4:], (dst, 0))
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

# udp_echo SRV_NS SRV_IP PORT CLI_NS: a UDP echo through the kernels.
udp_echo() {
  local srv_ns=$1 srv_ip=$2 port=$3 cli_ns=$4 spid st=0
  ip netns exec "$srv_ns" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5)
try:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)
except socket.timeout:
    sys.exit(1)
' "$srv_ip" "$port" &
  spid=$!
  started_pids+=("$spid")
  sleep 0.3
  ip netns exec "$cli_ns" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(6):
    s.sendto(b"machnet-udp", (sys.argv[1], int(sys.argv[2])))
    try:
        d, _ = s.recvfrom(2048)
        sys.exit(0 if d == b"machnet-udp" else 1)
    except socket.timeout:
        pass
sys.exit(1)
' "$srv_ip" "$port" || st=1
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  return "$st"
}

# udp_send NS DST PORT COUNT: fire-and-forget datagrams.
udp_send() {
  ip netns exec "$1" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    s.sendto(b"to-the-engine", (sys.argv[1], int(sys.argv[2])))
' "$2" "$3" "$4"
}

kernel_traffic_ok() { # $1: description
  if ns_ping "$MN_NS_A" "$MN_IP_B" && ns_ping "$MN_NS_B" "$MN_IP_A"; then
    ok "$1: kernel ping A<->B"
  else
    fail "$1: kernel ping A<->B"
  fi
  if udp_echo "$MN_NS_A" "$MN_IP_A" 5001 "$MN_NS_B" && udp_echo "$MN_NS_B" "$MN_IP_B" 5002 "$MN_NS_A"; then
    ok "$1: kernel UDP echo A<->B"
  else
    fail "$1: kernel UDP echo A<->B"
  fi
}

stat_of() { # stat_of KEY: a counter of the program on MN_IF_A
  ip netns exec "$MN_NS_A" "$CHECK" stats "$MN_IF_A" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# ---- 1. load + attach in native mode ----------------------------------------
if ip -n "$MN_NS_A" link set dev "$MN_IF_A" xdpdrv obj "$OBJ" sec xdp; then
  ok "object passes the verifier and attaches (xdpdrv) to $MN_IF_A"
else
  echo "FAIL: ip link set dev $MN_IF_A xdpdrv obj $OBJ sec xdp" >&2
  exit 1
fi
if ip -n "$MN_NS_A" -d link show dev "$MN_IF_A" | grep -q 'prog/xdp id [0-9]* name machnet_xdp'; then
  ok "attached in native mode: $(ip -n "$MN_NS_A" link show dev "$MN_IF_A" | grep -o 'prog/xdp id [0-9]*')"
else
  fail "program not shown as native (prog/xdp) on $MN_IF_A"
fi

# ---- 2. everything passes while unconfigured ---------------------------------
kernel_traffic_ok "unconfigured"

# ---- 3. XdpSteering on the attached program ----------------------------------
if ip netns exec "$MN_NS_A" "$CHECK" selftest "$MN_IF_A" "$ENGINE_IP_A" "$MN_IP_A" >"$tmp/selftest.log" 2>&1; then
  ok "xdp_steering_check selftest ($(grep -c '^ok' "$tmp/selftest.log") checks)"
else
  cat "$tmp/selftest.log" >&2
  fail "xdp_steering_check selftest"
fi
st=0
ip netns exec "$MN_NS_B" "$CHECK" attach "$MN_IF_B" >/dev/null 2>"$tmp/err" || st=$?
if [ "$st" = 1 ] && grep -q 'no XDP program' "$tmp/err"; then
  ok "attach without a program: $(cat "$tmp/err")"
else
  fail "attach on $MN_IF_B (no program) gave $st: $(cat "$tmp/err")"
fi

# Own-IP mode, no AF_XDP socket: the kernel keeps its traffic, and frames for
# the engine's address fall back to the kernel (counted as no_socket).
ip netns exec "$MN_NS_A" "$CHECK" config "$MN_IF_A" "$ENGINE_IP_A" own ||
  fail "config own $ENGINE_IP_A"
kernel_traffic_ok "own IP $ENGINE_IP_A, no socket"
n0=$(stat_of no_socket)
ip -n "$MN_NS_B" neigh replace "$ENGINE_IP_A" lladdr "$MN_MAC_A" dev "$MN_IF_B"
udp_send "$MN_NS_B" "$ENGINE_IP_A" 9999 5
sleep 0.2
n1=$(stat_of no_socket)
if [ $((n1 - n0)) -ge 5 ]; then ok "UDP to the engine IP matched, passed for lack of a socket ($((n1 - n0)))"; else fail "no_socket went $n0 -> $n1"; fi
ip -n "$MN_NS_B" neigh del "$ENGINE_IP_A" dev "$MN_IF_B" 2>/dev/null || true

# Shared-IP mode, no socket: marked ports still reach the kernel.
ip netns exec "$MN_NS_A" "$CHECK" config "$MN_IF_A" "$MN_IP_A" shared 5001 ||
  fail "config shared $MN_IP_A 5001"
kernel_traffic_ok "shared IP, port 5001 marked, no socket"

# Detach through XdpSteering::detach_stale_program.
if ip netns exec "$MN_NS_A" "$CHECK" detach "$MN_IF_A" &&
  ! ip -n "$MN_NS_A" link show dev "$MN_IF_A" | grep -q 'prog/xdp'; then
  ok "detach_stale_program removed it"
else
  fail "detach_stale_program"
fi

# ---- 4. DPDK net_af_xdp with xdp_prog= -----------------------------------------
cpus=$(nproc)
if ! command -v dpdk-testpmd >/dev/null 2>&1; then
  echo "note: dpdk-testpmd not installed (Debian package dpdk); DPDK part skipped"
elif [ "$cpus" -lt 2 ]; then
  echo "note: fewer than 2 CPUs; DPDK part skipped"
else
  DEVARGS="net_af_xdp0,iface=$MN_IF_A,start_queue=0,queue_count=1,xdp_prog=$OBJ"
  echo "     testpmd --vdev $DEVARGS"
  timeout -s INT 120 ip netns exec "$MN_NS_A" dpdk-testpmd --no-pci --no-huge -m 256 \
    --no-shconf --file-prefix "$NAME" -l 0,1 --log-level=pmd.net.af_xdp:info \
    --vdev "$DEVARGS" -- --forward-mode=rxonly --stats-period 1 \
    --total-num-mbufs=4096 </dev/null >"$tmp/testpmd.log" 2>&1 &
  tpid=$!
  started_pids+=("$tpid")
  for _ in $(seq 100); do
    grep -q 'Logical Core .* forwards' "$tmp/testpmd.log" 2>/dev/null && break
    kill -0 "$tpid" 2>/dev/null || break
    sleep 0.1
  done
  if ip -n "$MN_NS_A" link show dev "$MN_IF_A" | grep -q 'prog/xdp' &&
    grep -q 'Successfully loaded XDP program' "$tmp/testpmd.log"; then
    ok "net_af_xdp loaded the program via xdp_prog="
    # The kernel keeps everything while unconfigured.
    kernel_traffic_ok "af_xdp bound, unconfigured"

    # Own IP: ARP for and IPv4 to MN_NET.101 go to DPDK.
    ip netns exec "$MN_NS_A" "$CHECK" config "$MN_IF_A" "$ENGINE_IP_A" own ||
      fail "config own (af_xdp)"
    r0=$(stat_of redirected)
    ip -n "$MN_NS_B" neigh replace "$ENGINE_IP_A" lladdr "$MN_MAC_A" dev "$MN_IF_B"
    udp_send "$MN_NS_B" "$ENGINE_IP_A" 9999 20
    ip -n "$MN_NS_B" neigh del "$ENGINE_IP_A" dev "$MN_IF_B" 2>/dev/null || true
    ns_ping "$MN_NS_B" "$ENGINE_IP_A" || true # ARP requests: redirected, unanswered
    sleep 0.3
    r1=$(stat_of redirected)
    if [ $((r1 - r0)) -ge 21 ]; then ok "own IP: UDP + ARP for $ENGINE_IP_A redirected to AF_XDP ($((r1 - r0)))"; else fail "own IP: redirected went $r0 -> $r1"; fi
    kernel_traffic_ok "af_xdp bound, own IP $ENGINE_IP_A"

    # Shared IP: UDP to the kernel's address, port 7777 only.
    ip netns exec "$MN_NS_A" "$CHECK" config "$MN_IF_A" "$MN_IP_A" shared 7777 ||
      fail "config shared (af_xdp)"
    r0=$(stat_of redirected)
    udp_send "$MN_NS_B" "$MN_IP_A" 7777 10
    sleep 0.3
    r1=$(stat_of redirected)
    if [ $((r1 - r0)) -eq 10 ]; then ok "shared IP: UDP to port 7777 redirected (10)"; else fail "shared IP: redirected went $r0 -> $r1, expected +10"; fi
    kernel_traffic_ok "af_xdp bound, shared IP, port 7777 steered"
    r2=$(stat_of redirected)
    [ "$r2" = "$r1" ] || fail "kernel traffic was redirected in shared-IP mode ($r1 -> $r2)"
    sleep 1.2 # one more stats period
    rx=$(tr -d '\033' <"$tmp/testpmd.log" | grep -o 'RX-packets: *[0-9]*' | tail -1 | grep -o '[0-9]*$' || echo 0)
    if [ "${rx:-0}" -ge 31 ]; then ok "testpmd received $rx packets"; else fail "testpmd RX-packets=$rx, expected >= 31"; fi
  else
    cat "$tmp/testpmd.log" >&2
    fail "net_af_xdp did not load $OBJ"
  fi
  kill -INT "$tpid" 2>/dev/null || true
  st=0
  wait "$tpid" || st=$?
  if [ "$st" = 0 ] && ! ip -n "$MN_NS_A" link show dev "$MN_IF_A" | grep -q 'prog/xdp'; then
    ok "testpmd exited cleanly and the PMD detached the program"
  else
    fail "testpmd exit $st / program still attached"
    tail -20 "$tmp/testpmd.log" >&2
  fi
fi

if [ "$failures" -ne 0 ]; then
  echo "test_xdp_steering.sh: $failures failure(s)"
  exit 1
fi
echo "test_xdp_steering.sh: all passed"
