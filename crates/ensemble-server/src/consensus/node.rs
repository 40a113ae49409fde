//! One running member: openraft plus everything the facade adds around it.
//!
//! Contract:
//! - **Status watcher.** A task follows openraft's metrics (and ticks every
//!   heartbeat) to publish [`Status`] and to run *check-quorum*: a leader whose last
//!   quorum acknowledgement is older than two maximum election timeouts reports no
//!   leader and refuses proposals (openraft's own lease refuses new writes after one),
//!   until a quorum answers again. Symmetrically, a follower or learner that has
//!   heard nothing from its leader for as long reports no leader, until the leader
//!   (or a new one) is heard again: pre-vote keeps a cut-off member's term and its
//!   vote, so openraft goes on naming the leader it can no longer hear, and a voter
//!   removed before it received the change never hears from a leader again.
//!   Heard means an append (or heartbeat) accepted, or one refused only for a log
//!   conflict, or a snapshot chunk.
//! - **Proposal path.** At most one path to the leader exists, owned by
//!   [`Proposer`] under one lock with the generation. A path is a queue and a task
//!   that sends its commands, pipelined and in order, on one connection to the
//!   leader (or into the local Raft when this member leads) and watches each one's
//!   fate. When the effective leader or term changes, or a command fails, the path
//!   is dropped with its queue and the generation increments; a fresh path is made
//!   for the next proposals. A connection that closed with no command in flight lost
//!   nothing: the path dials the leader again and goes on.
//! - **Member requests** (read index, membership changes, leader messages) run on
//!   the leader; the facade forwards them there from any member.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, FuturesOrdered};
use futures_util::{FutureExt, StreamExt};
use openraft::async_runtime::watch::WatchReceiver as _;
use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::impls::ProgressResponder;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, StreamAppendError, VoteRequest};
use openraft::vote::RaftLeaderId as _;
use openraft::{BasicNode, ChangeMembers, Instant as _, ReadPolicy, ServerState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::log_store::LogStore;
use super::transfer::{Assembly, Chunk, Taken};
use super::transport::{
    Change, Connection, Peers, Request, Response, Service, WireError, RECONNECT_BACKOFF,
};
use super::types::{membership_view, Command, LogId, Raft, Snapshot, StoredMembership, Vote};
use super::{ConsensusError, MemberId, Membership, Options, Role, StateMachine, Status};

/// How long a forwarded request waits for the leader.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Check-quorum: a leader whose last quorum acknowledgement is older than this many
/// maximum election timeouts reports no leader. One was too few: a follower answers
/// heartbeats only after the append ahead of them, and an append of tens of MiB on a
/// starved machine took longer, so the leader let go of its clients for nothing
/// (openraft's own lease still refuses new writes after one election timeout).
const QUORUM_WINDOW_TIMEOUTS: u32 = 2;
/// How long a leader whose connection closed has to accept a new one before it counts
/// as gone.
const LEADER_PROBE_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a follower that saw its leader go waits for the others' pre-votes.
const PRE_VOTE_TIMEOUT: Duration = Duration::from_millis(200);

pub(crate) struct Node {
    pub(crate) id: MemberId,
    pub(crate) options: Options,
    pub(crate) raft: Raft,
    pub(crate) log: LogStore,
    /// Shares its state with the store openraft owns; closed when the member stops.
    pub(crate) snapshots: super::state_machine::StateMachineStore,
    pub(crate) peers: Arc<Peers>,
    pub(crate) machine: Arc<dyn StateMachine>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) generation: watch::Sender<u64>,
    pub(crate) proposer: Mutex<Proposer>,
    pub(crate) change_lock: tokio::sync::Mutex<()>,
    /// The leader this member saw go away, and its term; see [`Node::leader_went_away`].
    pub(crate) leader_gone: Mutex<Option<(MemberId, u64)>>,
    /// Fast-path pre-votes granted, and the term this member stood for; see
    /// [`Node::stand_unless_another_does`].
    pub(crate) fast_path: Mutex<FastPath>,
    /// When this member last heard from a leader; see [`Node::heard_from_leader`].
    pub(crate) leader_heard: Mutex<Option<tokio::time::Instant>>,
    /// The snapshot a leader is sending this member, chunk by chunk.
    pub(crate) incoming_snapshot: Mutex<Assembly>,
    pub(crate) stop: CancellationToken,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What the fast path of an election (see the module contract of `consensus`) has
/// done in this member, under one lock.
#[derive(Default)]
pub(crate) struct FastPath {
    /// The lowest-numbered member this one granted a fast-path pre-vote to, and the
    /// term it asked for (the newest term kept).
    granted: Option<(MemberId, u64)>,
    /// The term this member decided to stand for; a pre-vote for that term (or an
    /// earlier one) is no longer granted.
    stood_for: u64,
}

/// The generation and the current path to the leader, under one lock.
#[derive(Default)]
pub(crate) struct Proposer {
    pub(crate) generation: u64,
    next_path: u64,
    path: Option<ProposalPath>,
}

impl Proposer {
    /// Drops the path and its queue for good (shutdown).
    pub(crate) fn close(&mut self) {
        if let Some(path) = self.path.take() {
            path.task.abort();
        }
    }
}

struct ProposalPath {
    seq: u64,
    leader: MemberId,
    term: u64,
    queue: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<()>,
}

fn wire(e: &ConsensusError) -> WireError {
    match e {
        ConsensusError::NoLeader => WireError::NotLeader,
        ConsensusError::UnknownMember(id) => WireError::UnknownMember(*id),
        ConsensusError::AlreadyMember(id) => WireError::AlreadyMember(*id),
        ConsensusError::NotCaughtUp { id, lag } => WireError::NotCaughtUp { id: *id, lag: *lag },
        ConsensusError::ChangeInProgress => WireError::ChangeInProgress,
        ConsensusError::LastVoter(id) => WireError::LastVoter(*id),
        ConsensusError::Timeout => WireError::Timeout,
        ConsensusError::Stopped => WireError::Stopped,
        other => WireError::Other(other.to_string()),
    }
}

pub(crate) fn unwire(e: WireError) -> ConsensusError {
    match e {
        WireError::NotLeader => ConsensusError::NoLeader,
        WireError::UnknownMember(id) => ConsensusError::UnknownMember(id),
        WireError::AlreadyMember(id) => ConsensusError::AlreadyMember(id),
        WireError::NotCaughtUp { id, lag } => ConsensusError::NotCaughtUp { id, lag },
        WireError::ChangeInProgress => ConsensusError::ChangeInProgress,
        WireError::LastVoter(id) => ConsensusError::LastVoter(id),
        WireError::Timeout => ConsensusError::Timeout,
        WireError::Stopped => ConsensusError::Stopped,
        WireError::Other(reason) => ConsensusError::Other(reason),
    }
}

/// The membership a membership entry just written sets.
fn membership_written(written: openraft::raft::ClientWriteResponse<super::types::C>) -> Membership {
    let membership = written.membership.unwrap_or_default();
    membership_view(&StoredMembership::new(Some(written.log_id), membership))
}

fn write_error(e: RaftError<super::types::C, ClientWriteError<super::types::C>>) -> ConsensusError {
    match e {
        RaftError::Fatal(_) => ConsensusError::Stopped,
        RaftError::APIError(ClientWriteError::ForwardToLeader(_))
        | RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => ConsensusError::NoLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => ConsensusError::ChangeInProgress,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::LearnerNotFound(e),
        )) => ConsensusError::UnknownMember(e.node_id),
        RaftError::APIError(other) => ConsensusError::Other(other.to_string()),
    }
}

