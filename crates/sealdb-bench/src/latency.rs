//! Latency percentiles from every sample, sorted (exact, and cheap enough: 8 bytes per op).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-operation latencies of one thread, in nanoseconds.
#[derive(Default, Debug, Clone)]
pub struct LatencyRecorder {
    samples: Vec<u64>,
}

impl LatencyRecorder {
    pub fn with_capacity(n: usize) -> LatencyRecorder {
        LatencyRecorder {
            samples: Vec::with_capacity(n),
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.samples
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn merge(&mut self, other: LatencyRecorder) {
        self.samples.extend(other.samples);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Sorts the samples and reads off the percentiles.
    pub fn summary(mut self) -> LatencySummary {
        self.samples.sort_unstable();
        let s = &self.samples;
        let micros = |q: f64| -> f64 {
            if s.is_empty() {
                return 0.0;
            }
            // Nearest-rank: the smallest sample with at least q of the samples at or below it.
            let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
            s[rank - 1] as f64 / 1000.0
        };
        LatencySummary {
            p50_us: micros(0.50),
            p99_us: micros(0.99),
            p999_us: micros(0.999),
            max_us: micros(1.0),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut r = LatencyRecorder::default();
        // 1..=1000 microseconds, recorded out of order.
        for i in (1..=1000u64).rev() {
            r.record(Duration::from_micros(i));
        }
        let s = r.summary();
        assert_eq!(s.p50_us, 500.0);
        assert_eq!(s.p99_us, 990.0);
        assert_eq!(s.p999_us, 999.0);
        assert_eq!(s.max_us, 1000.0);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(
            LatencyRecorder::default().summary(),
            LatencySummary::default()
        );
    }

    #[test]
    fn merge_keeps_all_samples() {
        let mut a = LatencyRecorder::default();
        a.record(Duration::from_nanos(5));
        let mut b = LatencyRecorder::default();
        b.record(Duration::from_nanos(7));
        a.merge(b);
        assert_eq!(a.len(), 2);
    }
}
