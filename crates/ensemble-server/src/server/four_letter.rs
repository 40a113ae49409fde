//! Four-letter words on the client port: a client sends four ASCII letters instead
//! of a ConnectRequest and gets plain text back, then the connection closes.
//!
//! Contract: [`detect`] recognises ZooKeeper's words at the very start of a
//! connection (their 4 bytes would otherwise read as an absurd frame length);
//! [`answer`] replies only to words in `4lw.commands.whitelist` (`*` = all), with
//! ZooKeeper's refusal text otherwise. Implemented, byte for byte in Apache
//! ZooKeeper 3.9's formats (its `server/command/*Command.java` are the
//! specification): `ruok`, `srvr`, `stat`, `mntr`, `conf`, `envi`, `isro`, `wchs`,
//! `cons`, `dirs`, `dump`, `wchc`, `wchp`, `crst`, `srst`, `hash`. The mode is `standalone`
//! for a member that is the whole ensemble, else `leader`, `follower` or `observer`
//! (a learner), as in ZooKeeper; `mntr` adds the Raft view (term, commit and applied
//! index, membership). The other known words, `gtmk` and `stmk`, get and set the
//! mask of ZooKeeper's trace logging, which this server does not have; they say
//! they are not implemented.
//!
//! - `dump`: the session tracker (a leader's or standalone member's: its sessions
//!   grouped by expiry time, rounded up to the next tick as ZooKeeper's
//!   `ExpiryQueue` does; a learner's: every session and its timeout), the
//!   ephemeral nodes by owning session, then the connections grouped by when they
//!   would expire (ZooKeeper's NIO factory: the last I/O plus the session timeout,
//!   or 10 s without a session, rounded up to 10 s). Times print as Java's
//!   `Date.toString` does, in UTC.
//! - `wchc` and `wchp`: the data watches (as in ZooKeeper, not the child ones) by
//!   session and by path; a watcher is its connection's session (`0x0` without
//!   one).
//! - `crst` and `srst`: reset the connections' and the server's statistics (see
//!   [`super::stats`]).
//! - `hash`: the tree digests logged (see [`super::state`]), oldest first, one
//!   `<zxid in hex>: <digest>` line each.
//!
//! A member that knows no leader (mode `looking`) answers these six with
//! ZooKeeper's "not currently serving" line and changes nothing, as ZooKeeper's
//! `isZKServerRunning` check does. ZooKeeper prints its hash maps in hash order;
//! we print sessions, paths and connections sorted.
//!
//! Values come from [`super::stats`], the shared state (taken briefly, never
//! together with the stats' locks) and the configured data directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use crate::consensus::{Role, Status};

use super::connection::lock;
use super::state::{wall_ms, ConnId};
use super::stats::ConnectionInfo;
use super::Shared;

/// Every word Apache ZooKeeper knows (`FourLetterCommands`).
const KNOWN: [&str; 18] = [
    "ruok", "srvr", "stat", "conf", "cons", "crst", "dump", "envi", "srst", "wchs", "wchc", "wchp",
    "mntr", "isro", "gtmk", "stmk", "hash", "dirs",
];

/// ZooKeeper's answer when it does not serve (`AbstractFourLetterCommand.ZK_NOT_SERVING`).
const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests\n";

/// ZooKeeper's `zookeeper.nio.sessionlessCnxnTimeout` default: how long a
/// connection without a session lives idle, and the width of the buckets its NIO
/// factory groups connections' expiry times in.
const SESSIONLESS_CONNECTION_TIMEOUT_MS: i64 = 10_000;

/// The version the words and the admin port report. Tools read a ZooKeeper server's
/// version as `major.minor.patch` followed by anything (kazoo's `server_version`
/// parses `envi`, exporters parse `mntr`), and some choose features by it; so it
/// leads with the ZooKeeper release whose protocol this server speaks (3.9: persistent
/// watches, whoAmI, getEphemerals), then says truthfully what runs: ensemble and its
/// crate version. ZooKeeper appends `, built on <date>`; we have no build date to
/// give, so we append nothing.
pub(crate) const VERSION: &str = concat!("3.9.0-ensemble-", env!("CARGO_PKG_VERSION"));