impl Node {
    fn lock_proposer(&self) -> std::sync::MutexGuard<'_, Proposer> {
        self.proposer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `command` on the current path; see the module contract.
    pub(crate) fn propose(
        self: &Arc<Self>,
        generation: u64,
        command: Vec<u8>,
    ) -> Result<(), super::Stale> {
        let proposer = self.lock_proposer();
        let stale = super::Stale {
            proposed: generation,
            current: proposer.generation,
        };
        if generation != proposer.generation {
            return Err(stale);
        }
        match &proposer.path {
            Some(path) if path.queue.send(command).is_ok() => Ok(()),
            _ => Err(stale),
        }
    }

    /// Replaces the path when the effective leader or term changed.
    fn follow_leader(self: &Arc<Self>, leader: Option<(MemberId, u64)>) {
        let mut proposer = self.lock_proposer();
        let current = proposer.path.as_ref().map(|p| (p.leader, p.term));
        if current == leader {
            return;
        }
        if let Some(old) = proposer.path.take() {
            old.task.abort();
            proposer.generation += 1;
            self.generation.send_replace(proposer.generation);
        }
        if let Some((leader, term)) = leader {
            self.open_path(&mut proposer, leader, term);
        }
    }

    /// Called by a path whose command failed: a new generation and a fresh path.
    fn path_broke(self: &Arc<Self>, seq: u64) {
        let mut proposer = self.lock_proposer();
        let Some(path) = proposer.path.take_if(|p| p.seq == seq) else {
            return;
        };
        proposer.generation += 1;
        self.generation.send_replace(proposer.generation);
        tracing::info!(
            generation = proposer.generation,
            leader = path.leader,
            "the proposal path broke"
        );
        self.open_path(&mut proposer, path.leader, path.term);
    }

