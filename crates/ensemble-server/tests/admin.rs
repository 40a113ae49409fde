//! The observable surface of a member besides the ZooKeeper protocol: the
//! four-letter words, in Apache ZooKeeper's formats, and the admin HTTP port. Each
//! test starts its own server on 127.0.0.1:0 (client and admin ports), changes it
//! with the `zookeeper-client` crate, and reads words over raw sockets and HTTP/1.1
//! over a raw `TcpStream`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ensemble_server::config::{ServerConfig, ServerSpec};
use ensemble_server::server::{self, Listeners};
use ensemble_server::tree::{node_digest, Node, StoredStat};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[path = "support/http.rs"]
mod http;
use zookeeper_client as zk;

const OPEN: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const EPHEMERAL: zk::CreateOptions<'static> =
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
const WAIT: Duration = Duration::from_secs(10);
/// `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`.
const SYSTEM_NODES: usize = 4;

struct TestServer {
    client_addr: SocketAddr,
    admin_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), server::ServerError>>,
}

fn all_words() -> ServerConfig {
    ServerConfig::from_properties("4lw.commands.whitelist=*").expect("config")
}

impl TestServer {
    async fn start(config: ServerConfig) -> Self {
        let client = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let client_addr = client.local_addr().expect("local addr");
        let admin_addr = admin.local_addr().expect("admin addr");
        let shutdown = CancellationToken::new();
        let listeners = Listeners {
            client,
            admin: Some(admin),
            peer: None,
        };
        let task = tokio::spawn(server::run(listeners, config, shutdown.clone()));
        let server = Self {
            client_addr,
            admin_addr,
            shutdown,
            task,
        };
        // As a Kubernetes probe would: the member serves once it is ready.
        within(async {
            while server.get("/readyz").await.0 != 200 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        server
    }

    /// The last applied zxid, from `/status`: the base the tests count from (a
    /// member's own first entries, such as the ensemble's secret, come before).
    async fn applied(&self) -> u64 {
        self.status().await["appliedIndex"]
            .as_u64()
            .expect("appliedIndex")
    }

    async fn client(&self) -> zk::Client {
        within(
            zk::Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .connect(&self.client_addr.to_string()),
        )
        .await
        .expect("connect")
    }

    /// Sends a four-letter word and returns everything the server wrote back.
    async fn word(&self, word: &str) -> String {
        let mut stream = TcpStream::connect(self.client_addr).await.expect("connect");
        stream.write_all(word.as_bytes()).await.expect("send");
        let mut out = String::new();
        within(stream.read_to_string(&mut out)).await.expect("read");
        out
    }

    /// `GET path` over HTTP/1.1; the status code and the body.
    async fn get(&self, path: &str) -> (u16, String) {
        http::exchange(self.admin_addr, "GET", path, "", "", WAIT).await
    }

    async fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("status is JSON")
    }

    async fn metric(&self, name: &str) -> f64 {
        let (code, body) = self.get("/metrics").await;
        assert_eq!(code, 200);
        metric_value(&body, name)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        within(self.task)
            .await
            .expect("server task")
            .expect("server result");
    }
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future).await.expect("in time")
}

