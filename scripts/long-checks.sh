#!/usr/bin/env bash
# The long reliability checks: the SIGKILL crash loop for N iterations, then every
# cargo-fuzz target for M minutes each. Figures go to stdout and to fuzz/work/summary.txt.
#   scripts/long-checks.sh [crash-iterations=1000] [fuzz-minutes=10] [targets...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on stable via RUSTC_BOOTSTRAP=1
# (or set FUZZ_TOOLCHAIN=+nightly). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
iterations="${1:-1000}"
minutes="${2:-10}"
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(data_block sstable wal_replay manifest_replay kms_blob wrapped_key key_policy audit_query engine_model)
fi
mkdir -p fuzz/work
summary=fuzz/work/summary.txt
: > "$summary"

if [ "$iterations" -gt 0 ]; then
  echo "== crash loop: $iterations SIGKILLs"
  SEALDB_CRASH_ITERATIONS="$iterations" cargo test --release --test crash_process -- \
    --nocapture sigkill_loses_no_acknowledged_write 2>&1 | tee fuzz/work/crash.log | grep -E "crash test|test result"
  grep "crash test" fuzz/work/crash.log >> "$summary" || true
fi

if [ "$minutes" -gt 0 ]; then
  if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    fuzz=(cargo "$FUZZ_TOOLCHAIN" fuzz)
  else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
  fi
  secs=$(( minutes * 60 ))
  (cd fuzz && "${fuzz[@]}" build -s none)
  for t in "${targets[@]}"; do
    echo "== fuzz $t for $minutes min"
    mkdir -p "fuzz/work/$t"
    # New inputs go to fuzz/work/<t> (not committed); the seed corpus is read only.
    (cd fuzz && "${fuzz[@]}" run -s none "$t" "work/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1) \
      > "fuzz/work/$t.log" 2>&1 && status=ok || status="FAILED (see fuzz/work/$t.log, fuzz/artifacts/$t/)"
    runs=$(grep -oE "Done [0-9]+ runs" "fuzz/work/$t.log" | tail -1 || true)
    echo "$t: $status; ${runs:-no run count}" | tee -a "$summary"
  done
fi
echo "== summary"
cat "$summary"
