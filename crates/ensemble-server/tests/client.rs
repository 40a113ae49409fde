//! In-process tests of the network layer with a client no one here wrote: the
//! `zookeeper-client` crate. Each test starts its own server on 127.0.0.1:0.

use std::net::SocketAddr;
use std::time::Duration;

use ensemble_server::config::ServerConfig;
use ensemble_server::protocol::{
    response::decode_reply_header, Acl, ConnectRequest, ConnectResponse, CreateRequest,
    DeleteRequest, ErrorCode, GetDataRequest, GetDataResponse, Record, ReplyHeader, Request,
    SetDataRequest,
};
use ensemble_server::server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

const OPEN: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const EPHEMERAL: zk::CreateOptions<'static> =
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
const SEQUENTIAL: zk::CreateOptions<'static> =
    zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
const WAIT: Duration = Duration::from_secs(10);

struct TestServer {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), server::ServerError>>,
}

impl TestServer {
    async fn start(config: ServerConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server::run(listener, config, shutdown.clone()));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    async fn client(&self) -> zk::Client {
        tokio::time::timeout(
            WAIT,
            zk::Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .connect(&self.addr.to_string()),
        )
        .await
        .expect("connect in time")
        .expect("connect")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("shutdown in time")
            .expect("server task")
            .expect("server result");
    }
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future).await.expect("in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_children_and_errors() {
    let server = TestServer::start(ServerConfig::default()).await;
    let client = server.client().await;

    let (stat, _) = client.create("/app", b"v1", &OPEN).await.expect("create");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.data_length, 2);
    let (data, got) = client.get_data("/app").await.expect("get");
    assert_eq!((data.as_slice(), got), (&b"v1"[..], stat));

    let stat = client.set_data("/app", b"v2", Some(0)).await.expect("set");
    assert_eq!(stat.version, 1);
    assert_eq!(
        client.set_data("/app", b"v3", Some(0)).await,
        Err(zk::Error::BadVersion)
    );
    assert_eq!(
        client.create("/app", b"", &OPEN).await.map(|_| ()),
        Err(zk::Error::NodeExists)
    );
    assert_eq!(
        client.get_data("/missing").await.map(|_| ()),
        Err(zk::Error::NoNode)
    );
    assert_eq!(client.check_stat("/missing").await, Ok(None));
    assert_eq!(
        client
            .check_stat("/app")
            .await
            .map(|s| s.map(|s| s.version)),
        Ok(Some(1))
    );

    client.create("/app/a", b"", &OPEN).await.expect("child a");
    client.create("/app/b", b"", &OPEN).await.expect("child b");
    let mut children = client.list_children("/app").await.expect("list");
    children.sort();
    assert_eq!(children, ["a", "b"]);
    let (_, parent) = client.get_children("/app").await.expect("children2");
    assert_eq!(parent.num_children, 2);
    assert_eq!(client.delete("/app", None).await, Err(zk::Error::NotEmpty));

    let (_, seq) = client
        .create("/app/job-", b"", &SEQUENTIAL)
        .await
        .expect("seq");
    // Two children were created before it, so the parent's cversion is 2.
    assert_eq!(seq.to_string(), "0000000002");
    assert!(client
        .check_stat("/app/job-0000000002")
        .await
        .expect("exists")
        .is_some());

    client.delete("/app/a", Some(0)).await.expect("delete");
    assert_eq!(client.delete("/app/a", None).await, Err(zk::Error::NoNode));
    client.sync("/app").await.expect("sync");

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_write_and_read() {
    let server = TestServer::start(ServerConfig::default()).await;
    let client = server.client().await;

    let mut writer = client.new_multi_writer();
    writer.add_create("/m", b"x", &OPEN).expect("op");
    writer.add_create("/m/child", b"y", &OPEN).expect("op");
    writer.add_set_data("/m", b"z", Some(0)).expect("op");
    writer.add_check_version("/m", 1).expect("op");
    let results = writer.commit().await.expect("multi");
    assert_eq!(results.len(), 4);
    assert!(matches!(&results[0], zk::MultiWriteResult::Create { path, .. } if path == "/m"));
    assert!(matches!(results[2], zk::MultiWriteResult::SetData { stat } if stat.version == 1));
    assert_eq!(results[3], zk::MultiWriteResult::Check);

    // A failing op undoes the whole multi.
    let mut writer = client.new_multi_writer();
    writer.add_create("/n", b"", &OPEN).expect("op");
    writer.add_delete("/m", Some(7)).expect("op");
    match writer.commit().await {
        Err(zk::MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (1, zk::Error::BadVersion));
        }
        other => panic!("expected a failed op, got {other:?}"),
    }
    assert_eq!(client.check_stat("/n").await, Ok(None));

    let mut reader = client.new_multi_reader();
    reader.add_get_data("/m").expect("op");
    reader.add_get_children("/m").expect("op");
    reader.add_get_data("/nope").expect("op");
    let results = reader.commit().await.expect("multi read");
    assert!(matches!(&results[0], zk::MultiReadResult::Data { data, .. } if data == b"z"));
    assert!(
        matches!(&results[1], zk::MultiReadResult::Children { children } if children == &["child"])
    );
    assert!(matches!(
        &results[2],
        zk::MultiReadResult::Error {
            err: zk::Error::NoNode
        }
    ));

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_go_with_their_session() {
    let server = TestServer::start(ServerConfig::default()).await;
    let observer = server.client().await;
    let owner = server.client().await;

    owner
        .create("/lock", b"", &EPHEMERAL)
        .await
        .expect("ephemeral");
    assert_eq!(
        owner.create("/lock/child", b"", &OPEN).await.map(|_| ()),
        Err(zk::Error::NoChildrenForEphemerals)
    );
    let stat = observer
        .check_stat("/lock")
        .await
        .expect("stat")
        .expect("exists");
    assert_eq!(stat.ephemeral_owner, owner.session_id().0);
    let (_, watcher) = observer.check_and_watch_stat("/lock").await.expect("watch");

    drop(owner); // sends closeSession
    let event = within(watcher.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    assert_eq!(observer.check_stat("/lock").await, Ok(None));

    drop(observer);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watches_fire_once_with_the_right_type() {
    let server = TestServer::start(ServerConfig::default()).await;
    let watcher_client = server.client().await;
    let writer = server.client().await;

    // exists on a missing node keeps the watch, which fires on creation.
    let (stat, created) = watcher_client
        .check_and_watch_stat("/w")
        .await
        .expect("exists");
    assert_eq!(stat, None);
    writer.create("/w", b"1", &OPEN).await.expect("create");
    let event = within(created.changed()).await;
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeCreated, "/w")
    );

    let (_, _, data_watch) = watcher_client.get_and_watch_data("/w").await.expect("get");
    let (_, _, child_watch) = watcher_client
        .get_and_watch_children("/w")
        .await
        .expect("ls");
    writer.set_data("/w", b"2", None).await.expect("set");
    let event = within(data_watch.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);

    writer.create("/w/c", b"", &OPEN).await.expect("child");
    let event = within(child_watch.changed()).await;
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeChildrenChanged, "/w")
    );

    // Deleting a watched node fires its data watch with NodeDeleted.
    let (_, _, deleted) = watcher_client
        .get_and_watch_data("/w/c")
        .await
        .expect("get");
    writer.delete("/w/c", None).await.expect("delete");
    let event = within(deleted.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);

    drop((watcher_client, writer));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_and_read_acl() {
    let server = TestServer::start(ServerConfig::default()).await;
    let alice = server.client().await;
    alice.auth("digest", b"alice:secret").await.expect("auth");
    let creator_all = [zk::Acl::new(
        zk::Permission::ALL,
        zk::AuthId::new("auth", ""),
    )];
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&creator_all));
    alice
        .create("/private", b"s", &options)
        .await
        .expect("create");
    assert_eq!(
        alice.get_data("/private").await.map(|(d, _)| d),
        Ok(b"s".to_vec())
    );
    let users = alice.list_auth_users().await.expect("whoami");
    assert!(users
        .iter()
        .any(|u| u.scheme() == "digest" && u.user() == "alice"));

    let eve = server.client().await;
    assert_eq!(
        eve.get_data("/private").await.map(|_| ()),
        Err(zk::Error::NoAuth)
    );
    assert_eq!(
        eve.list_children("/private").await.map(|_| ()),
        Err(zk::Error::NoAuth)
    );

    // Readable by anyone, administered by alice: others see her hash hidden.
    let shared = [
        zk::Acl::new(zk::Permission::READ, zk::AuthId::new("world", "anyone")),
        zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("auth", "")),
    ];
    alice
        .create(
            "/shared",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&shared)),
        )
        .await
        .expect("create");
    let digest_of = |acl: &[zk::Acl]| {
        acl.iter()
            .find(|a| a.scheme() == "digest")
            .map(|a| a.id().to_owned())
            .expect("a digest entry")
    };
    let (owner_view, _) = alice.get_acl("/shared").await.expect("owner getACL");
    let (other_view, _) = eve.get_acl("/shared").await.expect("reader getACL");
    assert!(digest_of(&owner_view).starts_with("alice:") && digest_of(&owner_view) != "alice:x");
    assert_eq!(digest_of(&other_view), "alice:x");

    drop((alice, eve));
    server.stop().await;
}

