//! The network layer of one member: consensus underneath, client connections on
//! top, served until shutdown.
//!
//! Contract: [`Member::open`] opens consensus ([`crate::consensus`]) on the peer
//! listener, which recovers the member's log and snapshots from its data directory
//! (or starts empty, in memory, without one) and re-applies what was committed,
//! and fails with a clear [`ServerError`] if the directory is unusable. Unless
//! `joinExisting` is set it then founds the ensemble of the config's `server.<id>`
//! participants (or of itself alone, at
//! [`ServerConfig::advertised_member_address`], which names the config's
//! `clientPort`), which is a no-op for a member that has a log already; a joiner
//! is founded on demand by the admin port's `POST /bootstrap`. [`Member::serve`]
//! (or [`run`], both steps at once) takes bound [`Listeners`] (tests bind port 0):
//! the client port, optionally the admin HTTP port ([`admin`]) and the peer port
//! (without one, the member listens for peers on an ephemeral loopback port: fine
//! for an ensemble of one); a bare client `TcpListener` converts into listeners
//! without the others. The config's ports are replaced by the ports actually bound
//! (for `conf`; [`run`] replaces the client port before it opens the member).
//!
//! Each connection runs in its own task ([`connection`]); requests execute
//! against one shared [`state::State`] behind a mutex ([`handler`] maps them to
//! reads and transactions); writes go through consensus and are answered when
//! applied ([`replica`]). [`stats`] counts packets, requests and connections
//! for the four-letter words ([`four_letter`]) and the admin port, and holds the
//! serving phase `/readyz` reports. Periodic tasks: every `tickTime` the leader
//! expires sessions and the other members report their sessions' liveness to it;
//! every `znode.container.checkIntervalMs` the leader deletes empty containers
//! and expired TTL nodes. Connections beyond `maxClientCnxns` from one IP are
//! closed at once. A member that knows no leader refuses new sessions and, once it
//! has known none for an election timeout, closes its client connections, as a
//! ZooKeeper follower that lost its leader does (its clients move to a member
//! that can serve them).
//!
//! A member that a membership change removes refuses new sessions and closes its
//! client connections as soon as it sees the change begin (it may never see the
//! change end, as the leader stops replicating to it).
//!
//! On shutdown (SIGINT or SIGTERM from the command line), the client port closes
//! (new connections are refused), the clients already connected are served for
//! `shutdownDrainMs` if the member is in the membership, a leader then hands its
//! leadership to the most caught-up voter, every connection closes, consensus stops
//! and `serve` returns. Sessions are not closed: they live in the replicated data and
//! a client may resume its session (and keep its ephemerals) on any member until
//! it expires; a restart, rolling or not, must not drop every client's ephemerals.

mod admin;
mod connection;
mod four_letter;
mod handler;
mod reconfig;
mod replica;
mod state;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ServerConfig, ServerRole};
use crate::consensus::{self, Consensus, ConsensusError, Role};
use crate::tree::{DataTree, TreeOptions};

use connection::lock;
use state::{Background, State, Work};
use stats::{Phase, ServerStats};

