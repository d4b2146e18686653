#!/usr/bin/env bash
# The crash loop with the same oracle: N times (default 1000) a child writes (synced and
# unsynced puts, overwrites, deletes, cross-table and lockstep batches from three threads,
# while flushes, compactions and table creates/drops run) and dies by SIGKILL at a random
# moment or at a kill point of the Env seam (the k-th append/sync/create/rename/dir
# sync/remove of a WAL, table, MANIFEST or CURRENT file), half of those with a simulated
# power loss. After each death the parent reopens and checks every acknowledged write and
# the all-or-nothing of every unacknowledged batch across tables.
#   scripts/crash-loop.sh [iterations=1000] [extra options, e.g. --seed N --verbose]
# The loop seed is printed; a failure names its iteration and child seed, and keeps the
# database directory.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
shift $(( $# > 0 ? 1 : 0 ))
cargo build -q -p sealdb-stress
bin="${CARGO_TARGET_DIR:-target}/debug/sealdb-stress"
# At most ~3 s per crash even when a child or a reopen hangs.
exec timeout --signal=KILL "$(( n * 3 + 120 ))" "$bin" crash --iterations "$n" "$@"
