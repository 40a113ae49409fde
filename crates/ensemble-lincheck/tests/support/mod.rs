//! Histories for the tests: a simulated linearizable ensemble, and a builder for
//! hand-written ones.

#![allow(dead_code)] // each test binary uses its own part

use ensemble_lincheck::{ClientId, Command, ErrorCode, History, Operation, Outcome, Reply};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub type Op = Operation<String, u64, u64>;
pub type TestHistory = History<String, u64, u64>;

/// How simulated clients load the simulated server.
#[derive(Clone, Debug)]
pub struct Workload {
    pub clients: u32,
    pub keys: usize,
    pub ops_per_client: usize,
    /// Probability that an operation gets no reply (then it applied or not, 50/50).
    pub unknown_rate: f64,
    pub key_prefix: &'static str,
}

/// Clients with sequential, randomly timed requests against a correct register: each
/// request takes effect at a random instant inside its interval (or, when its reply is
/// lost, maybe not at all). The result is linearizable by construction.
pub fn simulate(seed: u64, workload: &Workload) -> TestHistory {
    let mut rng = StdRng::seed_from_u64(seed);
    struct Planned {
        client: ClientId,
        key: usize,
        invoked_at: u64,
        completed_at: u64,
        effect_at: u64,
        reply_lost: bool,
        applied: bool,
    }
    let mut planned = Vec::new();
    for client in 0..workload.clients {
        let mut now = rng.random_range(0..20);
        for _ in 0..workload.ops_per_client {
            let invoked_at = now + rng.random_range(0..8);
            let completed_at = invoked_at + rng.random_range(0..30);
            let reply_lost = rng.random_bool(workload.unknown_rate);
            planned.push(Planned {
                client,
                key: rng.random_range(0..workload.keys),
                invoked_at,
                completed_at,
                effect_at: rng.random_range(invoked_at..=completed_at),
                reply_lost,
                applied: !reply_lost || rng.random_bool(0.5),
            });
            now = completed_at;
        }
    }
    planned.sort_by_key(|op| op.effect_at);

    // The server's nodes, and what each client last saw of each key's version.
    let mut nodes: Vec<Option<(u64, i32)>> = vec![None; workload.keys];
    let mut seen_version = vec![vec![0; workload.keys]; workload.clients as usize];
    let mut next_value = 1;
    let mut history = Vec::with_capacity(planned.len());
    for op in planned {
        let node = &mut nodes[op.key];
        let seen = &mut seen_version[op.client as usize][op.key];
        let mut value = || {
            next_value += 1;
            next_value
        };
        let command = match rng.random_range(0..100) {
            0..35 => Command::Read,
            35..55 => Command::Write(value()),
            55..75 => Command::Cas {
                // Mostly the version this client saw last, as a real client would.
                expected_version: if rng.random_bool(0.8) {
                    *seen
                } else {
                    rng.random_range(0..4)
                },
                value: value(),
            },
            75..90 => Command::Create(value()),
            _ => Command::Delete,
        };
        let result = if op.applied {
            serve(node, &command)
        } else {
            Err(ErrorCode::NoNode) // never seen: the reply is lost
        };
        if let Ok(Reply::Data { version, .. } | Reply::Stat { version }) = result {
            *seen = version;
        }
        let outcome = match (op.reply_lost, result) {
            (true, _) => Outcome::Unknown,
            (false, Ok(reply)) => Outcome::Ok {
                at: op.completed_at,
                reply,
            },
            (false, Err(code)) => Outcome::Failed {
                at: op.completed_at,
                code,
            },
        };
        history.push(Operation {
            client: op.client,
            key: format!("{}{}", workload.key_prefix, op.key),
            command,
            invoked_at: op.invoked_at,
            outcome,
        });
    }
    history.sort_by_key(|op| op.invoked_at);
    history.into()
}

/// The simulated server's answer, written apart from the crate's model on purpose.
fn serve(node: &mut Option<(u64, i32)>, command: &Command<u64>) -> Result<Reply<u64>, ErrorCode> {
    match (command, node.as_mut()) {
        (Command::Create(value), None) => {
            *node = Some((*value, 0));
            Ok(Reply::Created)
        }
        (Command::Create(_), Some(_)) => Err(ErrorCode::NodeExists),
        (_, None) => Err(ErrorCode::NoNode),
        (Command::Read, Some(&mut (value, version))) => Ok(Reply::Data { value, version }),
        (Command::Write(new), Some((value, version))) => {
            *value = *new;
            *version += 1;
            Ok(Reply::Stat { version: *version })
        }
        (
            Command::Cas {
                expected_version,
                value: new,
            },
            Some((value, version)),
        ) => {
            if expected_version != version {
                return Err(ErrorCode::BadVersion);
            }
            *value = *new;
            *version += 1;
            Ok(Reply::Stat { version: *version })
        }
        (Command::Delete, Some(_)) => {
            *node = None;
            Ok(Reply::Deleted)
        }
    }
}

/// Writes one key's history by hand: operations at explicit times.
pub struct Script {
    pub key: String,
    pub ops: Vec<Op>,
}

impl Script {
    pub fn new(key: &str) -> Self {
        Script {
            key: key.to_string(),
            ops: Vec::new(),
        }
    }

    pub fn ok(
        &mut self,
        client: ClientId,
        span: (u64, u64),
        command: Command<u64>,
        reply: Reply<u64>,
    ) -> &mut Self {
        self.push(client, span.0, command, Outcome::Ok { at: span.1, reply })
    }

    pub fn failed(
        &mut self,
        client: ClientId,
        span: (u64, u64),
        command: Command<u64>,
        code: ErrorCode,
    ) -> &mut Self {
        self.push(
            client,
            span.0,
            command,
            Outcome::Failed { at: span.1, code },
        )
    }

    pub fn unknown(
        &mut self,
        client: ClientId,
        invoked_at: u64,
        command: Command<u64>,
    ) -> &mut Self {
        self.push(client, invoked_at, command, Outcome::Unknown)
    }

    fn push(
        &mut self,
        client: ClientId,
        invoked_at: u64,
        command: Command<u64>,
        outcome: Outcome<u64, u64>,
    ) -> &mut Self {
        self.ops.push(Operation {
            client,
            key: self.key.clone(),
            command,
            invoked_at,
            outcome,
        });
        self
    }

    pub fn history(&self) -> TestHistory {
        self.ops.clone().into()
    }
}

pub fn data(value: u64, version: i32) -> Reply<u64> {
    Reply::Data { value, version }
}

pub fn stat(version: i32) -> Reply<u64> {
    Reply::Stat { version }
}

pub fn cas(expected_version: i32, value: u64) -> Command<u64> {
    Command::Cas {
        expected_version,
        value,
    }
}
