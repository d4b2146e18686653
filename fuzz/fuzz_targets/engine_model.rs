#![no_main]
//! cargo-fuzz target `engine_model`: the body is `sealdb::fuzz::run("engine_model", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/engine_model/ on the stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("engine_model", data);
});
