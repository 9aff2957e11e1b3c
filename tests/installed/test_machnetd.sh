#!/usr/bin/env bash
# machnetd from its installed configuration: a device and an address are
# written into /etc/machnet/machnetd.conf as an administrator would (the
# file is restored afterwards); the unit's ExecCondition then lets it start
# and the unit's own ExecStart line runs it, in a network namespace of our
# own on a net_tap port whose kernel side plays the network. Its control
# socket appears where the installed configuration says, with group machnet.
# Two unmodified sockperf servers under machnet-run (installed machnet.conf,
# machnetd = on) attach to it, each gets a lease and serves a kernel
# sockperf client; machnet-stat lists both leases and ports; after SIGTERM
# the daemon leaves no socket behind.
. "$(dirname "$0")/lib.sh"
require_hugepages
command -v sockperf >/dev/null || fail "sockperf is not installed"

unit=/lib/systemd/system/machnetd.service
[ -f "$unit" ] || unit=/usr/lib/systemd/system/machnetd.service
conf=/etc/machnet/machnetd.conf
sock=/run/machnet/machnetd.sock
[ ! -e "$sock" ] || fail "$sock exists: another machnetd serves the default socket"
cp -p "$conf" "$TMP/machnetd.conf.orig"
restore_conf() { cp -p "$TMP/machnetd.conf.orig" "$conf"; }
CLEANUP_HOOKS+=(restore_conf)

NS="mnid$$"
ip netns add "$NS"
NETNS+=("$NS")
ip -n "$NS" link set lo up
NET=10.$((200 + $$ % 50)).$((($$ / 50) % 256))
TAP="mnitap$$"
# The administrator's edit: device and address at the top of the file.
{
  echo "device = net_tap0,iface=$TAP"
  echo "ip = $NET.2/24"
  cat "$TMP/machnetd.conf.orig"
  echo "queues = 4"
} >"$conf"
grep -q "^\[machnetd\]" "$conf" || fail "the installed $conf has no [machnetd] section"
tail -n 1 "$conf" | grep -qx "queues = 4"

cond=$(sed -n 's/^ExecCondition=//p' "$unit")
eval "$cond" || fail "the unit's ExecCondition still skips a configured machnetd.conf"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/sbin/machnetd --config $conf" ] || fail "unexpected ExecStart: $exec_start"
# shellcheck disable=SC2086
start_bg machnetd ip netns exec "$NS" $exec_start
DAEMON=$LAST_PID
wait_for_line machnetd "machnetd: started:" 30
ip -n "$NS" addr add "$NET.1/24" dev "$TAP"
ip -n "$NS" link set "$TAP" up
wait_for_line machnetd "link up on net_tap0" 10
[ -S "$sock" ] || fail "no control socket at $sock"
[ "$(stat -c '%a %G' "$sock")" = "660 machnet" ] || fail "$sock is $(stat -c '%a %G' "$sock"), not 660 machnet"
ok "$(grep -o 'machnetd: started:.*' "$TMP/machnetd.log")"
ok "control socket $sock, mode 660, group machnet"

# Two preloaded programs attached to it.
for port in 11111 11112; do
  start_bg "srv$port" ip netns exec "$NS" machnet-run --strict --set machnetd=on -- \
    sockperf server -i "$NET.2" -p "$port"
  wait_for_line "srv$port" "machnet: offloading UDP .* attached to machnetd pid $DAEMON" 20
  wait_for_line "srv$port" "to block on socket" 20
  maps_only_installed "$LAST_PID"
  eval "SRV$port=$LAST_PID"
done
ok "two sockperf servers attached: $(grep -o 'attached to machnetd.*' "$TMP/srv11111.log" | head -1)"

for port in 11111 11112; do
  timeout 60 ip netns exec "$NS" sockperf ping-pong -i "$NET.2" -p "$port" -t 1 -m 64 \
    >"$TMP/cli$port.log" 2>&1 || fail "kernel sockperf client -> $NET.2:$port: $(tail -5 "$TMP/cli$port.log")"
  grep -q "Summary: Latency is" "$TMP/cli$port.log" || fail "port $port: no latency summary"
  grep -q "# dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0" "$TMP/cli$port.log" ||
    fail "port $port: $(grep 'dropped messages' "$TMP/cli$port.log")"
  ok "kernel client <-> preloaded server on port $port: p50 $(grep -E 'percentile 50.000 =' "$TMP/cli$port.log" | awk '{print $NF}') us, nothing lost"