/// Why the server stopped serving.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("accepting client connections failed: {0}")]
    Accept(#[source] std::io::Error),
    #[error("cannot listen for peers: {0}")]
    PeerPort(#[source] std::io::Error),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    #[error("consensus stopped on its own (see the log above); the member stopped")]
    ConsensusStopped,
}

/// What every connection task shares.
pub(crate) struct Shared {
    pub config: ServerConfig,
    pub state: Mutex<State>,
    pub stats: ServerStats,
}

/// The bound sockets [`run`] serves.
pub struct Listeners {
    /// The ZooKeeper client port.
    pub client: TcpListener,
    /// The admin HTTP port, if it is enabled.
    pub admin: Option<TcpListener>,
    /// The peer (Raft) port; `None` listens on an ephemeral loopback port.
    pub peer: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(client: TcpListener) -> Self {
        Self {
            client,
            admin: None,
            peer: None,
        }
    }
}

/// Counts connections per client IP (`maxClientCnxns`, 0 = unlimited).
#[derive(Clone)]
struct ConnectionLimiter {
    max_per_ip: u32,
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// Releases one connection's slot when dropped.
struct Slot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl ConnectionLimiter {
    fn try_acquire(&self, ip: IpAddr) -> Option<Slot> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if self.max_per_ip != 0 && *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(Slot {
            ip,
            counts: Arc::clone(&self.counts),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Accept errors that concern one connection attempt, not the listener.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut
    ) || matches!(error.raw_os_error(), Some(23 | 24)) // ENFILE, EMFILE
}

/// A member whose consensus is open; see the module contract.
pub struct Member {
    shared: Arc<Shared>,
    consensus: Consensus,
    background: mpsc::UnboundedReceiver<Background>,
}

/// Consensus settings for a member; election timing suits one machine or one
/// cluster network, where a crashed leader is replaced well under a second.
fn consensus_options(
    config: &ServerConfig,
    advertise: String,
    faults: Option<consensus::Faults>,
) -> consensus::Options {
    consensus::Options {
        snapshot_every: snapshot_interval(config.snap_count),
        faults,
        ..consensus::Options::new(config.my_id, config.data_dir.clone(), advertise)
    }
}

/// Entries between this member's snapshots: a random number from half of
/// `snap_count` to all of it, drawn once per start, as ZooKeeper draws one for each
/// snapshot. Members that applied the same log would otherwise all write a snapshot
/// at the same moment, and each writing one costs it disk time that its log's
/// fsyncs wait behind.
fn snapshot_interval(snap_count: u64) -> u64 {
    let half = snap_count / 2;
    (half + rand::random_range(0..=snap_count - half)).max(1)
}

/// The voters a member founds the ensemble with: the config's participants, or
/// itself alone.
fn founding_voters(config: &ServerConfig) -> BTreeMap<u64, String> {
    let voters: BTreeMap<u64, String> = config
        .servers
        .iter()
        .filter(|(_, spec)| spec.role == ServerRole::Participant)
        .map(|(id, spec)| (*id, reconfig::member_address(spec)))
        .collect();
    if voters.is_empty() {
        BTreeMap::from([(config.my_id, config.advertised_member_address())])
    } else {
        voters
    }
}

impl Member {
    /// Opens consensus and founds or joins the ensemble; see the module contract.
    pub async fn open(
        config: ServerConfig,
        peer: Option<TcpListener>,
    ) -> Result<Self, ServerError> {
        Self::open_with_faults(config, peer, None).await
    }

    /// [`Member::open`] with links that tests cut ([`consensus::Faults`]), so that
    /// partitions go through the real transport.
    pub async fn open_with_faults(
        config: ServerConfig,
        peer: Option<TcpListener>,
        faults: Option<consensus::Faults>,
    ) -> Result<Self, ServerError> {
        let peer = match peer {
            Some(listener) => listener,
            None => TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(ServerError::PeerPort)?,
        };
        let mut config = config;
        if let Ok(addr) = peer.local_addr() {
            config.peer_port = addr.port();
        }
        let advertise = config.advertised_peer_address();
        let options = TreeOptions {
            ttl_enabled: config.extended_types_enabled,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&config, DataTree::new(options))),
            stats: ServerStats::new(),
            config,
        });
        let machine = Arc::new(replica::Machine {
            shared: Arc::clone(&shared),
        });
        let consensus = Consensus::open(
            consensus_options(&shared.config, advertise, faults),
            peer,
            machine,
        )
        .await?;
        tracing::info!(
            id = shared.config.my_id,
            last_zxid = %format!("0x{:x}", lock(&shared.state).tree.last_zxid()),
            "recovered"
        );
        if !shared.config.join_existing {
            consensus.bootstrap(founding_voters(&shared.config)).await?;
        }
        let (background_tx, background) = mpsc::unbounded_channel();
        lock(&shared.state).set_consensus(consensus.clone(), background_tx);
        Ok(Self {
            shared,
            consensus,
            background,
        })
    }

    /// Stops a member that was opened and never served.
    pub async fn close(self) {
        self.consensus.shutdown().await;
    }

    /// Serves clients on `listeners` until `shutdown` is cancelled.
    pub async fn serve(
        self,
        listeners: impl Into<Listeners>,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        serve(self, listeners.into(), shutdown).await
    }
}

