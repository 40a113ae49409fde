//! The `ensemble server` and `ensemble local` subcommands, ready for the root binary
//! to wire into its clap parser.
//!
//! Contract: [`run_server`] reads a zoo.cfg-style file ([`ServerConfig`]); with
//! `--pod-name x-<ordinal>` (a StatefulSet pod's name, so that every pod reads one
//! shared file) its `myid` is replaced by the ordinal + 1. It then recovers the
//! member's data directory, binds `0.0.0.0:clientPort` and, if
//! `admin.enableServer`, `0.0.0.0:admin.serverPort`, and serves until Ctrl-C.
//! It also binds the peer port (`0.0.0.0:peerPort`, or the port of its own
//! `server.<id>` line). A server that would get one async worker thread
//! ([`serves_on_one_thread`]) runs on a current-thread runtime instead: all its tasks
//! on the thread that starts it, without the multi-thread scheduler's hand-offs
//! between that thread and the worker.
//!
//! [`run_local`] runs an ensemble on 127.0.0.1. One member runs in this process.
//! `--members N` for N > 1 runs each member as a separate `ensemble server` process
//! (so that any one can be killed), member `i` (1-based) on client port `P+i-1`
//! and peer port `Q+i-1` (`--client-port P`, `--peer-port Q`, by default P+1000),
//! all founding one ensemble; the children exit when this process goes away, even
//! when it is killed. With `--data-dir D` member `i` keeps its data in
//! `D/member-i`, so a second run on the same directory resumes the same ensemble;
//! without, data lives in memory. `--set KEY=VALUE` adds a zoo.cfg setting to every
//! member, checked before anything starts (an unknown key, a bad value, or a key
//! the other options own is refused). The first line on stdout is the connection
//! string (every member's address, comma-separated), printed once every member
//! serves; admin ports (`--admin-port A`: A+i-1; by default any free ports, so
//! that several local ensembles and tests never collide) are announced on stderr
//! as `admin: http://127.0.0.1:PORT`, never on stdout. The members share this
//! machine's cores: each runs `cores / N` (at least one) async worker threads
//! (`TOKIO_WORKER_THREADS`, unless already set), not one per core each, which
//! would make them wake each other across cores for nothing. They run under Linux's
//! `SCHED_BATCH` policy: the members hand work to each other all the time (an
//! append, its answer, the commit), and with the default policy every hand-off
//! preempts the sender before it has finished and gone back to waiting, a context
//! switch that buys nothing when both belong to the same write. Every startup failure
//! (configuration, data directory, port) is an error that names what failed,
//! before anything is served.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, ServerConfig};
use crate::server::{Listeners, Member, ServerError};

/// `ensemble server`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// zoo.cfg-style `key=value` configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The StatefulSet pod name `<name>-<ordinal>`: sets `myid` to the ordinal + 1,
    /// overriding the file's `myid`.
    #[arg(long, value_name = "NAME")]
    pub pod_name: Option<String>,
}

/// `ensemble local`.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Number of members: 1 runs in this process, more run as separate processes.
    #[arg(long, default_value_t = 1)]
    pub members: u16,
    /// Client port of the first member; member i listens on this port + i.
    #[arg(long, default_value_t = 2181)]
    pub client_port: u16,
    /// Directory for the members' data (member i uses DIR/member-i); without it,
    /// data is kept in memory and lost on exit.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin HTTP port of the first member (/livez, /readyz, /status, /metrics); by
    /// default (0) any free port, announced on stderr.
    #[arg(long, default_value_t = 0)]
    pub admin_port: u16,
    /// Peer (Raft) port of the first member when there are several; member i uses
    /// this port + i. Default: the client port + 1000.
    #[arg(long)]
    pub peer_port: Option<u16>,
    /// A zoo.cfg setting for every member, such as `4lw.commands.whitelist=*`;
    /// repeatable. Ids, ports, members and the data directory come from the other
    /// options.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

