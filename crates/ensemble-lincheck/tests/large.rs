//! Fault-test-sized histories complete. Times are printed, not asserted.

mod support;

use std::time::Instant;

use support::{simulate, Workload};

fn check_timed(name: &str, seed: u64, workload: &Workload) {
    let history = simulate(seed, workload);
    let started = Instant::now();
    let summary = history.check().unwrap_or_else(|error| panic!("{error}"));
    eprintln!(
        "{name}: {} operations on {} keys by {} clients ({}% unknown): {} configurations in {:?}",
        summary.operations,
        summary.keys,
        workload.clients,
        workload.unknown_rate * 100.0,
        summary.configurations,
        started.elapsed()
    );
    assert_eq!(
        summary.operations,
        workload.clients as usize * workload.ops_per_client
    );
}

#[test]
fn twenty_thousand_operations_over_fifty_keys() {
    let workload = Workload {
        clients: 16,
        keys: 50,
        ops_per_client: 1250,
        unknown_rate: 0.01,
        key_prefix: "/k",
    };
    check_timed("50 keys", 1, &workload);
}

#[test]
fn twenty_thousand_operations_over_four_hot_keys() {
    let workload = Workload {
        clients: 16,
        keys: 4,
        ops_per_client: 1250,
        unknown_rate: 0.01,
        key_prefix: "/k",
    };
    check_timed("4 hot keys", 2, &workload);
}

#[test]
fn twenty_thousand_operations_on_one_key_with_two_hundred_unknown() {
    let workload = Workload {
        clients: 16,
        keys: 1,
        ops_per_client: 1250,
        unknown_rate: 0.01,
        key_prefix: "/k",
    };
    check_timed("1 key", 3, &workload);
}

#[test]
fn a_read_of_a_value_never_written_amid_twenty_thousand_operations_on_one_key() {
    use ensemble_lincheck::{CheckError, Outcome, Register, Reply};
    let workload = Workload {
        clients: 16,
        keys: 1,
        ops_per_client: 1250,
        unknown_rate: 0.01,
        key_prefix: "/k",
    };
    let mut ops = simulate(4, &workload).operations().to_vec();
    let middle = ops.len() / 2;
    let (index, read) = ops
        .iter_mut()
        .enumerate()
        .skip(middle)
        .find(|(_, op)| {
            matches!(
                op.outcome,
                Outcome::Ok {
                    reply: Reply::Data { .. },
                    ..
                }
            )
        })
        .expect("the simulation reads");
    if let Outcome::Ok {
        reply: Reply::Data { value, .. },
        ..
    } = &mut read.outcome
    {
        *value = u64::MAX;
    }
    let history: support::TestHistory = ops.into();
    let started = Instant::now();
    // A failing search must rule out every order of the prefix, which, with unknown
    // writes on one hot key, is far more work than finding one: bound it.
    let Err(CheckError::NotLinearizable(violations)) =
        history.check_within(|_| Register::Absent, 300_000)
    else {
        panic!("a read of a value never written was accepted")
    };
    eprintln!(
        "rejected in {:?} (exhaustive: {}), blocked at #{} (corrupted #{index}):\n{}",
        started.elapsed(),
        violations[0].exhaustive,
        violations[0].blocked,
        violations[0]
    );
    assert_eq!(violations.len(), 1);
}
