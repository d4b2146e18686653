//! The write cost of secondary indexes: fillrandom of JSON documents into a plaintext table
//! with 0, 1 and 2 global indexes (puts of one item each, not synced), in ops/s; and the
//! time to backfill an index added to the populated table.
//!
//! `cargo run --example index_cost [N]` (N items, default 100000). Besides ops/s it prints
//! the writing thread's CPU time per put (Linux: `/proc/thread-self/schedstat`), which is
//! where index maintenance runs; flushes and compactions run on other threads.

use std::time::Instant;

use sealdb::{Db, IndexSpec, Options, TableOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    for indexes in 0..=2 {
        let dir = tempfile::tempdir()?;
        let db = Db::open(dir.path(), Options::default())?;
        let t = db.create_table("t", TableOptions::plaintext())?;
        if indexes >= 1 {
            t.create_index("by_author", IndexSpec::json_pointer("/author"))?;
        }
        if indexes >= 2 {
            t.create_index("by_city", IndexSpec::json_pointer("/address/city"))?;
        }
        // A fixed-seed LCG: the same random key order for every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let start = Instant::now();
        let cpu_start = thread_cpu_ns();
        for _ in 0..n {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let k = (x >> 33) % n;
            let doc = format!(
                r#"{{"author":"author{:05}","address":{{"city":"city{:03}"}},"n":{k}}}"#,
                k % 10_000,
                k % 500
            );
            t.put(format!("item{k:012}"), doc)?;
        }
        let secs = start.elapsed().as_secs_f64();
        let cpu = match (cpu_start, thread_cpu_ns()) {
            (Some(a), Some(b)) => format!(", {:.2} us CPU/put", (b - a) as f64 / 1e3 / n as f64),
            _ => String::new(),
        };
        println!(
            "fillrandom {n} items, {indexes} index(es): {:.0} ops/s ({secs:.2} s{cpu})",
            n as f64 / secs
        );
        if indexes == 0 {
            // The backfill of an index added to the populated table.
            let start = Instant::now();
            t.create_index("later", IndexSpec::json_pointer("/author"))?;
            let st = t.indexes();
            println!(
                "backfill of {} items: {:.2} s",
                st.first().map_or(0, |s| s.backfilled),
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// CPU time of the calling thread so far, in nanoseconds (Linux only).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
