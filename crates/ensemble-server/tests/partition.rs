//! Partitions of a three-member ensemble, in one process: every member is a real
//! server on loopback sockets, and the links between members are cut with
//! [`Faults`], which their peer transport consults on every frame and dial, so a
//! partition looks like a broken network to consensus and to the server.
//!
//! A leader cut off with a minority must stop serving its clients' writes; the
//! majority elects a new leader and keeps committing; after healing, the old
//! leader catches up and nothing diverges.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ensemble_server::config::{ServerConfig, ServerSpec};
use ensemble_server::consensus::Faults;
use ensemble_server::protocol::{ConnectRequest, Record, Writer};
use ensemble_server::server::{Listeners, Member};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

const OPEN: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const WAIT: Duration = Duration::from_secs(30);

struct Running {
    client_addr: String,
    admin_port: u16,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// Three members founding one ensemble, their links cut through `faults`.
async fn start_three(faults: &Faults) -> BTreeMap<u64, Running> {
    let mut peers = BTreeMap::new();
    let mut clients = BTreeMap::new();
    let mut admins = BTreeMap::new();
    for id in 1..=3u64 {
        peers.insert(id, TcpListener::bind("127.0.0.1:0").await.expect("peer"));
        clients.insert(id, TcpListener::bind("127.0.0.1:0").await.expect("client"));
        admins.insert(id, TcpListener::bind("127.0.0.1:0").await.expect("admin"));
    }
    let servers: BTreeMap<u64, ServerSpec> = (1..=3u64)
        .map(|id| {
            let peer = peers[&id].local_addr().expect("addr").port();
            let client = clients[&id].local_addr().expect("addr").port();
            let line = format!("127.0.0.1:{peer}:participant;127.0.0.1:{client}");
            (id, ServerSpec::parse(&line).expect("server line"))
        })
        .collect();
    let mut running = BTreeMap::new();
    for id in 1..=3u64 {
        let config = ServerConfig {
            my_id: id,
            servers: servers.clone(),
            tick_time_ms: 200,
            min_session_timeout_ms: 2_000,
            max_session_timeout_ms: 20_000,
            ..ServerConfig::default()
        };
        let peer = peers.remove(&id);
        let client = clients.remove(&id).expect("client");
        let admin = admins.remove(&id).expect("admin");
        let client_addr = client.local_addr().expect("addr").to_string();
        let admin_port = admin.local_addr().expect("addr").port();
        let faults = faults.clone();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let member = Member::open_with_faults(config, peer, Some(faults))
                .await
                .expect("open");
            let listeners = Listeners {
                client,
                admin: Some(admin),
                peer: None,
            };
            member.serve(listeners, stop).await.expect("serve");
        });
        running.insert(
            id,
            Running {
                client_addr,
                admin_port,
                shutdown,
                task,
            },
        );
    }
    running
}

