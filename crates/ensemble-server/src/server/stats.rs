//! Counters of one member, read by the four-letter words and the admin port's
//! metrics: packets in and out, requests in flight, request latency, requests by
//! operation and result, the serving phase, and one record per live connection
//! (ZooKeeper's `ServerStats`, and the per-connection half of `ServerCnxn`).
//!
//! Contract: a connection task calls [`ServerStats::open_connection`] once, then on
//! the returned [`ConnectionStats`] `frame_received` per frame read,
//! `four_letter_word` instead if the connection carries a word, `frame_sent` per
//! frame written, `session_attached` once its session is known, and
//! [`ConnectionStats::begin`] when a request starts; the [`InFlight`] it gets back is
//! finished with the reply frame (dropping it unfinished only lowers the
//! outstanding count, so a request abandoned on any path is never stuck "queued").
//! [`ServerStats::close_connection`] forgets the connection; server totals keep
//! what it contributed. Updates are atomics, plus one uncontended per-connection
//! mutex per reply; the connection table's mutex is taken on connect, disconnect and
//! when a word or scrape lists connections. Latencies are whole milliseconds, as
//! ZooKeeper reports them, and seconds in the histogram. As in ZooKeeper, a
//! four-letter word counts as one received packet and its text reply as none. Each
//! frame read or written also stamps the connection's last I/O time, from which
//! `dump` tells when ZooKeeper would expire the connection.
//!
//! Resets, for `srst` and `crst`: [`ServerStats::reset`] zeroes what ZooKeeper's
//! `ServerStats.reset` does (the latency min/avg/max and the packet counts that
//! [`ServerStats::summary`] reports); the Prometheus metrics stay monotonic, as
//! ZooKeeper's Prometheus provider leaves them, so a scrape never sees a counter go
//! back. [`ServerStats::reset_connections`] zeroes every live connection's packet
//! counts and last-response figures (ZooKeeper's `ServerCnxn.resetStats`), but not
//! its requests in flight.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::protocol::frame::LENGTH_PREFIX;
use crate::protocol::{ErrorCode, OpCode, Reader, Record, ReplyHeader};

use super::state::{wall_ms, ConnId};

/// Where the member is in its life, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Recovering its data; clients are not accepted yet.
    Starting,
    /// Accepting and serving clients.
    Serving,
    /// Shutting down; no new clients.
    Stopping,
}

/// Labels of `ensemble_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// ZooKeeper's operation name (`Request.op2String`), e.g. `getData`.
    pub op: &'static str,
    /// `ok`, or the lower-cased `KeeperException.Code` name, e.g. `nonode`.
    pub result: &'static str,
}

/// Latency in whole milliseconds: ZooKeeper's `AvgMinMaxCounter`.
struct Latency {
    min: AtomicU64,
    max: AtomicU64,
    total: AtomicU64,
    count: AtomicU64,
}

