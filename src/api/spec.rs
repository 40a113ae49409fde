//! `spec`: what the user asks for. Defaults live in the schema so `kubectl get -o yaml` shows
//! the values the operator acts on.

// The derive's repeated `printcolumn(...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CoordinationClusterStatus;

/// A ZooKeeper-compatible coordination ensemble run by the ensemble operator.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ensemble.dev",
    version = "v1alpha1",
    kind = "CoordinationCluster",
    plural = "coordinationclusters",
    shortname = "cc",
    category = "ensemble",
    namespaced,
    status = "CoordinationClusterStatus",
    derive = "PartialEq",
    doc = "A ZooKeeper-compatible coordination ensemble managed by the ensemble operator.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired members"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Members ready to serve"
    ),
    printcolumn(
        name = "Leader",
        type_ = "string",
        json_path = ".status.leader",
        description = "Pod of the current leader"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CoordinationClusterSpec {
    /// Number of members. Odd counts are recommended: 2n+1 members survive n failures, and an
    /// even count tolerates no more failures than the odd count below it.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,

    /// Container image of the members. Defaults to the operator's own image, which carries the
    /// same `ensemble` binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// CPU and memory for each member's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// The persistent volume of each member.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Settings of the coordination server.
    #[serde(default)]
    pub server: ServerSettings,

    /// Additions to the member pods.
    #[serde(default)]
    pub pod: PodOverrides,

    /// The Service clients connect to.
    #[serde(default)]
    pub client_service: ClientServiceSpec,

    /// Stop all changes to the ensemble: nothing is created, scaled or restarted while true.
    #[serde(default)]
    pub paused: bool,
}

fn default_replicas() -> i32 {
    3
}

/// Each member's data volume (`PersistentVolumeClaim` template `data`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
        "message": "storage.storageClassName cannot be changed after creation: existing volumes would keep the old class",
        "fieldPath": ".storageClassName",
        "reason": "FieldValueForbidden"
    },
    {
        "rule": "!isQuantity(self.size) || !isQuantity(oldSelf.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
        "message": "storage.size cannot decrease: a volume can grow but never shrink",
        "fieldPath": ".size",
        "reason": "FieldValueForbidden"
    }
]))]
pub struct StorageSpec {
    /// Requested size of each member's volume, a quantity such as `10Gi`.
    #[serde(default = "default_storage_size")]
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))", "message": "storage.size must be a positive quantity such as 10Gi"}
    ]))]
    pub size: String,

    /// StorageClass of the volumes; the cluster's default class when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub storage_class_name: Option<String>,

    /// What happens to a member's volume when the member is removed or the cluster deleted.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
}

fn default_storage_size() -> String {
    "1Gi".into()
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
            reclaim_policy: ReclaimPolicy::default(),
        }
    }
}

/// `Retain` keeps a removed member's volume (its data survives a mistaken delete); `Delete`
/// removes it with the member.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReclaimPolicy {
    #[default]
    Retain,
    Delete,
}

/// Settings of the coordination server that users tune. Names and defaults follow ZooKeeper's
/// `zoo.cfg` where one exists.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.minSessionTimeoutMs <= self.maxSessionTimeoutMs",
        "message": "server.minSessionTimeoutMs must not exceed server.maxSessionTimeoutMs",
        "fieldPath": ".minSessionTimeoutMs"
    },
    {
        "rule": "self.minSessionTimeoutMs >= 2 * self.tickTimeMs",
        "message": "server.minSessionTimeoutMs must be at least twice server.tickTimeMs: sessions are checked once per tick",
        "fieldPath": ".minSessionTimeoutMs"
    }
]))]
pub struct ServerSettings {
    /// The basic time unit in milliseconds; session expiry is checked once per tick.
    #[serde(default = "default_tick_time_ms")]
    #[schemars(range(min = 100, max = 60000))]
    pub tick_time_ms: i32,

    /// Smallest session timeout granted to a client; shorter requests are raised to it.
    #[serde(default = "default_min_session_timeout_ms")]
    #[schemars(range(min = 200, max = 3600000))]
    pub min_session_timeout_ms: i32,

    /// Largest session timeout granted to a client; longer requests are lowered to it.
    #[serde(default = "default_max_session_timeout_ms")]
    #[schemars(range(min = 200, max = 3600000))]
    pub max_session_timeout_ms: i32,

    /// Take a snapshot of the data tree and compact the log after this many transactions.
    #[serde(default = "default_snapshot_every_txns")]
    #[schemars(range(min = 1000, max = 100000000))]
    pub snapshot_every_txns: i32,

