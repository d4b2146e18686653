#![no_main]
//! cargo-fuzz target `manifest_replay`: the body is `sealdb::fuzz::run("manifest_replay", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/manifest_replay/ on the stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("manifest_replay", data);
});
