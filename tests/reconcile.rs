//! The reconcile pipeline end to end against a request-counting stand-in for the API server
//! (and canned member admin ports):
//! what a first reconcile writes, and that a converged cluster is reconciled with reads only;
//! and how a membership step calls a leader's admin port.

mod support;

use std::sync::Arc;

use ensemble::api::{CoordinationCluster, Phase};
use ensemble::controller::validate::Defaults;
use ensemble::controller::{reconcile, Context};
use ensemble::telemetry::Metrics;
use http::Method;
use serde_json::json;
use support::fake_api::{FakeApi, Recorded};

const NS: &str = "team-a";
const CC_PATH: &str = "/apis/ensemble.dev/v1alpha1/namespaces/team-a/coordinationclusters/zk";
const STS_PATH: &str = "/apis/apps/v1/namespaces/team-a/statefulsets/zk";

fn context(api: &Arc<FakeApi>) -> Arc<Context> {
    let defaults = Defaults {
        server_image: "ensemble:test".into(),
        cluster_domain: "cluster.local".into(),
    };
    Arc::new(Context::new(
        api.client(),
        defaults,
        Metrics::new(),
        Some("test".into()),
    ))
}

fn minimal_cluster(api: &FakeApi) -> CoordinationCluster {
    let mut cc = support::cluster_from("deploy/examples/minimal.yaml", NS);
    cc.metadata.name = Some("zk".into());
    api.insert(CC_PATH, serde_json::to_value(&cc).unwrap());
    cc
}

/// The cluster as the next watch event would deliver it: with the status the operator wrote.
fn as_stored(api: &FakeApi) -> Arc<CoordinationCluster> {
    Arc::new(
        serde_json::from_value(api.get(CC_PATH).expect("cluster stored"))
            .expect("a CoordinationCluster"),
    )
}

fn writes(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method != Method::GET)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// What the StatefulSet controller and the kubelets do once the StatefulSet exists: run three
/// ready member pods of the current revision.
/// Real admin ports for the three members, answering `/status` as a converged ensemble led by
/// zk-0 would: one thread per member on 127.0.0.<ordinal + 2>:8080, started once per process.
fn serve_member_reports() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        for ordinal in 0..3u8 {
            let ip = format!("127.0.0.{}", ordinal + 2);
            let listener = std::net::TcpListener::bind((ip.as_str(), 8080))
                .unwrap_or_else(|e| panic!("admin port of zk-{ordinal} on {ip}:8080: {e}"));
            let members: Vec<_> = (1..=3)
                .map(|id| json!({"id": id, "address": "", "role": "follower", "voting": true, "lag": 0}))
                .collect();
            let body = json!({
                "id": ordinal + 1,
                "role": if ordinal == 0 { "leader" } else { "follower" },
                "leaderId": 1, "term": 2, "commitIndex": 40, "appliedIndex": 40,
                "membershipVersion": 4, "initialized": true, "members": members,
            })
            .to_string();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                for mut stream in listener.incoming().flatten() {
                    let mut request = [0u8; 1024];
                    let _ = stream.read(&mut request);
                    let _ = write!(
                        stream,
                        "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{body}"
                    );
                }
            });
        }
    });
}

fn run_members(api: &FakeApi) {
    serve_member_reports();
    api.update(STS_PATH, |sts| {
        sts["status"] = json!({"replicas": 3, "readyReplicas": 3, "currentRevision": "zk-7d9f", "updateRevision": "zk-7d9f"});
    });
    for ordinal in 0..3 {
        let name = format!("zk-{ordinal}");
        api.insert(
            &format!("/api/v1/namespaces/{NS}/pods/{name}"),
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": NS,
                    "labels": {
                        "app.kubernetes.io/name": "ensemble",
                        "app.kubernetes.io/instance": "zk",
                        "app.kubernetes.io/component": "member",
                        "controller-revision-hash": "zk-7d9f",
                        "ensemble.dev/clients": "serve"
                    }
                },
                "status": {
                    "podIP": format!("127.0.0.{}", ordinal + 2),
                    "conditions": [{"type": "Ready", "status": "True"}]
                }
            }),
        );
    }
}

