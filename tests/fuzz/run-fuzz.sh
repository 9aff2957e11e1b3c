#!/bin/bash
# Runs fuzz_rx_parser for a bounded time on the seed corpus in seeds.hex.
# Usage: tests/fuzz/run-fuzz.sh BUILDDIR SECONDS
# Exits non-zero if the fuzzer finds a crash (the reproducer is left in
# BUILDDIR/tests/fuzz/crash-*); prints the number of executions.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BUILDDIR SECONDS" >&2
  exit 2
fi
builddir=$1
seconds=$2
srcdir=$(cd "$(dirname "$0")" && pwd)
fuzzer=$builddir/tests/fuzz/fuzz_rx_parser
if [ ! -x "$fuzzer" ]; then
  echo "$fuzzer not found: configure with CXX=clang++ --enable-fuzzing and run make" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"

# One seed file per non-comment line of hex (no binary files in git).
n=0
while IFS= read -r line; do
  case $line in '#'* | '') continue ;; esac
  n=$((n + 1))
  printf '%b' "$(printf '%s' "$line" | sed 's/../\\x&/g')" >"$work/corpus/seed-$n"
done <"$srcdir/seeds.hex"
echo "run-fuzz: $n seeds, ${seconds}s"

# -rss_limit_mb: the target allocates little; a leak shows up as OOM.
status=0
"$fuzzer" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
  -artifact_prefix="$builddir/tests/fuzz/" "$work/corpus" >"$work/log" 2>&1 || status=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
if [ $status -ne 0 ]; then
  tail -n 60 "$work/log" >&2
  echo "run-fuzz: FAILED (exit $status) after ${execs:-?} executions" >&2
  exit 1
fi
echo "run-fuzz: ${execs:-0} executions, no crash"
