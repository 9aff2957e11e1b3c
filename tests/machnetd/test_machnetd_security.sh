#!/usr/bin/env bash
# Who may use machnetd, and what a client may do to the leases of others:
# a daemon whose control socket is mode 0660, group G (made here, with three
# unprivileged users: one outside G, two in it; all removed at exit), and
# sec_client.py, which forks a client per user: the user outside G is
# refused at connect() (EACCES; machnet-stat names G), a member attaches;
# then, against a victim's lease and port, every request a client can
# forge (knowing the victim's pid and queue) is refused, counted
# (ctl_denied) and logged naming the client's pid and uid, and leaves the
# victim untouched. Then the daemon's leases, ports, pools and memory are
# back to their starting values.
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
ABI="$BUILDDIR/tests/ipc/ipc_abi"
[ -x "$ABI" ] || fail "$ABI not built (make check builds it)"
export MACHNET_IPC_ABI="$ABI"
for t in groupadd useradd userdel groupdel; do
  command -v "$t" >/dev/null || fail "$t is missing (package passwd)"
done

GRP="mnsec$$"
U_OUT="mnso$$"
U_IN="mnsi$$"
U_IN2="mnsj$$"
# The socket's directory must be searchable by everyone: only the socket's
# own mode and group may decide.
MND_SOCK_DIR="/run/mnsec$$"
sec_cleanup() {
  local rc=$? u left
  set +e
  for u in "$U_OUT" "$U_IN" "$U_IN2"; do
    id "$u" >/dev/null 2>&1 || continue
    # Processes of these users are sec_client.py's children: gone by now,
    # unless it failed half-way.
    left=$(pgrep -u "$u" | tr '\n' ' ')
    # shellcheck disable=SC2086
    [ -z "$left" ] || kill -KILL $left
    userdel "$u" || echo "cleanup: userdel $u failed" >&2
  done
  getent group "$GRP" >/dev/null && groupdel "$GRP"
  rm -rf "$MND_SOCK_DIR"
  (exit $rc)
  mnd_cleanup
}
trap sec_cleanup EXIT

groupadd "$GRP"
useradd -M -N -g nogroup -s /usr/sbin/nologin "$U_OUT"
useradd -M -N -g nogroup -G "$GRP" -s /usr/sbin/nologin "$U_IN"
useradd -M -N -g nogroup -G "$GRP" -s /usr/sbin/nologin "$U_IN2"
echo "ok: group $GRP ($(getent group "$GRP")), users $U_OUT (outside), $U_IN, $U_IN2 (inside)"
mkdir -m 0755 "$MND_SOCK_DIR"
# machnet-stat where every user can run it (the build tree may not be searchable).
install -m 0755 "$MACHNET_STAT" "$MND_SOCK_DIR/machnet-stat"

mnd_netns_add NS
D="mns$$"
MACHNET_MACHNETD_SOCKET_GROUP="$GRP" mnd_start "$D" "$NS" "net_tap0,iface=mnstap$$" "$MND_NET.2/24"
mnd_figures "$D" "$TMP/start.txt"

"$PYTHON" "$SRCDIR/tests/machnetd/sec_client.py" --socket "${MND_SOCK[$D]}" --group "$GRP" \
  --outsider "$U_OUT" --member "$U_IN" --member2 "$U_IN2" --log "$(mnd_log "$D")" \
  --stat "$MND_SOCK_DIR/machnet-stat" >"$TMP/sec.log" 2>&1 || {
  sed 's/^/  /' "$TMP/sec.log"
  fail "sec_client.py failed"
}
sed 's/^/  /' "$TMP/sec.log"
grep -q "^PASS$" "$TMP/sec.log" || fail "sec_client.py did not say PASS"
echo "ok: $(grep -c '^ok ' "$TMP/sec.log") access checks passed"
echo "  daemon log, refusals:"
grep "refused" "$(mnd_log "$D")" | sed 's/^/    /'

# The attackers' leases were reclaimed like any other.
for _ in $(seq 50); do
  mnd_figures "$D" "$TMP/end.txt"
  grep -v '^info ' "$TMP/start.txt" >"$TMP/start.cmp"
  grep -v '^info ' "$TMP/end.txt" >"$TMP/end.cmp"
  diff -q "$TMP/start.cmp" "$TMP/end.cmp" >/dev/null && break
  sleep 0.1
done
diff "$TMP/start.cmp" "$TMP/end.cmp" || fail "the daemon's figures did not come back to their starting values"
echo "ok: leases, ports, pools, memzones and hugepage files back to their starting values"
mnd_stop "$D"
echo PASS
