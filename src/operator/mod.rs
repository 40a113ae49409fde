//! The `ensemble operator` process: wiring only.
//!
//! Starts the HTTP endpoints (`/metrics`, `/healthz`, `/readyz`), waits for the CRD instead of
//! crashing when it is missing, takes the leader Lease when leader election is on, then runs one
//! controller per watched namespace (or one for all) until SIGTERM, and hands the Lease over
//! on the way out.

mod http;
pub mod lease;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, CustomResourceExt};
use tokio_util::sync::CancellationToken;

use crate::api::CoordinationCluster;
use crate::controller::{self, validate::Defaults, Context};
use crate::telemetry::Metrics;
use lease::{LeaseLock, RENEW_EVERY};

#[derive(Clone, Debug, clap::Args)]
pub struct OperatorOptions {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "ENSEMBLE_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,

    /// Namespaces to watch, comma-separated; all namespaces when empty.
    #[arg(
        long,
        env = "ENSEMBLE_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub namespaces: Vec<String>,

    /// Run only while holding the leader Lease, so several replicas can stand by.
    #[arg(long, env = "ENSEMBLE_LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,

    /// Name of the leader Lease.
    #[arg(long, env = "ENSEMBLE_LEASE_NAME", default_value = "ensemble-operator")]
    pub lease_name: String,

    /// Namespace of the leader Lease: the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// Identity in the leader Lease: the operator's pod name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Member image for clusters that do not set spec.image.
    #[arg(long, env = "ENSEMBLE_SERVER_IMAGE", default_value = concat!("ensemble:", env!("CARGO_PKG_VERSION")))]
    pub server_image: String,

    /// DNS domain of the Kubernetes cluster.
    #[arg(long, env = "ENSEMBLE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
}

pub async fn run(options: OperatorOptions) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("no Kubernetes client configuration (in-cluster service account or KUBECONFIG)")?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let server = http::serve(
        options.listen_addr,
        metrics.clone(),
        ready.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", options.listen_addr))?;

    if !wait_for_crd(&client, &shutdown).await? {
        return Ok(());
    }
    ready.store(true, Ordering::SeqCst);

    let identity = options
        .identity
        .clone()
        .unwrap_or_else(|| format!("ensemble-operator-{}", std::process::id()));
    let lock = options.leader_elect.then(|| {
        LeaseLock::new(
            client.clone(),
            &options.lease_namespace,
            &options.lease_name,
            &identity,
        )
    });
    let working = shutdown.child_token();
    if let Some(lock) = &lock {
        if !acquire(lock, &shutdown).await {
            return Ok(());
        }
        tokio::spawn(keep_renewing(lock.clone(), working.clone()));
    }

    let defaults = Defaults {
        server_image: options.server_image.clone(),
        cluster_domain: options.cluster_domain.clone(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        defaults,
        metrics,
        Some(identity),
    ));
    let namespaces: Vec<Option<String>> = match options
        .namespaces
        .iter()
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
    {
        list if list.is_empty() => vec![None],
        list => list.into_iter().map(|n| Some(n.clone())).collect(),
    };
    tracing::info!(?namespaces, "reconciling CoordinationClusters");
    futures::future::join_all(
        namespaces
            .into_iter()
            .map(|ns| controller::run(ctx.clone(), ns, working.clone())),
    )
    .await;

    if let Some(lock) = &lock {
        if let Err(error) = lock.release().await {
            tracing::warn!(%error, "could not release the leader Lease; a standby takes over once it expires");
        }
    }
    shutdown.cancel();
    server.await.ok();
    if working.is_cancelled() && !shutdown.is_cancelled() {
        anyhow::bail!("lost the leader Lease");
    }
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Waits until the CoordinationCluster CRD is established. `Ok(false)` if shut down first.
async fn wait_for_crd(client: &Client, shutdown: &CancellationToken) -> anyhow::Result<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = CoordinationCluster::crd_name();
    let mut logged = false;
    loop {
        match crds.get_opt(name).await {
            Ok(Some(crd)) if is_established(&crd) => return Ok(true),
            Ok(_) if !logged => {
                tracing::warn!(
                    crd = name,
                    "waiting for the CRD to be installed (kubectl apply -f crds/ or helm install)"
                );
                logged = true;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, crd = name, "cannot read the CRD; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Tries for the Lease until it is ours. `false` if shut down first.
async fn acquire(lock: &LeaseLock, shutdown: &CancellationToken) -> bool {
    let mut logged = false;
    loop {
        match lock.try_acquire_or_renew().await {
            Ok(true) => {
                tracing::info!(identity = lock.identity(), "acquired the leader Lease");
                return true;
            }
            Ok(false) if !logged => {
                tracing::info!(
                    identity = lock.identity(),
                    "another replica leads; standing by"
                );
                logged = true;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot read the leader Lease; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
    }
}

/// Renews the Lease until `working` is cancelled; cancels it when the Lease is lost, so this
/// replica stops reconciling before another one starts.
async fn keep_renewing(lock: LeaseLock, working: CancellationToken) {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = working.cancelled() => return,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
        match lock.try_acquire_or_renew().await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!("another replica took the leader Lease; stopping");
                working.cancel();
                return;
            }
            Err(error) => {
                // Stop before the Lease can expire under us: a standby may take it then.
                if last_renewal.elapsed() + RENEW_EVERY >= lease::LEASE_DURATION {
                    tracing::error!(%error, "could not renew the leader Lease in time; stopping");
                    working.cancel();
                    return;
                }
                tracing::warn!(%error, "could not renew the leader Lease; retrying");
            }
        }
    }
}
