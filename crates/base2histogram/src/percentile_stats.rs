use std::fmt;

/// A sample count and eight percentiles of one histogram, as openraft displays them.
///
/// The fields are public so that a value can be written as a literal (openraft's own tests
/// build constants this way). [`Histogram::percentile_stats`](crate::Histogram::percentile_stats)
/// fills them in; an empty histogram gives all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentileStats {
    /// Number of samples recorded.
    pub samples: u64,
    /// 0.1th percentile.
    pub p0_1: u64,
    /// 1st percentile.
    pub p1: u64,
    /// 5th percentile.
    pub p5: u64,
    /// 10th percentile.
    pub p10: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
}

/// One line: `[samples: N, P0.1: a, P1: b, …, P99.9: h]`. openraft embeds it in its compact
/// and multi-line runtime statistics, and its tests look for the `[samples: N` prefix.
impl fmt::Display for PercentileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labelled = [
            ("P0.1", self.p0_1),
            ("P1", self.p1),
            ("P5", self.p5),
            ("P10", self.p10),
            ("P50", self.p50),
            ("P90", self.p90),
            ("P99", self.p99),
            ("P99.9", self.p99_9),
        ];
        write!(f, "[samples: {}", self.samples)?;
        for (label, value) in labelled {
            write!(f, ", {label}: {value}")?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_bracketed_line() {
        let stats = PercentileStats {
            samples: 5,
            p0_1: 1,
            p1: 2,
            p5: 3,
            p10: 4,
            p50: 50,
            p90: 90,
            p99: 99,
            p99_9: 100,
        };
        assert_eq!(
            stats.to_string(),
            "[samples: 5, P0.1: 1, P1: 2, P5: 3, P10: 4, P50: 50, P90: 90, P99: 99, P99.9: 100]"
        );
    }
}
