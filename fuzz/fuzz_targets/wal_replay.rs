#![no_main]
//! cargo-fuzz target `wal_replay`: the body is `sealdb::fuzz::run("wal_replay", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/wal_replay/ on the stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("wal_replay", data);
});
