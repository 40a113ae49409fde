//! Consensus: the replicated, durable log under the server.
//!
//! Nothing outside this module names openraft; it is pinned to one exact release
//! (the 0.10 alphas have leader transfer, which the operator needs) and reached only
//! through the API below, so that moving to another release touches this module alone.
//!
//! # Model
//! Every member holds the same log. An entry is either a *command* (opaque bytes the
//! server encodes: one transaction with its origin and time), or an entry that
//! carries no command (Raft's blank entry of a new term, a membership change). A
//! command's log index is its zxid. The server supplies a [`StateMachine`];
//! consensus calls [`StateMachine::apply`] once for every committed index, in index
//! order, on every member, including the indexes that carry no command so that the
//! server's last applied zxid is the log's.
//!
//! # Contract
//! - **Durability.** An entry counts toward commit only once it is fsynced on that
//!   member; entries appended while an fsync runs share the next one (group commit).
//!   The vote is fsynced before it is acted on. A restarted member restores the
//!   newest snapshot ([`StateMachine::restore`]), then re-applies every entry up to
//!   the commit index it had persisted, before [`Consensus::open`] returns, so a
//!   single member that restarts serves everything it acknowledged at once. A torn
//!   tail of the log (cut short or failing its checksum) was never acknowledged and
//!   is cut off; damage elsewhere refuses to open, naming file and offset.
//! - **Snapshots.** Every `snapshot_every` applied entries consensus asks the state
//!   machine for a snapshot ([`StateMachine::snapshot`], from a blocking thread),
//!   writes it to a file as its pieces come (never whole in memory), stores that
//!   file atomically next to the log and purges the log before it. A member
//!   too far behind the leader's log receives the snapshot and restores it; it
//!   travels in chunks of [`Options::snapshot_chunk`] bytes, so appends and
//!   heartbeats to that member never wait behind more than one.
//! - **Proposals.** [`Consensus::propose`] may be called on any member; commands are
//!   forwarded to the leader over one ordered stream per member, so the commands
//!   one member proposes are committed in the order it proposed them, or not at all
//!   (never reordered, never retried, so never committed twice). The proposer learns
//!   of a command's outcome only by seeing it applied (the server tags its commands
//!   to recognise its own).
//! - **Generations.** When the path to the leader breaks (the leader changes, the
//!   stream fails, the leader refuses) every command proposed and not yet known to
//!   be committed may be lost, while later ones would still commit: a session's
//!   order would break. So each such break increments the *generation*, under the
//!   same lock that orders proposals: every proposal names the generation its
//!   caller started from, one naming an older generation is refused with
//!   [`Stale`] and never sent, and [`Consensus::watch_generation`] tells the server
//!   to close the client connections whose writes may be lost. ZooKeeper does the
//!   same more bluntly: a follower closes every client connection when its leader
//!   goes away.
//!   A member that knows no leader refuses proposals with [`Stale`] whose
//!   `current` equals `proposed` (nothing was lost; the server refuses its client).
//! - **No split brain, minority refuses.** A leader that has not heard from a
//!   majority of voters within two election timeouts stops being leader (check-quorum;
//!   openraft refuses its new writes after one):
//!   its status shows no leader and its proposals fail. Likewise a follower that
//!   has not heard from its leader for as long shows no leader (see `node`). A
//!   member that knows no leader refuses proposals; the server then refuses clients
//!   (ZooKeeper's rule).
//! - **Fast failover.** A follower whose leader's connection closes dials the
//!   leader afresh; if that fails too (the process died, or a fault cut the link),
//!   the leader is gone: the follower stands for election after a random pause of at
//!   most [`Options::stand_stagger`] (40 ms) and, until the term changes, grants
//!   votes despite the leader's lease. The lease only delays a new leader while the
//!   old one may be alive; reads here never rely on it (sync confirms with a
//!   quorum), so waiving it on evidence of death costs no safety, and a leader that
//!   merely went silent is still replaced by the election timeout. A crashed leader is replaced in tens of
//!   milliseconds rather than the lease plus an election timeout (600 to 800 ms).
//! - **Pre-vote.** A member raises its term only after a majority of voters said
//!   they would vote for it (a pre-vote changes nothing on the voter): openraft's
//!   pre-vote on an election timeout, and on the fast path above one of our own (the
//!   same request, sent before standing), which a voter grants if it too saw the
//!   leader go. So a member cut off from the others comes back at the term it left,
//!   and its return does not unseat a healthy leader. Of two followers that saw the
//!   leader go and pre-voted for each other, the one with the higher id does not
//!   stand: standing together they would split the vote. A member that stands
//!   refuses fast-path pre-votes for its term from then on, so one whose pre-vote
//!   arrives after that does not stand either.
//! - **Linearizable sync.** [`Consensus::read_index`] returns a commit index the
//!   leader confirmed with a quorum after the call began; once the local member has
//!   applied it, every write committed before the call is visible.
//! - **Membership** lives in the log. A member starts either as the founder of a new
//!   ensemble ([`Consensus::bootstrap`], a no-op on a member that is initialized: it
//!   has a log, a snapshot or a vote) or as a joiner that waits to be added. One
//!   change at a time: add a learner, promote it to voter (refused until it has
//!   answered and is caught up within [`Options::promote_max_lag`]), remove a
//!   member (voter or learner), change the voters ([`Consensus::change_voters`]:
//!   promote several learners and remove several members in one joint-consensus
//!   change, so one voter becomes three without ever being two), transfer
//!   leadership. They may be called on any member and are
//!   forwarded to the leader (a leader just elected takes them once a quorum first
//!   answered it); they return once the change is committed and, but on a member
//!   the change cut off, shown in the calling member's [`Status`].
//! - **Liveness messages.** [`Consensus::send_to_leader`] delivers best-effort bytes
//!   to whichever member leads ([`StateMachine::leader_message`]); the server uses it
//!   to report which sessions are alive so that the leader decides expiry.
//! - **Status** ([`Consensus::status`], [`Consensus::watch_status`]): role, leader,
//!   term, whether the member is initialized, last log, commit and applied index,
//!   membership with its version (the log index of the membership entry) and, on
//!   the leader, each member's matched index.
//!
//! # Transport
//! Peers talk over TCP on the peer port: one persistent connection per direction and
//! pair of members, carrying length-prefixed binary frames with request ids, so
//! requests are pipelined and answers matched. Replication is pipelined too: the
//! leader sends each append as soon as there is one, without waiting for the answer
//! to the last, and the follower feeds them to Raft in order, so appends that arrive
//! while it flushes share its next fsync. The same connection carries Raft's
//! messages (append, vote, snapshot, leader transfer) and the member messages above
//! (forwarded proposals, read index, membership changes, liveness). Tests cut links
//! with [`Faults`], which the transport consults on every frame, so partitions go
//! through the same code paths as real traffic.
//!
//! # Layout on disk
//! Under `data_dir`: `log/` (segments `log-<seq>.seg` of framed records, `vote`,
//! `committed`, `purged`, `LOCK`) and `snapshots/` (`snap-<index>.snap`, the newest
//! three); formats in `log_store.rs` and `state_machine.rs`.
//!
//! # Modules
//! `types` (openraft type config, codec, record framing), `log_store`
//! (`RaftLogStorage`), `state_machine` (`RaftStateMachine` over [`StateMachine`]),
//! `transport` (TCP frames, [`Faults`]), `network` (openraft's network over the
//! transport), `node` (status, check-quorum, proposal paths, member requests).

