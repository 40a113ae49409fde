use std::fmt;

use crate::Histogram;

/// Characters in the longest bar of a series.
const BAR_WIDTH: usize = 40;
/// Rows a series can have: one for 0, then one for each `[2^(r-1), 2^r - 1]`, `r` in 1..=64.
const ROWS: usize = 65;

/// Named histograms to be drawn as text, one block per histogram, in the order added.
#[derive(Debug, Clone)]
pub struct AsciiChart<T = ()> {
    series: Vec<(String, Histogram<T>)>,
}

impl<T> AsciiChart<T> {
    /// A chart with no histograms yet.
    pub fn new() -> Self {
        AsciiChart { series: Vec::new() }
    }

    /// Adds a histogram under `name`.
    pub fn add(mut self, name: &str, hist: Histogram<T>) -> Self {
        self.series.push((name.to_string(), hist));
        self
    }

    /// The chart with a row per power of two, to be formatted with `{}`.
    ///
    /// Each histogram gets a heading with its name and sample count, then one row for every
    /// power-of-two range from its smallest to its largest sample, empty ranges included:
    /// the range, a bar scaled to the fullest row of that histogram (any non-empty range
    /// shows at least one block), and the count.
    pub fn detailed(&self) -> DetailedChart<'_, T> {
        DetailedChart { chart: self }
    }
}

impl<T> Default for AsciiChart<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The text of an [`AsciiChart`]; see [`AsciiChart::detailed`].
pub struct DetailedChart<'a, T> {
    chart: &'a AsciiChart<T>,
}

/// Row `r` of a series counts the values `v` with `64 - v.leading_zeros() == r`.
fn row_of(value: u64) -> usize {
    (64 - value.leading_zeros()) as usize
}

fn row_label(row: usize) -> String {
    match row {
        0 => "0".to_string(),
        1 => "1".to_string(),
        _ => {
            let low = 1u64 << (row - 1);
            format!("{}-{}", low, low + (low - 1))
        }
    }
}

impl<T> DetailedChart<'_, T> {
    /// Counts per row for each series; bucket bounds never straddle a power of two.
    fn rows(hist: &Histogram<T>) -> [u64; ROWS] {
        let mut rows = [0u64; ROWS];
        for (low, high, count) in hist.buckets() {
            debug_assert_eq!(row_of(low), row_of(high));
            rows[row_of(low)] = rows[row_of(low)].saturating_add(count);
        }
        rows
    }
}

impl<T> fmt::Display for DetailedChart<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all_rows: Vec<[u64; ROWS]> = self
            .chart
            .series
            .iter()
            .map(|(_, hist)| Self::rows(hist))
            .collect();

        // One label width for the whole chart, so that the bars of all series line up.
        let label_width = all_rows
            .iter()
            .flat_map(|rows| rows.iter().enumerate().filter(|&(_, &count)| count > 0))
            .map(|(row, _)| row_label(row).len())
            .max()
            .unwrap_or(1);

        for ((name, hist), rows) in self.chart.series.iter().zip(&all_rows) {
            writeln!(f, "{name} (n={})", hist.total())?;
            let used: Vec<usize> = (0..ROWS).filter(|&row| rows[row] > 0).collect();
            let (Some(&first), Some(&last)) = (used.first(), used.last()) else {
                writeln!(f, "  (no samples)")?;
                continue;
            };
            let fullest = rows[first..=last].iter().copied().max().unwrap_or(1);
            for (row, &count) in rows.iter().enumerate().take(last + 1).skip(first) {
                // Scaled in u128 so that saturated counts cannot overflow; rounded up so that
                // a non-empty row never looks empty.
                let blocks = (count as u128 * BAR_WIDTH as u128).div_ceil(fullest as u128) as usize;
                writeln!(
                    f,
                    "  {:>label_width$} |{:<BAR_WIDTH$} {count}",
                    row_label(row),
                    "█".repeat(blocks),
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_cover_powers_of_two() {
        assert_eq!(row_of(0), 0);
        assert_eq!(row_of(1), 1);
        assert_eq!(row_of(2), 2);
        assert_eq!(row_of(3), 2);
        assert_eq!(row_of(4), 3);
        assert_eq!(row_of(u64::MAX), 64);
        assert_eq!(row_label(0), "0");
        assert_eq!(row_label(1), "1");
        assert_eq!(row_label(2), "2-3");
        assert_eq!(row_label(11), "1024-2047");
        assert_eq!(row_label(64), format!("{}-{}", 1u64 << 63, u64::MAX));
    }

    #[test]
    fn empty_chart_and_empty_series() {
        assert_eq!(AsciiChart::<()>::new().detailed().to_string(), "");
        let text = AsciiChart::new()
            .add("idle", Histogram::<()>::new())
            .detailed()
            .to_string();
        assert_eq!(text, "idle (n=0)\n  (no samples)\n");
    }

    #[test]
    fn bars_are_scaled_per_series() {
        let mut fast = Histogram::<()>::new();
        fast.record_n(8, 20);
        fast.record_n(20, 10);
        fast.record(300);
        let mut slow = Histogram::<()>::new();
        slow.record_n(1500, 3);

        let text = AsciiChart::new()
            .add("fast", fast)
            .add("slow", slow)
            .detailed()
            .to_string();
        let lines: Vec<&str> = text.lines().collect();
        let full = "█".repeat(BAR_WIDTH);
        let half = format!("{:<BAR_WIDTH$}", "█".repeat(BAR_WIDTH / 2));
        let one = format!("{:<BAR_WIDTH$}", "█".repeat(2));
        let none = " ".repeat(BAR_WIDTH);
        assert_eq!(
            lines,
            vec![
                "fast (n=31)".to_string(),
                format!("       8-15 |{full} 20"),
                format!("      16-31 |{half} 10"),
                format!("      32-63 |{none} 0"),
                format!("     64-127 |{none} 0"),
                format!("    128-255 |{none} 0"),
                format!("    256-511 |{one} 1"),
                "slow (n=3)".to_string(),
                format!("  1024-2047 |{full} 3"),
            ]
        );
    }
}
