#![no_main]
//! cargo-fuzz target `sstable`: the body is `sealdb::fuzz::run("sstable", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/sstable/ on the stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("sstable", data);
});
