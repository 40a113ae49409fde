//! The pure planner: what it writes, the status it reports and the events it records, for
//! observed states built by hand.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ensemble::api::{MemberRole, Phase};
use ensemble::controller::observe::{AdminToken, MemberReport, Observed, ReportedMember};
use ensemble::controller::plan::membership::Step;
use ensemble::controller::plan::{differs, plan, EventKind, Write, DRAIN_TIME};
use ensemble::controller::validate::{validate, ClusterConfig, Defaults};
use ensemble::controller::{build, names};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

fn config() -> ClusterConfig {
    let mut cc = support::cluster_from("deploy/examples/minimal.yaml", "team-a");
    cc.metadata.name = Some("zk".into());
    let defaults = Defaults {
        server_image: "ensemble:0.1.0".into(),
        cluster_domain: "cluster.local".into(),
    };
    validate(&cc, &defaults).expect("valid")
}

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + second).expect("valid time"))
}

/// Everything the plan would create, as if it had been created, with `ready` members running.
fn converged(cfg: &ClusterConfig, ready: usize) -> Observed {
    let children = build::children(cfg);
    let mut statefulset = children.statefulset;
    statefulset.status =
        serde_json::from_value(json!({"replicas": 3, "updateRevision": "zk-1"})).ok();
    Observed {
        statefulset: Some(statefulset),
        peers_service: Some(children.peers_service),
        client_service: Some(children.client_service),
        pdb: Some(children.pdb),
        config_map: Some(children.config_map),
        admin_token: Some(AdminToken("secret".into())),
        pods: (0..cfg.replicas as usize)
            .map(|i| member_pod(i, i < ready))
            .collect(),
        claims: Vec::new(),
        // The ready members answer; zk-0 leads the three voters.
        reports: (0..ready)
            .map(|i| {
                let role = if i == 0 { "leader" } else { "follower" };
                let mut report = report(i as i64 + 1, role, 100, 100);
                report.leader_id = Some(1);
                if i == 0 {
                    report.members = (1..=3)
                        .map(|id| ReportedMember {
                            id,
                            voting: true,
                            lag: (id as usize <= ready).then_some(0),
                        })
                        .collect();
                }
                (format!("zk-{i}"), report)
            })
            .collect(),
    }
}

/// A pod as the StatefulSet makes it from the template: in the client Service.
fn member_pod(ordinal: usize, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("zk-{ordinal}"),
            "labels": {"controller-revision-hash": "zk-1", names::LABEL_CLIENTS: names::CLIENTS_SERVE},
        },
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .expect("a pod")
}

/// What the operator's drain write does to a pod.
fn take_out_of_client_service(pod: &mut Pod, when: &Time) {
    let meta = &mut pod.metadata;
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.insert(names::LABEL_CLIENTS.into(), names::CLIENTS_DRAIN.into());
    let annotations = meta.annotations.get_or_insert_with(Default::default);
    annotations.insert(names::DRAINED_AT_ANNOTATION.into(), when.0.to_string());
}

fn report(id: i64, role: &str, applied: u64, commit: u64) -> MemberReport {
    MemberReport {
        id,
        role: role.into(),
        leader_id: Some(2),
        term: 4,
        commit_index: commit,
        applied_index: applied,
        membership_version: Some(7),
        initialized: true,
        members: Vec::new(),
    }
}

fn condition<'a>(
    status: &'a ensemble::api::CoordinationClusterStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

#[test]
fn a_fresh_cluster_gets_every_child_configuration_first_statefulset_last() {
    let cfg = config();
    let plan = plan(&cfg, &Observed::default(), None, &at(0));
    let kinds: Vec<String> = plan.writes.iter().map(|w| w.describe(&cfg.name)).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap zk-config",
            "Secret zk-admin",
            "Service zk-peers",
            "Service zk",
            "PodDisruptionBudget zk",
            "StatefulSet zk"
        ]
    );
    assert!(plan
        .events
        .iter()
        .all(|e| e.kind == EventKind::Normal && e.reason == "Created"));
    let status = plan.status.expect("a first status");
    assert_eq!(status.phase, Some(Phase::Creating));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(condition(&status, "Available").status, "False");
    assert_eq!(condition(&status, "Progressing").reason, "Reconciling");
    assert_eq!(
        condition(&status, "Degraded").status,
        "False",
        "creating is not degraded"
    );
}

