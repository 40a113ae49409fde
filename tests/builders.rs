//! The child objects built from the example CoordinationClusters, and the operator's own
//! validation of specs that a schema-less API server would let through.

mod support;

use std::collections::BTreeMap;

use ensemble::controller::build::{self, Children};
use ensemble::controller::validate::{validate, ClusterConfig, Defaults};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn defaults() -> Defaults {
    Defaults {
        server_image: "ensemble:0.1.0".into(),
        cluster_domain: "cluster.local".into(),
    }
}

fn config(example: &str) -> ClusterConfig {
    let cc = support::cluster_from(example, "team-a");
    validate(&cc, &defaults()).expect("the example is valid")
}

fn pod_spec(children: &Children) -> &PodSpec {
    let spec = children
        .statefulset
        .spec
        .as_ref()
        .expect("StatefulSet spec");
    spec.template.spec.as_ref().expect("pod spec")
}

/// Kubernetes' "restricted" Pod Security Standard, the parts a pod template controls.
fn assert_restricted(pod: &PodSpec) {
    let security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_ne!(security.run_as_user, Some(0));
    let seccomp = security.seccomp_profile.as_ref().expect("seccomp profile");
    assert_eq!(seccomp.type_, "RuntimeDefault");
    assert!(pod.host_network.is_none() && pod.host_pid.is_none() && pod.host_ipc.is_none());
    for volume in pod.volumes.iter().flatten() {
        assert!(
            volume.host_path.is_none(),
            "volume {} uses hostPath",
            volume.name
        );
    }
    for container in &pod.containers {
        let security = container
            .security_context
            .as_ref()
            .expect("container securityContext");
        assert_eq!(
            security.allow_privilege_escalation,
            Some(false),
            "{}",
            container.name
        );
        assert_eq!(
            security.read_only_root_filesystem,
            Some(true),
            "{}",
            container.name
        );
        assert_ne!(security.privileged, Some(true));
        let caps = security.capabilities.as_ref().expect("capabilities");
        assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert!(caps.add.is_none());
    }
}

#[test]
fn minimal_example_builds_a_restricted_three_member_ensemble() {
    let cfg = config("deploy/examples/minimal.yaml");
    let children = build::children(&cfg);
    let sts = children.statefulset.spec.as_ref().expect("spec");
    assert_eq!(sts.replicas, Some(3));
    assert_eq!(sts.service_name.as_deref(), Some("minimal-peers"));
    assert_eq!(
        sts.update_strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref()),
        Some("OnDelete")
    );
    let claim = &sts
        .volume_claim_templates
        .as_ref()
        .expect("claim templates")[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    let requests = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref());
    assert_eq!(
        requests
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.as_str()),
        Some("1Gi")
    );
    let retention = sts
        .persistent_volume_claim_retention_policy
        .as_ref()
        .expect("retention");
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));

    let pod = pod_spec(&children);
    assert_restricted(pod);
    let server = &pod.containers[0];
    assert_eq!(
        server.image.as_deref(),
        Some("ensemble:0.1.0"),
        "defaults to the operator's image"
    );
    let ports: Vec<(String, i32)> = server
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("client".into(), 2181),
            ("peer".into(), 2888),
            ("admin".into(), 8080)
        ]
    );
    // Every pod reads one ConfigMap: its member id comes from its name, it starts blank and
    // waits to be added, and it reads the admin token from the mounted Secret.
    assert_eq!(
        server.args.as_deref().unwrap_or_default()[3..],
        ["--pod-name".to_string(), "$(POD_NAME)".to_string()]
    );
    let properties = build::server_properties(&cfg);
    let parsed = ensemble_server::config::ServerConfig::from_properties(&properties)
        .expect("the server accepts the operator's configuration");
    assert!(parsed.ignored_keys.is_empty(), "{:?}", parsed.ignored_keys);
    assert!(parsed.join_existing);
    // A member drains its clients when told to stop, and Kubernetes lets it.
    let grace = pod
        .termination_grace_period_seconds
        .expect("a grace period");
    assert_eq!(parsed.shutdown_drain_ms, 3_000);
    assert_eq!(grace, 33);
    let token_file = parsed.admin_token_file.expect("admin.tokenFile");
    let token_mount = server
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| token_file.starts_with(&m.mount_path))
        .expect("the token file is on a mounted volume");
    let token_volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == token_mount.name)
        .and_then(|v| v.secret.as_ref())
        .and_then(|s| s.secret_name.as_deref());
    assert_eq!(token_volume, Some("minimal-admin"));
    assert_eq!(
        build::member_address(&cfg, 2),
        "minimal-2.minimal-peers.team-a.svc.cluster.local:2888;minimal-2.minimal-peers.team-a.svc.cluster.local:2181"
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("HTTP probe");
        assert_eq!(get.port, IntOrString::String("admin".into()));
        get.path.clone()
    };
    assert_eq!(
        probe_path(&server.liveness_probe).as_deref(),
        Some("/livez")
    );
    assert_eq!(
        probe_path(&server.readiness_probe).as_deref(),
        Some("/readyz")
    );
    let mounts: Vec<&str> = server
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(
        mounts.contains(&"/var/lib/ensemble"),
        "a writable data volume: {mounts:?}"
    );

    let peers = children.peers_service.spec.as_ref().expect("peers spec");
    assert_eq!(peers.cluster_ip.as_deref(), Some("None"));
    assert_eq!(peers.publish_not_ready_addresses, Some(true));
    let client = children.client_service.spec.as_ref().expect("client spec");
    assert_eq!(client.type_.as_deref(), Some("ClusterIP"));
    // Clients reach only pods the operator has not taken out for leaving; new pods start in.
    let clients_label = |labels: Option<&BTreeMap<String, String>>| {
        labels.and_then(|l| l.get("ensemble.dev/clients")).cloned()
    };
    assert_eq!(
        clients_label(client.selector.as_ref()).as_deref(),
        Some("serve")
    );
    assert_eq!(
        clients_label(peers.selector.as_ref()),
        None,
        "peers find every member"
    );
    let template = sts.template.metadata.as_ref().expect("template metadata");
    assert_eq!(
        clients_label(template.labels.as_ref()).as_deref(),
        Some("serve")
    );
    let pdb = children.pdb.spec.as_ref().expect("pdb spec");
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));

    for meta in [
        &children.statefulset.metadata,
        &children.config_map.metadata,
        &children.peers_service.metadata,
        &children.client_service.metadata,
        &children.pdb.metadata,
    ] {
        let owner = &meta.owner_references.as_ref().expect("owner reference")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CoordinationCluster", Some(true))
        );
        assert_eq!(meta.namespace.as_deref(), Some("team-a"));
    }
    let properties = &children.config_map.data.as_ref().expect("data")["server.properties"];
    assert!(properties.contains("tickTime=2000\n"), "{properties}");
    assert!(properties.contains("4lw.commands.whitelist=ruok,srvr,mntr,conf,isro\n"));
    assert!(properties.contains(
        "peerAddressTemplate=minimal-{ordinal}.minimal-peers.team-a.svc.cluster.local:2888\n"
    ));
}

