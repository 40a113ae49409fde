//! Explaining a key that is not linearizable, for a failing test's output.

use std::fmt::{self, Debug};

use crate::history::{ErrorCode, Operation, Reply};
use crate::model::Register;
use crate::search::{KeyProblem, Stuck, ValueId};

/// One key's history has no linearization.
///
/// The search is exhaustive, so every order fails; this describes the one that got
/// furthest in time. It reached the completion of [`blocked`](Self::blocked) without
/// being able to linearize it: neither it nor any pending operation could take effect
/// there. The [`window`](Self::window) lists the operations involved: the blocked one,
/// those pending at that point, and the last ones linearized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation<K, V, T> {
    pub key: K,
    /// False when the search gave up (see [`History::check_within`]): the key may
    /// still be linearizable, and this is the furthest the search got.
    ///
    /// [`History::check_within`]: crate::History::check_within
    pub exhaustive: bool,
    /// Index in the history of the operation whose completion could not be passed.
    pub blocked: usize,
    pub operations_on_key: usize,
    /// How many operations the furthest partial linearization had placed.
    pub linearized_count: usize,
    /// The register at the end of that partial linearization.
    pub state: Register<V>,
    /// What the blocked operation would have got from that state.
    pub expected: Result<Reply<V>, ErrorCode>,
    /// The conflicting operations, by invocation time.
    pub window: Vec<WindowEntry<K, V, T>>,
    /// Operations without reply invoked before the window (placed or not), left out.
    pub older_unknown: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowEntry<K, V, T> {
    /// Index in the history.
    pub index: usize,
    pub operation: Operation<K, V, T>,
    pub role: Role,
}

/// An operation's part in the furthest partial linearization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Its completion could not be passed.
    Blocked,
    /// Placed, at this 1-based step when among the last few placed.
    Linearized { step: Option<usize> },
    /// Invoked, not placed.
    Pending,
}

impl<K: Clone, V: Clone, T: Ord + Copy> Violation<K, V, T> {
    /// `searched[i]` is the history index of the problem's operation `i`;
    /// `value_of` resolves interned values.
    pub(crate) fn explain(
        exhaustive: bool,
        operations: &[Operation<K, V, T>],
        searched: &[usize],
        operations_on_key: usize,
        problem: &KeyProblem,
        stuck: &Stuck,
        value_of: impl Fn(ValueId) -> V,
    ) -> Self {
        let op = |local: usize| &operations[searched[local]];
        let blocked = op(stuck.blocked);
        let state = match stuck.state {
            Register::Absent => Register::Absent,
            Register::Present { value, version } => Register::Present {
                value: value_of(value),
                version,
            },
        };
        let expected = state.apply(&blocked.command).1;
        // An operation invoked after the blocked one completed played no part.
        let deadline = blocked.outcome.completed_at();
        let invoked_in_time = |local: usize| deadline.is_none_or(|at| op(local).invoked_at <= at);

        let mut roles: Vec<(usize, Role)> = vec![(stuck.blocked, Role::Blocked)];
        roles.extend(stuck.recent.iter().map(|&(local, position)| {
            (
                local,
                Role::Linearized {
                    step: Some(position + 1),
                },
            )
        }));
        // Operations without reply stay pending (or placed) from their invocation on;
        // only those invoked within the window are shown.
        let mut unknown_others = Vec::new();
        for local in (0..searched.len()).filter(|&local| invoked_in_time(local)) {
            if roles.iter().any(|&(shown, _)| shown == local) {
                continue;
            }
            let linearized = stuck.is_linearized(problem, local);
            let role = if linearized {
                Role::Linearized { step: None }
            } else {
                Role::Pending
            };
            match op(local).outcome.completed_at() {
                None => unknown_others.push((local, role)),
                // Placed and done before the blocked operation began: not in conflict.
                Some(at) if linearized && at < blocked.invoked_at => {}
                Some(_) => roles.push((local, role)),
            }
        }
        let window_start = roles
            .iter()
            .map(|&(local, _)| op(local).invoked_at)
            .min()
            .unwrap_or(blocked.invoked_at);
        let (recent_unknown, older_unknown): (Vec<_>, Vec<_>) = unknown_others
            .into_iter()
            .partition(|&(local, _)| op(local).invoked_at >= window_start);
        roles.extend(recent_unknown);

        let mut window: Vec<WindowEntry<K, V, T>> = roles
            .into_iter()
            .map(|(local, role)| WindowEntry {
                index: searched[local],
                operation: op(local).clone(),
                role,
            })
            .collect();
        window.sort_by_key(|entry| (entry.operation.invoked_at, entry.index));
        Violation {
            key: blocked.key.clone(),
            exhaustive,
            blocked: searched[stuck.blocked],
            operations_on_key,
            linearized_count: stuck.linearized_count,
            state,
            expected,
            window,
            older_unknown: older_unknown.len(),
        }
    }
}

impl<K: Debug, V: Debug, T: Debug + Copy> fmt::Display for Violation<K, V, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let blocked = self
            .window
            .iter()
            .find(|entry| entry.role == Role::Blocked)
            .map(|entry| &entry.operation);
        if self.exhaustive {
            writeln!(
                f,
                "key {:?}: no order of its {} operations explains #{}.",
                self.key, self.operations_on_key, self.blocked
            )?;
        } else {
            writeln!(
                f,
                "key {:?}: undecided, the search gave up; no order of its {} operations \
                 that it tried explains #{}.",
                self.key, self.operations_on_key, self.blocked
            )?;
        }
        write!(
            f,
            "The furthest partial order placed {} of them and left the register {}",
            self.linearized_count, self.state
        )?;
        if let Some(blocked) = blocked {
            let expected = match &self.expected {
                Ok(reply) => format!("ok: {reply}"),
                Err(code) => format!("failed: {code}"),
            };
            write!(
                f,
                "; #{} ({}) would have got \"{expected}\" there but got \"{}\"",
                self.blocked, blocked.command, blocked.outcome
            )?;
        }
        writeln!(
            f,
            ", and no pending operation could go before its completion."
        )?;
        writeln!(f, "Operations around the conflict, by invocation time:")?;
        for entry in &self.window {
            let role = match entry.role {
                Role::Blocked => "BLOCKED".to_string(),
                Role::Linearized { step: Some(step) } => format!("placed {step}"),
                Role::Linearized { step: None } => "placed".to_string(),
                Role::Pending => "pending".to_string(),
            };
            writeln!(f, "  {role:<12} #{} {}", entry.index, entry.operation)?;
        }
        if self.older_unknown > 0 {
            writeln!(
                f,
                "  ({} earlier operations without reply are not shown)",
                self.older_unknown
            )?;
        }
        Ok(())
    }
}
