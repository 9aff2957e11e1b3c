#!/usr/bin/env bash
# Stream sockets attached to machnetd: two hosts, each a machnetd in a
# network namespace of its own, joined by net_memif. The host addresses are
# on no kernel interface, so no byte can travel over kernel TCP: a stream
# that works went through the daemons' port and the transport.
#   - sockperf server --tcp on B, sockperf ping-pong, throughput and
#     under-load --tcp on A, each attached to its host's daemon: complete,
#     no errors; the leases' datagram counters moved by at least the number
#     of messages;
#   - a connect to a port nothing listens on: the peer's machnet answers
#     "no service", the socket falls back to kernel TCP, which has no route
#     to that host here: the program's non-blocking connect (Python, with a
#     timeout) gets ENETUNREACH from SO_ERROR, not a false success; a later
#     client still connects over the transport.
. "$(dirname "$0")/../machnetd/lib_machnetd.sh"
require_root
require_machnetd_build
command -v sockperf >/dev/null || fail "sockperf is not installed (tools/install-deps.sh installs it)"
IP_A="$MND_NET.201"
IP_B="$MND_NET.202"
mnd_netns_add NS_A
mnd_netns_add NS_B
DA="msa$$"
DB="msb$$"
mnd_memif_pair "$DA" "$NS_A" "$IP_A" "$DB" "$NS_B" "$IP_B"
# Nothing on the kernel side of either namespace can reach the other host.
ip netns exec "$NS_A" ip -o addr | grep -q "$IP_A" && fail "$IP_A is on a kernel interface"

echo "# sockperf server --tcp on host B, attached to $DB"
mnd_app "$NS_B" "$DB"
start_bg sp_srv "${APP[@]}" sockperf server --tcp -i "$IP_B" -p 11111
SRV=$LAST_PID
wait_for_line sp_srv "listen on" 20 || fail "sockperf server did not start: $(tail -3 "$TMP/sp_srv.log")"
grep -q "attached to machnetd pid" "$TMP/sp_srv.log" || fail "the server did not attach: $(head -3 "$TMP/sp_srv.log")"

mnd_app "$NS_A" "$DA"
for mode in ping-pong throughput under-load; do
  rx0=$(mnd_stat "$DB" lease-field "$SRV" udp_rx)
  timeout 60 "${APP[@]}" sockperf "$mode" --tcp -i "$IP_B" -p 11111 -t 2 -m 64 \
    >"$TMP/sp_$mode.log" 2>&1 || fail "sockperf $mode --tcp: $(tail -5 "$TMP/sp_$mode.log")"
  grep -q "ERROR" "$TMP/sp_$mode.log" && fail "sockperf $mode: $(grep ERROR "$TMP/sp_$mode.log")"
  grep -q "attached to machnetd pid" "$TMP/sp_$mode.log" || fail "sockperf $mode did not attach"
  sent=$(sed -n -e 's/.*\[Valid Duration\].*SentMessages=\([0-9]*\).*/\1/p' \
    -e 's/.*Total of \([0-9]*\) messages sent.*/\1/p' "$TMP/sp_$mode.log" | head -1)
  [ -n "$sent" ] && [ "$sent" -gt 0 ] || fail "sockperf $mode: no messages sent: $(tail -5 "$TMP/sp_$mode.log")"
  rx=$(($(mnd_stat "$DB" lease-field "$SRV" udp_rx) - rx0))
  # Each 64-byte message is at least one transport segment: the server's
  # lease received at least as many datagrams as the client sent messages
  # in the measured window (throughput mode may pack several messages in
  # one segment, so only the counter's movement is checked there).
  if [ "$mode" = throughput ]; then
    [ "$rx" -gt 0 ] || fail "sockperf $mode: the server's lease received nothing"
  else
    [ "$rx" -ge "$sent" ] || fail "sockperf $mode: $sent messages but the server's lease received $rx datagrams"
  fi
  grep -E "Summary|percentile 50.000|percentile 99.000" "$TMP/sp_$mode.log" | sed "s/^/  [$mode] /"
  echo "ok: sockperf $mode --tcp through machnetd: $sent messages, $rx datagrams on the server's lease"
done
kill -0 "$SRV" || fail "sockperf server died: $(tail -3 "$TMP/sp_srv.log")"

echo "# a connect to a port nothing listens on"
cat >"$TMP/refused.py" <<'PY'
import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect((sys.argv[1], 11112))
    print("connected: unexpected"); sys.exit(1)
except OSError as e:
    print("connect:", errno.errorcode.get(e.errno, e.errno), e)
    sys.exit(0 if e.errno == errno.ENETUNREACH else 1)
PY
timeout 30 "${APP[@]}" "$PYTHON" -u "$TMP/refused.py" "$IP_B" >"$TMP/refused.log" 2>&1 ||
  fail "connect to a closed port through machnetd: $(cat "$TMP/refused.log")"
echo "ok: $(grep '^connect:' "$TMP/refused.log")"
timeout 60 "${APP[@]}" sockperf ping-pong --tcp -i "$IP_B" -p 11111 -t 1 -m 64 >"$TMP/sp_again.log" 2>&1 ||
  fail "a second client after the refused connect: $(tail -5 "$TMP/sp_again.log")"
echo "ok: a later client still connects"

stop_bg "$SRV" || true
mnd_stop "$DA"
mnd_stop "$DB"
echo "PASS"
