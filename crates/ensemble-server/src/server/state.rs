//! The member's shared state: data tree, watch table, session table and the live
//! connections' outboxes, behind one mutex held only for synchronous work.
//!
//! Contract: every write goes through [`State::commit`], which orders the
//! transaction (today a local counter supplies the zxid; with replication, the Raft
//! log index of the committed entry will) and then [`State::apply_committed`], which
//! applies it to the tree and queues its watch notifications on the watchers'
//! outboxes. Because a connection queues its own replies on the same outbox after
//! the call returns, every notification precedes any later reply on that
//! connection.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedSender;

use crate::config::ServerConfig;
use crate::protocol::{encode_reply, xid, KeeperState, ReplyHeader, Response, WatcherEvent};
use crate::session::SessionTable;
use crate::tree::{DataTree, Origin, TreeOptions, Txn, TxnResult};
use crate::watches::{Notification, WatchManager};

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

/// Supplies zxids. A counter while the member runs alone; the replication layer
/// will replace it with the index of the committed log entry.
#[derive(Debug, Default)]
struct LocalLog {
    last_zxid: i64,
}

impl LocalLog {
    fn append(&mut self) -> i64 {
        self.last_zxid += 1;
        self.last_zxid
    }
}

/// See the module contract.
pub(crate) struct State {
    pub tree: DataTree,
    pub watches: WatchManager<ConnId>,
    pub sessions: SessionTable,
    outboxes: HashMap<ConnId, UnboundedSender<Outbound>>,
    /// The connection each session is currently attached to.
    session_conns: HashMap<i64, ConnId>,
    log: LocalLog,
    started: Instant,
}

/// Wall-clock milliseconds, for ctime/mtime and session id seeding.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl State {
    pub fn new(config: &ServerConfig) -> Self {
        Self {
            tree: DataTree::new(TreeOptions {
                ttl_enabled: config.extended_types_enabled,
            }),
            watches: WatchManager::new(),
            sessions: SessionTable::new(
                1,
                wall_ms(),
                config.min_session_timeout_ms,
                config.max_session_timeout_ms,
            ),
            outboxes: HashMap::new(),
            session_conns: HashMap::new(),
            log: LocalLog::default(),
            started: Instant::now(),
        }
    }

    /// Monotonic milliseconds since start: the session table's clock.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Orders and applies one write; returns its zxid and result.
    pub fn commit(&mut self, origin: &Origin, txn: &Txn) -> (i64, TxnResult) {
        let zxid = self.log.append();
        (zxid, self.apply_committed(zxid, wall_ms(), origin, txn))
    }

    /// Applies a transaction already ordered at `zxid` and queues its notifications.
    pub fn apply_committed(
        &mut self,
        zxid: i64,
        time_ms: i64,
        origin: &Origin,
        txn: &Txn,
    ) -> TxnResult {
        let result = self.tree.apply(zxid, time_ms, origin, txn);
        for event in &result.events {
            for notification in self.watches.trigger(event) {
                self.notify(notification);
            }
        }
        result
    }

    /// Queues a watch notification (xid -1) on its watcher's outbox.
    pub fn notify(&self, notification: Notification<ConnId>) {
        let frame = encode_reply(
            &ReplyHeader {
                xid: xid::NOTIFICATION,
                zxid: -1,
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
    }

    /// Forgets a connection and its watches; its session lives on until it expires
    /// or a client resumes it.
    pub fn unregister_connection(&mut self, conn: ConnId, session_id: Option<i64>) {
        self.outboxes.remove(&conn);
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

    /// Ends a session: its ephemerals go through a CloseSession transaction.
    pub fn close_session(&mut self, session_id: i64) -> i64 {
        self.sessions.close(session_id);
        self.session_conns.remove(&session_id);
        let (zxid, _) = self.commit(&Origin::system(), &Txn::CloseSession { session_id });
        zxid
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
            self.commit(&Origin::system(), &txn);
        }
    }

    /// Closes every session (graceful shutdown).
    pub fn close_all_sessions(&mut self) {
        for session_id in self.sessions.ids() {
            self.close_session(session_id);
        }
    }
}
