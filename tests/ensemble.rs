//! Replicated ensembles of real `ensemble server` processes on loopback, driven by a
//! ZooKeeper client no one here wrote, with members killed by SIGKILL.
//!
//! Each test writes its members' configurations (ZooKeeper's `server.<id>` lines)
//! into a temporary directory, starts every member as its own process, finds the
//! leader through the admin port's `/status`, and kills and restarts members as a
//! crash would (or stops them with SIGTERM, as Kubernetes does). Member logs go to `member-<id>.log` in that directory.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::processes::{free_port, free_ports, temp_dir};
use zookeeper_client as zk;

const OPEN: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const EPHEMERAL: zk::CreateOptions<'static> =
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
const WAIT: Duration = Duration::from_secs(30);

/// The ports of one member.
#[derive(Clone, Copy)]
struct Ports {
    client: u16,
    peer: u16,
    admin: u16,
}

/// An ensemble of member processes; see the module contract.
struct Cluster {
    dir: PathBuf,
    ports: BTreeMap<u64, Ports>,
    /// Configuration lines every member gets besides its ports and the members.
    settings: String,
    running: BTreeMap<u64, Child>,
}

impl Cluster {
    /// Starts `size` members founding one ensemble, and waits until it serves.
    fn start(name: &str, size: u64) -> Self {
        Self::start_some(name, size, size)
    }

    /// Starts the first `started` of `size` members founding one ensemble (the others
    /// never come up), and waits until it serves.
    fn start_some(name: &str, size: u64, started: u64) -> Self {
        Self::launch(name, size, started, "")
    }

    /// Starts `size` members founding one ensemble with `settings` (configuration
    /// lines) added, and waits until it serves.
    fn start_with(name: &str, size: u64, settings: &str) -> Self {
        Self::launch(name, size, size, settings)
    }

    fn launch(name: &str, size: u64, started: u64, settings: &str) -> Self {
        let dir = temp_dir(name);
        let free = free_ports(3 * size as usize);
        let ports: BTreeMap<u64, Ports> = (1..=size)
            .zip(free.chunks(3))
            .map(|(id, p)| {
                (
                    id,
                    Ports {
                        client: p[0],
                        peer: p[1],
                        admin: p[2],
                    },
                )
            })
            .collect();
        let mut cluster = Self {
            dir,
            ports,
            settings: settings.to_owned(),
            running: BTreeMap::new(),
        };
        for id in 1..=size {
            cluster.write_config(id);
        }
        for id in 1..=started {
            cluster.start_member(id);
        }
        cluster.wait_for_leader();
        cluster
    }

    fn write_config(&self, id: u64) {
        let ports = self.ports[&id];
        let mut text = format!(
            "myid={id}\nclientPort={}\nadmin.serverPort={}\ndataDir={}\n\
             4lw.commands.whitelist=*\ntickTime=500\n",
            ports.client,
            ports.admin,
            self.dir.join(format!("member-{id}")).display()
        );
        text.push_str(&self.settings);
        for (member, p) in &self.ports {
            text.push_str(&format!(
                "server.{member}=127.0.0.1:{}:participant;127.0.0.1:{}\n",
                p.peer, p.client
            ));
        }
        std::fs::write(self.config_path(id), text).expect("write config");
    }