impl Latency {
    fn new() -> Self {
        Self {
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            total: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Back to empty (ZooKeeper's `AvgMinMaxCounter.reset`). A request finishing
    /// meanwhile may count before or after the reset, or partly: the figures are
    /// statistics, not accounts.
    fn reset(&self) {
        self.min.store(u64::MAX, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
    }

    fn add(&self, ms: u64) {
        self.min.fetch_min(ms, Ordering::Relaxed);
        self.max.fetch_max(ms, Ordering::Relaxed);
        self.total.fetch_add(ms, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// min, avg (rounded half-up to 4 decimals, as ZooKeeper does), max; 0 when empty.
    fn snapshot(&self) -> (u64, f64, u64) {
        let min = self.min.load(Ordering::Relaxed);
        let count = self.count.load(Ordering::Relaxed);
        let avg = if count == 0 {
            0.0
        } else {
            let avg = self.total.load(Ordering::Relaxed) as f64 / count as f64;
            (avg * 10_000.0).round() / 10_000.0
        };
        let min = if min == u64::MAX { 0 } else { min };
        (min, avg, self.max.load(Ordering::Relaxed))
    }
}

/// Whole-server counters, shared by every connection's record.
struct Totals {
    packets_received: Counter,
    packets_sent: Counter,
    outstanding: Gauge,
    latency: Latency,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histogram,
}

/// The server's counters. See the module contract.
pub(crate) struct ServerStats {
    started: Instant,
    phase: AtomicU8,
    totals: Arc<Totals>,
    /// The packet counters' values at the last reset: the summary counts from them.
    received_at_reset: AtomicU64,
    sent_at_reset: AtomicU64,
    connections: Mutex<BTreeMap<ConnId, Arc<ConnectionStats>>>,
}

/// What `srvr`/`stat` and `mntr` print from [`ServerStats`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    pub min_latency_ms: u64,
    pub avg_latency_ms: f64,
    pub max_latency_ms: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub outstanding: u64,
    pub connections: usize,
    pub uptime: Duration,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters stay meaningful even if a panic interrupted an update.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ServerStats {
    pub fn new() -> Self {
        // From 10 µs to about 5 s: an in-memory read to a slow fsync'd write.
        let buckets = prometheus_client::metrics::histogram::exponential_buckets(1e-5, 2.0, 20);
        Self {
            started: Instant::now(),
            phase: AtomicU8::new(Phase::Starting as u8),
            totals: Arc::new(Totals {
                packets_received: Counter::default(),
                packets_sent: Counter::default(),
                outstanding: Gauge::default(),
                latency: Latency::new(),
                requests: Family::default(),
                request_seconds: Histogram::new(buckets),
            }),
            received_at_reset: AtomicU64::new(0),
            sent_at_reset: AtomicU64::new(0),
            connections: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            p if p == Phase::Serving as u8 => Phase::Serving,
            p if p == Phase::Stopping as u8 => Phase::Stopping,
            _ => Phase::Starting,
        }
    }

    /// Starts the record of a new connection.
    pub fn open_connection(&self, id: ConnId, peer: SocketAddr) -> Arc<ConnectionStats> {
        let now = wall_ms();
        let record = Arc::new(ConnectionStats {
            peer,
            established_ms: now,
            last_io_ms: AtomicI64::new(now),
            four_letter: AtomicBool::new(false),
            session_id: AtomicI64::new(0),
            session_timeout_ms: AtomicI32::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            outstanding: AtomicU64::new(0),
            last: Mutex::new(LastResponse::default()),
            totals: Arc::clone(&self.totals),
        });
        locked(&self.connections).insert(id, Arc::clone(&record));
        record
    }

    pub fn close_connection(&self, id: ConnId) {
        locked(&self.connections).remove(&id);
    }

    /// The live connections, by connection id.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let records: Vec<Arc<ConnectionStats>> =
            locked(&self.connections).values().cloned().collect();
        records.iter().map(|r| r.info()).collect()
    }

    /// Each live connection's session id, 0 for one without a session.
    pub fn session_ids(&self) -> BTreeMap<ConnId, i64> {
        locked(&self.connections)
            .iter()
            .map(|(id, r)| (*id, r.session_id.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn connection_count(&self) -> usize {
        locked(&self.connections).len()
    }

    /// `srst`: see the module contract.
    pub fn reset(&self) {
        self.totals.latency.reset();
        self.received_at_reset
            .store(self.totals.packets_received.get(), Ordering::Relaxed);
        self.sent_at_reset
            .store(self.totals.packets_sent.get(), Ordering::Relaxed);
    }

    /// `crst`: see the module contract.
    pub fn reset_connections(&self) {
        let records: Vec<Arc<ConnectionStats>> =
            locked(&self.connections).values().cloned().collect();
        for record in records {
            record.reset();
        }
    }

    pub fn summary(&self) -> Summary {
        let (min, avg, max) = self.totals.latency.snapshot();
        Summary {
            min_latency_ms: min,
            avg_latency_ms: avg,
            max_latency_ms: max,
            packets_received: self
                .totals
                .packets_received
                .get()
                .saturating_sub(self.received_at_reset.load(Ordering::Relaxed)),
            packets_sent: self
                .totals
                .packets_sent
                .get()
                .saturating_sub(self.sent_at_reset.load(Ordering::Relaxed)),
            outstanding: u64::try_from(self.totals.outstanding.get()).unwrap_or(0),
            connections: self.connection_count(),
            uptime: self.started.elapsed(),
        }
    }

    // The metric handles, for the admin port's registry (they share their values).

    pub fn packets_received_metric(&self) -> Counter {
        self.totals.packets_received.clone()
    }

    pub fn packets_sent_metric(&self) -> Counter {
        self.totals.packets_sent.clone()
    }

    pub fn outstanding_metric(&self) -> Gauge {
        self.totals.outstanding.clone()
    }

    pub fn requests_metric(&self) -> Family<RequestLabels, Counter> {
        self.totals.requests.clone()
    }

    pub fn request_seconds_metric(&self) -> Histogram {
        self.totals.request_seconds.clone()
    }
}

/// The last reply and latency figures of one connection (`ServerCnxn`'s fields).
#[derive(Debug, Clone)]
struct LastResponse {
    op: &'static str,
    cxid: i64,
    zxid: i64,
    at_ms: i64,
    latency_ms: u64,
    min_ms: u64,
    max_ms: u64,
    total_ms: u64,
    count: u64,
}

impl Default for LastResponse {
    fn default() -> Self {
        Self {
            op: "NA",
            cxid: -1,
            zxid: -1,
            at_ms: 0,
            latency_ms: 0,
            min_ms: u64::MAX,
            max_ms: 0,
            total_ms: 0,
            count: 0,
        }
    }
}

/// One live connection's record. See the module contract.
pub(crate) struct ConnectionStats {
    peer: SocketAddr,
    established_ms: i64,
    /// Wall-clock milliseconds of the last frame read or written.
    last_io_ms: AtomicI64,
    four_letter: AtomicBool,
    session_id: AtomicI64,
    session_timeout_ms: AtomicI32,
    received: AtomicU64,
    sent: AtomicU64,
    outstanding: AtomicU64,
    last: Mutex<LastResponse>,
    totals: Arc<Totals>,
}

/// A snapshot of one connection, what `cons` and `stat` print.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConnectionInfo {
    pub peer: SocketAddr,
    /// ZooKeeper prints the selector's interest ops: 1 (read) while serving, 0 for a
    /// connection that only carries a four-letter word.
    pub interest_ops: u8,
    pub queued: u64,
    pub received: u64,
    pub sent: u64,
    /// Wall-clock milliseconds of the last frame read or written (at first, when the
    /// connection was accepted).
    pub last_io_ms: i64,
    /// Present once the connection has a session.
    pub session: Option<SessionInfo>,
}

/// The session half of [`ConnectionInfo`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionInfo {
    pub id: i64,
    /// ZooKeeper's short name of the last operation (`GETD`, `CREA`...), `NA` before any.
    pub last_op: &'static str,
    /// Wall-clock milliseconds when the connection was accepted.
    pub established_ms: i64,
    pub timeout_ms: i32,
    /// The last non-negative xid answered, if any.
    pub last_cxid: Option<i64>,
    /// -1 before any reply, as in ZooKeeper.
    pub last_zxid: i64,
    /// Wall-clock milliseconds of the last reply (ZooKeeper uses its monotonic clock
    /// here, which carries no meaning outside the JVM; a wall clock does).
    pub last_response_ms: i64,
    pub last_latency_ms: u64,
    pub min_latency_ms: u64,
    /// Integer division, as in ZooKeeper's `ServerCnxn`.
    pub avg_latency_ms: u64,
    pub max_latency_ms: u64,
}

impl ConnectionStats {
    pub fn frame_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.totals.packets_received.inc();
        self.last_io_ms.store(wall_ms(), Ordering::Relaxed);
    }

    /// The connection carries a four-letter word (one packet) and nothing else.
    pub fn four_letter_word(&self) {
        self.four_letter.store(true, Ordering::Relaxed);
        self.frame_received();
    }

    /// A frame was written; a four-letter word's text is not a packet.
    pub fn frame_sent(&self) {
        if !self.four_letter.load(Ordering::Relaxed) {
            self.sent.fetch_add(1, Ordering::Relaxed);
            self.totals.packets_sent.inc();
        }
        self.last_io_ms.store(wall_ms(), Ordering::Relaxed);
    }

    /// `crst` for this connection: see the module contract.
    fn reset(&self) {
        self.received.store(0, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
        *locked(&self.last) = LastResponse::default();
    }

    pub fn session_attached(&self, session_id: i64, timeout_ms: i32) {
        self.session_id.store(session_id, Ordering::Relaxed);
        self.session_timeout_ms.store(timeout_ms, Ordering::Relaxed);
    }

    /// A request of `op` starts; finish the result with its reply frame.
    pub fn begin(self: &Arc<Self>, op: OpCode) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        self.totals.outstanding.inc();
        InFlight {
            conn: Arc::clone(self),
            op,
            started: Instant::now(),
        }
    }

    fn info(&self) -> ConnectionInfo {
        let session_id = self.session_id.load(Ordering::Relaxed);
        let session = (session_id != 0).then(|| {
            let last = locked(&self.last).clone();
            SessionInfo {
                id: session_id,
                last_op: last.op,
                established_ms: self.established_ms,
                timeout_ms: self.session_timeout_ms.load(Ordering::Relaxed),
                last_cxid: (last.cxid >= 0).then_some(last.cxid),
                last_zxid: last.zxid,
                last_response_ms: last.at_ms,
                last_latency_ms: last.latency_ms,
                min_latency_ms: if last.min_ms == u64::MAX {
                    0
                } else {
                    last.min_ms
                },
                avg_latency_ms: last.total_ms.checked_div(last.count).unwrap_or(0),
                max_latency_ms: last.max_ms,
            }
        });
        ConnectionInfo {
            peer: self.peer,
            interest_ops: u8::from(!self.four_letter.load(Ordering::Relaxed)),
            queued: self.outstanding.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            last_io_ms: self.last_io_ms.load(Ordering::Relaxed),
            session,
        }
    }
}

/// A request being served; see [`ConnectionStats::begin`].
pub(crate) struct InFlight {
    conn: Arc<ConnectionStats>,
    op: OpCode,
    started: Instant,
}

impl InFlight {
    /// Records the reply: latency, result and the connection's last-response fields.
    pub fn finish(self, reply_frame: &[u8]) {
        let elapsed = self.started.elapsed();
        let header = reply_frame
            .get(LENGTH_PREFIX..)
            .and_then(|body| ReplyHeader::read(&mut Reader::new(body)).ok());
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let totals = &self.conn.totals;
        totals.latency.add(ms);
        totals.request_seconds.observe(elapsed.as_secs_f64());
        totals
            .requests
            .get_or_create(&RequestLabels {
                op: op_name(self.op),
                result: header.as_ref().map_or("unknown", |h| result_name(h.err)),
            })
            .inc();
        let mut last = locked(&self.conn.last);
        last.op = short_op_name(self.op);
        if let Some(header) = header {
            // Special xids (pings, notifications) are negative and do not count.
            if header.xid >= 0 {
                last.cxid = i64::from(header.xid);
            }
            last.zxid = header.zxid;
        }
        last.at_ms = wall_ms();
        last.latency_ms = ms;
        last.min_ms = last.min_ms.min(ms);
        last.max_ms = last.max_ms.max(ms);
        last.total_ms = last.total_ms.saturating_add(ms);
        last.count += 1;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.conn.totals.outstanding.dec();
    }
}

/// ZooKeeper's operation names (`Request.op2String`).
pub(crate) fn op_name(op: OpCode) -> &'static str {
    match op {
        OpCode::Notification => "notification",
        OpCode::Create => "create",
        OpCode::Delete => "delete",
        OpCode::Exists => "exists",
        OpCode::GetData => "getData",
        OpCode::SetData => "setData",
        OpCode::GetAcl => "getACL",
        OpCode::SetAcl => "setACL",
        OpCode::GetChildren => "getChildren",
        OpCode::Sync => "sync",
        OpCode::Ping => "ping",
        OpCode::GetChildren2 => "getChildren2",
        OpCode::Check => "check",
        OpCode::Multi => "multi",
        OpCode::Create2 => "create2",
        OpCode::Reconfig => "reconfig",
        OpCode::CheckWatches => "checkWatches",
        OpCode::RemoveWatches => "removeWatches",
        OpCode::CreateContainer => "createContainer",
        OpCode::DeleteContainer => "deleteContainer",
        OpCode::CreateTtl => "createTTL",
        OpCode::MultiRead => "multiRead",
        OpCode::Auth => "auth",
        OpCode::SetWatches => "setWatches",
        OpCode::Sasl => "sasl",
        OpCode::GetEphemerals => "getEphemerals",
        OpCode::GetAllChildrenNumber => "getAllChildrenNumber",
        OpCode::SetWatches2 => "setWatches2",
        OpCode::AddWatch => "addWatch",
        OpCode::WhoAmI => "whoAmI",
        OpCode::CreateSession => "createSession",
        OpCode::CloseSession => "closeSession",
        OpCode::Error => "error",
    }
}

/// The short names `cons` prints as `lop` (ZooKeeper's `FinalRequestProcessor`).
/// ZooKeeper answers auth outside that processor and so has no name for it; `AUTH`
/// is ours.
fn short_op_name(op: OpCode) -> &'static str {
    match op {
        OpCode::Ping => "PING",
        OpCode::CreateSession => "SESS",
        OpCode::Multi => "MULT",
        OpCode::MultiRead => "MLTR",
        OpCode::Create | OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer => "CREA",
        OpCode::Delete | OpCode::DeleteContainer => "DELE",
        OpCode::SetData => "SETD",
        OpCode::Reconfig => "RECO",
        OpCode::SetAcl => "SETA",
        OpCode::CloseSession => "CLOS",
        OpCode::Sync => "SYNC",
        OpCode::Check => "CHEC",
        OpCode::Exists => "EXIS",
        OpCode::GetData => "GETD",
        OpCode::SetWatches => "SETW",
        OpCode::SetWatches2 => "STW2",
        OpCode::AddWatch => "ADDW",
        OpCode::GetAcl => "GETA",
        OpCode::GetChildren | OpCode::GetChildren2 => "GETC",
        OpCode::GetAllChildrenNumber => "GETACN",
        OpCode::CheckWatches => "CHKW",
        OpCode::RemoveWatches => "REMW",
        OpCode::WhoAmI => "HOMI",
        OpCode::GetEphemerals => "GETE",
        OpCode::Auth => "AUTH",
        OpCode::Notification | OpCode::Sasl | OpCode::Error => "NA",
    }
}

/// `ok`, or the lower-cased `KeeperException.Code` name of an error code.
pub(crate) fn result_name(err: i32) -> &'static str {
    let Some(code) = ErrorCode::from_i32(err) else {
        return "unknown";
    };
    match code {
        ErrorCode::Ok => "ok",
        ErrorCode::SystemError => "systemerror",
        ErrorCode::RuntimeInconsistency => "runtimeinconsistency",
        ErrorCode::DataInconsistency => "datainconsistency",
        ErrorCode::ConnectionLoss => "connectionloss",
        ErrorCode::MarshallingError => "marshallingerror",
        ErrorCode::Unimplemented => "unimplemented",
        ErrorCode::OperationTimeout => "operationtimeout",
        ErrorCode::BadArguments => "badarguments",
        ErrorCode::UnknownSession => "unknownsession",
        ErrorCode::NewConfigNoQuorum => "newconfignoquorum",
        ErrorCode::ReconfigInProgress => "reconfiginprogress",
        ErrorCode::ApiError => "apierror",
        ErrorCode::NoNode => "nonode",
        ErrorCode::NoAuth => "noauth",
        ErrorCode::BadVersion => "badversion",
        ErrorCode::NoChildrenForEphemerals => "nochildrenforephemerals",
        ErrorCode::NodeExists => "nodeexists",
        ErrorCode::NotEmpty => "notempty",
        ErrorCode::SessionExpired => "sessionexpired",
        ErrorCode::InvalidCallback => "invalidcallback",
        ErrorCode::InvalidAcl => "invalidacl",
        ErrorCode::AuthFailed => "authfailed",
        ErrorCode::SessionMoved => "sessionmoved",
        ErrorCode::NotReadOnly => "notreadonly",
        ErrorCode::EphemeralOnLocalSession => "ephemeralonlocalsession",
        ErrorCode::NoWatcher => "nowatcher",
        ErrorCode::RequestTimeout => "requesttimeout",
        ErrorCode::ReconfigDisabled => "reconfigdisabled",
        ErrorCode::SessionClosedRequireSaslAuth => "sessionclosedrequiresaslauth",
        ErrorCode::QuotaExceeded => "quotaexceeded",
        ErrorCode::ThrottledOp => "throttledop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_reply, Response};

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40_000))
    }

