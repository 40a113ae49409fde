//! The `CoordinationCluster` controller.
//!
//! One reconcile is a pipeline of modules, each with its own contract:
//! [`validate`] (raw spec → checked config) → [`observe`] (reads only) → [`plan`] (pure: what to
//! write, the status, the events) → [`execute`] (the only writer) → status. This module wires
//! them to kube-runtime and decides what happens after an error.

pub mod admin;
pub mod build;
pub mod execute;
pub mod names;
pub mod observe;
pub mod plan;
pub mod quantity;
pub mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::api::CoordinationCluster;
use crate::telemetry::{ErrorClass, Metrics};
use plan::Plan;
use validate::Defaults;

#[derive(Debug, Error)]
pub enum Error {
    #[error("reading the objects of {cluster} failed: {source}")]
    Observe {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the children of {cluster} failed: {source}")]
    Apply {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of {cluster} failed: {source}")]
    Status {
        cluster: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Permanent errors wait for the spec to change; transient ones are retried with backoff.
    /// The API server refusing an object as invalid (400, 422) is permanent: the same spec would
    /// build the same object again.
    pub fn class(&self) -> ErrorClass {
        let source = match self {
            Error::Observe { source, .. }
            | Error::Apply { source, .. }
            | Error::Status { source, .. } => source,
        };
        match source {
            kube::Error::Api(status) if status.code == 400 || status.code == 422 => {
                ErrorClass::Permanent
            }
            _ => ErrorClass::Transient,
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub defaults: Defaults,
    pub metrics: Arc<Metrics>,
    /// Consecutive transient failures per cluster, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<CoordinationCluster>, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        defaults: Defaults,
        metrics: Arc<Metrics>,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: names::FIELD_MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            defaults,
            metrics,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<CoordinationCluster>, u32>> {
        // A panic elsewhere while holding this lock leaves a plain counter map; keep using it.
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub async fn reconcile(cc: Arc<CoordinationCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&cc, &ctx).await;
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.as_ref().err().map(Error::class));
    if result.is_ok() {
        ctx.failures().remove(&ObjectRef::from_obj(&*cc));
    }
    result
}

async fn reconcile_inner(cc: &CoordinationCluster, ctx: &Context) -> Result<Action, Error> {
    let cluster = cc.name_any();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let previous = cc.status.as_ref();
    let config = match validate::validate(cc, &ctx.defaults) {
        Ok(config) => config,
        Err(invalid) => {
            tracing::warn!(%cluster, error = %invalid, "spec cannot be acted on");
            let plan = plan::plan_invalid(&invalid, cc.metadata.generation, previous, &now);
            finish(cc, ctx, &plan).await?;
            return Ok(Action::await_change());
        }
    };
    let observed = observe::observe(&ctx.client, &config.namespace, &cluster)
        .await
        .map_err(|source| Error::Observe {
            cluster: cluster.clone(),
            source,
        })?;
    let plan = plan::plan(&config, &observed, previous, &now);
    if let Err(source) = execute::execute_writes(&ctx.client, &config, &plan.writes).await {
        let error = Error::Apply { cluster, source };
        if error.class() == ErrorClass::Permanent {
            report_rejection(cc, ctx, &error, &now).await;
        }
        return Err(error);
    }
    let mut plan = plan;
    if let Some(step) = plan.step {
        let event = plan::step_event(step, &config);
        tracing::info!(%cluster, step = %event.note, "membership step");
        match execute::execute_step(&ctx.client, &config, &observed, step).await {
            Ok(()) => plan.events.push(event),
            Err(reason) => {
                tracing::warn!(%cluster, step = %event.note, %reason, "membership step failed");
                plan.events
                    .push(plan::step_failed_event(step, &config, &reason));
            }
        }
    }
    finish(cc, ctx, &plan).await?;
    Ok(Action::requeue(plan.requeue_after))
}

/// Records the plan's events and writes its status, if it changed.
async fn finish(cc: &CoordinationCluster, ctx: &Context, plan: &Plan) -> Result<(), Error> {
    execute::record_events(&ctx.recorder, cc, &plan.events).await;
    if let Some(status) = &plan.status {
        execute::write_status(&ctx.client, cc, status)
            .await
            .map_err(|source| Error::Status {
                cluster: cc.name_any(),
                source,
            })?;
    }
    Ok(())
}

/// The API server refused a child object built from this spec: say so where the user looks.
async fn report_rejection(cc: &CoordinationCluster, ctx: &Context, error: &Error, now: &Time) {
    let plan = plan::plan_rejected(
        &error.to_string(),
        cc.metadata.generation,
        cc.status.as_ref(),
        now,
    );
    if let Err(status_error) = finish(cc, ctx, &plan).await {
        tracing::warn!(error = %status_error, "could not report a rejected child object");
    }
}

/// After a failed reconcile: permanent errors wait for a change of the resource, transient ones
/// retry after 1 s, 2 s, 4 s … up to 5 minutes.
pub fn error_policy(cc: Arc<CoordinationCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    match error.class() {
        ErrorClass::Permanent => {
            tracing::warn!(cluster = %cc.name_any(), %error, "permanent error; waiting for the spec to change");
            Action::await_change()
        }
        ErrorClass::Transient => {
            let mut failures = ctx.failures();
            let count = failures.entry(ObjectRef::from_obj(&*cc)).or_insert(0);
            *count = count.saturating_add(1);
            let delay = backoff(*count);
            tracing::warn!(cluster = %cc.name_any(), %error, retry_in = ?delay, "transient error");
            Action::requeue(delay)
        }
    }
}

/// Delay before retry number `attempt` (1-based).
pub fn backoff(attempt: u32) -> Duration {
    let seconds = 1u64 << attempt.saturating_sub(1).min(9);
    Duration::from_secs(seconds.min(300))
}

/// Runs the controller for one namespace (or all, with `None`) until `shutdown` fires.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let children = watcher::Config::default().labels(&format!(
        "{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGED_BY
    ));
    let controller = Controller::new(
        api::<CoordinationCluster>(&client, &namespace),
        watcher::Config::default(),
    )
    .owns(api::<StatefulSet>(&client, &namespace), children.clone())
    .owns(api::<Service>(&client, &namespace), children.clone())
    .owns(
        api::<PodDisruptionBudget>(&client, &namespace),
        children.clone(),
    )
    .owns(api::<ConfigMap>(&client, &namespace), children.clone())
    .owns(api::<Secret>(&client, &namespace), children);
    ctx.metrics.watch_clusters(controller.store());
    controller
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile did not finish");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let delays: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }
}