#[test]
fn production_example_carries_every_override() {
    let cfg = config("deploy/examples/production.yaml");
    let children = build::children(&cfg);
    let sts = children.statefulset.spec.as_ref().expect("spec");
    assert_eq!(sts.replicas, Some(5));
    let claim = &sts
        .volume_claim_templates
        .as_ref()
        .expect("claim templates")[0];
    assert_eq!(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref()),
        Some("fast-ssd")
    );

    let template = &sts.template;
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .expect("labels");
    assert_eq!(labels.get("team").map(String::as_str), Some("platform"));
    assert_eq!(
        labels.get("app.kubernetes.io/instance").map(String::as_str),
        Some("production")
    );
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .expect("annotations");
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );
    assert!(annotations.contains_key("ensemble.dev/config-hash"));

    let pod = pod_spec(&children);
    assert_restricted(pod);
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("ensemble-critical")
    );
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .expect("anti-affinity");
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_some(),
        "the user's affinity replaces the default"
    );
    assert_eq!(
        pod.topology_spread_constraints.as_ref().map(Vec::len),
        Some(1)
    );
    let limits = pod.containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits["memory"].0, "2Gi");

    let client = &children.client_service;
    assert_eq!(
        client.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );
    assert!(client
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("service.beta.kubernetes.io/aws-load-balancer-internal")));
    let pdb = children.pdb.spec.as_ref().expect("pdb spec");
    assert_eq!(
        pdb.max_unavailable,
        Some(IntOrString::Int(2)),
        "five members survive two failures"
    );
    let properties = &children.config_map.data.as_ref().expect("data")["server.properties"];
    assert!(properties.contains("4lw.commands.whitelist=ruok,srvr,mntr\n"));
}

#[test]
fn the_budget_never_allows_losing_quorum() {
    let mut cfg = config("deploy/examples/minimal.yaml");
    for (replicas, allowed) in [
        (1, 0),
        (2, 0),
        (3, 1),
        (4, 1),
        (5, 2),
        (6, 2),
        (7, 3),
        (9, 4),
    ] {
        cfg.replicas = replicas;
        let pdb = build::pod_disruption_budget(&cfg);
        let max = pdb.spec.and_then(|s| s.max_unavailable);
        assert_eq!(max, Some(IntOrString::Int(allowed)), "{replicas} members");
        assert!(
            replicas - allowed > replicas / 2,
            "the members left still form a majority"
        );
    }
}

#[test]
fn scaling_does_not_change_the_pod_template_but_settings_do() {
    let base = config("deploy/examples/minimal.yaml");
    let template = |cfg: &ClusterConfig| build::children(cfg).statefulset.spec.map(|s| s.template);
    let mut scaled = base.clone();
    scaled.replicas = 5;
    assert_eq!(
        template(&base),
        template(&scaled),
        "scaling must never restart a member"
    );
    let mut tuned = base.clone();
    tuned.server.tick_time_ms = 1000;
    assert_ne!(
        template(&base),
        template(&tuned),
        "a settings change gives a new revision"
    );
}

#[test]
fn the_operator_rejects_what_a_schema_less_api_server_would_let_through() {
    let table = [
        ("replicas-zero.yaml", "spec.replicas"),
        ("replicas-ten.yaml", "spec.replicas"),
        ("storage-size.yaml", "spec.storage.size"),
        ("session-timeouts.yaml", "spec.server.minSessionTimeoutMs"),
        ("reserved-label.yaml", "spec.pod.labels"),
        ("name-uppercase.yaml", "metadata.name"),
        ("name-too-long.yaml", "metadata.name"),
    ];
    for (fixture, field) in table {
        let cc = support::cluster_from(&format!("tests/fixtures/invalid/{fixture}"), "team-a");
        let error = validate(&cc, &defaults()).expect_err(fixture).to_string();
        assert!(error.contains(field), "{fixture}: {error}");
    }
}

#[test]
fn the_admin_secret_holds_the_token_it_was_given() {
    let cfg = config("deploy/examples/minimal.yaml");
    let secret = build::admin_secret(&cfg, "abc123");
    assert_eq!(secret.metadata.name.as_deref(), Some("minimal-admin"));
    assert_eq!(
        secret.data.as_ref().map(|d| d["token"].0.clone()),
        Some(b"abc123".to_vec())
    );
}
