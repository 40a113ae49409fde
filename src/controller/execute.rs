//! `execute`: carries out a plan. The only code of the controller that writes.
//!
//! Every object is written with server-side apply under [`FIELD_MANAGER`], forcing ownership
//! of the fields the operator sets (it is their only rightful writer). Writes happen in plan
//! order and stop at the first failure, which leaves the earlier writes in place: each is a
//! complete, valid object, and the next reconcile plans the rest again.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::build;
use super::names::FIELD_MANAGER;
use super::plan::{EventKind, PlannedEvent, Write};
use super::validate::ClusterConfig;
use crate::api::{CoordinationCluster, CoordinationClusterStatus};

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<(), kube::Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(object).map_err(kube::Error::SerdeError)?;
    // Server-side apply needs the type in the body; typed k8s-openapi objects leave it out.
    body["apiVersion"] = json!(K::api_version(&Default::default()));
    body["kind"] = json!(K::kind(&Default::default()));
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(&name, &apply_params(), &Patch::Apply(body))
        .await?;
    Ok(())
}

/// Performs the writes in order.
pub async fn execute_writes(
    client: &Client,
    cfg: &ClusterConfig,
    writes: &[Write],
) -> Result<(), kube::Error> {
    let ns = cfg.namespace.as_str();
    for write in writes {
        tracing::info!(cluster = %cfg.name, namespace = ns, write = %write.describe(&cfg.name), "applying");
        match write {
            Write::ConfigMap(o) => apply::<ConfigMap>(client, ns, o).await?,
            Write::CreateAdminSecret => {
                apply::<Secret>(client, ns, &build::admin_secret(cfg, &new_token())).await?
            }
            Write::Service(o) => apply::<Service>(client, ns, o).await?,
            Write::Pdb(o) => apply::<PodDisruptionBudget>(client, ns, o).await?,
            Write::StatefulSet(o) => apply::<StatefulSet>(client, ns, o).await?,
            Write::ResizeClaim { name, size } => {
                let patch = json!({
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"resources": {"requests": {"storage": size}}},
                });
                Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                    .patch(name, &apply_params(), &Patch::Apply(patch))
                    .await?;
            }
        }
    }
    Ok(())
}

/// 32 random bytes, hex-encoded: the bearer token of the members' admin API.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the status subresource with server-side apply.
pub async fn write_status(
    client: &Client,
    cc: &CoordinationCluster,
    status: &CoordinationClusterStatus,
) -> Result<(), kube::Error> {
    let name = cc.meta().name.clone().unwrap_or_default();
    let namespace = cc.meta().namespace.clone().unwrap_or_default();
    let body = json!({
        "apiVersion": CoordinationCluster::api_version(&()),
        "kind": CoordinationCluster::kind(&()),
        "status": status,
    });
    Api::<CoordinationCluster>::namespaced(client.clone(), &namespace)
        .patch_status(&name, &apply_params(), &Patch::Apply(body))
        .await?;
    Ok(())
}

/// Records the planned events. A failed event is logged, never fatal: events are for humans and
/// must not hold up the ensemble.
pub async fn record_events(recorder: &Recorder, cc: &CoordinationCluster, events: &[PlannedEvent]) {
    let reference = cc.object_ref(&());
    for event in events {
        let result = recorder
            .publish(
                &Event {
                    type_: match event.kind {
                        EventKind::Normal => EventType::Normal,
                        EventKind::Warning => EventType::Warning,
                    },
                    reason: event.reason.into(),
                    note: Some(event.note.clone()),
                    action: event.action.into(),
                    secondary: event.related.clone(),
                },
                &reference,
            )
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, reason = event.reason, cluster = %cc.name_any(), "could not record event");
        }
    }
}
