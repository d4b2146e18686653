//! Hang and panic detection: a panic anywhere (the engine's own threads included) or no
//! progress for too long ends the process with a non-zero status and a message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit status for a hang.
pub const HANG_EXIT: i32 = 3;
/// Exit status for a panic.
pub const PANIC_EXIT: i32 = 101;

/// Progress marks, in milliseconds since the start.
pub struct Progress {
    start: Instant,
    ops: AtomicU64,
    last_op: AtomicU64,
    last_main: AtomicU64,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress {
            start: Instant::now(),
            ops: AtomicU64::new(0),
            last_op: AtomicU64::new(0),
            last_main: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A worker finished an operation.
    pub fn tick(&self) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.last_op.store(self.now(), Ordering::Relaxed);
    }

    /// The controlling thread is alive (not stuck joining a hung worker).
    pub fn tick_main(&self) {
        self.last_main.store(self.now(), Ordering::Relaxed);
    }
}

/// Any panic prints and exits at once: a panic in a background thread must not pass
/// unnoticed, and a half-panicked run must not go on to a verdict.
pub fn install_panic_exit() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        eprintln!("FAILURE: panic: {info}");
        std::process::exit(PANIC_EXIT);
    }));
}

/// Exits with `HANG_EXIT` when neither workers nor the controller progress for `hang`.
pub fn start(progress: Arc<Progress>, hang: Duration, what: String) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = progress.now();
        let op = progress.last_op.load(Ordering::Relaxed);
        let main = progress.last_main.load(Ordering::Relaxed);
        let limit = hang.as_millis() as u64;
        if now.saturating_sub(op) > limit || now.saturating_sub(main) > limit {
            eprintln!(
                "FAILURE: hang: no progress for {} s ({what}; {} operations done)",
                hang.as_secs(),
                progress.ops.load(Ordering::Relaxed)
            );
            std::process::exit(HANG_EXIT);
        }
    });
}