    fn reply(xid: i32, zxid: i64, err: ErrorCode) -> Vec<u8> {
        encode_reply(
            &ReplyHeader {
                xid,
                zxid,
                err: err.code(),
            },
            &Response::Empty,
        )
    }

    #[test]
    fn a_connection_before_its_session_is_brief() {
        let stats = ServerStats::new();
        let conn = stats.open_connection(1, peer());
        conn.frame_received();
        conn.frame_sent();
        let info = stats.connections();
        assert_eq!(info.len(), 1);
        assert_eq!(
            (info[0].interest_ops, info[0].received, info[0].sent),
            (1, 1, 1)
        );
        assert_eq!(info[0].session, None);
        stats.close_connection(1);
        assert_eq!(stats.connection_count(), 0);
        // Totals outlive the connection.
        assert_eq!(stats.summary().packets_received, 1);
    }

    #[test]
    fn replies_update_latency_results_and_the_last_response() {
        let stats = ServerStats::new();
        let conn = stats.open_connection(7, peer());
        conn.session_attached(0x1234, 30_000);
        let request = conn.begin(OpCode::GetData);
        assert_eq!(stats.summary().outstanding, 1);
        assert_eq!(stats.connections()[0].queued, 1);
        request.finish(&reply(5, 9, ErrorCode::NoNode));
        conn.begin(OpCode::Ping)
            .finish(&reply(-2, 9, ErrorCode::Ok));
        let summary = stats.summary();
        assert_eq!(summary.outstanding, 0);
        let session = stats.connections()[0].session.clone().expect("session");
        assert_eq!(session.id, 0x1234);
        assert_eq!(session.timeout_ms, 30_000);
        assert_eq!(session.last_op, "PING");
        // The ping's xid is special and leaves the last cxid alone.
        assert_eq!((session.last_cxid, session.last_zxid), (Some(5), 9));
        assert!(session.last_response_ms > 0);
        let nonode = stats
            .requests_metric()
            .get_or_create(&RequestLabels {
                op: "getData",
                result: "nonode",
            })
            .get();
        assert_eq!(nonode, 1);
    }

