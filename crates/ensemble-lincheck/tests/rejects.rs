//! Anomalies are rejected, and the report names the key and the operations involved.
//!
//! Each anomaly is written on one key with random times, values and distracting
//! unknown writes that cannot explain it, amid a random linearizable history on other
//! keys; the checker must reject exactly that key.

mod support;

use ensemble_lincheck::{CheckError, Command, ErrorCode, Reply, Role};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{cas, data, simulate, stat, Script, TestHistory, Workload};

const KEY: &str = "/anomaly";

#[derive(Clone, Copy, Debug)]
enum Anomaly {
    StaleReadAfterCompletedWrite,
    LostAcknowledgedWrite,
    ReadOfValueNeverWritten,
    NonOverlappingWritesInWrongOrder,
    CasAgainstVersionNotCurrent,
    WriteAppliedTwice,
    SpuriousBadVersion,
    SpuriousNodeExists,
}

const ANOMALIES: [Anomaly; 8] = [
    Anomaly::StaleReadAfterCompletedWrite,
    Anomaly::LostAcknowledgedWrite,
    Anomaly::ReadOfValueNeverWritten,
    Anomaly::NonOverlappingWritesInWrongOrder,
    Anomaly::CasAgainstVersionNotCurrent,
    Anomaly::WriteAppliedTwice,
    Anomaly::SpuriousBadVersion,
    Anomaly::SpuriousNodeExists,
];

/// Sequential steps with random gaps and durations.
struct Clock<'a> {
    rng: &'a mut StdRng,
    now: u64,
}

impl Clock<'_> {
    fn next(&mut self) -> (u64, u64) {
        let invoked_at = self.now + self.rng.random_range(1..10);
        self.now = invoked_at + self.rng.random_range(0..10);
        (invoked_at, self.now)
    }
}

/// The anomaly on [`KEY`], starting at a random time.
fn anomaly_script(anomaly: Anomaly, rng: &mut StdRng) -> Script {
    let mut script = Script::new(KEY);
    // Fresh values, far from the simulated ones.
    let base = rng.random_range(1_000_000..2_000_000);
    let (a, b, c, never_written) = (base, base + 1, base + 2, base + 3);
    let start = rng.random_range(0..200);
    let mut clock = Clock { rng, now: start };
    script.ok(1, clock.next(), Command::Create(a), Reply::Created);
    // Unknown writes only ever raise the version and write values of their own, so
    // they explain none of the anomalies below that do not involve a refusal.
    let distract = !matches!(
        anomaly,
        Anomaly::SpuriousBadVersion | Anomaly::SpuriousNodeExists
    );
    match anomaly {
        Anomaly::StaleReadAfterCompletedWrite => {
            script.ok(2, clock.next(), Command::Write(b), stat(1));
            script.ok(3, clock.next(), Command::Read, data(a, 0));
        }
        Anomaly::LostAcknowledgedWrite => {
            // Acknowledged at version 1, then overwritten as if it never happened.
            script.ok(2, clock.next(), Command::Write(b), stat(1));
            script.ok(3, clock.next(), Command::Write(c), stat(1));
            script.ok(1, clock.next(), Command::Read, data(c, 1));
        }
        Anomaly::ReadOfValueNeverWritten => {
            script.ok(2, clock.next(), Command::Write(b), stat(1));
            script.ok(3, clock.next(), Command::Read, data(never_written, 1));
        }
        Anomaly::NonOverlappingWritesInWrongOrder => {
            // b completed before c was sent, yet the server applied c first.
            script.ok(2, clock.next(), Command::Write(b), stat(2));
            script.ok(3, clock.next(), Command::Write(c), stat(1));
            script.ok(1, clock.next(), Command::Read, data(b, 2));
        }
        Anomaly::CasAgainstVersionNotCurrent => {
            script.ok(2, clock.next(), Command::Write(b), stat(1));
            script.ok(3, clock.next(), cas(0, c), stat(1));
        }
        Anomaly::WriteAppliedTwice => {
            script.ok(2, clock.next(), Command::Write(b), stat(1));
            script.ok(3, clock.next(), Command::Read, data(b, 2));
            script.ok(1, clock.next(), Command::Write(c), stat(3));
        }
        Anomaly::SpuriousBadVersion => {
            script.ok(2, clock.next(), Command::Write(b), stat(1));
            script.failed(3, clock.next(), cas(1, c), ErrorCode::BadVersion);
        }
        Anomaly::SpuriousNodeExists => {
            script.ok(2, clock.next(), Command::Delete, Reply::Deleted);
            script.failed(3, clock.next(), Command::Create(c), ErrorCode::NodeExists);
        }
    }
    let end = clock.now;
    if distract {
        for i in 0..rng.random_range(0..4) {
            let invoked_at = rng.random_range(start..=end);
            script.unknown(10 + i, invoked_at, Command::Write(base + 10 + u64::from(i)));
        }
    }
    script
}