/// [`Member::open`] then [`Member::serve`].
pub async fn run(
    listeners: impl Into<Listeners>,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let mut listeners = listeners.into();
    let mut config = config;
    if let Ok(addr) = listeners.client.local_addr() {
        config.client_port = addr.port();
    }
    let member = Member::open(config, listeners.peer.take()).await?;
    member.serve(listeners, shutdown).await
}

/// Runs `tick` under the state lock every `period` until `stop`.
fn spawn_periodic(
    tracker: &TaskTracker,
    shared: &Arc<Shared>,
    period: Duration,
    stop: CancellationToken,
    tick: impl Fn(&mut State) + Send + 'static,
) {
    let shared = Arc::clone(shared);
    tracker.spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = interval.tick() => tick(&mut lock(&shared.state)),
            }
        }
    });
}

/// Runs syncs and reconfigs, which wait on consensus: a sync asks for the
/// leader's commit index, a reconfig makes its membership changes and then does
/// the same; either is answered once this member has applied that index. A sync
/// that cannot reach the leader closes its connection (ZooKeeper's clients then
/// reconnect elsewhere); a reconfig answers ZooKeeper's error code.
async fn run_background(
    shared: Arc<Shared>,
    consensus: Consensus,
    mut requests: mpsc::UnboundedReceiver<Background>,
    stop: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => return,
            request = requests.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let shared = Arc::clone(&shared);
        let consensus = consensus.clone();
        tokio::spawn(async move {
            let Background {
                conn,
                slot,
                xid,
                work,
            } = request;
            // The index the reply waits for and how to build it; none if the leader is
            // out of reach, and then the connection closes.
            let answer: Option<(i64, state::Build)> = match work {
                Work::Sync(path) => read_index(&consensus).await.map(|zxid| {
                    let build: state::Build = Box::new(move |state: &State| {
                        handler::sync_reply(xid, state.tree.last_zxid(), path)
                    });
                    (zxid, build)
                }),
                Work::Reconfig(changes) => {
                    let config = &shared.config;
                    let catch_up = Duration::from_millis(
                        u64::from(config.init_limit) * u64::from(config.tick_time_ms),
                    );
                    match reconfig::execute(&consensus, changes, catch_up).await {
                        Err(code) => Some((
                            0,
                            Box::new(move |state: &State| {
                                handler::reconfig_refused(state, xid, code)
                            }),
                        )),
                        // Removed: this member never applies the change, so it answers
                        // at once with the membership the leader wrote.
                        Ok(Some(after)) if !after.contains(consensus.id()) => Some((
                            0,
                            Box::new(move |state: &State| {
                                handler::reconfig_reply(state, xid, Some(&after))
                            }),
                        )),
                        Ok(_) => read_index(&consensus).await.map(|zxid| {
                            let build: state::Build = Box::new(move |state: &State| {
                                handler::reconfig_reply(state, xid, None)
                            });
                            (zxid, build)
                        }),
                    }
                }
            };
            let mut state = lock(&shared.state);
            state.background_done(conn);
            match answer {
                Some((zxid, build)) => state.complete_at(zxid, conn, slot, build),
                None => state.send(conn, state::Outbound::Close),
            }
        });
    }
}

/// The leader's commit index as of now, as a zxid; none if the leader is out of reach.
async fn read_index(consensus: &Consensus) -> Option<i64> {
    match consensus.read_index().await {
        Ok(index) => Some(i64::try_from(index).unwrap_or(i64::MAX)),
        Err(e) => {
            tracing::debug!(error = %e, "no read index; closing the connection");
            None
        }
    }
}

/// How long accepting clients waits for a leader and the ensemble's secret; in
/// that time connections wait in the listen backlog instead of being refused.
const SERVICE_WAIT: Duration = Duration::from_secs(5);