    fn open_path(self: &Arc<Self>, proposer: &mut Proposer, leader: MemberId, term: u64) {
        if self.stop.is_cancelled() {
            return;
        }
        proposer.next_path += 1;
        let seq = proposer.next_path;
        let (queue, rx) = mpsc::unbounded_channel();
        let node = Arc::downgrade(self);
        let task = tokio::spawn(run_path(node, seq, leader, rx));
        proposer.path = Some(ProposalPath {
            seq,
            leader,
            term,
            queue,
            task,
        });
    }

    /// Appends `command` to the local Raft log (this member must lead); the future
    /// resolves when it is applied, or failed. A member `from` that forwarded it waits
    /// to apply it too, so the commit is sent to it without delay.
    async fn propose_local(
        &self,
        from: Option<MemberId>,
        command: Vec<u8>,
    ) -> BoxFuture<'static, Response> {
        if !self.leads_acknowledged().await {
            return futures_util::future::ready(Response::Failed(WireError::NotLeader)).boxed();
        }
        let (responder, done) = ProgressResponder::complete_only();
        if self
            .raft
            .client_write_ff(Command(command), Some(responder))
            .await
            .is_err()
        {
            return futures_util::future::ready(Response::Failed(WireError::Stopped)).boxed();
        }
        let peers = self.peers.clone();
        async move {
            match done.await {
                Ok(Ok(written)) => {
                    if let Some(from) = from {
                        peers.want_commit(from, written.log_id.index);
                    }
                    Response::Done
                }
                _ => Response::Failed(WireError::NotLeader),
            }
        }
        .boxed()
    }

    /// A new leader reports no leader until a quorum first answered it; a proposal,
    /// read index or membership change arriving in that moment waits (at most an
    /// election timeout) rather than fail.
    async fn await_first_quorum(&self) -> bool {
        if self.status.borrow().role != Role::Leader {
            return false;
        }
        let mut status = self.status.subscribe();
        let id = self.id;
        let wait = status.wait_for(|s| s.role != Role::Leader || s.leader == Some(id));
        let led = matches!(
            tokio::time::timeout(self.options.election_timeout.1, wait).await,
            Ok(Ok(ref s)) if s.leader == Some(id)
        );
        led
    }

    /// Whether this member leads with a quorum behind it.
    pub(crate) fn leads(&self) -> bool {
        let status = self.status.borrow();
        status.role == Role::Leader && status.leader == Some(self.id)
    }

    /// [`Node::leads`], waiting out a new leader's first quorum.
    pub(crate) async fn leads_acknowledged(&self) -> bool {
        self.leads() || self.await_first_quorum().await
    }

    pub(crate) async fn read_index_local(&self) -> Result<u64, ConsensusError> {
        if !self.leads_acknowledged().await {
            return Err(ConsensusError::NoLeader);
        }
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read) => Ok(read.index()),
            Err(RaftError::Fatal(_)) => Err(ConsensusError::Stopped),
            Err(RaftError::APIError(_)) => Err(ConsensusError::NoLeader),
        }
    }

    /// Runs a membership change on this member, which must lead: the membership after
    /// it, once committed and applied here (none for a leadership transfer).
    pub(crate) async fn change_local(
        &self,
        change: Change,
    ) -> Result<Option<Membership>, ConsensusError> {
        if !self.leads_acknowledged().await {
            return Err(ConsensusError::NoLeader);
        }
        let _one_at_a_time = self
            .change_lock
            .try_lock()
            .map_err(|_| ConsensusError::ChangeInProgress)?;
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.membership_config.log_id() != metrics.committed_membership_config.log_id() {
            return Err(ConsensusError::ChangeInProgress);
        }
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        let known = |id: MemberId| membership.get_node(&id).is_some();
        match change {
            Change::AddLearner(id, address) => {
                if known(id) {
                    return Err(ConsensusError::AlreadyMember(id));
                }
                let written = self
                    .raft
                    .add_learner(id, BasicNode { addr: address }, false)
                    .await
                    .map_err(write_error)?;
                Ok(Some(membership_written(written)))
            }
            Change::Promote(id) => self
                .change_voters(&metrics, BTreeSet::from([id]), BTreeSet::new())
                .await
                .map(Some),
            Change::Remove(id) => self
                .change_voters(&metrics, BTreeSet::new(), BTreeSet::from([id]))
                .await
                .map(Some),
            Change::Voters { promote, remove } => self
                .change_voters(&metrics, promote, remove)
                .await
                .map(Some),
            Change::TransferLeadership(to) => {
                if !voters.contains(&to) {
                    return Err(ConsensusError::UnknownMember(to));
                }
                if to != self.id {
                    self.raft
                        .trigger()
                        .transfer_leader(to)
                        .await
                        .map_err(|_| ConsensusError::Stopped)?;
                }
                Ok(None)
            }
        }
    }

    /// Makes the learners in `promote` voters and takes the members in `remove` out of
    /// the membership, in one joint-consensus change: the voters go from the old set to
    /// the new one without passing through any set in between. Every member named must
    /// be known, those promoted must be caught up learners, and some voter must remain.
    async fn change_voters(
        &self,
        metrics: &openraft::RaftMetrics<super::types::C>,
        promote: BTreeSet<MemberId>,
        remove: BTreeSet<MemberId>,
    ) -> Result<Membership, ConsensusError> {
        let membership = metrics.membership_config.membership();
        let mut voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        if let Some(id) = promote
            .iter()
            .chain(&remove)
            .find(|id| membership.get_node(id).is_none())
        {
            return Err(ConsensusError::UnknownMember(*id));
        }
        if let Some(id) = promote.iter().find(|id| voters.contains(id)) {
            return Err(ConsensusError::AlreadyMember(*id));
        }
        if let Some(id) = promote.intersection(&remove).next() {
            return Err(ConsensusError::Other(format!(
                "member {id} cannot be promoted and removed at once"
            )));
        }
        let last = metrics.last_log_index.unwrap_or(0);
        for &id in &promote {
            let matched = metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten());
            // A learner that never answered is not caught up, however short the log:
            // made a voter, it could take the quorum with it.
            let lag = matched.map_or(last + 1, |l| last.saturating_sub(l.index));
            if matched.is_none() || lag > self.options.promote_max_lag {
                return Err(ConsensusError::NotCaughtUp { id, lag });
            }
        }
        let learners_removed: BTreeSet<MemberId> = remove
            .iter()
            .copied()
            .filter(|id| !voters.contains(id))
            .collect();
        voters.retain(|id| !remove.contains(id));
        voters.extend(&promote);
        if voters.is_empty() {
            let last = remove.iter().next_back().copied().unwrap_or_default();
            return Err(ConsensusError::LastVoter(last));
        }
        let mut changes = Vec::new();
        if voters != membership.voter_ids().collect() {
            changes.push(ChangeMembers::ReplaceAllVoters(voters));
        }
        if !learners_removed.is_empty() {
            changes.push(ChangeMembers::RemoveNodes(learners_removed));
        }
        let change = match changes.len() {
            0 => return Ok(membership_view(&metrics.membership_config)),
            1 => changes.remove(0),
            _ => ChangeMembers::Batch(changes),
        };
        // Voters taken out are not kept as learners: they leave the membership.
        let written = self
            .raft
            .change_membership(change, false)
            .await
            .map_err(write_error)?;
        Ok(membership_written(written))
    }

    /// Publishes the status from openraft's metrics and runs check-quorum.
    pub(crate) async fn watch_metrics(self: Arc<Self>) {
        let mut metrics = self.raft.metrics();
        let mut leading_since: Option<(u64, tokio::time::Instant)> = None;
        let election_max = self.options.election_timeout.1;
        let quorum_window = election_max * QUORUM_WINDOW_TIMEOUTS;
        // The view of the membership, rebuilt only when openraft's membership changes.
        let mut known: Option<(Option<LogId>, Arc<Membership>)> = None;
        loop {
            let status = {
                let m = metrics.borrow_and_update();
                let log_id = m.membership_config.log_id();
                let membership = match &known {
                    Some((id, view)) if id == log_id => Arc::clone(view),
                    _ => {
                        let view = Arc::new(membership_view(&m.membership_config));
                        known = Some((*log_id, Arc::clone(&view)));
                        view
                    }
                };
                let in_membership = membership.contains(self.id);
                let mut leader = m.current_leader;
                let mut role = match m.state {
                    ServerState::Shutdown => Role::Stopped,
                    _ if !in_membership => Role::Outside,
                    ServerState::Leader => Role::Leader,
                    ServerState::Follower => Role::Follower,
                    ServerState::Candidate => Role::Candidate,
                    ServerState::Learner => Role::Learner,
                };
                let term = m.current_term;
                if role == Role::Leader {
                    let since = match leading_since {
                        Some((t, since)) if t == term => since,
                        _ => {
                            let now = tokio::time::Instant::now();
                            leading_since = Some((term, now));
                            now
                        }
                    };
                    if membership.voters.len() > 1 {
                        match &m.last_quorum_acked {
                            // Until a quorum first answers, openraft refuses writes: lead
                            // only then, so no proposal path is opened to be refused.
                            None => {
                                leader = None;
                                if since.elapsed() > election_max {
                                    role = Role::Follower;
                                }
                            }
                            Some(acked) if acked.elapsed() > quorum_window => {
                                role = Role::Follower;
                                leader = None;
                            }
                            Some(_) => {}
                        }
                    }
                } else {
                    leading_since = None;
                    if matches!(role, Role::Follower | Role::Learner)
                        && !self.heard_from_leader_within(quorum_window)
                    {
                        leader = None;
                    }
                }
                if role == Role::Outside || role == Role::Stopped {
                    leader = leader.filter(|_| role == Role::Outside);
                }
                let mut matched = BTreeMap::new();
                if role == Role::Leader {
                    if let Some(replication) = &m.replication {
                        for (id, log_id) in replication {
                            matched.insert(*id, log_id.map_or(0, |l| l.index));
                        }
                    }
                    matched.insert(self.id, m.last_log_index.unwrap_or(0));
                }
                Status {
                    id: self.id,
                    role,
                    leader,
                    term,
                    // openraft's own test: a log (or snapshot) or a vote of a term.
                    initialized: m.last_log_index.is_some() || term > 0,
                    last_log_index: m.last_log_index.unwrap_or(0),
                    commit_index: m.local_committed.map_or(0, |l| l.index),
                    applied_index: m.last_applied.map_or(0, |l| l.index),
                    snapshot_index: m.snapshot.map_or(0, |l| l.index),
                    membership,
                    matched,
                }
            };
            let effective = status.leader.map(|l| (l, status.term));
            let stopped = status.role == Role::Stopped;
            self.status.send_if_modified(|current| {
                let changed = *current != status;
                *current = status;
                changed
            });
            self.follow_leader(effective);
            if stopped {
                return;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                changed = metrics.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(self.options.heartbeat) => {}
            }
        }
    }
}

