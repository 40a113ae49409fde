//! What a bench run measured: tallies collected by the sessions, and the report made of
//! them, as a text table for people or JSON for scripts.
//!
//! Contract: a [`Tally`] counts, per [`OpKind`], the latencies of successful replies
//! and the failed ones by error name (ZooKeeper's `KeeperException.Code` names, e.g.
//! `NoNode`, or `MalformedReply`). Tallies of sessions merge. A [`Report`] turns the
//! merged tally and the run's parameters into rates over the measured window; `total`
//! covers every kind. Latencies are in microseconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::histogram::LatencyHistogram;
use super::mix::OpKind;
use crate::protocol::ErrorCode;

/// The error name used when a reply's body does not decode.
pub const MALFORMED_REPLY: &str = "MalformedReply";

/// ZooKeeper's name for an error code, or the number when it has none.
pub fn error_name(code: i32) -> String {
    ErrorCode::from_i32(code).map_or_else(|| code.to_string(), |c| format!("{c:?}"))
}

/// Outcomes of one kind of operation.
#[derive(Debug, Clone, Default)]
pub struct KindTally {
    pub latencies: LatencyHistogram,
    pub errors: BTreeMap<String, u64>,
}

/// Outcomes of every kind of operation, for one session or merged.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    kinds: BTreeMap<OpKind, KindTally>,
}

impl Tally {
    pub fn record_ok(&mut self, kind: OpKind, latency: Duration) {
        self.kinds
            .entry(kind)
            .or_default()
            .latencies
            .record(latency);
    }

    pub fn record_error(&mut self, kind: OpKind, name: String) {
        *self
            .kinds
            .entry(kind)
            .or_default()
            .errors
            .entry(name)
            .or_default() += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        for (kind, theirs) in &other.kinds {
            let ours = self.kinds.entry(*kind).or_default();
            ours.latencies.merge(&theirs.latencies);
            for (name, n) in &theirs.errors {
                *ours.errors.entry(name.clone()).or_default() += n;
            }
        }
    }

    pub fn kind(&self, kind: OpKind) -> Option<&KindTally> {
        self.kinds.get(&kind)
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    fn of(h: &LatencyHistogram) -> Self {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self {
            p50: us(h.quantile(0.5)),
            p90: us(h.quantile(0.9)),
            p99: us(h.quantile(0.99)),
            p999: us(h.quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// The results of one kind of operation, or of all of them.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    /// The kind (`create`, `get`, ...) or `total`.
    pub op: String,
    /// Successful operations in the measured window.
    pub ops: u64,
    pub ops_per_sec: f64,
    pub latency_us: Percentiles,
    /// Failed operations by error name.
    pub errors: BTreeMap<String, u64>,
}

impl OpSummary {
    fn of(op: &str, tally: &KindTally, measured: Duration) -> Self {
        let secs = measured.as_secs_f64();
        let ops = tally.latencies.len();
        Self {
            op: op.to_owned(),
            ops,
            ops_per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
            latency_us: Percentiles::of(&tally.latencies),
            errors: tally.errors.clone(),
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A bench run's parameters and results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub servers: Vec<String>,
    /// The private root the run worked under (deleted afterwards).
    pub root: String,
    pub sessions: u32,
    pub in_flight: u32,
    pub mix: String,
    pub value_size: usize,
    pub keys: u32,
    pub warmup_secs: f64,
    pub measured_secs: f64,
    /// One entry per kind in the mix, in a fixed order.
    pub ops: Vec<OpSummary>,
    pub total: OpSummary,
}

/// The parameters a report repeats.
#[derive(Debug, Clone)]
pub struct RunParameters {
    pub servers: Vec<String>,
    pub root: String,
    pub sessions: u32,
    pub in_flight: u32,
    pub mix: super::mix::Mix,
    pub value_size: usize,
    pub keys: u32,
    pub warmup: Duration,
    pub measured: Duration,
}

impl Report {
    pub fn new(run: RunParameters, tally: &Tally) -> Self {
        let mut total = KindTally::default();
        let mut ops = Vec::new();
        for kind in run.mix.kinds() {
            let kind_tally = tally.kind(kind).cloned().unwrap_or_default();
            total.latencies.merge(&kind_tally.latencies);
            for (name, n) in &kind_tally.errors {
                *total.errors.entry(name.clone()).or_default() += n;
            }
            ops.push(OpSummary::of(kind.name(), &kind_tally, run.measured));
        }
        Self {
            servers: run.servers,
            root: run.root,
            sessions: run.sessions,
            in_flight: run.in_flight,
            mix: run.mix.to_string(),
            value_size: run.value_size,
            keys: run.keys,
            warmup_secs: run.warmup.as_secs_f64(),
            measured_secs: run.measured.as_secs_f64(),
            total: OpSummary::of("total", &total, run.measured),
            ops,
        }
    }

    pub fn to_json(&self) -> String {
        // A tree of strings, numbers and maps with string keys always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A table for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} session(s) x {} in flight against {}; mix {}; {}-byte values; {} keys; \
             {:.1} s measured after {:.1} s warmup",
            self.sessions,
            self.in_flight,
            self.servers.join(","),
            self.mix,
            self.value_size,
            self.keys,
            self.measured_secs,
            self.warmup_secs,
        );
        let _ = writeln!(
            out,
            "{:<8} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
            "op", "ops", "ops/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
        );
        for summary in self.ops.iter().chain(std::iter::once(&self.total)) {
            let l = summary.latency_us;
            let errors = if summary.errors.is_empty() {
                "0".to_owned()
            } else {
                summary
                    .errors
                    .iter()
                    .map(|(name, n)| format!("{name}={n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let _ = writeln!(
                out,
                "{:<8} {:>10} {:>12.1} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
                summary.op,
                summary.ops,
                summary.ops_per_sec,
                l.p50,
                l.p90,
                l.p99,
                l.p999,
                l.max,
                errors
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_totals_kinds_and_names_errors() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        for _ in 0..30 {
            a.record_ok(OpKind::Get, Duration::from_micros(100));
        }
        for _ in 0..10 {
            b.record_ok(OpKind::Set, Duration::from_micros(300));
        }
        b.record_error(OpKind::Set, error_name(ErrorCode::NoNode.code()));
        b.record_error(OpKind::Set, error_name(-999));
        a.merge(&b);
        let report = Report::new(
            RunParameters {
                servers: vec!["127.0.0.1:2181".into()],
                root: "/bench-x".into(),
                sessions: 2,
                in_flight: 1,
                mix: "get=3,set=1".parse().expect("mix"),
                value_size: 8,
                keys: 4,
                warmup: Duration::ZERO,
                measured: Duration::from_secs(2),
            },
            &a,
        );
        assert_eq!(report.ops.len(), 2);
        assert_eq!(report.ops[0].op, "set");
        assert_eq!(report.ops[0].ops_per_sec, 5.0);
        assert_eq!(report.ops[1].latency_us.p99, 100);
        assert_eq!(report.total.ops, 40);
        assert_eq!(report.total.ops_per_sec, 20.0);
        assert_eq!(report.total.latency_us.p50, 100);
        assert_eq!(report.total.latency_us.max, 300);
        assert_eq!(report.total.error_count(), 2);
        assert_eq!(
            report.total.errors.keys().collect::<Vec<_>>(),
            ["-999", "NoNode"]
        );

        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        assert_eq!(json["total"]["ops"], 40);
        assert_eq!(json["ops"][1]["latency_us"]["p50"], 100);
        let text = report.to_text();
        assert!(text.contains("NoNode=1"), "{text}");
        assert!(text.lines().last().unwrap_or("").starts_with("total"));
    }
}
