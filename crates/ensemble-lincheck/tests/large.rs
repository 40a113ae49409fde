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