/// Sends a path's commands in order and watches their fate; see the module contract.
async fn run_path(
    node: Weak<Node>,
    seq: u64,
    leader: MemberId,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let Some(me) = node.upgrade() else { return };
    let local = leader == me.id;
    drop(me);
    let mut remote = if local {
        None
    } else {
        let Some(conn) = connect_to_leader(&node, leader).await else {
            return;
        };
        Some(conn)
    };
    let mut inflight: FuturesOrdered<BoxFuture<'static, Response>> = FuturesOrdered::new();
    loop {
        tokio::select! {
            command = queue.recv() => {
                let Some(command) = command else { return };
                // A connection that closed while nothing was in flight on it lost
                // nothing: dial again and keep the path (and the generation).
                if inflight.is_empty() && remote.as_ref().is_some_and(|c| c.is_closed()) {
                    let Some(conn) = connect_to_leader(&node, leader).await else { return };
                    remote = Some(conn);
                }
                let Some(me) = node.upgrade() else { return };
                let pending = match &remote {
                    None => me.propose_local(None, command).await,
                    Some(conn) => match conn.send(Request::Propose(command)) {
                        Ok(rx) => async move { rx.await.unwrap_or(Response::Failed(WireError::NotLeader)) }.boxed(),
                        Err(_) => break,
                    },
                };
                inflight.push_back(pending);
            }
            Some(outcome) = inflight.next(), if !inflight.is_empty() => {
                if !matches!(outcome, Response::Done) {
                    break;
                }
            }
        }
    }
    if let Some(me) = node.upgrade() {
        me.path_broke(seq);
    }
}