mod log_store;
mod network;
mod node;
mod state_machine;
#[cfg(test)]
mod suite_tests;
mod transfer;
mod transport;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A member's id: the StatefulSet ordinal + 1, ZooKeeper's `myid`.
pub type MemberId = u64;

/// How one member runs consensus.
#[derive(Debug, Clone)]
pub struct Options {
    pub id: MemberId,
    /// `None`: in memory only (tests, `ensemble local` without `--data-dir`).
    pub data_dir: Option<PathBuf>,
    /// `host:port` at which the other members reach this member's peer port.
    pub advertise: String,
    pub heartbeat: Duration,
    /// Elections start after a random timeout in this range without a leader.
    pub election_timeout: (Duration, Duration),
    /// Applied entries between snapshots (ZooKeeper's `snapCount`).
    pub snapshot_every: u64,
    /// A learner is promoted only when at most this many entries behind the leader.
    pub promote_max_lag: u64,
    /// A follower that saw its leader go away stands for election after a random
    /// pause below this, so that two such followers seldom stand at the same moment
    /// (a vote and its fsync take about a millisecond). Zero makes them stand
    /// together, which tests use.
    pub stand_stagger: Duration,
    /// A snapshot sent to a member travels in chunks of at most this many bytes,
    /// between which appends and heartbeats to that member go on.
    pub snapshot_chunk: usize,
    /// Link failures injected by tests; `None` in production.
    pub faults: Option<Faults>,
}

