#!/usr/bin/env bash
# machnetd acceptance: reclaim after SIGKILL. machnetd on a net_tap port in a
# fresh namespace (kernel MND_NET.1 on the tap, daemon MND_NET.2), a kernel
# echo server (peer.py) on the tap's kernel address. Then CYCLES times: a
# preloaded program attaches, binds port 7600 (the same port every time: a
# port that is not released makes the next bind fail), does echo round
# trips with the kernel server, and is killed with SIGKILL while it keeps
# sending; every fourth one exits cleanly instead (SIGTERM: the program
# exits, its library detaches). Each time its lease must be free and its port released within
# 1 s (machnet-stat polled every few ms; the worst and mean are printed).
# Meanwhile a long-lived preloaded program does round trips on port 7700
# throughout: not one may go missing or come back wrong.
# At the end every figure of the daemon must be back at its starting value:
# free leases, held ports, each pool's baseline, ring and unaccounted
# counts, memzones; each pool's in-use count too, but for up to 2 mbufs
# lost to kills inside the tap PMD's receive (known, see below); the
# daemon's hugepage files and the host's free hugepages may only have moved
# with the daemon's heap, which may only have grown by DPDK's known
# per-secondary cost (see below). No DPDK runtime file of a killed program
# may be left in the daemon's runtime directory. Every known issue that
# shows up is printed as "KNOWN ISSUE: ...".
. "$(dirname "$0")/lib_machnetd.sh"
# fig FILE KEY: a figure saved by mnd_figures.
fig() { awk -v k="$2" '($1 == k && NF == 2) || ($1 == "info" && $2 == k) {print $NF}' "$1"; }
require_root
require_machnetd_build
CYCLES=${MND_RECLAIM_CYCLES:-50}
LIMIT_MS=1000
KIP="$MND_NET.1"
DIP="$MND_NET.2"
TAP="mntap$$"
mnd_netns_add NS
D="mnr$$"
mnd_tap "$D" "$NS" "$TAP" "$KIP" "$DIP"
RUNDIR="/var/run/dpdk/${MND_PREFIX[$D]}"
start_bg kpeer ip netns exec "$NS" "$PYTHON" "$PEER" serve 7200 "$KIP"
KPEER=$LAST_PID
wait_for_line kpeer "serving on"
# The kernel learns the daemon's MAC before the figures are taken.
ip netns exec "$NS" ping -c 1 -W 2 "$DIP" >/dev/null || fail "ping $DIP"
sleep 0.2
mnd_figures "$D" "$TMP/start.txt"
echo "# starting figures: $(grep -v '^info' "$TMP/start.txt" | tr '\n' ' ')"

mnd_app "$NS" "$D"
start_bg steady "${APP[@]}" "$PYTHON" "$FLOW_APP" loop "$KIP" 7200 7700 20
STEADY=$LAST_PID
wait_for_line steady "ready after" || fail "the long-lived program did not start"
offloaded steady

echo "# $CYCLES x (attach, bind 7600, round trips, SIGKILL mid-traffic; every 4th a clean exit)"
clean=0
max=0
sum=0
killed=()
t0=$(date +%s%N)
for c in $(seq "$CYCLES"); do
  # The previous victim's "ready" line must not be taken for this one's: the
  # new program's shell truncates the log only once it runs, which on a
  # loaded machine can be after wait_for_line has looked.
  rm -f "$TMP/victim.log"
  start_bg victim "${APP[@]}" "$PYTHON" "$FLOW_APP" loop "$KIP" 7200 7600 20
  pid=$LAST_PID
  wait_for_line victim "ready after 20 round trips on port 7600" 20 ||
    fail "cycle $c: the program did not get 20 round trips through: $(tail -3 "$TMP/victim.log")"
  sig=KILL
  [ $((c % 4)) -eq 0 ] && sig=TERM && clean=$((clean + 1))
  ms=$(mnd_stat "$D" kill-wait "$pid" 7600 "$LIMIT_MS" $sig) ||
    fail "cycle $c: lease of pid $pid or port 7600 not reclaimed within $LIMIT_MS ms after SIG$sig: $ms"
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
  killed+=("$pid")
  ms_int=${ms%.*}
  [ "$ms_int" -gt "$max" ] && max=$ms_int
  sum=$((sum + ms_int))
  kill -0 "$STEADY" 2>/dev/null || fail "cycle $c: the long-lived program died: $(tail -3 "$TMP/steady.log")"
done
t1=$(date +%s%N)
echo "ok: $CYCLES programs ($((CYCLES - clean)) killed mid-traffic, $clean clean exits); lease and port reclaimed in at most $max ms" \
  "(mean $((sum / CYCLES)) ms, limit $LIMIT_MS ms); $(((t1 - t0) / 1000000)) ms for all cycles"