/// Set, to its own process id, in the environment of the members `ensemble local`
/// starts: they exit when their parent is no longer that process.
const EXIT_WITH_PARENT: &str = "ENSEMBLE_EXIT_WITH_PARENT";

/// tokio's variable for the number of async worker threads of a runtime.
const WORKER_THREADS: &str = "TOKIO_WORKER_THREADS";

/// Whether `ensemble server` should run on a current-thread runtime: when it would have
/// one async worker thread anyway, by `TOKIO_WORKER_THREADS` (`workers`, as `ensemble
/// local` gives each of three members on two cores) or, with that unset, by the number
/// of cores it may use. The caller's thread then runs every task itself: a serial write
/// took 582 against 632 µs, and 8 × 8 writes went from 25 968 to 28 988 ops/s (README,
/// "Measured").
pub fn serves_on_one_thread(workers: Option<&str>, cores: usize) -> bool {
    match workers {
        Some(workers) => workers.trim() == "1",
        None => cores == 1,
    }
}

/// [`serves_on_one_thread`] for this process: its environment and its usable cores.
pub fn server_serves_on_one_thread() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    serves_on_one_thread(std::env::var(WORKER_THREADS).ok().as_deref(), cores)
}

/// Worker threads for each of `members` processes sharing `cores`.
fn worker_threads_per_member(cores: usize, members: u16) -> usize {
    (cores / usize::from(members.max(1))).max(1)
}

/// Puts the calling process under `SCHED_BATCH` (see the module contract); threads
/// and processes it starts inherit the policy. Any user may choose it; where the
/// system refuses anyway, the process runs under the default policy.
fn batch_scheduling() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) on this process, reading a valid sched_param.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    Ok(())
}

/// Why a subcommand failed.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("cannot read configuration file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error(
        "--pod-name {0:?}: expected a StatefulSet pod name ending in `-<ordinal>`, such as `x-2`"
    )]
    PodName(String),
    #[error("--members {0}: an ensemble has 1 to 9 members")]
    MembersOutOfRange(u16),
    #[error("--members {0} needs a fixed --client-port (members use consecutive ports)")]
    PortsNeeded(u16),
    #[error("--set {setting}: {reason}")]
    Setting { setting: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("member {id} exited before it served: {status}")]
    MemberExited { id: u16, status: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// A token cancelled by SIGINT (Ctrl-C) or SIGTERM (how Kubernetes and most
/// supervisors stop a process): either stops the server gracefully.
///
/// Both handlers are installed before this returns, so call it before telling
/// anyone that the process serves: a signal that arrived in between would still end
/// the process the default way, at once and without cleaning up.
fn stop_token() -> CancellationToken {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    // A signal that cannot be installed is never received: serving on until killed is
    // the best option then.
    async fn received(signal: &mut Option<Signal>) {
        match signal {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = received(&mut interrupt) => {}
            () = received(&mut terminate) => {}
        }
        cancel.cancel();
    });
    token
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, CliError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Bind { addr, source })
}

/// The member id of StatefulSet pod `name`: its trailing ordinal + 1.
fn member_id_of_pod(name: &str) -> Option<u64> {
    let (set, ordinal) = name.rsplit_once('-')?;
    if set.is_empty() || ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ordinal.parse::<u64>().ok()?.checked_add(1)
}