/// Where a snapshot job puts the snapshot's bytes: a piece at a time, in order. An
/// error (the disk's) ends the job with it.
pub type SnapshotSink<'a> = &'a mut dyn FnMut(&[u8]) -> Result<(), String>;

/// Produces a snapshot's bytes into the sink it is given, or says why it could not.
pub type SnapshotJob = Box<dyn FnOnce(SnapshotSink<'_>) -> Result<(), String> + Send + Sync>;

/// The server's replicated state, driven by consensus; see the module contract.
pub trait StateMachine: Send + Sync + 'static {
    /// Applies the committed entry at `index`; `command` is `None` for entries that
    /// carry none. Called exactly once per index, in index order, after any restore.
    fn apply(&self, index: u64, command: Option<&[u8]>);

    /// Begins a snapshot of the state as of the last applied index: returns that
    /// index and the job that produces the snapshot's bytes. The job runs on another
    /// thread while later entries are applied, and its bytes are still the state as
    /// of the index. It should hand them over in pieces as it goes, so that a large
    /// state is not held twice in memory.
    fn snapshot(&self) -> (u64, SnapshotJob);

    /// Replaces the state with a snapshot taken at `index`.
    fn restore(&self, index: u64, data: &[u8]) -> Result<(), String>;

    /// On the leader: a message a member sent with [`Consensus::send_to_leader`].
    fn leader_message(&self, from: MemberId, message: &[u8]) {
        let _ = (from, message);
    }
}

/// Which part a member plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    /// A non-voting member, receiving the log.
    Learner,
    /// Not (or no longer) in the membership: a joiner waiting to be added.
    Outside,
    Stopped,
}

/// The membership as of the last membership entry in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Membership {
    /// The log index of the membership entry (`/zookeeper/config`'s version).
    pub version: u64,
    /// Voters and their peer addresses.
    pub voters: BTreeMap<MemberId, String>,
    /// Learners and their peer addresses.
    pub learners: BTreeMap<MemberId, String>,
    /// Voters that a change in progress removes (they are in `voters` until it
    /// completes). A removed member may never see the change complete, as the leader
    /// stops replicating to it; it usually sees this first half, and if it missed
    /// that too, it reports no leader once it has heard none for a while.
    pub leaving: BTreeSet<MemberId>,
}

impl Membership {
    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: MemberId) -> bool {
        self.voters.contains_key(&id) || self.learners.contains_key(&id)
    }
}

/// A member's view of consensus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: MemberId,
    pub role: Role,
    pub leader: Option<MemberId>,
    pub term: u64,
    /// Whether this member has a log, a snapshot or a vote: it is (or was) part of
    /// an ensemble, not a blank joiner. (The log starts at index 0, so
    /// `last_log_index` alone cannot tell.)
    pub initialized: bool,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    /// Shared: a status is published on every commit, the membership changes rarely.
    pub membership: Arc<Membership>,
    /// On the leader: the highest index known to be on each member (itself included).
    pub matched: BTreeMap<MemberId, u64>,
}

impl Status {
    /// Whether a membership change in progress removes this member.
    pub fn is_leaving(&self) -> bool {
        self.membership.leaving.contains(&self.id)
    }
}

