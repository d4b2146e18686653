#![no_main]
//! cargo-fuzz target `sstable_tamper`: the body is `sealdb::fuzz::run("sstable_tamper", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/sstable_tamper/ and fuzz/regressions/sstable_tamper/ on the
//! stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("sstable_tamper", data);
});