/// ZooKeeper's name for what a member does: `standalone` for the whole ensemble
/// alone, `leader`, `follower`, `observer` for a learner; a member that knows no
/// leader is `looking` (ZooKeeper answers "not currently serving" then).
pub(crate) fn mode(status: &Status) -> &'static str {
    let alone = status.membership.voters.len() == 1
        && status.membership.learners.is_empty()
        && status.membership.voters.contains_key(&status.id);
    match status.role {
        Role::Leader if alone => "standalone",
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Learner => "observer",
        Role::Candidate | Role::Outside | Role::Stopped => "looking",
    }
}

/// The member's consensus status, if consensus is open.
///
/// The applied, commit and last log indexes are raised to what this member's
/// tree has applied: the consensus metrics trail the state machine a little, and
/// a client that was just answered must not see an index behind its write.
pub(crate) fn consensus_status(shared: &Shared) -> Option<Status> {
    let state = lock(&shared.state);
    let mut status = state.consensus()?.status();
    let applied = u64::try_from(state.tree.last_zxid()).unwrap_or(0);
    status.applied_index = status.applied_index.max(applied);
    status.commit_index = status.commit_index.max(status.applied_index);
    status.last_log_index = status.last_log_index.max(status.commit_index);
    Some(status)
}

/// The word at the front of `buf`, if it is one.
pub(crate) fn detect(buf: &[u8]) -> Option<&'static str> {
    let head = buf.get(..4)?;
    KNOWN.into_iter().find(|w| w.as_bytes() == head)
}

/// The text to send for `word`.
pub(crate) fn answer(word: &str, shared: &Shared) -> String {
    if !shared.config.allows_four_letter_word(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_owned(),
        "srvr" => server_stats(shared, false),
        "stat" => server_stats(shared, true),
        "mntr" => monitor(shared),
        "conf" => conf(shared),
        "envi" => environment(),
        "isro" => "rw".to_owned(),
        "wchs" => watch_summary(shared),
        "cons" => connections(shared),
        "dirs" => dirs(shared),
        "dump" => dump(shared),
        "wchc" => watches(shared, false),
        "wchp" => watches(shared, true),
        "crst" => reset_connections(shared),
        "srst" => reset_server(shared),
        "hash" => digests(shared),
        other => format!("{other} is not implemented by this server.\n"),
    }
}

/// The member's mode, unless it knows no leader: ZooKeeper's `isZKServerRunning`.
fn serving_mode(shared: &Shared) -> Option<&'static str> {
    consensus_status(shared)
        .map(|status| mode(&status))
        .filter(|mode| *mode != "looking")
}

/// What `dump` says of the sessions: a leader's (or a standalone member's) session
/// tracker knows when each session expires, a learner's only its timeout.
#[derive(Debug, Clone, PartialEq)]
enum SessionDump {
    /// `SessionTrackerImpl`: session names (`0x<id>`) by wall-clock expiry time.
    Expiring(BTreeMap<i64, Vec<String>>),
    /// `LearnerSessionTracker`: every session and its timeout in milliseconds.
    Global(Vec<(i64, i32)>),
}

/// ZooKeeper's `ExpiryQueue.roundToNextInterval`: the next multiple of `interval`
/// strictly after `time`.
fn next_interval(time: i64, interval: i64) -> i64 {
    (time.div_euclid(interval) + 1) * interval
}

