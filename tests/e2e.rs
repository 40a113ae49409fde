//! End-to-end tests on a real Kubernetes: the control plane and node of `scripts/testbed`, the
//! operator installed with Helm or kubectl as a user would, real member pods with volumes, and a
//! real ZooKeeper client reaching them through their Service.
//!
//! They need the test bed, so plain `cargo test` skips them (`#[ignore]`); `scripts/e2e` brings
//! the test bed up, runs them one at a time and tears it down. Against a test bed already up:
//! `cargo test --test e2e -- --ignored --test-threads=1` (as root). A failing test leaves its
//! namespace's objects, events and pod and operator logs in `target/e2e-logs/` (`E2E_LOG_DIR`).
//!
//! Each test works in a namespace of its own (`TestNamespace`), waits with deadlines that say
//! what they waited for (`wait::until`), and shares the operator installed by Helm
//! (`operator::ensure_helm`). Operations on a multi-member ensemble run with a `zk::Writer`
//! writing throughout, and check afterwards that every acknowledged write is there.

#[path = "e2e/bed.rs"]
mod bed;
#[path = "e2e/cluster.rs"]
mod cluster;
#[path = "e2e/namespace.rs"]
mod namespace;
#[path = "e2e/operator.rs"]
mod operator;
#[path = "e2e/wait.rs"]
mod wait;
#[path = "e2e/zk.rs"]
mod zk;

use std::time::Duration;

use ensemble::api::MemberRole;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::DeleteParams;
use kube::Api;
use tokio::sync::Mutex;

use bed::bed;
use cluster::{assert_condition, wait_gone, TestCluster};
use namespace::TestNamespace;

/// The tests share one cluster-wide operator install: they run one at a time even when the
/// harness is given more threads.
static SERIAL: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test bed: scripts/e2e"]
async fn chart_installs_a_running_operator() {
    let _serial = SERIAL.lock().await;
    let client = bed().client().await;
    operator::remove_helm();
    let pods = operator::ensure_helm(&client).await;
    // One replica holds the leader-election lease and reconciles.
    let names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    wait::until(
        "an operator pod holds the lease",
        Duration::from_secs(60),
        || async {
            let holder = bed().kubectl(&[
                "get",
                "lease",
                "-n",
                operator::HELM_NAMESPACE,
                "-o",
                "jsonpath={.items[*].spec.holderIdentity}",
            ]);
            if names.iter().any(|n| holder.contains(n.as_str())) {
                Ok(())
            } else {
                Err(format!("lease holders {holder:?}, operator pods {names:?}"))
            }
        },
    )
    .await;
}

/// `--set watchNamespaces={a}`: the operator works with namespaced Roles only, in `a`, and leaves
/// clusters elsewhere alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test bed: scripts/e2e"]
async fn chart_with_watch_namespaces_reconciles_only_those() {
    let _serial = SERIAL.lock().await;
    let client = bed().client().await;
    operator::remove_helm();
    let watched = TestNamespace::create("watched");
    let other = TestNamespace::create("unwatched");
    bed()
        .helm(&[
            "install",
            operator::HELM_RELEASE,
            "charts/ensemble-operator",
            "--namespace",
            operator::HELM_NAMESPACE,
            "--create-namespace",
            "--set",
            &format!("watchNamespaces={{{}}}", watched.name),
            "--wait",
            "--timeout",
            "180s",
        ])
        .success();
    operator::wait_running(&client, operator::HELM_NAMESPACE).await;

    let inside = TestCluster::apply(&client, &watched.name, "in", "  replicas: 1\n");
    let outside = TestCluster::apply(&client, &other.name, "out", "  replicas: 1\n");
    inside.wait_available(1).await;
    assert!(
        outside.get().await.status.is_none(),
        "a cluster outside the watched namespaces got a status"
    );
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &other.name);
    assert!(
        statefulsets
            .get_opt("out")
            .await
            .expect("reading")
            .is_none(),
        "the operator created a StatefulSet outside its namespaces"
    );
    bed().kubectl(&["delete", "cc", "in", "-n", &watched.name]);
    bed().kubectl(&["delete", "cc", "out", "-n", &other.name]);
    operator::remove_helm();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test bed: scripts/e2e"]
