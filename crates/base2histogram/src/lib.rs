//! Our stand-in for the crates.io crate `base2histogram` 0.2.3, which openraft uses for its
//! runtime statistics.
//!
//! # Why this crate exists
//!
//! Upstream 0.2.3 builds, on the first use of any histogram, one process-wide set of lookup
//! tables for *every* bucket width from 1 to 16 (a `LazyLock` static), although openraft only
//! ever uses the default width. Those tables take about 27 MB, and `Raft::new` creates
//! histograms unconditionally (the shared replication-batch histogram and the runtime
//! statistics), so every `ensemble server` member paid ~27 MB of its idle footprint for them.
//!
//! This crate replaces upstream through `[patch.crates-io]` in the workspace's root
//! `Cargo.toml` (and `fuzz/Cargo.toml`). It provides the same names and signatures that openraft
//! 0.10.0-alpha.37 uses, and nothing it does not use; it is written from scratch, not derived
//! from upstream's code. Delete it, and the two patch entries, once an upstream release stops
//! building tables for widths nobody asked for.
//!
//! # What it provides
//!
//! - [`Histogram`]: counts of `u64` samples in log-linear buckets, computed arithmetically:
//!   values below 4 have a bucket each, and every power-of-two range above that is split into
//!   4 equal buckets, so a bucket is never wider than a quarter of its lower bound. The 252
//!   buckets that cover all of `u64` take at most 2 KiB, allocated on the first sample and only
//!   as far as the largest bucket used (a histogram of batch sizes stays tiny); an empty
//!   histogram allocates nothing.
//! - [`PercentileStats`]: the fixed set of percentiles openraft displays.
//! - [`AsciiChart`]: a plain text rendering of several histograms, one bar per power of two.
//!
//! Percentiles are reported as the upper bound of the bucket that holds the requested rank,
//! capped at the largest sample recorded: never below the true value, and at most 25% above it.
//!
//! ```
//! use base2histogram::Histogram;
//!
//! let mut h = Histogram::<()>::new();
//! h.record(3);
//! h.record_n(100, 9);
//! assert_eq!(h.total(), 10);
//! assert_eq!(h.percentile(0.05), 3);
//! assert_eq!(h.percentile_stats().p50, 100);
//! ```

mod chart;
mod histogram;
mod percentile_stats;

pub use chart::AsciiChart;
pub use chart::DetailedChart;
pub use histogram::Histogram;
pub use percentile_stats::PercentileStats;