/// `dump` (`DumpCommand`): sessions, ephemerals, connections; see the module contract.
fn dump(shared: &Shared) -> String {
    let Some(mode) = serving_mode(shared) else {
        return NOT_SERVING.to_owned();
    };
    let tick = i64::from(shared.config.tick_time_ms.max(1));
    let (sessions, ephemerals) = {
        let state = lock(&shared.state);
        let sessions = if matches!(mode, "standalone" | "leader") {
            // Deadlines are on the state's monotonic clock; ZooKeeper rounds on its
            // monotonic clock too, then prints the wall-clock time it corresponds to.
            let to_wall = wall_ms() - state.now_ms();
            let mut sets: BTreeMap<i64, Vec<String>> = BTreeMap::new();
            for session in state.sessions.iter() {
                sets.entry(next_interval(session.deadline_ms, tick) + to_wall)
                    .or_default()
                    .push(format!("0x{:x}", session.id));
            }
            SessionDump::Expiring(sets)
        } else {
            SessionDump::Global(
                state
                    .tree
                    .sessions()
                    .iter()
                    .map(|(id, timeout)| (*id, *timeout))
                    .collect(),
            )
        };
        let ephemerals: Vec<(i64, Vec<String>)> = state
            .tree
            .ephemerals_by_session()
            .iter()
            .map(|(id, paths)| (*id, paths.iter().cloned().collect()))
            .collect();
        (sessions, ephemerals)
    };
    let mut connections: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for info in shared.stats.connections() {
        let (session, timeout) = info
            .session
            .as_ref()
            .map_or((0, SESSIONLESS_CONNECTION_TIMEOUT_MS), |s| {
                (s.id, i64::from(s.timeout_ms))
            });
        connections
            .entry(next_interval(
                info.last_io_ms.saturating_add(timeout),
                SESSIONLESS_CONNECTION_TIMEOUT_MS,
            ))
            .or_default()
            // `NIOServerCnxn.toString`.
            .push(format!("ip: /{} sessionId: 0x{session:x}", info.peer));
    }
    format_dump(&sessions, &ephemerals, &connections)
}

/// `dump`'s text from its parts.
fn format_dump(
    sessions: &SessionDump,
    ephemerals: &[(i64, Vec<String>)],
    connections: &BTreeMap<i64, Vec<String>>,
) -> String {
    let mut out = String::from("SessionTracker dump:\n");
    match sessions {
        SessionDump::Expiring(sets) => {
            out.push_str("Session ");
            expiry_queue(&mut out, sets);
        }
        SessionDump::Global(sessions) => {
            let _ = writeln!(out, "Global Sessions({}):", sessions.len());
            for (id, timeout) in sessions {
                let _ = writeln!(out, "0x{id:x}\t{timeout}ms");
            }
        }
    }
    // `DataTree.dumpEphemerals`.
    out.push_str("ephemeral nodes dump:\n");
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", ephemerals.len());
    for (id, paths) in ephemerals {
        let _ = writeln!(out, "0x{id:x}:");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    // `NIOServerCnxnFactory.dumpConnections`.
    out.push_str("Connections dump:\nConnections ");
    expiry_queue(&mut out, connections);
    out
}

/// `ExpiryQueue.dump`: the number of expiry times and of elements, then each time
/// with its elements, tab-indented.
fn expiry_queue(out: &mut String, sets: &BTreeMap<i64, Vec<String>>) {
    let elements: usize = sets.values().map(Vec::len).sum();
    let _ = writeln!(out, "Sets ({})/({elements}):", sets.len());
    for (at_ms, names) in sets {
        let _ = writeln!(out, "{} expire at {}:", names.len(), java_date(*at_ms));
        for name in names {
            let _ = writeln!(out, "\t{name}");
        }
    }
}

/// A wall-clock time in milliseconds as Java's `Date.toString` prints it
/// (`EEE MMM dd HH:mm:ss zzz yyyy`), in UTC: the JVM uses its default time zone,
/// and without a time zone database UTC is the one we can name truthfully.
fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0)];
    // The proleptic Gregorian date of a day count (Howard Hinnant's `civil_from_days`).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let month = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{weekday} {month} {day:02} {:02}:{:02}:{:02} UTC {year}",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

/// A watcher in `wchc`/`wchp`: its connection's session (0 without one) and, since
/// ZooKeeper's watchers are connections, the connection.
type Watcher = (i64, ConnId);

