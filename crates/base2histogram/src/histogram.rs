use std::fmt;
use std::marker::PhantomData;

use crate::PercentileStats;

/// Bits of a value kept below its leading one bit when choosing a bucket.
const SUB_BITS: u32 = 2;
/// Buckets per power-of-two range.
const SUB: usize = 1 << SUB_BITS;
/// Buckets needed for all of `u64`: one each for `0..SUB`, then `SUB` for each of the ranges
/// `[2^e, 2^(e+1))` with `e` from `SUB_BITS` to 63.
pub(crate) const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// The bucket that counts `value`.
///
/// Below `2 * SUB` every value has its own bucket. Above, a value whose highest set bit is `e`
/// is placed by its top `SUB_BITS + 1` bits: the index is `(e - SUB_BITS) * SUB` plus those bits
/// read as a number (which lies in `SUB..2 * SUB`), so the indices run on without gaps.
pub(crate) fn bucket_of(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let shift = 63 - value.leading_zeros() - SUB_BITS;
    shift as usize * SUB + (value >> shift) as usize
}

/// The smallest and the largest value counted by bucket `index` (both inclusive).
pub(crate) fn bucket_bounds(index: usize) -> (u64, u64) {
    debug_assert!(index < BUCKETS);
    if index < 2 * SUB {
        return (index as u64, index as u64);
    }
    let shift = (index / SUB - 1) as u32;
    let top_bits = (index - shift as usize * SUB) as u64;
    let low = top_bits << shift;
    // Written as low + (width - 1) so that the last bucket ends at u64::MAX without overflow.
    (low, low + ((1u64 << shift) - 1))
}

/// A histogram of `u64` samples in log-linear buckets.
///
/// Recording is O(1); a percentile costs one pass over at most [`BUCKETS`] counters. See the
/// crate documentation for the bucket layout and the error of the reported percentiles.
///
/// The type parameter is there only so that `Histogram::<()>::new()`, as openraft writes it,
/// names this type; no value of `T` is ever stored.
pub struct Histogram<T = ()> {
    /// Samples per bucket. Empty until the first sample, then only as long as the highest
    /// bucket used; it never ends in a zero, so equal contents mean equal vectors.
    counts: Vec<u64>,
    /// Sum of `counts`, saturating.
    total: u64,
    /// Smallest and largest sample recorded; both 0 while `total` is 0.
    min: u64,
    max: u64,
    _unused: PhantomData<fn() -> T>,
}

impl<T> Histogram<T> {
    /// An empty histogram. Allocates nothing.
    pub fn new() -> Self {
        Histogram {
            counts: Vec::new(),
            total: 0,
            min: 0,
            max: 0,
            _unused: PhantomData,
        }
    }

    /// Records one sample of `value`.
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `count` samples of `value`. Counts saturate at `u64::MAX` instead of wrapping.
    pub fn record_n(&mut self, value: u64, count: u64) {
        if count == 0 {
            return;
        }
        let index = bucket_of(value);
        if self.counts.len() <= index {
            // Reserving exactly keeps a histogram of small values small.
            self.counts.reserve_exact(index + 1 - self.counts.len());
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] = self.counts[index].saturating_add(count);
        if self.total == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.total = self.total.saturating_add(count);
    }

    /// The number of samples recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// An estimate of the `p`-quantile, `p` in `0.0..=1.0` (0.5 is the median): the upper bound
    /// of the bucket holding the sample of rank `ceil(p * total)`, capped at the largest sample.
    /// `p` outside that range is clamped to it; an empty histogram answers 0.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        // The float product is exact enough: a rank off by one in billions moves no estimate
        // by more than a bucket's own error.
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return bucket_bounds(index).1.min(self.max);
            }
        }
        // Only reachable if bucket counts saturated while the total did not catch up.
        self.max
    }

    /// The percentiles openraft reports, from [`percentile`](Self::percentile).
    pub fn percentile_stats(&self) -> PercentileStats {
        PercentileStats {
            samples: self.total,
            p0_1: self.percentile(0.001),
            p1: self.percentile(0.01),
            p5: self.percentile(0.05),
            p10: self.percentile(0.10),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p99: self.percentile(0.99),
            p99_9: self.percentile(0.999),
        }
    }

    /// Non-empty buckets in increasing order, as `(low, high, count)` with inclusive bounds.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(index, &count)| {
                let (low, high) = bucket_bounds(index);
                (low, high, count)
            })
    }
}

