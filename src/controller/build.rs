//! `build`: one pure function per child object of a `CoordinationCluster`.
//!
//! Input is the checked [`ClusterConfig`]; output is the typed object the operator applies with
//! server-side apply. No I/O, no clock, no randomness (the admin token is passed in), so the same
//! config always builds the same objects and the builders are tested with fixtures alone.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, Secret,
    SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use sha2::{Digest, Sha256};

use super::names::{self, *};
use super::validate::ClusterConfig;
use crate::api::ReclaimPolicy;

/// Every child object of one cluster, in the order they are applied: configuration first,
/// StatefulSet last, so a pod never starts without its config, Secret or Services.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub config_map: ConfigMap,
    pub peers_service: Service,
    pub client_service: Service,
    pub pdb: PodDisruptionBudget,
    pub statefulset: StatefulSet,
}

pub fn children(cfg: &ClusterConfig) -> Children {
    let config_map = config_map(cfg);
    Children {
        statefulset: statefulset(cfg, &config_hash(&config_map)),
        config_map,
        peers_service: peers_service(cfg),
        client_service: client_service(cfg),
        pdb: pod_disruption_budget(cfg),
    }
}

fn metadata(cfg: &ClusterConfig, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(cfg.namespace.clone()),
        labels: Some(object_labels(&cfg.name)),
        owner_references: Some(vec![cfg.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// How long Kubernetes waits after SIGTERM, beyond `server.shutdownDrainSeconds`, before it
/// kills a member: a leadership hand-over (at most a second) and closing, with room to spare.
const TERMINATION_GRACE_AFTER_DRAIN_SECONDS: i64 = 30;

/// The server configuration, in `zoo.cfg`'s `key=value` form with ZooKeeper's key names where
/// one exists. Membership is deliberately absent: it lives in the ensemble's log, so scaling
/// never changes this file and never restarts a member.
pub fn server_properties(cfg: &ClusterConfig) -> String {
    let s = &cfg.server;
    let words: Vec<&str> = s.four_letter_words.iter().map(|w| w.as_str()).collect();
    let lines = [
        "# Written by the ensemble operator; edits are overwritten.".to_string(),
        format!("clientPort={CLIENT_PORT}"),
        format!("peerPort={PEER_PORT}"),
        format!("adminPort={ADMIN_PORT}"),
        format!("dataDir={DATA_DIR}"),
        format!("tickTime={}", s.tick_time_ms),
        format!("minSessionTimeout={}", s.min_session_timeout_ms),
        format!("maxSessionTimeout={}", s.max_session_timeout_ms),
        format!("snapCount={}", s.snapshot_every_txns),
        format!("autopurge.snapRetainCount={}", s.retained_snapshots),
        format!("maxClientCnxns={}", s.max_client_connections),
        format!("jute.maxbuffer={}", s.max_frame_bytes),
        format!("4lw.commands.whitelist={}", words.join(",")),
        format!("extendedTypesEnabled={}", s.ttl_nodes_enabled),
        format!(
            "peerAddressTemplate={}:{PEER_PORT}",
            member_host(cfg, "{ordinal}")
        ),
        // Every pod starts blank and waits: the operator founds the ensemble on the first one
        // and adds the others one at a time, so no pod ever founds an ensemble of its own.
        "joinExisting=true".to_string(),
        format!("admin.tokenFile={ADMIN_TOKEN_DIR}/{ADMIN_TOKEN_KEY}"),
        // The clients that move away when a pod is deleted are routed only to members that
        // stay once its endpoint left the Service everywhere; before, they were sometimes
        // routed back to the pod that had just exited and waited for its address to time out.
        format!(
            "shutdownDrainMs={}",
            i64::from(s.shutdown_drain_seconds.max(0)) * 1000
        ),
    ];
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The stable DNS name of the member with `ordinal` (a number, or a template placeholder).
fn member_host(cfg: &ClusterConfig, ordinal: &str) -> String {
    format!(
        "{}-{ordinal}.{}.{}.svc.{}",
        cfg.name,
        names::peers_service(&cfg.name),
        cfg.namespace,
        cfg.cluster_domain
    )
}

/// The address the admin API's add-member call takes: `host:peerPort;host:clientPort`, the same
/// host the member advertises from its `peerAddressTemplate`.
pub fn member_address(cfg: &ClusterConfig, ordinal: i32) -> String {
    let host = member_host(cfg, &ordinal.to_string());
    format!("{host}:{PEER_PORT};{host}:{CLIENT_PORT}")
}

pub fn config_map(cfg: &ClusterConfig) -> ConfigMap {
    ConfigMap {
        metadata: metadata(cfg, names::config_map(&cfg.name)),
        data: Some(BTreeMap::from([(
            CONFIG_FILE.to_string(),
            server_properties(cfg),
        )])),
        ..ConfigMap::default()
    }
}

/// A short, stable digest of the configuration the members read.
pub fn config_hash(config_map: &ConfigMap) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in config_map.data.iter().flatten() {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Secret with the bearer token the operator presents to the members' admin API.
pub fn admin_secret(cfg: &ClusterConfig, token: &str) -> Secret {
    Secret {
        metadata: metadata(cfg, names::admin_secret(&cfg.name)),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            ADMIN_TOKEN_KEY.to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// Headless Service that gives each member its stable DNS name. Not-ready members are published
/// too: a member must find its peers before it can become ready.
pub fn peers_service(cfg: &ClusterConfig) -> Service {
    Service {
        metadata: metadata(cfg, names::peers_service(&cfg.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&cfg.name)),
            ports: Some(vec![
                service_port(CLIENT_PORT_NAME, CLIENT_PORT),
                service_port(PEER_PORT_NAME, PEER_PORT),
                service_port(ADMIN_PORT_NAME, ADMIN_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service clients connect to; only ready members that the spec still wants receive
/// connections (see [`names::LABEL_CLIENTS`]).
pub fn client_service(cfg: &ClusterConfig) -> Service {
    let mut metadata = metadata(cfg, cfg.name.clone());
    if !cfg.client_service.annotations.is_empty() {
        metadata.annotations = Some(cfg.client_service.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(cfg.client_service.type_.as_str().into()),
            selector: Some(client_selector_labels(&cfg.name)),
            ports: Some(vec![service_port(CLIENT_PORT_NAME, CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Allows a voluntary disruption (a node drain, an eviction) only while the members left
/// standing still form a quorum: at most `replicas - quorum(replicas)` may be down at once.
/// A single member therefore allows none. Unhealthy members may always be evicted, since they
/// count against availability already and a stuck member must never block a drain. The plan
/// replaces `replicas` here by the voters the leader reports, while they differ from the spec.
pub fn pod_disruption_budget(cfg: &ClusterConfig) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(cfg, cfg.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(cfg.replicas - quorum(cfg.replicas))),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&cfg.name)),
                ..LabelSelector::default()
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(ADMIN_PORT_NAME.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn server_container(cfg: &ClusterConfig) -> Container {
    Container {
        name: SERVER_CONTAINER.into(),
        image: Some(cfg.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        // The member id is the pod's ordinal + 1, read from its name.
        args: Some(vec![
            "server".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/{CONFIG_FILE}"),
            "--pod-name".into(),
            "$(POD_NAME)".into(),
        ]),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ]),
        ports: Some(vec![
            container_port(CLIENT_PORT_NAME, CLIENT_PORT),
            container_port(PEER_PORT_NAME, PEER_PORT),
            container_port(ADMIN_PORT_NAME, ADMIN_PORT),
        ]),
        // Liveness only asks "is the process serving"; a member that is catching up is alive
        // but not ready, and restarting it would only make it start over.
        liveness_probe: Some(probe("/livez", 10, 6)),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        resources: cfg.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: DATA_VOLUME.into(),
                mount_path: DATA_DIR.into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "config".into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: ADMIN_TOKEN_VOLUME.into(),
                mount_path: ADMIN_TOKEN_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

/// Spread members over nodes when the user gave no affinity of their own: losing one node then
/// costs one member, not a quorum. Preferred, not required, so a one-node cluster still works.
fn default_affinity(cfg: &ClusterConfig) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".into(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(&cfg.name)),
                            ..LabelSelector::default()
                        }),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn non_empty_map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

fn pod_template(cfg: &ClusterConfig, config_hash: &str) -> PodTemplateSpec {
    let pod = &cfg.pod;
    let mut labels = pod.labels.clone();
    labels.extend(object_labels(&cfg.name));
    labels.insert(names::LABEL_CLIENTS.into(), names::CLIENTS_SERVE.into());
    let mut annotations = pod.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![server_container(cfg)],
            // Members never call the Kubernetes API.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(
                i64::from(cfg.server.shutdown_drain_seconds.max(0))
                    + TERMINATION_GRACE_AFTER_DRAIN_SECONDS,
            ),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS_USER),
                run_as_group: Some(RUN_AS_USER),
                fs_group: Some(RUN_AS_USER),
                fs_group_change_policy: Some("OnRootMismatch".into()),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            volumes: Some(vec![
                Volume {
                    name: "config".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: names::config_map(&cfg.name),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: ADMIN_TOKEN_VOLUME.into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(names::admin_secret(&cfg.name)),
                        // Readable by the member's group (fsGroup), no one else.
                        default_mode: Some(0o440),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                },
            ]),
            affinity: Some(
                pod.affinity
                    .clone()
                    .unwrap_or_else(|| default_affinity(cfg)),
            ),
            tolerations: non_empty(pod.tolerations.clone()),
            node_selector: non_empty_map(pod.node_selector.clone()),
            topology_spread_constraints: non_empty(pod.topology_spread_constraints.clone()),
            priority_class_name: pod.priority_class_name.clone(),
            ..PodSpec::default()
        }),
    }
}

fn data_claim(cfg: &ClusterConfig) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(object_labels(&cfg.name)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: cfg.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(cfg.storage_size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The members. `OnDelete`: the operator, not the StatefulSet controller, chooses which member
/// restarts when, so a rollout can never take more than one member at a time. Pods start in
/// parallel because the operator, not pod ordering, paces membership changes.
pub fn statefulset(cfg: &ClusterConfig, config_hash: &str) -> StatefulSet {
    let reclaim = match cfg.reclaim_policy {
        ReclaimPolicy::Retain => "Retain",
        ReclaimPolicy::Delete => "Delete",
    };
    StatefulSet {
        metadata: metadata(cfg, cfg.name.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(cfg.replicas),
            service_name: Some(names::peers_service(&cfg.name)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&cfg.name)),
                ..LabelSelector::default()
            },
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(reclaim.into()),
                    when_scaled: Some(reclaim.into()),
                },
            ),
            template: pod_template(cfg, config_hash),
            volume_claim_templates: Some(vec![data_claim(cfg)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}
