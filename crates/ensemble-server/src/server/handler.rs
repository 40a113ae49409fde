//! Executing one decoded request of a connected session against the shared state.
//!
//! Contract: [`submit`] is the entry point for a connection's requests, in order.
//! A request that is not a write, arriving while earlier writes of its connection
//! are still waiting to be applied, is deferred ([`State::defer`]) and run by
//! [`drain`] once they are; everything else runs now through [`handle`], under the
//! state lock, synchronously. Writes become one [`Txn`] proposed through
//! [`State::propose`], whose reply is built when it is applied; reads check READ
//! permission with the session's ids and register watches only on success
//! (exists also on a missing node). A write's
//! reply carries its zxid, any other reply the tree's last zxid. Errors are
//! replies with a `KeeperException.Code`. `exists` checks READ on an existing
//! node, as ZooKeeper 3.9 does. A sync waits (in its slot) until this member has
//! applied the commit index the leader confirms ([`State::request_sync`]).

use crate::consensus::Membership;
use crate::protocol::{
    encode_reply, perms, AddWatchMode, ClientInfo, Create2Response, CreateResponse, ErrorCode,
    ErrorResponse, GetAclResponse, GetAllChildrenNumberResponse, GetChildren2Response,
    GetChildrenResponse, GetDataResponse, GetEphemeralsResponse, Id, MultiOp, MultiResult, OpCode,
    ReplyHeader, Request, Response, SetWatches2, Stat, SyncResponse, WatcherType, WhoAmIResponse,
};
use crate::tree::{acl, path, CreateKind, Done, Origin, Outcome, Txn, TxnResult};

use super::reconfig::{self, config_text, Change};
use super::state::{ConnId, Deferred, Ready, Slot, State, Work};

/// Who is asking.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub conn: ConnId,
    pub session_id: i64,
    /// `ip:<address>` of the connection, always part of the caller's ids.
    pub ip: Id,
}

type Reply = Result<Response, ErrorCode>;

/// Runs or defers one request of a connection; see the module contract.
pub(crate) fn submit(state: &mut State, caller: Caller, xid: i32, request: Request) {
    let conn = caller.conn;
    if !request.is_write() && state.is_busy(conn) {
        state.defer(
            conn,
            Deferred {
                caller,
                xid,
                request,
            },
        );
        return;
    }
    if let Some(ready) = handle(state, &caller, xid, request) {
        state.respond(conn, ready);
    }
}

/// Sends what is ready at the head of `conn`'s queue and runs the deferred
/// requests that no longer wait for a write.
pub(crate) fn drain(state: &mut State, conn: ConnId) {
    while let Some(slot) = state.pop_unblocked(conn) {
        match slot {
            Slot::Ready(ready) => state.send_ready(conn, ready),
            // It was at the head, so its reply goes out now, ahead of the rest.
            Slot::Deferred(d) => {
                if let Some(ready) = handle(state, &d.caller, d.xid, d.request) {
                    state.send_ready(conn, ready);
                }
            }
            Slot::Awaiting(_) => unreachable!("pop_unblocked never returns a waiting slot"),
        }
    }
}

