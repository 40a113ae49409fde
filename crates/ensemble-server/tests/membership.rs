//! Membership driven through the admin HTTP port, as the operator drives it: three
//! blank members (`joinExisting=true`, one admin token) in one process on loopback
//! sockets; `POST /bootstrap` founds the ensemble on member 1, the others join as
//! learners and are promoted once caught up, leadership moves and the founder
//! leaves; voters change together through `POST /voters` and ZooKeeper's `reconfig`.
//! Data goes through the `zookeeper-client` crate; HTTP/1.1 is spoken over a raw
//! `TcpStream`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ensemble_server::config::ServerConfig;
use ensemble_server::protocol::{ConnectRequest, Record, Writer};
use ensemble_server::server::{self, Listeners};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

#[path = "support/http.rs"]
mod http;

const OPEN: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "s3cret-admin-token";
/// `super:reconfigure`, as `superDigest` takes it: base64 of its SHA-1.
const SUPER_DIGEST: &str = "super:eTVUrPfvXJP+KuNvCUxnUerF4Tw=";

struct Running {
    client: SocketAddr,
    admin: SocketAddr,
    /// `127.0.0.1:peerPort;127.0.0.1:clientPort`, the form the admin API takes.
    address: String,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), server::ServerError>>,
}

/// Three blank members, waiting to be founded or added; ZooKeeper's `reconfig` served
/// if `reconfig`.
async fn start_three(token_file: &std::path::Path, reconfig: bool) -> BTreeMap<u64, Running> {
    let mut running = BTreeMap::new();
    for id in 1..=3u64 {
        let peer = TcpListener::bind("127.0.0.1:0").await.expect("peer");
        let client = TcpListener::bind("127.0.0.1:0").await.expect("client");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("admin");
        let client_addr = client.local_addr().expect("client addr");
        let admin_addr = admin.local_addr().expect("admin addr");
        let address = format!("{};{client_addr}", peer.local_addr().expect("peer addr"));
        let config = ServerConfig {
            my_id: id,
            join_existing: true,
            admin_token_file: Some(token_file.to_path_buf()),
            tick_time_ms: 200,
            min_session_timeout_ms: 2_000,
            max_session_timeout_ms: 20_000,
            reconfig_enabled: reconfig,
            super_digest: Some(SUPER_DIGEST.to_owned()),
            // A member joining through reconfig has 5 ticks, 1 s, to catch up.
            init_limit: 5,
            ..ServerConfig::default()
        };
        let listeners = Listeners {
            client,
            admin: Some(admin),
            peer: Some(peer),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server::run(listeners, config, shutdown.clone()));
        running.insert(
            id,
            Running {
                client: client_addr,
                admin: admin_addr,
                address,
                shutdown,
                task,
            },
        );
    }
    running
}

/// How long the member at `client` takes to close, unanswered, a connection that asks
/// for a new session.
async fn refusal_time(client: SocketAddr) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut w = Writer::for_frame();
    ConnectRequest {
        last_zxid_seen: 0,
        time_out: 10_000,
        passwd: vec![0; 16],
        ..ConnectRequest::default() // a new session
    }
    .write(&mut w);
    let frame = w.into_frame();
    let mut stream = tokio::net::TcpStream::connect(client)
        .await
        .expect("the client port");
    let started = Instant::now();
    stream.write_all(&frame).await.expect("send the connect");
    let mut answer = Vec::new();
    // A reset counts as closed too.
    let _ = within(stream.read_to_end(&mut answer)).await;
    assert!(answer.is_empty(), "answered {answer:?}");
    started.elapsed()
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future).await.expect("in time")
}

impl Running {
    /// `method path` over HTTP/1.1, with the admin token if `token`; the status
    /// code and the body.
    async fn http(&self, method: &str, path: &str, token: bool, body: &str) -> (u16, String) {
        let auth = if token {
            format!("Authorization: Bearer {TOKEN}\r\n")
        } else {
            String::new()
        };
        http::exchange(self.admin, method, path, &auth, body, WAIT).await
    }

    /// A mutating call that must succeed: its answer, the new `/status`. A change
    /// still settling (409) is retried, as the operator would.
    async fn change(&self, method: &str, path: &str, body: &str) -> Value {
        let started = Instant::now();
        loop {
            let (code, text) = self.http(method, path, true, body).await;
            match code {
                200 => return serde_json::from_str(&text).expect("status JSON"),
                409 if started.elapsed() < WAIT
                    && (text.contains("in progress") || text.contains("caught up")) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => panic!("{method} {path}: {code} {text}"),
            }
        }
    }