    /// Snapshots kept on disk; older ones and the log before them are removed.
    #[serde(default = "default_retained_snapshots")]
    #[schemars(range(min = 1, max = 100))]
    pub retained_snapshots: i32,

    /// Client connections one member accepts from one client IP address at once (ZooKeeper's
    /// `maxClientCnxns`); further connections from that address are refused.
    #[serde(default = "default_max_client_connections")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_client_connections: i32,

    /// Largest request frame in bytes (ZooKeeper's `jute.maxbuffer`); larger frames close the
    /// connection that sent them.
    #[serde(default = "default_max_frame_bytes")]
    #[schemars(range(min = 4096, max = 104857600))]
    pub max_frame_bytes: i32,

    /// Four-letter words answered on the client port (ZooKeeper's `4lw.commands.whitelist`).
    #[serde(default = "default_four_letter_words")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub four_letter_words: Vec<FourLetterWord>,

    /// Allow TTL nodes (ZooKeeper's `extendedTypesEnabled`).
    #[serde(default)]
    pub ttl_nodes_enabled: bool,

    /// Seconds a member whose pod is deleted keeps serving its clients while refusing new
    /// ones, before it hands leadership over and closes them: the time the client Service
    /// needs to stop routing to the pod on every node (about a second with kube-proxy's
    /// defaults; more behind a cloud load balancer). 0 stops at once.
    #[serde(default = "default_shutdown_drain_seconds")]
    #[schemars(range(min = 0, max = 300))]
    pub shutdown_drain_seconds: i32,
}

fn default_tick_time_ms() -> i32 {
    2000
}
fn default_min_session_timeout_ms() -> i32 {
    4000
}
fn default_max_session_timeout_ms() -> i32 {
    40000
}
fn default_snapshot_every_txns() -> i32 {
    100_000
}
fn default_retained_snapshots() -> i32 {
    3
}
fn default_max_client_connections() -> i32 {
    1000
}
fn default_max_frame_bytes() -> i32 {
    1_048_576
}
fn default_shutdown_drain_seconds() -> i32 {
    3
}
fn default_four_letter_words() -> Vec<FourLetterWord> {
    use FourLetterWord::*;
    vec![Ruok, Srvr, Mntr, Conf, Isro]
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            tick_time_ms: default_tick_time_ms(),
            min_session_timeout_ms: default_min_session_timeout_ms(),
            max_session_timeout_ms: default_max_session_timeout_ms(),
            snapshot_every_txns: default_snapshot_every_txns(),
            retained_snapshots: default_retained_snapshots(),
            max_client_connections: default_max_client_connections(),
            max_frame_bytes: default_max_frame_bytes(),
            four_letter_words: default_four_letter_words(),
            ttl_nodes_enabled: false,
            shutdown_drain_seconds: default_shutdown_drain_seconds(),
        }
    }
}

/// A ZooKeeper four-letter word.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FourLetterWord {
    Ruok,
    Srvr,
    Stat,
    Mntr,
    Conf,
    Envi,
    Isro,
    Wchs,
    Cons,
    Dirs,
    Dump,
    Wchc,
    Wchp,
    Crst,
    Srst,
    Hash,
}

impl FourLetterWord {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ruok => "ruok",
            Self::Srvr => "srvr",
            Self::Stat => "stat",
            Self::Mntr => "mntr",
            Self::Conf => "conf",
            Self::Envi => "envi",
            Self::Isro => "isro",
            Self::Wchs => "wchs",
            Self::Cons => "cons",
            Self::Dirs => "dirs",
            Self::Dump => "dump",
            Self::Wchc => "wchc",
            Self::Wchp => "wchp",
            Self::Crst => "crst",
            Self::Srst => "srst",
            Self::Hash => "hash",
        }
    }
}

/// Additions to every member pod. The operator's own labels always win, so a selector can never
/// be broken from here.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Extra pod labels. The `app.kubernetes.io/` labels the operator selects members by are
    /// reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "!self.exists(k, k in ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/component', 'app.kubernetes.io/managed-by'])",
            "message": "pod.labels may not set app.kubernetes.io/name, instance, component or managed-by: the operator selects its members by them"
        }
    ]))]
    pub labels: BTreeMap<String, String>,

    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub priority_class_name: Option<String>,
}

/// The client Service `<name>`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientServiceSpec {
    #[serde(default, rename = "type")]
    pub type_: ClientServiceType,

    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ClientServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ClientServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}