/// `ensemble server --config FILE [--pod-name NAME]`.
pub async fn run_server(args: ServerArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&args.config).map_err(|source| CliError::ReadConfig {
        path: args.config.clone(),
        source,
    })?;
    let mut config = ServerConfig::from_properties(&text).map_err(|source| CliError::Config {
        path: args.config.clone(),
        source,
    })?;
    if let Some(name) = args.pod_name {
        config.my_id = member_id_of_pod(&name).ok_or(CliError::PodName(name))?;
    }
    for key in &config.ignored_keys {
        tracing::warn!(key = %key, "ignoring unknown configuration key");
    }
    if let Some(parent) = std::env::var(EXIT_WITH_PARENT)
        .ok()
        .and_then(|pid| pid.parse().ok())
    {
        exit_with_parent(parent);
    }
    let stop = stop_token();
    let peer_port = config
        .servers
        .get(&config.my_id)
        .map_or(config.peer_port, |spec| spec.peer_port);
    let peer = bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, peer_port))).await?;
    let member = Member::open(config.clone(), Some(peer)).await?;
    let listener = bind(SocketAddr::from((
        Ipv4Addr::UNSPECIFIED,
        config.client_port,
    )))
    .await?;
    let admin = if config.admin_enabled {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.admin_port));
        let admin = bind(addr).await?;
        tracing::info!(port = config.admin_port, "serving the admin HTTP port");
        Some(admin)
    } else {
        None
    };
    tracing::info!(port = config.client_port, "serving clients");
    let listeners = Listeners {
        client: listener,
        admin,
        peer: None,
    };
    member.serve(listeners, stop).await?;
    Ok(())
}

/// Exits the process as soon as its parent is no longer `parent` (the `ensemble
/// local` that started it, which may have been killed, even before this ran).
fn exit_with_parent(parent: u32) {
    std::thread::spawn(move || loop {
        if std::os::unix::process::parent_id() != parent {
            eprintln!("ensemble local went away; this member exits");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    });
}

/// Settings `ensemble local` writes itself, from its other options.
const LOCAL_OWN_KEYS: [&str; 7] = [
    "myid",
    "clientPort",
    "dataDir",
    "admin.serverPort",
    "adminPort",
    "peerPort",
    "joinExisting",
];

/// The `--set` settings as zoo.cfg lines, each checked as the server would read it.
fn local_settings(settings: &[String]) -> Result<String, CliError> {
    let mut text = String::new();
    for setting in settings {
        let refuse = |reason: &str| CliError::Setting {
            setting: setting.clone(),
            reason: reason.to_owned(),
        };
        let Some((key, _)) = setting.split_once('=') else {
            return Err(refuse("expected KEY=VALUE"));
        };
        let key = key.trim();
        if LOCAL_OWN_KEYS.contains(&key) || key.starts_with("server.") {
            return Err(refuse(
                "ensemble local sets this itself (see --members, --client-port, --peer-port, \
                 --admin-port, --data-dir)",
            ));
        }
        let parsed = ServerConfig::from_properties(setting).map_err(|e| refuse(&e.to_string()))?;
        if !parsed.ignored_keys.is_empty() {
            return Err(refuse("not a setting this server knows"));
        }
        let _ = writeln!(text, "{setting}");
    }
    Ok(text)
}

/// `ensemble local --members N --client-port P [--data-dir D] [--set KEY=VALUE]...`.
pub async fn run_local(args: LocalArgs) -> Result<(), CliError> {
    if !(1..=9).contains(&args.members) {
        return Err(CliError::MembersOutOfRange(args.members));
    }
    let settings = local_settings(&args.settings)?;
    if args.members > 1 {
        return run_local_ensemble(args, &settings).await;
    }
    let stop = stop_token();
    // Bound first: the member's address in the membership names its client port.
    let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.client_port))).await?;
    let port = listener
        .local_addr()
        .map_or(args.client_port, |addr| addr.port());
    let settings = ServerConfig::from_properties(&settings).map_err(|e| CliError::Setting {
        setting: args.settings.join(" "),
        reason: e.to_string(),
    })?;
    let member = Member::open(
        ServerConfig {
            client_port: port,
            data_dir: args.data_dir.map(|dir| dir.join("member-1")),
            ..settings
        },
        None,
    )
    .await?;
    let admin = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.admin_port))).await?;
    let admin_port = admin
        .local_addr()
        .map_or(args.admin_port, |addr| addr.port());
    println!("127.0.0.1:{port}");
    eprintln!("admin: http://127.0.0.1:{admin_port}");
    let listeners = Listeners {
        client: listener,
        admin: Some(admin),
        peer: None,
    };
    member.serve(listeners, stop).await?;
    Ok(())
}

