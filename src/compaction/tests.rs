//! Compaction inside the engine: unit tests that need crate internals.
