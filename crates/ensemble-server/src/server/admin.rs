//! The member's admin HTTP port (`admin.serverPort`, 8080 by default), which the
//! operator and Kubernetes probes read.
//!
//! Contract: [`serve`] answers on a bound listener until `shutdown`:
//! - `GET /livez`: 200 `ok` while the process serves HTTP at all;
//! - `GET /readyz`: 200 `ready` once the member serves clients, else 503 with the
//!   reason (recovering, or shutting down);
//! - `GET /status`: JSON the operator parses as its `MemberReport` (camelCase `id`,
//!   `role`, `leaderId`, `term`, `commitIndex`, `appliedIndex`, `membershipVersion`),
//!   plus `mode`, `version`, `members`, `connections`, `sessions` and `znodes`. Until
//!   replication lands a member is alone, and the honest report is that it leads an
//!   ensemble of one: id 1, role `leader`, term 1, membership version 1, and commit
//!   and applied index both the last zxid (every write commits and applies at once).
//! - `GET /metrics`: Prometheus/OpenMetrics text, every name prefixed `ensemble_`.
//!   Gauges of the data tree and sessions are read under the state lock at scrape
//!   time; counters and the latency histogram are [`super::stats`]'s, updated as
//!   requests finish.
//!
//! Mutating calls (add a learner, promote, remove, transfer leadership) come with
//! replication.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::connection::lock;
use super::four_letter::{MEMBER_ID, VERSION};
use super::stats::Phase;
use super::Shared;

/// `GET /status`. See the module contract.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusReport {
    id: i64,
    role: &'static str,
    leader_id: i64,
    term: u64,
    commit_index: u64,
    applied_index: u64,
    membership_version: i64,
    /// ZooKeeper's name for a member alone: `standalone`.
    mode: &'static str,
    version: &'static str,
    members: Vec<MemberEntry>,
    connections: usize,
    sessions: usize,
    znodes: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberEntry {
    id: i64,
    role: &'static str,
    voting: bool,
}

/// Gauges set from the state at each scrape.
#[derive(Default)]
struct Gauges {
    znodes: Gauge,
    ephemerals: Gauge,
    watches: Gauge,
    sessions: Gauge,
    connections: Gauge,
    last_zxid: Gauge,
}

struct Admin {
    shared: Arc<Shared>,
    registry: Registry,
    gauges: Gauges,
}

/// Serves the admin endpoints on `listener` until `shutdown`; a failure is logged,
/// never fatal to the member (clients are still served).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let admin = Arc::new(Admin::new(shared));
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(admin);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "admin HTTP port stopped");
    }
}

impl Admin {
    fn new(shared: Arc<Shared>) -> Self {
        let mut registry = Registry::with_prefix("ensemble");
        let gauges = Gauges::default();
        let stats = &shared.stats;
        for (name, help, gauge) in [
            ("znode_count", "Znodes in the data tree", &gauges.znodes),
            ("ephemerals_count", "Ephemeral znodes", &gauges.ephemerals),
            (
                "watch_count",
                "Watches registered, data and child watches together",
                &gauges.watches,
            ),
            ("session_count", "Live sessions", &gauges.sessions),
            (
                "connection_count",
                "Open client connections",
                &gauges.connections,
            ),
            (
                "last_zxid",
                "Zxid of the last applied transaction",
                &gauges.last_zxid,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "outstanding_requests",
            "Requests received and not yet answered",
            stats.outstanding_metric(),
        );
        registry.register(
            "requests",
            "Requests answered, by ZooKeeper operation and result code",
            stats.requests_metric(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from reading a request to queuing its reply",
            stats.request_seconds_metric(),
        );
        registry.register(
            "packets_received",
            "Frames read from clients (a four-letter word counts as one)",
            stats.packets_received_metric(),
        );
        registry.register(
            "packets_sent",
            "Frames written to clients: replies and watch notifications",
            stats.packets_sent_metric(),
        );
        Self {
            shared,
            registry,
            gauges,
        }
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn readyz(State(admin): State<Arc<Admin>>) -> Response {
    match admin.shared.stats.phase() {
        Phase::Serving => (StatusCode::OK, "ready").into_response(),
        Phase::Starting => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not serving clients yet: recovering the data",
        )
            .into_response(),
        Phase::Stopping => (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down: no longer serving clients",
        )
            .into_response(),
    }
}

async fn status(State(admin): State<Arc<Admin>>) -> Response {
    let (last_zxid, connections, sessions, znodes) = {
        let state = lock(&admin.shared.state);
        (
            state.tree.last_zxid(),
            state.connection_count(),
            state.sessions.len(),
            state.tree.node_count(),
        )
    };
    let index = u64::try_from(last_zxid).unwrap_or(0);
    let report = StatusReport {
        id: MEMBER_ID,
        role: "leader",
        leader_id: MEMBER_ID,
        term: 1,
        commit_index: index,
        applied_index: index,
        membership_version: 1,
        mode: "standalone",
        version: VERSION,
        members: vec![MemberEntry {
            id: MEMBER_ID,
            role: "leader",
            voting: true,
        }],
        connections,
        sessions,
        znodes,
    };
    match serde_json::to_string(&report) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the status: {error}"),
        )
            .into_response(),
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let g = &admin.gauges;
    {
        let state = lock(&admin.shared.state);
        g.connections.set(saturating_i64(state.connection_count()));
        g.znodes.set(saturating_i64(state.tree.node_count()));
        g.ephemerals
            .set(saturating_i64(state.tree.ephemeral_count()));
        g.watches.set(saturating_i64(state.watches.len()));
        g.sessions.set(saturating_i64(state.sessions.len()));
        g.last_zxid.set(state.tree.last_zxid());
    }
    let mut body = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut body, &admin.registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {error}"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
