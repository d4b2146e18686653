#![no_main]
//! cargo-fuzz target `audit_query`: the body is `sealdb::fuzz::run("audit_query", ..)`, which
//! tests/fuzz_corpus.rs also runs over fuzz/corpus/audit_query/ on the stable toolchain.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealdb::fuzz::run("audit_query", data);
});
