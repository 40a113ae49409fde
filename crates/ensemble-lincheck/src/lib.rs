//! `ensemble-lincheck`: records what concurrent clients saw of znodes and checks that
//! it is linearizable.
//!
//! A pure library: no I/O, no ZooKeeper client. Fault tests (kill the leader under load,
//! partition a member) record every request their clients make, then ask this crate
//! whether some single order of those requests, consistent with real time, explains
//! every reply.
//!
//! # Model
//!
//! - A [`History`] is a list of [`Operation`]s. Each names a client ([`ClientId`], for
//!   reports only), a key `K` (an independent object, e.g. a znode path), a
//!   [`Command`], the time it was invoked and its [`Outcome`]. Times are any
//!   `T: Ord + Copy + Debug`; [`Recorder`] uses the [`Duration`](std::time::Duration)
//!   since its creation.
//! - Each key is a versioned register, a znode's data ([`Register`]): absent, or a
//!   value `V` with a version. Every key starts absent (or as
//!   [`History::check_from`] says). The commands, and the replies
//!   [`Register::apply`] says a correct server gives:
//!
//!   | command | key absent | key present at version `n` |
//!   |---|---|---|
//!   | [`Command::Read`] (getData) | `NoNode` | `Data { value, version: n }` |
//!   | [`Command::Write`] (setData, version -1) | `NoNode` | `Stat { version: n + 1 }` |
//!   | [`Command::Cas`] (setData with a version) | `NoNode` | `Stat { version: n + 1 }` if `expected_version == n`, else `BadVersion` |
//!   | [`Command::Create`] | `Created`, now version 0 | `NodeExists` |
//!   | [`Command::Delete`] (version -1) | `NoNode` | `Deleted` |
//!
//! - An [`Outcome`] is `Ok { at, reply }` (the server did it and said so),
//!   `Failed { at, code }` (the server refused, so it did not take effect), or `Unknown`
//!   (no reply: connection loss, timeout, the client was killed). A refusal is an
//!   observation like any other: a `BadVersion` claims the version differed, a `NoNode`
//!   that the node was absent, and both are checked. Which replies each command can
//!   give is fixed ([`Command::can_reply`]); a history with any other pairing is
//!   refused as [`CheckError::Malformed`] rather than silently misjudged.
//!
//! # Guarantee
//!
//! [`History::check`] accepts a history if and only if, for every key, there is a
//! sequential order of that key's operations such that:
//! - every `Ok` and `Failed` operation appears once, at a point between its invocation
//!   and its completion, and its reply is the one [`Register::apply`] gives in that
//!   order;
//! - every `Unknown` operation either appears once, at any point after its invocation
//!   (its completion is taken as +infinity; any reply is accepted), or not at all;
//! - an operation that completed strictly before another was invoked comes first.
//!   Equal timestamps count as overlapping, so coarse clocks can only make the checker
//!   more lenient, never report a false violation.
//!
//! Linearizability is compositional (Herlihy & Wing): a history is linearizable iff
//! each object's sub-history is, so keys are checked one by one.
//!
//! The guarantee is about linearizability. ZooKeeper itself only promises sequential
//! consistency for reads served by followers; a history of such reads can be rightly
//! rejected here. Record reads that the server promises to be linearizable (served by
//! the leader, or after a `sync`).
//!
//! # Algorithm and cost
//!
//! Per key, a depth-first search in the style of Wing & Gong as refined by Lowe
//! ("just-in-time linearization"): the invocations and completions form a list in time
//! order; the search linearizes a pending operation whose reply the register model
//! confirms, or, on meeting the completion of an operation it has not linearized,
//! backtracks. Each configuration visited (which operations are linearized, and the
//! register's state) is remembered, so none is explored twice. Three further
//! prunings, all exact: an operation that fits and leaves the register unchanged (a
//! read, a refusal) is never postponed; an `Unknown` operation is never applied where
//! it would change nothing; and of `Unknown` operations with the same effect up to
//! values no read returned (say two lost `Write`s of never-read values), only the
//! earliest pending one is tried, the others being interchangeable. Likewise, values
//! no read returned are all alike in the memo.
//!
//! The worst case is exponential in the number of operations pending at once on one
//! key (linearizability checking is NP-complete). In practice the cost is about
//! linear in the history for bounded per-key concurrency. Measured (release, 16
//! clients, 20 000 operations, 1% without reply): over 50 keys 20 ms, over 4 keys
//! 25 ms, all on one key (200 unknown) 0.6 s, and with 5% unknown on one key 2 s; a
//! debug build is about ten times slower. What grows the search is many `Unknown`
//! mutations pending on one key: spread the load over keys.
//!
//! Rejecting is costlier than accepting: every order of the prefix must be ruled out.
//! So each key's search stops after [`DEFAULT_BUDGET`] configurations (a few seconds;
//! [`History::check_within`] sets another), and the key is then reported as a
//! [`Violation`] with `exhaustive: false`: undecided, never silently accepted. The
//! report still points at the furthest point reached, in practice the anomaly.
//!
//! # Using it from a fault test
//!
//! ```
//! use ensemble_lincheck::{Command, ErrorCode, Recorder, Reply};
//!
//! let recorder: Recorder<String, u64> = Recorder::new();
//!
//! // In each client (clone the recorder into its thread or task): record the invocation
//! // before sending the request, and the outcome as soon as the reply arrives.
//! let op = recorder.invoke(1, "/k".to_string(), Command::Create(7));
//! op.ok(Reply::Created);
//! let op = recorder.invoke(2, "/k".to_string(), Command::Cas { expected_version: 0, value: 8 });
//! op.ok(Reply::Stat { version: 1 });
//! let op = recorder.invoke(1, "/k".to_string(), Command::Create(9));
//! op.failed(ErrorCode::NodeExists);
//! // A request cut off by ConnectionLoss: say so, or just drop the pending operation.
//! let op = recorder.invoke(2, "/k".to_string(), Command::Write(10));
//! op.unknown();
//! let op = recorder.invoke(1, "/k".to_string(), Command::Read);
//! op.ok(Reply::Data { value: 8, version: 1 });
//!
//! // After the run: one history, one verdict. The error's Display names the key and
//! // lists the conflicting operations with their times.
//! let summary = recorder.history().check().unwrap_or_else(|error| panic!("{error}"));
//! assert_eq!(summary.operations, 5);
//! ```
//!
//! Values should be unique per write (a counter, or client id and sequence number):
//! a read then tells exactly which write it saw, which is what makes anomalies
//! detectable.

mod check;
mod history;
mod model;
mod recorder;
mod report;
mod search;

pub use check::{CheckError, CheckSummary, DEFAULT_BUDGET};
pub use history::{ClientId, Command, ErrorCode, History, Operation, Outcome, Reply, Version};
pub use model::Register;
pub use recorder::{PendingOperation, Recorder};
pub use report::{Role, Violation, WindowEntry};