async fn every_example_passes_a_server_side_dry_run() {
    let _serial = SERIAL.lock().await;
    let client = bed().client().await;
    operator::ensure_helm(&client).await;
    let ns = TestNamespace::create("examples");
    let mut examples: Vec<_> = std::fs::read_dir(bed().repo_path("deploy/examples"))
        .expect("deploy/examples")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 2, "examples: {examples:?}");
    for example in &examples {
        let out = bed().kubectl(&[
            "apply".as_ref(),
            "--dry-run=server".as_ref(),
            "-n".as_ref(),
            ns.name.as_ref(),
            "-f".as_ref(),
            example.as_os_str(),
        ]);
        assert!(
            out.contains("(server dry run)"),
            "{}: {out}",
            example.display()
        );
    }
    // A dry run creates nothing.
    let left = bed().kubectl(&["get", "cc", "-n", &ns.name, "-o", "name"]);
    assert_eq!(left.trim(), "", "a dry run left objects behind");
}

/// Every fixture of `tests/fixtures/invalid/` (which `tests/schema.rs` checks against the
/// schema offline) is refused by the real API server with a message naming its field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test bed: scripts/e2e"]
async fn invalid_clusters_are_refused_naming_the_field() {
    let _serial = SERIAL.lock().await;
    let client = bed().client().await;
    operator::ensure_helm(&client).await;
    let ns = TestNamespace::create("invalid");
    let mut fixtures: Vec<_> = std::fs::read_dir(bed().repo_path("tests/fixtures/invalid"))
        .expect("tests/fixtures/invalid")
        .map(|e| e.expect("directory entry").path())
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 10, "fixtures: {fixtures:?}");
    for fixture in &fixtures {
        let text = std::fs::read_to_string(fixture).expect("readable fixture");
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", fixture.display()));
        let field = api_server_field(expected);
        let err = bed()
            .kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], &text)
            .failure();
        assert!(
            err.contains(&field),
            "{}: expected the API server's refusal to name {field:?}, got: {err}",
            fixture.display()
        );
    }
    let left = bed().kubectl(&["get", "cc", "-n", &ns.name, "-o", "name"]);
    assert_eq!(left.trim(), "", "an invalid cluster was stored");

    // A transition rule, which needs an existing object: storage can grow but never shrink.
    let cc = |size: &str| {
        format!(
            "apiVersion: ensemble.dev/v1alpha1\nkind: CoordinationCluster\nmetadata: {{name: grow}}\nspec:\n  paused: true\n  storage: {{size: {size}}}\n"
        )
    };
    bed()
        .kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], &cc("2Gi"))
        .success();
    bed()
        .kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], &cc("3Gi"))
        .success();
    let err = bed()
        .kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], &cc("1Gi"))
        .failure();
    assert!(
        err.contains("storage.size cannot decrease"),
        "shrinking storage: {err}"
    );
    bed().kubectl(&["delete", "cc", "grow", "-n", &ns.name]);
}

/// `/spec/server/fourLetterWords/1` (a JSON pointer, as the offline schema check reports it) is
/// `spec.server.fourLetterWords[1]` in the API server's messages; other fixtures already give
/// the API server's form.
fn api_server_field(expected: &str) -> String {
    let Some(pointer) = expected.strip_prefix('/') else {
        return expected.to_string();
    };
    let mut field = String::new();
    for part in pointer.split('/') {
        if part.parse::<usize>().is_ok() {
            field.push_str(&format!("[{part}]"));
        } else {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(part);
        }
    }
    field
}

/// The plain manifests, on a cluster without the chart: the operator runs and reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test bed: scripts/e2e"]
async fn kustomize_installs_a_working_operator() {
    let _serial = SERIAL.lock().await;
    let client = bed().client().await;
    operator::remove_helm();
    operator::remove_kustomize();
    wait_gone("", "crd/coordinationclusters.ensemble.dev", wait::DELETION).await;
    wait_gone(
        "",
        &format!("namespace/{}", operator::KUSTOMIZE_NAMESPACE),
        wait::DELETION,
    )
    .await;

    bed().kubectl(&["apply", "-k", "deploy/"]);
    operator::wait_running(&client, operator::KUSTOMIZE_NAMESPACE).await;

    let ns = TestNamespace::create("kustomize");
    let cc = TestCluster::apply(&client, &ns.name, "kz", "  replicas: 1\n");
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    wait::until(
        "the kustomize-installed operator creates the StatefulSet and reports a status",
        Duration::from_secs(60),
        || async {
            let sts = statefulsets
                .get_opt("kz")
                .await
                .map_err(|e| e.to_string())?;
            let status = cc.get().await.status;
            match (&sts, &status) {
                (Some(_), Some(s)) if s.observed_generation.is_some() => Ok(()),
                _ => Err(format!("statefulset {}, status {status:?}", sts.is_some())),
            }
        },
    )
    .await;
    bed().kubectl(&["delete", "cc", "kz", "-n", &ns.name]);
    drop(ns);

    operator::remove_kustomize();
    wait_gone(
        "",
        &format!("namespace/{}", operator::KUSTOMIZE_NAMESPACE),
        wait::DELETION,
    )
    .await;
    wait_gone("", "crd/coordinationclusters.ensemble.dev", wait::DELETION).await;
}

