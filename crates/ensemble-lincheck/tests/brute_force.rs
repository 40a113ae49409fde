//! The checker agrees with an exhaustive search on small one-key histories, correct or
//! corrupted, which tests its prunings (memo, reads never postponed, no-op unknowns
//! skipped) in both directions.

mod support;

use ensemble_lincheck::{Command, ErrorCode, Operation, Outcome, Register, Reply};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{simulate, Op, TestHistory, Workload};

/// Tries every order: each step takes any operation not yet taken, invoked before every
/// untaken known operation completed, whose reply fits (unknown: any reply); done
/// when every known operation is taken.
fn linearizable_by_brute_force(ops: &[Op]) -> bool {
    fn extend(ops: &[Op], taken: &mut Vec<bool>, state: Register<u64>) -> bool {
        let pending_known =
            || (0..ops.len()).filter(|&i| !taken[i] && ops[i].outcome.completed_at().is_some());
        if pending_known().next().is_none() {
            return true;
        }
        let deadline = pending_known()
            .filter_map(|i| ops[i].outcome.completed_at())
            .min();
        for i in 0..ops.len() {
            if taken[i] || deadline.is_some_and(|deadline| ops[i].invoked_at > deadline) {
                continue;
            }
            let (next, reply) = state.apply(&ops[i].command);
            let fits = match ops[i].outcome.result() {
                None => true,
                Some(observed) => observed == reply.as_ref().map_err(|code| *code),
            };
            if fits {
                taken[i] = true;
                if extend(ops, taken, next) {
                    return true;
                }
                taken[i] = false;
            }
        }
        false
    }
    extend(ops, &mut vec![false; ops.len()], Register::Absent)
}

/// Changes one observation: a version, a value, or the reply's kind.
fn corrupt(history: &TestHistory, rng: &mut StdRng) -> TestHistory {
    let mut ops: Vec<Op> = history.operations().to_vec();
    if ops.is_empty() {
        return ops.into();
    }
    let i = rng.random_range(0..ops.len());
    let op: &mut Operation<String, u64, u64> = &mut ops[i];
    let at = op.outcome.completed_at().unwrap_or(op.invoked_at + 5);
    let delta = if rng.random_bool(0.5) { 1 } else { -1 };
    op.outcome = match (op.outcome, rng.random_range(0..3)) {
        (
            Outcome::Ok {
                reply: Reply::Data { value, version },
                ..
            },
            0,
        ) => Outcome::Ok {
            at,
            reply: Reply::Data {
                value,
                version: version + delta,
            },
        },
        (
            Outcome::Ok {
                reply: Reply::Data { value, version },
                ..
            },
            1,
        ) => Outcome::Ok {
            at,
            reply: Reply::Data {
                value: value + 1,
                version,
            },
        },
        (
            Outcome::Ok {
                reply: Reply::Stat { version },
                ..
            },
            0 | 1,
        ) => Outcome::Ok {
            at,
            reply: Reply::Stat {
                version: version + delta,
            },
        },
        // Flip between the command's success and one of its refusals.
        (outcome, _) => match (&op.command, outcome) {
            (Command::Read, Outcome::Ok { .. }) => Outcome::Failed {
                at,
                code: ErrorCode::NoNode,
            },
            (Command::Read, _) => Outcome::Ok {
                at,
                reply: Reply::Data {
                    value: 2,
                    version: 0,
                },
            },
            (Command::Write(_) | Command::Cas { .. }, Outcome::Ok { .. }) => Outcome::Failed {
                at,
                code: if rng.random_bool(0.5) {
                    ErrorCode::NoNode
                } else {
                    ErrorCode::BadVersion
                },
            },
            (Command::Write(_) | Command::Cas { .. }, _) => Outcome::Ok {
                at,
                reply: Reply::Stat { version: 1 },
            },
            (Command::Create(_), Outcome::Ok { .. }) => Outcome::Failed {
                at,
                code: ErrorCode::NodeExists,
            },
            (Command::Create(_), _) => Outcome::Ok {
                at,
                reply: Reply::Created,
            },
            (Command::Delete, Outcome::Ok { .. }) => Outcome::Failed {
                at,
                code: ErrorCode::NoNode,
            },
            (Command::Delete, _) => Outcome::Ok {
                at,
                reply: Reply::Deleted,
            },
        },
    };
    if let Command::Write(_) = op.command {
        if op.outcome
            == (Outcome::Failed {
                at,
                code: ErrorCode::BadVersion,
            })
        {
            op.outcome = Outcome::Failed {
                at,
                code: ErrorCode::NoNode,
            };
        }
    }
    ops.into()
}

proptest! {
    // Failures print their minimal inputs; nothing is persisted.
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn agrees_with_brute_force(
        seed in any::<u64>(),
        clients in 1u32..=4,
        ops_per_client in 1usize..=3,
        unknown_rate in 0.0..0.4f64,
        corrupted in any::<bool>(),
    ) {
        let workload = Workload { clients, keys: 1, ops_per_client, unknown_rate, key_prefix: "/k" };
        let mut history = simulate(seed, &workload);
        if corrupted {
            history = corrupt(&history, &mut StdRng::seed_from_u64(seed ^ 0x5eed));
        }
        let expected = linearizable_by_brute_force(history.operations());
        let verdict = history.check();
        let report = verdict.as_ref().err().map(|error| error.to_string());
        prop_assert_eq!(
            verdict.is_ok(),
            expected,
            "{:#?}\n{:?}",
            history.operations(),
            report
        );
    }
}

#[test]
fn corruption_yields_both_verdicts() {
    let (mut accepted, mut rejected) = (0, 0);
    for seed in 0..300 {
        let workload = Workload {
            clients: 3,
            keys: 1,
            ops_per_client: 3,
            unknown_rate: 0.2,
            key_prefix: "/k",
        };
        let history = corrupt(&simulate(seed, &workload), &mut StdRng::seed_from_u64(seed));
        let expected = linearizable_by_brute_force(history.operations());
        assert_eq!(history.check().is_ok(), expected, "seed {seed}");
        if expected {
            accepted += 1
        } else {
            rejected += 1
        }
    }
    eprintln!("corrupted histories: {accepted} still linearizable, {rejected} not");
    assert!(accepted > 10 && rejected > 100);
}