/// Dials `leader` until it answers. A leader that cannot be reached keeps its path,
/// and the path's queue, until the member sees another leader (which drops the path)
/// rather than breaking it: a broken path is reopened at once, and a path that breaks
/// on every dial would spin, taking the processor from the election that ends it.
async fn connect_to_leader(node: &Weak<Node>, leader: MemberId) -> Option<Arc<Connection>> {
    loop {
        let me = node.upgrade()?;
        let address = me.status.borrow().membership.voters.get(&leader).cloned();
        if let Some(address) = address {
            match me.peers.get(leader, &address).connection().await {
                Ok(conn) => return Some(conn),
                Err(e) => tracing::debug!(error = %e, "no connection to the leader for proposals"),
            }
        }
        drop(me);
        tokio::time::sleep(RECONNECT_BACKOFF).await;
    }
}

impl Node {
    /// Fast failover; see the module contract. Called when the connection a peer
    /// dialled to this member closed: if that peer is this follower's leader and a new
    /// connection to it fails too, the leader is gone (its process died or its link
    /// was cut), and this member stands for election without waiting out the lease.
    async fn leader_went_away(self: Arc<Self>, from: MemberId) {
        let (term, address) = {
            let status = self.status.borrow();
            tracing::debug!(from, role = ?status.role, leader = ?status.leader, "a peer's connection closed");
            if status.role != Role::Follower || status.leader != Some(from) {
                return;
            }
            (status.term, status.membership.voters.get(&from).cloned())
        };
        let Some(address) = address else { return };
        if self
            .peers
            .get(from, &address)
            .accepts(LEADER_PROBE_TIMEOUT)
            .await
        {
            return;
        }
        *self.leader_gone.lock().unwrap_or_else(|p| p.into_inner()) = Some((from, term));
        tracing::info!(
            leader = from,
            term,
            "the leader went away; standing for election"
        );
        let stagger = self.options.stand_stagger.as_micros() as u64;
        if stagger > 0 {
            let pause = Duration::from_micros(rand::random_range(0..stagger));
            tokio::time::sleep(pause).await;
        }
        let unchanged = {
            let status = self.status.borrow();
            status.role == Role::Follower && status.term == term && status.leader == Some(from)
        };
        if unchanged
            && !self.stop.is_cancelled()
            && self.majority_would_vote(term).await
            && self.stand_unless_another_does(term + 1)
        {
            let _ = self.raft.trigger().elect(false).await;
        }
    }

