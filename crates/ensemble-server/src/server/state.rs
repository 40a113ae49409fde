//! The member's shared state: data tree, watch table, session table, the live
//! connections' outboxes and reply queues, and the writes this member proposed and
//! waits to see applied, behind one mutex held only for synchronous work.
//!
//! Contract:
//! - A write is *proposed* ([`State::propose`]): it becomes a [`Command`] tagged with
//!   this member's id and a sequence number and goes to consensus, which orders it
//!   in the replicated log. Consensus applies committed entries on every member in
//!   log order ([`State::apply_entry`], called by [`super::replica`]); the log index
//!   is the zxid. The tree therefore only ever holds committed transactions, and
//!   every reader, of any session on any member, sees only those.
//! - Applying queues the transaction's watch notifications on the watchers'
//!   outboxes; on the member that proposed it, it then fills the proposer's reply
//!   slot, found by the command's tag.
//! - Each connection has a queue of reply slots in request order: a write's (or a
//!   sync's) slot waits until it is applied; a read that arrives behind a waiting
//!   slot is deferred and executed when everything ahead of it is done, so it sees
//!   the session's own earlier writes (ZooKeeper's FIFO client order); ready
//!   replies leave only from the head of the queue, so replies go out strictly in
//!   request order and every notification precedes any later reply on its
//!   connection.
//! - Generations (see [`crate::consensus`]): a connection's writes all carry the
//!   generation current when it last had nothing waiting. A proposal refused as
//!   stale, or a generation change while a connection waits for a write, closes
//!   that connection: its client sees ConnectionLoss, reconnects and keeps its
//!   session, and no later write of it can overtake a lost earlier one.
//! - The tree's digest is logged every [`DIGEST_LOG_INTERVAL`] zxids, the last
//!   [`DIGEST_LOG_LIMIT`] kept ([`State::digest_log`], the `hash` word), as
//!   ZooKeeper's `DataTree` does: members that applied the same log show the same
//!   digest at the same zxid. Each session tick a member that is not the leader
//!   reports its newest logged digest, if new, to the leader, which compares it with
//!   its own at that zxid ([`State::compare_digest`]): a difference means that
//!   member's tree diverged; it is logged as an error and counted
//!   (`digest_mismatches_count` in `mntr`, as in ZooKeeper).
//! - Sessions: their creation and closing are log entries, so every member knows
//!   every session; only the leader expires them, from the liveness the members
//!   report ([`State::alive_sessions`], [`State::touch_sessions`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedSender;

use crate::config::ServerConfig;
use crate::consensus::{Consensus, Role};
use crate::protocol::{
    encode_reply, xid, KeeperState, ReplyHeader, Request, Response, WatcherEvent,
};
use crate::session::SessionTable;
use crate::tree::snapshot::{restore, snapshot, Progress, SnapshotError};
use crate::tree::{DataTree, Done, Origin, Outcome, Txn, TxnResult};
use crate::watches::{Notification, WatchManager};

use super::handler::{drain, Caller};
use super::replica::Command;

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
    /// A proposed write or a sync, not applied yet; the number names it.
    Awaiting(u64),
    Ready(Ready),
    Deferred(Deferred),
}

/// The tree's digest is logged at every zxid divisible by this
/// (`DataTree.DIGEST_LOG_INTERVAL`).
pub(crate) const DIGEST_LOG_INTERVAL: i64 = 128;
/// Digests logged and kept (`DataTree.DIGEST_LOG_LIMIT`).
pub(crate) const DIGEST_LOG_LIMIT: usize = 1024;

/// A write this member proposed, waiting to be applied.
struct Pending {
    conn: ConnId,
    slot: u64,
    generation: u64,
    finish: Finish,
}

/// A reply waiting for the member to apply an index (the leader's commit index).
struct IndexWaiter {
    conn: ConnId,
    slot: u64,
    build: Build,
}

/// Work that waits on consensus outside the state lock, answered in its slot.
pub(crate) struct Background {
    pub conn: ConnId,
    pub slot: u64,
    pub xid: i32,
    pub work: Work,
}