    #[test]
    fn an_abandoned_request_is_not_outstanding_forever() {
        let stats = ServerStats::new();
        let conn = stats.open_connection(1, peer());
        drop(conn.begin(OpCode::Create));
        assert_eq!(stats.summary().outstanding, 0);
        assert_eq!(stats.summary().min_latency_ms, 0);
    }

    #[test]
    fn four_letter_words_count_in_but_not_out() {
        let stats = ServerStats::new();
        let conn = stats.open_connection(1, peer());
        conn.four_letter_word();
        conn.frame_sent();
        let info = &stats.connections()[0];
        assert_eq!((info.interest_ops, info.received, info.sent), (0, 1, 0));
        assert_eq!(stats.summary().packets_sent, 0);
    }

    #[test]
    fn average_latency_rounds_to_four_decimals() {
        let latency = Latency::new();
        for ms in [1, 1, 2] {
            latency.add(ms);
        }
        assert_eq!(latency.snapshot(), (1, 1.3333, 2));
    }

    #[test]
    fn a_server_reset_zeroes_the_summary_but_not_the_metrics() {
        let stats = ServerStats::new();
        let conn = stats.open_connection(1, peer());
        conn.frame_received();
        conn.begin(OpCode::GetData)
            .finish(&reply(1, 5, ErrorCode::Ok));
        conn.frame_sent();
        stats.reset();
        let summary = stats.summary();
        assert_eq!(
            (
                summary.packets_received,
                summary.packets_sent,
                summary.min_latency_ms,
                summary.avg_latency_ms,
                summary.max_latency_ms
            ),
            (0, 0, 0, 0.0, 0)
        );
        // Prometheus counters never go back.
        assert_eq!(stats.packets_received_metric().get(), 1);
        assert_eq!(stats.packets_sent_metric().get(), 1);
        // The connection's own figures are crst's business.
        assert_eq!(stats.connections()[0].received, 1);
        conn.frame_received();
        assert_eq!(stats.summary().packets_received, 1);
    }

