#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 20) and fails on any finding.
# Findings land in fuzz/artifacts/<target>/; copy each into fuzz/regressions/<target>/
# (named after what it found) so tests/fuzz_corpus.rs replays it forever.
#   scripts/fuzz.sh [seconds=20] [targets...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); stable toolchain via RUSTC_BOOTSTRAP=1
# (or FUZZ_TOOLCHAIN=+nightly). Per-target logs and exec counts go to fuzz/work/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^sealdb-fuzz$')
fi
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
  fuzz=(cargo "$FUZZ_TOOLCHAIN" fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
mkdir -p fuzz/work
summary=fuzz/work/summary.txt
: > "$summary"
(cd fuzz && "${fuzz[@]}" build -s none)
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t"
  # New inputs go to fuzz/work/<t> (not committed); the seed corpus is only read.
  if (cd fuzz && "${fuzz[@]}" run -s none "$t" "work/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1) \
      > "fuzz/work/$t.log" 2>&1; then
    status=ok
  else
    status="FINDING (fuzz/work/$t.log, fuzz/artifacts/$t/)"
    failed=1
  fi
  runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "fuzz/work/$t.log" | grep -oE "[0-9]+$" | tail -1 || true)
  echo "$t: $status; ${runs:-?} execs in ${secs} s" | tee -a "$summary"
done
exit "$failed"
