#!/usr/bin/env bash
# usage: ab10.sh mode bench reps binA binB ...
cd /work/bench9
mode=$1; benches=$2; reps=$3; shift 3
for r in $(seq 1 $reps); do for b in "$@"; do
  echo "== r$r $b $mode"
  ./sealdb-$b bench --benchmarks $benches --num 1000000 --mode $mode 2>&1 | grep -E '^\| (fill|read|seek)' | awk -F'|' '{print $2,$3,$14}'
done; done