/// `wchc` (`by_path` false) and `wchp` (`WatchCommand`, `WatchManager.dumpWatches`
/// on the data watches, then an empty line).
fn watches(shared: &Shared, by_path: bool) -> String {
    if serving_mode(shared).is_none() {
        return NOT_SERVING.to_owned();
    }
    let pairs: Vec<(String, ConnId)> = lock(&shared.state)
        .watches
        .data_watches()
        .map(|(path, conn)| (path.to_owned(), *conn))
        .collect();
    // A connection missing here closed since: its watches are gone too by now.
    let sessions = shared.stats.session_ids();
    let watches: Vec<(String, Watcher)> = pairs
        .into_iter()
        .filter_map(|(path, conn)| Some((path, (*sessions.get(&conn)?, conn))))
        .collect();
    format_watches(&watches, by_path)
}

/// `wchc`/`wchp`'s text from (path, watcher) pairs.
fn format_watches(watches: &[(String, Watcher)], by_path: bool) -> String {
    let mut out = String::new();
    if by_path {
        let mut paths: BTreeMap<&str, BTreeSet<Watcher>> = BTreeMap::new();
        for (path, watcher) in watches {
            paths.entry(path).or_default().insert(*watcher);
        }
        for (path, watchers) in paths {
            let _ = writeln!(out, "{path}");
            for (session, _) in watchers {
                let _ = writeln!(out, "\t0x{session:x}");
            }
        }
    } else {
        let mut watchers: BTreeMap<Watcher, BTreeSet<&str>> = BTreeMap::new();
        for (path, watcher) in watches {
            watchers.entry(*watcher).or_default().insert(path);
        }
        for ((session, _), paths) in watchers {
            let _ = writeln!(out, "0x{session:x}");
            for path in paths {
                let _ = writeln!(out, "\t{path}");
            }
        }
    }
    out.push('\n');
    out
}

/// `crst` (`CnxnStatResetCommand`).
fn reset_connections(shared: &Shared) -> String {
    if serving_mode(shared).is_none() {
        return NOT_SERVING.to_owned();
    }
    shared.stats.reset_connections();
    "Connection stats reset.\n".to_owned()
}

/// `srst` (`StatResetCommand`). A ZooKeeper leader also resets its proposal
/// statistics; we keep none.
fn reset_server(shared: &Shared) -> String {
    if serving_mode(shared).is_none() {
        return NOT_SERVING.to_owned();
    }
    shared.stats.reset();
    "Server stats reset.\n".to_owned()
}

/// `hash` (`DigestCommand`).
fn digests(shared: &Shared) -> String {
    if serving_mode(shared).is_none() {
        return NOT_SERVING.to_owned();
    }
    let mut out = String::new();
    for (zxid, digest) in lock(&shared.state).digest_log() {
        let _ = writeln!(out, "{zxid:x}: {digest}");
    }
    out
}

/// `srvr` and `stat` (`StatCommand`, `ServerStats.toString`); `stat` also lists clients.
fn server_stats(shared: &Shared, with_clients: bool) -> String {
    let mut out = format!("Zookeeper version: {VERSION}\n");
    if with_clients {
        out.push_str("Clients:\n");
        for info in shared.stats.connections() {
            dump_connection(&mut out, &info, true);
            out.push('\n');
        }
        out.push('\n');
    }
    let summary = shared.stats.summary();
    let mode = consensus_status(shared).map_or("looking", |s| mode(&s));
    let (zxid, nodes) = {
        let state = lock(&shared.state);
        (state.tree.last_zxid(), state.tree.node_count())
    };
    let _ = write!(
        out,
        "Latency min/avg/max: {}/{}/{}\n\
         Received: {}\n\
         Sent: {}\n\
         Connections: {}\n\
         Outstanding: {}\n\
         Zxid: 0x{zxid:x}\n\
         Mode: {mode}\n\
         Node count: {nodes}\n",
        summary.min_latency_ms,
        java_double(summary.avg_latency_ms),
        summary.max_latency_ms,
        summary.packets_received,
        summary.packets_sent,
        summary.connections,
        summary.outstanding,
    );
    out
}