/// The value of the sample whose name and labels are exactly `series`.
fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("number"))
        })
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Three members founding one ensemble, every word allowed; each ready (it knows
/// the leader and has caught up) when this returns.
async fn start_three() -> Vec<TestServer> {
    start_three_with(|_, _| {}).await
}

/// [`start_three`], each member's configuration changed by `change` (given its id).
async fn start_three_with(change: impl Fn(u64, &mut ServerConfig)) -> Vec<TestServer> {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let peer = TcpListener::bind("127.0.0.1:0").await.expect("bind peer");
        let client = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        listeners.push((peer, client, admin));
    }
    let servers: std::collections::BTreeMap<u64, ServerSpec> = (1u64..)
        .zip(&listeners)
        .map(|(id, (peer, client, _))| {
            let peer = peer.local_addr().expect("addr");
            let client = client.local_addr().expect("addr");
            let line = format!("{peer}:participant;{client}");
            (id, ServerSpec::parse(&line).expect("server line"))
        })
        .collect();
    let mut members = Vec::new();
    for (id, (peer, client, admin)) in (1u64..).zip(listeners) {
        let mut config = ServerConfig {
            my_id: id,
            servers: servers.clone(),
            tick_time_ms: 200,
            min_session_timeout_ms: 2_000,
            max_session_timeout_ms: 20_000,
            ..all_words()
        };
        change(id, &mut config);
        let client_addr = client.local_addr().expect("addr");
        let admin_addr = admin.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let listeners = Listeners {
            client,
            admin: Some(admin),
            peer: Some(peer),
        };
        let task = tokio::spawn(server::run(listeners, config, shutdown.clone()));
        members.push(TestServer {
            client_addr,
            admin_addr,
            shutdown,
            task,
        });
    }
    for member in &members {
        within(async {
            while member.get("/readyz").await.0 != 200 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    members
}

/// `key: value` lines (srvr/stat), in order.
fn colon_lines(text: &str) -> Vec<(&str, &str)> {
    text.lines().filter_map(|l| l.split_once(": ")).collect()
}

fn value<'a>(pairs: &[(&'a str, &'a str)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {key}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruok_isro_and_the_whitelist() {
    let server = TestServer::start(ServerConfig::default()).await;
    assert_eq!(server.word("ruok").await, "imok");
    assert_eq!(server.word("isro").await, "rw");
    // Not in the default whitelist: ZooKeeper's exact refusal.
    for word in [
        "cons", "stat", "wchs", "envi", "dirs", "dump", "wchc", "wchp", "crst", "srst",
    ] {
        assert_eq!(
            server.word(word).await,
            format!("{word} is not executed because it is not in the whitelist.\n")
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srvr_and_stat_report_zookeepers_fields() {
    let server = TestServer::start(all_words()).await;
    let base = server.applied().await;
    let client = server.client().await;
    client.create("/a", b"", &OPEN).await.expect("create");
    client.create("/a/b", b"", &OPEN).await.expect("create");

    let srvr = server.word("srvr").await;
    let pairs = colon_lines(&srvr);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "Zookeeper version",
            "Latency min/avg/max",
            "Received",
            "Sent",
            "Connections",
            "Outstanding",
            "Zxid",
            "Mode",
            "Node count"
        ],
        "{srvr}"
    );
    assert_eq!(srvr.lines().count(), keys.len(), "{srvr}");
    assert!(value(&pairs, "Zookeeper version").starts_with("3.9.0-ensemble-"));
    let latency: Vec<&str> = value(&pairs, "Latency min/avg/max").split('/').collect();
    assert_eq!(latency.len(), 3);
    assert!(latency[1].contains('.'), "avg is a double: {latency:?}");
    assert_eq!(value(&pairs, "Mode"), "standalone");
    assert_eq!(value(&pairs, "Node count"), (SYSTEM_NODES + 2).to_string());
    // The client and this word's connection.
    assert_eq!(value(&pairs, "Connections"), "2");
    assert_eq!(
        value(&pairs, "Outstanding"),
        "0",
        "{srvr}\n{}",
        server.word("cons").await
    );
    // Session creation and the two creates.
    assert_eq!(value(&pairs, "Zxid"), format!("0x{:x}", base + 3));
    let received: u64 = value(&pairs, "Received").parse().expect("number");
    let sent: u64 = value(&pairs, "Sent").parse().expect("number");
    // connect + 2 creates (+ pings), and as many replies; plus this word.
    assert!(received >= 4 && sent >= 3, "{srvr}");

    let stat = server.word("stat").await;
    let (head, rest) = stat.split_once("Clients:\n").expect("clients section");
    assert!(head.starts_with("Zookeeper version: 3.9.0-ensemble-"));
    let (clients, tail) = rest.split_once("\n\n").expect("blank line after clients");
    let clients: Vec<&str> = clients.lines().collect();
    assert_eq!(clients.len(), 2, "{stat}");
    // The session's connection is brief here: no sid.
    assert!(
        clients
            .iter()
            .any(|c| c.starts_with(" /127.0.0.1:") && c.contains("[1](queued=0,recved=")),
        "{stat}"
    );
    // This word's own connection: one packet in, none out, read interest off.
    assert!(
        clients
            .iter()
            .any(|c| c.ends_with("[0](queued=0,recved=1,sent=0)")),
        "{stat}"
    );
    assert!(clients.iter().all(|c| !c.contains("sid=")));
    assert!(tail.starts_with("Latency min/avg/max: "), "{stat}");
    assert!(tail.ends_with(&format!("Node count: {}\n", SYSTEM_NODES + 2)));

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cons_lists_the_connected_client() {
    let server = TestServer::start(all_words()).await;
    let base = server.applied().await;
    let client = server.client().await;
    client.create("/c", b"x", &OPEN).await.expect("create");
    client.get_data("/c").await.expect("get");

    let cons = server.word("cons").await;
    assert!(cons.ends_with(")\n\n"), "{cons:?}");
    let lines: Vec<&str> = cons.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{cons}");
    let sid = format!("sid=0x{:x},", client.session_id().0);
    let session_line = lines
        .iter()
        .find(|l| l.contains(&sid))
        .unwrap_or_else(|| panic!("no line with {sid} in {cons}"));
    assert!(session_line.starts_with(" /127.0.0.1:"));
    let fields: Vec<&str> = session_line
        .split_once("](")
        .and_then(|(_, f)| f.strip_suffix(')'))
        .expect("fields")
        .split(',')
        .collect();
    let keys: Vec<&str> = fields
        .iter()
        .map(|f| f.split_once('=').expect("k=v").0)
        .collect();
    assert_eq!(
        keys,
        [
            "queued", "recved", "sent", "sid", "lop", "est", "to", "lcxid", "lzxid", "lresp",
            "llat", "minlat", "avglat", "maxlat"
        ]
    );
    let field = |key: &str| {
        fields
            .iter()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
            .expect("field")
    };
    assert_eq!(field("to"), "10000");
    // The last operation may be a ping, but the last real request was the getData.
    assert!(["GETD", "PING"].contains(&field("lop")), "{session_line}");
    assert_eq!(field("lzxid"), format!("0x{:x}", base + 2));
    assert!(field("est").parse::<i64>().expect("ms") > 1_600_000_000_000);
    // This word's connection has no session: the brief form.
    assert!(lines
        .iter()
        .any(|l| l.ends_with("[0](queued=0,recved=1,sent=0)")));

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mntr_is_tab_separated_and_counts() {
    let server = TestServer::start(all_words()).await;
    let client = server.client().await;
    client.create("/m", b"12345", &OPEN).await.expect("create");
    client
        .create("/m/e", b"", &EPHEMERAL)
        .await
        .expect("ephemeral");
    let (_, _, _data_watch) = client.get_and_watch_data("/m").await.expect("watch");
    let (_, _child_watch) = client.list_and_watch_children("/m").await.expect("watch");

    let mntr = server.word("mntr").await;
    let pairs: Vec<(&str, &str)> = mntr
        .lines()
        .map(|l| l.split_once('\t').expect("key\\tvalue"))
        .collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    assert_eq!(&keys[..2], ["zk_version", "zk_server_state"]);
    for key in [
        "zk_avg_latency",
        "zk_max_latency",
        "zk_min_latency",
        "zk_packets_received",
        "zk_packets_sent",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_znode_count",
        "zk_watch_count",
        "zk_ephemerals_count",
        "zk_approximate_data_size",
        "zk_uptime",
        "zk_global_sessions",
    ] {
        assert!(keys.contains(&key), "{key} missing from\n{mntr}");
    }
    assert!(value(&pairs, "zk_version").starts_with("3.9.0-ensemble-"));
    assert_eq!(value(&pairs, "zk_server_state"), "standalone");
    assert_eq!(
        value(&pairs, "zk_znode_count"),
        (SYSTEM_NODES + 2).to_string()
    );
    assert_eq!(value(&pairs, "zk_ephemerals_count"), "1");
    // A data watch and a child watch.
    assert_eq!(value(&pairs, "zk_watch_count"), "2");
    assert_eq!(value(&pairs, "zk_global_sessions"), "1");
    assert_eq!(value(&pairs, "zk_num_alive_connections"), "2");
    // System paths (1 + 10 + 16 + 17) plus "/m" + 5 bytes plus "/m/e".
    assert_eq!(value(&pairs, "zk_approximate_data_size"), "55");

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wchs_summarises_data_watches() {
    let server = TestServer::start(all_words()).await;
    assert_eq!(
        server.word("wchs").await,
        "0 connections watching 0 paths\nTotal watches:0\n"
    );
    let one = server.client().await;
    let two = server.client().await;
    one.create("/w1", b"", &OPEN).await.expect("create");
    one.create("/w2", b"", &OPEN).await.expect("create");
    let (_, _, _w1) = one.get_and_watch_data("/w1").await.expect("watch");
    let (_, _, _w2) = one.get_and_watch_data("/w2").await.expect("watch");
    let (_, _w3) = two.check_and_watch_stat("/w1").await.expect("watch");
    // ZooKeeper leaves child watches out of wchs.
    let (_, _w4) = two.list_and_watch_children("/w2").await.expect("watch");
    assert_eq!(
        server.word("wchs").await,
        "2 connections watching 2 paths\nTotal watches:3\n"
    );

    drop((one, two));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_envi_and_dirs() {
    let dir = std::env::temp_dir().join(format!("ensemble-admin-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("version-2")).expect("mkdir");
    std::fs::write(dir.join("version-2").join("log.1"), [7u8; 100]).expect("write");
    std::fs::write(dir.join("myid"), b"1\n").expect("write");
    let config = ServerConfig {
        data_dir: Some(dir.clone()),
        ..all_words()
    };
    let server = TestServer::start(config).await;

    let conf = server.word("conf").await;
    let pairs: Vec<(&str, &str)> = conf
        .lines()
        .map(|l| l.split_once('=').expect("key=value"))
        .collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "clientPort",
            "secureClientPort",
            "dataDir",
            "dataDirSize",
            "dataLogDir",
            "dataLogSize",
            "tickTime",
            "maxClientCnxns",
            "minSessionTimeout",
            "maxSessionTimeout",
            "clientPortListenBacklog",
            "serverId"
        ]
    );
    assert_eq!(
        value(&pairs, "clientPort"),
        server.client_addr.port().to_string()
    );
    assert_eq!(PathBuf::from(value(&pairs, "dataDir")), dir);
    // Every byte under the directory: the files written here and the member's own.
    assert_eq!(value(&pairs, "dataDirSize"), dir_size(&dir).to_string());
    assert_eq!(value(&pairs, "tickTime"), "2000");
    assert_eq!(value(&pairs, "minSessionTimeout"), "4000");
    assert_eq!(value(&pairs, "maxSessionTimeout"), "40000");

    let size = dir_size(&dir);
    assert_eq!(
        server.word("dirs").await,
        format!("datadir_size: {size}\nlogdir_size: {size}\n")
    );

    let envi = server.word("envi").await;
    let mut lines = envi.lines();
    assert_eq!(lines.next(), Some("Environment:"));
    let keys: Vec<&str> = lines
        .map(|l| l.split_once('=').expect("key=value").0)
        .collect();
    assert_eq!(
        &keys[..3],
        ["zookeeper.version", "host.name", "java.version"]
    );
    for key in ["os.name", "os.arch", "os.version", "user.dir"] {
        assert!(keys.contains(&key), "{key} missing from\n{envi}");
    }
    assert!(envi.contains("\nzookeeper.version=3.9.0-ensemble-"));

    server.stop().await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirs_are_zero_without_a_data_directory() {
    let server = TestServer::start(all_words()).await;
    assert_eq!(
        server.word("dirs").await,
        "datadir_size: 0\nlogdir_size: 0\n"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_status() {
    let server = TestServer::start(ServerConfig::default()).await;
    assert_eq!(server.get("/livez").await, (200, "ok".to_owned()));
    assert_eq!(server.get("/readyz").await, (200, "ready".to_owned()));
    assert_eq!(server.get("/nope").await.0, 404);

    let before = server.status().await;
    for (key, expected) in [
        ("id", 1),
        ("leaderId", 1),
        ("term", 1),
        // The founding membership is the log's first entry.
        ("membershipVersion", 0),
        ("sessions", 0),
        ("znodes", SYSTEM_NODES as i64),
    ] {
        assert_eq!(before[key], expected, "{key} in {before}");
    }
    assert_eq!(before["role"], "leader");
    assert_eq!(before["initialized"], true, "{before}");
    let base = before["appliedIndex"].as_u64().expect("appliedIndex");
    assert_eq!(before["commitIndex"], base, "{before}");
    assert_eq!(before["lastLogIndex"], base, "{before}");
    assert_eq!(before["mode"], "standalone");
    assert_eq!(before["members"][0]["id"], 1);
    assert_eq!(before["members"][0]["role"], "leader");

    let client = server.client().await;
    client.create("/s", b"", &OPEN).await.expect("create");
    let after = server.status().await;
    // Session creation and the create.
    assert_eq!(after["commitIndex"], base + 2);
    assert_eq!(after["appliedIndex"], base + 2);
    assert_eq!(after["sessions"], 1);
    assert_eq!(after["connections"], 1);
    assert_eq!(after["znodes"], SYSTEM_NODES as i64 + 1);

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_the_data() {
    let server = TestServer::start(ServerConfig::default()).await;
    let (code, text) = server.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text");
    for name in [
        "ensemble_znode_count",
        "ensemble_ephemerals_count",
        "ensemble_watch_count",
        "ensemble_session_count",
        "ensemble_connection_count",
        "ensemble_outstanding_requests",
        "ensemble_last_zxid",
        "ensemble_packets_received_total",
        "ensemble_packets_sent_total",
        "ensemble_request_duration_seconds_count",
    ] {
        metric_value(&text, name);
    }
    assert_eq!(
        metric_value(&text, "ensemble_znode_count"),
        SYSTEM_NODES as f64
    );

    let base = server.applied().await as f64;
    let client = server.client().await;
    // The client creates with create2.
    client.create("/x", b"", &OPEN).await.expect("create");
    client
        .create("/x/e", b"", &EPHEMERAL)
        .await
        .expect("ephemeral");
    assert_eq!(
        client.get_data("/missing").await.map(|_| ()),
        Err(zk::Error::NoNode)
    );
    let (_, _, _watch) = client.get_and_watch_data("/x").await.expect("watch");

    assert_eq!(
        server.metric("ensemble_znode_count").await,
        SYSTEM_NODES as f64 + 2.0
    );
    assert_eq!(server.metric("ensemble_ephemerals_count").await, 1.0);
    assert_eq!(server.metric("ensemble_watch_count").await, 1.0);
    assert_eq!(server.metric("ensemble_session_count").await, 1.0);
    assert_eq!(server.metric("ensemble_last_zxid").await, base + 3.0);
    assert_eq!(
        server
            .metric(r#"ensemble_requests_total{op="create2",result="ok"}"#)
            .await,
        2.0
    );
    assert_eq!(
        server
            .metric(r#"ensemble_requests_total{op="getData",result="nonode"}"#)
            .await,
        1.0
    );
    assert!(
        server
            .metric("ensemble_request_duration_seconds_count")
            .await
            >= 4.0
    );
    assert!(server.metric("ensemble_packets_received_total").await >= 5.0);
    assert!(server.metric("ensemble_packets_sent_total").await >= 5.0);

    drop(client);
    server.stop().await;
}

/// `dump`'s three sections, checked for their headings: the session tracker's,
/// the ephemerals' and the connections'.
fn dump_sections(dump: &str) -> (&str, &str, &str) {
    let rest = dump
        .strip_prefix("SessionTracker dump:\n")
        .unwrap_or_else(|| panic!("no session tracker heading: {dump}"));
    let (sessions, rest) = rest
        .split_once("ephemeral nodes dump:\n")
        .unwrap_or_else(|| panic!("no ephemerals heading: {dump}"));
    let (ephemerals, connections) = rest
        .split_once("Connections dump:\n")
        .unwrap_or_else(|| panic!("no connections heading: {dump}"));
    (sessions, ephemerals, connections)
}

/// An `ExpiryQueue` dump (after its `Session `/`Connections ` prefix): checks that
/// its counts add up and that its times are Java dates in UTC between now and
/// `within_s` seconds from now; returns its elements.
fn expiry_sets(text: &str, within_s: i64) -> Vec<&str> {
    let mut lines = text.lines();
    let head = lines.next().expect("Sets line");
    let (sets, elements) = head
        .strip_prefix("Sets (")
        .and_then(|h| h.strip_suffix("):"))
        .and_then(|h| h.split_once(")/("))
        .unwrap_or_else(|| panic!("not a Sets line: {text}"));
    let (sets, elements): (usize, usize) = (
        sets.parse().expect("number"),
        elements.parse().expect("number"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let now_of_day = i64::try_from(now % 86_400).expect("small");
    let (mut seen_sets, mut names) = (0, Vec::new());
    let mut expected = 0;
    for line in lines {
        if let Some(name) = line.strip_prefix('\t') {
            names.push(name);
            expected -= 1;
            continue;
        }
        assert_eq!(expected, 0, "{text}");
        let (count, date) = line
            .strip_suffix(':')
            .and_then(|l| l.split_once(" expire at "))
            .unwrap_or_else(|| panic!("not an expiry line: {line}"));
        expected = count.parse().expect("number");
        seen_sets += 1;
        // `Date.toString`: `EEE MMM dd HH:mm:ss UTC yyyy`.
        let fields: Vec<&str> = date.split(' ').collect();
        assert_eq!(fields.len(), 6, "{date}");
        assert!(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].contains(&fields[0]));
        assert_eq!(
            (fields[2].len(), fields[4], fields[5].len()),
            (2, "UTC", 4),
            "{date}"
        );
        let hms: Vec<i64> = fields[3]
            .split(':')
            .map(|f| f.parse().expect("number"))
            .collect();
        let of_day = hms[0] * 3_600 + hms[1] * 60 + hms[2];
        let ahead = (of_day - now_of_day).rem_euclid(86_400);
        assert!(ahead <= within_s, "{date} is {ahead} s ahead:\n{text}");
    }
    assert_eq!(expected, 0, "{text}");
    assert_eq!((seen_sets, names.len()), (sets, elements), "{text}");
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_lists_sessions_ephemerals_and_connections() {
    let server = TestServer::start(all_words()).await;
    let client = server.client().await;
    client.create("/d", b"", &OPEN).await.expect("create");
    client.create("/d/e2", b"", &EPHEMERAL).await.expect("e2");
    client.create("/d/e1", b"", &EPHEMERAL).await.expect("e1");
    let sid = format!("0x{:x}", client.session_id().0);

    let dump = server.word("dump").await;
    let (sessions, ephemerals, connections) = dump_sections(&dump);
    // A standalone member's session tracker: its one session, due within the
    // 10 s timeout rounded up to the next 2 s tick.
    let sessions = sessions
        .strip_prefix("Session ")
        .unwrap_or_else(|| panic!("{dump}"));
    assert_eq!(expiry_sets(sessions, 13), [sid.as_str()], "{dump}");
    assert_eq!(
        ephemerals,
        format!("Sessions with Ephemerals (1):\n{sid}:\n\t/d/e1\n\t/d/e2\n")
    );
    // The client's connection and this word's: due within their timeout (10 s
    // each) rounded up to the next 10 s.
    let connections = connections
        .strip_prefix("Connections ")
        .unwrap_or_else(|| panic!("{dump}"));
    let mut names = expiry_sets(connections, 21);
    names.sort_by_key(|n| n.ends_with(" sessionId: 0x0"));
    assert_eq!(names.len(), 2, "{dump}");
    assert!(names[0].starts_with("ip: /127.0.0.1:"), "{dump}");
    assert!(names[0].ends_with(&format!(" sessionId: {sid}")), "{dump}");
    assert!(names[1].starts_with("ip: /127.0.0.1:"), "{dump}");
    assert!(names[1].ends_with(" sessionId: 0x0"), "{dump}");

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_on_a_follower_lists_every_session_with_its_timeout() {
    let members = start_three().await;
    let mut leader = None;
    for (i, member) in members.iter().enumerate() {
        if member.status().await["role"] == "leader" {
            leader = Some(i);
        }
    }
    let leader = leader.expect("a leader");
    let client = within(
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(&members[leader].client_addr.to_string()),
    )
    .await
    .expect("connect");
    client.create("/f", b"", &EPHEMERAL).await.expect("create");
    let sid = format!("0x{:x}", client.session_id().0);

    let follower = &members[(leader + 1) % 3];
    let expected_sessions = format!("Global Sessions(1):\n{sid}\t10000ms\n");
    let expected_ephemerals = format!("Sessions with Ephemerals (1):\n{sid}:\n\t/f\n");
    // The follower applies the session and the node a moment after the leader.
    let dump = within(async {
        loop {
            let dump = follower.word("dump").await;
            let (sessions, ephemerals, _) = dump_sections(&dump);
            if sessions == expected_sessions && ephemerals == expected_ephemerals {
                return dump;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Its only connection is this word's.
    let (_, _, connections) = dump_sections(&dump);
    let names = expiry_sets(
        connections.strip_prefix("Connections ").expect("prefix"),
        21,
    );
    assert_eq!(names.len(), 1, "{dump}");
    assert!(names[0].ends_with(" sessionId: 0x0"), "{dump}");

    // The leader's tracker knows when the session expires.
    let dump = members[leader].word("dump").await;
    let (sessions, ephemerals, _) = dump_sections(&dump);
    let sessions = sessions.strip_prefix("Session ").expect("prefix");
    // 10 s rounded up to the next 200 ms tick.
    assert_eq!(expiry_sets(sessions, 11), [sid.as_str()], "{dump}");
    assert_eq!(ephemerals, expected_ephemerals);

    drop(client);
    for member in members {
        member.stop().await;
    }
}

/// The digest of the tree as a client reads it, node by node: what `hash` must show
/// for a tree nothing changed since.
async fn digest_as_read(client: &zk::Client) -> i64 {
    let mut digest = 0i64;
    let mut paths = vec!["/".to_owned()];
    while let Some(path) = paths.pop() {
        let (data, stat) = client.get_data(&path).await.expect("get");
        let (children, _) = client.get_children(&path).await.expect("children");
        let node = Node {
            data: Some(data),
            acl: Vec::new(),
            stat: StoredStat {
                czxid: stat.czxid,
                mzxid: stat.mzxid,
                pzxid: stat.pzxid,
                ctime: stat.ctime,
                mtime: stat.mtime,
                version: stat.version,
                // Clients see creations plus deletions; the stat keeps creations.
                cversion: (stat.cversion + stat.num_children) / 2,
                aversion: stat.aversion,
                ephemeral_owner: stat.ephemeral_owner,
            },
            children: Default::default(),
        };
        digest = digest.wrapping_add(node_digest(&path, &node));
        for child in children {
            paths.push(format!("{}/{child}", path.trim_end_matches('/')));
        }
    }
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_shows_the_same_digests_on_every_member() {
    let members = start_three().await;
    let client = members[0].client().await;
    client.create("/h", b"", &OPEN).await.expect("create");
    // Two zxids that log a digest, the tree unchanged since the second.
    write_to_a_logged_digest(&client, "/h/a").await;
    let last = write_to_a_logged_digest(&client, "/h/b").await;
    let expected = digest_as_read(&client).await;
    for member in &members {
        within(async {
            while member.applied().await < last as u64 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    let mut hashes = Vec::new();
    for member in &members {
        hashes.push(member.word("hash").await);
    }
    let lines: Vec<(i64, i64)> = hashes[0]
        .lines()
        .map(|line| {
            let (zxid, digest) = line.split_once(": ").expect("<zxid>: <digest>");
            (
                i64::from_str_radix(zxid, 16).expect("hex zxid"),
                digest.parse().expect("decimal digest"),
            )
        })
        .collect();
    assert!(lines.len() >= 2, "{}", hashes[0]);
    assert!(lines.iter().all(|(zxid, _)| zxid % 128 == 0));
    assert!(lines
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1));
    assert_eq!(lines.last(), Some(&(last, expected)), "{}", hashes[0]);
    assert_eq!(hashes[1], hashes[0], "member 2 agrees with member 1");
    assert_eq!(hashes[2], hashes[0], "member 3 agrees with member 1");
    // The members report their digests to the leader every tick (200 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    for member in &members {
        assert_eq!(mismatches(member).await, 0);
    }

    drop(client);
    for member in members {
        member.stop().await;
    }
}

/// `digest_mismatches_count` from the member's `mntr`.
async fn mismatches(member: &TestServer) -> u64 {
    let mntr = member.word("mntr").await;
    mntr.lines()
        .find_map(|l| l.strip_prefix("zk_digest_mismatches_count\t"))
        .unwrap_or_else(|| panic!("no digest_mismatches_count in:\n{mntr}"))
        .parse()
        .expect("a count")
}

/// Writes through `client` until one write lands on a zxid that logs a digest;
/// returns that zxid.
async fn write_to_a_logged_digest(client: &zk::Client, prefix: &str) -> i64 {
    within(async {
        for i in 0.. {
            let (stat, _) = client
                .create(&format!("{prefix}{i}"), b"some data", &OPEN)
                .await
                .expect("create");
            if stat.czxid % 128 == 0 {
                return stat.czxid;
            }
        }
        unreachable!("the loop returns")
    })
    .await
}

/// TTL nodes allowed on member 3 alone (a setting every member must share): a TTL
/// node created there exists on it only, and the leader finds its digest differs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_counts_a_member_whose_tree_diverged() {
    let members = start_three_with(|id, config| config.extended_types_enabled = id == 3).await;
    let client = members[2].client().await;
    client
        .create("/ttl", b"", &OPEN.with_ttl(Duration::from_secs(600)))
        .await
        .expect("member 3 creates it");
    write_to_a_logged_digest(&client, "/n").await;
    let mut leader = None;
    for member in &members {
        if member.status().await["role"] == "leader" {
            leader = Some(member);
        }
    }
    let leader = leader.expect("a leader");
    within(async {
        while mismatches(leader).await == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    drop(client);
    for member in members {
        member.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wchc_and_wchp_list_data_watches_by_session_and_by_path() {
    let server = TestServer::start(all_words()).await;
    assert_eq!(server.word("wchc").await, "\n");
    assert_eq!(server.word("wchp").await, "\n");
    let one = server.client().await;
    let two = server.client().await;
    one.create("/w1", b"", &OPEN).await.expect("create");
    one.create("/w2", b"", &OPEN).await.expect("create");
    let (_, _, _w1) = one.get_and_watch_data("/w1").await.expect("watch");
    let (_, _, _w2) = one.get_and_watch_data("/w2").await.expect("watch");
    let (_, _w3) = two.check_and_watch_stat("/w1").await.expect("watch");
    // An exists watch on a node that does not exist is a data watch too.
    let (_, _w4) = two.check_and_watch_stat("/absent").await.expect("watch");
    // ZooKeeper leaves child watches out of both words.
    let (_, _w5) = two.list_and_watch_children("/w2").await.expect("watch");
    let (a, b) = (one.session_id().0, two.session_id().0);
    let (sa, sb) = (format!("0x{a:x}"), format!("0x{b:x}"));

    let mut by_session = [
        (a, format!("{sa}\n\t/w1\n\t/w2\n")),
        (b, format!("{sb}\n\t/absent\n\t/w1\n")),
    ];
    by_session.sort();
    assert_eq!(
        server.word("wchc").await,
        format!("{}{}\n", by_session[0].1, by_session[1].1)
    );
    let w1 = if a < b {
        format!("\t{sa}\n\t{sb}\n")
    } else {
        format!("\t{sb}\n\t{sa}\n")
    };
    assert_eq!(
        server.word("wchp").await,
        format!("/absent\n\t{sb}\n/w1\n{w1}/w2\n\t{sa}\n\n")
    );

    // A watch that fired is gone from both.
    one.set_data("/w2", b"x", None).await.expect("set");
    let wchp = within(async {
        loop {
            let wchp = server.word("wchp").await;
            if !wchp.contains("/w2") {
                return wchp;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(wchp, format!("/absent\n\t{sb}\n/w1\n{w1}\n"));

    drop((one, two));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srst_resets_latency_and_packet_counts() {
    let server = TestServer::start(all_words()).await;
    let client = server.client().await;
    client.create("/r", b"", &OPEN).await.expect("create");
    for _ in 0..5 {
        client.get_data("/r").await.expect("get");
    }
    drop(client);
    // Wait for the client to leave: only the words' own connections remain, and
    // nothing pings.
    let before = within(async {
        loop {
            let srvr = server.word("srvr").await;
            if value(&colon_lines(&srvr), "Connections") == "1" {
                return srvr;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let pairs = colon_lines(&before);
    let received: u64 = value(&pairs, "Received").parse().expect("number");
    let sent: u64 = value(&pairs, "Sent").parse().expect("number");
    assert!(received >= 8 && sent >= 7, "{before}");
    let prometheus_received = server.metric("ensemble_packets_received_total").await;

    assert_eq!(server.word("srst").await, "Server stats reset.\n");
    let after = server.word("srvr").await;
    let pairs = colon_lines(&after);
    assert_eq!(value(&pairs, "Latency min/avg/max"), "0/0.0/0", "{after}");
    // This srvr itself: a word is one packet in and none out.
    assert_eq!(value(&pairs, "Received"), "1", "{after}");
    assert_eq!(value(&pairs, "Sent"), "0", "{after}");
    // What is not a statistic stays.
    assert_eq!(value(&pairs, "Node count"), (SYSTEM_NODES + 1).to_string());
    let mntr = server.word("mntr").await;
    let mntr: Vec<(&str, &str)> = mntr.lines().filter_map(|l| l.split_once('\t')).collect();
    assert_eq!(value(&mntr, "zk_packets_received"), "2");
    assert_eq!(value(&mntr, "zk_max_latency"), "0");
    // Prometheus counters never go back (as with ZooKeeper's Prometheus provider).
    assert!(server.metric("ensemble_packets_received_total").await >= prometheus_received + 3.0);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crst_resets_every_connections_statistics() {
    let server = TestServer::start(all_words()).await;
    let client = server.client().await;
    client.create("/c", b"x", &OPEN).await.expect("create");
    client.get_data("/c").await.expect("get");
    let sid = format!("sid=0x{:x},", client.session_id().0);
    let session_fields = |cons: &str| -> Vec<(String, String)> {
        let line = cons
            .lines()
            .find(|l| l.contains(&sid))
            .unwrap_or_else(|| panic!("no {sid} in {cons}"));
        line.split_once("](")
            .and_then(|(_, f)| f.strip_suffix(')'))
            .expect("fields")
            .split(',')
            .map(|f| {
                let (k, v) = f.split_once('=').expect("k=v");
                (k.to_owned(), v.to_owned())
            })
            .collect()
    };
    let field = |fields: &[(String, String)], key: &str| -> String {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
    };
    let before = session_fields(&server.word("cons").await);
    assert!(field(&before, "recved").parse::<u64>().expect("n") >= 3);
    let srvr_before = server.word("srvr").await;
    let received_before: u64 = value(&colon_lines(&srvr_before), "Received")
        .parse()
        .expect("number");

    assert_eq!(server.word("crst").await, "Connection stats reset.\n");
    let after = session_fields(&server.word("cons").await);
    // The session and the connection's identity stay.
    for key in ["sid", "est", "to"] {
        assert_eq!(field(&after, key), field(&before, key), "{key}");
    }
    if field(&after, "recved") == "0" {
        let keys: Vec<&str> = after.iter().map(|(k, _)| k.as_str()).collect();
        // No cxid is known any more: ZooKeeper leaves lcxid out then.
        assert_eq!(
            keys,
            [
                "queued", "recved", "sent", "sid", "lop", "est", "to", "lzxid", "lresp", "llat",
                "minlat", "avglat", "maxlat"
            ]
        );
        for (key, zero) in [
            ("queued", "0"),
            ("sent", "0"),
            ("lop", "NA"),
            ("lzxid", "0xffffffffffffffff"),
            ("lresp", "0"),
            ("llat", "0"),
            ("minlat", "0"),
            ("avglat", "0"),
            ("maxlat", "0"),
        ] {
            assert_eq!(field(&after, key), zero, "{key} in {after:?}");
        }
    } else {
        // The client pinged in between: that ping only.
        assert_eq!(field(&after, "recved"), "1", "{after:?}");
        assert!(["NA", "PING"].contains(&field(&after, "lop").as_str()));
    }
    // The server's totals are srst's, not crst's.
    let srvr_after = server.word("srvr").await;
    let received_after: u64 = value(&colon_lines(&srvr_after), "Received")
        .parse()
        .expect("number");
    assert!(received_after > received_before, "{srvr_after}");

    drop(client);
    server.stop().await;
}

/// Bytes of every file under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
