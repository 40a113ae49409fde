//! What clients did and saw: operations on keys, each with its times and outcome.
//!
//! Plain data; [`History::check`](crate::History::check) judges it.

use std::fmt;

/// Who issued an operation. Only used in reports: the checker never assumes a client's
/// operations are sequential (a client that lost its connection may retry at once).
pub type ClientId = u32;

/// A znode's data version, as in ZooKeeper's `Stat.version`.
pub type Version = i32;

/// A request on one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command<V> {
    /// getData: the value and version, or `NoNode`.
    Read,
    /// setData with version -1: replaces the value and bumps the version.
    Write(V),
    /// setData with a version: replaces the value only if the version matches.
    Cas { expected_version: Version, value: V },
    /// create: makes the node, at version 0, only if it is absent.
    Create(V),
    /// delete with version -1.
    Delete,
}

/// A successful reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reply<V> {
    /// To [`Command::Read`]: the node's value and version.
    Data { value: V, version: Version },
    /// To [`Command::Write`] and [`Command::Cas`]: the node's version after the write,
    /// from the returned `Stat`.
    Stat { version: Version },
    /// To [`Command::Create`].
    Created,
    /// To [`Command::Delete`].
    Deleted,
}

/// A refusal: the command did not take effect, for this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The node does not exist.
    NoNode,
    /// The node already exists.
    NodeExists,
    /// The node's version is not the expected one.
    BadVersion,
}

/// How an operation ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome<V, T> {
    /// The server did it and replied `reply`, received at `at`.
    Ok { at: T, reply: Reply<V> },
    /// The server refused with `code`, received at `at`; the command took no effect.
    Failed { at: T, code: ErrorCode },
    /// No reply (connection loss, timeout, killed client): the command may have taken
    /// effect at any time after its invocation, or never.
    Unknown,
}

impl<V, T: Copy> Outcome<V, T> {
    /// When the reply arrived; `None` (never) for [`Outcome::Unknown`].
    pub fn completed_at(&self) -> Option<T> {
        match self {
            Outcome::Ok { at, .. } | Outcome::Failed { at, .. } => Some(*at),
            Outcome::Unknown => None,
        }
    }

    /// The observed reply, `None` for [`Outcome::Unknown`].
    pub fn result(&self) -> Option<Result<&Reply<V>, ErrorCode>> {
        match self {
            Outcome::Ok { reply, .. } => Some(Ok(reply)),
            Outcome::Failed { code, .. } => Some(Err(*code)),
            Outcome::Unknown => None,
        }
    }
}

impl<V> Command<V> {
    /// Whether a server may answer this command with `result` at all, whatever the
    /// node's state: a read is never answered `Created`, a create never `BadVersion`.
    pub fn can_reply<R>(&self, result: Result<&Reply<R>, ErrorCode>) -> bool {
        use ErrorCode::*;
        matches!(
            (self, result),
            (Command::Read, Ok(Reply::Data { .. }) | Err(NoNode))
                | (Command::Write(_), Ok(Reply::Stat { .. }) | Err(NoNode))
                | (
                    Command::Cas { .. },
                    Ok(Reply::Stat { .. }) | Err(NoNode | BadVersion)
                )
                | (Command::Create(_), Ok(Reply::Created) | Err(NodeExists))
                | (Command::Delete, Ok(Reply::Deleted) | Err(NoNode))
        )
    }

    /// Whether the command can change the node (false only for reads).
    pub fn is_mutation(&self) -> bool {
        !matches!(self, Command::Read)
    }
}

/// One request of one client on one key, from invocation to outcome.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operation<K, V, T> {
    pub client: ClientId,
    pub key: K,
    pub command: Command<V>,
    /// When the client sent the request (taken before sending).
    pub invoked_at: T,
    pub outcome: Outcome<V, T>,
}

/// Operations, in any order; each is identified in reports by its index here (`#12`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<K, V, T> {
    operations: Vec<Operation<K, V, T>>,
}

impl<K, V, T> History<K, V, T> {
    pub fn new() -> Self {
        History {
            operations: Vec::new(),
        }
    }

    /// Adds an operation; returns its index.
    pub fn push(&mut self, operation: Operation<K, V, T>) -> usize {
        self.operations.push(operation);
        self.operations.len() - 1
    }

    pub fn operations(&self) -> &[Operation<K, V, T>] {
        &self.operations
    }

    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

impl<K, V, T> Default for History<K, V, T> {
    fn default() -> Self {
        History::new()
    }
}

impl<K, V, T> FromIterator<Operation<K, V, T>> for History<K, V, T> {
    fn from_iter<I: IntoIterator<Item = Operation<K, V, T>>>(iter: I) -> Self {
        History {
            operations: iter.into_iter().collect(),
        }
    }
}

impl<K, V, T> From<Vec<Operation<K, V, T>>> for History<K, V, T> {
    fn from(operations: Vec<Operation<K, V, T>>) -> Self {
        History { operations }
    }
}

impl<V: fmt::Debug> fmt::Display for Command<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Read => write!(f, "read"),
            Command::Write(value) => write!(f, "write({value:?})"),
            Command::Cas {
                expected_version,
                value,
            } => write!(f, "cas(if version {expected_version}: {value:?})"),
            Command::Create(value) => write!(f, "create({value:?})"),
            Command::Delete => write!(f, "delete"),
        }
    }
}

impl<V: fmt::Debug> fmt::Display for Reply<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Data { value, version } => write!(f, "{value:?} at version {version}"),
            Reply::Stat { version } => write!(f, "now version {version}"),
            Reply::Created => write!(f, "created"),
            Reply::Deleted => write!(f, "deleted"),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl<V: fmt::Debug, T> fmt::Display for Outcome<V, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok { reply, .. } => write!(f, "ok: {reply}"),
            Outcome::Failed { code, .. } => write!(f, "failed: {code}"),
            Outcome::Unknown => write!(f, "unknown"),
        }
    }
}

/// `client 3 [1.2ms .. 1.5ms] write(7) -> ok: now version 4`; the key is left to the
/// context, the index to the caller.
impl<K, V: fmt::Debug, T: fmt::Debug + Copy> fmt::Display for Operation<K, V, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} [{:?} .. ", self.client, self.invoked_at)?;
        match self.outcome.completed_at() {
            Some(at) => write!(f, "{at:?}]")?,
            None => write!(f, "no reply]")?,
        }
        write!(f, " {} -> {}", self.command, self.outcome)
    }
}