/// Runs one request now. Returns its reply, or `None` when it was proposed and
/// the reply will come when it is applied.
pub(crate) fn handle(
    state: &mut State,
    caller: &Caller,
    xid: i32,
    request: Request,
) -> Option<Ready> {
    let now = state.now_ms();
    state.touched(caller.session_id);
    if !state.sessions.touch(caller.session_id, now) {
        return Some(ready(state, xid, Err(ErrorCode::SessionExpired), true));
    }
    let origin = origin(state, caller);
    let op = request.op();
    let mut close = false;
    let proposer = Proposer {
        conn: caller.conn,
        xid,
    };
    let reply: Reply = match request {
        Request::Ping => Ok(Response::Empty),
        Request::CloseSession => {
            state.close_session(
                caller.session_id,
                Some(proposer.finish(|_| Ok(Response::Empty), true)),
            );
            return None;
        }
        Request::Auth(packet) => match packet.scheme.as_str() {
            "digest" => {
                let ids = acl::authenticate_digest(&packet.auth.0, state.super_digest.as_deref());
                state.sessions.add_auth(caller.session_id, ids);
                Ok(Response::Empty)
            }
            // The connection's ip id is always present.
            "ip" => Ok(Response::Empty),
            _ => {
                close = true;
                Err(ErrorCode::AuthFailed)
            }
        },
        Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => {
            let txn = create_txn(op, r.path, r.data, r.acl, r.flags, None);
            return proposer.propose(state, origin, txn, created(op));
        }
        Request::CreateTtl(r) => {
            let txn = create_txn(op, r.path, r.data, r.acl, r.flags, Some(r.ttl));
            return proposer.propose(state, origin, txn, created(op));
        }
        Request::Delete(r) => {
            let txn = Txn::Delete {
                path: r.path,
                version: r.version,
            };
            return proposer.propose(state, origin, txn, |_| Ok(Response::Empty));
        }
        Request::SetData(r) => {
            let txn = Txn::SetData {
                path: r.path,
                data: r.data,
                version: r.version,
            };
            return proposer.propose(state, origin, txn, done_stat);
        }
        Request::SetAcl(r) => {
            let txn = Txn::SetAcl {
                path: r.path,
                acl: r.acl,
                version: r.version,
            };
            return proposer.propose(state, origin, txn, done_stat);
        }
        Request::Check(r) => {
            let txn = Txn::Check {
                path: r.path,
                version: r.version,
            };
            return proposer.propose(state, origin, txn, done_stat);
        }
        Request::Multi(ops) => match multi_txn(ops) {
            Ok((codes, txn)) => {
                return proposer.propose_with(state, origin, txn, move |result| {
                    multi_results(codes, result)
                })
            }
            Err(code) => Err(code),
        },
        Request::MultiRead(ops) => multi_read(state, caller, &origin, ops),
        Request::Exists(r) => exists(state, caller, &origin, &r.path, r.watch),
        Request::GetData(r) => get_data(state, caller, &origin, &r.path, r.watch)
            .map(|(data, stat)| Response::GetData(GetDataResponse { data, stat })),
        Request::GetChildren(r) => get_children(state, caller, &origin, &r.path, r.watch)
            .map(|(children, _)| Response::GetChildren(GetChildrenResponse { children })),
        Request::GetChildren2(r) => {
            get_children(state, caller, &origin, &r.path, r.watch).map(|(children, stat)| {
                Response::GetChildren2(GetChildren2Response { children, stat })
            })
        }
        Request::GetAcl(r) => get_acl(state, &origin, &r.path),
        Request::GetAllChildrenNumber(r) => readable(state, &origin, &r.path).and_then(|_| {
            let total_number = state
                .tree
                .all_children_number(&r.path)
                .ok_or(ErrorCode::NoNode)?;
            Ok(Response::GetAllChildrenNumber(
                GetAllChildrenNumberResponse { total_number },
            ))
        }),
        Request::GetEphemerals(r) => {
            let ephemerals = state
                .tree
                .ephemerals(caller.session_id)
                .into_iter()
                .filter(|p| r.prefix_path == "/" || p.starts_with(&r.prefix_path))
                .collect();
            Ok(Response::GetEphemerals(GetEphemeralsResponse {
                ephemerals,
            }))
        }
        // Answered once this member has applied what the leader had committed.
        Request::Sync(r) => {
            state.request_background(caller.conn, xid, Work::Sync(r.path));
            return None;
        }
        Request::Reconfig(r) => match reconfig_plan(state, &origin, &r) {
            Ok(changes) => {
                state.request_background(caller.conn, xid, Work::Reconfig(changes));
                return None;
            }
            Err(code) => Err(code),
        },
        Request::CheckWatches(r) => watch_kind(r.watcher_type).and_then(|kind| {
            if state.watches.contains(&r.path, kind, &caller.conn) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }),
        Request::RemoveWatches(r) => watch_kind(r.watcher_type).and_then(|kind| {
            if state.watches.remove(&r.path, kind, &caller.conn) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }),
        Request::SetWatches(r) => {
            set_watches(
                state,
                caller,
                SetWatches2 {
                    relative_zxid: r.relative_zxid,
                    data_watches: r.data_watches,
                    exist_watches: r.exist_watches,
                    child_watches: r.child_watches,
                    persistent_watches: Vec::new(),
                    persistent_recursive_watches: Vec::new(),
                },
            );
            Ok(Response::Empty)
        }
        Request::SetWatches2(r) => {
            set_watches(state, caller, r);
            Ok(Response::Empty)
        }
        Request::AddWatch(r) => match AddWatchMode::from_i32(r.mode) {
            Some(mode) => valid_path(&r.path).map(|()| {
                state.watches.add_watch(&r.path, caller.conn, mode);
                Response::AddWatch(ErrorResponse { err: 0 })
            }),
            None => Err(ErrorCode::BadArguments),
        },
        Request::WhoAmI => Ok(Response::WhoAmI(WhoAmIResponse {
            client_info: origin.auth.iter().map(client_info).collect(),
        })),
    };
    Some(ready(state, xid, reply, close))
}

