#!/usr/bin/env bash
# The stress test with its expected-state oracle for SECONDS (default 60): worker threads of
# random puts, overwrites, deletes, cross-table batches, point reads, forward and reverse
# scans and snapshot reads on four tables (plaintext/encrypted x LZ4 or not) while flushes
# and compactions run, with stop-verify-reopen phases. Exits non-zero on a wrong read, a
# lost write, a panic (status 101) or a hang (status 3; the tool's own watchdog, and an
# outer `timeout` here in case the process wedges whole).
#   scripts/stress.sh [seconds=60] [extra sealdb-stress run options, e.g. --seed N --threads 8]
# The seed is printed first; `--seed N` replays the same operation streams.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift $(( $# > 0 ? 1 : 0 ))
cargo build -q -p sealdb-stress
bin="${CARGO_TARGET_DIR:-target}/debug/sealdb-stress"
exec timeout --signal=KILL "$(( secs + 300 ))" "$bin" run --seconds "$secs" "$@"
