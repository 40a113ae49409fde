//! The recorder that test clients share: timestamps invocations and outcomes.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::history::{ClientId, Command, ErrorCode, History, Operation, Outcome, Reply};

/// A shared log of operations, timed as the [`Duration`] since one origin [`Instant`].
///
/// Cheap to clone (an `Arc`) and `Send + Sync`: give a clone to every client thread or
/// task. An operation enters the log when invoked, as [`Outcome::Unknown`]; completing
/// it fills in the outcome. So an operation whose client was killed, cancelled or
/// simply never finished stays unknown, which is exactly what the checker must assume.
pub struct Recorder<K, V> {
    shared: Arc<Shared<K, V>>,
}

struct Shared<K, V> {
    origin: Instant,
    operations: Mutex<Vec<Operation<K, V, Duration>>>,
}

/// An invoked operation awaiting its outcome. Dropping it leaves the outcome unknown.
#[must_use = "record the outcome with ok, failed or unknown"]
pub struct PendingOperation<K, V> {
    recorder: Recorder<K, V>,
    index: usize,
}

impl<K, V> Recorder<K, V> {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Recorder::with_origin(Instant::now())
    }

    /// A recorder whose times count from `origin`, e.g. shared with other logs.
    pub fn with_origin(origin: Instant) -> Self {
        Recorder {
            shared: Arc::new(Shared {
                origin,
                operations: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The recorder's current time.
    pub fn now(&self) -> Duration {
        self.shared.origin.elapsed()
    }

    /// Records that `client` is about to send `command` on `key`. Call it before
    /// sending, so the invocation time is not late.
    pub fn invoke(&self, client: ClientId, key: K, command: Command<V>) -> PendingOperation<K, V> {
        let invoked_at = self.now();
        let mut operations = self.lock();
        operations.push(Operation {
            client,
            key,
            command,
            invoked_at,
            outcome: Outcome::Unknown,
        });
        PendingOperation {
            recorder: self.clone(),
            index: operations.len() - 1,
        }
    }

    /// How many operations were invoked so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Operation<K, V, Duration>>> {
        // A client that panicked cannot have left the log half-written: every update
        // under the lock is a single push or assignment.
        self.shared
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Clone, V: Clone> Recorder<K, V> {
    /// A copy of the log so far, in invocation order; operations still pending are
    /// unknown in it.
    pub fn history(&self) -> History<K, V, Duration> {
        self.lock().clone().into()
    }
}

impl<K, V> Clone for Recorder<K, V> {
    fn clone(&self) -> Self {
        Recorder {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, V> Default for Recorder<K, V> {
    fn default() -> Self {
        Recorder::new()
    }
}

impl<K, V> PendingOperation<K, V> {
    /// The server did it and replied `reply`. Call it as soon as the reply arrives.
    pub fn ok(self, reply: Reply<V>) {
        self.complete(|at| Outcome::Ok { at, reply });
    }

    /// The server refused with `code`. Call it as soon as the reply arrives.
    pub fn failed(self, code: ErrorCode) {
        self.complete(|at| Outcome::Failed { at, code });
    }

    /// Records either a reply or a refusal, as a client library returns them.
    pub fn complete_with(self, result: Result<Reply<V>, ErrorCode>) {
        match result {
            Ok(reply) => self.ok(reply),
            Err(code) => self.failed(code),
        }
    }

    /// No reply will come (connection loss, timeout). Same as dropping `self`; says so.
    pub fn unknown(self) {}

    fn complete(self, outcome: impl FnOnce(Duration) -> Outcome<V, Duration>) {
        let at = self.recorder.now();
        self.recorder.lock()[self.index].outcome = outcome(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn recorder_and_pending_operations_cross_threads() {
        assert_send_sync::<Recorder<String, Vec<u8>>>();
        assert_send_sync::<PendingOperation<String, Vec<u8>>>();
    }

    #[test]
    fn records_times_and_outcomes_from_many_threads() {
        let recorder: Recorder<u32, u64> = Recorder::new();
        std::thread::scope(|scope| {
            for client in 0..4 {
                let recorder = recorder.clone();
                scope.spawn(move || {
                    for i in 0..100 {
                        let op = recorder.invoke(client, client, Command::Write(i));
                        match i % 3 {
                            0 => op.ok(Reply::Stat { version: 1 }),
                            1 => op.failed(ErrorCode::NoNode),
                            _ => drop(op),
                        }
                    }
                });
            }
        });
        let history = recorder.history();
        assert_eq!(history.len(), 400);
        for op in history.operations() {
            let Command::Write(i) = op.command else {
                panic!("recorded {op:?}")
            };
            match (i % 3, op.outcome) {
                (0, Outcome::Ok { at, .. }) | (1, Outcome::Failed { at, .. }) => {
                    assert!(at >= op.invoked_at)
                }
                (2, Outcome::Unknown) => {}
                _ => panic!("recorded {op:?}"),
            }
        }
    }

    #[test]
    fn a_pending_operation_is_unknown_in_a_snapshot() {
        let recorder: Recorder<&str, u64> = Recorder::new();
        let op = recorder.invoke(1, "/a", Command::Create(1));
        assert_eq!(recorder.history().operations()[0].outcome, Outcome::Unknown);
        op.ok(Reply::Created);
        assert!(matches!(
            recorder.history().operations()[0].outcome,
            Outcome::Ok {
                reply: Reply::Created,
                ..
            }
        ));
    }
}