impl<T> Default for Histogram<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Histogram<T> {
    fn clone(&self) -> Self {
        Histogram {
            counts: self.counts.clone(),
            total: self.total,
            min: self.min,
            max: self.max,
            _unused: PhantomData,
        }
    }
}

impl<T> PartialEq for Histogram<T> {
    fn eq(&self, other: &Self) -> bool {
        self.counts == other.counts
            && self.total == other.total
            && self.min == other.min
            && self.max == other.max
    }
}

impl<T> Eq for Histogram<T> {}

impl<T> fmt::Debug for Histogram<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Buckets<'a, T>(&'a Histogram<T>);
        impl<T> fmt::Debug for Buckets<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(
                        self.0
                            .buckets()
                            .map(|(low, high, count)| (low..=high, count)),
                    )
                    .finish()
            }
        }
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("buckets", &Buckets(self))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values around every power of two, plus small values and the extremes.
    fn probe_values() -> Vec<u64> {
        let mut values: Vec<u64> = (0..5000).collect();
        for e in 0..64 {
            let p = 1u64 << e;
            values.extend([p - 1, p, p + 1, p + p / 3, p | (p >> 1)]);
        }
        values.push(u64::MAX - 1);
        values.push(u64::MAX);
        values
    }

    #[test]
    fn buckets_tile_the_whole_range() {
        assert_eq!(bucket_bounds(0), (0, 0));
        for index in 1..BUCKETS {
            let (low, high) = bucket_bounds(index);
            let (_, previous_high) = bucket_bounds(index - 1);
            assert_eq!(
                low,
                previous_high + 1,
                "gap or overlap before bucket {index}"
            );
            assert!(low <= high);
        }
        assert_eq!(bucket_bounds(BUCKETS - 1).1, u64::MAX);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn every_value_falls_inside_its_bucket() {
        let mut last_index = 0;
        let mut values = probe_values();
        values.sort_unstable();
        for value in values {
            let index = bucket_of(value);
            let (low, high) = bucket_bounds(index);
            assert!(
                low <= value && value <= high,
                "{value} not in bucket {index} [{low}, {high}]"
            );
            assert!(index >= last_index, "bucket index decreased at {value}");
            last_index = index;
        }
    }

    #[test]
    fn small_values_are_exact_and_buckets_are_narrow() {
        for value in 0..2 * SUB as u64 {
            assert_eq!(bucket_bounds(bucket_of(value)), (value, value));
        }
        for index in 0..BUCKETS {
            let (low, high) = bucket_bounds(index);
            // Width is at most a quarter of the lower bound (and 1 for the exact buckets).
            assert!(
                (high - low) * SUB as u64 <= low || high == low,
                "bucket {index} too wide"
            );
        }
    }

    #[test]
    fn empty_histogram() {
        let h = Histogram::<()>::new();
        assert_eq!(h.total(), 0);
        assert_eq!(h.percentile(0.0), 0);
        assert_eq!(h.percentile(0.5), 0);
        assert_eq!(h.percentile(1.0), 0);
        let zero = PercentileStats {
            samples: 0,
            p0_1: 0,
            p1: 0,
            p5: 0,
            p10: 0,
            p50: 0,
            p90: 0,
            p99: 0,
            p99_9: 0,
        };
        assert_eq!(h.percentile_stats(), zero);
        assert_eq!(h, Histogram::default());
        assert_eq!(
            h.counts.capacity(),
            0,
            "an empty histogram must not allocate"
        );
        assert_eq!(h.buckets().count(), 0);
    }

    #[test]
    fn record_and_record_n_count_samples() {
        let mut h = Histogram::<()>::new();
        h.record(10);
        h.record(20);
        assert_eq!(h.total(), 2);
        h.record_n(1000, 5);
        assert_eq!(h.total(), 7);
        h.record_n(7, 0);
        assert_eq!(h.total(), 7);

        let buckets: Vec<_> = h.buckets().collect();
        assert_eq!(buckets, vec![(10, 11, 1), (20, 23, 1), (896, 1023, 5)]);
    }

    #[test]
    fn recording_zero_samples_changes_nothing() {
        let mut h = Histogram::<()>::new();
        h.record_n(1 << 40, 0);
        assert_eq!(h, Histogram::new());
        assert_eq!(h.counts.capacity(), 0);
    }

    #[test]
    fn memory_stays_small() {
        let mut h = Histogram::<()>::new();
        for value in 1..=64 {
            h.record(value);
        }
        assert!(
            h.counts.capacity() <= bucket_of(64) + 1,
            "small values should need few counters"
        );
        h.record(u64::MAX);
        assert!(h.counts.capacity() <= BUCKETS);
        assert!(BUCKETS * std::mem::size_of::<u64>() <= 2048);
        assert!(std::mem::size_of::<Histogram>() <= 64);
    }

    #[test]
    fn a_single_value_is_reported_exactly() {
        for value in [0, 1, 5, 1000, 123_456_789, u64::MAX] {
            let mut h = Histogram::<()>::new();
            h.record_n(value, 3);
            let s = h.percentile_stats();
            assert_eq!(s.samples, 3);
            for p in [s.p0_1, s.p1, s.p5, s.p10, s.p50, s.p90, s.p99, s.p99_9] {
                assert_eq!(p, value);
            }
        }
    }

    #[test]
    fn percentiles_are_within_bucket_error() {
        let n = 100_000u64;
        let mut h = Histogram::<()>::new();
        for value in 1..=n {
            h.record(value);
        }
        assert_eq!(h.total(), n);
        for p in [
            0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0,
        ] {
            // With values 1..=n the sample of rank r is r itself.
            let exact = ((p * n as f64).ceil() as u64).max(1);
            let estimate = h.percentile(p);
            assert!(estimate >= exact, "p{p}: {estimate} below {exact}");
            assert!(
                estimate * 4 <= exact * 5,
                "p{p}: {estimate} more than 25% above {exact}"
            );
        }
        assert_eq!(h.percentile(1.0), n, "the maximum is exact");
        assert_eq!(h.percentile(0.0), 1, "the minimum's bucket is exact here");
    }

    #[test]
    fn percentiles_follow_the_ranks() {
        let mut h = Histogram::<()>::new();
        h.record_n(2, 50);
        h.record_n(3000, 49);
        h.record(1_000_000);
        assert_eq!(h.percentile(0.5), 2);
        assert_eq!(h.percentile(0.51), 3071);
        assert_eq!(h.percentile(0.99), 3071);
        assert_eq!(h.percentile(0.999), 1_000_000);
        // Out-of-range and NaN requests are clamped rather than panicking.
        assert_eq!(h.percentile(-1.0), 2);
        assert_eq!(h.percentile(2.0), 1_000_000);
        assert_eq!(h.percentile(f64::NAN), 2);
    }

    #[test]
    fn percentile_stats_match_percentile() {
        let mut h = Histogram::<()>::new();
        for value in 0..1000 {
            h.record_n(value, value % 7 + 1);
        }
        let s = h.percentile_stats();
        assert_eq!(s.samples, h.total());
        assert_eq!(s.p0_1, h.percentile(0.001));
        assert_eq!(s.p1, h.percentile(0.01));
        assert_eq!(s.p5, h.percentile(0.05));
        assert_eq!(s.p10, h.percentile(0.1));
        assert_eq!(s.p50, h.percentile(0.5));
        assert_eq!(s.p90, h.percentile(0.9));
        assert_eq!(s.p99, h.percentile(0.99));
        assert_eq!(s.p99_9, h.percentile(0.999));
        let ordered = [s.p0_1, s.p1, s.p5, s.p10, s.p50, s.p90, s.p99, s.p99_9];
        assert!(ordered.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn equality_depends_on_contents_not_order() {
        let mut a = Histogram::<()>::new();
        let mut b = Histogram::<()>::new();
        for value in [5, 500, 50_000, 5] {
            a.record(value);
        }
        for value in [50_000, 5, 500] {
            b.record(value);
        }
        assert_ne!(a, b);
        b.record(5);
        assert_eq!(a, b);

        let c = a.clone();
        assert_eq!(a, c);
        a.record(6);
        assert_ne!(a, c, "a clone is independent of its original");
        assert_eq!(c.total(), 4);
    }

    #[test]
    fn counts_saturate_instead_of_overflowing() {
        let mut h = Histogram::<()>::new();
        h.record_n(9, u64::MAX);
        h.record_n(9, u64::MAX);
        h.record(u64::MAX);
        assert_eq!(h.total(), u64::MAX);
        assert_eq!(h.percentile(0.5), 9);
        assert_eq!(
            h.percentile(1.0),
            9,
            "ranks past the saturated count stay in it"
        );
    }

    #[test]
    fn debug_lists_non_empty_buckets() {
        let mut h = Histogram::<()>::new();
        h.record_n(17, 2);
        let text = format!("{h:?}");
        assert_eq!(
            text,
            "Histogram { total: 2, min: 17, max: 17, buckets: {16..=19: 2} }"
        );
    }
}