/// Why a consensus call failed.
#[derive(Debug, Error)]
pub enum ConsensusError {
    #[error("data directory {dir}: {reason}")]
    Storage { dir: PathBuf, reason: String },
    #[error("no leader is known")]
    NoLeader,
    #[error("member {0} is not in the membership")]
    UnknownMember(MemberId),
    #[error("member {0} is already in the membership")]
    AlreadyMember(MemberId),
    #[error("member {id} is {lag} entries behind the leader; it is promoted once caught up")]
    NotCaughtUp { id: MemberId, lag: u64 },
    #[error("another membership change is in progress")]
    ChangeInProgress,
    #[error("removing member {0} would leave no voter")]
    LastVoter(MemberId),
    #[error("timed out")]
    Timeout,
    #[error("consensus stopped")]
    Stopped,
    #[error("{0}")]
    Other(String),
}

/// A proposal named a generation older than the current one; see the module contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "proposal from generation {proposed} refused: the path to the leader broke (now {current})"
)]
pub struct Stale {
    pub proposed: u64,
    pub current: u64,
}

/// Links cut by a test: traffic between a member of `cut` pairs is dropped both ways,
/// as is all traffic of an isolated member. Clones share one set of faults.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<std::sync::Mutex<std::collections::BTreeSet<(MemberId, MemberId)>>>,
    isolated: Arc<std::sync::Mutex<std::collections::BTreeSet<MemberId>>>,
}

impl Faults {
    /// Cuts the link between `a` and `b` (both directions).
    pub fn cut(&self, a: MemberId, b: MemberId) {
        let mut cut = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        cut.insert((a.min(b), a.max(b)));
    }

