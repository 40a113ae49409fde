//! The member's admin HTTP port (`admin.serverPort`, 8080 by default), which the
//! operator and Kubernetes probes read.
//!
//! Contract: [`serve`] answers on a bound listener until `shutdown`:
//! - `GET /livez`: 200 `ok` while the process serves HTTP at all;
//! - `GET /readyz`: 200 `ready` once the member serves clients: it is in the
//!   membership, knows the leader and has applied what it knows to be committed
//!   (within [`READY_LAG`] entries); else 503 with the reason;
//! - `GET /status`: JSON the operator parses as its `MemberReport` (camelCase `id`,
//!   `role` leader/follower/learner/candidate/outside, `leaderId` (null when none
//!   is known), `term`, `initialized` (false only for a blank member: no log, no
//!   snapshot, no vote; such a joiner answers with role `outside`), `lastLogIndex`
//!   (0 both for a blank member and for one whose log holds only the founding
//!   entry: `initialized` tells them apart), `commitIndex`, `appliedIndex`,
//!   `membershipVersion`), plus ZooKeeper's `mode`, `version`, `members` (id,
//!   address, role, voting and, on the leader, `matchedIndex` and `lag`),
//!   `connections`, `sessions` and `znodes`.
//! - `GET /metrics`: Prometheus/OpenMetrics text, every name prefixed `ensemble_`.
//!   Gauges of the data tree and sessions are read under the state lock at scrape
//!   time; counters and the latency histogram are [`super::stats`]'s, updated as
//!   requests finish.
//!
//! Mutating calls, each requiring `Authorization: Bearer <token>` with the token
//! read from `admin.tokenFile` (without one configured they are refused with 403):
//! - `POST /bootstrap` (no body): found a new ensemble of this member alone, at
//!   its own address ([`crate::config::ServerConfig::advertised_member_address`]),
//!   answered once it leads. Only a member that was never initialized (a
//!   `joinExisting` member with no log, snapshot or vote) founds; any other is
//!   refused with 409, saying it is already a member of an ensemble or has data.
//!   This call is not forwarded: it concerns this member only.
//! - `POST /members/{id}` with `{"address": "host:peerPort;clientHost:clientPort"}`:
//!   add a learner. The address is where members reach its peer port, then, after
//!   `;`, where clients reach it (optional, but without it `/zookeeper/config`
//!   names no client address for it); a malformed one is refused with 400;
//! - `POST /members/{id}/promote`: make a caught-up learner a voter;
//! - `DELETE /members/{id}`: remove a member;
//! - `POST /voters` with `{"promote": [ids], "remove": [ids]}` (either may be left
//!   out): promote caught-up learners and remove members in one change of the
//!   voters, so that the ensemble goes, say, from one voter to three without ever
//!   having two; an id in both lists, or neither list naming any, is refused with 400;
//! - `POST /leader/{id}`: transfer leadership, answered once `id` leads.
//!
//! Membership calls are forwarded by consensus to the leader from any member.
//! All answer 200 with the new `/status` (a member that the call removes answers
//! with the membership the leader wrote and itself `outside`, as it never applies
//! the change itself), or an error with the reason: 400 (bad body), 401 (no or
//! wrong token), 404 (unknown member), 409 (a change in progress, already a
//! member, not caught up, last voter, not blank), 503 (no leader, timeout).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::connection::lock;
use crate::consensus::{Consensus, ConsensusError, Membership, Role, Status};

use super::four_letter::{consensus_status, mode, VERSION};
use super::reconfig::parse_member_address;
use super::stats::Phase;
use super::Shared;

/// `GET /status`. See the module contract.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusReport {
    id: u64,
    role: &'static str,
    leader_id: Option<u64>,
    term: u64,
    initialized: bool,
    last_log_index: u64,
    commit_index: u64,
    applied_index: u64,
    membership_version: u64,
    /// ZooKeeper's `Mode`: standalone, leader, follower, observer or looking.
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
    id: u64,
    address: String,
    role: &'static str,
    voting: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    matched_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lag: Option<u64>,
}

/// A member this many entries behind what it knows to be committed is not ready.
pub(crate) const READY_LAG: u64 = 1_000;

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Learner => "learner",
        Role::Outside => "outside",
        Role::Stopped => "stopped",
    }
}

/// Why a member is not ready, or `None` if it is.
fn not_ready(status: &Status, has_secret: bool) -> Option<String> {
    match status.role {
        Role::Outside => return Some("not in the membership (waiting to be added)".into()),
        Role::Stopped => return Some("consensus stopped".into()),
        _ => {}
    }
    if status.is_leaving() {
        return Some("being removed from the membership".into());
    }
    if status.leader.is_none() {
        return Some("no leader is known".into());
    }
    let behind = status.commit_index.saturating_sub(status.applied_index);
    if behind > READY_LAG {
        return Some(format!(
            "catching up: {behind} committed entries not applied yet"
        ));
    }
    if !has_secret {
        return Some("waiting for the ensemble's first entries".into());
    }
    None
}