reclaims=$(grep -c "^machnetd: reclaimed queue .* after " "$(mnd_log "$D")" || true)
[ "$reclaims" -ge "$CYCLES" ] || fail "machnetd logged $reclaims reclaims, expected $CYCLES"
# Reclaims after which the pool is not at its baseline (see "Pools in use" below).
awk '/^machnetd: reclaimed queue/ { for (i = 1; i < NF; i++) if ($i == "use") { u = $(i + 1); b = $(i + 3) }
  sub(/\),?/, "", b); if (u + 0 != b + 0) print "note: " $0 }' "$(mnd_log "$D")"
# "N unaccounted" is a level (the pool's in-use count above its baseline at
# that reclaim), not a delta: one mbuf leaked early shows in every later
# reclaim of that queue. Each queue's worst level is what it lost.
unacc=$(awk '/^machnetd: reclaimed queue .* unaccounted, / { q = $4; for (i = 2; i <= NF; i++)
  if ($i == "unaccounted,") { u = $(i - 1) + 0; if (u > m[q]) m[q] = u } }
  END { for (q in m) s += m[q]; print s + 0 }' "$(mnd_log "$D")")
if [ "$unacc" -ne 0 ]; then
  grep "unaccounted" "$(mnd_log "$D")" | head -5 | sed 's/^/  /'
  [ "$unacc" -le 2 ] || fail "machnetd reported $unacc unaccounted mbufs after the kills (above)"
  echo "KNOWN ISSUE: $unacc mbuf(s) unaccounted after a kill (see the pools below)"
fi
# A program killed inside a ring operation leaves a reservation that the
# reclaim gives back ("gave back half-done ring operations"); a gap machnetd
# cannot attribute to the dead program (a live process in the middle of an
# operation looks the same) is only warned about. A ring really left
# half-done would hang every later user of it, which the checks below catch
# (the long-lived program's round trips, later programs' traffic, pools).
repairs=$(grep -c "gave back half-done ring operations" "$(mnd_log "$D")" || true)
[ "$repairs" -eq 0 ] || echo "note: $repairs reclaim(s) gave back a killed program's ring reservation"
warnings=$(grep -c "WARNING: ring .* is mid-" "$(mnd_log "$D")" || true)
if [ "$warnings" -gt 0 ]; then
  echo "note: machnetd warned $warnings time(s) of a ring mid-operation at a reclaim:"
  grep "WARNING: ring .* is mid-" "$(mnd_log "$D")" | sed 's/^/  /'
fi
swept=$(sed -n 's/.* \([0-9]*\) mbufs swept.*/\1/p' "$(mnd_log "$D")" | awk '{s += $1} END {print s + 0}')
echo "ok: $reclaims reclaims logged, $unacc unaccounted mbufs; $swept mbufs swept back from the killed programs"

# The DPDK runtime files of the killed programs (mp_socket_<pid>_*, fbarray_*_<pid>).
left=0
for pid in "${killed[@]}"; do
  n=$(find "$RUNDIR" -maxdepth 1 \( -name "mp_socket_${pid}_*" -o -name "fbarray_*_${pid}" \) | wc -l)
  left=$((left + n))
done
[ "$left" -eq 0 ] || fail "$left DPDK runtime files of killed programs left in $RUNDIR: $(ls "$RUNDIR")"
echo "ok: no runtime file of the $CYCLES killed programs left in $RUNDIR ($(find "$RUNDIR" -maxdepth 1 | wc -l) entries there)"

stop_bg "$STEADY" || fail "the long-lived program saw failures: $(grep 'loop:' "$TMP/steady.log")"
summary=$(grep -o "loop: .*" "$TMP/steady.log")
echo "$summary" | grep -q " 0 missing, 0 bad" || fail "long-lived program: $summary"
echo "ok: long-lived program throughout: ${summary#loop: }"
stop_bg "$KPEER" || true

for _ in $(seq 50); do
  [ "$(mnd_stat "$D" daemon-field free_leases)" = $((MND_QUEUES - 1)) ] && break
  sleep 0.1
done
mnd_figures "$D" "$TMP/end.txt"
echo "# starting vs ending figures"
paste -d' ' "$TMP/start.txt" "$TMP/end.txt" | awk '{ i = ($1 == "info"); k = $(1 + i); a = $(2 + i); b = $(4 + 2 * i);
  printf "  %-24s %10s %10s%s\n", k, a, b, (i || a == b ? "" : "  <-- differs") }'
# In use and unaccounted are checked below, within the known tap window.
diff <(grep -v -e '^info' -e '^daemon_hugepage_files' -e '_in_use ' -e '_unaccounted ' "$TMP/start.txt") \
  <(grep -v -e '^info' -e '^daemon_hugepage_files' -e '_in_use ' -e '_unaccounted ' "$TMP/end.txt") >/dev/null ||
  fail "machnetd's leases, ports, pool baselines, rings or memzones did not come back to their starting values"