#[tokio::test]
async fn first_reconcile_applies_every_child_in_order_then_the_status() {
    let api = FakeApi::new();
    let cc = Arc::new(minimal_cluster(&api));
    reconcile(cc, context(&api))
        .await
        .expect("reconcile succeeds");

    let writes = writes(&api.take_requests());
    let applies: Vec<&String> = writes.iter().filter(|w| w.starts_with("PATCH")).collect();
    assert_eq!(
        applies,
        [
            "PATCH /api/v1/namespaces/team-a/configmaps/zk-config",
            "PATCH /api/v1/namespaces/team-a/secrets/zk-admin",
            "PATCH /api/v1/namespaces/team-a/services/zk-peers",
            "PATCH /api/v1/namespaces/team-a/services/zk",
            "PATCH /apis/policy/v1/namespaces/team-a/poddisruptionbudgets/zk",
            "PATCH /apis/apps/v1/namespaces/team-a/statefulsets/zk",
            "PATCH /apis/ensemble.dev/v1alpha1/namespaces/team-a/coordinationclusters/zk/status",
        ]
    );
    let events: Vec<&String> = writes.iter().filter(|w| w.contains("/events")).collect();
    assert_eq!(events.len(), 6, "one event per created child: {writes:#?}");
    assert!(
        events.iter().all(|e| e.starts_with("POST")),
        "six distinct events, not one repeated: {events:#?}"
    );

    let sts = api.get(STS_PATH).expect("StatefulSet applied");
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    assert_eq!(
        sts["metadata"]["ownerReferences"][0]["kind"],
        "CoordinationCluster"
    );
    assert_eq!(sts["metadata"]["ownerReferences"][0]["controller"], true);
    let token = api
        .get("/api/v1/namespaces/team-a/secrets/zk-admin")
        .expect("Secret applied");
    assert_eq!(
        token["data"]["token"].as_str().map(str::len),
        Some(88),
        "base64 of 64 hex characters"
    );

    let status = as_stored(&api).status.clone().expect("status written");
    assert_eq!(status.phase, Some(Phase::Creating));
    assert_eq!(status.selector.as_deref(), Some("app.kubernetes.io/component=member,app.kubernetes.io/instance=zk,app.kubernetes.io/name=ensemble"));
    assert_eq!(
        status.client_endpoint.as_deref(),
        Some("zk.team-a.svc.cluster.local:2181")
    );
}

#[tokio::test]
async fn a_converged_cluster_is_reconciled_without_a_single_write() {
    let api = FakeApi::new();
    let ctx = context(&api);
    let cc = Arc::new(minimal_cluster(&api));
    reconcile(cc, ctx.clone()).await.expect("first reconcile");
    api.take_requests();
    let token_before = api.get("/api/v1/namespaces/team-a/secrets/zk-admin");
    run_members(&api);

    // Members became ready: the status changes once more (phase Running), nothing else.
    reconcile(as_stored(&api), ctx.clone())
        .await
        .expect("second reconcile");
    let second = writes(&api.take_requests());
    assert_eq!(
        second,
        ["PATCH /apis/ensemble.dev/v1alpha1/namespaces/team-a/coordinationclusters/zk/status"]
    );
    assert_eq!(
        as_stored(&api).status.clone().and_then(|s| s.phase),
        Some(Phase::Running)
    );

    for _ in 0..3 {
        reconcile(as_stored(&api), ctx.clone())
            .await
            .expect("converged reconcile");
        let requests = api.take_requests();
        assert!(
            !requests.is_empty(),
            "the reconcile read the cluster's objects"
        );
        assert_eq!(
            writes(&requests),
            Vec::<String>::new(),
            "a converged cluster must not be written to"
        );
    }
    assert_eq!(
        api.get("/api/v1/namespaces/team-a/secrets/zk-admin"),
        token_before,
        "the admin token is kept"
    );
}

#[tokio::test]
async fn a_spec_change_rewrites_only_the_children_it_affects() {
    let api = FakeApi::new();
    let ctx = context(&api);
    let cc = Arc::new(minimal_cluster(&api));
    reconcile(cc, ctx.clone()).await.expect("first reconcile");
    run_members(&api);
    reconcile(as_stored(&api), ctx.clone())
        .await
        .expect("second reconcile");
    api.take_requests();

    api.update(CC_PATH, |cc| {
        cc["spec"]["clientService"] = json!({"type": "NodePort"});
        cc["metadata"]["generation"] = json!(2);
    });
    reconcile(as_stored(&api), ctx.clone())
        .await
        .expect("reconcile after the change");
    let writes = writes(&api.take_requests());
    let applies: Vec<&String> = writes.iter().filter(|w| w.starts_with("PATCH")).collect();
    assert_eq!(
        applies,
        [
            "PATCH /api/v1/namespaces/team-a/services/zk",
            "PATCH /apis/ensemble.dev/v1alpha1/namespaces/team-a/coordinationclusters/zk/status",
        ],
        "{writes:#?}"
    );
    let service = api.get("/api/v1/namespaces/team-a/services/zk").unwrap();
    assert_eq!(service["spec"]["type"], "NodePort");
}

