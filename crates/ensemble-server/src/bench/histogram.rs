//! Latency histograms for the load generator.
//!
//! Contract: [`LatencyHistogram`] records durations at microsecond resolution with three
//! significant digits (HdrHistogram), from 1 µs up to [`LatencyHistogram::CEILING`];
//! anything slower is recorded as the ceiling, anything faster as 1 µs. Quantiles are
//! reported as the highest value equivalent to the recorded one, so a reported p99 is
//! never below the true p99 by more than 0.1%. Histograms of several sessions merge
//! exactly.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Request latencies of one kind of operation.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    micros: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// The slowest latency told apart from slower ones.
    pub const CEILING: Duration = Duration::from_secs(60);

    pub fn new() -> Self {
        let ceiling = u64::try_from(Self::CEILING.as_micros()).unwrap_or(u64::MAX);
        let micros = Histogram::new_with_bounds(1, ceiling, 3)
            .expect("constant bounds: 1 µs to 60 s at 3 significant digits are valid");
        Self { micros }
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.micros.saturating_record(micros.max(1));
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The latency at quantile `q` (0.5 = median, 0.999 = p99.9); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.micros.value_at_quantile(q.clamp(0.0, 1.0)))
    }

    /// The slowest latency recorded (to the histogram's precision); zero when empty.
    pub fn max(&self) -> Duration {
        if self.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.micros.max())
    }

    /// Adds every latency of `other`.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.micros.add(&other.micros);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn quantiles_of_one_to_a_thousand() {
        let mut h = LatencyHistogram::new();
        for n in 1..=1000 {
            h.record(us(n));
        }
        assert_eq!(h.len(), 1000);
        assert_eq!(h.quantile(0.5), us(500));
        assert_eq!(h.quantile(0.9), us(900));
        assert_eq!(h.quantile(0.99), us(990));
        assert_eq!(h.quantile(0.999), us(999));
        assert_eq!(h.quantile(1.0), us(1000));
        assert_eq!(h.max(), us(1000));
    }

    #[test]
    fn tail_is_seen_and_precision_is_three_digits() {
        let mut h = LatencyHistogram::new();
        for _ in 0..990 {
            h.record(us(200));
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(75));
        }
        assert_eq!(h.quantile(0.5), us(200));
        assert_eq!(h.quantile(0.99), us(200));
        let p999 = h.quantile(0.999);
        assert!(
            p999 >= Duration::from_millis(75) && p999 <= us(75_075),
            "{p999:?}"
        );
    }

    #[test]
    fn extremes_are_clamped_and_empty_is_zero() {
        let mut h = LatencyHistogram::new();
        assert_eq!(
            (h.quantile(0.99), h.max()),
            (Duration::ZERO, Duration::ZERO)
        );
        h.record(Duration::from_nanos(10));
        h.record(Duration::from_secs(3600));
        assert_eq!(h.quantile(0.0), us(1));
        assert!(h.max() >= LatencyHistogram::CEILING);
        assert!(h.max() <= LatencyHistogram::CEILING + Duration::from_millis(60));
    }

    #[test]
    fn merging_adds_counts() {
        let (mut a, mut b) = (LatencyHistogram::new(), LatencyHistogram::new());
        a.record(us(10));
        b.record(us(30));
        b.record(us(20));
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.quantile(0.5), us(20));
        assert_eq!(a.max(), us(30));
    }
}