fn members(status: &Status) -> Vec<MemberEntry> {
    let entry = |id: u64, address: &String, voting: bool| {
        let matched = status.matched.get(&id).copied();
        MemberEntry {
            id,
            address: address.clone(),
            role: match (voting, status.leader == Some(id)) {
                (true, true) => "leader",
                (true, false) => "follower",
                (false, _) => "learner",
            },
            voting,
            matched_index: matched,
            lag: matched.map(|m| status.last_log_index.saturating_sub(m)),
        }
    };
    let membership = &status.membership;
    membership
        .voters
        .iter()
        .map(|(id, address)| entry(*id, address, true))
        .chain(
            membership
                .learners
                .iter()
                .map(|(id, address)| entry(*id, address, false)),
        )
        .collect()
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
    /// The bearer token mutating calls need, if one is configured.
    token: Option<String>,
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
        .route("/bootstrap", post(bootstrap))
        .route("/members/{id}", post(add_learner))
        .route("/members/{id}", delete(remove_member))
        .route("/members/{id}/promote", post(promote))
        .route("/voters", post(change_voters))
        .route("/leader/{id}", post(transfer_leadership))
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
        let token = shared.config.admin_token_file.as_ref().and_then(|path| {
            match std::fs::read_to_string(path) {
                Ok(token) if !token.trim().is_empty() => Some(token.trim().to_owned()),
                Ok(_) => {
                    tracing::error!(path = %path.display(), "the admin token file is empty; mutating calls are refused");
                    None
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "cannot read the admin token file; mutating calls are refused");
                    None
                }
            }
        });
        Self {
            shared,
            registry,
            gauges,
            token,
        }
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn readyz(State(admin): State<Arc<Admin>>) -> Response {
    let unavailable = |reason: String| (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
    match admin.shared.stats.phase() {
        Phase::Serving => {}
        Phase::Starting => return unavailable("not serving clients yet: recovering".into()),
        Phase::Stopping => return unavailable("shutting down: no longer serving clients".into()),
    }
    let has_secret = lock(&admin.shared.state).tree.secret().is_some();
    match consensus_status(&admin.shared) {
        None => unavailable("consensus is not open yet".into()),
        Some(status) => match not_ready(&status, has_secret) {
            Some(reason) => unavailable(reason),
            None => (StatusCode::OK, "ready").into_response(),
        },
    }
}

async fn status(State(admin): State<Arc<Admin>>) -> Response {
    status_after(&admin, None)
}

/// The `/status` answer. With `after`, the membership that a change this member asked
/// for left behind: if this member is not in it, it never applies that change (the
/// leader stops replicating to it), so it answers with `after`, as the leader wrote
/// it, and itself outside, instead of the membership it still holds.
fn status_after(admin: &Admin, after: Option<Arc<Membership>>) -> Response {
    let (connections, sessions, znodes) = {
        let state = lock(&admin.shared.state);
        (
            state.connection_count(),
            state.sessions.len(),
            state.tree.node_count(),
        )
    };
    let Some(mut status) = consensus_status(&admin.shared) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "consensus is not open yet").into_response();
    };
    if let Some(after) = after.filter(|after| !after.contains(status.id)) {
        status.membership = after;
        status.role = Role::Outside;
    }
    let report = StatusReport {
        id: status.id,
        role: role_name(status.role),
        leader_id: status.leader,
        term: status.term,
        initialized: status.initialized,
        last_log_index: status.last_log_index,
        commit_index: status.commit_index,
        applied_index: status.applied_index,
        membership_version: status.membership.version,
        mode: mode(&status),
        version: VERSION,
        members: members(&status),
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

// ---- mutating calls ----

/// Checks the bearer token; the refusal to send if it does not match.
fn authorize(admin: &Admin, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(expected) = &admin.token else {
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "no admin token is configured (admin.tokenFile): membership changes are disabled",
            )
                .into_response(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compare every byte, so the time taken does not tell how much matched.
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(Box::new(
            (StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response(),
        ))
    }
}

fn refusal(error: &ConsensusError) -> Response {
    let code = match error {
        ConsensusError::UnknownMember(_) => StatusCode::NOT_FOUND,
        ConsensusError::AlreadyMember(_)
        | ConsensusError::NotCaughtUp { .. }
        | ConsensusError::ChangeInProgress
        | ConsensusError::LastVoter(_) => StatusCode::CONFLICT,
        ConsensusError::NoLeader | ConsensusError::Timeout | ConsensusError::Stopped => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ConsensusError::Storage { .. } | ConsensusError::Other(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (code, error.to_string()).into_response()
}

/// Consensus for a mutating call once its token is checked, or the refusal.
fn authorized(admin: &Admin, headers: &HeaderMap) -> Result<Consensus, Box<Response>> {
    authorize(admin, headers)?;
    lock(&admin.shared.state)
        .consensus()
        .cloned()
        .ok_or_else(|| {
            Box::new((StatusCode::SERVICE_UNAVAILABLE, "consensus is not open yet").into_response())
        })
}

/// Runs a membership call with the token checked, answering with the new status.
async fn membership_call<F, Fut>(admin: Arc<Admin>, headers: HeaderMap, call: F) -> Response
where
    F: FnOnce(Consensus) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Arc<Membership>>, ConsensusError>>,
{
    let consensus = match authorized(&admin, &headers) {
        Ok(consensus) => consensus,
        Err(refused) => return *refused,
    };
    match call(consensus).await {
        Ok(after) => status_after(&admin, after),
        Err(error) => refusal(&error),
    }
}

/// How long `POST /bootstrap` waits for the new ensemble's member to lead.
const LEAD_WAIT: Duration = Duration::from_secs(10);

/// Why a member that is not blank does not found an ensemble.
fn not_blank(status: &Status) -> String {
    let membership = &status.membership;
    if membership.contains(status.id) {
        format!(
            "member {} is already a member of an ensemble (membership version {})",
            status.id, membership.version
        )
    } else {
        format!(
            "member {} has data from an ensemble (a log, a snapshot or a vote of term {}); \
             only a blank member founds one",
            status.id, status.term
        )
    }
}

async fn bootstrap(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    let consensus = match authorized(&admin, &headers) {
        Ok(consensus) => consensus,
        Err(refused) => return *refused,
    };
    let config = &admin.shared.config;
    let id = config.my_id;
    let voters = BTreeMap::from([(id, config.advertised_member_address())]);
    match consensus.bootstrap(voters).await {
        Ok(true) => {}
        Ok(false) => return (StatusCode::CONFLICT, not_blank(&consensus.status())).into_response(),
        Err(error) => return refusal(&error),
    }
    let mut watch = consensus.watch_status();
    let leads = watch.wait_for(|s| s.role == Role::Leader && s.leader == Some(id));
    let led = match tokio::time::timeout(LEAD_WAIT, leads).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(ConsensusError::Stopped),
        Err(_) => Err(ConsensusError::Timeout),
    };
    match led {
        Ok(()) => status_after(&admin, None),
        Err(error) => refusal(&error),
    }
}

#[derive(serde::Deserialize)]
struct AddLearner {
    address: String,
}

async fn add_learner(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let address = serde_json::from_str(&body)
        .map_err(|e| e.to_string())
        .and_then(|request: AddLearner| parse_member_address(&request.address));
    let address = match address {
        Ok(address) => address,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"address\": \"host:peerPort;clientHost:clientPort\"}}: {error}"
                ),
            )
                .into_response()
        }
    };
    membership_call(admin, headers, move |c| async move {
        c.add_learner(id, address).await.map(|()| None)
    })
    .await
}