/// Waits until this member can serve sessions (a leader is known and the
/// ensemble's secret is applied), for at most [`SERVICE_WAIT`]: after that it
/// accepts anyway, so that four-letter words answer, and sessions are refused
/// until it can serve them. A joiner outside the membership (blank, or removed
/// while it was down) does not wait: nothing but being added makes it serve, so
/// its clients are better refused at once and sent to another member. (A founder
/// is outside too, until it founds the ensemble a moment later.)
async fn wait_for_service(shared: &Shared, consensus: &Consensus, shutdown: &CancellationToken) {
    let mut status = consensus.watch_status();
    let deadline = tokio::time::Instant::now() + SERVICE_WAIT;
    loop {
        let (has_leader, outside) = {
            let status = status.borrow_and_update();
            (status.leader.is_some(), status.role == Role::Outside)
        };
        let waiting_to_be_added = outside && shared.config.join_existing;
        if waiting_to_be_added || (has_leader && lock(&shared.state).tree.secret().is_some()) {
            return;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(deadline) => return,
            _ = status.changed() => {}
            // The secret arrives as an applied entry, not a status change.
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// Follows consensus: closes connections whose writes a generation change may
/// have lost, and all client connections once no leader has been known for an
/// election timeout.
async fn follow_consensus(
    shared: Arc<Shared>,
    consensus: Consensus,
    stop: CancellationToken,
    fatal: CancellationToken,
) {
    let mut generations = consensus.watch_generation();
    let mut status = consensus.watch_status();
    let grace = Duration::from_millis(500);
    let mut leaderless_since: Option<Instant> = None;
    let mut membership_version = status.borrow().membership.version;
    let mut last_role = Role::Stopped;
    let mut check = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = generations.changed() => {
                if changed.is_err() {
                    return;
                }
                let generation = *generations.borrow_and_update();
                lock(&shared.state).generation_changed(generation);
            }
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let (version, role, leaving) = {
                    let status = status.borrow_and_update();
                    (status.membership.version, status.role, status.is_leaving())
                };
                // The status changes with every commit; the tree's lock is taken only
                // for a change of the membership or of this member's role.
                if version != membership_version {
                    membership_version = version;
                    let mut state = lock(&shared.state);
                    state.membership_changed(version);
                    if leaving {
                        // Its clients move to members that stay, now rather than
                        // once this member notices that no leader talks to it.
                        state.close_connections_leaving();
                    }
                }
                if role != last_role {
                    // A new leader takes over session expiry at once.
                    last_role = role;
                    lock(&shared.state).session_tick(role);
                }
            }
            _ = check.tick() => {
                if status.borrow().role == Role::Leader {
                    lock(&shared.state).ensure_secret();
                }
            }
        }
        let (leader, role) = {
            let status = status.borrow();
            (status.leader, status.role)
        };
        if role == Role::Stopped {
            fatal.cancel();
            return;
        }
        match (leader, leaderless_since) {
            (Some(_), _) => leaderless_since = None,
            (None, None) => leaderless_since = Some(Instant::now()),
            (None, Some(since)) if since.elapsed() >= grace => {
                lock(&shared.state).close_all_connections();
                leaderless_since = Some(Instant::now());
            }
            (None, Some(_)) => {}
        }
    }
}

/// How long a stopping leader tries to hand its leadership over.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(1);

/// A leader that stops moves its leadership to the voter that has most of its log,
/// so that writes find a leader at once (the others would elect one within tens of
/// milliseconds anyway, once this member's connections close; see consensus).
async fn hand_over_leadership(consensus: &Consensus) {
    let status = consensus.status();
    if status.role != Role::Leader {
        return;
    }
    let successor = status
        .membership
        .voters
        .keys()
        .filter(|&&id| id != status.id && !status.membership.leaving.contains(&id))
        .max_by_key(|id| status.matched.get(id).copied().unwrap_or(0));
    let Some(&to) = successor else { return };
    match tokio::time::timeout(HAND_OVER_TIMEOUT, consensus.transfer_leadership(to)).await {
        Ok(Ok(())) => tracing::info!(to, "stopping: handed leadership over"),
        Ok(Err(e)) => tracing::warn!(to, error = %e, "stopping: could not hand leadership over"),
        Err(_) => tracing::warn!(to, "stopping: handing leadership over timed out"),
    }
}

