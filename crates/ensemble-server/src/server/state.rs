//! The member's shared state: data tree, watch table, session table, the live
//! connections' outboxes and reply queues, and the writes waiting to be logged,
//! behind one mutex held only for synchronous work.
//!
//! Contract:
//! - A write is *proposed* ([`State::propose`]): it gets the next zxid and waits in
//!   [`State::take_proposed`]'s batch for the commit loop ([`super::commit`]), which
//!   makes it durable and then calls [`State::apply_committed`]. The tree therefore
//!   only ever holds durable transactions, and every reader, of any session, sees
//!   only those. (With replication, the Raft log will take the local log's place.)
//! - Applying queues the transaction's watch notifications on the watchers'
//!   outboxes, then fills the proposer's reply slot.
//! - Each connection has a queue of reply slots in request order: a write's slot
//!   waits until it is applied; a read that arrives behind a waiting write is
//!   deferred and executed when everything ahead of it is done, so it sees the
//!   session's own earlier writes (ZooKeeper's FIFO client order); ready replies
//!   leave only from the head of the queue, so replies go out strictly in request
//!   order and every notification precedes any later reply on its connection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedSender;

use crate::config::ServerConfig;
use crate::protocol::{
    encode_reply, xid, KeeperState, ReplyHeader, Request, Response, WatcherEvent,
};
use crate::session::SessionTable;
use crate::storage::Entry;
use crate::tree::{DataTree, Origin, Txn, TxnResult};
use crate::watches::{Notification, WatchManager};

use super::handler::Caller;

/// Identifies one client connection (and its watches).
pub(crate) type ConnId = u64;

/// What a connection task is asked to send.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A complete, length-prefixed frame.
    Frame(Vec<u8>),
    /// Flush what came before, then close the connection.
    Close,
}

/// A reply ready to go out, and whether the connection closes after it.
#[derive(Debug)]
pub(crate) struct Ready {
    pub frame: Vec<u8>,
    pub close: bool,
}

/// Builds a proposed write's reply from its zxid and result, once it is applied.
pub(crate) type Finish = Box<dyn FnOnce(i64, TxnResult) -> Ready + Send>;

/// A request waiting behind earlier writes of its connection.
pub(crate) struct Deferred {
    pub caller: Caller,
    pub xid: i32,
    pub request: Request,
}

/// One place in a connection's reply order.
pub(crate) enum Slot {
    /// A proposed write, not applied yet.
    Awaiting,
    Ready(Ready),
    Deferred(Deferred),
}

/// A write waiting to be logged and applied.
pub(crate) struct Proposal {
    pub entry: Entry,
    /// The connection waiting for the reply, and how to build it.
    pub reply: Option<(ConnId, Finish)>,
}

/// See the module contract.
pub(crate) struct State {
    pub tree: DataTree,
    pub watches: WatchManager<ConnId>,
    pub sessions: SessionTable,
    pub super_digest: Option<String>,
    outboxes: HashMap<ConnId, UnboundedSender<Outbound>>,
    queues: HashMap<ConnId, VecDeque<Slot>>,
    /// The connection each session is currently attached to.
    session_conns: HashMap<i64, ConnId>,
    next_zxid: i64,
    proposed: Vec<Proposal>,
    /// Wakes the commit loop when something is proposed or the member stops.
    wake: Arc<Condvar>,
    stopping: bool,
    started: Instant,
}