done

# machnet-stat, on the installed default socket.
machnet-stat >"$TMP/stat.txt" 2>&1 || fail "machnet-stat: $(cat "$TMP/stat.txt")"
sed 's/^/  /' "$TMP/stat.txt"
for port in 11111 11112; do
  pid_var=SRV$port
  grep -Eq "^[0-9]+ +active +${!pid_var} +sockperf " "$TMP/stat.txt" ||
    fail "machnet-stat lists no active lease for pid ${!pid_var}"
  grep -Eq "^$port +[0-9]+ +${!pid_var} +sockperf " "$TMP/stat.txt" ||
    fail "machnet-stat lists no port $port held by pid ${!pid_var}"
done
machnet-stat --json >"$TMP/stat.json" || fail "machnet-stat --json"
grep -q '"active_leases":2' "$TMP/stat.json" || fail "machnet-stat --json: not 2 active leases"
ok "machnet-stat lists both leases (pids $SRV11111, $SRV11112) and ports 11111, 11112"

# The upgrade path of the installed postinst (configure, from an older
# version) with systemd simulated in a mount namespace of its own (a tmpfs
# on /run/systemd holding system/, systemctl and deb-systemd-invoke stubs
# that log): with programs attached it must leave machnetd alone and say so;
# with none it must restart it.
postinst=/var/lib/dpkg/info/machnet.postinst
upgrade_postinst() { # LOG
  : >"$1"
  STUB_LOG=$1 DPKG_MAINTSCRIPT_PACKAGE=machnet DPKG_MAINTSCRIPT_NAME=postinst unshare -m sh -c 'mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system &&
    PATH="$0:$PATH" "$1" configure 0.0.1' "$TMP/stubs" "$postinst" 2>"$1.stderr" ||
    fail "$postinst configure 0.0.1: $(cat "$1.stderr")"
}
if [ -x "$postinst" ]; then
  mkdir -p "$TMP/stubs"
  printf '#!/bin/sh\necho "systemctl $*" >>"$STUB_LOG"\nexit 0\n' >"$TMP/stubs/systemctl"
  printf '#!/bin/sh\necho "deb-systemd-invoke $*" >>"$STUB_LOG"\nexit 0\n' >"$TMP/stubs/deb-systemd-invoke"
  chmod +x "$TMP/stubs/systemctl" "$TMP/stubs/deb-systemd-invoke"
  upgrade_postinst "$TMP/upgrade1.log"
  ! grep -q "restart" "$TMP/upgrade1.log" || fail "the upgrade restarted machnetd with 2 programs attached"
  grep -q "2 program(s) are attached" "$TMP/upgrade1.log.stderr" ||
    fail "the upgrade did not say why machnetd was not restarted: $(cat "$TMP/upgrade1.log.stderr")"
  ok "upgrade with 2 programs attached: machnetd not restarted; '$(grep '^machnet:' "$TMP/upgrade1.log.stderr" | cut -c1-100)...'"
fi

stop_bg "$SRV11111" || true
stop_bg "$SRV11112" || true
for _ in $(seq 50); do
  machnet-stat --json 2>/dev/null | grep -q '"active_leases":0' && break
  sleep 0.1
done
machnet-stat --json | grep -q '"active_leases":0' || fail "the leases were not reclaimed"
if [ -x "$postinst" ]; then
  upgrade_postinst "$TMP/upgrade0.log"
  grep -qx "deb-systemd-invoke try-restart machnetd.service" "$TMP/upgrade0.log" ||
    fail "the upgrade did not restart an idle machnetd: $(cat "$TMP/upgrade0.log" "$TMP/upgrade0.log.stderr")"
  ok "upgrade with no program attached: machnetd restarted (deb-systemd-invoke try-restart machnetd.service)"
fi
rc=0
stop_bg "$DAEMON" || rc=$?
[ $rc -eq 0 ] || fail "machnetd exited $rc on SIGTERM"
grep -q "exited cleanly" "$TMP/machnetd.log" || fail "machnetd: no 'exited cleanly' line"
[ ! -e "$sock" ] || fail "machnetd left $sock"
ok "machnetd stopped cleanly and removed its socket"