async fn promote(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    membership_call(admin, headers, move |c| async move {
        c.promote(id).await.map(|()| None)
    })
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeVoters {
    #[serde(default)]
    promote: BTreeSet<u64>,
    #[serde(default)]
    remove: BTreeSet<u64>,
}

async fn change_voters(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let request = serde_json::from_str(&body)
        .map_err(|e| e.to_string())
        .and_then(|request: ChangeVoters| {
            if let Some(id) = request.promote.intersection(&request.remove).next() {
                Err(format!("member {id} is both promoted and removed"))
            } else if request.promote.is_empty() && request.remove.is_empty() {
                Err("no member named".to_string())
            } else {
                Ok(request)
            }
        });
    let ChangeVoters { promote, remove } = match request {
        Ok(request) => request,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("expected {{\"promote\": [ids], \"remove\": [ids]}}: {error}"),
            )
                .into_response()
        }
    };
    membership_call(admin, headers, move |c| async move {
        c.change_voters(promote, remove).await.map(Some)
    })
    .await
}

async fn remove_member(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    membership_call(admin, headers, move |c| async move {
        c.remove(id).await.map(Some)
    })
    .await
}

async fn transfer_leadership(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    membership_call(admin, headers, move |c| async move {
        c.transfer_leadership(id).await.map(|()| None)
    })
    .await
}