    async fn status(&self) -> Value {
        let (code, body) = self.http("GET", "/status", false, "").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("status JSON")
    }

    /// Polls `/status` until `done` holds.
    async fn status_until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            assert!(started.elapsed() < WAIT, "{what}: {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn client(&self) -> zk::Client {
        within(
            zk::Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .connect(&self.client.to_string()),
        )
        .await
        .expect("connect")
    }

    /// A session as ZooKeeper's super user (the members' super digest), who may
    /// reconfigure.
    async fn super_client(&self) -> zk::Client {
        within(
            zk::Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .with_auth("digest", b"super:reconfigure")
                .connect(&self.client.to_string()),
        )
        .await
        .expect("connect as super")
    }
}

fn version(status: &Value) -> u64 {
    status["membershipVersion"]
        .as_u64()
        .expect("membershipVersion")
}

/// The `members` of a status: id → (role, voting).
fn roles(status: &Value) -> BTreeMap<u64, (String, bool)> {
    status["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            let id = m["id"].as_u64().expect("id");
            let role = m["role"].as_str().expect("role").to_owned();
            (id, (role, m["voting"].as_bool().expect("voting")))
        })
        .collect()
}

/// Adds `id` as a learner through `leader`, waits until it caught up, promotes it;
/// the membership versions after adding and after promoting.
async fn add_voter(
    members: &BTreeMap<u64, Running>,
    leader: u64,
    id: u64,
    previous: u64,
) -> (u64, u64) {
    let via = &members[&leader];
    let body = serde_json::json!({ "address": members[&id].address }).to_string();
    let added = via.change("POST", &format!("/members/{id}"), &body).await;
    let added_version = version(&added);
    assert!(added_version > previous, "{added}");
    assert_eq!(
        roles(&added).get(&id),
        Some(&("learner".to_owned(), false)),
        "{added}"
    );
    assert_eq!(
        via.http("POST", &format!("/members/{id}"), true, &body)
            .await
            .0,
        409,
        "already a member"
    );
    let learner = members[&id]
        .status_until("the learner hears the leader", |s| {
            s["role"] == "learner" && s["leaderId"] == leader && s["initialized"] == true
        })
        .await;
    assert!(learner["lastLogIndex"].as_u64().expect("lastLogIndex") >= added_version);
    via.status_until("the learner caught up", |s| {
        s["members"]
            .as_array()
            .expect("members")
            .iter()
            .any(|m| m["id"] == id && m["lag"] == 0 && m["matchedIndex"].is_u64())
    })
    .await;
    let promoted = via
        .change("POST", &format!("/members/{id}/promote"), "")
        .await;
    let promoted_version = version(&promoted);
    assert!(promoted_version > added_version, "{promoted}");
    assert_eq!(
        roles(&promoted).get(&id),
        Some(&("follower".to_owned(), true)),
        "{promoted}"
    );
    (added_version, promoted_version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn founded_on_demand_grown_led_elsewhere_and_left_by_its_founder() {
    let token = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token.path(), format!("{TOKEN}\n")).expect("write token");
    let members = start_three(token.path(), false).await;
    let (one, two, three) = (&members[&1], &members[&2], &members[&3]);

    // Blank joiners: outside, uninitialized, not ready.
    for (id, member) in &members {
        let status = member.status().await;
        assert_eq!(status["id"], *id);
        assert_eq!(status["role"], "outside", "{status}");
        assert_eq!(status["initialized"], false, "{status}");
        assert_eq!(status["lastLogIndex"], 0, "{status}");
        assert_eq!(status["leaderId"], Value::Null, "{status}");
        assert_eq!(member.http("GET", "/readyz", false, "").await.0, 503);
        // No wait makes a member outside the membership serve: it refuses a session
        // at once, not after the second a member changing leader holds one.
        let refused_after = refusal_time(member.client).await;
        assert!(
            refused_after < Duration::from_millis(500),
            "member {id} held a session it can never take for {refused_after:?}"
        );
    }

    // Founding needs the token, and happens once.
    assert_eq!(one.http("POST", "/bootstrap", false, "").await.0, 401);
    let founded = one.change("POST", "/bootstrap", "").await;
    assert_eq!(founded["role"], "leader", "{founded}");
    assert_eq!(founded["leaderId"], 1, "{founded}");
    assert_eq!(founded["initialized"], true, "{founded}");
    // The founding membership is the log's first entry.
    assert_eq!(founded["membershipVersion"], 0, "{founded}");
    assert_eq!(founded["members"][0]["address"], one.address, "{founded}");
    let (code, again) = one.http("POST", "/bootstrap", true, "").await;
    assert_eq!(code, 409, "{again}");
    assert!(again.contains("already a member of an ensemble"), "{again}");

    // A malformed address is refused before anything changes.
    let (code, bad) = one
        .http("POST", "/members/2", true, r#"{"address": "nowhere"}"#)
        .await;
    assert_eq!(code, 400, "{bad}");
    assert!(bad.contains("host:port"), "{bad}");

    let (_, two_voter) = add_voter(&members, 1, 2, version(&founded)).await;
    // Member 2 is in the ensemble now: it founds nothing.
    let (code, refused) = two.http("POST", "/bootstrap", true, "").await;
    assert_eq!(code, 409, "{refused}");
    assert!(
        refused.contains("already a member of an ensemble"),
        "{refused}"
    );
    let (_, three_voter) = add_voter(&members, 1, 3, two_voter).await;

    let leader = one.status().await;
    assert_eq!(
        roles(&leader),
        BTreeMap::from([
            (1, ("leader".to_owned(), true)),
            (2, ("follower".to_owned(), true)),
            (3, ("follower".to_owned(), true)),
        ]),
        "{leader}"
    );
    for entry in leader["members"].as_array().expect("members") {
        let id = entry["id"].as_u64().expect("id");
        assert_eq!(entry["address"], members[&id].address, "{leader}");
        assert!(
            entry["matchedIndex"].is_u64() && entry["lag"].is_u64(),
            "{leader}"
        );
    }
    for member in [two, three] {
        member
            .status_until("a follower that knows the leader", |s| {
                s["role"] == "follower" && s["leaderId"] == 1 && version(s) == three_voter
            })
            .await;
    }

    // ZooKeeper's view: every member with its peer and client addresses.
    let writer = one.client().await;
    writer.create("/k8s", b"one", &OPEN).await.expect("create");
    let reader = three.client().await;
    reader.sync("/k8s").await.expect("sync");
    assert_eq!(reader.get_data("/k8s").await.expect("read").0, b"one");
    let (config, _) = reader.get_config().await.expect("config");
    let config = String::from_utf8(config).expect("text");
    for (id, member) in &members {
        let (peer, client) = member.address.split_once(';').expect("two parts");
        let (host, port) = peer.rsplit_once(':').expect("host:port");
        let port: u16 = port.parse().expect("port");
        let line = format!(
            "server.{id}={host}:{port}:{}:participant;{client}",
            port + 1
        );
        assert!(config.lines().any(|l| l == line), "{line} in\n{config}");
    }
    assert!(
        config.ends_with(&format!("version={three_voter:x}")),
        "{config}"
    );
    // Without reconfigEnabled, ZooKeeper's reconfig is refused with its own code.
    let refused = reconfig(&reader, &[], "3").await;
    assert!(
        matches!(refused, Err(zk::Error::ReconfigDisabled)),
        "{refused:?}"
    );
    drop((writer, reader));

    // Leadership moves to 2, then the founder leaves.
    let moved = one.change("POST", "/leader/2", "").await;
    assert_eq!(moved["leaderId"], 2, "{moved}");
    two.status_until("member 2 leads", |s| s["role"] == "leader")
        .await;
    // And member 1 hears from it: a member the change removes before it hears of the
    // change never does (the leader stops replicating to it once the change ends), and
    // learns only from the silence that no leader talks to it (tests/partition.rs).
    one.status_until("member 1 follows member 2", |s| {
        s["role"] == "follower" && s["leaderId"] == 2
    })
    .await;
    // Asked of the founder itself, which never applies its removal: it answers with
    // the membership the leader wrote, and itself outside.
    let removed = one.change("DELETE", "/members/1", "").await;
    assert_eq!(removed["role"], "outside", "{removed}");
    assert!(version(&removed) > three_voter, "{removed}");
    assert_eq!(
        roles(&removed),
        BTreeMap::from([
            (2, ("leader".to_owned(), true)),
            (3, ("follower".to_owned(), true)),
        ]),
        "{removed}"
    );
    assert_eq!(two.http("DELETE", "/members/1", true, "").await.0, 404);
    // The founder saw the change begin: it stops serving because of the change, rather
    // than once it notices (after an election timeout and more) that no leader talks to
    // it. It may take a moment to hear of the change, busy as the machine may be, and
    // be unready meanwhile for another reason (a moment without a leader, catching up).
    let started = Instant::now();
    let removed_reason =
        |reason: &str| reason.contains("being removed") || reason.contains("not in the membership");
    let mut seen = Vec::new();
    loop {
        let (code, reason) = one.http("GET", "/readyz", false, "").await;
        if code == 503 && removed_reason(&reason) {
            break;
        }
        if seen.last() != Some(&(code, reason.clone())) {
            seen.push((code, reason));
        }
        assert!(
            started.elapsed() < WAIT,
            "the founder never showed it was removed: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(&one.client.to_string()),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a member being removed opened a session"
    );

    let writer = two.client().await;
    writer
        .create("/after", b"two", &OPEN)
        .await
        .expect("create on 2");
    let reader = three.client().await;
    reader.sync("/after").await.expect("sync");
    assert_eq!(reader.get_data("/after").await.expect("read").0, b"two");
    assert_eq!(reader.get_data("/k8s").await.expect("read").0, b"one");
    drop((writer, reader));

    for member in members.values() {
        member.shutdown.cancel();
    }
    for (id, member) in members {
        let result = within(member.task).await.expect("server task");
        // The removed founder may have stopped on its own; the others stop cleanly.
        if id != 1 {
            result.expect("server result");
        }
    }
}

/// ZooKeeper's incremental reconfig: `joining` server lines, `leaving` ids
/// (comma-separated); the new configuration's text.
async fn reconfig(
    client: &zk::Client,
    joining: &[&str],
    leaving: &str,
) -> Result<(Vec<u8>, zk::Stat), zk::Error> {
    let leaving = [leaving];
    let update = zk::EnsembleUpdate::Incremental {
        joinings: joining.iter().copied(),
        leavings: leaving.iter().copied(),
    };
    client.update_ensemble(update, None).await
}

/// A membership address where nothing listens.
async fn nowhere() -> String {
    let peer = TcpListener::bind("127.0.0.1:0").await.expect("peer");
    let client = TcpListener::bind("127.0.0.1:0").await.expect("client");
    format!(
        "{};{}",
        peer.local_addr().expect("peer addr"),
        client.local_addr().expect("client addr")
    )
}

/// Voters change all together or not at all: through `POST /voters`, a learner that
/// never answered holds back the whole change, and caught-up learners become voters
/// in one call; through ZooKeeper's `reconfig` (refused to all but the super user), a
/// joiner that cannot catch up leaves the membership as it was, and two voters leave
/// in one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_change_together_or_not_at_all() {
    let token = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token.path(), format!("{TOKEN}\n")).expect("write token");
    let members = start_three(token.path(), true).await;
    let (one, three) = (&members[&1], &members[&3]);
    one.change("POST", "/bootstrap", "").await;
    let address = |address: &str| serde_json::json!({ "address": address }).to_string();
    for id in [2, 3] {
        one.change(
            "POST",
            &format!("/members/{id}"),
            &address(&members[&id].address),
        )
        .await;
    }
    one.change("POST", "/members/4", &address(&nowhere().await))
        .await;
    one.status_until("learners 2 and 3 caught up", |s| {
        [2, 3].iter().all(|id| {
            s["members"]
                .as_array()
                .expect("members")
                .iter()
                .any(|m| m["id"] == *id && m["lag"] == 0 && m["matchedIndex"].is_u64())
        })
    })
    .await;
    let learning = BTreeMap::from([
        (1, ("leader".to_owned(), true)),
        (2, ("learner".to_owned(), false)),
        (3, ("learner".to_owned(), false)),
        (4, ("learner".to_owned(), false)),
    ]);
    assert_eq!(roles(&one.status().await), learning);

    // Malformed or unauthorized calls change nothing.
    for (body, reason) in [
        ("{}", "no member named"),
        (
            r#"{"promote": [2], "remove": [2]}"#,
            "both promoted and removed",
        ),
        (r#"{"promote": "2"}"#, "expected"),
        (r#"{"demote": [2]}"#, "unknown field"),
    ] {
        let (code, text) = one.http("POST", "/voters", true, body).await;
        assert_eq!(code, 400, "{body}: {text}");
        assert!(text.contains(reason), "{body}: {text}");
    }
    let promote_both = r#"{"promote": [2, 3]}"#;
    assert_eq!(
        one.http("POST", "/voters", false, promote_both).await.0,
        401
    );

    // Member 4 never answered: it is not caught up however short the log is, and
    // member 2 is not promoted without it.
    let (code, text) = one
        .http("POST", "/voters", true, r#"{"promote": [2, 4]}"#)
        .await;
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("member 4"), "{text}");
    assert_eq!(roles(&one.status().await), learning);

    // One voter becomes three in one call, and the dead learner goes.
    let grown = one
        .change("POST", "/voters", r#"{"promote": [2, 3], "remove": [4]}"#)
        .await;
    let three_voters = BTreeMap::from([
        (1, ("leader".to_owned(), true)),
        (2, ("follower".to_owned(), true)),
        (3, ("follower".to_owned(), true)),
    ]);
    assert_eq!(roles(&grown), three_voters, "{grown}");
    let writer = one.client().await;
    writer.create("/grown", b"3", &OPEN).await.expect("create");
    let reader = three.client().await;
    reader.sync("/grown").await.expect("sync");
    assert_eq!(reader.get_data("/grown").await.expect("read").0, b"3");
    drop((writer, reader));

    // ZooKeeper's reconfig needs WRITE on /zookeeper/config: the super user's alone.
    let anyone = one.client().await;
    let refused = reconfig(&anyone, &[], "3").await;
    assert!(matches!(refused, Err(zk::Error::NoAuth)), "{refused:?}");
    drop(anyone);
    let admin = one.super_client().await;
    // A joiner that cannot catch up within initLimit ticks fails the whole request:
    // member 3 does not leave, and the learner added for member 5 is removed again.
    let dead = nowhere().await;
    let (peer, client) = dead.split_once(';').expect("two parts");
    let port: u16 = peer
        .rsplit_once(':')
        .expect("host:port")
        .1
        .parse()
        .expect("port");
    let line = format!("server.5={peer}:{}:participant;{client}", port + 1);
    let refused = reconfig(&admin, &[&line], "3").await;
    // -13: NewConfigNoQuorum, which the crate has no name for.
    assert!(
        matches!(refused, Err(zk::Error::UnexpectedErrorCode(-13))),
        "{refused:?}"
    );
    let after = one
        .status_until("the joiner removed again", |s| roles(s).len() == 3)
        .await;
    assert_eq!(roles(&after), three_voters, "{after}");

    // Two voters leave in one request, sent to one of them: three voters become one.
    // The member asked answers with the new configuration (the leader's word, as it
    // never applies the change itself), then closes the connection.
    let on_three = three.super_client().await;
    let mut state = on_three.state_watcher();
    let (config, stat) = reconfig(&on_three, &[], "2,3").await.expect("reconfig");
    let text = String::from_utf8(config.clone()).expect("text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("server.1="), "{text}");
    assert!(lines[1].starts_with("version="), "{text}");
    // Member 1 may not have applied the change yet: a read elsewhere needs a sync.
    admin.sync("/zookeeper/config").await.expect("sync");
    let (on_one, one_stat) = admin.get_config().await.expect("config on member 1");
    assert_eq!(on_one, config, "member 1's /zookeeper/config");
    assert_eq!(one_stat.mzxid, stat.mzxid);
    within(async { while state.changed().await == zk::SessionState::SyncConnected {} }).await;
    drop(on_three);
    let shrunk = one.status().await;
    assert_eq!(
        roles(&shrunk),
        BTreeMap::from([(1, ("leader".to_owned(), true))]),
        "{shrunk}"
    );
    admin
        .create("/alone", b"1", &OPEN)
        .await
        .expect("a write on one voter");
    drop(admin);

    for member in members.values() {
        member.shutdown.cancel();
    }
    for (id, member) in members {
        let result = within(member.task).await.expect("server task");
        // The members removed may have stopped on their own.
        if id == 1 {
            result.expect("server result");
        }
    }
}
