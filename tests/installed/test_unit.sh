#!/usr/bin/env bash
# machnetd.service as installed: where the distribution's systemd tools look
# for it (Debian 12: /lib/systemd/system), enabled, accepted by
# `systemd-analyze verify` (which also checks that ExecStart's program and
# the Documentation= man page exist), and skipped by its ExecCondition while
# the installed machnetd.conf names no device.
. "$(dirname "$0")/lib.sh"

unit=""
for d in /lib/systemd/system /usr/lib/systemd/system; do
  if [ -f "$d/machnetd.service" ] && [ ! -L "$d/machnetd.service" ]; then unit=$d/machnetd.service; break; fi
done
[ -n "$unit" ] || fail "machnetd.service is not installed"
if command -v dpkg-query >/dev/null && dpkg-query -W machnet >/dev/null 2>&1; then
  [ "$unit" = /lib/systemd/system/machnetd.service ] ||
    fail "on Debian the unit must be in /lib/systemd/system (dh_installsystemd's directory), not $unit"
fi
link=/etc/systemd/system/multi-user.target.wants/machnetd.service
[ -L "$link" ] || fail "machnetd.service is not enabled ($link missing)"
[ "$(readlink "$link")" = "$unit" ] || fail "$link points to $(readlink "$link"), not $unit"
ok "$unit, enabled ($link)"

systemd-analyze verify "$unit" >"$TMP/verify.log" 2>&1 || fail "systemd-analyze verify: $(cat "$TMP/verify.log")"
[ ! -s "$TMP/verify.log" ] || fail "systemd-analyze verify complains: $(cat "$TMP/verify.log")"
ok "systemd-analyze verify $unit: no complaint"

# ExecStart runs the installed daemon on the installed configuration.
grep -qx "ExecStart=/usr/sbin/machnetd --config /etc/machnet/machnetd.conf" "$unit" ||
  fail "ExecStart is not /usr/sbin/machnetd --config /etc/machnet/machnetd.conf"
cond=$(sed -n 's/^ExecCondition=//p' "$unit")
[ -n "$cond" ] || fail "the unit has no ExecCondition"
rc=0
eval "$cond" || rc=$?
[ $rc -ge 1 ] && [ $rc -le 254 ] || fail "ExecCondition exited $rc on the installed machnetd.conf: the unit would fail instead of being skipped"
ok "ExecCondition skips the unit (status $rc) while /etc/machnet/machnetd.conf sets no device"