    /// Whether this member stands for `term`, having won its fast-path pre-vote;
    /// decided under the lock the pre-vote grants take, so that of two followers
    /// that saw the leader go at once, exactly one stands (standing together, each
    /// would vote for itself and the vote would split, leaving the ensemble without
    /// a leader until an election timeout):
    /// - a member with a lower id asked this one for a pre-vote for `term` and was
    ///   granted it: that one stands, and this one, with the higher id, gives way;
    /// - otherwise this one stands, and from now on refuses fast-path pre-votes for
    ///   `term`, as a candidate that voted for itself would.
    fn stand_unless_another_does(&self, term: u64) -> bool {
        let mut fast = self.fast_path.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((other, _)) = fast
            .granted
            .filter(|(other, asked)| *asked == term && *other < self.id)
        {
            tracing::info!(
                other,
                "another member saw the leader go too; leaving the election to it"
            );
            return false;
        }
        fast.stood_for = fast.stood_for.max(term);
        true
    }

    /// Whether this member stood for `term` (or a later one) on the fast path.
    fn stands_for(&self, term: u64) -> bool {
        self.fast_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stood_for
            >= term
    }

    /// The answer to a fast-path pre-vote from `id` for `term`, from a member that
    /// saw the leader go: granted unless this member stands for that term itself.
    fn grant_fast_pre_vote(&self, id: MemberId, term: u64) -> bool {
        let mut fast = self.fast_path.lock().unwrap_or_else(|p| p.into_inner());
        if fast.stood_for >= term {
            return false;
        }
        // Keep the newest term, and in it the lowest id.
        if fast
            .granted
            .is_none_or(|(g_id, g_term)| term > g_term || (term == g_term && id < g_id))
        {
            fast.granted = Some((id, term));
        }
        true
    }