#[test]
fn a_converged_cluster_plans_nothing_and_keeps_its_status() {
    let cfg = config();
    let observed = converged(&cfg, 3);
    let first = plan(&cfg, &observed, None, &at(0));
    assert_eq!(first.writes, Vec::<Write>::new());
    let status = first.status.expect("first status");
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(condition(&status, "Available").status, "True");
    assert_eq!(condition(&status, "Progressing").reason, "Converged");

    let later = plan(&cfg, &observed, Some(&status), &at(600));
    assert_eq!(later.writes, Vec::<Write>::new());
    assert_eq!(
        later.status, None,
        "an unchanged status is not rewritten, even later"
    );
    assert!(later.events.is_empty());
    assert_eq!(later.requeue_after, Duration::from_secs(60));
}

#[test]
fn a_ready_member_without_a_report_is_looked_at_again_soon() {
    let cfg = config();
    let mut observed = converged(&cfg, 3);
    observed.reports.remove("zk-2");
    let plan = plan(&cfg, &observed, None, &at(0));
    let status = plan.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(status.members[2].role, MemberRole::Unknown);
    assert!(
        plan.requeue_after < Duration::from_secs(10),
        "{:?}",
        plan.requeue_after
    );
}

#[test]
fn a_member_going_down_degrades_and_keeps_transition_times_of_the_rest() {
    let cfg = config();
    let healthy = plan(&cfg, &converged(&cfg, 3), None, &at(0))
        .status
        .expect("status");
    let degraded = plan(&cfg, &converged(&cfg, 2), Some(&healthy), &at(60))
        .status
        .expect("a change");
    assert_eq!(degraded.phase, Some(Phase::Degraded));
    let condition_degraded = condition(&degraded, "Degraded");
    assert_eq!(
        (
            condition_degraded.status.as_str(),
            condition_degraded.reason.as_str()
        ),
        ("True", "MembersNotReady")
    );
    assert!(
        condition_degraded.message.contains("zk-2"),
        "{}",
        condition_degraded.message
    );
    assert_eq!(condition_degraded.last_transition_time, at(60));
    let available = condition(&degraded, "Available");
    assert_eq!(available.status, "True", "two of three still form a quorum");
    assert_eq!(
        available.last_transition_time,
        at(0),
        "unchanged conditions keep their time"
    );

    let lost = plan(&cfg, &converged(&cfg, 1), Some(&degraded), &at(120))
        .status
        .expect("a change");
    assert_eq!(condition(&lost, "Available").status, "False");
    assert_eq!(
        condition(&lost, "QuorumHealthy").reason,
        "TooFewMembersReady"
    );
}

#[test]
fn members_and_the_leader_come_from_the_admin_reports() {
    let cfg = config();
    let mut observed = converged(&cfg, 3);
    observed.reports = BTreeMap::from([
        ("zk-0".to_string(), report(1, "follower", 98, 100)),
        ("zk-1".to_string(), report(2, "leader", 100, 100)),
        ("zk-2".to_string(), report(3, "learner", 40, 100)),
    ]);
    let status = plan(&cfg, &observed, None, &at(0)).status.expect("status");
    assert_eq!(status.leader.as_deref(), Some("zk-1"));
    assert_eq!(status.membership_version, Some(7));
    let roles: Vec<(&str, i64, MemberRole, Option<i64>)> = status
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.id, m.role, m.lag))
        .collect();
    assert_eq!(
        roles,
        [
            ("zk-0", 1, MemberRole::Follower, Some(2)),
            ("zk-1", 2, MemberRole::Leader, Some(0)),
            ("zk-2", 3, MemberRole::Learner, Some(60)),
        ]
    );
    assert_eq!(condition(&status, "QuorumHealthy").reason, "LeaderElected");
}