/// Performs the connect handshake by hand on a raw socket.
async fn raw_connect(addr: SocketAddr, read_only: Option<bool>) -> (TcpStream, ConnectResponse) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 10_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only,
    };
    let body = request.to_bytes();
    let len = i32::try_from(body.len()).expect("small");
    stream.write_all(&len.to_be_bytes()).await.expect("write");
    stream.write_all(&body).await.expect("write");
    let response = read_frame(&mut stream).await.expect("connect response");
    let response = ConnectResponse::from_bytes(&response).expect("decodes");
    (stream, response)
}

async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    within(stream.read_exact(&mut len)).await.ok()?;
    let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(len)).ok()?];
    within(stream.read_exact(&mut body)).await.ok()?;
    Some(body)
}

/// True once the peer has closed the connection.
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    within(stream.read_to_end(&mut rest)).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_closes_only_that_connection() {
    let server = TestServer::start(ServerConfig::default()).await;
    let client = server.client().await;
    client
        .create("/keep", b"1", &EPHEMERAL)
        .await
        .expect("create");

    // A connected session that then sends garbage.
    let (mut raw, response) = raw_connect(server.addr, Some(false)).await;
    assert!(response.time_out > 0);
    assert_eq!(response.read_only, Some(false));
    raw.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.expect("write");
    assert!(closed_by_peer(&mut raw).await);

    // An oversized frame before any handshake.
    let mut huge = TcpStream::connect(server.addr).await.expect("connect");
    huge.write_all(&0x7fff_0000i32.to_be_bytes())
        .await
        .expect("write");
    assert!(closed_by_peer(&mut huge).await);

    // The other session is untouched.
    assert_eq!(
        client.get_data("/keep").await.map(|(d, _)| d),
        Ok(b"1".to_vec())
    );
    client
        .set_data("/keep", b"2", None)
        .await
        .expect("still writable");

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_handshake_forms_and_refusals() {
    let server = TestServer::start(ServerConfig::default()).await;

    // An old client without the readOnly byte is answered without it; timeouts clamp.
    let (_old, response) = raw_connect(server.addr, None).await;
    assert_eq!(response.read_only, None);
    assert_eq!(response.time_out, 10_000);
    assert_eq!(response.passwd.len(), 16);

    // Resuming with a wrong password: timeOut 0, then the connection closes.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let request = ConnectRequest {
        session_id: response.session_id,
        passwd: vec![9; 16],
        time_out: 10_000,
        read_only: Some(false),
        ..ConnectRequest::default()
    };
    let body = request.to_bytes();
    let len = i32::try_from(body.len()).expect("small");
    stream.write_all(&len.to_be_bytes()).await.expect("write");
    stream.write_all(&body).await.expect("write");
    let refused = ConnectResponse::from_bytes(&read_frame(&mut stream).await.expect("reply"))
        .expect("decodes");
    assert_eq!(refused.time_out, 0);
    assert_eq!(refused.read_only, Some(false));
    assert!(closed_by_peer(&mut stream).await);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words_follow_the_whitelist() {
    let config = ServerConfig::from_properties("4lw.commands.whitelist=ruok,srvr").expect("config");
    let server = TestServer::start(config).await;
    for (word, expected) in [
        ("ruok", "imok"),
        ("srvr", "Mode: standalone"),
        ("mntr", "not in the whitelist"),
    ] {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(word.as_bytes()).await.expect("write");
        let mut text = String::new();
        within(stream.read_to_string(&mut text))
            .await
            .expect("read");
        assert!(text.contains(expected), "{word}: {text}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_extra_connections() {
    let config = ServerConfig::from_properties("maxClientCnxns=1").expect("config");
    let server = TestServer::start(config).await;
    let (_first, response) = raw_connect(server.addr, Some(false)).await;
    assert!(response.time_out > 0);
    let mut second = TcpStream::connect(server.addr).await.expect("tcp connect");
    assert!(closed_by_peer(&mut second).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_session_expires_and_loses_its_ephemerals() {
    let config =
        ServerConfig::from_properties("tickTime=50\nminSessionTimeout=200\nmaxSessionTimeout=400")
            .expect("config");
    let server = TestServer::start(config).await;
    let observer = server.client().await;

    let (mut raw, response) = raw_connect(server.addr, Some(false)).await;
    assert_eq!(response.time_out, 400, "clamped to maxSessionTimeout");
    let create = Request::Create(CreateRequest {
        path: "/expiring".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 1, // ephemeral
    });
    raw.write_all(&create.encode_frame(1)).await.expect("write");
    read_frame(&mut raw).await.expect("create reply");
    let (stat, watcher) = observer
        .check_and_watch_stat("/expiring")
        .await
        .expect("exists");
    assert!(stat.is_some());

    // No pings: the session expires, its connection closes, its node goes.
    let event = within(watcher.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    assert!(closed_by_peer(&mut raw).await);

    drop(observer);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcode_is_answered_then_the_connection_closes() {
    let server = TestServer::start(ServerConfig::default()).await;
    let (mut raw, _) = raw_connect(server.addr, Some(false)).await;
    // xid 5, opcode 999, then a ping that must not be answered.
    raw.write_all(&[0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0x03, 0xe7])
        .await
        .expect("write");
    raw.write_all(&Request::Ping.encode_frame(-2))
        .await
        .expect("write");
    let reply = read_frame(&mut raw).await.expect("reply");
    let header = ReplyHeader::from_bytes(&reply).expect("header only");
    assert_eq!(
        (header.xid, header.err),
        (5, ErrorCode::Unimplemented.code())
    );
    let mut rest = Vec::new();
    within(raw.read_to_end(&mut rest))
        .await
        .expect("closed, as ZooKeeper does");
    assert!(
        rest.is_empty(),
        "nothing after the unimplemented op is answered"
    );
    let client = server.client().await;
    client
        .create("/alive", b"", &OPEN)
        .await
        .expect("others unaffected");
    server.stop().await;
}

/// Requests sent back to back without waiting: replies come in request order and
/// each read sees the session's own earlier writes, though those wait for the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_reads_see_the_sessions_earlier_writes() {
    let server = TestServer::start(ServerConfig::default()).await;
    let (mut raw, _) = raw_connect(server.addr, Some(false)).await;
    let get = |xid| {
        Request::GetData(GetDataRequest {
            path: "/p".into(),
            watch: false,
        })
        .encode_frame(xid)
    };
    let mut burst = Vec::new();
    burst.extend(
        Request::Create(CreateRequest {
            path: "/p".into(),
            data: Some(b"v1".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
        })
        .encode_frame(1),
    );
    burst.extend(get(2));
    burst.extend(
        Request::SetData(SetDataRequest {
            path: "/p".into(),
            data: Some(b"v2".to_vec()),
            version: 0,
        })
        .encode_frame(3),
    );
    burst.extend(get(4));
    burst.extend(
        Request::Delete(DeleteRequest {
            path: "/p".into(),
            version: 1,
        })
        .encode_frame(5),
    );
    burst.extend(get(6));
    raw.write_all(&burst).await.expect("write the burst");

    let mut replies = Vec::new();
    for _ in 0..6 {
        let frame = read_frame(&mut raw).await.expect("reply");
        let (header, body) = decode_reply_header(&frame).expect("header");
        replies.push((header.xid, header.err, body.to_vec()));
    }
    let xids: Vec<i32> = replies.iter().map(|r| r.0).collect();
    assert_eq!(xids, [1, 2, 3, 4, 5, 6], "replies in request order");
    let errs: Vec<i32> = replies.iter().map(|r| r.1).collect();
    assert_eq!(errs, [0, 0, 0, 0, 0, ErrorCode::NoNode.code()]);
    let data = |body: &[u8]| GetDataResponse::from_bytes(body).expect("getData").data;
    assert_eq!(data(&replies[1].2), Some(b"v1".to_vec()));
    assert_eq!(data(&replies[3].2), Some(b"v2".to_vec()));
    server.stop().await;
}

/// ZooKeeper's ContainerManager: an empty container that had children and an
/// expired, childless TTL node are deleted by the periodic check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_containers_and_expired_ttl_nodes_are_removed() {
    let server = TestServer::start(ServerConfig {
        container_check_interval_ms: 50,
        extended_types_enabled: true,
        ..ServerConfig::default()
    })
    .await;
    let client = server.client().await;
    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    client
        .create("/c", b"", &container)
        .await
        .expect("container");
    client.create("/c/x", b"", &OPEN).await.expect("child");
    client
        .create("/never", b"", &container)
        .await
        .expect("container");
    let ttl = zk::CreateMode::Persistent
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_millis(300));
    client.create("/ttl", b"", &ttl).await.expect("ttl node");

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        client.check_stat("/c").await.expect("exists").is_some(),
        "a container with a child stays"
    );
    client.delete("/c/x", None).await.expect("delete child");
    within(async {
        while client.check_stat("/c").await.expect("exists").is_some()
            || client.check_stat("/ttl").await.expect("exists").is_some()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        client.check_stat("/never").await.expect("exists").is_some(),
        "a container that never had children stays"
    );
    server.stop().await;
}
