//! Checking a whole history: validate it, split it by key, search each key, and turn
//! each failed search into a [`Violation`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Debug};
use std::hash::Hash;

use crate::history::{Command, History, Operation, Outcome, Reply};
use crate::model::Register;
use crate::report::Violation;
use crate::search::{self, KeyProblem, TimedOp, ValueId, Verdict};

/// How many configurations [`History::check`] visits on one key before giving up:
/// a few seconds in release, in the worst case.
pub const DEFAULT_BUDGET: usize = 4_000_000;

/// What a successful check covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckSummary {
    pub keys: usize,
    pub operations: usize,
    /// Distinct configurations the searches visited: about the number of operations
    /// for an easy history, much more when unknown writes or concurrency pile up.
    pub configurations: usize,
}

/// Why a history was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError<K, V, T> {
    /// An operation that no server could produce: a reply the command cannot have, or a
    /// completion before the invocation. Nothing was checked.
    Malformed {
        index: usize,
        operation: Operation<K, V, T>,
        problem: &'static str,
    },
    /// No linearization exists for these keys (one violation per key, in key order).
    NotLinearizable(Vec<Violation<K, V, T>>),
}

impl<K, V, T> History<K, V, T>
where
    K: Ord + Clone + Debug,
    V: Eq + Hash + Clone + Debug,
    T: Ord + Copy + Debug,
{
    /// Checks that the history is linearizable, every key starting absent.
    pub fn check(&self) -> Result<CheckSummary, CheckError<K, V, T>> {
        self.check_from(|_| Register::Absent)
    }

    /// Checks that the history is linearizable, each key starting as `initial` says
    /// (for nodes created before recording began).
    pub fn check_from(
        &self,
        initial: impl Fn(&K) -> Register<V>,
    ) -> Result<CheckSummary, CheckError<K, V, T>> {
        self.check_within(initial, DEFAULT_BUDGET)
    }

    /// Like [`check_from`](Self::check_from), giving up on a key after visiting
    /// `budget` configurations: that key is then reported as a [`Violation`] with
    /// `exhaustive: false`, at the furthest point reached, since a fault test cannot
    /// pass on a history it could not decide.
    pub fn check_within(
        &self,
        initial: impl Fn(&K) -> Register<V>,
        budget: usize,
    ) -> Result<CheckSummary, CheckError<K, V, T>> {
        self.validate()?;
        let mut by_key: BTreeMap<&K, Vec<usize>> = BTreeMap::new();
        for (index, op) in self.operations().iter().enumerate() {
            by_key.entry(&op.key).or_default().push(index);
        }
        let keys = by_key.len();
        let mut violations = Vec::new();
        let mut configurations = 0;
        for (key, mut indices) in by_key {
            indices.sort_by_key(|&index| (self.operations()[index].invoked_at, index));
            let initial = initial(key);
            match check_key(self.operations(), &indices, &initial, budget) {
                Ok(visited) => configurations += visited,
                Err(violation) => violations.push(violation),
            }
        }
        if violations.is_empty() {
            Ok(CheckSummary {
                keys,
                operations: self.len(),
                configurations,
            })
        } else {
            Err(CheckError::NotLinearizable(violations))
        }
    }

    fn validate(&self) -> Result<(), CheckError<K, V, T>> {
        for (index, op) in self.operations().iter().enumerate() {
            let problem = if op
                .outcome
                .completed_at()
                .is_some_and(|at| at < op.invoked_at)
            {
                Some("it completed before it was invoked")
            } else if op
                .outcome
                .result()
                .is_some_and(|result| !op.command.can_reply(result))
            {
                Some("this command never gets this reply")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(CheckError::Malformed {
                    index,
                    operation: op.clone(),
                    problem,
                });
            }
        }
        Ok(())
    }
}

