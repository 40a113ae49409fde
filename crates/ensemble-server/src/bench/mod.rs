//! `ensemble bench`: a load generator for any ZooKeeper-compatible server (ours or
//! Apache ZooKeeper), speaking the wire protocol through our own codec.
//!
//! Contract: [`bench`] validates its [`BenchArgs`], opens a private root
//! `/bench-<random>` with `--keys` key nodes, opens `--sessions` sessions spread
//! round-robin over the `--connect` addresses, and from each keeps `--in-flight`
//! requests pipelined, chosen by `--mix`, for `--warmup` then `--duration`. Only
//! requests sent after the warmup are tallied. The load is closed-loop: a new request
//! goes out when a reply comes back, so latency includes queueing at the server. It
//! then deletes the root and everything under it, and returns a [`Report`] (per kind
//! and in total: ops/s, latency percentiles, errors by ZooKeeper error name). [`run`]
//! is the CLI: it prints the report as a table, or as JSON with `--json`.
//!
//! Modules: [`mix`] (which operations), [`session`] (the pipelining client),
//! [`histogram`] (latencies), [`report`] (tallies and output), and `workload` (setup,
//! load, teardown).

pub mod histogram;
pub mod mix;
pub mod report;
pub mod session;
mod workload;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use mix::{Mix, MixError, OpKind};
pub use report::{OpSummary, Percentiles, Report};
pub use session::{Session, SessionError};

use report::{RunParameters, Tally};
use workload::{Window, Workload};

/// The session timeout the bench asks for; requests flow constantly, so no pings.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest value accepted: a request must fit ZooKeeper's default 1 MiB `jute.maxbuffer`.
const MAX_VALUE_SIZE: usize = 1_000_000;

/// `ensemble bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Servers to load, `host:port[,host:port...]`; sessions are spread over them.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2181")]
    pub connect: Vec<String>,
    /// Client sessions (one TCP connection each).
    #[arg(long, default_value_t = 4)]
    pub sessions: u32,
    /// Requests each session keeps outstanding (pipelined).
    #[arg(long, default_value_t = 8)]
    pub in_flight: u32,
    /// Relative weights of operations: create, set, get, exists, delete.
    #[arg(long, default_value = "get=60,set=30,create=10")]
    pub mix: Mix,
    /// Bytes of data in each created or set node.
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
    /// Measured time, e.g. `10s`, `500ms`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before measuring starts, not tallied.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Key nodes that get, set and exists pick from at random (the working set).
    #[arg(long, default_value_t = 1000)]
    pub keys: u32,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A setup or teardown request the server refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub path: String,
    /// ZooKeeper's name of the error code.
    pub error: String,
}

/// Why a bench run failed.
#[derive(Debug, Error)]
pub enum BenchError {
    #[error("invalid bench options: {0}")]
    Invalid(String),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("setting up the bench root failed: create {} answered {}", .0.path, .0.error)]
    Setup(StepFailure),
    #[error("cleaning up failed: delete {} answered {}", .0.path, .0.error)]
    Teardown(StepFailure),
    #[error("a bench session task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Parses `1.5s`, `250ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s, 500ms or 2m"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(number * scale).map_err(|e| format!("`{text}`: {e}"))
}

fn validate(args: &BenchArgs) -> Result<(), BenchError> {
    let invalid = |why: String| Err(BenchError::Invalid(why));
    if args.connect.is_empty() {
        return invalid("--connect names no server".into());
    }
    if let Some(addr) = args
        .connect
        .iter()
        .find(|a| a.contains('/') || a.is_empty())
    {
        return invalid(format!("--connect `{addr}` is not host:port (no chroot)"));
    }
    if args.sessions == 0 || args.in_flight == 0 || args.keys == 0 {
        return invalid("--sessions, --in-flight and --keys must be at least 1".into());
    }
    if args.value_size > MAX_VALUE_SIZE {
        return invalid(format!("--value-size is at most {MAX_VALUE_SIZE} bytes"));
    }
    if args.duration.is_zero() {
        return invalid("--duration must be positive".into());
    }
    Ok(())
}

