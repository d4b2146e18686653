#![no_main]
//! cargo-fuzz target `kms_blob`: the body is `sealdb::fuzz::run("kms_blob", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/kms_blob/ on the stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("kms_blob", data);
});