/// A free port on the loopback, for a child to bind a moment later.
fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| CliError::Io {
            what: "finding a free admin port".into(),
            source,
        })
}

/// The first port `free` offers that is not `reserved`.
fn pick_free_port(
    mut free: impl FnMut() -> Result<u16, CliError>,
    reserved: impl Fn(u16) -> bool,
) -> Result<u16, CliError> {
    loop {
        let port = free()?;
        if !reserved(port) {
            return Ok(port);
        }
    }
}

/// Whether `port` is one of the `n` ports from `first`.
fn in_block(port: u16, first: u16, n: u16) -> bool {
    port >= first && u32::from(port) < u32::from(first) + u32::from(n)
}

/// The configuration of member `id` of a local ensemble, `settings` (checked zoo.cfg
/// lines) first.
fn local_member_config(
    args: &LocalArgs,
    settings: &str,
    id: u16,
    peer_base: u16,
    admin_port: u16,
    data_dir: Option<&Path>,
) -> String {
    let mut text = format!("# written by `ensemble local`\n{settings}");
    let _ = writeln!(text, "myid={id}");
    let _ = writeln!(text, "clientPort={}", args.client_port + id - 1);
    let _ = writeln!(text, "admin.serverPort={admin_port}");
    if let Some(dir) = data_dir {
        let _ = writeln!(text, "dataDir={}", dir.display());
    }
    for member in 1..=args.members {
        let _ = writeln!(
            text,
            "server.{member}=127.0.0.1:{}:participant;127.0.0.1:{}",
            peer_base + member - 1,
            args.client_port + member - 1
        );
    }
    text
}

/// Runs an ensemble of separate member processes; see the module contract.
async fn run_local_ensemble(args: LocalArgs, settings: &str) -> Result<(), CliError> {
    let io = |what: String| move |source| CliError::Io { what, source };
    if args.client_port == 0 {
        return Err(CliError::PortsNeeded(args.members));
    }
    let peer_base = args
        .peer_port
        .unwrap_or(args.client_port.saturating_add(1000));
    let stop = stop_token();
    let exe = std::env::current_exe().map_err(io("finding the ensemble binary".into()))?;
    let config_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("ensemble-local-{}", std::process::id())),
    };
    std::fs::create_dir_all(&config_dir)
        .map_err(io(format!("creating {}", config_dir.display())))?;
    // Without --data-dir the directory holds only the members' configs: it goes when
    // the run ends.
    let _configs = args
        .data_dir
        .is_none()
        .then(|| RemovedOnDrop(config_dir.clone()));
    let mut children = Vec::new();
    let mut admin_ports = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = std::env::var(WORKER_THREADS)
        .unwrap_or_else(|_| worker_threads_per_member(cores, args.members).to_string());
    for id in 1..=args.members {
        let admin_port = match args.admin_port {
            // None of the ensemble's ports is bound yet, so the kernel may offer one.
            0 => pick_free_port(free_port, |port| {
                in_block(port, args.client_port, args.members)
                    || in_block(port, peer_base, args.members)
                    || admin_ports.contains(&port)
            })?,
            base => base + id - 1,
        };
        let data_dir = args
            .data_dir
            .as_ref()
            .map(|d| d.join(format!("member-{id}")));
        let path = config_dir.join(format!("member-{id}.properties"));
        let config = local_member_config(
            &args,
            settings,
            id,
            peer_base,
            admin_port,
            data_dir.as_deref(),
        );
        std::fs::write(&path, config).map_err(io(format!("writing {}", path.display())))?;
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg("server")
            .arg("--config")
            .arg(&path)
            .env(EXIT_WITH_PARENT, std::process::id().to_string())
            .env(WORKER_THREADS, &workers)
            .kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec and makes one
        // system call, which touches no memory shared with the parent.
        unsafe { command.pre_exec(batch_scheduling) };
        let child = command
            .spawn()
            .map_err(io(format!("starting member {id}")))?;
        children.push((id, child));
        admin_ports.push(admin_port);
    }
    let all_ready = async {
        for (&port, (id, child)) in admin_ports.iter().zip(children.iter_mut()) {
            wait_until_ready(*id, port, child).await?;
        }
        Ok::<(), CliError>(())
    };
    // Stopped while the members start: they are stopped below as they would be later.
    tokio::select! {
        ready = all_ready => ready?,
        () = stop.cancelled() => {}
    }
    if !stop.is_cancelled() {
        let connection: Vec<String> = (0..args.members)
            .map(|i| format!("127.0.0.1:{}", args.client_port + i))
            .collect();
        println!("{}", connection.join(","));
        for port in &admin_ports {
            eprintln!("admin: http://127.0.0.1:{port}");
        }
    }
    let mut waits: tokio::task::JoinSet<(u16, String)> = tokio::task::JoinSet::new();
    for (id, mut child) in children {
        let stop = stop.clone();
        waits.spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                () = stop.cancelled() => {
                    // Ctrl-C reached the members too, SIGTERM only this process: pass
                    // it on, and give them time to stop.
                    if let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
                        // SAFETY: kill(2) with a child's pid and a valid signal number
                        // touches no memory of this process.
                        unsafe { libc::kill(pid, libc::SIGTERM) };
                    }
                    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                        Ok(status) => status,
                        Err(_) => {
                            let _ = child.start_kill();
                            child.wait().await
                        }
                    }
                }
            };
            (id, status.map_or_else(|e| e.to_string(), |s| s.to_string()))
        });
    }
    while let Some(done) = waits.join_next().await {
        if let Ok((id, status)) = done {
            if !stop.is_cancelled() {
                eprintln!("member {id} exited ({status}); the others go on");
            }
        }
    }
    Ok(())
}