/// Searches one key; `indices` are its operations in invocation order. Returns the
/// number of configurations visited, or the violation.
fn check_key<K, V, T>(
    operations: &[Operation<K, V, T>],
    indices: &[usize],
    initial: &Register<V>,
    budget: usize,
) -> Result<usize, Violation<K, V, T>>
where
    K: Clone + Debug,
    V: Eq + Hash + Clone + Debug,
    T: Ord + Copy + Debug,
{
    let mut values = ValueTable::default();
    // An unknown read changes nothing and shows nothing: leave it out.
    let searched: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&index| {
            let op = &operations[index];
            op.command.is_mutation() || !matches!(op.outcome, Outcome::Unknown)
        })
        .collect();
    let timed = searched
        .iter()
        .map(|&index| {
            let op = &operations[index];
            TimedOp {
                command: values.intern_command(&op.command),
                observed: op.outcome.result().map(|result| match result {
                    Ok(reply) => Ok(values.intern_reply(reply)),
                    Err(code) => Err(code),
                }),
                invoked_at: op.invoked_at,
                completed_at: op.outcome.completed_at(),
            }
        })
        .collect();
    let initial_state = values.intern_register(initial);
    let problem = KeyProblem::new(timed, initial_state, values.values.len());
    match search::search(&problem, budget) {
        Verdict::Linearizable { configurations } => Ok(configurations),
        Verdict::NotLinearizable { stuck, exhaustive } => Err(Violation::explain(
            exhaustive,
            operations,
            &searched,
            indices.len(),
            &problem,
            &stuck,
            |id| values.value(id).clone(),
        )),
    }
}

/// The distinct values of one key, numbered.
struct ValueTable<'a, V> {
    ids: HashMap<&'a V, ValueId>,
    values: Vec<&'a V>,
}

impl<V> Default for ValueTable<'_, V> {
    fn default() -> Self {
        ValueTable {
            ids: HashMap::new(),
            values: Vec::new(),
        }
    }
}

impl<'a, V: Eq + Hash> ValueTable<'a, V> {
    fn intern(&mut self, value: &'a V) -> ValueId {
        *self.ids.entry(value).or_insert_with(|| {
            self.values.push(value);
            // Two values per operation at most, so far below u32::MAX in memory.
            (self.values.len() - 1) as ValueId
        })
    }

    fn value(&self, id: ValueId) -> &'a V {
        self.values[id as usize]
    }

    fn intern_command(&mut self, command: &'a Command<V>) -> Command<ValueId> {
        match command {
            Command::Read => Command::Read,
            Command::Write(value) => Command::Write(self.intern(value)),
            Command::Cas {
                expected_version,
                value,
            } => Command::Cas {
                expected_version: *expected_version,
                value: self.intern(value),
            },
            Command::Create(value) => Command::Create(self.intern(value)),
            Command::Delete => Command::Delete,
        }
    }

    fn intern_reply(&mut self, reply: &'a Reply<V>) -> Reply<ValueId> {
        match reply {
            Reply::Data { value, version } => Reply::Data {
                value: self.intern(value),
                version: *version,
            },
            Reply::Stat { version } => Reply::Stat { version: *version },
            Reply::Created => Reply::Created,
            Reply::Deleted => Reply::Deleted,
        }
    }

    fn intern_register(&mut self, register: &'a Register<V>) -> Register<ValueId> {
        match register {
            Register::Absent => Register::Absent,
            Register::Present { value, version } => Register::Present {
                value: self.intern(value),
                version: *version,
            },
        }
    }
}

impl<K: Debug, V: Debug, T: Debug + Copy> fmt::Display for CheckError<K, V, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Malformed {
                index,
                operation,
                problem,
            } => write!(
                f,
                "operation #{index} on key {:?} cannot be judged, {problem}: {operation}",
                operation.key
            ),
            CheckError::NotLinearizable(violations) => {
                write!(
                    f,
                    "the history is not linearizable on {} key(s)",
                    violations.len()
                )?;
                for violation in violations {
                    write!(f, "\n\n{violation}")?;
                }
                Ok(())
            }
        }
    }
}

impl<K: Debug, V: Debug, T: Debug + Copy> std::error::Error for CheckError<K, V, T> {}
