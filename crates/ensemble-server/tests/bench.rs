//! `ensemble bench` against an in-process server: a short run of every kind of
//! operation completes without errors and leaves nothing behind.

use std::time::Duration;

use ensemble_server::bench::{self, BenchArgs, Session};
use ensemble_server::config::ServerConfig;
use ensemble_server::protocol::{ErrorCode, ExistsRequest, GetChildrenRequest, Request, Response};
use ensemble_server::server;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_second_of_every_operation_has_no_errors_and_cleans_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::run(
        listener,
        ServerConfig::default(),
        shutdown.clone(),
    ));

    let args = BenchArgs {
        connect: vec![addr.clone()],
        sessions: 3,
        in_flight: 4,
        mix: "create=10,set=20,get=50,exists=10,delete=10"
            .parse()
            .expect("mix"),
        value_size: 100,
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        keys: 50,
        json: true,
    };
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        bench::bench(&args, CancellationToken::new()),
    )
    .await
    .expect("bench finishes in time")
    .expect("bench succeeds");

    assert!(report.total.ops > 0, "{}", report.to_text());
    assert_eq!(report.total.error_count(), 0, "{}", report.to_text());
    assert_eq!(report.ops.len(), 5);
    for op in &report.ops {
        assert!(op.ops > 0, "no {} completed:\n{}", op.op, report.to_text());
        assert!(op.latency_us.p50 <= op.latency_us.p99);
        assert!(op.latency_us.p99 <= op.latency_us.max);
    }
    assert!((report.measured_secs - 1.0).abs() < 0.01);

    // The root and everything under it are gone.
    let mut check = Session::connect(&addr, Duration::from_secs(10))
        .await
        .expect("connect");
    let (header, _) = check
        .call(&Request::Exists(ExistsRequest {
            path: report.root.clone(),
            watch: false,
        }))
        .await
        .expect("exists");
    assert_eq!(header.err, ErrorCode::NoNode.code());
    let (_, listing) = check
        .call(&Request::GetChildren(GetChildrenRequest {
            path: "/".into(),
            watch: false,
        }))
        .await
        .expect("list /");
    let Some(Response::GetChildren(root)) = listing else {
        panic!("getChildren of / answered {listing:?}");
    };
    assert!(
        !root.children.iter().any(|c| c.starts_with("bench-")),
        "{:?}",
        root.children
    );
    check.close().await.expect("close");

    shutdown.cancel();
    server
        .await
        .expect("server task")
        .expect("server stops cleanly");
}