    #[test]
    fn a_connection_reset_zeroes_counts_and_the_last_response() {
        let stats = ServerStats::new();
        let conn = stats.open_connection(1, peer());
        conn.session_attached(0x42, 10_000);
        conn.frame_received();
        conn.begin(OpCode::Create)
            .finish(&reply(3, 7, ErrorCode::Ok));
        conn.frame_sent();
        let waiting = conn.begin(OpCode::GetData);
        stats.reset_connections();
        let info = &stats.connections()[0];
        // Requests in flight are not statistics: they stay.
        assert_eq!((info.received, info.sent, info.queued), (0, 0, 1));
        let session = info.session.clone().expect("session");
        assert_eq!(session.id, 0x42);
        assert_eq!(session.timeout_ms, 10_000);
        assert_eq!(
            (
                session.last_op,
                session.last_cxid,
                session.last_zxid,
                session.last_response_ms
            ),
            ("NA", None, -1, 0)
        );
        assert_eq!(
            (
                session.last_latency_ms,
                session.min_latency_ms,
                session.avg_latency_ms,
                session.max_latency_ms
            ),
            (0, 0, 0, 0)
        );
        // Server totals are srst's business.
        assert_eq!(stats.summary().packets_received, 1);
        drop(waiting);
        assert_eq!(stats.session_ids(), BTreeMap::from([(1, 0x42)]));
    }

    #[test]
    fn phases_round_trip() {
        let stats = ServerStats::new();
        assert_eq!(stats.phase(), Phase::Starting);
        for phase in [Phase::Serving, Phase::Stopping, Phase::Starting] {
            stats.set_phase(phase);
            assert_eq!(stats.phase(), phase);
        }
    }
}
