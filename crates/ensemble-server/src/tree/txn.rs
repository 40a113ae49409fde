//! Transactions: every change to the data tree, as plain data.
//!
//! Contract: a [`Txn`] together with its [`Origin`], zxid and time is everything
//! [`super::DataTree::apply`] needs, so replaying the same sequence on any member
//! yields the same tree. Validation (paths, versions, ACLs, sessions) happens inside
//! `apply`, against the tree as it is at that point of the log.

use crate::protocol::{Acl, ErrorCode, EventType, Id, Stat};

/// Who issued a transaction: the session and the ids it has authenticated as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// 0 for the server itself (container cleanup, session expiry).
    pub session_id: i64,
    pub auth: Vec<Id>,
}

impl Origin {
    pub fn session(session_id: i64, auth: Vec<Id>) -> Self {
        Self { session_id, auth }
    }

    /// The server's own transactions: no session check, super-user ACL rights.
    pub fn system() -> Self {
        Self {
            session_id: 0,
            auth: vec![Id::new(super::acl::SUPER_SCHEME, "")],
        }
    }
}

/// Which create opcode a [`Txn::Create`] came from; it decides the node's kind
/// together with the mode flags (a container comes only from `createContainer`,
/// a TTL node only from `createTTL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreateKind {
    /// `create` and `create2`.
    Regular,
    Container,
    Ttl,
}

/// A write to the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        /// Raw `CreateMode` flags; invalid values fail with `BadArguments`.
        flags: i32,
        kind: CreateKind,
        /// Only for [`CreateKind::Ttl`].
        ttl: Option<i64>,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    /// All or nothing; only Create, Delete, SetData and Check may appear inside.
    Multi(Vec<Txn>),
    CreateSession {
        session_id: i64,
        timeout_ms: i32,
    },
    /// Ends a session and deletes its ephemeral nodes.
    CloseSession {
        session_id: i64,
    },
    /// Removes an empty container or an expired TTL node (issued by the server).
    DeleteContainer {
        path: String,
    },
}

/// A change a watch manager may need to announce.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchEvent {
    pub event_type: EventType,
    pub path: String,
}

impl WatchEvent {
    pub fn new(event_type: EventType, path: impl Into<String>) -> Self {
        Self {
            event_type,
            path: path.into(),
        }
    }
}

/// What a successful transaction produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// The created node's final path (with any sequential suffix) and stat.
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    DataSet(Stat),
    AclSet(Stat),
    /// The checked node's stat.
    Checked(Stat),
    /// One result per op, in order.
    Multi(Vec<Done>),
    SessionCreated,
    /// The ephemeral nodes deleted with the session.
    SessionClosed {
        deleted: Vec<String>,
    },
}

/// The result of applying a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(Done),
    Failed(ErrorCode),
    /// A multi failed and changed nothing. One code per op, exactly as ZooKeeper
    /// reports them: `Ok` for ops before the failing one, the failing op's code,
    /// `RuntimeInconsistency` for the ops after it.
    MultiFailed(Vec<ErrorCode>),
}

impl Outcome {
    /// `Ok` on success, otherwise the (first) failing code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Outcome::Done(_) => ErrorCode::Ok,
            Outcome::Failed(code) => *code,
            Outcome::MultiFailed(codes) => codes
                .iter()
                .copied()
                .find(|c| *c != ErrorCode::Ok)
                .unwrap_or(ErrorCode::Ok),
        }
    }
}

/// [`Outcome`] plus the watch events the transaction triggered, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    pub outcome: Outcome,
    pub events: Vec<WatchEvent>,
}