/// Runs a bench and returns its report; `stop` ends the load early (the report then
/// covers the time actually measured). See the module contract.
pub async fn bench(args: &BenchArgs, stop: CancellationToken) -> Result<Report, BenchError> {
    validate(args)?;
    let root = format!("/bench-{:016x}", rand::random::<u64>());
    let workload = Arc::new(Workload {
        keys: (0..args.keys).map(|i| format!("{root}/k{i}")).collect(),
        root,
        value: vec![b'x'; args.value_size],
        mix: args.mix.clone(),
    });
    let first = &args.connect[0];

    tracing::info!(root = %workload.root, keys = args.keys, "creating the bench root and keys");
    if let Err(e) = prepare(first, &workload).await {
        best_effort_cleanup(first, &workload).await;
        return Err(e);
    }

    let loaded = load(args, &workload, stop).await;
    let (tally, created, measured) = match loaded {
        Ok(outcome) => outcome,
        Err(e) => {
            best_effort_cleanup(first, &workload).await;
            return Err(e);
        }
    };
    cleanup(first, &workload, created).await?;

    Ok(Report::new(
        RunParameters {
            servers: args.connect.clone(),
            root: workload.root.clone(),
            sessions: args.sessions,
            in_flight: args.in_flight,
            mix: args.mix.clone(),
            value_size: args.value_size,
            keys: args.keys,
            warmup: args.warmup,
            measured,
        },
        &tally,
    ))
}

/// Connects every session, runs the load, and merges what they measured.
async fn load(
    args: &BenchArgs,
    workload: &Arc<Workload>,
    stop: CancellationToken,
) -> Result<(Tally, Vec<String>, Duration), BenchError> {
    let sync = crate::protocol::Request::Sync(crate::protocol::SyncRequest {
        path: workload.root.clone(),
    });
    let mut sessions = Vec::new();
    for i in 0..args.sessions as usize {
        let addr = &args.connect[i % args.connect.len()];
        let mut session = Session::connect(addr, SESSION_TIMEOUT).await?;
        // A follower must have the keys before this session reads them.
        session.call(&sync).await?;
        sessions.push(session);
    }
    tracing::info!(
        sessions = args.sessions,
        in_flight = args.in_flight,
        mix = %args.mix,
        "load running"
    );
    let started = Instant::now();
    let window = Window {
        measure_from: started + args.warmup,
        until: started + args.warmup + args.duration,
    };
    let mut tasks = JoinSet::new();
    for (i, session) in sessions.into_iter().enumerate() {
        tasks.spawn(workload::drive(
            session,
            i,
            Arc::clone(workload),
            args.in_flight as usize,
            window,
            stop.clone(),
        ));
    }
    let mut tally = Tally::default();
    let mut created = Vec::new();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(BenchError::from).and_then(|r| Ok(r?)) {
            Ok(outcome) => {
                tally.merge(&outcome.tally);
                created.extend(outcome.created);
            }
            Err(e) => {
                // One broken session ends the run: the others stop sending too.
                stop.cancel();
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let ended = Instant::now().min(window.until);
    Ok((
        tally,
        created,
        ended.saturating_duration_since(window.measure_from),
    ))
}

async fn prepare(addr: &str, workload: &Workload) -> Result<(), BenchError> {
    let mut admin = Session::connect(addr, SESSION_TIMEOUT).await?;
    workload::setup(&mut admin, workload)
        .await?
        .map_err(BenchError::Setup)?;
    admin.close().await?;
    Ok(())
}

/// Removes the root after a failed run, whose failure is the one worth reporting.
async fn best_effort_cleanup(addr: &str, workload: &Workload) {
    if let Err(e) = cleanup(addr, workload, Vec::new()).await {
        tracing::warn!(error = %e, root = %workload.root, "cleanup after a failed run failed");
    }
}

async fn cleanup(addr: &str, workload: &Workload, created: Vec<String>) -> Result<(), BenchError> {
    let mut admin = Session::connect(addr, SESSION_TIMEOUT).await?;
    workload::teardown(&mut admin, workload, created)
        .await?
        .map_err(BenchError::Teardown)?;
    admin.close().await?;
    Ok(())
}

/// `ensemble bench`: runs, then prints the report; Ctrl-C ends the load early.
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    let stop = CancellationToken::new();
    let interrupt = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupt.cancel();
        }
    });
    let report = bench(&args, stop).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    fn args() -> BenchArgs {
        BenchArgs {
            connect: vec!["127.0.0.1:2181".into()],
            sessions: 1,
            in_flight: 1,
            mix: "get=1".parse().expect("mix"),
            value_size: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            keys: 1,
            json: false,
        }
    }

    #[test]
    fn options_are_checked_before_connecting() {
        assert!(validate(&args()).is_ok());
        let bad = [
            BenchArgs {
                connect: vec!["h:1/chroot".into()],
                ..args()
            },
            BenchArgs {
                sessions: 0,
                ..args()
            },
            BenchArgs {
                value_size: 2_000_000,
                ..args()
            },
            BenchArgs {
                duration: Duration::ZERO,
                ..args()
            },
        ];
        for b in bad {
            assert!(matches!(validate(&b), Err(BenchError::Invalid(_))), "{b:?}");
        }
    }
}