/// `cons` (`ConsCommand`): every connection in full, then an empty line.
fn connections(shared: &Shared) -> String {
    let mut out = String::new();
    for info in shared.stats.connections() {
        dump_connection(&mut out, &info, false);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// `ServerCnxn.dumpConnectionInfo`: ` /ip:port[ops](queued=..,recved=..,sent=..` and,
/// unless `brief` and once there is a session, its figures, then `)`.
fn dump_connection(out: &mut String, info: &ConnectionInfo, brief: bool) {
    // Java prints an InetSocketAddress without a host name as `/ip:port`.
    let _ = write!(
        out,
        " /{}[{}](queued={},recved={},sent={}",
        info.peer, info.interest_ops, info.queued, info.received, info.sent
    );
    if let (false, Some(s)) = (brief, &info.session) {
        let _ = write!(
            out,
            ",sid=0x{:x},lop={},est={},to={}",
            s.id, s.last_op, s.established_ms, s.timeout_ms
        );
        if let Some(cxid) = s.last_cxid {
            let _ = write!(out, ",lcxid=0x{cxid:x}");
        }
        let _ = write!(
            out,
            ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            s.last_zxid,
            s.last_response_ms,
            s.last_latency_ms,
            s.min_latency_ms,
            s.avg_latency_ms,
            s.max_latency_ms
        );
    }
    out.push(')');
}

/// `mntr` (`MonitorCommand`): `zk_<key>\t<value>` lines. ZooKeeper 3.9 prints
/// `zk_version` and `zk_server_state` first, then its metrics in hash order; we print
/// the gauges of its `registerMetrics` that mean something here, in the order of its
/// admin guide, and leave out the leader-only and JVM-only ones.
fn monitor(shared: &Shared) -> String {
    let summary = shared.stats.summary();
    let (nodes, watches, ephemerals, data_size, sessions, digest_mismatches) = {
        let state = lock(&shared.state);
        (
            state.tree.node_count(),
            state.watches.len(),
            state.tree.ephemeral_count(),
            state.tree.approximate_data_size(),
            state.sessions.len(),
            state.digest_mismatches,
        )
    };
    let status = consensus_status(shared);
    let mut lines: Vec<(&str, String)> = vec![
        ("version", VERSION.to_owned()),
        (
            "server_state",
            status.as_ref().map_or("looking", mode).to_owned(),
        ),
        ("avg_latency", java_double(summary.avg_latency_ms)),
        ("max_latency", summary.max_latency_ms.to_string()),
        ("min_latency", summary.min_latency_ms.to_string()),
        ("packets_received", summary.packets_received.to_string()),
        ("packets_sent", summary.packets_sent.to_string()),
        ("num_alive_connections", summary.connections.to_string()),
        ("outstanding_requests", summary.outstanding.to_string()),
        ("znode_count", nodes.to_string()),
        ("watch_count", watches.to_string()),
        ("ephemerals_count", ephemerals.to_string()),
        ("approximate_data_size", data_size.to_string()),
    ];
    // Unix only, in ZooKeeper too.
    if let Some((open, max)) = file_descriptors() {
        lines.push(("open_file_descriptor_count", open.to_string()));
        lines.push(("max_file_descriptor_count", max.to_string()));
    }
    lines.push(("uptime", summary.uptime.as_millis().to_string()));
    lines.push(("global_sessions", sessions.to_string()));
    lines.push(("local_sessions", "0".to_owned()));
    lines.push(("digest_mismatches_count", digest_mismatches.to_string()));
    if let Some(status) = &status {
        let voters = status.membership.voters.len();
        lines.push(("server_id", status.id.to_string()));
        lines.push((
            "leader_id",
            status.leader.map_or("-1".to_owned(), |l| l.to_string()),
        ));
        lines.push(("raft_term", status.term.to_string()));
        lines.push(("raft_commit_index", status.commit_index.to_string()));
        lines.push(("raft_applied_index", status.applied_index.to_string()));
        lines.push((
            "raft_membership_version",
            status.membership.version.to_string(),
        ));
        lines.push(("voters", voters.to_string()));
        lines.push(("learners", status.membership.learners.len().to_string()));
        if status.role == Role::Leader {
            // ZooKeeper's leader-only gauges: followers, and those in sync.
            let synced = status
                .matched
                .iter()
                .filter(|(id, m)| **id != status.id && **m >= status.commit_index)
                .count();
            lines.push((
                "followers",
                (status.matched.len().saturating_sub(1)).to_string(),
            ));
            lines.push(("synced_followers", synced.to_string()));
        }
    }
    let mut out = String::new();
    for (key, value) in lines {
        let _ = writeln!(out, "zk_{key}\t{value}");
    }
    out
}

/// Open descriptors and the soft limit, from `/proc/self` (Linux).
fn file_descriptors() -> Option<(usize, u64)> {
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count();
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let max = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some((open, max))
}

/// `conf` (`ZooKeeperServer.dumpConf`, standalone). With no `dataLogDir` setting
/// ZooKeeper logs into `dataDir`, and so do we: both lines show the data directory.
fn conf(shared: &Shared) -> String {
    let c = &shared.config;
    let (dir, size) = data_dir(shared);
    let client_port = lock(&shared.state)
        .client_address
        .map_or(c.client_port, |address| address.port());
    format!(
        "clientPort={}\n\
         secureClientPort=-1\n\
         dataDir={dir}\n\
         dataDirSize={size}\n\
         dataLogDir={dir}\n\
         dataLogSize={size}\n\
         tickTime={}\n\
         maxClientCnxns={}\n\
         minSessionTimeout={}\n\
         maxSessionTimeout={}\n\
         clientPortListenBacklog=-1\n\
         serverId={}\n",
        client_port,
        c.tick_time_ms,
        c.max_client_connections,
        c.min_session_timeout_ms,
        c.max_session_timeout_ms,
        c.my_id,
    )
}

/// `dirs` (`DirsCommand`): the data and log directories are one here (see [`conf`]).
fn dirs(shared: &Shared) -> String {
    let (_, size) = data_dir(shared);
    format!("datadir_size: {size}\nlogdir_size: {size}\n")
}

/// The data directory as an absolute path ("" when data is kept in memory only) and
/// the bytes of every file under it.
fn data_dir(shared: &Shared) -> (String, u64) {
    match &shared.config.data_dir {
        Some(dir) => {
            let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            (shown.display().to_string(), dir_size(dir))
        }
        None => (String::new(), 0),
    }
}

/// Bytes of the regular files under `path`, without following symbolic links;
/// unreadable entries count as 0, as in ZooKeeper's `getDirSize`.
pub(crate) fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries.flatten().map(|e| dir_size(&e.path())).sum()
    })
}