pub(crate) enum Work {
    /// A sync of `path`: answered once the leader's commit index is applied here.
    Sync(String),
    /// A reconfig: these membership changes, then the new configuration.
    Reconfig(Vec<super::reconfig::Change>),
}

/// Builds a waiting reply once the index it waited for is applied.
pub(crate) type Build = Box<dyn FnOnce(&State) -> Ready + Send>;

/// See the module contract.
pub(crate) struct State {
    pub tree: DataTree,
    pub watches: WatchManager<ConnId>,
    pub sessions: SessionTable,
    pub super_digest: Option<String>,
    my_id: u64,
    consensus: Option<Consensus>,
    outboxes: HashMap<ConnId, UnboundedSender<Outbound>>,
    queues: HashMap<ConnId, VecDeque<Slot>>,
    /// The generation each connection's writes carry.
    generations: HashMap<ConnId, u64>,
    /// The connection each session is currently attached to.
    session_conns: HashMap<i64, ConnId>,
    /// This member's proposals not applied yet, by sequence number.
    pending: HashMap<u64, Pending>,
    next_seq: u64,
    next_slot: u64,
    /// Replies by the index they wait for.
    waiting: BTreeMap<i64, Vec<IndexWaiter>>,
    /// Where syncs and reconfigs go to wait on consensus.
    background: Option<UnboundedSender<Background>>,
    /// Connections with a reconfig under way, which this member leaving does not
    /// close before it answers (see [`State::close_connections_leaving`]).
    reconfiguring: std::collections::HashSet<ConnId>,
    /// `reconfigEnabled`.
    pub reconfig_enabled: bool,
    /// The client address this member listens on, once bound (the config may say
    /// port 0): for `conf` and `/zookeeper/config`.
    pub client_address: Option<std::net::SocketAddr>,
    /// Whether this member led at the last session tick.
    leading: bool,
    /// Sessions with a sign of life since the last report to the leader.
    touched: std::collections::HashSet<i64>,
    started: Instant,
    /// The rest of a snapshot under way that a restore completed early, for its
    /// writer.
    snapshot_taken: Option<Vec<u8>>,
    /// (zxid, the tree's digest after it), oldest first; see the module contract.
    digest_log: VecDeque<(i64, i64)>,
    /// The zxid of the last digest reported to the leader.
    digest_reported: i64,
    /// Members' digests found to differ from this member's, as leader.
    pub digest_mismatches: u64,
}

