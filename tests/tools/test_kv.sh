#!/usr/bin/env bash
# The KV-store benchmark's programs in the two-host topology: machnet-kv-load
# on the engine in host A (AF_XDP, MN_NET.101) drives machnet-kv-server in
# host B
#   - on kernel sockets (recvmsg/sendmsg, then recvmmsg/sendmmsg --batch),
#   - unmodified under machnet-run (the preload; engine on AF_XDP, MN_NET.102),
#     both loops,
#   - as a raw engine program (--raw, MN_NET.102),
# each for 2 s with a GET/SET mix over Zipf keys: every reply verified
# against what was stored, none lost, a non-zero request rate.
# Then memcached's UDP protocol (memcached -U, one worker thread, which
# serves the socket from another thread than the one that made it): on
# kernel sockets and under machnet-run, driven the same way with
# --protocol memcached, every reply verified and none lost (before the
# AF_XDP pool fix a fresh memcached under machnet-run lost 2-50 replies).
. "$(dirname "$0")/../preload/lib_preload.sh"
require_root
SERVER_BIN="$BUILDDIR/machnet-kv-server"
LOAD_BIN="$BUILDDIR/machnet-kv-load"
for f in "$SERVER_BIN" "$LOAD_BIN" "$PRELOAD_LIB" "$ENGINE_LIB"; do [ -e "$f" ] || fail "$f not built"; done
netns_up
B_IP="$MN_NET.102"
LOAD=(ip netns exec "$MN_NS_A" "$LOAD_BIN" --set machnetd=off
  --device "net_af_xdp0,iface=$MN_IF_A,start_queue=0,queue_count=1" --ip "$MN_NET.101/$MN_PREFIX_LEN")
{
  echo "device = net_af_xdp0,iface=$MN_IF_B,start_queue=0,queue_count=1"
  echo "ip = $B_IP/$MN_PREFIX_LEN"
  echo "library = $ENGINE_LIB"
  echo "machnetd = off"
} >"$TMP/b.conf"
PRE_B=(ip netns exec "$MN_NS_B" "$RUN" --preload "$PRELOAD_LIB" --config "$TMP/b.conf" --)

# run_load NAME IP:PORT [load options]: 2 s of load, checked.
run_load() {
  local name=$1 target=$2
  shift 2
  "${LOAD[@]}" --server "$target" --duration 2 --window 16 --keys 1000 --value-size 48 \
    --get-ratio 0.7 --timeout-ms 5000 "$@" >"$TMP/load-$name.log" 2>&1 ||
    fail "$name: machnet-kv-load failed: $(tail -8 "$TMP/load-$name.log")"
  grep -q "lost 0, invalid 0" "$TMP/load-$name.log" || fail "$name: lost or invalid replies"
  local rps
  rps=$(awk '/^kv_rps/ {print $2}' "$TMP/load-$name.log")
  [ "${rps:-0}" -gt 0 ] || fail "$name: no requests/s reported"
  grep -E "^machnet-kv-load: requests|^kv_rps" "$TMP/load-$name.log"
  echo "ok: $name: $rps requests/s, every reply verified"
}

# server NAME PREFIX... -- SERVER ARGS: starts it, waits for "listening".
start_server() {
  local name=$1
  shift
  start_bg "$name" "$@"
  SERVER=$LAST_PID
  wait_for_line "$name" "listening on"
}

for mode in "" "--batch 32"; do
  tag=kernel${mode:+-batch}
  echo "# $tag: machnet-kv-server $mode on kernel sockets, $MN_IP_B:7400"
  # shellcheck disable=SC2086
  start_server "$tag" ip netns exec "$MN_NS_B" "$SERVER_BIN" $mode --listen "$MN_IP_B:7400"
  run_load "$tag" "$MN_IP_B:7400"
  stop_bg "$SERVER" || fail "$tag server exited with an error"
  grep -q "send errors 0" "$TMP/$tag.log" || fail "$tag: server send errors"

  tag=preload${mode:+-batch}
  echo "# $tag: the same program under machnet-run, $B_IP:7400"
  # shellcheck disable=SC2086
  start_server "$tag" "${PRE_B[@]}" "$SERVER_BIN" $mode --listen "0.0.0.0:7400"
  wait_for_line "$tag" "machnet: offloading UDP"
  run_load "$tag" "$B_IP:7400"
  stop_bg "$SERVER" || fail "$tag server exited with an error"
  grep -q "send errors 0" "$TMP/$tag.log" || fail "$tag: server send errors"
done

echo "# raw: machnet-kv-server --raw on the engine, $B_IP:7400"
start_server raw ip netns exec "$MN_NS_B" "$SERVER_BIN" --raw --set machnetd=off \
  --device "net_af_xdp0,iface=$MN_IF_B,start_queue=0,queue_count=1" --ip "$B_IP/$MN_PREFIX_LEN" \
  --listen "0.0.0.0:7400"
run_load raw "$B_IP:7400"
# A second run against the same store, open loop at a fixed rate: values of
# the first run (another nonce) are overwritten by populate, never returned.
run_load raw-again "$B_IP:7400" --zipf 0 --get-ratio 0.5 --rate 5000
stop_bg "$SERVER" || fail "raw server exited with an error"
grep -q "send errors 0" "$TMP/raw.log" || fail "raw: server send errors"

command -v memcached >/dev/null || fail "memcached is not installed (tools/install-deps.sh installs it)"
for tag in memcached-kernel memcached-preload; do
  if [ $tag = memcached-kernel ]; then
    ip=$MN_IP_B pre=(ip netns exec "$MN_NS_B") lflag=(-l "$MN_IP_B")
  else
    ip=$B_IP pre=("${PRE_B[@]}") lflag=()
  fi
  echo "# $tag: memcached -U 11211 -t 1, $ip"
  start_bg "$tag" "${pre[@]}" memcached -u root -p 0 -U 11211 -t 1 "${lflag[@]}"
  SERVER=$LAST_PID
  if [ $tag = memcached-preload ]; then
    wait_for_line "$tag" "machnet: offloading UDP" || fail "$tag: memcached did not offload"
  else
    for _ in $(seq 50); do
      ip netns exec "$MN_NS_B" ss -Hlun "sport = :11211" | grep -q . && break
      sleep 0.1
    done
  fi
  # A fresh server: the first load is the one that used to lose replies.
  run_load "$tag" "$ip:11211" --protocol memcached
  kill -0 "$SERVER" 2>/dev/null || fail "$tag: memcached died"
  stop_bg "$SERVER" || true
done

# Usage errors: exit 2 with a message naming the option.
if "$SERVER_BIN" --listen 10.0.0.1 >"$TMP/usage.log" 2>&1; then fail "--listen without port accepted"; fi
grep -q "IP:PORT" "$TMP/usage.log" || fail "no message for a bad --listen"
if "$LOAD_BIN" --server 10.0.0.1:0 >"$TMP/usage.log" 2>&1; then fail "--server port 0 accepted"; fi
grep -q "IP:PORT" "$TMP/usage.log" || fail "no message for a bad --server"
echo "ok: bad IP:PORT refused"
echo "PASS"
