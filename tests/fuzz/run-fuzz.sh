#!/bin/bash
# Runs the libFuzzer targets for a bounded time in total, split evenly
# between them, each on its committed seed corpus; each target is one
# single-threaded process, so up to MACHNET_FUZZ_JOBS of them (default: the
# number of CPUs) run at once: each still gets its share of SECONDS, the run
# takes SECONDS / MACHNET_FUZZ_JOBS or so.
#   tests/fuzz/TARGET.hex      one seed per non-comment line of hex (binary seeds;
#                              no binary files in git)
#   tests/fuzz/TARGET.corpus/  one seed per file (text seeds)
#   tests/fuzz/TARGET.dict     a libFuzzer dictionary, when there is one
# Usage: tests/fuzz/run-fuzz.sh BUILDDIR SECONDS [TARGET...]
#   (default targets: every tests/fuzz/fuzz_*.cc)
# Exits non-zero if a fuzzer finds a crash or a hang (an input running over
# 10 s; the reproducer is left in BUILDDIR/tests/fuzz/crash-* or timeout-*);
# prints the number of executions of each.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILDDIR SECONDS [TARGET...]" >&2
  exit 2
fi
builddir=$1
seconds=$2
shift 2
srcdir=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$srcdir"/fuzz_*.cc; do targets+=("$(basename "$f" .cc)"); done
fi
share=$((seconds / ${#targets[@]}))
[ "$share" -ge 1 ] || share=1

jobs=${MACHNET_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -ge 1 ] || jobs=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  if [ ! -x "$builddir/tests/fuzz/$t" ]; then
    echo "$builddir/tests/fuzz/$t not found: configure with CC=clang CXX=clang++ --enable-fuzzing and run make" >&2
    exit 2
  fi
done

# fuzz TARGET: one target for its share, its report in $work/TARGET.out,
# its exit status in $work/TARGET.rc.
fuzz() {
  local t=$1 fuzzer=$builddir/tests/fuzz/$1 corpus=$work/$1 n=0 line f rc=0 execs
  mkdir "$corpus"
  if [ -f "$srcdir/$t.hex" ]; then
    while IFS= read -r line; do
      case $line in '#'* | '') continue ;; esac
      n=$((n + 1))
      printf '%b' "$(printf '%s' "$line" | sed 's/../\\x&/g')" >"$corpus/seed-$n"
    done <"$srcdir/$t.hex"
  fi
  if [ -d "$srcdir/$t.corpus" ]; then
    for f in "$srcdir/$t.corpus"/*; do
      n=$((n + 1))
      cp "$f" "$corpus/seed-$n"
    done
  fi
  local dict=()
  [ -f "$srcdir/$t.dict" ] && dict=(-dict="$srcdir/$t.dict")
  {
    echo "run-fuzz: $t: $n seeds, ${share}s"
    # -rss_limit_mb: the targets allocate little; a leak shows up as OOM.
    "$fuzzer" -max_total_time="$share" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 "${dict[@]}" \
      -artifact_prefix="$builddir/tests/fuzz/" "$corpus" >"$work/$t.log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n 1)
    if [ $rc -ne 0 ]; then
      tail -n 60 "$work/$t.log"
      echo "run-fuzz: $t: FAILED (exit $rc) after ${execs:-?} executions"
    else
      echo "run-fuzz: $t: ${execs:-0} executions, no crash"
    fi
  } >"$work/$t.out" 2>&1
  echo $rc >"$work/$t.rc"
}

# Up to $jobs at a time; the reports are printed in the targets' order.
running=()
for t in "${targets[@]}"; do
  if [ ${#running[@]} -ge "$jobs" ]; then
    wait "${running[0]}" || true
    running=("${running[@]:1}")
  fi
  fuzz "$t" &
  running+=($!)
done
wait
status=0
for t in "${targets[@]}"; do
  rc=$(cat "$work/$t.rc" 2>/dev/null || echo 1)
  if [ "$rc" -ne 0 ]; then
    cat "$work/$t.out" >&2
    status=1
  else
    cat "$work/$t.out"
  fi
done
exit $status
