#![no_main]
//! cargo-fuzz target `data_block`: the body is `sealdb::fuzz::run("data_block", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/data_block/ on the stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("data_block", data);
});
