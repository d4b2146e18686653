#![no_main]
//! cargo-fuzz target `key_policy`: the body is `sealdb::fuzz::run("key_policy", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/key_policy/ on the stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("key_policy", data);
});
