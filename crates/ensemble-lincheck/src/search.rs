//! The per-key search for a linearization (Wing & Gong, with Lowe's just-in-time
//! linearization and memo of visited configurations).
//!
//! Works on one key's operations with values interned as `u32`, so the register state
//! is two words and a configuration hashes fast. Knows nothing of keys, times or
//! reports: [`crate::check`] prepares a [`KeyProblem`] and explains a [`Stuck`].

use std::collections::{HashMap, HashSet};

use foldhash::fast::FixedState;

use crate::history::{Command, ErrorCode, Reply};
use crate::model::Register;

/// An interned value: an index into the key's table of distinct values.
pub(crate) type ValueId = u32;

pub(crate) type State = Register<ValueId>;

/// One operation of the key, in invocation order.
pub(crate) struct SearchOp {
    pub command: Command<ValueId>,
    /// The reply seen; `None` if unknown.
    pub observed: Option<Result<Reply<ValueId>, ErrorCode>>,
    /// Its bit in the linearized set: known and unknown operations are numbered apart,
    /// so unknown operations that are never applied do not keep the known prefix open.
    slot: Slot,
    /// For an unknown operation: its class of interchangeable unknown operations, and
    /// its rank there in invocation order.
    class: Option<(usize, usize)>,
    call_event: usize,
    return_event: Option<usize>,
}

#[derive(Clone, Copy)]
enum Slot {
    Known(usize),
    Unknown(usize),
}

#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

/// One key's history, ready to search.
pub(crate) struct KeyProblem {
    ops: Vec<SearchOp>,
    /// Invocations and completions in time order; an invocation comes before a
    /// completion at the same time, so equal times count as overlapping.
    events: Vec<Event>,
    initial: State,
    known_count: usize,
    unknown_count: usize,
    /// Members of each class of unknown operations, in invocation order.
    classes: Vec<Vec<usize>>,
    /// Which values some read returned; the others are indistinguishable.
    value_is_read: Vec<bool>,
}

/// The input to [`KeyProblem::new`]: an operation and its times.
pub(crate) struct TimedOp<T> {
    pub command: Command<ValueId>,
    pub observed: Option<Result<Reply<ValueId>, ErrorCode>>,
    pub invoked_at: T,
    /// `None` for unknown operations.
    pub completed_at: Option<T>,
}

impl KeyProblem {
    /// `ops` must be sorted by invocation time; `completed_at` is `Some` exactly when
    /// `observed` is. Values are numbered `0..value_count`.
    pub fn new<T: Ord + Copy>(ops: Vec<TimedOp<T>>, initial: State, value_count: usize) -> Self {
        let mut value_is_read = vec![false; value_count];
        for op in &ops {
            if let Some(Ok(Reply::Data { value, .. })) = op.observed {
                value_is_read[value as usize] = true;
            }
        }
        // Unknown operations with the same effect, up to values no read returned, are
        // interchangeable: `Write(x)` and `Write(y)` when neither x nor y was ever read.
        let mut classes: Vec<Vec<usize>> = Vec::new();
        let mut class_of: HashMap<Command<ValueId>, usize> = HashMap::new();
        let canonical = |value: ValueId| {
            if value_is_read[value as usize] {
                value
            } else {
                UNREAD_VALUE
            }
        };
        let mut timeline: Vec<(T, bool, usize)> = Vec::with_capacity(2 * ops.len());
        let (mut known_count, mut unknown_count) = (0, 0);
        let mut search_ops: Vec<SearchOp> = ops
            .iter()
            .enumerate()
            .map(|(index, op)| {
                timeline.push((op.invoked_at, false, index));
                let slot = match op.completed_at {
                    Some(completed_at) => {
                        timeline.push((completed_at, true, index));
                        known_count += 1;
                        Slot::Known(known_count - 1)
                    }
                    None => {
                        unknown_count += 1;
                        Slot::Unknown(unknown_count - 1)
                    }
                };
                let class = op.completed_at.is_none().then(|| {
                    let effect = match &op.command {
                        Command::Write(value) => Command::Write(canonical(*value)),
                        Command::Cas {
                            expected_version,
                            value,
                        } => Command::Cas {
                            expected_version: *expected_version,
                            value: canonical(*value),
                        },
                        Command::Create(value) => Command::Create(canonical(*value)),
                        other => other.clone(),
                    };
                    let class = *class_of.entry(effect).or_insert_with(|| {
                        classes.push(Vec::new());
                        classes.len() - 1
                    });
                    classes[class].push(index);
                    (class, classes[class].len() - 1)
                });
                SearchOp {
                    command: op.command.clone(),
                    observed: op.observed,
                    slot,
                    class,
                    call_event: 0,
                    return_event: None,
                }
            })
            .collect();
        // `false < true`: at equal times, invocations first.
        timeline.sort_unstable_by_key(|&(time, is_return, op)| (time, is_return, op));
        let events = timeline
            .iter()
            .enumerate()
            .map(|(position, &(_, is_return, op))| {
                if is_return {
                    search_ops[op].return_event = Some(position);
                } else {
                    search_ops[op].call_event = position;
                }
                Event {
                    op,
                    is_call: !is_return,
                }
            })
            .collect();
        KeyProblem {
            ops: search_ops,
            events,
            initial,
            known_count,
            unknown_count,
            classes,
            value_is_read,
        }
    }

