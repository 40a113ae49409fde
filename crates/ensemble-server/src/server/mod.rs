//! The network layer of one member: accept client connections and serve the
//! ZooKeeper protocol until shutdown.
//!
//! Contract: [`Member::open`] recovers the member's data from its data directory
//! (or starts empty, in memory, without one) and fails with a clear
//! [`ServerError`] if the directory is unusable; a member that replayed log
//! entries writes a fresh snapshot before serving. [`Member::serve`] (or [`run`],
//! both steps at once) takes bound [`Listeners`] (tests bind port 0): the client
//! port and, optionally, the admin HTTP port ([`admin`]); a bare client
//! `TcpListener` converts into listeners without an admin port. The config's
//! `client_port` is replaced by the port actually bound (for `conf`).
//!
//! Each connection runs in its own task ([`connection`]); requests execute
//! against one shared [`state::State`] behind a mutex ([`handler`] maps them to
//! reads and transactions); the [`commit`] loop makes writes durable before they
//! are applied and answered. [`stats`] counts packets, requests and connections
//! for the four-letter words ([`four_letter`]) and the admin port, and holds the
//! serving phase `/readyz` reports: starting, serving once the accept loop runs,
//! stopping once shutdown begins. Periodic tasks expire sessions every `tickTime`
//! and delete empty containers and expired TTL nodes every
//! `znode.container.checkIntervalMs`. Connections beyond `maxClientCnxns` from one
//! IP are closed at once.
//!
//! On shutdown, accepting stops, every connection closes, what was proposed is
//! made durable and `serve` returns. Sessions are not closed: like ZooKeeper's,
//! they live in the data and a client may resume its session (and keep its
//! ephemerals) on the restarted member until it expires; a restart, rolling or
//! not, must not drop every client's ephemerals. A failing transaction log stops
//! the member with [`ServerError::Log`].

mod admin;
mod commit;
mod connection;
mod four_letter;
mod handler;
mod state;
mod stats;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::storage::{self, Storage, StorageError};
use crate::tree::snapshot::snapshot;
use crate::tree::{DataTree, TreeOptions};

use connection::lock;
use state::State;
use stats::{Phase, ServerStats};

/// Why the server stopped serving.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("accepting client connections failed: {0}")]
    Accept(#[source] std::io::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot start the commit thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the transaction log failed; the member stopped (see the log above)")]
    Log,
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
}

impl From<TcpListener> for Listeners {
    fn from(client: TcpListener) -> Self {
        Self {
            client,
            admin: None,
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

/// A member recovered and ready to serve; see the module contract.
pub struct Member {
    config: ServerConfig,
    storage: Option<Storage>,
    tree: DataTree,
    secret: [u8; storage::SECRET_LEN],
}

impl Member {
    /// Recovers the member's data; see the module contract.
    pub fn open(config: ServerConfig) -> Result<Self, ServerError> {
        let options = TreeOptions {
            ttl_enabled: config.extended_types_enabled,
        };
        let Some(dir) = config.data_dir.clone() else {
            return Ok(Self {
                config,
                storage: None,
                tree: DataTree::new(options),
                secret: rand::random(),
            });
        };
        let (storage, recovered) = Storage::open(&dir, options)?;
        tracing::info!(
            dir = %dir.display(),
            snapshot_zxid = %format!("0x{:x}", recovered.snapshot_zxid),
            replayed = recovered.replayed,
            last_zxid = %format!("0x{:x}", recovered.tree.last_zxid()),
            "recovered the data directory"
        );
        if recovered.replayed > 0 {
            let zxid = recovered.tree.last_zxid();
            storage::write_snapshot(&dir, zxid, &snapshot(&recovered.tree))
                .and_then(|()| storage::purge(&dir, config.snap_retain_count))
                .map_err(|source| StorageError::Io {
                    dir: dir.clone(),
                    source,
                })?;
        }
        Ok(Self {
            config,
            storage: Some(storage),
            tree: recovered.tree,
            secret: recovered.secret,
        })
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
    Member::open(config)?.serve(listeners, shutdown).await
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

async fn serve(
    member: Member,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let Member {
        mut config,
        storage,
        tree,
        secret,
    } = member;
    let Listeners {
        client: listener,
        admin: admin_listener,
    } = listeners;
    if let Ok(addr) = listener.local_addr() {
        config.client_port = addr.port();
    }
    if let Some(addr) = admin_listener.as_ref().and_then(|l| l.local_addr().ok()) {
        config.admin_port = addr.port();
    }
    let limiter = ConnectionLimiter {
        max_per_ip: config.max_client_connections,
        counts: Arc::default(),
    };
    let wake = Arc::new(Condvar::new());
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(&config, tree, &secret, Arc::clone(&wake))),
        config,
        stats: ServerStats::new(),
    });
    let fatal = CancellationToken::new();
    let committer = commit::spawn(Arc::clone(&shared), wake, storage, fatal.clone())
        .map_err(ServerError::Thread)?;
    let tracker = TaskTracker::new();
    let connections = shutdown.child_token();

    let tick = Duration::from_millis(u64::from(shared.config.tick_time_ms.max(1)));
    spawn_periodic(
        &tracker,
        &shared,
        tick,
        connections.clone(),
        State::expire_sessions,
    );
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

    shared.stats.set_phase(Phase::Serving);
    let mut next_id: u64 = 0;
    let result = loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            () = fatal.cancelled() => break Err(ServerError::Log),
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
    connections.cancel();
    tracker.close();
    tracker.wait().await;
    lock(&shared.state).stop();
    // The commit loop finishes what was proposed before it returns.
    let _ = tokio::task::spawn_blocking(move || committer.join()).await;
    if fatal.is_cancelled() {
        return Err(ServerError::Log);
    }
    result
}
