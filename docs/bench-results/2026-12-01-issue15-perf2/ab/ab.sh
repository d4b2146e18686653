#!/usr/bin/env bash
# ab.sh OUT B1 B2 [rounds] [bench args...]: the two binaries one after the other, per round.
set -u
OUT=$1; A=$2; B=$3; R=$4; shift 4
for round in $(seq 1 $R); do
for b in $A $B; do
  echo "### round $round $b $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd /tmp && /work/perf2/bin/sealdb-$b bench "$@" --json $OUT-r$round-$b.json 2>&1) | grep -E '^\||^engine|rror'
done
done
