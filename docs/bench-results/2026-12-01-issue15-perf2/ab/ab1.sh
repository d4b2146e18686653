#!/usr/bin/env bash
# ab1.sh OUT rounds "bins..." bench args: interleaved, one mode.
set -u
OUT=$1; R=$2; BINS=$3; shift 3
for round in $(seq 1 $R); do
for b in $BINS; do
  (cd /tmp && /work/perf2/bin/sealdb-$b bench "$@" --json $OUT-r$round-$b.json 2>&1) | grep -E '^\| (read|seek|fill)' | sed "s/^/r$round $b /"
done
done
