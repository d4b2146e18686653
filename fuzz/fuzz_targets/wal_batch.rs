#![no_main]
//! cargo-fuzz target `wal_batch`: the body is `sealdb::fuzz::run("wal_batch", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/wal_batch/ and fuzz/regressions/wal_batch/ on the
//! stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("wal_batch", data);
});