# Unaccounted mbufs at the end are those leaked in the tap window (below):
# no more than the reclaims reported, and within the same tolerance.
left=$(($(awk '/^pool[0-9]*_unaccounted / {s += $2} END {print s + 0}' "$TMP/end.txt") -
  $(awk '/^pool[0-9]*_unaccounted / {s += $2} END {print s + 0}' "$TMP/start.txt")))
[ "$left" -le "$unacc" ] && [ "$left" -le 2 ] ||
  fail "$left mbufs unaccounted at the end (the reclaims reported $unacc)"
# Pools in use. A program killed inside the tap PMD's receive (between
# "mbuf->port = in_port" and replacing that posted mbuf) leaves a posted
# mbuf that looks received: the sweep takes it back although the RX queue
# still holds it (in use one below the start, reported by no log line);
# killed between allocating the replacement and posting it, it leaks one
# ("unaccounted"). Both need a kill in a window of a few instructions: seen
# about once in 500 kills. Known and reported; up to 2 tolerated here, and
# loudly printed.
off=0
for k in $(awk '/_in_use / {print $1}' "$TMP/start.txt"); do
  a=$(fig "$TMP/start.txt" "$k")
  b=$(fig "$TMP/end.txt" "$k")
  [ "$a" = "$b" ] && continue
  d=$((b - a))
  off=$((off + ${d#-}))
  echo "KNOWN ISSUE: ${k%_in_use} in use $a -> $b ($([ "$d" -lt 0 ] && echo "a posted RX mbuf swept back by the reclaim" || echo "mbufs leaked by a killed program"))"
done
[ "$off" -le 2 ] || fail "pools in use differ from their starting values by $off mbufs in all"
echo "ok: free leases, held ports, pools (in use$([ $off -ne 0 ] && echo " within $off"), baseline, ring, unaccounted) and memzones back to their starting values"

# Memory. A process that joins the daemon's EAL as a secondary allocates in
# the daemon's shared heap: DPDK 22.11's rte_eal_init its service tables
# (~150 KiB, rte_service_init), which the engine gives back at once
# (rte_service_finalize: it runs no service), and the tap PMD its
# per-process data (~256 bytes, one allocation), which only rte_eal_cleanup
# in that process would free (a killed process cannot). So the heap may grow
# by at most 512 bytes in one allocation per attach (a 2 MiB hugepage per
# ~8,000 attaches); everything else must be exact: hugepages beyond the
# heap's growth fail.
attaches=$(($(fig "$TMP/end.txt" attaches) - $(fig "$TMP/start.txt" attaches)))
grow=$(($(fig "$TMP/end.txt" heap_alloc_bytes) - $(fig "$TMP/start.txt" heap_alloc_bytes)))
grow_n=$(($(fig "$TMP/end.txt" heap_alloc_count) - $(fig "$TMP/start.txt" heap_alloc_count)))
heap_pages=$((($(fig "$TMP/end.txt" heap_size) - $(fig "$TMP/start.txt" heap_size)) / 2097152))
files=$(($(fig "$TMP/end.txt" daemon_hugepage_files) - $(fig "$TMP/start.txt" daemon_hugepage_files)))
hp=$(($(fig "$TMP/start.txt" hugepages_free) - $(fig "$TMP/end.txt" hugepages_free)))
if [ "$grow" -eq 0 ]; then
  echo "ok: the daemon's heap is back to its starting size"
else
  per=$((grow / attaches))
  [ "$per" -le 512 ] && [ "$grow_n" -le "$attaches" ] ||
    fail "the daemon's heap grew by $grow bytes in $grow_n allocations over $attaches attaches ($per bytes each): more than the tap PMD's per-process data"
  echo "KNOWN ISSUE: the daemon's heap grew by $grow bytes in $grow_n allocations over $attaches attaches" \
    "($per bytes, $((grow_n / attaches)) allocation each: the tap PMD's per-process data); heap +$heap_pages hugepages"
fi
[ "$files" -eq "$heap_pages" ] ||
  fail "the daemon's hugepage files changed by $files, its heap by $heap_pages hugepages"
[ "$hp" -eq "$files" ] ||
  fail "the host's free hugepages went from $(fig "$TMP/start.txt" hugepages_free) to $(fig "$TMP/end.txt" hugepages_free), the daemon's files by $files (another DPDK program on this host can cause this too)"
echo "ok: hugepages: the daemon's files +$files, heap +$heap_pages, host's free hugepages -$hp: nothing beyond the heap's growth"
mnd_stop "$D"
echo "PASS"