    /// The state as the memo sees it: values no read returned are all alike.
    fn canonical(&self, state: State) -> State {
        match state {
            Register::Present { value, version } if !self.value_is_read[value as usize] => {
                Register::Present {
                    value: UNREAD_VALUE,
                    version,
                }
            }
            state => state,
        }
    }
}

/// Stands for every value that no read returned, in memo keys and classes.
const UNREAD_VALUE: ValueId = ValueId::MAX - 1;

/// The search found no linearization. Describes the configuration that got furthest
/// in time: the operation whose completion it could not pass, and how it got there.
pub(crate) struct Stuck {
    /// The operation that had to be linearized before its completion, and could not be.
    pub blocked: usize,
    /// The register's state at that point.
    pub state: State,
    /// How many operations were linearized at that point.
    pub linearized_count: usize,
    /// How many of those were unknown operations.
    unknown_applied: usize,
    /// The last operations linearized, oldest first, with their 0-based positions in the
    /// linearization.
    pub recent: Vec<(usize, usize)>,
    linearized: LinearizedSet,
}

impl Stuck {
    pub fn is_linearized(&self, problem: &KeyProblem, op: usize) -> bool {
        self.linearized.contains(problem.ops[op].slot)
    }
}

pub(crate) enum Verdict {
    Linearizable {
        configurations: usize,
    },
    /// `exhaustive` is false when the budget ran out first: then the history may
    /// still be linearizable, and `stuck` is the furthest the search got.
    NotLinearizable {
        stuck: Box<Stuck>,
        exhaustive: bool,
    },
}

/// How many of the last linearized operations a [`Stuck`] keeps.
const RECENT_KEPT: usize = 6;

/// A linearized operation, to undo on backtracking.
struct Frame {
    op: usize,
    state_before: State,
}

