#![no_main]
//! cargo-fuzz target `index_key`: the body is `sealdb::fuzz::run("index_key", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/index_key/ and fuzz/regressions/index_key/ on the
//! stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("index_key", data);
});