    /// The fast path's pre-vote: whether a majority of voters, this member included,
    /// would vote for it in the next term, which they do only if they too saw the
    /// leader go (or its lease ran out). A member that merely lost its own link to the
    /// leader learns here that the others still follow it, and keeps its term.
    /// openraft's pre-vote cannot serve here: it does not start while this member
    /// still holds the lease of the leader it saw go.
    async fn majority_would_vote(&self, term: u64) -> bool {
        let voters = self.status.borrow().membership.voters.clone();
        let Ok(last_log_id) = self
            .raft
            .with_raft_state(|state| state.log_ids.last().cloned())
            .await
        else {
            return false;
        };
        let request = VoteRequest::new(Vote::new(term + 1, self.id), last_log_id);
        let asks = voters
            .iter()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, address)| {
                let peer = self.peers.get(*id, address);
                let request = Request::PreVote(request.clone());
                async move {
                    let answer = tokio::time::timeout(
                        PRE_VOTE_TIMEOUT,
                        peer.call(request, PRE_VOTE_TIMEOUT),
                    );
                    matches!(answer.await, Ok(Ok(Response::Vote(r))) if r.vote_granted)
                }
            });
        let granted = futures_util::future::join_all(asks)
            .await
            .into_iter()
            .filter(|granted| *granted)
            .count()
            + usize::from(voters.contains_key(&self.id));
        granted > voters.len() / 2
    }

    /// Notes that a leader was just heard from (see the module contract).
    fn heard_from_leader(&self) {
        *self.leader_heard.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::time::Instant::now());
    }

    /// Whether a leader was heard from within `window`; never, since this process
    /// started, counts as not.
    fn heard_from_leader_within(&self, window: Duration) -> bool {
        self.leader_heard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|heard| heard.elapsed() <= window)
    }

    /// Whether this member saw the leader of its current term go away.
    fn saw_leader_go(&self) -> bool {
        let gone = *self.leader_gone.lock().unwrap_or_else(|p| p.into_inner());
        let status = self.status.borrow();
        gone.is_some_and(|(leader, term)| status.term == term && status.leader == Some(leader))
    }
}

impl Service for Node {
    fn peer_closed(self: Arc<Self>, from: MemberId) {
        self.incoming_snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(from);
        tokio::spawn(self.leader_went_away(from));
    }

    fn propose(
        self: Arc<Self>,
        from: MemberId,
        command: Vec<u8>,
    ) -> BoxFuture<'static, BoxFuture<'static, Response>> {
        #[allow(clippy::async_yields_async)] // the inner future is the proposal's fate
        async move { self.propose_local(Some(from), command).await }.boxed()
    }