/// The reply to a sync that waited for `zxid` to be applied.
pub(crate) fn sync_reply(xid: i32, zxid: i64, path: String) -> Ready {
    encode(xid, zxid, Ok(Response::Sync(SyncResponse { path })), false)
}

/// The reply to a reconfig: the new configuration, as `getData("/zookeeper/config")`
/// returns it once the change is applied here, or as `after` (the leader's word) on a
/// member that the change removed, which never applies it. A member leaving or out of
/// the membership closes the connection after it.
pub(crate) fn reconfig_reply(state: &State, xid: i32, after: Option<&Membership>) -> Ready {
    let reply = match after {
        Some(membership) => membership_config(state, membership),
        None => config_data(state),
    }
    .map(|(data, stat)| Response::GetData(GetDataResponse { data, stat }));
    ready(state, xid, reply, after.is_some() || state.leaving())
}

/// A refused reconfig; closes the connection as [`reconfig_reply`] does.
pub(crate) fn reconfig_refused(state: &State, xid: i32, code: ErrorCode) -> Ready {
    ready(state, xid, Err(code), state.leaving())
}

/// What a reconfig asks for, if `reconfigEnabled` and the caller may change
/// `/zookeeper/config` (ZooKeeper requires WRITE on it; its default ACL grants
/// that to the super user only).
fn reconfig_plan(
    state: &State,
    origin: &Origin,
    request: &crate::protocol::ReconfigRequest,
) -> Result<Vec<Change>, ErrorCode> {
    if !state.reconfig_enabled {
        return Err(ErrorCode::ReconfigDisabled);
    }
    let node = state
        .tree
        .node(crate::tree::CONFIG_NODE)
        .ok_or(ErrorCode::NoNode)?;
    if !acl::allows(&node.acl, perms::WRITE, &origin.auth) {
        return Err(ErrorCode::NoAuth);
    }
    let membership = state
        .consensus()
        .map(|c| c.status().membership)
        .ok_or(ErrorCode::ConnectionLoss)?;
    reconfig::plan(request, &membership)
}

/// `/zookeeper/config`: the membership as ZooKeeper prints it, with the node's
/// stat (its data length and mzxid those of the membership).
fn config_data(state: &State) -> Result<(Option<Vec<u8>>, Stat), ErrorCode> {
    let membership = state
        .consensus()
        .map(|c| c.status().membership)
        .unwrap_or_default();
    membership_config(state, &membership)
}

/// `/zookeeper/config` showing `membership`.
fn membership_config(
    state: &State,
    membership: &Membership,
) -> Result<(Option<Vec<u8>>, Stat), ErrorCode> {
    let node = state
        .tree
        .node(crate::tree::CONFIG_NODE)
        .ok_or(ErrorCode::NoNode)?;
    let client = state.client_address.map(|address| address.to_string());
    let local = client.as_deref().map(|address| (state.my_id(), address));
    let text = config_text(membership, local).into_bytes();
    let mut stat = node.stat();
    stat.data_length = i32::try_from(text.len()).unwrap_or(i32::MAX);
    stat.mzxid = i64::try_from(membership.version).unwrap_or(i64::MAX);
    Ok((Some(text), stat))
}

/// A reply that is not a write's: it carries the tree's last zxid.
fn ready(state: &State, xid: i32, reply: Reply, close: bool) -> Ready {
    encode(xid, state.tree.last_zxid(), reply, close)
}

fn encode(xid: i32, zxid: i64, reply: Reply, close: bool) -> Ready {
    let (err, body) = match reply {
        Ok(body) => (0, body),
        Err(code) => (code.code(), Response::Empty),
    };
    let header = ReplyHeader { xid, zxid, err };
    Ready {
        frame: encode_reply(&header, &body),
        close,
    }
}

/// The connection and xid a proposed write answers.
#[derive(Clone, Copy)]
struct Proposer {
    conn: ConnId,
    xid: i32,
}

impl Proposer {
    /// A [`super::state::Finish`] that maps the write's outcome to its reply.
    fn finish(
        self,
        map: impl FnOnce(TxnResult) -> Reply + Send + 'static,
        close: bool,
    ) -> (ConnId, super::state::Finish) {
        let finish = move |zxid, result| encode(self.xid, zxid, map(result), close);
        (self.conn, Box::new(finish))
    }

