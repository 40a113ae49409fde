//! Unavailability as a client sees it: the longest stretch of the measured window in
//! which no operation, on any session, completed successfully.
//!
//! Contract: sessions [`Completions::record`] the instant each successful reply
//! arrived, as an offset from the start of the measured window; completions of all
//! sessions merge. [`Completions::longest_gap`] is the longest interval of
//! `[0, window]` holding none of them, its edges included: a run in which nothing
//! ever completes has a gap of the whole window, and one where the service never
//! came back has a gap that runs to the window's end.

use std::time::Duration;

/// When successful operations completed, as offsets from the measured window's start.
#[derive(Debug, Clone, Default)]
pub struct Completions {
    // Every completion is kept (16 bytes each): a run of a million operations costs
    // 16 MiB, and the gap is then exact.
    offsets: Vec<Duration>,
}

impl Completions {
    pub fn record(&mut self, offset: Duration) {
        self.offsets.push(offset);
    }

    pub fn merge(&mut self, other: Completions) {
        self.offsets.extend(other.offsets);
    }

    /// The longest interval of `[0, window]` without a completion; completions
    /// outside the window are ignored.
    pub fn longest_gap(mut self, window: Duration) -> Duration {
        self.offsets.retain(|&t| t <= window);
        self.offsets.sort_unstable();
        let mut longest = Duration::ZERO;
        let mut previous = Duration::ZERO;
        for &t in self.offsets.iter().chain(std::iter::once(&window)) {
            longest = longest.max(t - previous);
            previous = t;
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn completions(offsets_ms: &[u64]) -> Completions {
        let mut c = Completions::default();
        for &t in offsets_ms {
            c.record(ms(t));
        }
        c
    }

    #[test]
    fn the_gap_is_the_longest_quiet_interval_across_sessions() {
        // Two sessions: each alone has a gap of 400 ms, together at most 200 ms.
        let mut a = completions(&[10, 100, 500, 900]);
        let b = completions(&[50, 300, 700, 990]);
        a.merge(b);
        assert_eq!(a.longest_gap(ms(1000)), ms(200));
    }

    #[test]
    fn the_window_edges_count() {
        // Nothing for the first 300 ms.
        assert_eq!(completions(&[300, 350, 400]).longest_gap(ms(500)), ms(300));
        // Nothing after 100 ms: the service never came back.
        assert_eq!(completions(&[50, 100]).longest_gap(ms(1000)), ms(900));
        // Nothing at all.
        assert_eq!(Completions::default().longest_gap(ms(1000)), ms(1000));
    }

    #[test]
    fn order_and_completions_after_the_window_do_not_matter() {
        let unordered = completions(&[800, 100, 450, 5000]);
        assert_eq!(unordered.longest_gap(ms(1000)), ms(350));
    }
}