/// `envi` (`EnvCommand`, `Environment.list`): ZooKeeper's keys in its order. There is
/// no JVM here, so the `java.*` keys get ZooKeeper's own `<NA>` for an absent
/// property, except `java.io.tmpdir`, whose meaning (the temporary directory) holds,
/// and the `jvm.memory.*` lines are left out.
fn environment() -> String {
    let na = || "<NA>".to_owned();
    let env = |key: &str| std::env::var(key).unwrap_or_else(|_| na());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| env("HOSTNAME"));
    let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| na(), |v| v.trim().to_owned());
    let os_name = std::fs::read_to_string("/proc/sys/kernel/ostype")
        .map_or_else(|_| std::env::consts::OS.to_owned(), |v| v.trim().to_owned());
    let user_dir = std::env::current_dir().map_or_else(|_| na(), |d| d.display().to_string());
    let entries = [
        ("zookeeper.version", VERSION.to_owned()),
        ("host.name", host),
        ("java.version", na()),
        ("java.vendor", na()),
        ("java.home", na()),
        ("java.class.path", na()),
        ("java.library.path", na()),
        ("java.io.tmpdir", std::env::temp_dir().display().to_string()),
        ("java.compiler", na()),
        ("os.name", os_name),
        ("os.arch", std::env::consts::ARCH.to_owned()),
        ("os.version", os_version),
        ("user.name", user_name().unwrap_or_else(na)),
        ("user.home", env("HOME")),
        ("user.dir", user_dir),
    ];
    let mut out = String::from("Environment:\n");
    for (key, value) in entries {
        let _ = writeln!(out, "{key}={value}");
    }
    out
}

