#!/bin/sh
# Every manual page in docs/man/ renders without a single warning: groff with
# all warnings on (-ww), and mandoc's linter at warning level (what lintian
# and man-db's users would see). No root needed.
SRCDIR=${MACHNET_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}

for tool in groff mandoc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "FAIL: $tool not found: run tools/install-deps.sh (Debian: groff-base, mandoc)"
    exit 1
  fi
done

fail=0
n=0
for page in "$SRCDIR"/docs/man/*.[1-9]*; do
  [ -f "$page" ] || continue
  n=$((n + 1))
  name=docs/man/$(basename "$page")
  out=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>&1)
  if [ -n "$out" ]; then
    echo "FAIL: groff warns on $name:"
    echo "$out" | sed 's/^/  /'
    fail=1
  fi
  # mandoc exits 0 when clean and 1..: with messages; -W warning hides the
  # style hints (line length, ...), which are not errors of the page.
  out=$(mandoc -Tlint -W warning "$page" 2>&1)
  if [ -n "$out" ]; then
    echo "FAIL: mandoc -Tlint warns on $name:"
    echo "$out" | sed 's/^/  /'
    fail=1
  fi
done
if [ "$n" -eq 0 ]; then
  echo "FAIL: no manual page found in $SRCDIR/docs/man"
  exit 1
fi
[ "$fail" -eq 0 ] || exit 1
echo "ok: $n manual pages render without warnings (groff -ww, mandoc -Tlint)"
