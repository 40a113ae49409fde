//! `validate`: turns a raw `CoordinationCluster` into a checked [`ClusterConfig`], once.
//!
//! Nothing after this step reads the raw spec. The schema already rejects most bad input at
//! `kubectl apply`; this step repeats the checks that matter for building children, so a cluster
//! whose CRD lost its validation (or an API server without CEL) still gets a clear condition
//! instead of a half-built ensemble. Pure: no I/O.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use thiserror::Error;

use super::names;
use super::quantity::parse_quantity;
use crate::api::{
    ClientServiceSpec, CoordinationCluster, PodOverrides, ReclaimPolicy, ServerSettings,
};

/// Operator-wide settings that fill what a spec leaves out.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// Member image when `spec.image` is unset: the operator's own image.
    pub server_image: String,
    /// DNS domain of the cluster, for peer and client addresses.
    pub cluster_domain: String,
}

/// A spec the operator cannot act on; permanent until the spec changes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvalidSpec {
    #[error("metadata.{0} is missing; the API server always sets it, so this object did not come from one")]
    MissingMetadata(&'static str),
    #[error("metadata.name {0:?} must be a DNS-1035 label of at most 45 characters: it names the StatefulSet, the Services and the pods")]
    BadName(String),
    #[error("spec.replicas is {0}; it must be between 1 and 9")]
    Replicas(i32),
    #[error("spec.storage.size {0:?} is not a positive quantity such as 10Gi")]
    StorageSize(String),
    #[error(
        "spec.server.minSessionTimeoutMs ({min}) exceeds spec.server.maxSessionTimeoutMs ({max})"
    )]
    SessionTimeouts { min: i32, max: i32 },
    #[error("spec.pod.labels sets {0}, which the operator uses to select its members")]
    ReservedLabel(String),
}

/// Everything the builders need, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    pub name: String,
    pub namespace: String,
    pub generation: Option<i64>,
    pub owner: OwnerReference,
    pub replicas: i32,
    pub image: String,
    pub resources: Option<ResourceRequirements>,
    pub storage_size: String,
    pub storage_class_name: Option<String>,
    pub reclaim_policy: ReclaimPolicy,
    pub server: ServerSettings,
    pub pod: PodOverrides,
    pub client_service: ClientServiceSpec,
    pub paused: bool,
    pub cluster_domain: String,
}

impl ClusterConfig {
    /// `<name>.<namespace>.svc.<domain>:2181`, what clients connect to.
    pub fn client_endpoint(&self) -> String {
        format!(
            "{}.{}.svc.{}:{}",
            self.name,
            self.namespace,
            self.cluster_domain,
            names::CLIENT_PORT
        )
    }
}

pub fn validate(
    cc: &CoordinationCluster,
    defaults: &Defaults,
) -> Result<ClusterConfig, InvalidSpec> {
    let meta = cc.meta();
    let name = meta
        .name
        .clone()
        .ok_or(InvalidSpec::MissingMetadata("name"))?;
    let namespace = meta
        .namespace
        .clone()
        .ok_or(InvalidSpec::MissingMetadata("namespace"))?;
    let owner = cc
        .controller_owner_ref(&())
        .ok_or(InvalidSpec::MissingMetadata("uid"))?;
    if !is_dns1035_label(&name) || name.len() > crate::api::MAX_NAME_LENGTH {
        return Err(InvalidSpec::BadName(name));
    }
    let spec = &cc.spec;
    if !(1..=9).contains(&spec.replicas) {
        return Err(InvalidSpec::Replicas(spec.replicas));
    }
    if !parse_quantity(&spec.storage.size).is_some_and(|q| q > 0.0) {
        return Err(InvalidSpec::StorageSize(spec.storage.size.clone()));
    }
    let server = &spec.server;
    if server.min_session_timeout_ms > server.max_session_timeout_ms {
        return Err(InvalidSpec::SessionTimeouts {
            min: server.min_session_timeout_ms,
            max: server.max_session_timeout_ms,
        });
    }
    let reserved = [
        names::LABEL_NAME,
        names::LABEL_INSTANCE,
        names::LABEL_COMPONENT,
        names::LABEL_MANAGED_BY,
    ];
    if let Some(label) = spec
        .pod
        .labels
        .keys()
        .find(|k| reserved.contains(&k.as_str()))
    {
        return Err(InvalidSpec::ReservedLabel(label.clone()));
    }
    Ok(ClusterConfig {
        name,
        namespace,
        generation: meta.generation,
        owner,
        replicas: spec.replicas,
        image: spec
            .image
            .clone()
            .unwrap_or_else(|| defaults.server_image.clone()),
        resources: spec.resources.clone(),
        storage_size: spec.storage.size.clone(),
        storage_class_name: spec.storage.storage_class_name.clone(),
        reclaim_policy: spec.storage.reclaim_policy,
        server: server.clone(),
        pod: spec.pod.clone(),
        client_service: spec.client_service.clone(),
        paused: spec.paused,
        cluster_domain: defaults.cluster_domain.clone(),
    })
}

fn is_dns1035_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}
