#![no_main]
//! cargo-fuzz target `keystore`: the body is `sealdb::fuzz::run("keystore", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/keystore/ and fuzz/regressions/keystore/ on the
//! stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("keystore", data);
});
