//! Linearizable histories are accepted: hand-written edge cases, and random histories
//! of a simulated correct ensemble.

mod support;

use ensemble_lincheck::{CheckError, Command, ErrorCode, History, Register};
use proptest::prelude::*;
use support::{cas, data, simulate, stat, Script, Workload};

#[test]
fn an_empty_history_is_linearizable() {
    let history: History<String, u64, u64> = History::new();
    let summary = history.check().unwrap();
    assert_eq!((summary.keys, summary.operations), (0, 0));
}

#[test]
fn a_write_without_reply_may_take_effect_long_after_it_was_sent() {
    let history = Script::new("/k")
        .ok(
            1,
            (0, 1),
            Command::Create(1),
            ensemble_lincheck::Reply::Created,
        )
        .unknown(2, 2, Command::Write(2))
        .ok(1, (5, 6), Command::Read, data(1, 0))
        .ok(1, (7, 8), Command::Write(3), stat(1))
        .ok(1, (9, 10), Command::Read, data(2, 2))
        .history();
    history.check().unwrap();
}

#[test]
fn a_write_without_reply_may_never_take_effect() {
    let history = Script::new("/k")
        .ok(
            1,
            (0, 1),
            Command::Create(1),
            ensemble_lincheck::Reply::Created,
        )
        .unknown(2, 2, Command::Write(2))
        .unknown(3, 2, Command::Delete)
        .ok(1, (50, 60), Command::Read, data(1, 0))
        .history();
    history.check().unwrap();
}

#[test]
fn concurrent_cas_on_one_version_one_wins_and_the_other_sees_bad_version() {
    for winner_first in [true, false] {
        let (winner, loser) = if winner_first {
            ((2, 9), (3, 10))
        } else {
            ((3, 10), (2, 9))
        };
        let history = Script::new("/k")
            .ok(
                1,
                (0, 1),
                Command::Create(1),
                ensemble_lincheck::Reply::Created,
            )
            .ok(2, winner, cas(0, 2), stat(1))
            .failed(3, loser, cas(0, 3), ErrorCode::BadVersion)
            .ok(1, (11, 12), Command::Read, data(2, 1))
            .history();
        history.check().unwrap();
    }
}

#[test]
fn equal_timestamps_count_as_overlapping() {
    let history = Script::new("/k")
        .ok(
            1,
            (0, 1),
            Command::Create(1),
            ensemble_lincheck::Reply::Created,
        )
        .ok(1, (2, 5), Command::Write(2), stat(1))
        .ok(2, (5, 6), Command::Read, data(1, 0))
        .history();
    history.check().unwrap();
}

#[test]
fn refusals_are_observations_that_fit_the_state() {
    let history = Script::new("/k")
        .failed(1, (0, 1), Command::Read, ErrorCode::NoNode)
        .failed(1, (2, 3), Command::Write(1), ErrorCode::NoNode)
        .ok(
            1,
            (4, 5),
            Command::Create(2),
            ensemble_lincheck::Reply::Created,
        )
        .failed(2, (6, 7), Command::Create(3), ErrorCode::NodeExists)
        .failed(2, (8, 9), cas(5, 4), ErrorCode::BadVersion)
        .ok(
            2,
            (10, 11),
            Command::Delete,
            ensemble_lincheck::Reply::Deleted,
        )
        .failed(1, (12, 13), Command::Delete, ErrorCode::NoNode)
        .history();
    history.check().unwrap();
}

#[test]
fn keys_may_start_present() {
    let history = Script::new("/k")
        .ok(1, (0, 1), Command::Read, data(7, 3))
        .ok(1, (2, 3), cas(3, 8), stat(4))
        .history();
    assert!(history.check().is_err());
    history
        .check_from(|_| Register::Present {
            value: 7,
            version: 3,
        })
        .unwrap();
}

#[test]
fn impossible_replies_and_times_are_malformed() {
    let read_created = Script::new("/k")
        .ok(1, (0, 1), Command::Read, ensemble_lincheck::Reply::Created)
        .history();
    let create_bad_version = Script::new("/k")
        .failed(1, (0, 1), Command::Create(1), ErrorCode::BadVersion)
        .history();
    let backwards = Script::new("/k")
        .failed(1, (5, 4), Command::Read, ErrorCode::NoNode)
        .history();
    for history in [read_created, create_bad_version, backwards] {
        let error = history.check().unwrap_err();
        assert!(
            matches!(error, CheckError::Malformed { index: 0, .. }),
            "{error}"
        );
    }
}

fn workloads() -> impl Strategy<Value = (u64, Workload)> {
    (any::<u64>(), 1u32..=8, 1usize..=4, 1usize..=30, 0.0..0.2f64).prop_map(
        |(seed, clients, keys, ops_per_client, unknown_rate)| {
            let workload = Workload {
                clients,
                keys,
                ops_per_client,
                unknown_rate,
                key_prefix: "/k",
            };
            (seed, workload)
        },
    )
}

proptest! {
    // Failures print their minimal inputs; nothing is persisted.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn simulated_linearizable_histories_are_accepted((seed, workload) in workloads()) {
        let history = simulate(seed, &workload);
        if let Err(error) = history.check() {
            panic!("{workload:?} seed {seed}: {error}");
        }
    }
}