#[test]
fn paused_plans_no_write_at_all() {
    let mut cfg = config();
    cfg.paused = true;
    let plan = plan(&cfg, &Observed::default(), None, &at(0));
    assert!(plan.writes.is_empty());
    assert_eq!(plan.status.and_then(|s| s.phase), Some(Phase::Paused));
}

#[test]
fn an_even_count_warns_once() {
    let mut cfg = config();
    cfg.replicas = 4;
    let first = plan(&cfg, &converged(&cfg, 4), None, &at(0));
    let warnings: Vec<_> = first
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Warning)
        .collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].reason, "EvenReplicas");
    let status = first.status.expect("status");
    let even = condition(&status, "EvenReplicas");
    assert_eq!(even.status, "True");
    assert!(
        even.message.contains("4 members survive 1 failure"),
        "{}",
        even.message
    );
    let again = plan(&cfg, &converged(&cfg, 4), Some(&status), &at(60));
    assert!(
        again.events.is_empty(),
        "no second warning for the same count"
    );
}

#[test]
fn a_larger_volume_grows_the_claims_and_keeps_the_immutable_template() {
    let mut cfg = config();
    let observed = {
        let mut observed = converged(&cfg, 3);
        observed.claims = (0..3)
            .map(|i| {
                serde_json::from_value::<PersistentVolumeClaim>(json!({
                    "metadata": {"name": format!("data-zk-{i}")},
                    "spec": {"resources": {"requests": {"storage": "1Gi"}}}
                }))
                .expect("a claim")
            })
            .collect();
        observed
    };
    cfg.storage_size = "2Gi".into();
    let plan = plan(&cfg, &observed, None, &at(0));
    let described: Vec<String> = plan.writes.iter().map(|w| w.describe(&cfg.name)).collect();
    assert_eq!(
        described,
        [
            "PersistentVolumeClaim data-zk-0 to 2Gi",
            "PersistentVolumeClaim data-zk-1 to 2Gi",
            "PersistentVolumeClaim data-zk-2 to 2Gi",
        ],
        "the StatefulSet keeps its claim template, so it is not rewritten"
    );
}

#[test]
fn equal_quantities_in_other_spellings_are_not_a_difference() {
    let desired = json!({"resources": {"cpu": "0.5", "memory": "1Gi"}, "name": "a"});
    let observed =
        json!({"resources": {"cpu": "500m", "memory": "1073741824"}, "name": "a", "uid": "x"});
    assert!(!differs(&desired, Some(&observed)));
    let changed = json!({"resources": {"cpu": "600m", "memory": "1Gi"}, "name": "a"});
    assert!(differs(&changed, Some(&observed)));
    assert!(differs(&desired, None));
    assert!(differs(
        &json!({"list": [1, 2]}),
        Some(&json!({"list": [1, 2, 3]}))
    ));
}

fn statefulset_replicas(writes: &[Write]) -> Option<i32> {
    writes.iter().find_map(|w| match w {
        Write::StatefulSet(s) => s.spec.as_ref()?.replicas,
        _ => None,
    })
}

#[test]
fn blank_members_get_an_ensemble_founded_on_the_first() {
    let cfg = config();
    let mut observed = converged(&cfg, 0);
    observed.reports = (0..3)
        .map(|i| {
            let mut blank = report(i + 1, "outside", 0, 0);
            (blank.leader_id, blank.initialized) = (None, false);
            (format!("zk-{i}"), blank)
        })
        .collect();
    let first = plan(&cfg, &observed, None, &at(0));
    assert_eq!(first.step, Some(Step::Bootstrap { ordinal: 0 }));
    let status = first.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Creating));
    let progressing = condition(&status, "Progressing");
    assert_eq!(progressing.reason, "MemberBootstrapped");
    assert!(
        progressing.message.contains("zk-0"),
        "{}",
        progressing.message
    );

    // Once the resource recorded a membership, blank members are never refounded.
    let founded = ensemble::api::CoordinationClusterStatus {
        membership_version: Some(3),
        ..status
    };
    let again = plan(&cfg, &observed, Some(&founded), &at(5));
    assert_eq!(again.step, None);
}