/// Wall-clock milliseconds, for ctime/mtime and session id seeding.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl State {
    /// State around a recovered `tree`; its sessions get a full timeout to return.
    pub fn new(config: &ServerConfig, tree: DataTree, secret: &[u8], wake: Arc<Condvar>) -> Self {
        let mut sessions = SessionTable::new(
            1,
            wall_ms(),
            secret,
            config.min_session_timeout_ms,
            config.max_session_timeout_ms,
        );
        let started = Instant::now();
        for (&id, &timeout_ms) in tree.sessions() {
            sessions.restore(id, timeout_ms, 0);
        }
        Self {
            next_zxid: tree.last_zxid() + 1,
            tree,
            watches: WatchManager::new(),
            sessions,
            super_digest: config.super_digest.clone(),
            outboxes: HashMap::new(),
            queues: HashMap::new(),
            session_conns: HashMap::new(),
            proposed: Vec::new(),
            wake,
            stopping: false,
            started,
        }
    }

    /// Monotonic milliseconds since start: the session table's clock.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    // ---- the write path ----

    /// Orders a write; its reply (if `reply` names a connection) goes out once it
    /// is durable and applied. See the module contract.
    pub fn propose(&mut self, origin: Origin, txn: Txn, reply: Option<(ConnId, Finish)>) {
        let zxid = self.next_zxid;
        self.next_zxid += 1;
        if let Some((conn, _)) = &reply {
            if let Some(queue) = self.queues.get_mut(conn) {
                queue.push_back(Slot::Awaiting);
            }
        }
        self.proposed.push(Proposal {
            entry: Entry {
                zxid,
                time_ms: wall_ms(),
                origin,
                txn,
            },
            reply,
        });
        self.wake.notify_one();
    }

    /// The proposals not yet handed to the commit loop, in zxid order.
    pub fn take_proposed(&mut self) -> Vec<Proposal> {
        std::mem::take(&mut self.proposed)
    }

    pub fn has_proposed(&self) -> bool {
        !self.proposed.is_empty()
    }

    /// Applies a durable transaction and queues its notifications; returns its
    /// result. The caller fills the proposer's reply slot.
    pub fn apply_committed(&mut self, entry: &Entry) -> TxnResult {
        let result = self
            .tree
            .apply(entry.zxid, entry.time_ms, &entry.origin, &entry.txn);
        for event in &result.events {
            for notification in self.watches.trigger(event) {
                self.notify(notification, entry.zxid);
            }
        }
        result
    }

    /// Asks the commit loop to finish what is proposed and stop.
    pub fn stop(&mut self) {
        self.stopping = true;
        self.wake.notify_all();
    }

    pub fn stopping(&self) -> bool {
        self.stopping
    }

    // ---- reply order ----

    /// Whether `conn` has replies or requests waiting; a read must then wait too.
    pub fn is_busy(&self, conn: ConnId) -> bool {
        self.queues.get(&conn).is_some_and(|q| !q.is_empty())
    }

    /// Queues a request behind `conn`'s waiting writes.
    pub fn defer(&mut self, conn: ConnId, deferred: Deferred) {
        if let Some(queue) = self.queues.get_mut(&conn) {
            queue.push_back(Slot::Deferred(deferred));
        }
    }

    /// Sends `ready` now if nothing is waiting ahead of it, else queues it.
    pub fn respond(&mut self, conn: ConnId, ready: Ready) {
        match self.queues.get_mut(&conn) {
            Some(queue) if !queue.is_empty() => queue.push_back(Slot::Ready(ready)),
            _ => self.send_ready(conn, ready),
        }
    }

    /// Puts an applied write's reply into the first waiting slot of `conn`.
    pub fn fill(&mut self, conn: ConnId, ready: Ready) {
        if let Some(queue) = self.queues.get_mut(&conn) {
            if let Some(slot) = queue.iter_mut().find(|s| matches!(s, Slot::Awaiting)) {
                *slot = Slot::Ready(ready);
            }
        }
    }

    /// Takes the head of `conn`'s queue if it is not waiting for a write.
    pub fn pop_unblocked(&mut self, conn: ConnId) -> Option<Slot> {
        let queue = self.queues.get_mut(&conn)?;
        match queue.front()? {
            Slot::Awaiting => None,
            _ => queue.pop_front(),
        }
    }

    pub fn send_ready(&mut self, conn: ConnId, ready: Ready) {
        self.send(conn, Outbound::Frame(ready.frame));
        if ready.close {
            self.send(conn, Outbound::Close);
            if let Some(queue) = self.queues.get_mut(&conn) {
                queue.clear();
            }
        }
    }

    // ---- connections and sessions ----

    /// Queues a watch notification (xid -1) on its watcher's outbox; `zxid` is the
    /// transaction that fired it, which clients see as the event's zxid.
    pub fn notify(&self, notification: Notification<ConnId>, zxid: i64) {
        let frame = encode_reply(
            &ReplyHeader {
                xid: xid::NOTIFICATION,
                zxid,
                err: 0,
            },
            &Response::Event(WatcherEvent {
                event_type: notification.event_type.code(),
                state: KeeperState::SyncConnected.code(),
                path: notification.path,
            }),
        );
        self.send(notification.watcher, Outbound::Frame(frame));
    }

    pub fn send(&self, conn: ConnId, message: Outbound) {
        if let Some(outbox) = self.outboxes.get(&conn) {
            // A closed outbox means the connection is going away; nothing to do.
            let _ = outbox.send(message);
        }
    }

    pub fn connection_count(&self) -> usize {
        self.outboxes.len()
    }

    pub fn register_connection(&mut self, conn: ConnId, outbox: UnboundedSender<Outbound>) {
        self.outboxes.insert(conn, outbox);
        self.queues.insert(conn, VecDeque::new());
    }

    /// Forgets a connection, its queue and its watches; its session lives on until
    /// it expires or a client resumes it.
    pub fn unregister_connection(&mut self, conn: ConnId, session_id: Option<i64>) {
        self.outboxes.remove(&conn);
        self.queues.remove(&conn);
        self.watches.remove_watcher(&conn);
        if let Some(id) = session_id {
            if self.session_conns.get(&id) == Some(&conn) {
                self.session_conns.remove(&id);
            }
        }
    }

    /// Attaches a session to a connection, closing the one it was attached to.
    pub fn attach_session(&mut self, session_id: i64, conn: ConnId) {
        if let Some(previous) = self.session_conns.insert(session_id, conn) {
            if previous != conn {
                self.send(previous, Outbound::Close);
            }
        }
    }

    /// Ends a session: it is gone from the table at once, and its ephemerals go
    /// through a CloseSession transaction.
    pub fn close_session(&mut self, session_id: i64, reply: Option<(ConnId, Finish)>) {
        self.sessions.close(session_id);
        self.session_conns.remove(&session_id);
        self.propose(Origin::system(), Txn::CloseSession { session_id }, reply);
    }

    /// Expires overdue sessions and closes their connections.
    pub fn expire_sessions(&mut self) {
        let now = self.now_ms();
        for txn in self.sessions.expire(now) {
            if let Txn::CloseSession { session_id } = txn {
                if let Some(conn) = self.session_conns.remove(&session_id) {
                    self.send(conn, Outbound::Close);
                }
            }
            self.propose(Origin::system(), txn, None);
        }
    }

    /// Deletes empty containers and expired TTL nodes (ZooKeeper's ContainerManager).
    pub fn clean_containers(&mut self, max_never_used_ms: i64) {
        for path in self.tree.expired_nodes(wall_ms(), max_never_used_ms) {
            self.propose(Origin::system(), Txn::DeleteContainer { path }, None);
        }
    }
}