    fn append_stream(
        self: Arc<Self>,
        appends: BoxStream<'static, AppendEntriesRequest<super::types::C>>,
    ) -> BoxStream<'static, Response> {
        // Weak: a stream that outlives the member must not keep it alive.
        let node = Arc::downgrade(&self);
        self.raft
            .stream_append(appends)
            .map(move |answer| match answer {
                Ok(answer) => {
                    if !matches!(answer, Err(StreamAppendError::HigherVote(_))) {
                        if let Some(node) = node.upgrade() {
                            node.heard_from_leader();
                        }
                    }
                    Response::StreamAppend(answer)
                }
                Err(_) => Response::Failed(WireError::Stopped),
            })
            .boxed()
    }

    fn handle(self: Arc<Self>, from: MemberId, request: Request) -> BoxFuture<'static, Response> {
        async move {
            let stopped = Response::Failed(WireError::Stopped);
            match request {
                Request::Append(rpc) => match self.raft.append_entries(rpc).await {
                    Ok(answer) => {
                        if !matches!(answer, AppendEntriesResponse::HigherVote(_)) {
                            self.heard_from_leader();
                        }
                        Response::Append(answer)
                    }
                    Err(_) => stopped,
                },
                // The transport routes these to `append_stream`.
                Request::StreamAppend(_) => Response::Failed(WireError::Other(
                    "a streamed append outside a stream".into(),
                )),
                Request::Vote(mut rpc) => {
                    if self.saw_leader_go() {
                        // The leader's lease keeps a follower from voting while the
                        // leader may still be alive; this one has seen it is not.
                        rpc.leadership_transfer = true;
                    }
                    self.raft.vote(rpc).await.map_or(stopped, Response::Vote)
                }
                Request::PreVote(rpc) => {
                    let (id, term) = (*rpc.vote.leader_id.node_id(), rpc.vote.leader_id.term());
                    if self.saw_leader_go() || self.stands_for(term) {
                        // openraft's pre-vote always honours the lease; waive it for
                        // the same reason as above. The vote that follows still
                        // compares logs. A member that stands for the term refuses,
                        // also once its status shows the term it raised.
                        let granted = self.grant_fast_pre_vote(id, term);
                        Response::Vote(openraft::raft::VoteResponse::new(rpc.vote, None, granted))
                    } else {
                        self.raft
                            .pre_vote(rpc)
                            .await
                            .map_or(stopped, Response::Vote)
                    }
                }
                Request::Snapshot { vote, meta, data } => {
                    self.heard_from_leader();
                    self.raft
                        .install_full_snapshot(
                            vote,
                            Snapshot {
                                meta,
                                snapshot: data,
                            },
                        )
                        .await
                        .map_or(stopped, Response::Snapshot)
                }
                Request::SnapshotChunk {
                    vote,
                    meta,
                    total,
                    offset,
                    data,
                } => {
                    // Heard on arrival (as a whole snapshot above): the last chunk's
                    // answer waits for the snapshot to be restored, which may take
                    // longer than the window.
                    self.heard_from_leader();
                    let taken = self
                        .incoming_snapshot
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take(Chunk {
                            from,
                            upto: meta.last_log_id.map_or(0, |id| id.index),
                            total,
                            offset,
                            data: &data,
                        });
                    match taken {
                        Ok(Taken::Partial) => Response::Done,
                        Ok(Taken::Complete(snapshot)) => self
                            .raft
                            .install_full_snapshot(vote, Snapshot { meta, snapshot })
                            .await
                            .map_or(stopped, Response::Snapshot),
                        Err(reason) => Response::Failed(WireError::Other(reason)),
                    }
                }
                Request::TransferLeader(rpc) => self
                    .raft
                    .handle_transfer_leader(rpc)
                    .await
                    .map_or(stopped, Response::TransferLeader),
                Request::Propose(command) => self.propose_local(Some(from), command).await.await,
                // The asking member waits to apply up to the index it is given.
                Request::ReadIndex => match self.read_index_local().await {
                    Ok(index) => {
                        self.peers.want_commit(from, index);
                        Response::ReadIndex(index)
                    }
                    Err(e) => Response::Failed(wire(&e)),
                },
                Request::Change(change) => match self.change_local(change).await {
                    Ok(_) => {
                        self.peers
                            .want_commit(from, self.status.borrow().commit_index);
                        Response::Done
                    }
                    Err(e) => Response::Failed(wire(&e)),
                },
                Request::ChangeAndReport(change) => match self.change_local(change).await {
                    Ok(Some(membership)) => Response::Membership(membership),
                    Ok(None) => Response::Done,
                    Err(e) => Response::Failed(wire(&e)),
                },
                Request::LeaderMessage(message) => {
                    if self.leads() {
                        self.machine.leader_message(from, &message);
                    }
                    Response::Done
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::suite_tests::Recorder;
    use crate::consensus::{Consensus, Options};
    use tokio::net::TcpListener;

    /// A member that forwarded a write, or asked for a read index, waits to apply up to
    /// there: the leader asks its stream to that member not to hold the commit back
    /// (see `network`). Members 7 and 8 stand for followers that asked.
    #[tokio::test]
    async fn a_member_waiting_for_a_commit_is_marked_to_be_told_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let options = Options::new(1, None, address.clone());
        let consensus = Consensus::open(options, listener, Arc::new(Recorder::default()))
            .await
            .unwrap();
        consensus
            .bootstrap([(1, address)].into_iter().collect())
            .await
            .unwrap();
        let node = consensus.node.clone();
        let (writer, reader) = (
            node.peers.get(7, "127.0.0.1:1"),
            node.peers.get(8, "127.0.0.1:1"),
        );
        let proposed = Service::propose(node.clone(), 7, b"forwarded".to_vec())
            .await
            .await;
        assert!(matches!(proposed, Response::Done), "the write failed");
        // The write's index (after the membership entry and the leader's first entry).
        let written = writer.wanted_commit();
        assert!(written >= 2, "the writer is not waited for: {written}");
        assert_eq!(
            reader.wanted_commit(),
            0,
            "asked for by a member that did not"
        );
        match Service::handle(node.clone(), 8, Request::ReadIndex).await {
            Response::ReadIndex(index) => {
                assert!(index >= written && reader.wanted_commit() >= index)
            }
            _ => panic!("no read index"),
        }
        consensus.shutdown().await;
    }
}
