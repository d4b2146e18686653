#!/usr/bin/env bash
# The long reliability checks, and the results section of docs/reliability.md written from
# what they printed (dated, with the commit and the commands):
#   1. the stress test with the oracle for STRESS_SECS,
#   2. the crash loop for CRASHES iterations,
#   3. fault injection at every call site and the power-loss modes (the test suites),
#   4. every fuzz target for FUZZ_SECS each.
#   scripts/long-checks.sh [stress-secs=600] [crashes=2000] [fuzz-secs=300]
# Set a step's figure to 0 to skip it. Needs cargo-fuzz for step 4 (see docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
stress_secs="${1:-600}"
crashes="${2:-2000}"
fuzz_secs="${3:-300}"
out=fuzz/work/long-checks
mkdir -p "$out"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src crates tests || echo "+dirty")
started=$(date -u +"%Y-%m-%d %H:%M UTC")
results="$out/results.md"
{
  echo "Run of \`scripts/long-checks.sh $stress_secs $crashes $fuzz_secs\` at commit \`$commit\`,"
  echo "started $started, on $(nproc) cores (shared with other work)."
  echo
} > "$results"

if [ "$stress_secs" -gt 0 ]; then
  echo "== stress $stress_secs s"
  bash scripts/stress.sh "$stress_secs" --threads 4 2>&1 | tee "$out/stress.log"
  { echo "**Stress** (\`scripts/stress.sh $stress_secs --threads 4\`):"; echo '```'; grep -E "^sealdb-stress run|^stress:" "$out/stress.log"; echo '```'; echo; } >> "$results"
fi
if [ "$crashes" -gt 0 ]; then
  echo "== crash loop $crashes"
  bash scripts/crash-loop.sh "$crashes" 2>&1 | tee "$out/crash.log"
  { echo "**Crash loop** (\`scripts/crash-loop.sh $crashes\`):"; echo '```'; grep -E "^sealdb-stress crash|^crash:" "$out/crash.log"; echo '```'; echo; } >> "$results"
fi
echo "== fault injection and power-loss modes"
cargo test --test fault_injection --test power_loss_modes -- --nocapture --test-threads=1 2>&1 | tee "$out/faults.log"
{ echo "**Fault injection** (\`cargo test --test fault_injection --test power_loss_modes -- --nocapture\`):"; echo '```'; grep -E "^calls in|^fault kind|^after ENOSPC|power losses at|^test result" "$out/faults.log" | sort -u; echo '```'; echo; } >> "$results"
if [ "$fuzz_secs" -gt 0 ]; then
  echo "== fuzz $fuzz_secs s per target"
  bash scripts/fuzz.sh "$fuzz_secs" || true
  { echo "**Fuzzing** (\`scripts/fuzz.sh $fuzz_secs\`):"; echo '```'; cat fuzz/work/summary.txt; echo '```'; echo; } >> "$results"
fi

# Replace the results section of docs/reliability.md.
doc=docs/reliability.md
awk -v file="$results" '
  /<!-- results:begin -->/ { print; while ((getline line < file) > 0) print line; skip = 1; next }
  /<!-- results:end -->/ { skip = 0 }
  !skip { print }
' "$doc" > "$doc.new" && mv "$doc.new" "$doc"
echo "== results (also in $doc)"
cat "$results"
