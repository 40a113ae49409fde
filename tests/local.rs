//! `ensemble local` as a user runs it: a real process on a real port and a real
//! data directory, killed with SIGKILL while clients write, then started again.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::processes::{free_port, temp_dir};
use zookeeper_client as zk;

const OPEN: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const EPHEMERAL: zk::CreateOptions<'static> =
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
const WAIT: Duration = Duration::from_secs(30);

/// One `ensemble local` process.
struct Local {
    child: Child,
    addr: String,
}

impl Local {
    /// Starts a member; its log goes to `server.log` beside the data directory's
    /// `member-1`, where a failing test can be diagnosed from.
    fn start(port: u16, data_dir: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("server.log"))
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ensemble"))
            .args(["local", "--members", "1", "--client-port"])
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn ensemble local");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read the connection string");
        let addr = first.trim().to_owned();
        assert_eq!(
            addr,
            format!("127.0.0.1:{port}"),
            "first line is the connection string"
        );
        Self { child, addr }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(addr: &str, session_timeout: Duration) -> zk::Client {
    tokio::time::timeout(
        WAIT,
        zk::Client::connector()
            .with_session_timeout(session_timeout)
            .connect(addr),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_under_load_loses_no_acknowledged_write() {
    let dir = temp_dir("kill9");
    let port = free_port();
    let member = Local::start(port, &dir);
    let client = connect(&member.addr, Duration::from_secs(10)).await;
    client.create("/w", b"", &OPEN).await.expect("parent");

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let client = client.clone();
        let acknowledged = Arc::clone(&acknowledged);
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let path = format!("/w/{writer}-{i}");
                match client.create(&path, path.as_bytes(), &OPEN).await {
                    Ok(_) => acknowledged.lock().expect("lock").push(path),
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    member.kill();
    for writer in writers {
        tokio::time::timeout(WAIT, writer)
            .await
            .expect("writers notice the crash")
            .expect("writer task");
    }
    drop(client);

    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 50,
        "load was applied: {}",
        acknowledged.len()
    );
    let member = Local::start(port, &dir);
    let client = connect(&member.addr, Duration::from_secs(10)).await;
    for path in &acknowledged {
        let (data, _) = client
            .get_data(path)
            .await
            .unwrap_or_else(|e| panic!("acknowledged {path} lost: {e}"));
        assert_eq!(data, path.as_bytes());
    }
    drop(client);
    drop(member);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_and_its_ephemerals_outlive_a_crash() {
    let dir = temp_dir("session");
    let port = free_port();
    let member = Local::start(port, &dir);
    let client = connect(&member.addr, Duration::from_secs(20)).await;
    client
        .create("/eph", b"mine", &EPHEMERAL)
        .await
        .expect("ephemeral");
    let session = client.session_id().0;
    let mut states = client.state_watcher();
    member.kill();

    let member = Local::start(port, &dir);
    // The same client reconnects by itself and resumes its session.
    let state = tokio::time::timeout(WAIT, async {
        loop {
            let state = states.changed().await;
            if state != zk::SessionState::Disconnected {
                return state;
            }
        }
    })
    .await
    .expect("reconnects in time");
    assert_eq!(state, zk::SessionState::SyncConnected, "not expired");
    let (_, stat) = client.get_data("/eph").await.expect("ephemeral kept");
    assert_eq!(stat.ephemeral_owner, session);

    let other = connect(&member.addr, Duration::from_secs(10)).await;
    drop(client);
    let gone = tokio::time::timeout(WAIT, async {
        loop {
            if other.check_stat("/eph").await.expect("exists").is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "closing the resumed session removes its ephemeral"
    );
    drop(other);
    drop(member);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_second_member_on_the_same_directory_is_refused_clearly() {
    let dir = temp_dir("twice");
    let _first = Local::start(free_port(), &dir);
    let output = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["local", "--client-port", "0", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("run a second ensemble local");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no connection string is printed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}