/// Wall-clock milliseconds, for ctime/mtime and session id seeding.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl State {
    /// An empty member; consensus restores and replays into it.
    pub fn new(config: &ServerConfig, tree: DataTree) -> Self {
        let sessions = SessionTable::new(
            u8::try_from(config.my_id).unwrap_or(u8::MAX),
            wall_ms(),
            &[],
            config.min_session_timeout_ms,
            config.max_session_timeout_ms,
        );
        Self {
            tree,
            watches: WatchManager::new(),
            sessions,
            super_digest: config.super_digest.clone(),
            my_id: config.my_id,
            consensus: None,
            outboxes: HashMap::new(),
            queues: HashMap::new(),
            generations: HashMap::new(),
            session_conns: HashMap::new(),
            pending: HashMap::new(),
            next_seq: 1,
            next_slot: 1,
            waiting: BTreeMap::new(),
            background: None,
            reconfiguring: std::collections::HashSet::new(),
            reconfig_enabled: config.reconfig_enabled,
            client_address: None,
            leading: false,
            touched: std::collections::HashSet::new(),
            started: Instant::now(),
            snapshot_taken: None,
            digest_log: VecDeque::new(),
            digest_reported: 0,
            digest_mismatches: 0,
        }
    }

    /// Connects the state to consensus once it is open (proposals need it), and to
    /// the task that waits on it for syncs and reconfigs.
    pub fn set_consensus(&mut self, consensus: Consensus, background: UnboundedSender<Background>) {
        self.consensus = Some(consensus);
        self.background = Some(background);
    }

    pub fn my_id(&self) -> u64 {
        self.my_id
    }

    pub fn consensus(&self) -> Option<&Consensus> {
        self.consensus.as_ref()
    }

    /// Monotonic milliseconds since start: the session table's clock.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    // ---- the write path ----

    /// Orders a write; its reply (if `reply` names a connection) goes out once it
    /// is committed and applied here. See the module contract.
    pub fn propose(&mut self, origin: Origin, txn: Txn, reply: Option<(ConnId, Finish)>) {
        let Some(consensus) = self.consensus.clone() else {
            if let Some((conn, _)) = reply {
                self.send(conn, Outbound::Close);
            }
            return;
        };
        let generation = match &reply {
            Some((conn, _)) => self.connection_generation(*conn, &consensus),
            None => consensus.generation(),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let command = Command {
            member: self.my_id,
            seq,
            time_ms: wall_ms(),
            origin,
            txn,
        };
        match consensus.propose(generation, command.encode()) {
            Ok(()) => {
                if let Some((conn, finish)) = reply {
                    if let Some(slot) = self.await_slot(conn) {
                        self.pending.insert(
                            seq,
                            Pending {
                                conn,
                                slot,
                                generation,
                                finish,
                            },
                        );
                    }
                }
            }
            Err(stale) => {
                tracing::debug!(%stale, "write refused; closing its connection");
                if let Some((conn, _)) = reply {
                    self.send(conn, Outbound::Close);
                }
            }
        }
    }

    /// The generation `conn`'s next write carries: the current one if nothing of
    /// it waits, else the one its waiting writes carry.
    fn connection_generation(&mut self, conn: ConnId, consensus: &Consensus) -> u64 {
        let waiting = self
            .queues
            .get(&conn)
            .is_some_and(|q| q.iter().any(|s| matches!(s, Slot::Awaiting(_))));
        if !waiting {
            self.generations.insert(conn, consensus.generation());
        }
        self.generations
            .get(&conn)
            .copied()
            .unwrap_or_else(|| consensus.generation())
    }

    /// Closes the connections whose writes from before `generation` may be lost.
    pub fn generation_changed(&mut self, generation: u64) {
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.generation < generation)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in lost {
            if let Some(pending) = self.pending.remove(&seq) {
                self.send(pending.conn, Outbound::Close);
            }
        }
    }

    /// Adds a waiting slot at the end of `conn`'s queue; `None` if it is gone.
    pub fn await_slot(&mut self, conn: ConnId) -> Option<u64> {
        let queue = self.queues.get_mut(&conn)?;
        let slot = self.next_slot;
        self.next_slot += 1;
        queue.push_back(Slot::Awaiting(slot));
        Some(slot)
    }

    /// Applies the committed log entry at `index` (its zxid): see the module
    /// contract. `command` is `None` for entries that carry no transaction.
    pub fn apply_entry(&mut self, index: u64, command: Option<&[u8]>) {
        let zxid = i64::try_from(index).unwrap_or(i64::MAX);
        let Some(bytes) = command else {
            self.tree.advance(zxid);
            self.log_digest(zxid);
            self.release_waiting();
            return;
        };
        let command = match Command::decode(bytes) {
            Ok(command) => command,
            Err(e) => {
                // Every member decodes the same bytes, so every member skips it.
                tracing::error!(index, error = %e, "undecodable command in the log; skipped");
                self.tree.advance(zxid);
                self.log_digest(zxid);
                self.release_waiting();
                return;
            }
        };
        let result = self
            .tree
            .apply(zxid, command.time_ms, &command.origin, &command.txn);
        self.log_digest(zxid);
        for event in &result.events {
            for notification in self.watches.trigger(event) {
                self.notify(notification, zxid);
            }
        }
        // The proposer's reply first: a closeSession's reply must precede the close
        // that its application sends.
        let txn = command.txn;
        let outcome = result.outcome.clone();
        if command.member == self.my_id {
            if let Some(pending) = self.pending.remove(&command.seq) {
                let ready = (pending.finish)(zxid, result);
                self.fill(pending.conn, pending.slot, ready);
                drain(self, pending.conn);
            }
        }
        self.after_apply(&txn, &outcome);
        self.release_waiting();
    }

    fn log_digest(&mut self, zxid: i64) {
        if zxid % DIGEST_LOG_INTERVAL == 0 {
            if self.digest_log.len() == DIGEST_LOG_LIMIT {
                self.digest_log.pop_front();
            }
            self.digest_log.push_back((zxid, self.tree.digest()));
        }
    }

    /// The digests logged, oldest first: (zxid, digest).
    pub fn digest_log(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.digest_log.iter().copied()
    }

    /// The newest digest logged, if it was not reported yet; it counts as reported.
    pub fn digest_to_report(&mut self) -> Option<(i64, i64)> {
        let newest = self.digest_log.back().copied()?;
        (newest.0 > self.digest_reported).then(|| {
            self.digest_reported = newest.0;
            newest
        })
    }

    /// Compares the digest member `from` logged at `zxid` with this member's; see
    /// the module contract. A zxid this member has not logged (not applied yet, or
    /// logged too long ago) is not compared.
    pub fn compare_digest(&mut self, from: u64, zxid: i64, digest: i64) {
        let Some(&(_, ours)) = self.digest_log.iter().find(|(z, _)| *z == zxid) else {
            return;
        };
        if ours != digest {
            self.digest_mismatches += 1;
            tracing::error!(
                member = from,
                zxid = format!("{zxid:#x}"),
                ours,
                theirs = digest,
                "the member's tree digest differs from this member's: its tree has diverged"
            );
        }
    }

    /// Keeps the session table in step with the replicated sessions.
    fn after_apply(&mut self, txn: &Txn, outcome: &Outcome) {
        let now = self.now_ms();
        match (txn, outcome) {
            (
                Txn::CreateSession {
                    session_id,
                    timeout_ms,
                },
                Outcome::Done(_),
            ) => self.sessions.restore(*session_id, *timeout_ms, now),
            (Txn::CloseSession { session_id }, _) => {
                self.sessions.close(*session_id);
                if let Some(conn) = self.session_conns.remove(session_id) {
                    // Its own closeSession's reply is queued; Close follows it.
                    self.send(conn, Outbound::Close);
                }
            }
            (Txn::SetSecret { .. }, Outcome::Done(Done::SecretSet)) => {
                if let Some(secret) = self.tree.secret() {
                    let secret = secret.to_vec();
                    self.sessions.set_secret(&secret);
                }
            }
            _ => {}
        }
    }

    /// The tree as of its last applied index, for a snapshot.
    pub fn snapshot(&self) -> (u64, Vec<u8>) {
        (
            u64::try_from(self.tree.last_zxid()).unwrap_or(0),
            snapshot(&self.tree),
        )
    }

    /// Begins a snapshot of the tree as of its last applied index, written a few
    /// nodes at a time by [`State::continue_snapshot`] while entries go on being
    /// applied; returns that index, or `None` if a snapshot is already under way.
    pub fn begin_snapshot(&mut self) -> Option<u64> {
        if self.tree.snapshot_under_way() || self.snapshot_taken.is_some() {
            return None;
        }
        Some(u64::try_from(self.tree.begin_snapshot()).unwrap_or(0))
    }

    /// Writes up to `nodes` more nodes of the snapshot begun, handing over the piece.
    pub fn continue_snapshot(&mut self, nodes: usize) -> Progress {
        match self.snapshot_taken.take() {
            Some(bytes) => Progress::Done(bytes),
            None => self.tree.continue_snapshot(nodes),
        }
    }

    /// Drops the snapshot begun, if any.
    pub fn cancel_snapshot(&mut self) {
        self.tree.cancel_snapshot();
        self.snapshot_taken = None;
    }

    /// Replaces the tree with a snapshot and rebuilds the session table from it. A
    /// snapshot of the old tree under way is completed first.
    pub fn restore(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
        let tree = restore(data, self.tree.options())?;
        if let Progress::Done(bytes) = self.tree.continue_snapshot(usize::MAX) {
            self.snapshot_taken = Some(bytes);
        }
        let now = self.now_ms();
        self.tree = tree;
        if let Some(secret) = self.tree.secret() {
            let secret = secret.to_vec();
            self.sessions.set_secret(&secret);
        }
        for id in self.sessions.ids() {
            if !self.tree.sessions().contains_key(&id) {
                self.sessions.close(id);
            }
        }
        let restored: Vec<(i64, i32)> =
            self.tree.sessions().iter().map(|(k, v)| (*k, *v)).collect();
        for (id, timeout_ms) in restored {
            self.sessions.restore(id, timeout_ms, now);
        }
        self.release_waiting();
        Ok(())
    }

    // ---- work waiting on consensus ----

    /// Queues work that waits on consensus; its reply takes a slot now.
    pub fn request_background(&mut self, conn: ConnId, xid: i32, work: Work) {
        let Some(slot) = self.await_slot(conn) else {
            return;
        };
        if matches!(work, Work::Reconfig(_)) {
            self.reconfiguring.insert(conn);
        }
        let sent = self.background.as_ref().is_some_and(|tx| {
            tx.send(Background {
                conn,
                slot,
                xid,
                work,
            })
            .is_ok()
        });
        if !sent {
            self.send(conn, Outbound::Close);
        }
    }

    /// Answers `conn`'s slot with `build`'s reply once the tree has applied `index`.
    pub fn complete_at(&mut self, index: i64, conn: ConnId, slot: u64, build: Build) {
        self.waiting
            .entry(index)
            .or_default()
            .push(IndexWaiter { conn, slot, build });
        self.release_waiting();
    }

    fn release_waiting(&mut self) {
        let applied = self.tree.last_zxid();
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for waiter in entry.remove() {
                let ready = (waiter.build)(self);
                self.fill(waiter.conn, waiter.slot, ready);
                drain(self, waiter.conn);
            }
        }
    }

    /// Fires the watches on `/zookeeper/config` (its data is the membership).
    pub fn membership_changed(&mut self, version: u64) {
        let event = crate::tree::WatchEvent::new(
            crate::protocol::EventType::NodeDataChanged,
            crate::tree::CONFIG_NODE,
        );
        for notification in self.watches.trigger(&event) {
            self.notify(notification, i64::try_from(version).unwrap_or(i64::MAX));
        }
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

    /// Puts a reply into `conn`'s waiting slot `slot`.
    pub fn fill(&mut self, conn: ConnId, slot: u64, ready: Ready) {
        if let Some(queue) = self.queues.get_mut(&conn) {
            if let Some(place) = queue
                .iter_mut()
                .find(|s| matches!(s, Slot::Awaiting(n) if *n == slot))
            {
                *place = Slot::Ready(ready);
            }
        }
    }

    /// Takes the head of `conn`'s queue if it is not waiting for a write.
    pub fn pop_unblocked(&mut self, conn: ConnId) -> Option<Slot> {
        let queue = self.queues.get_mut(&conn)?;
        match queue.front()? {
            Slot::Awaiting(_) => None,
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
        self.reconfiguring.remove(&conn);
        self.queues.remove(&conn);
        self.generations.remove(&conn);
        self.watches.remove_watcher(&conn);
        if let Some(id) = session_id {
            if self.session_conns.get(&id) == Some(&conn) {
                self.session_conns.remove(&id);
            }
        }
    }

    /// Closes every client connection (the member lost its leader).
    pub fn close_all_connections(&mut self) {
        for outbox in self.outboxes.values() {
            let _ = outbox.send(Outbound::Close);
        }
    }

    /// Closes the client connections of a member that a membership change removes,
    /// but for those waiting for a reconfig's answer (which may be the change itself):
    /// each closes once answered (see `handler::reconfig_reply`).
    pub fn close_connections_leaving(&mut self) {
        for (conn, outbox) in &self.outboxes {
            if !self.reconfiguring.contains(conn) {
                let _ = outbox.send(Outbound::Close);
            }
        }
    }

    /// Forgets that `conn` waits for a reconfig, once its answer is ready.
    pub fn background_done(&mut self, conn: ConnId) {
        self.reconfiguring.remove(&conn);
    }

    /// Whether this member is being removed from the membership, or is out of it.
    pub fn leaving(&self) -> bool {
        self.consensus.as_ref().is_some_and(|c| {
            let status = c.status();
            status.is_leaving() || status.role == Role::Outside
        })
    }

    /// Attaches a session to a connection, closing the one it was attached to.
    pub fn attach_session(&mut self, session_id: i64, conn: ConnId) {
        if let Some(previous) = self.session_conns.insert(session_id, conn) {
            if previous != conn {
                self.send(previous, Outbound::Close);
            }
        }
    }

    /// Ends a session through a CloseSession transaction; its ephemerals go with it.
    pub fn close_session(&mut self, session_id: i64, reply: Option<(ConnId, Finish)>) {
        self.propose(Origin::system(), Txn::CloseSession { session_id }, reply);
    }

    /// Notes that a session attached here showed a sign of life (a request, a
    /// ping, a reconnect): the leader hears of it at the next tick.
    pub fn touched(&mut self, session_id: i64) {
        self.touched.insert(session_id);
    }

    /// The sessions that showed a sign of life here since the last report: the
    /// liveness a member reports to the leader every tick. A client that keeps its
    /// connection open but sends nothing is not alive, as in ZooKeeper.
    pub fn alive_sessions(&mut self) -> Vec<i64> {
        self.touched.drain().collect()
    }

    /// On the leader: sessions another member reported alive.
    pub fn touch_sessions(&mut self, ids: &[i64]) {
        let now = self.now_ms();
        for id in ids {
            self.sessions.touch(*id, now);
        }
    }

    /// The session tick: the leader expires overdue sessions (after giving every
    /// session a full timeout when it has just become leader) and makes sure the
    /// ensemble has a secret; other members keep every session alive, since the
    /// leader decides.
    pub fn session_tick(&mut self, role: Role) {
        let now = self.now_ms();
        let leading = role == Role::Leader;
        if leading && !self.leading {
            self.sessions.refresh_all(now);
        }
        if leading {
            self.ensure_secret();
        }
        self.leading = leading;
        if !leading {
            // A session this member expired while it led, whose close never
            // committed, is still live: take it back.
            let live: Vec<(i64, i32)> = self
                .tree
                .sessions()
                .iter()
                .filter(|(id, _)| self.sessions.get(**id).is_none())
                .map(|(id, timeout)| (*id, *timeout))
                .collect();
            for (id, timeout_ms) in live {
                self.sessions.restore(id, timeout_ms, now);
            }
            self.sessions.refresh_all(now);
            return;
        }
        for txn in self.sessions.expire(now) {
            if let Txn::CloseSession { session_id } = txn {
                if let Some(conn) = self.session_conns.remove(&session_id) {
                    self.send(conn, Outbound::Close);
                }
            }
            self.propose(Origin::system(), txn, None);
        }
    }

    /// On the leader: proposes the ensemble's secret while none is applied (a lost
    /// proposal is simply made again; the first one applied wins).
    pub fn ensure_secret(&mut self) {
        if self.tree.secret().is_some() {
            return;
        }
        let secret: [u8; 32] = rand::random();
        self.propose(
            Origin::system(),
            Txn::SetSecret {
                secret: secret.to_vec(),
            },
            None,
        );
    }

    /// Deletes empty containers and expired TTL nodes (ZooKeeper's ContainerManager);
    /// the leader's job.
    pub fn clean_containers(&mut self, max_never_used_ms: i64) {
        if !self.leading {
            return;
        }
        for path in self.tree.expired_nodes(wall_ms(), max_never_used_ms) {
            self.propose(Origin::system(), Txn::DeleteContainer { path }, None);
        }
    }
}
