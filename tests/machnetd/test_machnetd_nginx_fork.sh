#!/usr/bin/env bash
# machnetd: stream listeners shared by fork() (docs/MACHNETD.md, "Listeners
# shared by fork"). Two hosts, each a machnetd in a network namespace of its
# own, joined by net_memif; the host addresses are on no kernel interface, so
# no byte travels over kernel TCP:
#   - nginx on B, `worker_processes 4`: the master binds and listens, the
#     workers (fork children) accept on the inherited listener, each under a
#     lease of its own (machnet-stat: the stream service shared by the
#     master and the 4 workers through a fork-shared ring);
#   - wrk on A (attached to A's machnetd): no socket errors, no non-2xx
#     answers, and every worker served some of the requests (nginx's access
#     log names the worker's pid);
#   - a kill -9 of one worker: the master starts another, and a second wrk
#     run is served without errors;
#   - once nginx is gone: no port, shared ring, lease or mbuf left on B
#     (machnet-stat's figures back to where they started).
. "$(dirname "$0")/lib_machnetd.sh"
require_root
require_machnetd_build
command -v nginx >/dev/null || fail "nginx is not installed (tools/install-deps.sh installs it)"
command -v wrk >/dev/null || fail "wrk is not installed (tools/install-deps.sh installs it)"
IP_A="$MND_NET.201"
IP_B="$MND_NET.202"
PORT=8080
WORKERS=4
MND_QUEUES=10
trap mnd_cleanup EXIT

mnd_netns_add NS_A
mnd_netns_add NS_B
DA="mnga$$"
DB="mngb$$"
mnd_memif_pair "$DA" "$NS_A" "$IP_A" "$DB" "$NS_B" "$IP_B"
ip netns exec "$NS_B" ip -o addr | grep -q "$IP_B" && fail "$IP_B is on a kernel interface"
mnd_figures "$DB" "$TMP/start.txt"

mkdir -p "$TMP/www" "$TMP/ngx"
head -c 4096 /dev/urandom >"$TMP/www/page.bin"
# The workers run as nginx's default user (nobody): they drop root before
# they first touch the listener, and must still read the pages.
chmod o+x "$TMP"
chmod -R o+rX "$TMP/www"
cat >"$TMP/nginx.conf" <<NGX
daemon off;
master_process on;
worker_processes $WORKERS;
error_log $TMP/nginx_error.log info;
pid $TMP/ngx/nginx.pid;
events { worker_connections 1024; }
http {
  log_format bypid '\$pid \$status';
  access_log $TMP/ngx/access.log bypid;
  client_body_temp_path $TMP/ngx;
  proxy_temp_path $TMP/ngx;
  fastcgi_temp_path $TMP/ngx;
  uwsgi_temp_path $TMP/ngx;
  scgi_temp_path $TMP/ngx;
  server { listen $IP_B:$PORT; root $TMP/www; }
}
NGX

echo "# nginx, worker_processes $WORKERS, under machnetd $DB"
mnd_app "$NS_B" "$DB"
start_bg nginx "${APP[@]}" nginx -c "$TMP/nginx.conf" -e "$TMP/nginx_error.log"
NG=$LAST_PID
for _ in $(seq 100); do
  [ "$(pgrep -P "$NG" | wc -l)" -ge "$WORKERS" ] && break
  sleep 0.1
done
kill -0 "$NG" 2>/dev/null || fail "nginx exited: $(tail -5 "$TMP/nginx.log" "$TMP/nginx_error.log")"
offloaded nginx

# wrk_run NAME: wrk from host A, offloaded; fails on socket errors, non-2xx
# answers or no requests at all.
wrk_run() {
  mnd_app "$NS_A" "$DA"
  timeout 60 "${APP[@]}" wrk -t2 -c32 -d3s "http://$IP_B:$PORT/page.bin" >"$TMP/$1.log" 2>&1 ||
    fail "$1: $(tail -8 "$TMP/$1.log")"
  grep -q "attached to machnetd pid" "$TMP/$1.log" || fail "$1: wrk did not attach: $(head -3 "$TMP/$1.log")"
  grep -q "Socket errors" "$TMP/$1.log" && fail "$1: $(grep 'Socket errors' "$TMP/$1.log")"
  grep -q "Non-2xx" "$TMP/$1.log" && fail "$1: $(grep 'Non-2xx' "$TMP/$1.log")"
  grep -qE "^ +[1-9][0-9]* requests in" "$TMP/$1.log" || fail "$1: no requests: $(cat "$TMP/$1.log")"
  grep -E "requests in|Requests/sec|Latency" "$TMP/$1.log" | sed "s/^/  [$1] /"
}

# service_holders: the pids machnet-stat lists as listening on stream
# service PORT, and whether the service has a fork-shared ring.
service_holders() {
  "$PYTHON" - "${MND_SOCK[$DB]}" "$PORT" <<'PY'
import json, subprocess, sys, os
j = json.loads(subprocess.run([os.environ["MACHNET_STAT"], "--socket", sys.argv[1], "--json"],
                              capture_output=True, text=True, check=True).stdout)
for s in j["services"]:
    if s["port"] == int(sys.argv[2]):
        print(" ".join(str(m["pid"]) for m in sorted(s["members"], key=lambda m: m["pid"])),
              "ring" if "shared_ring" in s else "no-ring")
PY
}
export MACHNET_STAT

# The workers take the listener over at their first epoll_ctl: the service
# is then shared by the master and every worker, through a fork-shared ring.
want=""
for _ in $(seq 100); do
  want="$(printf '%s\n' "$NG" $(pgrep -P "$NG") | sort -n | tr '\n' ' ' | sed 's/ $//') ring"
  [ "$(service_holders)" = "$want" ] && break
  sleep 0.1
done
got=$(service_holders)
[ "$got" = "$want" ] || fail "machnet-stat: service $PORT held by '$got', expected the master and workers '$want'"
echo "ok: machnet-stat: stream service $PORT shared by fork: $got (master $NG and $WORKERS workers)"

: >"$TMP/ngx/access.log"
wrk_run wrk1
pids=$(pgrep -P "$NG" | sort)
"$PYTHON" - "$TMP/ngx/access.log" $pids <<'PY' || fail "not every worker served"
import collections, sys
log, workers = sys.argv[1], sys.argv[2:]
by = collections.Counter()
bad = 0
for line in open(log):
    pid, status = line.split()
    by[pid] += 1
    bad += status != "200"
print("  requests per worker:", ", ".join(f"{p}: {by[p]}" for p in workers), f"(non-200: {bad})")
idle = [p for p in workers if by[p] == 0]
if bad or idle:
    print("  workers that served nothing:", idle)
    sys.exit(1)
PY
echo "ok: wrk through machnetd, no socket errors; all $WORKERS workers served"

echo "# kill -9 of one worker"
victim=$(pgrep -P "$NG" | head -1)
kill -9 "$victim"
for _ in $(seq 100); do
  now=$(pgrep -P "$NG" | grep -vx "$victim" | wc -l)
  [ "$now" -ge "$WORKERS" ] && break
  sleep 0.1
done
[ "$now" -ge "$WORKERS" ] || fail "nginx did not replace the killed worker"
sleep 0.5
wrk_run wrk2
echo "ok: after a worker's kill -9 the master's new worker and the others serve without errors"

kill -TERM "$NG"
wait_gone "$NG" 20 || true
mnd_figures_back "$DB" "$TMP/start.txt" "$TMP/end.txt"
echo "ok: nothing left on $DB after nginx exited (ports, shared rings, leases, pools)"
mnd_stop "$DB"
mnd_stop "$DA"
echo "PASS"