/// `shutdownDrainMs`: a member of the ensemble that is told to stop keeps serving the
/// clients it has for that long, so that they move away only once nothing routes new
/// connections here any more. A member outside the membership has nothing to drain.
async fn drain(shared: &Shared, consensus: &Consensus, fatal: &CancellationToken) {
    let period = Duration::from_millis(shared.config.shutdown_drain_ms);
    if period.is_zero() || consensus.status().role == Role::Outside {
        return;
    }
    tracing::info!(
        millis = period.as_millis() as u64,
        "stopping: serving the clients connected here, refusing new ones, for the drain period"
    );
    tokio::select! {
        () = tokio::time::sleep(period) => {}
        // Consensus stopped on its own: nothing left to serve.
        () = fatal.cancelled() => {}
    }
}

async fn serve(
    member: Member,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let Member {
        shared,
        consensus,
        background,
    } = member;
    let Listeners {
        client: listener,
        admin: admin_listener,
        peer: _,
    } = listeners;
    let limiter = ConnectionLimiter {
        max_per_ip: shared.config.max_client_connections,
        counts: Arc::default(),
    };
    lock(&shared.state).client_address = listener.local_addr().ok();
    let fatal = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Not a child of `shutdown`: the clients connected here are served through the
    // drain period that follows it.
    let connections = CancellationToken::new();

    tracker.spawn(run_background(
        Arc::clone(&shared),
        consensus.clone(),
        background,
        connections.clone(),
    ));
    tracker.spawn(follow_consensus(
        Arc::clone(&shared),
        consensus.clone(),
        connections.clone(),
        fatal.clone(),
    ));
    let tick = Duration::from_millis(u64::from(shared.config.tick_time_ms.max(1)));
    let ticking = consensus.clone();
    spawn_periodic(&tracker, &shared, tick, connections.clone(), move |state| {
        let status = ticking.status();
        state.session_tick(status.role);
        if status.role != Role::Leader && status.leader.is_some() {
            let alive = state.alive_sessions();
            if !alive.is_empty() {
                ticking.send_to_leader(replica::LeaderMessage::Alive(alive).encode());
            }
            if let Some((zxid, digest)) = state.digest_to_report() {
                ticking.send_to_leader(replica::LeaderMessage::Digest { zxid, digest }.encode());
            }
        }
    });
    let container_check = Duration::from_millis(shared.config.container_check_interval_ms.max(1));
    let max_never_used = shared.config.container_max_never_used_ms;
    spawn_periodic(
        &tracker,
        &shared,
        container_check,
        connections.clone(),
        move |state| state.clean_containers(max_never_used),
    );

    if let Some(admin_listener) = admin_listener {
        tracker.spawn(admin::serve(
            admin_listener,
            Arc::clone(&shared),
            connections.clone(),
        ));
    }

    wait_for_service(&shared, &consensus, &shutdown).await;
    let served = !shutdown.is_cancelled();
    shared.stats.set_phase(Phase::Serving);
    let mut next_id: u64 = 0;
    let result = loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            () = fatal.cancelled() => break Err(ServerError::ConsensusStopped),
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => break Err(ServerError::Accept(e)),
        };
        let Some(slot) = limiter.try_acquire(peer.ip()) else {
            tracing::warn!(%peer, "too many connections from this address; refusing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let shared = Arc::clone(&shared);
        let stop = connections.clone();
        tracker.spawn(async move {
            connection::serve(stream, peer, next_id, shared, stop).await;
            drop(slot);
        });
    };

    shared.stats.set_phase(Phase::Stopping);
    // From here a new connection is refused at once (the port is closed, not silent),
    // so a client sent here by a stale route tries elsewhere without waiting.
    drop(listener);
    if result.is_ok() {
        if served {
            drain(&shared, &consensus, &fatal).await;
        }
        hand_over_leadership(&consensus).await;
    }
    connections.cancel();
    tracker.close();
    tracker.wait().await;
    consensus.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::snapshot_interval;

    #[test]
    fn snapshot_intervals_spread_over_the_upper_half_of_snap_count() {
        let drawn: std::collections::BTreeSet<u64> =
            (0..200).map(|_| snapshot_interval(100)).collect();
        assert!(drawn.iter().all(|n| (50..=100).contains(n)), "{drawn:?}");
        assert!(
            drawn.len() > 10,
            "the interval is drawn at random: {drawn:?}"
        );
        assert_eq!(snapshot_interval(1), 1);
    }
}