fn with_noise(anomaly: &Script, seed: u64, workload: &Workload) -> TestHistory {
    let mut ops = simulate(seed, workload).operations().to_vec();
    ops.extend(anomaly.ops.iter().cloned());
    ops.into()
}

fn assert_rejected_on_key(history: &TestHistory) -> String {
    match history.check() {
        Err(CheckError::NotLinearizable(violations)) => {
            let keys: Vec<&str> = violations.iter().map(|v| v.key.as_str()).collect();
            assert_eq!(
                keys,
                [KEY],
                "{}",
                CheckError::NotLinearizable(violations.clone())
            );
            let violation = &violations[0];
            assert!(violation
                .window
                .iter()
                .any(|entry| entry.role == Role::Blocked && entry.index == violation.blocked));
            violation.to_string()
        }
        Err(error) => panic!("malformed: {error}"),
        Ok(summary) => panic!("accepted: {summary:?}"),
    }
}

#[test]
fn every_anomaly_alone_is_rejected_with_a_report() {
    let mut rng = StdRng::seed_from_u64(7);
    for anomaly in ANOMALIES {
        let script = anomaly_script(anomaly, &mut rng);
        let report = assert_rejected_on_key(&script.history());
        eprintln!("{anomaly:?}:\n{report}");
        assert!(report.contains(KEY));
    }
}

#[test]
fn the_report_shows_the_stale_read_and_the_write_it_missed() {
    let history = Script::new(KEY)
        .ok(1, (0, 10), Command::Create(1), Reply::Created)
        .ok(2, (20, 30), Command::Write(2), stat(1))
        .ok(3, (40, 50), Command::Read, data(1, 0))
        .history();
    let Err(CheckError::NotLinearizable(violations)) = history.check() else {
        panic!("accepted")
    };
    let violation = &violations[0];
    assert_eq!(violation.blocked, 2);
    assert_eq!(
        violation.state,
        ensemble_lincheck::Register::Present {
            value: 2,
            version: 1
        }
    );
    assert_eq!(violation.expected, Ok(data(2, 1)));
    let roles: Vec<(usize, Role)> = violation.window.iter().map(|e| (e.index, e.role)).collect();
    assert_eq!(
        roles,
        [
            (0, Role::Linearized { step: Some(1) }),
            (1, Role::Linearized { step: Some(2) }),
            (2, Role::Blocked)
        ]
    );
    let report = CheckError::NotLinearizable(violations.clone()).to_string();
    eprintln!("{report}");
    assert!(report.contains("#2 client 3 [40 .. 50] read -> ok: 1 at version 0"));
}

fn noise() -> impl Strategy<Value = (u64, Workload)> {
    (any::<u64>(), 1u32..=8, 1usize..=4, 0usize..=25, 0.0..0.2f64).prop_map(
        |(seed, clients, keys, ops_per_client, unknown_rate)| {
            let workload = Workload {
                clients,
                keys,
                ops_per_client,
                unknown_rate,
                key_prefix: "/noise",
            };
            (seed, workload)
        },
    )
}

proptest! {
    // Failures print their minimal inputs; nothing is persisted.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn injected_anomalies_are_always_rejected(
        anomaly in prop::sample::select(ANOMALIES.to_vec()),
        anomaly_seed in any::<u64>(),
        (seed, workload) in noise(),
    ) {
        let script = anomaly_script(anomaly, &mut StdRng::seed_from_u64(anomaly_seed));
        assert_rejected_on_key(&with_noise(&script, seed, &workload));
    }
}