/// Searches until a linearization is found, none can be, or `budget` configurations
/// were visited.
pub(crate) fn search(problem: &KeyProblem, budget: usize) -> Verdict {
    let ops = &problem.ops;
    let events = &problem.events;
    let mut list = EventList::new(events.len());
    let mut linearized = LinearizedSet::new(problem.known_count, problem.unknown_count);
    let mut visited: HashSet<Box<[u64]>, FixedState> = HashSet::default();
    let mut key = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut state = problem.initial;
    let mut known_left = problem.known_count;
    let mut furthest: Option<(usize, Stuck)> = None;
    // Per class of unknown operations, the rank of its first member not linearized.
    let mut class_first_pending = vec![0; problem.classes.len()];
    let mut cursor = list.first();

    loop {
        if known_left == 0 {
            // Unknown operations still pending are simply not applied.
            return Verdict::Linearizable {
                configurations: visited.len(),
            };
        }
        // Every known operation left has a completion in the list, so the cursor
        // meets one before the end; the end is treated as a dead end all the same.
        let mut dead_end = cursor == list.end();
        if !dead_end {
            let Event { op: index, is_call } = events[cursor];
            let op = &ops[index];
            // Of interchangeable unknown operations, only the earliest pending one is
            // tried: it sits earlier in the list, was tried from this configuration
            // already, and trying another would lead to the same outcome.
            let interchangeable_tried = op
                .class
                .is_some_and(|(class, rank)| class_first_pending[class] != rank);
            if is_call && interchangeable_tried {
                cursor = list.next(cursor);
                continue;
            }
            if is_call {
                let (next_state, reply) = state.apply(&op.command);
                let unchanged = next_state == state;
                let fits = match op.observed {
                    Some(observed) => observed == reply,
                    // Applying an unknown operation where it changes nothing is the same
                    // as leaving it out, which stays possible.
                    None => !unchanged,
                };
                if fits {
                    linearized.insert(op.slot);
                    key.clear();
                    linearized.write_key(problem.canonical(next_state), &mut key);
                    if visited.len() >= budget {
                        if let Some((_, stuck)) = furthest {
                            return Verdict::NotLinearizable {
                                stuck: Box::new(stuck),
                                exhaustive: false,
                            };
                        }
                    }
                    if !visited.contains(key.as_slice()) {
                        visited.insert(key.as_slice().into());
                        stack.push(Frame {
                            op: index,
                            state_before: state,
                        });
                        state = next_state;
                        list.lift(op);
                        if op.observed.is_some() {
                            known_left -= 1;
                        }
                        if let Some((class, _)) = op.class {
                            let members = &problem.classes[class];
                            let first = &mut class_first_pending[class];
                            while *first < members.len()
                                && linearized.contains(ops[members[*first]].slot)
                            {
                                *first += 1;
                            }
                        }
                        cursor = list.first();
                        continue;
                    }
                    linearized.remove(op.slot);
                    // An operation that fits and changes nothing can always go first
                    // (see the backtracking below); that configuration already failed.
                    dead_end = op.observed.is_some() && unchanged;
                }
                if !dead_end {
                    cursor = list.next(cursor);
                    continue;
                }
            } else {
                // Furthest in time wins; at the same point, the order that applied fewer
                // unknown operations, which is the easier story to read.
                let unknown_applied = stack.len() - (problem.known_count - known_left);
                if furthest.as_ref().is_none_or(|(at, best)| {
                    cursor > *at || (cursor == *at && unknown_applied < best.unknown_applied)
                }) {
                    let recent = stack
                        .iter()
                        .enumerate()
                        .skip(stack.len().saturating_sub(RECENT_KEPT))
                        .map(|(position, frame)| (frame.op, position))
                        .collect();
                    let stuck = Stuck {
                        blocked: index,
                        state,
                        linearized_count: stack.len(),
                        unknown_applied,
                        recent,
                        linearized: linearized.clone(),
                    };
                    furthest = Some((cursor, stuck));
                }
                dead_end = true;
            }
        }
        debug_assert!(dead_end);

        // Backtrack: undo the last linearized operation and try the events after it.
        loop {
            let Some(frame) = stack.pop() else {
                return match furthest {
                    Some((_, stuck)) => Verdict::NotLinearizable {
                        stuck: Box::new(stuck),
                        exhaustive: true,
                    },
                    // Unreachable: failing needs a dead end, and a dead end records
                    // itself. Report the first operation rather than panic.
                    None => Verdict::NotLinearizable {
                        exhaustive: true,
                        stuck: Box::new(Stuck {
                            blocked: 0,
                            state: problem.initial,
                            linearized_count: 0,
                            unknown_applied: 0,
                            recent: Vec::new(),
                            linearized: LinearizedSet::new(
                                problem.known_count,
                                problem.unknown_count,
                            ),
                        }),
                    },
                };
            };
            let op = &ops[frame.op];
            let state_after = state;
            state = frame.state_before;
            list.unlift(op);
            linearized.remove(op.slot);
            if op.observed.is_some() {
                known_left += 1;
            }
            if let Some((class, rank)) = op.class {
                class_first_pending[class] = class_first_pending[class].min(rank);
            }
            // A known operation that fits and leaves the state unchanged (a read, a
            // refusal) never needs postponing: in any linearization from here, moving it
            // first keeps every reply and respects real time, since nothing left
            // completed before it was invoked. So if taking it now failed, this whole
            // configuration fails.
            if op.observed.is_some() && state_after == state {
                continue;
            }
            cursor = list.next(op.call_event);
            break;
        }
    }
}

/// The events not yet linearized, as a circular doubly linked list over event indices,
/// with a sentinel at index `len`. Removals are undone in reverse order (as in Knuth's
/// dancing links), which the search's stack discipline guarantees.
struct EventList {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EventList {
    fn new(len: usize) -> Self {
        let nodes = len + 1;
        EventList {
            next: (0..nodes).map(|i| (i + 1) % nodes).collect(),
            prev: (0..nodes).map(|i| (i + nodes - 1) % nodes).collect(),
        }
    }

    fn end(&self) -> usize {
        self.next.len() - 1
    }

    fn first(&self) -> usize {
        self.next[self.end()]
    }

    fn next(&self, event: usize) -> usize {
        self.next[event]
    }

