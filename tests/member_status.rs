//! The operator reads every member's admin `GET /status` into its `MemberReport`. This
//! starts a real member (the `ensemble-server` crate, in process, on port 0) and checks
//! that what the member serves is what the operator parses, over the same plain
//! HTTP/1.0 exchange the operator's `observe` uses.

use std::time::Duration;

use ensemble::controller::observe::MemberReport;
use ensemble_server::config::ServerConfig;
use ensemble_server::server::{self, Listeners};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_status_is_what_the_operator_parses() {
    let client = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let admin_addr = admin.local_addr().expect("admin addr");
    let shutdown = CancellationToken::new();
    let listeners = Listeners {
        client,
        admin: Some(admin),
        peer: None,
    };
    let task = tokio::spawn(server::run(
        listeners,
        ServerConfig::default(),
        shutdown.clone(),
    ));

    let fetch = || async {
        let mut stream = TcpStream::connect(admin_addr).await.expect("connect");
        let request = format!(
            "GET /status HTTP/1.0\r\nHost: {admin_addr}\r\nAccept: application/json\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end");
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        let report: MemberReport =
            serde_json::from_slice(&response[split + 4..]).expect("a MemberReport");
        report
    };
    // A member alone elects itself within moments of starting.
    let report = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let report = fetch().await;
            if report.leader_id.is_some() {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a leader in time");
    assert_eq!(
        (report.id, report.role.as_str(), report.leader_id),
        (1, "leader", Some(1))
    );
    assert!(report.term >= 1, "{report:?}");
    assert!(report.commit_index >= report.applied_index, "{report:?}");
    // The founding membership is the log's first entry.
    assert_eq!(report.membership_version, Some(0));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stopped in time")
        .expect("server task")
        .expect("server result");
}