/// `$USER`, else the name of our real uid in `/etc/passwd` (as the JVM's `getpwuid`).
fn user_name() -> Option<String> {
    if let Ok(user) = std::env::var("USER") {
        return Some(user);
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_owned())
    })
}

/// `wchs` (`WatchManager.toString` on the data watches, then a newline).
fn watch_summary(shared: &Shared) -> String {
    let summary = lock(&shared.state).watches.data_summary();
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        summary.watchers, summary.paths, summary.watches
    )
}

/// A double as Java's `Double.toString` prints it: at least one decimal digit, and
/// scientific notation (`1.0E-4`) below 10^-3 and from 10^7.
fn java_double(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let plain = value.to_string();
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sci = format!("{value:e}");
        let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
        if mantissa.contains('.') {
            format!("{mantissa}E{exponent}")
        } else {
            format!("{mantissa}.0E{exponent}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::stats::SessionInfo;
    use std::net::SocketAddr;

    #[test]
    fn detects_only_known_words_at_the_start() {
        assert_eq!(detect(b"ruok"), Some("ruok"));
        assert_eq!(detect(b"srvr\n"), Some("srvr"));
        assert_eq!(detect(b"ruo"), None);
        assert_eq!(detect(&[0, 0, 0, 44]), None);
    }

    #[test]
    fn doubles_print_as_java_prints_them() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(2.0), "2.0");
        assert_eq!(java_double(0.7561), "0.7561");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(0.00015), "1.5E-4");
        assert_eq!(java_double(12_345_678.0), "1.2345678E7");
    }

    #[test]
    fn the_version_leads_with_a_zookeeper_release() {
        let numeric: String = VERSION
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        assert_eq!(numeric, "3.9.0");
        assert!(VERSION.starts_with("3.9.0-ensemble-"));
    }

    #[test]
    fn connections_dump_as_zookeeper_does() {
        let mut info = ConnectionInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 5000)),
            interest_ops: 1,
            queued: 0,
            received: 3,
            sent: 2,
            last_io_ms: 1_700_000_000_000,
            session: None,
        };
        let mut out = String::new();
        dump_connection(&mut out, &info, false);
        assert_eq!(out, " /127.0.0.1:5000[1](queued=0,recved=3,sent=2)");
        info.session = Some(SessionInfo {
            id: 0x100,
            last_op: "GETD",
            established_ms: 1_700_000_000_000,
            timeout_ms: 30_000,
            last_cxid: None,
            last_zxid: -1,
            last_response_ms: 1_700_000_000_005,
            last_latency_ms: 1,
            min_latency_ms: 0,
            avg_latency_ms: 0,
            max_latency_ms: 1,
        });
        let mut brief = String::new();
        dump_connection(&mut brief, &info, true);
        assert_eq!(brief, out);
        let mut full = String::new();
        dump_connection(&mut full, &info, false);
        assert_eq!(
            full,
            " /127.0.0.1:5000[1](queued=0,recved=3,sent=2,sid=0x100,lop=GETD,\
             est=1700000000000,to=30000,lzxid=0xffffffffffffffff,lresp=1700000000005,\
             llat=1,minlat=0,avglat=0,maxlat=1)"
        );
    }

    #[test]
    fn dates_print_as_java_prints_them_in_utc() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
        assert_eq!(java_date(1_700_000_000_999), "Tue Nov 14 22:13:20 UTC 2023");
        assert_eq!(java_date(1_709_208_000_000), "Thu Feb 29 12:00:00 UTC 2024");
    }

    #[test]
    fn expiry_times_round_up_past_the_interval() {
        assert_eq!(next_interval(0, 2_000), 2_000);
        assert_eq!(next_interval(1_999, 2_000), 2_000);
        assert_eq!(next_interval(2_000, 2_000), 4_000);
    }

    #[test]
    fn dump_as_a_leader_does() {
        let sessions = SessionDump::Expiring(BTreeMap::from([
            (
                1_700_000_010_000,
                vec!["0x100".to_owned(), "0x101".to_owned()],
            ),
            (1_700_000_020_000, vec!["0x1ab".to_owned()]),
        ]));
        let ephemerals = vec![
            (0x100, vec!["/a/e1".to_owned(), "/b".to_owned()]),
            (0x1ab, vec!["/e".to_owned()]),
        ];
        let connections = BTreeMap::from([(
            1_700_000_020_000,
            vec![
                "ip: /127.0.0.1:5000 sessionId: 0x0".to_owned(),
                "ip: /127.0.0.1:5001 sessionId: 0x100".to_owned(),
            ],
        )]);
        assert_eq!(
            format_dump(&sessions, &ephemerals, &connections),
            "SessionTracker dump:\n\
             Session Sets (2)/(3):\n\
             2 expire at Tue Nov 14 22:13:30 UTC 2023:\n\
             \t0x100\n\
             \t0x101\n\
             1 expire at Tue Nov 14 22:13:40 UTC 2023:\n\
             \t0x1ab\n\
             ephemeral nodes dump:\n\
             Sessions with Ephemerals (2):\n\
             0x100:\n\
             \t/a/e1\n\
             \t/b\n\
             0x1ab:\n\
             \t/e\n\
             Connections dump:\n\
             Connections Sets (1)/(2):\n\
             2 expire at Tue Nov 14 22:13:40 UTC 2023:\n\
             \tip: /127.0.0.1:5000 sessionId: 0x0\n\
             \tip: /127.0.0.1:5001 sessionId: 0x100\n"
        );
    }

    #[test]
    fn dump_as_a_learner_does() {
        // Sorted as ZooKeeper's `TreeSet<Long>` sorts: signed.
        let sessions = SessionDump::Global(vec![(-2, 4_000), (0x100, 30_000)]);
        assert_eq!(
            format_dump(&sessions, &[], &BTreeMap::new()),
            "SessionTracker dump:\n\
             Global Sessions(2):\n\
             0xfffffffffffffffe\t4000ms\n\
             0x100\t30000ms\n\
             ephemeral nodes dump:\n\
             Sessions with Ephemerals (0):\n\
             Connections dump:\n\
             Connections Sets (0)/(0):\n"
        );
    }

    #[test]
    fn watches_by_session_and_by_path() {
        let watches = vec![
            ("/b".to_owned(), (0x200, 2)),
            ("/a".to_owned(), (0x100, 1)),
            ("/a".to_owned(), (0x200, 2)),
        ];
        assert_eq!(
            format_watches(&watches, false),
            "0x100\n\t/a\n0x200\n\t/a\n\t/b\n\n"
        );
        assert_eq!(
            format_watches(&watches, true),
            "/a\n\t0x100\n\t0x200\n/b\n\t0x200\n\n"
        );
        assert_eq!(format_watches(&[], false), "\n");
    }

    #[test]
    fn directory_sizes_add_up_files_below() {
        let dir = std::env::temp_dir().join(format!("ensemble-dirs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("version-2")).expect("mkdir");
        std::fs::write(dir.join("a"), [0u8; 10]).expect("write");
        std::fs::write(dir.join("version-2").join("b"), [0u8; 5]).expect("write");
        assert_eq!(dir_size(&dir), 15);
        assert_eq!(dir_size(&dir.join("missing")), 0);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
