#!/usr/bin/env bash
# Process-crash loop: SIGKILLs a writing child N times (default 1000) and checks after each
# kill that every acknowledged synced write survived and no phantom key appeared.
#   scripts/crash-loop.sh [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
export SEALDB_CRASH_ITERATIONS="${1:-1000}"
exec cargo test --release --test crash_process -- --nocapture sigkill_loses_no_acknowledged_write
