#![no_main]
//! cargo-fuzz target `current`: the body is `sealdb::fuzz::run("current", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/current/ and fuzz/regressions/current/ on the
//! stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("current", data);
});
