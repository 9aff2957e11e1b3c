#!/usr/bin/env bash
# Unmodified TCP programs offloaded over the machnet transport, both ends
# under machnet-run in the two-host topology (standalone engines, shared-IP
# AF_XDP): for each, the kernels' TCP segment counters stay flat while the
# payload moves.
#   - sockperf --tcp ping-pong, throughput and under-load;
#   - redis-server with redis-benchmark (every default test), and random
#     values of 1 B to 1 MiB set and read back;
#   - nginx (master_process off) with wrk (no socket errors) and a 10 MiB
#     file through sendfile, byte for byte;
#   - iperf3 -P 4 over AF_INET6 (dual-stack) sockets: both ends report the
#     same received byte count.
. "$(dirname "$0")/lib_stream.sh"
require_root
require_preload_build
netns_up
stream_config "$TMP/a.conf" "$MN_IF_A" "$MN_IP_A"
stream_config "$TMP/b.conf" "$MN_IF_B" "$MN_IP_B"
preload_in "$MN_NS_B" "$TMP/b.conf"
SRV=("${PRE[@]}")
preload_in "$MN_NS_A" "$TMP/a.conf"
CLI=("${PRE[@]}")

# flat NAME [SERVER_PID]: fails unless neither kernel carried TCP since the
# last mark; the failure says how many clients the server accepted through
# its kernel twin (machnet-stat --pid: the counters of the fallbacks).
mark() { A0=$(tcp_segments "$MN_NS_A"); B0=$(tcp_segments "$MN_NS_B"); }
flat() {
  local da=$(($(tcp_segments "$MN_NS_A") - A0)) db=$(($(tcp_segments "$MN_NS_B") - B0)) why=""
  [ "$da" -eq 0 ] && [ "$db" -eq 0 ] && return 0
  if [ -n "${2:-}" ]; then
    why="; server: $("$BUILDDIR/machnet-stat" --pid "$2" 2>&1 | grep -Eo "kernel accepts [0-9]+" || true)"
  fi
  fail "$1: the kernels carried TCP (A $da, B $db segments)$why"
}

echo "# sockperf --tcp"
start_bg sockperf_srv "${SRV[@]}" sockperf server --tcp -i "$MN_IP_B" -p 11111
SP=$LAST_PID
wait_for_line sockperf_srv "listen on" 10
sleep 0.5
mark
for mode in ping-pong throughput under-load; do
  timeout 60 "${CLI[@]}" sockperf "$mode" --tcp -i "$MN_IP_B" -p 11111 -t 2 -m 64 \
    >"$TMP/sp_$mode.log" 2>&1 || fail "sockperf $mode: $(tail -5 "$TMP/sp_$mode.log")"
  grep -q "ERROR" "$TMP/sp_$mode.log" && fail "sockperf $mode: $(grep ERROR "$TMP/sp_$mode.log")"
  grep -E "Summary|percentile 50.000|percentile 99.000" "$TMP/sp_$mode.log" | sed "s/^/  [$mode] /"
done
flat "sockperf --tcp" "$SP"
kill -0 "$SP" || fail "sockperf server died: $(tail -3 "$TMP/sockperf_srv.log")"
# ... while the server's engine carried the payload over the transport, and
# no client came through the listener's kernel twin.
"$BUILDDIR/machnet-stat" --pid "$SP" --json >"$TMP/sp_stat.json" || fail "machnet-stat --pid $SP"
"$PYTHON" -c 'import json, sys
t = json.load(open(sys.argv[1]))["transport"]
print("  sockperf server: transport data segments %d, rx accepted %d, kernel accepts %d"
      % (t["tx_data_segments"], t["rx_accepted"], t["kernel_accepts"]))
ok = t["tx_data_segments"] > 0 and t["rx_accepted"] > 0 and t["kernel_accepts"] == 0
sys.exit(0 if ok else 1)' "$TMP/sp_stat.json" ||
  fail "sockperf server: transport counters: $(cat "$TMP/sp_stat.json")"
stop_bg "$SP" || true
echo "ok: sockperf --tcp ping-pong, throughput and under-load offloaded; kernel TCP untouched"

echo "# redis"
start_bg redis "${SRV[@]}" redis-server --port 6379 --save '' --appendonly no \
  --protected-mode no --bind 0.0.0.0 --dir "$TMP"
RD=$LAST_PID
wait_for_line redis "Ready to accept" 10
mark
timeout 600 "${CLI[@]}" redis-benchmark -h "$MN_IP_B" -p 6379 -q -n 2000 -c 20 \
  >"$TMP/redis_bench.log" 2>&1 || fail "redis-benchmark: $(tail -5 "$TMP/redis_bench.log")"