#[tokio::test]
async fn an_invalid_spec_writes_no_child_and_reports_once() {
    let api = FakeApi::new();
    let ctx = context(&api);
    let mut cc = minimal_cluster(&api);
    cc.spec.replicas = 12;
    api.insert(CC_PATH, serde_json::to_value(&cc).unwrap());
    reconcile(Arc::new(cc), ctx.clone())
        .await
        .expect("an invalid spec is not an error to retry");
    let first = writes(&api.take_requests());
    assert_eq!(
        first.len(),
        2,
        "one Warning event and the status: {first:#?}"
    );
    assert!(first.iter().any(|w| w.contains("/events")));
    let status = as_stored(&api).status.clone().expect("status written");
    assert_eq!(status.phase, Some(Phase::Failed));
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded condition");
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, "InvalidSpec");
    assert!(
        degraded.message.contains("spec.replicas"),
        "{}",
        degraded.message
    );

    reconcile(as_stored(&api), ctx)
        .await
        .expect("second reconcile");
    assert_eq!(
        writes(&api.take_requests()),
        Vec::<String>::new(),
        "the same problem is reported once"
    );
}

/// A stand-in for one member's admin port on `ip`:8080 that answers each request with what
/// `answer` gives for its request line (`"POST /voters"`), and the request lines it received.
fn admin_stand_in(
    ip: &'static str,
    answer: fn(&str) -> (u16, &'static str),
) -> Arc<std::sync::Mutex<Vec<String>>> {
    let listener = std::net::TcpListener::bind((ip, 8080))
        .unwrap_or_else(|e| panic!("admin port stand-in on {ip}:8080: {e}"));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let text = String::from_utf8_lossy(&request[..n]);
            let line: Vec<&str> = text.split_whitespace().take(2).collect();
            let line = line.join(" ");
            let (code, body) = answer(&line);
            record.lock().unwrap().push(line);
            let _ = write!(
                stream,
                "HTTP/1.0 {code} X\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    seen
}

/// The world as one reconcile saw it: zk-0, on `ip`, leads.
fn led_from(ip: &str) -> ensemble::controller::observe::Observed {
    use ensemble::controller::observe::{AdminToken, MemberReport, Observed};
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "zk-0"},
        "status": {"podIP": ip}
    }))
    .expect("a pod");
    let leader = MemberReport {
        id: 1,
        role: "leader".into(),
        leader_id: Some(1),
        term: 3,
        commit_index: 9,
        applied_index: 9,
        membership_version: Some(5),
        initialized: true,
        members: Vec::new(),
    };
    Observed {
        statefulset: None,
        peers_service: None,
        client_service: None,
        pdb: None,
        config_map: None,
        admin_token: Some(AdminToken("token".into())),
        pods: vec![pod],
        claims: Vec::new(),
        reports: [("zk-0".to_string(), leader)].into(),
    }
}

/// Members change two at a time through `POST /voters`. A leader of a release before that
/// route answers it with an empty 404 (an unknown route): the operator then takes the first
/// member of the pair alone, and the next reconcile plans the other. A 404 that gives a reason
/// (the route exists; a member is unknown) is the answer, reported, with no second call.
#[tokio::test]
async fn a_pair_of_voters_falls_back_to_one_member_on_a_leader_without_the_route() {
    use ensemble::controller::execute::execute_step;
    use ensemble::controller::plan::membership::Step;
    use ensemble::controller::validate::validate;

    let api = FakeApi::new();
    let mut cc = support::cluster_from("deploy/examples/minimal.yaml", NS);
    cc.metadata.name = Some("zk".into());
    let defaults = Defaults {
        server_image: "ensemble:test".into(),
        cluster_domain: "cluster.local".into(),
    };
    let cfg = validate(&cc, &defaults).expect("valid");

    let old = admin_stand_in("127.0.0.9", |line| match line {
        "POST /members/4/promote" | "DELETE /members/5" => (200, "{}"),
        _ => (404, ""),
    });
    let old_leader = led_from("127.0.0.9");
    let promote = Step::Promote {
        ordinal: 3,
        with: Some(4),
    };
    let remove = Step::Remove {
        ordinal: 4,
        with: Some(3),
    };
    for step in [promote, remove] {
        execute_step(&api.client(), &cfg, &old_leader, step)
            .await
            .unwrap_or_else(|e| panic!("{step:?}: the first member alone: {e}"));
    }
    assert_eq!(
        *old.lock().unwrap(),
        [
            "POST /voters",
            "POST /members/4/promote",
            "POST /voters",
            "DELETE /members/5"
        ]
    );

    let new = admin_stand_in("127.0.0.10", |_| {
        (404, r#"{"error":"member 5 is not a learner"}"#)
    });
    let error = execute_step(&api.client(), &cfg, &led_from("127.0.0.10"), promote)
        .await
        .expect_err("a refusal with a reason is the answer");
    assert!(
        error.contains("POST /voters") && error.contains("member 5 is not a learner"),
        "{error}"
    );
    assert_eq!(*new.lock().unwrap(), ["POST /voters"]);
    assert!(
        api.take_requests().iter().all(|r| r.method == Method::GET),
        "a membership step writes nothing to the API server"
    );
}