#[test]
fn scaling_down_removes_members_before_their_pods_and_sizes_the_budget_from_the_voters() {
    let mut cfg = config();
    cfg.replicas = 1;
    let mut observed = converged(&cfg_with_replicas(3), 3);
    let running = plan(&cfg_with_replicas(3), &observed, None, &at(0)).status;

    // First the two pods leave the client Service; their members stay.
    let drain = plan(&cfg, &observed, running.as_ref(), &at(5));
    assert_eq!(
        drain.step, None,
        "no member leaves while clients are sent to it"
    );
    let drained: Vec<_> = drain
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::PodClients { pod, drained_at } => Some((pod.as_str(), drained_at.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        drained,
        [("zk-1", Some(at(5))), ("zk-2", Some(at(5)))],
        "the unwanted pods leave the client Service, noting when"
    );
    assert_eq!(drain.requeue_after, DRAIN_TIME);
    for pod in &mut observed.pods[1..] {
        take_out_of_client_service(pod, &at(5));
    }

    let waiting = plan(&cfg, &observed, running.as_ref(), &at(6));
    assert_eq!(waiting.step, None, "drained for 1 s of {DRAIN_TIME:?}");
    assert!(waiting.writes.is_empty(), "{:?}", waiting.writes);
    assert_eq!(waiting.requeue_after, DRAIN_TIME - Duration::from_secs(1));

    let shrink = plan(&cfg, &observed, running.as_ref(), &at(8));
    assert_eq!(
        shrink.step,
        Some(Step::Remove {
            ordinal: 2,
            with: Some(1)
        }),
        "three voters become one in one change, never two"
    );
    assert!(
        shrink.requeue_after < Duration::from_secs(1),
        "the removed members' pods go at once: {:?}",
        shrink.requeue_after
    );
    assert_eq!(
        statefulset_replicas(&shrink.writes),
        None,
        "the StatefulSet keeps its three pods while they are members"
    );
    let pdb = shrink.writes.iter().find_map(|w| match w {
        Write::Pdb(p) => p.spec.clone(),
        _ => None,
    });
    assert_eq!(
        pdb.and_then(|s| s.max_unavailable),
        None,
        "three voters still spare one, as the budget already says"
    );
    assert_eq!(shrink.status.and_then(|s| s.phase), Some(Phase::Scaling));
}

#[test]
fn a_wanted_pod_out_of_the_client_service_goes_back_in_before_the_service_changes() {
    let cfg = config();
    let mut observed = converged(&cfg, 3);
    // zk-2 was drained for a scale-down that was taken back; zk-1 comes from an earlier
    // release, whose template had no such label, and the Service does not select on it yet.
    take_out_of_client_service(&mut observed.pods[2], &at(0));
    if let Some(labels) = observed.pods[1].metadata.labels.as_mut() {
        labels.remove(names::LABEL_CLIENTS);
    }
    let old_service = observed
        .client_service
        .as_mut()
        .and_then(|s| s.spec.as_mut());
    if let Some(spec) = old_service {
        spec.selector = Some(names::selector_labels("zk"));
    }

    let p = plan(&cfg, &observed, None, &at(10));
    let described: Vec<String> = p.writes.iter().map(|w| w.describe("zk")).collect();
    assert_eq!(
        described,
        [
            "Pod zk-1 into the client Service",
            "Pod zk-2 into the client Service",
            "Service zk",
        ],
        "the pods carry the label before the Service selects on it"
    );
    assert!(
        matches!(
            &p.writes[1],
            Write::PodClients {
                drained_at: None,
                ..
            }
        ),
        "back in, the annotation goes"
    );
    let reasons: Vec<&str> = p.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons[..2], ["MemberServing", "MemberServing"]);
}

fn cfg_with_replicas(replicas: i32) -> ClusterConfig {
    let mut cfg = config();
    cfg.replicas = replicas;
    cfg
}
