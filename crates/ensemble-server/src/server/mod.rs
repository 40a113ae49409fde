//! The network layer of one member, in memory: accept client connections and serve
//! the ZooKeeper protocol until shutdown.
//!
//! Contract: [`run`] takes bound [`Listeners`] (tests bind port 0): the client port
//! and, optionally, the admin HTTP port ([`admin`]); a bare client `TcpListener`
//! converts into listeners without an admin port. It also takes a [`ServerConfig`]
//! (its `client_port` is replaced by the port actually bound, for `conf`) and a
//! cancellation token. [`stats`] counts packets, requests and connections for the
//! four-letter words ([`four_letter`]) and the admin port, and holds the serving
//! phase `/readyz` reports: starting, serving once the accept loop runs, stopping
//! once shutdown begins. Each connection runs in its own task
//! ([`connection`]); requests execute against one shared [`state::State`] behind a
//! mutex, which orders every write ([`state`]); [`handler`] maps requests to reads
//! and transactions. A periodic task expires sessions every `tickTime`. Connections
//! beyond `maxClientCnxns` from one IP are closed at once. On shutdown, accepting
//! stops, every connection closes, every session is closed (its ephemerals removed)
//! and `run` returns once all connection tasks have ended.

mod admin;
mod connection;
mod four_letter;
mod handler;
mod state;
mod stats;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;

use connection::lock;
use state::State;
use stats::{Phase, ServerStats};

/// Why the server stopped serving.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("accepting client connections failed: {0}")]
    Accept(#[source] std::io::Error),
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

/// Serves clients on `listener` until `shutdown` is cancelled; see the module contract.
pub async fn run(
    listeners: impl Into<Listeners>,
    mut config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let Listeners {
        client: listener,
        admin: admin_listener,
    } = listeners.into();
    if let Ok(addr) = listener.local_addr() {
        config.client_port = addr.port();
    }
    let tick = Duration::from_millis(u64::from(config.tick_time_ms.max(1)));
    let limiter = ConnectionLimiter {
        max_per_ip: config.max_client_connections,
        counts: Arc::default(),
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(&config)),
        config,
        stats: ServerStats::new(),
    });
    let tracker = TaskTracker::new();
    let connections = shutdown.child_token();

    let expiry_shared = Arc::clone(&shared);
    let expiry_stop = connections.clone();
    tracker.spawn(async move {
        let mut interval = tokio::time::interval(tick);
        loop {
            tokio::select! {
                () = expiry_stop.cancelled() => break,
                _ = interval.tick() => lock(&expiry_shared.state).expire_sessions(),
            }
        }
    });

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
    lock(&shared.state).close_all_sessions();
    result
}