tr '\r' '\n' <"$TMP/redis_bench.log" | grep "requests per second" >"$TMP/redis_rps.log" || true
n=$(wc -l <"$TMP/redis_rps.log")
[ "$n" -ge 20 ] || fail "redis-benchmark: $n tests completed: $(tail -c 600 "$TMP/redis_bench.log")"
sed 's/^/  /' "$TMP/redis_rps.log" | head -6
"$PYTHON" - "$TMP/values.txt" <<'PY'
import os, random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for i, size in enumerate([1, 2, 100, 1000, 4095, 65536, 100000, 524288, 1 << 20]
                             + [random.randint(1, 1 << 20) for _ in range(11)]):
        f.write(f"key{i} {os.urandom(size // 2 + 1).hex()[:size]}\n")
PY
while read -r key value; do
  timeout 20 "${CLI[@]}" redis-cli -h "$MN_IP_B" -p 6379 -x set "$key" <<<"$value" >/dev/null ||
    fail "redis-cli set $key"
  got=$(timeout 20 "${CLI[@]}" redis-cli -h "$MN_IP_B" -p 6379 --raw get "$key")
  [ "$got" = "$value" ] || fail "redis: $key (${#value} bytes) read back differs (${#got} bytes)"
done <"$TMP/values.txt"
flat "redis" "$RD"
stop_bg "$RD" || true
echo "ok: redis-benchmark ($n tests) and 20 values of 1 B to 1 MiB read back, offloaded"

echo "# nginx and wrk"
mkdir -p "$TMP/www" "$TMP/ngx"
head -c 10485760 /dev/urandom >"$TMP/www/big.bin"
echo hello >"$TMP/www/small.txt"
cat >"$TMP/nginx.conf" <<NGX
daemon off;
master_process off;
worker_processes 1;
error_log $TMP/ngx/error.log;
pid $TMP/ngx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $TMP/ngx;
  proxy_temp_path $TMP/ngx;
  fastcgi_temp_path $TMP/ngx;
  uwsgi_temp_path $TMP/ngx;
  scgi_temp_path $TMP/ngx;
  server { listen 8080; root $TMP/www; }
}
NGX
start_bg nginx "${SRV[@]}" nginx -c "$TMP/nginx.conf" -e "$TMP/ngx/error.log"
NG=$LAST_PID
for _ in $(seq 50); do ip netns exec "$MN_NS_B" ss -ltn | grep -q ':8080 ' && break; sleep 0.1; done
mark
timeout 60 "${CLI[@]}" wrk -t2 -c10 -d2s "http://$MN_IP_B:8080/small.txt" >"$TMP/wrk.log" 2>&1 ||
  fail "wrk: $(cat "$TMP/wrk.log")"
grep -q "Socket errors" "$TMP/wrk.log" && fail "wrk: $(grep 'Socket errors' "$TMP/wrk.log")"
grep -qE "^ +[1-9][0-9]* requests in" "$TMP/wrk.log" || fail "wrk: no requests: $(cat "$TMP/wrk.log")"
grep -E "requests in|Requests/sec" "$TMP/wrk.log" | sed 's/^/  /'
timeout 60 "${CLI[@]}" curl -s -o "$TMP/got.bin" "http://$MN_IP_B:8080/big.bin" ||
  fail "curl of the 10 MiB file"
cmp -s "$TMP/got.bin" "$TMP/www/big.bin" || fail "the 10 MiB file differs after sendfile"
flat "nginx" "$NG"
stop_bg "$NG" || true
echo "ok: nginx + wrk without socket errors; 10 MiB through sendfile byte for byte, offloaded"

echo "# iperf3 -P 4, AF_INET6 sockets"
start_bg iperf_srv "${SRV[@]}" iperf3 -s -1 -p 5201 -J
IP=$LAST_PID
for _ in $(seq 50); do ip netns exec "$MN_NS_B" ss -ltn | grep -q ':5201 ' && break; sleep 0.1; done
mark
timeout 60 "${CLI[@]}" iperf3 -c "::ffff:$MN_IP_B" -p 5201 -P 4 -t 2 -J >"$TMP/iperf_cli.json" \
  2>"$TMP/iperf_cli.log" || fail "iperf3 client: $(tail -5 "$TMP/iperf_cli.json" "$TMP/iperf_cli.log")"
wait "$IP" || true
"$PYTHON" - "$TMP/iperf_cli.json" "$TMP/iperf_srv.log" <<'PY' || fail "iperf3: byte counts differ"
import json, sys
cli_text = open(sys.argv[1]).read()
cli = json.loads(cli_text[cli_text.index("{"):])
srv_text = open(sys.argv[2]).read()
srv = json.loads(srv_text[srv_text.index("{"):])
# What the client was told the server received is what the server counted;
# the sender's count is higher by what was still in flight when the test
# ended (the kernel's TCP shows the same).
sent = cli["end"]["sum_sent"]["bytes"]
told = cli["end"]["sum_received"]["bytes"]
got = srv["end"]["sum_received"]["bytes"]
print(f"  iperf3: client sent {sent} bytes, server received {got}, client told {told} "
      f"({srv['end']['sum_received']['bits_per_second'] / 1e9:.2f} Gbit/s)")
sys.exit(0 if told == got and 0 < got <= sent else 1)
PY
flat "iperf3"
echo "ok: iperf3 -P 4 over dual-stack sockets, offloaded, byte counts agree"
echo "PASS"