    /// Proposes `txn`; its reply is `map` of the successful result, or the code
    /// of the failure.
    fn propose(
        self,
        state: &mut State,
        origin: Origin,
        txn: Txn,
        map: impl FnOnce(Done) -> Reply + Send + 'static,
    ) -> Option<Ready> {
        self.propose_with(state, origin, txn, |result| match result.outcome {
            Outcome::Done(done) => map(done),
            other => Err(other.code()),
        })
    }

    fn propose_with(
        self,
        state: &mut State,
        origin: Origin,
        txn: Txn,
        map: impl FnOnce(TxnResult) -> Reply + Send + 'static,
    ) -> Option<Ready> {
        state.propose(origin, txn, Some(self.finish(map, false)));
        None
    }
}

fn origin(state: &State, caller: &Caller) -> Origin {
    let mut auth = vec![caller.ip.clone()];
    if let Some(session) = state.sessions.get(caller.session_id) {
        auth.extend(session.auth.iter().cloned());
    }
    Origin::session(caller.session_id, auth)
}

/// ZooKeeper's `getUserName`: the user part of a digest id, the id otherwise.
fn client_info(id: &Id) -> ClientInfo {
    let user = match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or_default().to_owned(),
        _ => id.id.clone(),
    };
    ClientInfo {
        auth_scheme: id.scheme.clone(),
        user,
    }
}

fn valid_path(p: &str) -> Result<(), ErrorCode> {
    path::validate_path(p).map_err(|_| ErrorCode::BadArguments)
}

fn watch_kind(code: i32) -> Result<WatcherType, ErrorCode> {
    WatcherType::from_i32(code).ok_or(ErrorCode::BadArguments)
}

fn done_stat(done: Done) -> Reply {
    match done {
        Done::DataSet(stat) | Done::AclSet(stat) | Done::Checked(stat) => Ok(Response::Stat(stat)),
        _ => Err(ErrorCode::SystemError),
    }
}

fn create_txn(
    op: OpCode,
    path: String,
    data: Option<Vec<u8>>,
    acl: Vec<crate::protocol::Acl>,
    flags: i32,
    ttl: Option<i64>,
) -> Txn {
    let kind = match op {
        OpCode::CreateContainer => CreateKind::Container,
        OpCode::CreateTtl => CreateKind::Ttl,
        _ => CreateKind::Regular,
    };
    Txn::Create {
        path,
        data,
        acl,
        flags,
        kind,
        ttl,
    }
}

/// The reply to a create of opcode `op`: the path alone for `create`, the path and
/// stat for the others.
fn created(op: OpCode) -> impl FnOnce(Done) -> Reply + Send + 'static {
    move |done| match done {
        Done::Created { path, .. } if op == OpCode::Create => {
            Ok(Response::Create(CreateResponse { path }))
        }
        Done::Created { path, stat } => Ok(Response::Create2(Create2Response { path, stat })),
        _ => Err(ErrorCode::SystemError),
    }
}

/// The transaction of a write multi, with each op's opcode for its result.
fn multi_txn(ops: Vec<MultiOp>) -> Result<(Vec<OpCode>, Txn), ErrorCode> {
    let mut codes = Vec::with_capacity(ops.len());
    let mut txns = Vec::with_capacity(ops.len());
    for op in ops {
        codes.push(op.op());
        txns.push(match op {
            MultiOp::Create { op, req } => {
                create_txn(op, req.path, req.data, req.acl, req.flags, None)
            }
            MultiOp::CreateTtl(r) => create_txn(
                OpCode::CreateTtl,
                r.path,
                r.data,
                r.acl,
                r.flags,
                Some(r.ttl),
            ),
            MultiOp::Delete(r) => Txn::Delete {
                path: r.path,
                version: r.version,
            },
            MultiOp::SetData(r) => Txn::SetData {
                path: r.path,
                data: r.data,
                version: r.version,
            },
            MultiOp::Check(r) => Txn::Check {
                path: r.path,
                version: r.version,
            },
            MultiOp::GetChildren(_) | MultiOp::GetData(_) => return Err(ErrorCode::BadArguments),
        });
    }
    Ok((codes, Txn::Multi(txns)))
}

/// ZooKeeper's per-op multi results: each op's result on success, each op's code
/// (`Ok`, the failing code, then `RuntimeInconsistency`) on failure.
fn multi_results(codes: Vec<OpCode>, result: TxnResult) -> Reply {
    let results = match result.outcome {
        Outcome::Done(Done::Multi(done)) => codes
            .into_iter()
            .zip(done)
            .map(|(op, done)| match done {
                Done::Created { path, .. } if op == OpCode::Create => MultiResult::Create(path),
                Done::Created { path, stat } => MultiResult::Create2 { path, stat },
                Done::Deleted => MultiResult::Delete,
                Done::DataSet(stat) => MultiResult::SetData(stat),
                Done::Checked(_) => MultiResult::Check,
                _ => MultiResult::Error(ErrorCode::SystemError.code()),
            })
            .collect(),
        Outcome::MultiFailed(failed) => failed
            .into_iter()
            .map(|c| MultiResult::Error(c.code()))
            .collect(),
        other => return Err(other.code()),
    };
    Ok(Response::Multi(results))
}

