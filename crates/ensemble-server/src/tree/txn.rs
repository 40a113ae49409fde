//! Transactions: every change to the data tree, as plain data.
//!
//! Contract: a [`Txn`] together with its [`Origin`], zxid and time is everything
//! [`super::DataTree::apply`] needs, so replaying the same sequence on any member
//! yields the same tree. Validation (paths, versions, ACLs, sessions) happens inside
//! `apply`, against the tree as it is at that point of the log.
//!
//! [`Txn::write`]/[`Txn::read`] (and the same pair on [`Origin`]) give the binary
//! form the transaction log stores: `read(write(t)) == t` for every transaction,
//! and `read` rejects malformed bytes without panicking.

use crate::protocol::records::Field;
use crate::protocol::{Acl, DecodeError, ErrorCode, EventType, Id, Reader, Stat, Writer};

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
    /// Sets the ensemble's secret, from which session passwords are derived, if it
    /// has none yet (a leader proposes one when it finds none; the first wins).
    SetSecret {
        secret: Vec<u8>,
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
    /// The ensemble's secret is set (by this or an earlier transaction).
    SecretSet,
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

// ---- binary form, for the transaction log (and later the Raft log) ----

/// Tags of [`Txn`] variants in their binary form. Never renumber: logs on disk use them.
mod tag {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const SET_DATA: i32 = 3;
    pub const SET_ACL: i32 = 4;
    pub const CHECK: i32 = 5;
    pub const MULTI: i32 = 6;
    pub const CREATE_SESSION: i32 = 7;
    pub const CLOSE_SESSION: i32 = 8;
    pub const DELETE_CONTAINER: i32 = 9;
    pub const SET_SECRET: i32 = 10;
}

impl CreateKind {
    fn code(self) -> i32 {
        match self {
            CreateKind::Regular => 0,
            CreateKind::Container => 1,
            CreateKind::Ttl => 2,
        }
    }

    fn from_code(code: i32) -> Result<Self, DecodeError> {
        match code {
            0 => Ok(CreateKind::Regular),
            1 => Ok(CreateKind::Container),
            2 => Ok(CreateKind::Ttl),
            tag => Err(DecodeError::UnknownTag {
                kind: "create kind",
                tag,
            }),
        }
    }
}

impl Origin {
    pub fn write(&self, w: &mut Writer) {
        w.write_i64(self.session_id);
        self.auth.write_field(w);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            session_id: r.read_i64()?,
            auth: Vec::<Id>::read_field(r)?,
        })
    }
}

impl Txn {
    /// Appends the binary form: a tag, then the fields in declaration order, with
    /// jute's encodings (`Option<i64>` as a presence flag and the value).
    pub fn write(&self, w: &mut Writer) {
        match self {
            Txn::Create {
                path,
                data,
                acl,
                flags,
                kind,
                ttl,
            } => {
                w.write_i32(tag::CREATE);
                w.write_ustring(path);
                w.write_buffer(data.as_deref());
                acl.write_field(w);
                w.write_i32(*flags);
                w.write_i32(kind.code());
                w.write_bool(ttl.is_some());
                w.write_i64(ttl.unwrap_or(0));
            }
            Txn::Delete { path, version } => {
                w.write_i32(tag::DELETE);
                w.write_ustring(path);
                w.write_i32(*version);
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                w.write_i32(tag::SET_DATA);
                w.write_ustring(path);
                w.write_buffer(data.as_deref());
                w.write_i32(*version);
            }
            Txn::SetAcl { path, acl, version } => {
                w.write_i32(tag::SET_ACL);
                w.write_ustring(path);
                acl.write_field(w);
                w.write_i32(*version);
            }
            Txn::Check { path, version } => {
                w.write_i32(tag::CHECK);
                w.write_ustring(path);
                w.write_i32(*version);
            }
            Txn::Multi(ops) => {
                w.write_i32(tag::MULTI);
                w.write_vec(ops, |w, op| op.write(w));
            }
            Txn::CreateSession {
                session_id,
                timeout_ms,
            } => {
                w.write_i32(tag::CREATE_SESSION);
                w.write_i64(*session_id);
                w.write_i32(*timeout_ms);
            }
            Txn::CloseSession { session_id } => {
                w.write_i32(tag::CLOSE_SESSION);
                w.write_i64(*session_id);
            }
            Txn::DeleteContainer { path } => {
                w.write_i32(tag::DELETE_CONTAINER);
                w.write_ustring(path);
            }
            Txn::SetSecret { secret } => {
                w.write_i32(tag::SET_SECRET);
                w.write_buffer(Some(secret));
            }
        }
    }

    /// Reads what [`Txn::write`] wrote. Never panics; a multi inside a multi is
    /// refused, which also bounds the recursion.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::read_nested(r, false)
    }

    fn read_nested(r: &mut Reader<'_>, in_multi: bool) -> Result<Self, DecodeError> {
        let tag = r.read_i32()?;
        Ok(match tag {
            tag::CREATE => Txn::Create {
                path: r.read_ustring()?,
                data: r.read_buffer()?,
                acl: Vec::<Acl>::read_field(r)?,
                flags: r.read_i32()?,
                kind: CreateKind::from_code(r.read_i32()?)?,
                ttl: {
                    let present = r.read_bool()?;
                    let ttl = r.read_i64()?;
                    present.then_some(ttl)
                },
            },
            tag::DELETE => Txn::Delete {
                path: r.read_ustring()?,
                version: r.read_i32()?,
            },
            tag::SET_DATA => Txn::SetData {
                path: r.read_ustring()?,
                data: r.read_buffer()?,
                version: r.read_i32()?,
            },
            tag::SET_ACL => Txn::SetAcl {
                path: r.read_ustring()?,
                acl: Vec::<Acl>::read_field(r)?,
                version: r.read_i32()?,
            },
            tag::CHECK => Txn::Check {
                path: r.read_ustring()?,
                version: r.read_i32()?,
            },
            tag::MULTI if !in_multi => Txn::Multi(r.read_vec(8, |r| Self::read_nested(r, true))?),
            tag::MULTI => {
                return Err(DecodeError::UnknownTag {
                    kind: "transaction inside a multi",
                    tag,
                })
            }
            tag::CREATE_SESSION => Txn::CreateSession {
                session_id: r.read_i64()?,
                timeout_ms: r.read_i32()?,
            },
            tag::CLOSE_SESSION => Txn::CloseSession {
                session_id: r.read_i64()?,
            },
            tag::DELETE_CONTAINER => Txn::DeleteContainer {
                path: r.read_ustring()?,
            },
            tag::SET_SECRET => Txn::SetSecret {
                secret: r.read_buffer()?.unwrap_or_default(),
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    kind: "transaction",
                    tag,
                })
            }
        })
    }
}
