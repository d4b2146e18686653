#!/usr/bin/env bash
# Runs the same workloads on sealdb (encrypted and plaintext), RocksDB, fjall, redb and sled,
# each engine in its own process, then prints one table, the AEAD ceiling, and (if
# installed) RocksDB's own db_bench for reference.
#
#   scripts/bench-compare.sh [--num N] [--engines "sealdb-encrypted rocksdb ..."] [extra args]
#
# Extra arguments (e.g. --benchmarks fillrandom,readrandom --cache-mb 32) go to every engine.
set -euo pipefail
cd "$(dirname "$0")/.."

NUM=1000000
ENGINES="sealdb-encrypted sealdb-plaintext rocksdb fjall redb sled"
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --num) NUM="$2"; shift 2 ;;
    --engines) ENGINES="$2"; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

OUT="${BENCH_OUT:-target/bench-compare/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
# RocksDB is the `rocksdb` crate's bundled copy, compiled from source (about 30 min on 2
# cores; needs clang/libclang for bindgen): point CARGO_TARGET_DIR at a directory outside
# the repo that keeps the build. Its C++ is built without debug info (faster, smaller).
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -p bench-compare --config 'profile.release.package.librocksdb-sys.debug=0'
BIN="$TARGET/release/bench-compare"

echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores; num=$NUM ${EXTRA[*]:-}" | tee "$OUT/summary.md"
JSONS=()
for e in $ENGINES; do
  echo "== $e" >&2
  "$BIN" --engine "$e" --num "$NUM" --json "$OUT/$e.json" "${EXTRA[@]}" 2> "$OUT/$e.txt" || {
    echo "$e failed; see $OUT/$e.txt" >&2
    continue
  }
  JSONS+=("$OUT/$e.json")
done
"$BIN" --combine "${JSONS[@]}" | tee -a "$OUT/summary.md"
echo | tee -a "$OUT/summary.md"
"$BIN" --aead | tee -a "$OUT/summary.md"

if command -v db_bench > /dev/null; then
  echo | tee -a "$OUT/summary.md"
  echo "RocksDB db_bench ($(dpkg-query -W -f='${Version}' rocksdb-tools 2>/dev/null || echo '?')):" | tee -a "$OUT/summary.md"
  db_bench --benchmarks=fillrandom,readrandom --num="$NUM" --key_size=16 --value_size=100 \
    --compression_type=none --cache_size=$((32 << 20)) --write_buffer_size=$((32 << 20)) \
    --bloom_bits=10 --sync=0 --disable_wal=0 --threads=1 --db="$OUT/db_bench" 2>&1 \
    | grep -E '^(fillrandom|readrandom)' | tee -a "$OUT/summary.md"
  rm -rf "$OUT/db_bench"
fi
echo "reports in $OUT" >&2
