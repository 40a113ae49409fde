//! Executing one decoded request of a connected session against the shared state.
//!
//! Contract: [`handle`] runs under the state lock, synchronously, and returns the
//! reply frame plus whether the connection must close after it. Writes become one
//! [`Txn`] through [`State::commit`]; reads check READ permission with the session's
//! ids (exists, like ZooKeeper's, checks none) and register watches only on
//! success (exists also on a missing node). The reply's zxid is the tree's last
//! zxid after the request. Errors are replies with a `KeeperException.Code`.

use crate::protocol::{
    encode_reply, perms, AddWatchMode, ClientInfo, Create2Response, CreateResponse, ErrorCode,
    ErrorResponse, GetAclResponse, GetAllChildrenNumberResponse, GetChildren2Response,
    GetChildrenResponse, GetDataResponse, GetEphemeralsResponse, Id, MultiOp, MultiResult, OpCode,
    ReplyHeader, Request, Response, SetWatches2, Stat, SyncResponse, WatcherType, WhoAmIResponse,
};
use crate::tree::{acl, path, CreateKind, Done, Origin, Outcome, Txn};

use super::state::{ConnId, State};

/// Who is asking.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub conn: ConnId,
    pub session_id: i64,
    /// `ip:<address>` of the connection, always part of the caller's ids.
    pub ip: Id,
}

/// What to send back.
pub(crate) struct Handled {
    pub frame: Vec<u8>,
    pub close: bool,
}

type Reply = Result<Response, ErrorCode>;

/// See the module contract.
pub(crate) fn handle(
    state: &mut State,
    caller: &Caller,
    super_digest: Option<&str>,
    xid: i32,
    request: Request,
) -> Handled {
    let now = state.now_ms();
    if !state.sessions.touch(caller.session_id, now) {
        return finish(state, xid, Err(ErrorCode::SessionExpired), true);
    }
    let origin = origin(state, caller);
    let mut close = false;
    let reply: Reply = match request {
        Request::Ping => Ok(Response::Empty),
        Request::CloseSession => {
            state.close_session(caller.session_id);
            close = true;
            Ok(Response::Empty)
        }
        Request::Auth(packet) => match packet.scheme.as_str() {
            "digest" => {
                let ids = acl::authenticate_digest(&packet.auth.0, super_digest);
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
        Request::Create(r) => create(
            state,
            &origin,
            OpCode::Create,
            r.path,
            r.data,
            r.acl,
            r.flags,
            None,
        ),
        Request::Create2(r) => create(
            state,
            &origin,
            OpCode::Create2,
            r.path,
            r.data,
            r.acl,
            r.flags,
            None,
        ),
        Request::CreateContainer(r) => create(
            state,
            &origin,
            OpCode::CreateContainer,
            r.path,
            r.data,
            r.acl,
            r.flags,
            None,
        ),
        Request::CreateTtl(r) => create(
            state,
            &origin,
            OpCode::CreateTtl,
            r.path,
            r.data,
            r.acl,
            r.flags,
            Some(r.ttl),
        ),
        Request::Delete(r) => write(
            state,
            &origin,
            Txn::Delete {
                path: r.path,
                version: r.version,
            },
        )
        .map(|_| Response::Empty),
        Request::SetData(r) => write(
            state,
            &origin,
            Txn::SetData {
                path: r.path,
                data: r.data,
                version: r.version,
            },
        )
        .and_then(done_stat),
        Request::SetAcl(r) => write(
            state,
            &origin,
            Txn::SetAcl {
                path: r.path,
                acl: r.acl,
                version: r.version,
            },
        )
        .and_then(done_stat),
        Request::Check(r) => write(
            state,
            &origin,
            Txn::Check {
                path: r.path,
                version: r.version,
            },
        )
        .and_then(done_stat),
        Request::Multi(ops) => multi(state, &origin, ops),
        Request::MultiRead(ops) => multi_read(state, caller, &origin, ops),
        Request::Exists(r) => exists(state, caller, &r.path, r.watch),
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
        // One member: everything committed is already applied.
        Request::Sync(r) => Ok(Response::Sync(SyncResponse { path: r.path })),
        Request::Reconfig(_) => Err(ErrorCode::ReconfigDisabled),
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
    finish(state, xid, reply, close)
}

fn finish(state: &State, xid: i32, reply: Reply, close: bool) -> Handled {
    let (err, body) = match reply {
        Ok(body) => (0, body),
        Err(code) => (code.code(), Response::Empty),
    };
    let header = ReplyHeader {
        xid,
        zxid: state.tree.last_zxid(),
        err,
    };
    Handled {
        frame: encode_reply(&header, &body),
        close,
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

fn write(state: &mut State, origin: &Origin, txn: Txn) -> Result<Done, ErrorCode> {
    match state.commit(origin, &txn).1.outcome {
        Outcome::Done(done) => Ok(done),
        other => Err(other.code()),
    }
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

#[allow(clippy::too_many_arguments)]
fn create(
    state: &mut State,
    origin: &Origin,
    op: OpCode,
    path: String,
    data: Option<Vec<u8>>,
    acl: Vec<crate::protocol::Acl>,
    flags: i32,
    ttl: Option<i64>,
) -> Reply {
    match write(state, origin, create_txn(op, path, data, acl, flags, ttl))? {
        Done::Created { path, .. } if op == OpCode::Create => {
            Ok(Response::Create(CreateResponse { path }))
        }
        Done::Created { path, stat } => Ok(Response::Create2(Create2Response { path, stat })),
        _ => Err(ErrorCode::SystemError),
    }
}

fn multi(state: &mut State, origin: &Origin, ops: Vec<MultiOp>) -> Reply {
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
    let results = match state.commit(origin, &Txn::Multi(txns)).1.outcome {
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

fn exists(state: &mut State, caller: &Caller, p: &str, watch: bool) -> Reply {
    valid_path(p)?;
    if watch {
        state.watches.add_data_watch(p, caller.conn);
    }
    state
        .tree
        .stat(p)
        .map(Response::Stat)
        .ok_or(ErrorCode::NoNode)
}

fn get_data(
    state: &mut State,
    caller: &Caller,
    origin: &Origin,
    p: &str,
    watch: bool,
) -> Result<(Option<Vec<u8>>, Stat), ErrorCode> {
    let node = readable(state, origin, p)?;
    let found = (node.data.clone(), node.stat());
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

/// getACL needs READ or ADMIN (ZOOKEEPER-1392).
fn get_acl(state: &State, origin: &Origin, p: &str) -> Reply {
    valid_path(p)?;
    let node = state.tree.node(p).ok_or(ErrorCode::NoNode)?;
    if !acl::allows(&node.acl, perms::READ | perms::ADMIN, &origin.auth) {
        return Err(ErrorCode::NoAuth);
    }
    Ok(Response::GetAcl(GetAclResponse {
        acl: node.acl.clone(),
        stat: node.stat(),
    }))
}

fn set_watches(state: &mut State, caller: &Caller, request: SetWatches2) {
    let State { tree, watches, .. } = state;
    let fired = watches.set_watches(tree, &request, caller.conn);
    for notification in fired {
        state.notify(notification);
    }
}