/// A directory removed, with everything in it, when this is dropped.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until member `id` answers `/readyz` on its admin port.
async fn wait_until_ready(
    id: u16,
    admin_port: u16,
    child: &mut tokio::process::Child,
) -> Result<(), CliError> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError::MemberExited {
                id,
                status: status.to_string(),
            });
        }
        if readyz(admin_port).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `GET /readyz` on the loopback port answers 200.
async fn readyz(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.ends_with(b"200")
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_admin_port_never_takes_a_port_the_ensemble_will_bind() {
        // The kernel offers member 3's client port, then a peer port, then a free one.
        let mut offers = [12183, 13181, 40000].into_iter();
        let reserved = |port| super::in_block(port, 12181, 3) || super::in_block(port, 13181, 3);
        let port = super::pick_free_port(|| Ok(offers.next().expect("an offer")), reserved);
        assert_eq!(port.ok(), Some(40000));
        assert!(super::in_block(65535, 65534, 2) && !super::in_block(12184, 12181, 3));
    }

    use super::*;

    #[tokio::test]
    async fn ensemble_sizes_and_ports_are_checked() {
        let args = |members, client_port| LocalArgs {
            members,
            client_port,
            data_dir: None,
            admin_port: 0,
            peer_port: None,
            settings: Vec::new(),
        };
        let err = run_local(args(10, 2181)).await.expect_err("too many");
        assert!(err.to_string().contains("1 to 9 members"), "{err}");
        let err = run_local(args(0, 2181)).await.expect_err("none");
        assert!(err.to_string().contains("1 to 9 members"), "{err}");
        let err = run_local(args(3, 0)).await.expect_err("port 0");
        assert!(err.to_string().contains("--client-port"), "{err}");
    }

    #[test]
    fn a_server_with_one_worker_thread_runs_on_the_thread_that_starts_it() {
        assert!(
            serves_on_one_thread(Some("1"), 2),
            "ensemble local's 2 cores / 3"
        );
        assert!(serves_on_one_thread(None, 1), "one core");
        assert!(!serves_on_one_thread(Some("2"), 1), "the variable decides");
        assert!(!serves_on_one_thread(None, 2));
    }

    #[test]
    fn local_members_share_the_cores() {
        assert_eq!(worker_threads_per_member(2, 3), 1);
        assert_eq!(worker_threads_per_member(8, 3), 2);
        assert_eq!(worker_threads_per_member(16, 5), 3);
        assert_eq!(worker_threads_per_member(1, 1), 1);
    }

    #[test]
    fn local_members_found_one_ensemble() {
        let args = LocalArgs {
            members: 3,
            client_port: 2181,
            data_dir: None,
            admin_port: 0,
            peer_port: None,
            settings: vec!["tickTime=500".into(), "4lw.commands.whitelist=*".into()],
        };
        let settings = local_settings(&args.settings).expect("valid settings");
        let text = local_member_config(
            &args,
            &settings,
            2,
            3181,
            9000,
            Some(Path::new("/d/member-2")),
        );
        let config = ServerConfig::from_properties(&text).expect("valid");
        assert_eq!(config.tick_time_ms, 500);
        assert!(config.allows_four_letter_word("hash"));
        assert_eq!(
            (config.my_id, config.client_port, config.admin_port),
            (2, 2182, 9000)
        );
        assert_eq!(config.data_dir.as_deref(), Some(Path::new("/d/member-2")));
        assert_eq!(config.servers.len(), 3);
        assert_eq!(config.advertised_peer_address(), "127.0.0.1:3182");
        assert_eq!(config.servers[&3].client, Some(("127.0.0.1".into(), 2183)));
    }

    #[test]
    fn local_settings_are_checked_before_anything_starts() {
        let refused = |setting: &str| match local_settings(&[setting.to_owned()]) {
            Err(CliError::Setting { setting: s, reason }) => {
                assert_eq!(s, setting);
                reason
            }
            other => panic!("{setting}: {other:?}"),
        };
        assert!(refused("tickTime").contains("KEY=VALUE"));
        assert!(refused("tickTime=soon").contains("tickTime"));
        assert!(refused("tickTme=500").contains("not a setting"));
        assert!(refused("clientPort=1").contains("sets this itself"));
        assert!(refused("server.4=127.0.0.1:1").contains("sets this itself"));
        assert_eq!(
            local_settings(&["snapCount=10".into()]).expect("valid"),
            "snapCount=10\n"
        );
    }

    #[tokio::test]
    async fn an_unusable_data_directory_is_named() {
        let file = std::env::temp_dir().join(format!("ensemble-not-a-dir-{}", std::process::id()));
        std::fs::write(&file, b"").expect("temp file");
        let err = run_local(LocalArgs {
            members: 1,
            client_port: 0,
            data_dir: Some(file.clone()),
            admin_port: 0,
            peer_port: None,
            settings: Vec::new(),
        })
        .await
        .expect_err("a file is not a directory");
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
        let _ = std::fs::remove_file(file);
    }

    #[tokio::test]
    async fn a_missing_config_file_is_named() {
        let err = run_server(ServerArgs {
            config: PathBuf::from("/nonexistent/zoo.cfg"),
            pod_name: None,
        })
        .await
        .expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/zoo.cfg"));
    }

    #[test]
    fn the_member_id_is_the_pod_ordinal_plus_one() {
        assert_eq!(member_id_of_pod("x-0"), Some(1));
        assert_eq!(member_id_of_pod("x-2"), Some(3));
        assert_eq!(member_id_of_pod("my-cluster-12"), Some(13));
        for name in [
            "x",
            "x-",
            "x-a",
            "x-2a",
            "x-+1",
            "-1",
            "",
            "x-99999999999999999999",
        ] {
            assert_eq!(member_id_of_pod(name), None, "{name:?}");
        }
    }

    #[tokio::test]
    async fn a_pod_name_without_an_ordinal_names_the_flag() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), "myid=1\n").expect("write");
        let err = run_server(ServerArgs {
            config: file.path().to_path_buf(),
            pod_name: Some("coordinator".into()),
        })
        .await
        .expect_err("no ordinal");
        assert!(
            err.to_string().starts_with("--pod-name \"coordinator\""),
            "{err}"
        );
    }
}