    /// Cuts every link of `id`.
    pub fn isolate(&self, id: MemberId) {
        self.isolated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.isolated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Whether traffic between `a` and `b` is dropped.
    pub fn is_cut(&self, a: MemberId, b: MemberId) -> bool {
        let isolated = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
        if isolated.contains(&a) || isolated.contains(&b) {
            return true;
        }
        drop(isolated);
        let cut = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        cut.contains(&(a.min(b), a.max(b)))
    }
}

impl Options {
    /// Options with the default timings: heartbeat 50 ms, elections after 200–400 ms
    /// without a leader (a killed leader is replaced well under a second on a LAN),
    /// a snapshot every 100 000 entries, promotion within 1 000 entries of the leader.
    pub fn new(id: MemberId, data_dir: Option<PathBuf>, advertise: impl Into<String>) -> Self {
        Options {
            id,
            data_dir,
            advertise: advertise.into(),
            heartbeat: Duration::from_millis(50),
            election_timeout: (Duration::from_millis(200), Duration::from_millis(400)),
            snapshot_every: 100_000,
            promote_max_lag: 1_000,
            stand_stagger: Duration::from_millis(40),
            snapshot_chunk: transfer::DEFAULT_CHUNK,
            faults: None,
        }
    }
}

/// A running member's handle to consensus; cheap to clone.
#[derive(Clone)]
pub struct Consensus {
    node: Arc<node::Node>,
}

impl Consensus {
    /// Recovers from `options.data_dir` (restoring and re-applying into `machine`),
    /// then serves peers on `peers`; see the module contract.
    pub async fn open(
        options: Options,
        peers: TcpListener,
        machine: Arc<dyn StateMachine>,
    ) -> Result<Self, ConsensusError> {
        let storage_error = |dir: &std::path::Path, reason: String| ConsensusError::Storage {
            dir: dir.to_path_buf(),
            reason,
        };
        let (log, snapshot_dir) = match &options.data_dir {
            Some(dir) => (
                log_store::LogStore::open(&dir.join("log")).map_err(|r| storage_error(dir, r))?,
                Some(dir.join("snapshots")),
            ),
            None => (log_store::LogStore::in_memory(), None),
        };
        let state_machine =
            match state_machine::StateMachineStore::open(machine.clone(), snapshot_dir) {
                Ok(sm) => sm,
                Err(reason) => {
                    log.close();
                    return Err(storage_error(
                        options
                            .data_dir
                            .as_deref()
                            .unwrap_or(std::path::Path::new("")),
                        reason,
                    ));
                }
            };
        let committed = {
            use openraft::storage::RaftLogStorage;
            let mut reader = log.clone();
            reader
                .read_committed()
                .await
                .ok()
                .flatten()
                .map(|id| id.index)
        };
        let millis = |d: Duration| d.as_millis().max(1) as u64;
        let config = openraft::Config {
            cluster_name: "ensemble".into(),
            heartbeat_interval: millis(options.heartbeat),
            election_timeout_min: millis(options.election_timeout.0),
            election_timeout_max: millis(options.election_timeout.1)
                .max(millis(options.election_timeout.0) + 1),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(options.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: options.snapshot_every.min(1_000),
            purge_batch_size: 1,
            // For each chunk of a snapshot; the last one waits for the snapshot to
            // be restored, which takes seconds for a tree of gigabytes.
            install_snapshot_timeout: 60_000,
            snapshot_max_chunk_size: options.snapshot_chunk.max(1) as u64,
            backoff: "20ms 40ms ...500ms".into(),
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        let config = match config.validate() {
            Ok(config) => Arc::new(config),
            Err(e) => {
                log.close();
                return Err(ConsensusError::Other(format!(
                    "invalid consensus options: {e}"
                )));
            }
        };
        let transport_peers = Arc::new(transport::Peers::new(options.id, options.faults.clone()));
        let network = network::Network {
            peers: transport_peers.clone(),
        };
        let raft = match types::Raft::new(
            options.id,
            config,
            network,
            log.clone(),
            state_machine.clone(),
        )
        .await
        {
            Ok(raft) => raft,
            Err(e) => {
                log.close();
                return Err(ConsensusError::Other(format!("starting Raft: {e}")));
            }
        };
        if let Some(committed) = committed {
            // openraft re-applies up to the persisted commit index while it starts;
            // wait for it all the same, so nothing acknowledged is served missing.
            let applied = raft
                .wait(Some(Duration::from_secs(600)))
                .applied_index_at_least(Some(committed), "re-applying the committed log")
                .await;
            if let Err(e) = applied {
                let _ = raft.shutdown().await;
                log.close();
                return Err(ConsensusError::Other(format!("re-applying the log: {e}")));
            }
        }
        let (status, _) = watch::channel(Status {
            id: options.id,
            role: Role::Outside,
            leader: None,
            term: 0,
            initialized: false,
            last_log_index: 0,
            commit_index: 0,
            applied_index: 0,
            snapshot_index: 0,
            membership: Arc::default(),
            matched: BTreeMap::new(),
        });
        let (generation, _) = watch::channel(0);
        let node = Arc::new(node::Node {
            id: options.id,
            options: options.clone(),
            raft,
            log,
            snapshots: state_machine,
            peers: transport_peers,
            machine,
            status,
            generation,
            proposer: std::sync::Mutex::new(node::Proposer::default()),
            change_lock: tokio::sync::Mutex::new(()),
            leader_gone: std::sync::Mutex::new(None),
            leader_heard: std::sync::Mutex::new(None),
            fast_path: std::sync::Mutex::new(node::FastPath::default()),
            incoming_snapshot: std::sync::Mutex::new(transfer::Assembly::default()),
            stop: tokio_util::sync::CancellationToken::new(),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let serving = tokio::spawn(transport::serve(
            options.id,
            peers,
            node.clone(),
            options.faults.clone(),
            node.stop.clone(),
        ));
        let watching = tokio::spawn(node.clone().watch_metrics());
        node.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([serving, watching]);
        Ok(Consensus { node })
    }

    /// Founds a new ensemble of `voters` (id → peer address): true if it did, false
    /// (changing nothing) if this member is initialized already.
    pub async fn bootstrap(
        &self,
        voters: BTreeMap<MemberId, String>,
    ) -> Result<bool, ConsensusError> {
        let raft = &self.node.raft;
        if raft
            .is_initialized()
            .await
            .map_err(|_| ConsensusError::Stopped)?
        {
            return Ok(false);
        }
        let members: BTreeMap<MemberId, openraft::BasicNode> = voters
            .into_iter()
            .map(|(id, addr)| (id, openraft::BasicNode { addr }))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(openraft::errors::RaftError::APIError(
                openraft::errors::InitializeError::NotAllowed(_),
            )) => Ok(false),
            Err(e) => Err(ConsensusError::Other(format!("bootstrap: {e}"))),
        }
    }

    /// The current generation; see the module contract.
    pub fn generation(&self) -> u64 {
        *self.node.generation.borrow()
    }

    /// Changes of the generation.
    pub fn watch_generation(&self) -> watch::Receiver<u64> {
        self.node.generation.subscribe()
    }

    /// Sends `command` towards the leader, behind every earlier proposal of this
    /// member; refused if `generation` is not the current one, or if no leader is
    /// known (then `current == proposed`; the server refuses its client).
    pub fn propose(&self, generation: u64, command: Vec<u8>) -> Result<(), Stale> {
        self.node.propose(generation, command)
    }

    /// Best-effort bytes to the current leader's [`StateMachine::leader_message`].
    pub fn send_to_leader(&self, message: Vec<u8>) {
        let node = self.node.clone();
        let Some(leader) = node.status.borrow().leader else {
            return;
        };
        if leader == node.id {
            node.machine.leader_message(node.id, &message);
            return;
        }
        let Some(address) = node.status.borrow().membership.voters.get(&leader).cloned() else {
            return;
        };
        tokio::spawn(async move {
            let peer = node.peers.get(leader, &address);
            let _ = peer
                .call(
                    transport::Request::LeaderMessage(message),
                    node::FORWARD_TIMEOUT,
                )
                .await;
        });
    }

    /// A commit index confirmed by the leader with a quorum after this call began.
    pub async fn read_index(&self) -> Result<u64, ConsensusError> {
        if self.node.leads_acknowledged().await {
            return self.node.read_index_local().await;
        }
        match self.forward(transport::Request::ReadIndex).await? {
            transport::Response::ReadIndex(index) => Ok(index),
            _ => Err(ConsensusError::Other(
                "unexpected answer from the leader".into(),
            )),
        }
    }

    /// Adds `id` (reachable at `address`) as a learner.
    pub async fn add_learner(&self, id: MemberId, address: String) -> Result<(), ConsensusError> {
        self.change_membership(transport::Change::AddLearner(id, address))
            .await
    }

    /// Makes learner `id` a voter once it is caught up.
    pub async fn promote(&self, id: MemberId) -> Result<(), ConsensusError> {
        self.change_membership(transport::Change::Promote(id)).await
    }

    /// Removes `id` from the membership (voter or learner). Returns the membership
    /// after the change, as [`Consensus::change_voters`] does.
    pub async fn remove(&self, id: MemberId) -> Result<Arc<Membership>, ConsensusError> {
        let removes_me = id == self.node.id;
        self.change_and_show(transport::Change::Remove(id), removes_me)
            .await
    }

    /// Makes the caught-up learners in `promote` voters and removes the members in
    /// `remove`, in one change of the voters (joint consensus): no set of voters in
    /// between ever decides. Refused as a whole if any part is refused. Returns the
    /// membership after the change as this member shows it once applied (see
    /// `change_membership`) or, on a member that the change removes and which never
    /// applies it, as the leader wrote it.
    pub async fn change_voters(
        &self,
        promote: BTreeSet<MemberId>,
        remove: BTreeSet<MemberId>,
    ) -> Result<Arc<Membership>, ConsensusError> {
        let removes_me = remove.contains(&self.node.id);
        self.change_and_show(transport::Change::Voters { promote, remove }, removes_me)
            .await
    }

    /// Runs a change of the members and returns the membership after it; see
    /// [`Consensus::change_voters`].
    async fn change_and_show(
        &self,
        change: transport::Change,
        removes_me: bool,
    ) -> Result<Arc<Membership>, ConsensusError> {
        if removes_me {
            if let Some(after) = self.change(change, true).await? {
                return Ok(Arc::new(after));
            }
        } else {
            self.change_membership(change).await?;
        }
        Ok(self.status().membership)
    }

    /// Runs a membership change, committed when it returns, then waits until this
    /// member's status shows it (its commit index reaches the leader's), for at most
    /// an election timeout: a member the leader stopped replicating to (one just
    /// removed) never sees it.
    async fn change_membership(&self, change: transport::Change) -> Result<(), ConsensusError> {
        self.change(change, false).await?;
        if let Ok(index) = self.read_index().await {
            let mut status = self.watch_status();
            let shown = status.wait_for(|s| s.commit_index >= index || s.role == Role::Stopped);
            let _ = tokio::time::timeout(self.node.options.election_timeout.1, shown).await;
        }
        Ok(())
    }

    /// Moves leadership to voter `to` and waits until it leads.
    pub async fn transfer_leadership(&self, to: MemberId) -> Result<(), ConsensusError> {
        self.change(transport::Change::TransferLeadership(to), false)
            .await?;
        let mut status = self.watch_status();
        let wait = status.wait_for(|s| s.leader == Some(to));
        let outcome = match tokio::time::timeout(node::FORWARD_TIMEOUT, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ConsensusError::Stopped),
            Err(_) => Err(ConsensusError::Timeout),
        };
        outcome
    }

    /// This member's id.
    pub fn id(&self) -> MemberId {
        self.node.id
    }

    pub fn status(&self) -> Status {
        self.node.status.borrow().clone()
    }

    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.node.status.subscribe()
    }

    /// Stops consensus: peers are no longer served, the log is closed.
    pub async fn shutdown(&self) {
        let node = &self.node;
        if node.stop.is_cancelled() {
            return;
        }
        node.stop.cancel();
        let tasks: Vec<_> = node
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            task.abort();
        }
        let _ = node.raft.shutdown().await;
        node.peers.close_all();
        {
            let mut proposer = node.proposer.lock().unwrap_or_else(|p| p.into_inner());
            proposer.generation += 1;
            node.generation.send_replace(proposer.generation);
            proposer.close();
        }
        // A snapshot being written is finished first; none is written after.
        let (log, snapshots) = (node.log.clone(), node.snapshots.clone());
        let _ = tokio::task::spawn_blocking(move || {
            snapshots.close();
            log.close();
        })
        .await;
        node.status.send_modify(|s| {
            s.role = Role::Stopped;
            s.leader = None;
            s.matched.clear();
        });
    }

