#!/usr/bin/env bash
# tools/bench --report: the report generator (tools/bench_report) turns a
# results file and per-sample round trips into report.md and PNG plots; bad
# input is refused with FILE:LINE and nothing written. Then, as root, a short
# real run (kernel, memif, raw DPDK over memif, the window sweep) must give a
# report whose tables match what the clients measured.
set -uo pipefail
SRCDIR=${MACHNET_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILDDIR=${MACHNET_BUILDDIR:-$SRCDIR/build}
REPORT_TOOL="$SRCDIR/tools/bench_report"
TMP=$(mktemp -d /tmp/machnet-report-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v gnuplot >/dev/null || fail "gnuplot not found: run tools/install-deps.sh (Debian: gnuplot-nox)"
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }

# 1. A fixture: round trips 1..1000 us for "flat" (median 500), a sockperf
# full log for "sp", a window sweep, a loss sweep, an application row, a KV row.
D=$TMP/fixture
mkdir -p "$D/raw"
seq 1 1000 | awk '{printf "%.3f\n", $1}' >"$D/raw/flat.txt"
{ echo "sockperf: header"; echo "-----"; echo "packet, txTime(sec), rxTime(sec), rtt(usec)"
  for i in $(seq 0 99); do echo "$i, 1.0, 1.0, $((i + 1)).000"; done
  echo "------------------------------"; echo "sockperf: trailer 5.0"; } >"$D/raw/sp.csv"
T=$'\t'
{ echo "udp${T}flat${T}1000${T}500.5${T}500${T}990${T}999${T}flat.txt"
  echo "udp${T}sp${T}100${T}50.5${T}50${T}99${T}100${T}sp.csv"
  echo "tcp${T}tcp-kernel 64${T}10${T}80${T}80${T}90${T}95${T}gone.csv"
  for w in 1 2 4 8; do echo "window${T}$w${T}$((w * 1000))${T}0.1${T}$((10 * w))${T}$((20 * w))${T}$((30 * w))"; done
  for l in 0 1 5; do echo "loss${T}$l${T}100${T}$((5 - l))${T}10${T}20${T}30"; done
  echo "app${T}redis GET kernel${T}117000${T}requests/s${T}250000"
  echo "kv${T}kv-raw${T}250000${T}30.5${T}80${T}120${T}0${T}0"
  echo "failed${T}machnetd${T}sockperf: ERROR"
  echo "meta${T}cpus${T}2"; echo "meta${T}command${T}tools/bench --paths fixture"; } >"$D/results.tsv"
out=$("$REPORT_TOOL" "$D" 2>&1) || fail "bench_report on the fixture: $out"
for f in report.md udp_latency.png udp_percentiles.png tcp_percentiles.png window.png loss.png; do
  [ -s "$D/$f" ] || fail "bench_report wrote no $f"
  case $f in *.png) is_png "$D/$f" || fail "$f is not a PNG" ;; esac
done
[ ! -e "$D/tcp_latency.png" ] || fail "a latency plot for rows whose samples are missing"
# The CDF comes from the samples: fraction 0.5 at 500 us, 1.0 at the maximum.
med=$(awk '!/^#/ && $2 >= 0.5 {print $1; exit}' "$D/data/cdf_udp_flat.dat")
[ "$med" = 500.000 ] || fail "CDF of 1..1000 us reaches 0.5 at '$med', expected 500.000"
last=$(tail -1 "$D/data/cdf_udp_sp.dat")
[ "$last" = "100.000 1.000000" ] || fail "last CDF point of the sockperf log is '$last', expected '100.000 1.000000'"
pts=$(grep -vc '^#' "$D/data/cdf_udp_sp.dat")
[ "$pts" -eq 100 ] || fail "the sockperf log has 100 round trips, the CDF $pts points"
for want in "| flat | 1000 | 500.5 | 500 | 990 | 999 |" "| 8 | 8000 | 0.1 | 80 | 160 | 240 |" \
  "| redis GET kernel | 117000 | requests/s | 250000 |" "| machnetd | sockperf: ERROR |" \
  "| kv-raw | 250000 | 30.5 | 80 | 120 | 0 | 0 |" \
  "(udp_latency.png)" "(window.png)" "(loss.png)" "tools/bench --paths fixture"; do
  grep -qF -- "$want" "$D/report.md" || fail "report.md lacks '$want'"
done
echo "ok: fixture: report.md with every table, 5 PNG plots, CDFs from the samples (median 500 us of 1..1000)"

# 2. Bad input: FILE:LINE and what is wrong, exit status 2, nothing written.
for bad in "udp${T}x${T}1${T}2" "udp${T}x${T}1${T}fast${T}3${T}4${T}5${T}x.txt" "bogus${T}1"; do
  B=$TMP/bad
  rm -rf "$B"; mkdir -p "$B"
  { echo "meta${T}cpus${T}2"; echo "$bad"; } >"$B/results.tsv"
  out=$("$REPORT_TOOL" "$B" 2>&1); rc=$?
  [ $rc -eq 2 ] || fail "bench_report on '$bad' exited $rc, expected 2"
  echo "$out" | grep -q "results.tsv:2: " || fail "bench_report on '$bad' did not name line 2: $out"
  [ ! -e "$B/report.md" ] || fail "bench_report wrote a report from bad input '$bad'"
done
echo "ok: malformed rows refused with FILE:LINE, exit status 2, no report"

# 3. A real run (root).
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: the real tools/bench run needs root (namespaces, DPDK); fixture checks passed"
  exit 0
fi
[ -x "$BUILDDIR/machnet-echo" ] || fail "$BUILDDIR/machnet-echo not built"
R=$TMP/run
MACHNET_BUILDDIR=$BUILDDIR "$SRCDIR/tools/bench" --seconds 1 --paths "kernel memif dpdk-memif window-memif" \
  --windows "1 8" --report "$R" --keep-samples >"$TMP/bench.out" 2>"$TMP/bench.err" ||
  fail "tools/bench --report: $(tail -5 "$TMP/bench.err")"
grep -q '^bench: \[1/4\] kernel .*left)' "$TMP/bench.err" || fail "no progress line: $(head -3 "$TMP/bench.err")"
[ -s "$R/report.md" ] && is_png "$R/udp_latency.png" && is_png "$R/window.png" ||
  fail "the real run wrote no report or plots: $(ls "$R")"
for p in kernel memif dpdk-memif; do
  row=$(awk -F'\t' -v p="$p" '$1 == "udp" && $2 == p' "$R/results.tsv")
  [ -n "$row" ] || fail "no $p row in results.tsv: $(grep -F "$p" "$TMP/bench.out")"
  n=$(echo "$row" | cut -f3)
  raw=$R/raw/$(echo "$row" | cut -f8)
  got=$(wc -l <"$raw")
  [ "$n" -gt 0 ] && [ "$got" -eq "$n" ] || fail "$p: the client measured $n round trips, its samples file holds $got"
  p50=$(echo "$row" | cut -f5)
  grep -qF "| $p | $n |" "$R/report.md" || fail "report.md has no row '$p' with $n samples"
  echo "ok: $p: $n round trips in the table and in the samples, p50 $p50 us"
done
w=$(awk -F'\t' '$1 == "window"' "$R/results.tsv" | wc -l)
[ "$w" -eq 2 ] || fail "the window sweep gave $w rows, expected 2 (windows 1 and 8): $(grep -i 'w[18] ' "$TMP/bench.out")"
echo "ok: real run: report.md, latency and window plots, $w window rows"