/// `GET path` on a member's admin port: the status code and the body.
async fn admin_get(member: &Running, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", member.admin_port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// `/status` of a member, through its admin port.
async fn status(member: &Running) -> Option<serde_json::Value> {
    serde_json::from_str(&admin_get(member, "/status").await?.1).ok()
}

/// Waits until the members in `ids` agree on a leader among themselves.
async fn leader_of(members: &BTreeMap<u64, Running>, ids: &[u64]) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut leaders = Vec::new();
        for id in ids {
            leaders.push(match status(&members[id]).await {
                Some(s) => s["leaderId"].as_u64(),
                None => None,
            });
        }
        if let Some(Some(first)) = leaders.first() {
            if ids.contains(first) && leaders.iter().all(|l| *l == Some(*first)) {
                return *first;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader among {ids:?}: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn until_ready(member: &Running, what: &str) {
    let deadline = Instant::now() + WAIT;
    while admin_get(member, "/readyz").await.map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "{what} never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop_all(members: BTreeMap<u64, Running>) {
    for member in members.into_values() {
        member.shutdown.cancel();
        let _ = tokio::time::timeout(WAIT, member.task).await;
    }
}

async fn connect(addr: &str) -> zk::Client {
    tokio::time::timeout(
        WAIT,
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(20))
            .connect(addr),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_stops_and_the_majority_goes_on() {
    let faults = Faults::default();
    let members = start_three(&faults).await;
    let all = [1, 2, 3];
    let old = leader_of(&members, &all).await;
    let majority: Vec<u64> = all.iter().copied().filter(|id| *id != old).collect();

    let old_client = connect(&members[&old].client_addr).await;
    old_client
        .create("/before", b"1", &OPEN)
        .await
        .expect("write before the partition");

    faults.isolate(old);
    // The isolated leader's client cannot write any more: the write fails
    // (connection loss) rather than succeeding on a minority.
    let refused = tokio::time::timeout(WAIT, old_client.create("/minority", b"x", &OPEN))
        .await
        .expect("the minority answers (with an error) in time");
    assert!(refused.is_err(), "a minority accepted a write: {refused:?}");

    // The majority elects a new leader and commits.
    let new = leader_of(&members, &majority).await;
    assert_ne!(new, old);
    let majority_client = connect(&members[&majority[0]].client_addr).await;
    majority_client
        .create("/during", b"2", &OPEN)
        .await
        .expect("the majority writes");

    // Healed: the old leader follows, has the majority's write and not its own.
    faults.heal();
    let agreed = leader_of(&members, &all).await;
    assert!(majority.contains(&agreed), "leader after healing: {agreed}");
    let checker = connect(&members[&old].client_addr).await;
    let deadline = Instant::now() + WAIT;
    loop {
        checker.sync("/").await.expect("sync");
        if checker
            .check_stat("/during")
            .await
            .expect("exists")
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the old leader never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        checker
            .check_stat("/minority")
            .await
            .expect("exists")
            .is_none(),
        "the minority's write must not appear"
    );
    assert_eq!(
        checker.get_data("/before").await.expect("before").0,
        b"1".to_vec()
    );

    drop((old_client, majority_client, checker));
    stop_all(members).await;
}

/// Pre-vote: a follower cut off from both others for many election timeouts cannot
/// raise its term (no majority would vote for it), so when the cut heals it rejoins
/// at the leader's term and the leader keeps leading. Without pre-vote it returns
/// with a higher term and unseats a healthy leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_and_healed_does_not_unseat_the_leader() {
    let faults = Faults::default();
    let members = start_three(&faults).await;
    let all = [1, 2, 3];
    let leader = leader_of(&members, &all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("a follower");
    let term_of = |report: Option<serde_json::Value>| {
        report
            .and_then(|s| s["term"].as_u64())
            .expect("a status with a term")
    };
    let term = term_of(status(&members[&leader]).await);

    faults.isolate(follower);
    // Elections run after 200 to 400 ms: this is at least seven of them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        term_of(status(&members[&follower]).await),
        term,
        "the cut-off follower raised its term"
    );
    faults.heal();

    // Long enough for the follower to be heard again and to catch up.
    let client = connect(&members[&follower].client_addr).await;
    client
        .create("/after", b"1", &OPEN)
        .await
        .expect("a write through the healed follower");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        leader_of(&members, &all).await,
        leader,
        "the leader changed"
    );
    for id in all {
        assert_eq!(
            term_of(status(&members[&id]).await),
            term,
            "member {id}'s term after healing"
        );
    }

    drop(client);
    stop_all(members).await;
}

/// A follower cut off from its leader stops serving once it has heard nothing from it
/// for two election timeouts. Pre-vote keeps its term and its vote, so without that
/// rule it would name the leader, report itself ready and serve stale reads for as
/// long as the cut lasts; it is also how a member removed while it could not hear the
/// change learns that no leader talks to it. ZooKeeper's follower drops its clients
/// when it loses the leader, too. Healed, it follows the same leader again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_from_its_leader_stops_serving_until_healed() {
    let faults = Faults::default();
    let members = start_three(&faults).await;
    let all = [1, 2, 3];
    let leader = leader_of(&members, &all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("a follower");
    let cut_off = &members[&follower];
    until_ready(cut_off, "the follower").await;

    faults.isolate(follower);
    let deadline = Instant::now() + WAIT;
    loop {
        let report = status(cut_off).await.expect("the follower's status");
        if report["leaderId"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a follower cut off for {WAIT:?} still names its leader: {report}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, reason) = admin_get(cut_off, "/readyz").await.expect("readyz");
    assert_eq!(code, 503, "{reason}");
    assert!(reason.contains("no leader"), "{reason}");
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(&cut_off.client_addr),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a follower that hears no leader opened a session"
    );

    faults.heal();
    assert_eq!(
        leader_of(&members, &all).await,
        leader,
        "the leader changed"
    );
    until_ready(cut_off, "the healed follower").await;
    let client = connect(&cut_off.client_addr).await;
    client
        .create("/healed", b"1", &OPEN)
        .await
        .expect("a write through the healed follower");

    drop(client);
    stop_all(members).await;
}

/// A client that has seen a zxid a follower has not applied yet is held, not refused,
/// while the follower catches up: here the follower is cut off when the client's write
/// commits, and the link heals while the client waits. (Refused at once, a client would
/// retry only after its reconnect backoff.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ahead_of_a_follower_waits_for_it_to_catch_up() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let faults = Faults::default();
    let members = start_three(&faults).await;
    let all = [1, 2, 3];
    let leader = leader_of(&members, &all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("a follower");
    let writer = connect(&members[&leader].client_addr).await;

    faults.isolate(follower);
    let (stat, _) = writer
        .create("/ahead", b"", &OPEN)
        .await
        .expect("a write the follower does not have");
    // A new session whose client has seen that write (as one moving from the leader).
    let mut w = Writer::for_frame();
    ConnectRequest {
        last_zxid_seen: stat.czxid,
        time_out: 10_000,
        passwd: vec![0; 16],
        ..ConnectRequest::default() // a new session
    }
    .write(&mut w);
    let frame = w.into_frame();
    let mut stream = tokio::net::TcpStream::connect(&members[&follower].client_addr)
        .await
        .expect("the follower's client port");
    stream.write_all(&frame).await.expect("send the connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    faults.heal();

    let mut length = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut length))
        .await
        .expect("an answer in time")
        .expect("a ConnectResponse, not a closed connection");
    let mut response = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut response).await.expect("its body");
    let session_id = i64::from_be_bytes(response[8..16].try_into().expect("8 bytes"));
    assert_ne!(session_id, 0, "the follower refused the session");

    drop((stream, writer));
    stop_all(members).await;
}
