//! `execute`: carries out a plan. The only code of the controller that writes.
//!
//! A membership step ([`execute_step`]) is one admin call to a member, or the deletion of a pod
//! (and for a wipe, first its claim). It either happened or it did not; the next reconcile
//! observes which, so a failed step is reported and retried from what is observed then.
//!
//! Every object is written with server-side apply under [`FIELD_MANAGER`], forcing ownership
//! of the fields the operator sets (it is their only rightful writer). Writes happen in plan
//! order and stop at the first failure, which leaves the earlier writes in place: each is a
//! complete, valid object, and the next reconcile plans the rest again.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::names::{self, FIELD_MANAGER};
use super::observe::Observed;
use super::plan::membership::Step;
use super::plan::{self, EventKind, PlannedEvent, Write};
use super::validate::ClusterConfig;
use super::{admin, build};
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
            Write::PodClients { pod, drained_at } => {
                let (label, annotations) = match drained_at {
                    Some(at) => (
                        names::CLIENTS_DRAIN,
                        json!({names::DRAINED_AT_ANNOTATION: at.0.to_string()}),
                    ),
                    // Applying without the annotation drops it: the operator owns it.
                    None => (names::CLIENTS_SERVE, json!({})),
                };
                let patch = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod,
                        "namespace": ns,
                        "labels": {names::LABEL_CLIENTS: label},
                        "annotations": annotations,
                    },
                });
                Api::<Pod>::namespaced(client.clone(), ns)
                    .patch(pod, &apply_params(), &Patch::Apply(patch))
                    .await?;
            }
        }
    }
    Ok(())
}

/// Takes one membership step; `Err` says why it did not happen.
pub async fn execute_step(
    client: &Client,
    cfg: &ClusterConfig,
    observed: &Observed,
    step: Step,
) -> Result<(), String> {
    let pod = plan::step_pod(step, cfg, observed).ok_or("no member leads")?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &cfg.namespace);
    let delete_pod = || async {
        pods.delete(&pod, &DeleteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| format!("deleting pod {pod}: {e}"))
    };
    let id = |ordinal: i32| names::member_id(ordinal);
    // A pair's fallback: a leader of an earlier release has no `/voters`.
    let mut fallback = None;
    let (mut method, mut path, mut body) = match step {
        Step::Restart { .. } => return delete_pod().await,
        Step::Wipe { ordinal } => {
            // The claim goes first: kept by its protection finalizer until the pod is gone, it
            // is then deleted, and the StatefulSet recreates the pod with a fresh one.
            let claim = format!(
                "{}-{}",
                names::DATA_VOLUME,
                names::member_pod(&cfg.name, ordinal)
            );
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), &cfg.namespace)
                .delete(&claim, &DeleteParams::default())
                .await
                .map_err(|e| format!("deleting claim {claim}: {e}"))?;
            return delete_pod().await;
        }
        Step::Bootstrap { .. } => ("POST", "/bootstrap".to_string(), None),
        Step::AddLearner { ordinal } => (
            "POST",
            format!("/members/{}", id(ordinal)),
            Some(json!({"address": build::member_address(cfg, ordinal)})),
        ),
        Step::Promote {
            ordinal,
            with: None,
        } => one_member_call(true, ordinal),
        Step::Remove {
            ordinal,
            with: None,
        } => one_member_call(false, ordinal),
        // Two at once: one change of the voters.
        Step::Promote {
            ordinal,
            with: Some(with),
        } => {
            fallback = Some(one_member_call(true, ordinal));
            (
                "POST",
                "/voters".to_string(),
                Some(json!({"promote": [id(ordinal), id(with)]})),
            )
        }
        Step::Remove {
            ordinal,
            with: Some(with),
        } => {
            fallback = Some(one_member_call(false, ordinal));
            (
                "POST",
                "/voters".to_string(),
                Some(json!({"remove": [id(ordinal), id(with)]})),
            )
        }
        Step::TransferLeadership { to, .. } => ("POST", format!("/leader/{}", id(to)), None),
    };
    let token = observed
        .admin_token
        .as_ref()
        .ok_or("the admin Secret has no token yet")?;
    let ip = observed
        .pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
        .and_then(|p| p.status.as_ref()?.pod_ip.clone())
        .ok_or_else(|| format!("pod {pod} has no IP"))?;
    let (mut code, mut answer) =
        admin::call(&ip, method, &path, Some(token), body.as_ref()).await?;
    if let Some(single) = fallback.filter(|_| code == 404 && answer.is_empty()) {
        // A 404 without a reason is an unknown route (an unknown member's names it): the
        // first of the two alone; the next reconcile takes the other.
        (method, path, body) = single;
        (code, answer) = admin::call(&ip, method, &path, Some(token), body.as_ref()).await?;
    }
    if code == 200 {
        Ok(())
    } else {
        Err(format!(
            "{method} {path} on {pod} answered {code}: {}",
            String::from_utf8_lossy(&answer).trim()
        ))
    }
}

/// The admin call that promotes (or removes) one member.
fn one_member_call(promote: bool, ordinal: i32) -> (&'static str, String, Option<Value>) {
    let id = names::member_id(ordinal);
    if promote {
        ("POST", format!("/members/{id}/promote"), None)
    } else {
        ("DELETE", format!("/members/{id}"), None)
    }
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
