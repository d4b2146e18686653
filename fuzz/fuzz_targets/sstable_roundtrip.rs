#![no_main]
//! cargo-fuzz target `sstable_roundtrip`: the body is `sealdb::fuzz::run("sstable_roundtrip", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/sstable_roundtrip/ and fuzz/regressions/sstable_roundtrip/ on the
//! stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("sstable_roundtrip", data);
});