/// One member, from creation to deletion, with `storage.reclaimPolicy: Delete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test bed: scripts/e2e"]
async fn one_member_serves_survives_its_pod_and_is_collected() {
    let ClusterTest {
        _serial,
        client: _,
        cc,
        ns,
    } = ClusterTest::start(
        "one",
        "zk",
        "  replicas: 1\n  storage:\n    reclaimPolicy: Delete\n",
    )
    .await;

    // What the operator reports for one member.
    let status = cc.wait_available(1).await;
    assert_eq!(status.replicas, 1, "{status:#?}");
    assert_eq!(status.leader.as_deref(), Some("zk-0"), "{status:#?}");
    assert_eq!(status.members.len(), 1, "{status:#?}");
    let member = &status.members[0];
    assert_eq!(
        (member.name.as_str(), member.id, member.role, member.ready),
        ("zk-0", 1, MemberRole::Leader, true),
        "{status:#?}"
    );
    assert_eq!(member.lag, Some(0), "{status:#?}");
    assert!(member.applied_index.is_some(), "{status:#?}");
    assert_eq!(
        status.client_endpoint.as_deref(),
        Some(format!("zk.{}.svc.cluster.local:2181", ns.name).as_str()),
        "{status:#?}"
    );
    assert!(
        status
            .selector
            .as_deref()
            .is_some_and(|s| s.contains("app.kubernetes.io/instance=zk")),
        "{status:#?}"
    );
    assert_condition(&status, "Available", "True");
    assert_condition(&status, "QuorumHealthy", "True");
    assert_condition(&status, "Progressing", "False");
    assert_condition(&status, "Degraded", "False");

    // The printer columns, as `kubectl get cc` shows them.
    let table = bed().kubectl(&["get", "cc", "-n", &ns.name]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "REPLICAS", "READY", "LEADER", "PHASE", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..5], ["zk", "1", "1", "zk-0", "Running"], "{table}");

    // A client through the Service: write, read back.
    let address = cc.client_address().await;
    zk::write(&address, "/e2e", b"written before the restart");
    assert_eq!(
        zk::read(&address, "/e2e").as_deref(),
        Some(&b"written before the restart"[..])
    );

    // The member's pod goes; the StatefulSet brings it back on the same claim, with the data.
    cc.delete_pod_and_wait_replacement("zk-0").await;
    let status = cc.wait_available(1).await;
    // The member recovered its log, and the operator read its new applied index.
    wait::until(
        "the status shows the member's applied index past the write",
        Duration::from_secs(90),
        || async {
            let members = cc.get().await.status.unwrap_or_default().members;
            match members.first().and_then(|m| m.applied_index) {
                Some(index) if index > 0 => Ok(()),
                _ => Err(format!("{members:#?} (first seen {:#?})", status.members)),
            }
        },
    )
    .await;
    assert_eq!(
        zk::read(&cc.client_address().await, "/e2e").as_deref(),
        Some(&b"written before the restart"[..]),
        "the znode did not survive the pod's restart"
    );

    // Deleting the cluster collects every child, and with reclaimPolicy Delete the claim.
    delete_and_check_children(&cc).await;
    wait_gone(&ns.name, "pvc/data-zk-0", wait::DELETION).await;
}

/// What every test of one cluster starts with: its turn (the tests run one at a time), the
/// operator installed by Helm, a namespace of its own, and the cluster `name` with `spec`.
struct ClusterTest {
    client: kube::Client,
    cc: TestCluster,
    ns: TestNamespace,
    // Dropped last: the namespace goes before the next test starts.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl ClusterTest {
    async fn start(purpose: &str, name: &str, spec: &str) -> Self {
        let serial = SERIAL.lock().await;
        let client = bed().client().await;
        operator::ensure_helm(&client).await;
        let ns = TestNamespace::create(purpose);
        let cc = TestCluster::apply(&client, &ns.name, name, spec);
        ClusterTest {
            client,
            cc,
            ns,
            _serial: serial,
        }
    }
}

