#![no_main]
//! cargo-fuzz target `wrapped_key`: the body is `sealdb::fuzz::run("wrapped_key", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/wrapped_key/ on the stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("wrapped_key", data);
});