    fn remove(&mut self, event: usize) {
        let (prev, next) = (self.prev[event], self.next[event]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn restore(&mut self, event: usize) {
        let (prev, next) = (self.prev[event], self.next[event]);
        self.next[prev] = event;
        self.prev[next] = event;
    }

    /// Takes an operation's invocation and completion out of the list.
    fn lift(&mut self, op: &SearchOp) {
        self.remove(op.call_event);
        if let Some(event) = op.return_event {
            self.remove(event);
        }
    }

    fn unlift(&mut self, op: &SearchOp) {
        if let Some(event) = op.return_event {
            self.restore(event);
        }
        self.restore(op.call_event);
    }
}

/// Which operations are linearized. Known operations are numbered in invocation order
/// and linearized roughly in that order, so the set is a full prefix plus a few bits;
/// its memo key keeps only the words past the prefix, which keeps keys short on long
/// histories.
#[derive(Clone)]
struct LinearizedSet {
    known: Vec<u64>,
    /// The lowest known operation not in the set.
    first_absent: usize,
    /// One past the last non-zero word of `known`.
    known_words_used: usize,
    unknown: Vec<u64>,
}

impl LinearizedSet {
    fn new(known_count: usize, unknown_count: usize) -> Self {
        LinearizedSet {
            known: vec![0; known_count.div_ceil(64)],
            first_absent: 0,
            known_words_used: 0,
            unknown: vec![0; unknown_count.div_ceil(64)],
        }
    }

    fn contains(&self, slot: Slot) -> bool {
        match slot {
            Slot::Known(i) => self.known[i / 64] & (1 << (i % 64)) != 0,
            Slot::Unknown(i) => self.unknown[i / 64] & (1 << (i % 64)) != 0,
        }
    }

    fn insert(&mut self, slot: Slot) {
        match slot {
            Slot::Known(i) => {
                self.known[i / 64] |= 1 << (i % 64);
                self.known_words_used = self.known_words_used.max(i / 64 + 1);
                while self.first_absent < self.known.len() * 64
                    && self.contains(Slot::Known(self.first_absent))
                {
                    self.first_absent += 1;
                }
            }
            Slot::Unknown(i) => self.unknown[i / 64] |= 1 << (i % 64),
        }
    }

    fn remove(&mut self, slot: Slot) {
        match slot {
            Slot::Known(i) => {
                self.known[i / 64] &= !(1 << (i % 64));
                self.first_absent = self.first_absent.min(i);
                while self.known_words_used > 0 && self.known[self.known_words_used - 1] == 0 {
                    self.known_words_used -= 1;
                }
            }
            Slot::Unknown(i) => self.unknown[i / 64] &= !(1 << (i % 64)),
        }
    }

    /// The configuration `(self, state)` as a memo key: the state, where the known
    /// prefix ends (in words), the unknown bits, then the known words past the prefix.
    /// Words before the prefix's end are all ones and words past the used ones all
    /// zeros, so equal configurations give equal keys and unequal ones unequal keys.
    fn write_key(&self, state: State, key: &mut Vec<u64>) {
        let state_word = match state {
            Register::Absent => u64::MAX,
            Register::Present { value, version } => {
                (u64::from(value) << 32) | u64::from(version as u32)
            }
        };
        let prefix_words = self.first_absent / 64;
        key.push(state_word);
        key.push(prefix_words as u64);
        key.extend_from_slice(&self.unknown);
        if self.known_words_used > prefix_words {
            key.extend_from_slice(&self.known[prefix_words..self.known_words_used]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linearized_set_tracks_its_prefix_and_used_words() {
        let mut set = LinearizedSet::new(200, 3);
        for i in [0, 1, 2, 130] {
            set.insert(Slot::Known(i));
        }
        assert_eq!(set.first_absent, 3);
        assert_eq!(set.known_words_used, 3);
        set.insert(Slot::Known(3));
        set.remove(Slot::Known(130));
        assert_eq!((set.first_absent, set.known_words_used), (4, 1));
        set.remove(Slot::Known(1));
        assert_eq!(set.first_absent, 1);
        assert!(set.contains(Slot::Known(3)) && !set.contains(Slot::Known(1)));
        for i in (0..200).filter(|&i| i != 1) {
            set.insert(Slot::Known(i));
        }
        set.insert(Slot::Known(1));
        assert_eq!(set.first_absent, 200);
    }

    #[test]
    fn equal_sets_reached_differently_have_equal_keys() {
        let state = Register::Present {
            value: 1,
            version: -1,
        };
        let (mut a, mut b) = (LinearizedSet::new(150, 2), LinearizedSet::new(150, 2));
        for i in 0..70 {
            a.insert(Slot::Known(i));
        }
        a.insert(Slot::Known(100));
        b.insert(Slot::Known(100));
        for i in (0..70).rev() {
            b.insert(Slot::Known(i));
        }
        b.insert(Slot::Known(120));
        b.remove(Slot::Known(120));
        let (mut key_a, mut key_b) = (Vec::new(), Vec::new());
        a.write_key(state, &mut key_a);
        b.write_key(state, &mut key_b);
        assert_eq!(key_a, key_b);
        b.insert(Slot::Unknown(1));
        key_b.clear();
        b.write_key(state, &mut key_b);
        assert_ne!(key_a, key_b);
    }
}