    /// Runs a change on the leader. With `report`, the answer has the membership after
    /// it when this member leads or the leader is asked for it (see
    /// [`transport::Request::ChangeAndReport`]).
    async fn change(
        &self,
        change: transport::Change,
        report: bool,
    ) -> Result<Option<Membership>, ConsensusError> {
        if self.node.leads_acknowledged().await {
            return self.node.change_local(change).await;
        }
        let request = if report {
            transport::Request::ChangeAndReport(change)
        } else {
            transport::Request::Change(change)
        };
        match self.forward(request).await? {
            transport::Response::Done => Ok(None),
            transport::Response::Membership(after) => Ok(Some(after)),
            _ => Err(ConsensusError::Other(
                "unexpected answer from the leader".into(),
            )),
        }
    }

    /// Sends `request` to the leader and turns its refusals into errors.
    async fn forward(
        &self,
        request: transport::Request,
    ) -> Result<transport::Response, ConsensusError> {
        let status = self.status();
        if status.role == Role::Stopped {
            return Err(ConsensusError::Stopped);
        }
        let leader = status.leader.ok_or(ConsensusError::NoLeader)?;
        let address = status
            .membership
            .voters
            .get(&leader)
            .cloned()
            .ok_or(ConsensusError::NoLeader)?;
        let peer = self.node.peers.get(leader, &address);
        match peer.call(request, node::FORWARD_TIMEOUT).await {
            Ok(transport::Response::Failed(e)) => Err(node::unwire(e)),
            Ok(response) => Ok(response),
            Err(transport::CallError::Timeout(_)) => Err(ConsensusError::Timeout),
            Err(_) => Err(ConsensusError::NoLeader),
        }
    }
}
