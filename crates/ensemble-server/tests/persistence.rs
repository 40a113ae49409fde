//! Persistence of one member, in process: what was acknowledged is there after a
//! restart on the same data directory, snapshots are taken and old files purged,
//! and two members cannot share a directory. (Crashes of a real process are in the
//! root crate's `tests/local.rs`.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use ensemble_server::config::ServerConfig;
use ensemble_server::server::{Member, ServerError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

const OPEN: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const SEQUENTIAL: zk::CreateOptions<'static> =
    zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
const EPHEMERAL: zk::CreateOptions<'static> =
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
const WAIT: Duration = Duration::from_secs(20);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ensemble-persistence-{name}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

struct Running {
    addr: String,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
}

fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        data_dir: Some(dir.to_owned()),
        ..ServerConfig::default()
    }
}

async fn start(config: ServerConfig) -> Running {
    let member = Member::open(config, None)
        .await
        .expect("open the data directory");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(member.serve(listener, shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

impl Running {
    async fn client(&self) -> zk::Client {
        tokio::time::timeout(WAIT, zk::Client::connect(&self.addr))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("stops in time")
            .expect("task")
            .expect("clean stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_restart() {
    let dir = temp_dir("restart");
    let server = start(config(&dir)).await;
    let client = server.client().await;
    let (created, _) = client.create("/app", b"v0", &OPEN).await.expect("create");
    client.set_data("/app", b"v1", None).await.expect("set");
    let updated = client.set_data("/app", b"v2", Some(1)).await.expect("set");
    client.create("/q", b"", &OPEN).await.expect("create");
    for _ in 0..3 {
        client
            .create("/q/item-", b"", &SEQUENTIAL)
            .await
            .expect("seq");
    }
    client.create("/q/gone", b"", &OPEN).await.expect("create");
    client.delete("/q/gone", None).await.expect("delete");
    // Detached: dropping it must not close its session, or the close could
    // reach the member before the stop and rightly delete the ephemeral.
    let owner = tokio::time::timeout(
        WAIT,
        zk::Client::connector()
            .with_detached()
            .connect(&server.addr),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    owner
        .create("/eph", b"", &EPHEMERAL)
        .await
        .expect("ephemeral");
    let owner_session = owner.session_id().0;
    drop((client, owner));
    server.stop().await;

    let server = start(config(&dir)).await;
    let client = server.client().await;
    let (data, stat) = client.get_data("/app").await.expect("recovered");
    assert_eq!(data, b"v2");
    assert_eq!(stat, updated, "the whole stat is recovered");
    assert_eq!(stat.czxid, created.czxid);
    let mut children = client.list_children("/q").await.expect("children");
    children.sort();
    assert_eq!(
        children,
        ["item-0000000000", "item-0000000001", "item-0000000002"]
    );
    // Sequence numbers count every child ever created, /q/gone included.
    let (path_stat, sequence) = client
        .create("/q/item-", b"", &SEQUENTIAL)
        .await
        .expect("seq after restart");
    assert_eq!(sequence.into_i64(), 4);
    assert!(path_stat.czxid > stat.mzxid, "zxids continue after the log");
    let eph = client.check_stat("/eph").await.expect("exists");
    assert_eq!(
        eph.map(|s| s.ephemeral_owner),
        Some(owner_session),
        "a graceful stop keeps sessions and their ephemerals"
    );
    drop(client);
    server.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_taken_and_old_files_purged() {
    let dir = temp_dir("snapshots");
    let cfg = ServerConfig {
        snap_count: 40,
        ..config(&dir)
    };
    let server = start(cfg.clone()).await;
    let client = server.client().await;
    for i in 0..300 {
        client
            .create(&format!("/n{i:03}"), &i.to_string().into_bytes(), &OPEN)
            .await
            .expect("create");
    }
    drop(client);
    server.stop().await;

    let names = |sub: &str| -> Vec<String> {
        std::fs::read_dir(dir.join(sub))
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    let snapshots = names("snapshots");
    let segments: Vec<String> = names("log")
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    assert_eq!(
        snapshots.len(),
        3,
        "three snapshots are kept: {snapshots:?}"
    );
    // 300 writes in segments of snapshot_count entries: most are purged.
    assert!(
        segments.len() < 300 / 40,
        "log segments before the snapshots are purged: {segments:?}"
    );

    let server = start(cfg).await;
    let client = server.client().await;
    for i in [0, 150, 299] {
        let (data, _) = client
            .get_data(&format!("/n{i:03}"))
            .await
            .expect("recovered from snapshot and log");
        assert_eq!(data, i.to_string().into_bytes());
    }
    let (_, root) = client.get_children("/").await.expect("children");
    assert_eq!(root.num_children, 301, "300 nodes and /zookeeper");
    drop(client);
    server.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

/// A session restored after a restart whose client never returns expires, and
/// its ephemerals go with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_session_expires_if_its_client_never_returns() {
    let dir = temp_dir("expiry");
    let cfg = ServerConfig {
        tick_time_ms: 100,
        min_session_timeout_ms: 500,
        max_session_timeout_ms: 1_000,
        ..config(&dir)
    };
    let server = start(cfg.clone()).await;
    let owner = tokio::time::timeout(
        WAIT,
        zk::Client::connector()
            .with_session_timeout(Duration::from_millis(1_000))
            .connect(&server.addr),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    owner
        .create("/eph", b"", &EPHEMERAL)
        .await
        .expect("ephemeral");
    server.stop().await;

    // The owner knows only the old address, so it cannot come back.
    let server = start(cfg).await;
    let client = server.client().await;
    assert!(client.check_stat("/eph").await.expect("exists").is_some());
    tokio::time::timeout(WAIT, async {
        while client.check_stat("/eph").await.expect("exists").is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the restored session expires and its ephemeral is deleted");
    drop((client, owner));
    server.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn two_members_cannot_share_a_data_directory() {
    let dir = temp_dir("locked");
    let first = Member::open(config(&dir), None).await.expect("first");
    let err = Member::open(config(&dir), None)
        .await
        .err()
        .expect("second is refused");
    assert!(matches!(err, ServerError::Consensus(_)), "{err}");
    let message = err.to_string();
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert!(message.contains("another process"), "{message}");
    first.close().await;
    Member::open(config(&dir), None)
        .await
        .expect("free again once the first is gone");
    std::fs::remove_dir_all(dir).ok();
}
