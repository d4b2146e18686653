#!/usr/bin/env bash
# ab.sh OUT ROUNDS "BINS..." bench args: the binaries interleaved, round after round.
set -u
OUT=$(realpath -m "$1"); R=$2; BINS=$3; shift 3
for round in $(seq 1 $R); do
for b in $BINS; do
  echo "### round $round $b $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd /tmp && /work/perf5/bin/sealdb-$b bench "$@" --json $OUT-r$round-$b.json 2>&1) | grep -E '^\| [a-z]|rror' | sed "s/^/r$round $b /"
done
done