fn multi_read(state: &mut State, caller: &Caller, origin: &Origin, ops: Vec<MultiOp>) -> Reply {
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        results.push(match op {
            MultiOp::GetChildren(r) => {
                match get_children(state, caller, origin, &r.path, r.watch) {
                    Ok((children, _)) => MultiResult::GetChildren(children),
                    Err(code) => MultiResult::Error(code.code()),
                }
            }
            MultiOp::GetData(r) => match get_data(state, caller, origin, &r.path, r.watch) {
                Ok((data, stat)) => MultiResult::GetData { data, stat },
                Err(code) => MultiResult::Error(code.code()),
            },
            _ => return Err(ErrorCode::BadArguments),
        });
    }
    Ok(Response::Multi(results))
}

/// The node at `p`, if the caller may read it.
fn readable<'s>(
    state: &'s State,
    origin: &Origin,
    p: &str,
) -> Result<&'s crate::tree::Node, ErrorCode> {
    valid_path(p)?;
    let node = state.tree.node(p).ok_or(ErrorCode::NoNode)?;
    if acl::allows(&node.acl, perms::READ, &origin.auth) {
        Ok(node)
    } else {
        Err(ErrorCode::NoAuth)
    }
}

/// ZooKeeper 3.9 checks READ on an existing node (and then sets no watch); a
/// missing node needs no permission and keeps the exists-watch.
fn exists(state: &mut State, caller: &Caller, origin: &Origin, p: &str, watch: bool) -> Reply {
    valid_path(p)?;
    let stat = match state.tree.node(p) {
        Some(node) if !acl::allows(&node.acl, perms::READ, &origin.auth) => {
            return Err(ErrorCode::NoAuth)
        }
        Some(node) => Ok(Response::Stat(node.stat())),
        None => Err(ErrorCode::NoNode),
    };
    if watch {
        state.watches.add_data_watch(p, caller.conn);
    }
    stat
}

fn get_data(
    state: &mut State,
    caller: &Caller,
    origin: &Origin,
    p: &str,
    watch: bool,
) -> Result<(Option<Vec<u8>>, Stat), ErrorCode> {
    let node = readable(state, origin, p)?;
    let found = if p == crate::tree::CONFIG_NODE {
        config_data(state)?
    } else {
        (node.data.clone(), node.stat())
    };
    if watch {
        state.watches.add_data_watch(p, caller.conn);
    }
    Ok(found)
}

fn get_children(
    state: &mut State,
    caller: &Caller,
    origin: &Origin,
    p: &str,
    watch: bool,
) -> Result<(Vec<String>, Stat), ErrorCode> {
    let node = readable(state, origin, p)?;
    let found = (node.children.iter().cloned().collect(), node.stat());
    if watch {
        state.watches.add_child_watch(p, caller.conn);
    }
    Ok(found)
}

/// getACL needs READ or ADMIN (ZOOKEEPER-1392); without ADMIN the password hashes
/// of digest ids are hidden as `user:x`, as ZooKeeper's FinalRequestProcessor does.
fn get_acl(state: &State, origin: &Origin, p: &str) -> Reply {
    valid_path(p)?;
    let node = state.tree.node(p).ok_or(ErrorCode::NoNode)?;
    if !acl::allows(&node.acl, perms::READ | perms::ADMIN, &origin.auth) {
        return Err(ErrorCode::NoAuth);
    }
    let mut acl = node.acl.clone();
    if !acl::allows(&node.acl, perms::ADMIN, &origin.auth) {
        for entry in acl.iter_mut().filter(|a| a.id.scheme == "digest") {
            let user = entry.id.id.split(':').next().unwrap_or_default();
            entry.id.id = format!("{user}:x");
        }
    }
    Ok(Response::GetAcl(GetAclResponse {
        acl,
        stat: node.stat(),
    }))
}

fn set_watches(state: &mut State, caller: &Caller, request: SetWatches2) {
    let State { tree, watches, .. } = state;
    let fired = watches.set_watches(tree, &request, caller.conn);
    for notification in fired {
        // Fired on re-registration, not by a transaction: ZooKeeper sends zxid -1.
        state.notify(notification, -1);
    }
}