/// Three members, founded and grown one at a time, with a client writing through every
/// operation: the leader's pod deleted, 3 → 5 → 3 with `kubectl scale`, and a server-setting
/// change rolled one member at a time. Every acknowledged write must survive each; the longest
/// time without a write is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test bed: scripts/e2e"]
async fn three_members_heal_scale_and_roll_without_losing_a_write() {
    let ClusterTest {
        _serial,
        client: _,
        cc,
        ns,
    } = ClusterTest::start(
        "three",
        "zk",
        "  replicas: 3\n  storage:\n    reclaimPolicy: Delete\n",
    )
    .await;
    let status = cc.wait_available(3).await;
    let leader = assert_one_leader(&status, 3);
    assert!(status.membership_version.is_some(), "{status:#?}");
    let address = cc.client_address().await;

    let writer = zk::Writer::start(&address, "/heal");
    cc.delete_pod_and_wait_replacement(&leader).await;
    let status = cc.wait_available(3).await;
    assert_one_leader(&status, 3);
    zk::check_writes(
        &address,
        "/heal",
        &format!("deleting the leader's pod {leader}"),
        writer,
    );

    let writer = zk::Writer::start(&address, "/grow");
    cc.scale(5);
    let status = cc.wait_available(5).await;
    assert_one_leader(&status, 5);
    zk::check_writes(&address, "/grow", "scaling 3 → 5", writer);

    // The test bed tags the member image a second time as `<image>-next`: an image change.
    let writer = zk::Writer::start(&address, "/image");
    let before = cc.revision().await;
    let image = cc
        .pods()
        .get("zk-0")
        .await
        .expect("pod zk-0")
        .spec
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
        .expect("the member image");
    cc.patch_spec(&format!(r#"{{"image":"{image}-next"}}"#));
    cc.wait_new_revision(before).await;
    cc.wait_rolled().await;
    let status = cc.wait_available(5).await;
    assert_one_leader(&status, 5);
    zk::check_writes(
        &address,
        "/image",
        "rolling an image change over 5 members",
        writer,
    );

    let writer = zk::Writer::start(&address, "/shrink");
    cc.scale(3);
    // Members leave only after new connections stopped going to their pods: a leaving member
    // closes its connections, and those clients must reconnect to members that stay.
    let kept_away = cc.follow_leaving(&address, &[3, 4]).await;
    println!("scaling 5 → 3: time each leaving member was kept from new clients {kept_away:?}");
    for (ordinal, time) in kept_away {
        assert!(
            time >= Duration::from_secs(1),
            "member {ordinal} left while new clients were still sent to it (kept away {time:?})"
        );
    }
    let status = cc.wait_available(3).await;
    assert_one_leader(&status, 3);
    for gone in ["pod/zk-3", "pod/zk-4", "pvc/data-zk-3", "pvc/data-zk-4"] {
        wait_gone(&ns.name, gone, wait::DELETION).await;
    }
    zk::check_writes(&address, "/shrink", "scaling 5 → 3", writer);

    bed().kubectl(&["delete", "cc", "zk", "-n", &ns.name]);
}

/// Down to one member and back to three with the leader's pod killed midway, then a roll during
/// which every operator pod is deleted: the operator resumes from what it observes, and no
/// acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test bed: scripts/e2e"]
async fn one_and_back_with_the_leader_killed_and_the_operator_restarted() {
    let ClusterTest {
        _serial,
        client,
        cc,
        ns,
    } = ClusterTest::start(
        "back",
        "zk",
        "  replicas: 3\n  storage:\n    reclaimPolicy: Delete\n",
    )
    .await;
    cc.wait_available(3).await;
    let address = cc.client_address().await;

    let writer = zk::Writer::start(&address, "/down");
    cc.scale(1);
    let status = cc.wait_available(1).await;
    assert_one_leader(&status, 1);
    zk::check_writes(&address, "/down", "scaling 3 → 1", writer);

    let writer = zk::Writer::start(&address, "/up");
    cc.scale(3);
    let leader = wait::until("a second member to join", wait::POD_READY, || async {
        let status = cc.get().await.status.unwrap_or_default();
        let joined = status
            .members
            .iter()
            .filter(|m| m.role != MemberRole::Unknown)
            .count();
        match &status.leader {
            Some(leader) if joined >= 2 => Ok(leader.clone()),
            _ => Err(format!("{status:#?}")),
        }
    })
    .await;
    cc.pods()
        .delete(&leader, &DeleteParams::default().grace_period(0))
        .await
        .unwrap_or_else(|e| panic!("killing {leader}: {e}"));
    let status = cc.wait_available(3).await;
    assert_one_leader(&status, 3);
    zk::check_writes(
        &address,
        "/up",
        &format!("scaling 1 → 3 with the leader's pod {leader} killed midway"),
        writer,
    );

    let writer = zk::Writer::start(&address, "/roll");
    cc.patch_spec(r#"{"server":{"maxClientConnections":300}}"#);
    wait::until(
        "the first member restarted by the roll",
        wait::POD_READY,
        || async {
            let events = bed().kubectl(&[
                "get",
                "events",
                "-n",
                &ns.name,
                "--field-selector",
                "reason=MemberRestarted",
                "-o",
                "name",
            ]);
            if events.trim().is_empty() {
                Err("no MemberRestarted event yet".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    bed().kubectl(&[
        "delete",
        "pods",
        "--all",
        "-n",
        operator::HELM_NAMESPACE,
        "--wait=false",
    ]);
    operator::wait_running(&client, operator::HELM_NAMESPACE).await;
    cc.wait_rolled().await;
    let status = cc.wait_available(3).await;
    assert_one_leader(&status, 3);
    zk::check_writes(
        &address,
        "/roll",
        "rolling a setting with the operator restarted midway",
        writer,
    );
    bed().kubectl(&["delete", "cc", "zk", "-n", &ns.name]);
}

/// The status lists `voters` members, ready, exactly one of them the leader it names.
fn assert_one_leader(status: &ensemble::api::CoordinationClusterStatus, voters: usize) -> String {
    assert_eq!(status.members.len(), voters, "{status:#?}");
    assert!(status.members.iter().all(|m| m.ready), "{status:#?}");
    let leaders: Vec<&str> = status
        .members
        .iter()
        .filter(|m| m.role == MemberRole::Leader)
        .map(|m| m.name.as_str())
        .collect();
    let followers = status
        .members
        .iter()
        .filter(|m| m.role == MemberRole::Follower)
        .count();
    assert_eq!(leaders.len(), 1, "{status:#?}");
    assert_eq!(followers, voters - 1, "{status:#?}");
    assert_eq!(status.leader.as_deref(), Some(leaders[0]), "{status:#?}");
    leaders[0].to_string()
}

/// With `storage.reclaimPolicy: Retain` (the default), the claim outlives the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test bed: scripts/e2e"]
async fn a_retained_claim_outlives_its_cluster() {
    let ClusterTest {
        _serial,
        client,
        cc,
        ns,
    } = ClusterTest::start("retain", "kept", "  replicas: 1\n").await;
    cc.wait_available(1).await;
    zk::write(&cc.client_address().await, "/kept", b"still here");

    delete_and_check_children(&cc).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    wait::stays(
        "the claim data-kept-0 to stay",
        Duration::from_secs(10),
        || async {
            match claims.get_opt("data-kept-0").await {
                Ok(Some(c)) if c.metadata.deletion_timestamp.is_none() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // The same cluster created again finds its data on the retained claim.
    let again = TestCluster::apply(&client, &ns.name, "kept", "  replicas: 1\n");
    again.wait_available(1).await;
    assert_eq!(
        zk::read(&again.client_address().await, "/kept").as_deref(),
        Some(&b"still here"[..]),
        "the recreated cluster did not find the retained data"
    );
    bed().kubectl(&["delete", "cc", "kept", "-n", &ns.name]);
}

/// `kubectl delete cc` and every child object is garbage-collected: the StatefulSet and its pods,
/// both Services, the PodDisruptionBudget, the ConfigMap and the admin Secret.
async fn delete_and_check_children(cc: &TestCluster) {
    let name = &cc.name;
    let ns = &cc.namespace;
    let children = [
        format!("statefulset/{name}"),
        format!("service/{name}"),
        format!("service/{name}-peers"),
        format!("poddisruptionbudget/{name}"),
        format!("configmap/{name}-config"),
        format!("secret/{name}-admin"),
    ];
    for child in &children {
        bed().kubectl(&["get", child, "-n", ns, "-o", "name"]);
    }
    bed().kubectl(&["delete", "cc", name, "-n", ns]);
    for child in &children {
        wait_gone(ns, child, wait::DELETION).await;
    }
    wait::until("the member pods are gone", wait::DELETION, || async {
        let left = cc
            .pods()
            .list(&cc.member_selector())
            .await
            .map_err(|e| vec![e.to_string()])?;
        if left.items.is_empty() {
            Ok(())
        } else {
            Err(left
                .items
                .iter()
                .map(operator::pod_state)
                .collect::<Vec<_>>())
        }
    })
    .await;
    assert!(
        cc.api.get_opt(name).await.expect("reading cc").is_none(),
        "cc/{name} still exists"
    );
}