    fn config_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("member-{id}.properties"))
    }

    fn start_member(&mut self, id: u64) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("member-{id}.log")))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ensemble"))
            .arg("server")
            .arg("--config")
            .arg(self.config_path(id))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ensemble server");
        self.running.insert(id, child);
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.running.remove(&id) {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// SIGTERM, as Kubernetes stops a pod: the member's exit status, once it exits.
    fn terminate(&mut self, id: u64) -> std::process::ExitStatus {
        terminate(&mut self.running.remove(&id).expect("a running member"))
    }

    /// The CPU time member `id` used, user and system.
    fn cpu_time(&self, id: u64) -> Duration {
        let pid = self.running[&id].id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        // After the command name in parentheses: utime and stime are fields 12 and 13.
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .expect("stat format")
            .1
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse().expect("a tick count"))
            .collect();
        // SAFETY: sysconf reads a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ticks = u64::try_from(ticks).expect("clock ticks");
        Duration::from_millis(fields.iter().sum::<u64>() * 1000 / ticks)
    }

    fn addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.ports[&id].client)
    }

    /// Every member's client address, as a ZooKeeper connection string.
    fn connect_string(&self) -> String {
        let addrs: Vec<String> = self.ports.keys().map(|id| self.addr(*id)).collect();
        addrs.join(",")
    }

    /// Member `id`'s `/status`, if it answers.
    fn status(&self, id: u64) -> Option<serde_json::Value> {
        let body = http_get(self.ports[&id].admin, "/status")?;
        serde_json::from_str(&body).ok()
    }

    /// The leader the running members agree on, once one is elected and every
    /// running member serves.
    fn wait_for_leader(&self) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let leaders: Vec<Option<u64>> = self
                .running
                .keys()
                .map(|id| {
                    let ready = http_get(self.ports[id].admin, "/readyz").is_some();
                    let status = self.status(*id)?;
                    let leader = status["leaderId"].as_u64()?;
                    ready.then_some(leader)
                })
                .collect();
            if let Some(Some(first)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*first)) && self.running.contains_key(first) {
                    return *first;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {:?} in {WAIT:?} (logs in {})",
                self.running.keys().collect::<Vec<_>>(),
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.running.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `GET path` on a loopback admin port; the body if the answer is 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

async fn connect(addr: &str) -> zk::Client {
    tokio::time::timeout(
        WAIT,
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(addr),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// Reads `path` on member `id` after a sync, so it has what was committed before.
async fn read_on(cluster: &Cluster, id: u64, path: &str) -> Option<Vec<u8>> {
    let client = connect(&cluster.addr(id)).await;
    client.sync(path).await.expect("sync");
    match client.get_data(path).await {
        Ok((data, _)) => Some(data),
        Err(zk::Error::NoNode) => None,
        Err(e) => panic!("read {path} on member {id}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_any_member_are_seen_on_every_member() {
    let cluster = Cluster::start("replicate", 3);
    for id in 1..=3 {
        let client = connect(&cluster.addr(id)).await;
        let path = format!("/written-on-{id}");
        client
            .create(&path, path.as_bytes(), &OPEN)
            .await
            .unwrap_or_else(|e| panic!("create through member {id}: {e}"));
    }
    for reader in 1..=3 {
        for writer in 1..=3 {
            let path = format!("/written-on-{writer}");
            assert_eq!(
                read_on(&cluster, reader, &path).await.as_deref(),
                Some(path.as_bytes()),
                "member {reader} sees the write made through member {writer}"
            );
        }
    }

    // A watch set on one member fires for a write made through another.
    let watcher = connect(&cluster.addr(3)).await;
    let (_, _, watch) = watcher
        .get_and_watch_data("/written-on-1")
        .await
        .expect("watch");
    let writer = connect(&cluster.addr(1)).await;
    writer
        .set_data("/written-on-1", b"changed", None)
        .await
        .expect("set");
    let event = tokio::time::timeout(WAIT, watch.changed())
        .await
        .expect("the watch fires on another member");
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);

    // Every member reports the same leader and a membership of three voters.
    let leader = cluster.wait_for_leader();
    for id in 1..=3 {
        let status = cluster.status(id).expect("status");
        assert_eq!(status["leaderId"].as_u64(), Some(leader), "{status}");
        let voters = status["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter(|m| m["voting"] == true)
            .count();
        assert_eq!(voters, 3, "{status}");
        let expected = if id == leader { "leader" } else { "follower" };
        assert_eq!(status["role"], expected, "{status}");
    }
}

/// Writers create unique znodes through the whole ensemble; returns the ones
/// acknowledged, and the longest time without any acknowledgement.
async fn write_until(
    client: &zk::Client,
    writers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<String>, Duration) {
    let acknowledged = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let client = client.clone();
        let acknowledged = Arc::clone(&acknowledged);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let path = format!("/load/{writer}-{i}");
                match client.create(&path, path.as_bytes(), &OPEN).await {
                    Ok(_) => {
                        acknowledged
                            .lock()
                            .expect("lock")
                            .push((Instant::now(), path));
                        i += 1;
                    }
                    // Lost with the leader, or not: a new name, so no ambiguity.
                    Err(_) => {
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let mut acknowledged = acknowledged.lock().expect("lock").clone();
    acknowledged.sort();
    let longest_gap = acknowledged
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    (
        acknowledged.into_iter().map(|(_, p)| p).collect(),
        longest_gap,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start("kill-leader", 3);
    let client = connect(&cluster.connect_string()).await;
    client.create("/load", b"", &OPEN).await.expect("parent");
    client
        .create("/survivor", b"", &EPHEMERAL)
        .await
        .expect("ephemeral");
    let session = client.session_id().0;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let client = client.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move { write_until(&client, 4, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leader = cluster.wait_for_leader();
    cluster.kill(leader);
    let killed_at = Instant::now();
    let new_leader = tokio::task::block_in_place(|| cluster.wait_for_leader());
    assert_ne!(new_leader, leader);
    eprintln!(
        "a new leader serves {:?} after the kill",
        killed_at.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, gap) = load.await.expect("load");
    eprintln!(
        "{} writes acknowledged; longest time without one: {gap:?}",
        acknowledged.len()
    );
    assert!(acknowledged.len() > 50, "load ran: {}", acknowledged.len());

    // The survivors have every acknowledged write, and the session lives on.
    let checker = connect(&cluster.connect_string()).await;
    checker.sync("/load").await.expect("sync");
    for path in &acknowledged {
        let (data, _) = checker
            .get_data(path)
            .await
            .unwrap_or_else(|e| panic!("acknowledged {path} lost: {e}"));
        assert_eq!(data, path.as_bytes());
    }
    let (_, stat) = client
        .get_data("/survivor")
        .await
        .expect("the session and its ephemeral survive the leader");
    assert_eq!(stat.ephemeral_owner, session);

    // The killed member comes back, catches up, and has them too.
    cluster.start_member(leader);
    tokio::task::block_in_place(|| cluster.wait_for_leader());
    let last = acknowledged.last().expect("some writes");
    assert_eq!(
        read_on(&cluster, leader, last).await.as_deref(),
        Some(last.as_bytes())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_member_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start("kill-all", 3);
    let client = connect(&cluster.connect_string()).await;
    client.create("/load", b"", &OPEN).await.expect("parent");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let client = client.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move { write_until(&client, 4, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in 1..=3 {
        cluster.kill(id);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, _) = load.await.expect("load");
    drop(client);
    assert!(acknowledged.len() > 50, "load ran: {}", acknowledged.len());

    for id in 1..=3 {
        cluster.start_member(id);
    }
    tokio::task::block_in_place(|| cluster.wait_for_leader());
    let checker = connect(&cluster.connect_string()).await;
    checker.sync("/load").await.expect("sync");
    for path in &acknowledged {
        assert!(
            checker.check_stat(path).await.expect("exists").is_some(),
            "acknowledged {path} lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_alone_refuses_clients_and_the_majority_goes_on() {
    let mut cluster = Cluster::start("minority", 3);
    let leader = cluster.wait_for_leader();
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    // Kill both followers: the leader is a minority of one.
    for id in &followers {
        cluster.kill(*id);
    }
    let alone = connect_refused_within(&cluster.addr(leader), WAIT).await;
    assert!(alone, "a member without a quorum stops serving clients");
    // Bring one back: two of three elect a leader and serve writes again.
    cluster.start_member(followers[0]);
    tokio::task::block_in_place(|| cluster.wait_for_leader());
    let client = connect(&cluster.addr(followers[0])).await;
    client
        .create("/after", b"", &OPEN)
        .await
        .expect("the majority writes");
}

/// SIGTERM stops a member cleanly: a leader hands its leadership to another member
/// before it exits, with success, and what it acknowledged stays.
/// A member that is down (its pod pending, or being rescheduled) costs the leader
/// retries paced by a backoff, not a busy loop.
#[test]
fn a_leader_with_a_member_down_stays_idle() {
    // Idle, a leader's heartbeats take a few percent of a core; spinning, all of one.
    fn assert_idle(cluster: &Cluster, leader: u64, down: u64) {
        let before = cluster.cpu_time(leader);
        let watched = Duration::from_secs(3);
        std::thread::sleep(watched);
        let used = cluster.cpu_time(leader) - before;
        assert!(
            used < watched / 4,
            "the leader used {used:?} of CPU in {watched:?} with member {down} down"
        );
    }
    // Member 3 never came up.
    let mut cluster = Cluster::start_some("member-down", 3, 2);
    let leader = cluster.wait_for_leader();
    assert_idle(&cluster, leader, 3);
    // It comes up, and a follower dies.
    cluster.start_member(3);
    let leader = cluster.wait_for_leader();
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    cluster.kill(follower);
    std::thread::sleep(Duration::from_secs(1));
    assert_idle(&cluster, leader, follower);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_by_sigterm_hands_over_and_exits_cleanly() {
    let mut cluster = Cluster::start("sigterm", 3);
    let leader = cluster.wait_for_leader();
    let client = connect(&cluster.addr(leader)).await;
    client
        .create("/before", b"acknowledged", &OPEN)
        .await
        .expect("create");
    drop(client);

    let status = tokio::task::block_in_place(|| cluster.terminate(leader));
    assert!(status.success(), "member {leader} exited with {status}");
    let log = std::fs::read_to_string(cluster.dir.join(format!("member-{leader}.log")))
        .expect("member log");
    assert!(
        log.contains("stopping: handed leadership over"),
        "member {leader} did not hand over:\n{log}"
    );
    let successor = tokio::task::block_in_place(|| cluster.wait_for_leader());
    assert_ne!(successor, leader);
    assert_eq!(
        read_on(&cluster, successor, "/before").await.as_deref(),
        Some(&b"acknowledged"[..])
    );
}

/// With `shutdownDrainMs`, a member told to stop refuses new connections at once but
/// serves the clients it has until the drain period ends, and only then hands over and
/// exits: behind a Kubernetes Service, its clients move only once nothing routes new
/// connections to it any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_told_to_stop_serves_its_clients_through_the_drain_period() {
    const DRAIN: Duration = Duration::from_secs(2);
    let settings = format!("shutdownDrainMs={}\n", DRAIN.as_millis());
    let mut cluster = Cluster::start_with("drain", 3, &settings);
    let leader = cluster.wait_for_leader();
    let client = connect(&cluster.addr(leader)).await;
    client.create("/before", b"", &OPEN).await.expect("create");

    let mut member = Reaped(cluster.running.remove(&leader).expect("running"));
    let told = Instant::now();
    send_sigterm(&member);

    // A new connection is refused, not left waiting in a backlog no one accepts from.
    let port = cluster.ports[&leader].client;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            attempt => assert!(
                told.elapsed() < Duration::from_millis(500),
                "still accepting connections 500 ms after SIGTERM: {attempt:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let admin = cluster.ports[&leader].admin;
    assert!(
        tokio::task::block_in_place(|| http_get(admin, "/readyz")).is_none(),
        "a draining member must not report ready"
    );
    // The session it already serves still writes, through the same connection.
    client
        .create("/during", b"drained", &OPEN)
        .await
        .expect("a write of a connected client during the drain");
    assert!(
        member.try_wait().expect("wait").is_none() && told.elapsed() < DRAIN,
        "the write came after the drain period"
    );

    let status = tokio::task::block_in_place(|| wait_for_exit(&mut member));
    assert!(status.success(), "member {leader} exited with {status}");
    assert!(
        told.elapsed() >= DRAIN,
        "exited {:?} after SIGTERM, before the drain period ended",
        told.elapsed()
    );
    let successor = tokio::task::block_in_place(|| cluster.wait_for_leader());
    assert_ne!(successor, leader);
    assert_eq!(
        read_on(&cluster, successor, "/during").await.as_deref(),
        Some(&b"drained"[..])
    );
}

/// Whether, within `limit`, a member stops accepting ZooKeeper sessions.
async fn connect_refused_within(addr: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            zk::Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .connect(addr),
        )
        .await;
        if !matches!(attempt, Ok(Ok(_))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[test]
fn ensemble_local_runs_three_member_processes_that_go_with_it() {
    let dir = temp_dir("local3");
    let port = free_port_block(6);
    let log = std::fs::File::create(dir.join("local.log")).expect("log");
    let mut local = Reaped(
        Command::new(env!("CARGO_BIN_EXE_ensemble"))
            .args(["local", "--members", "3", "--client-port"])
            .arg(port.to_string())
            .arg("--peer-port")
            .arg((port + 3).to_string())
            .arg("--data-dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn ensemble local"),
    );
    let mut stdout = local.stdout.take().expect("stdout");
    let first = read_line(&mut stdout);
    let expected: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", port + i)).collect();
    assert_eq!(
        first,
        expected.join(","),
        "the connection string comes first"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = connect(&first).await;
        client.create("/local", b"3", &OPEN).await.expect("create");
    });
    let _ = local.kill();
    let _ = local.wait();
    // Its members go with it (they exit when their parent is gone).
    let deadline = Instant::now() + WAIT;
    while (0..3).any(|i| TcpStream::connect(("127.0.0.1", port + i)).is_ok()) {
        assert!(Instant::now() < deadline, "members outlived ensemble local");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// SIGTERM (what `docker stop`, systemd and Kubernetes send) stops `ensemble local`
/// and its members cleanly, and a run without `--data-dir` leaves no files behind.
#[test]
fn ensemble_local_stops_with_its_members_on_sigterm_and_leaves_nothing_behind() {
    let port = free_port_block(6);
    let (mut local, configs) = local_without_data_dir(port, Stdio::piped());
    let mut stdout = local.stdout.take().expect("stdout");
    assert!(
        read_line(&mut stdout).starts_with("127.0.0.1:"),
        "it serves"
    );
    assert!(configs.join("member-1.properties").is_file());
    // The members share the machine's cores rather than each take them all.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers =
        std::env::var("TOKIO_WORKER_THREADS").unwrap_or_else(|_| (cores / 3).max(1).to_string());
    let members = children_of(local.id());
    assert_eq!(members.len(), 3, "three member processes");
    for member in members {
        let environ = std::fs::read(format!("/proc/{member}/environ")).expect("environ");
        let wanted = format!("TOKIO_WORKER_THREADS={workers}");
        assert!(
            environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes()),
            "member {member} runs without {wanted}"
        );
        // Every thread of it runs under SCHED_BATCH (policy 3). With one worker thread
        // due, it has none: its tasks run on its main thread (a current-thread runtime).
        let mut tokio_workers = 0;
        for thread in std::fs::read_dir(format!("/proc/{member}/task")).expect("threads") {
            let stat = std::fs::read_to_string(thread.expect("thread").path().join("stat"))
                .expect("thread stat");
            tokio_workers += usize::from(stat.contains("(tokio-rt-worker)"));
            // After the command name in parentheses, the policy is field 41 of stat.
            let policy = stat.rsplit_once(')').and_then(|(_, rest)| {
                rest.split_whitespace()
                    .nth(38)
                    .and_then(|p| p.parse::<u32>().ok())
            });
            assert_eq!(policy, Some(3), "a thread of member {member}: {stat}");
        }
        let expected = if workers == "1" {
            0
        } else {
            workers.parse().expect("a count")
        };
        assert_eq!(
            tokio_workers, expected,
            "member {member}'s async worker threads"
        );
    }

    let status = terminate(&mut local);
    assert!(status.success(), "ensemble local exited with {status}");
    for i in 0..3 {
        assert!(
            TcpStream::connect(("127.0.0.1", port + i)).is_err(),
            "member {} still serves",
            i + 1
        );
    }
    assert!(!configs.exists(), "{} was left behind", configs.display());
}

/// SIGTERM while the members are still starting stops them and `ensemble local`
/// as cleanly as later: nothing is left running or on disk.
#[test]
fn ensemble_local_stopped_while_starting_leaves_nothing_behind() {
    let (mut local, configs) = local_without_data_dir(free_port_block(6), Stdio::null());
    let deadline = Instant::now() + WAIT;
    let members = loop {
        let members = children_of(local.id());
        if members.len() == 3 {
            break members;
        }
        assert!(Instant::now() < deadline, "the members never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    let status = terminate(&mut local);
    assert!(status.success(), "ensemble local exited with {status}");
    for member in members {
        assert!(
            !std::path::Path::new(&format!("/proc/{member}")).exists(),
            "member process {member} outlived ensemble local"
        );
    }
    assert!(!configs.exists(), "{} was left behind", configs.display());
}

/// A member `ensemble local` started exits when `ensemble local` is gone, even if
/// it was gone before the member could look.
#[test]
fn a_member_whose_ensemble_local_is_gone_exits() {
    let dir = std::env::temp_dir().join(format!("ensemble-orphan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("member-1.properties");
    let (client, peer) = (free_port(), free_port());
    std::fs::write(
        &config,
        format!(
            "myid=1\nclientPort={client}\nadmin.serverPort={}\n\
             server.1=127.0.0.1:{peer}:participant;127.0.0.1:{client}\n",
            free_port()
        ),
    )
    .expect("config");
    // Its parent is this test, not the (long gone) `ensemble local` it names.
    let mut member = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["server", "--config"])
        .arg(&config)
        .env("ENSEMBLE_EXIT_WITH_PARENT", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ensemble server");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = member.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = member.kill();
            panic!("the member outlived the ensemble local it belongs to");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "it exits as failed: {status}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `ensemble local --members 3` on the six ports from `port` (clients, then peers),
/// without a data directory, and the directory its members' configurations go to.
fn local_without_data_dir(port: u16, stdout: Stdio) -> (Reaped, PathBuf) {
    let local = Reaped(
        Command::new(env!("CARGO_BIN_EXE_ensemble"))
            .args(["local", "--members", "3", "--client-port"])
            .arg(port.to_string())
            .arg("--peer-port")
            .arg((port + 3).to_string())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ensemble local"),
    );
    let configs = std::env::temp_dir().join(format!("ensemble-local-{}", local.id()));
    (local, configs)
}

/// A child process killed and reaped when this is dropped, so that a failed test
/// leaves no `ensemble local` (and so no members) running.
struct Reaped(Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends SIGTERM to `child` and waits for it to exit.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    send_sigterm(child);
    wait_for_exit(child)
}

fn send_sigterm(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

/// Waits for `child`, which was told to stop, to exit.
fn wait_for_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "SIGTERM was ignored");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, then the parent's pid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// The first of `n` consecutive ports that were all free on every address a moment
/// ago, chosen below the kernel's range of ephemeral ports: a port there is never
/// handed to an outgoing connection (one member dialling another) between this probe
/// and the member's bind, which a CI run lost a member to. One block serves both the
/// client and the peer ports: two blocks probed one after the other can overlap.
fn free_port_block(n: u16) -> u16 {
    const LOWEST: u16 = 10_000;
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|first| *first > LOWEST + 1_000)
        .unwrap_or(32_768);
    // Spread over the range by process, and apart for each call within one process
    // (tests run side by side).
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let span = u32::from(ephemeral_from - LOWEST - n);
    loop {
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let offset = (std::process::id().wrapping_mul(7_919) + call * 101) % span;
        let candidate = LOWEST + offset as u16;
        let held: Vec<_> = (0..n)
            .map_while(|i| TcpListener::bind(("0.0.0.0", candidate + i)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return candidate;
        }
    }
}

fn read_line(stdout: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).expect("read stdout") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).expect("utf-8")
}

/// Writes (setData, unconditional and conditional) by several clients on a few
/// znodes while the leader is killed twice and restarted: the recorded history
/// must be linearizable. Reads are left out on purpose: ZooKeeper serves them from
/// the member a client is connected to, so they are only sequentially consistent.
/// The same history with one acknowledged write's reply altered must be refused,
/// which shows the check is alive on real data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_histories_under_leader_kills_are_linearizable() {
    use ensemble_lincheck::{Command, ErrorCode, Outcome, Recorder, Register, Reply};
    use rand::{Rng, SeedableRng};

    const KEYS: usize = 4;
    let mut cluster = Cluster::start("linearizable", 3);
    let setup = connect(&cluster.connect_string()).await;
    setup.create("/lin", b"", &OPEN).await.expect("parent");
    for k in 0..KEYS {
        setup
            .create(&format!("/lin/k{k}"), b"0", &OPEN)
            .await
            .expect("key");
    }
    drop(setup);

    let recorder: Recorder<usize, u64> = Recorder::new();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for client_id in 0..6u32 {
        let recorder = recorder.clone();
        let stop = Arc::clone(&stop);
        let client = connect(&cluster.connect_string()).await;
        clients.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(client_id));
            let mut seen_version = 0i32;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = rng.random_range(0..KEYS);
                let value = u64::from(client_id) << 32 | n;
                let conditional = rng.random_bool(0.5);
                let command = if conditional {
                    Command::Cas {
                        expected_version: seen_version,
                        value,
                    }
                } else {
                    Command::Write(value)
                };
                let expected = conditional.then_some(seen_version);
                let pending = recorder.invoke(client_id, key, command);
                let path = format!("/lin/k{key}");
                match client.set_data(&path, &value.to_be_bytes(), expected).await {
                    Ok(stat) => {
                        seen_version = stat.version;
                        pending.ok(Reply::Stat {
                            version: stat.version,
                        });
                    }
                    Err(zk::Error::BadVersion) => pending.failed(ErrorCode::BadVersion),
                    Err(zk::Error::NoNode) => pending.failed(ErrorCode::NoNode),
                    // Connection loss and the like: it may or may not have happened.
                    Err(_) => {
                        pending.unknown();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                if rng.random_bool(0.3) {
                    seen_version = rng.random_range(0..seen_version.max(1) + 2);
                }
            }
        }));
    }

    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let leader = tokio::task::block_in_place(|| cluster.wait_for_leader());
        cluster.kill(leader);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.start_member(leader);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.await.expect("client");
    }

    let history = recorder.history();
    // Every key starts at version 0; its value is never read back, so any will do.
    let initial = |_: &usize| Register::Present {
        value: 0u64,
        version: 0,
    };
    let summary = history
        .check_from(initial)
        .unwrap_or_else(|e| panic!("not linearizable:\n{e}"));
    let acknowledged = history
        .operations()
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Ok { .. }))
        .count();
    eprintln!(
        "{} writes recorded ({acknowledged} acknowledged) over {} keys: linearizable ({} configurations searched)",
        history.len(),
        summary.keys,
        summary.configurations
    );
    assert!(acknowledged > 50, "load ran: {acknowledged}");

    // Two acknowledged writes on one key, the second begun after the first was
    // answered, must show increasing versions; give the second the first's version
    // (no unknown write can explain a version going back) and the check must refuse.
    let mut altered: Vec<_> = history.operations().to_vec();
    let acked = |op: &ensemble_lincheck::Operation<usize, u64, Duration>| match op.outcome {
        Outcome::Ok {
            at,
            reply: Reply::Stat { version },
        } => Some((at, version)),
        _ => None,
    };
    let (later, earlier_version) = altered
        .iter()
        .enumerate()
        .find_map(|(i, b)| {
            acked(b)?;
            altered.iter().find_map(|a| {
                let (answered, version) = acked(a)?;
                (a.key == b.key && answered < b.invoked_at).then_some((i, version))
            })
        })
        .expect("two acknowledged writes one after the other on a key");
    if let Outcome::Ok { at, .. } = altered[later].outcome {
        altered[later].outcome = Outcome::Ok {
            at,
            reply: Reply::Stat {
                version: earlier_version,
            },
        };
    }
    let altered = ensemble_lincheck::History::from(altered);
    assert!(
        altered.check_from(initial).is_err(),
        "an altered reply must be caught"
    );
}
