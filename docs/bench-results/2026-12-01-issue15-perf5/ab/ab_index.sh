#!/usr/bin/env bash
# ab_index.sh OUT ROUNDS "BINS..." N: examples/index_cost binaries interleaved, round after round.
set -u
OUT=$1; R=$2; BINS=$3; N=$4
for round in $(seq 1 $R); do
for b in $BINS; do
  echo "### round $round $b $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd /tmp && /work/perf5/bin/index_cost-$b $N 2>&1) | sed "s/^/r$round $b /"
done
done > $OUT
