//! Logs and Prometheus metrics of the operator process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::reflector::Store;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::{CoordinationCluster, Phase};

/// `text` for people, `json` for log pipelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global tracing subscriber; the level comes from `RUST_LOG` (default `info`,
/// with openraft's own per-election and per-membership chatter at `warn`, and its
/// heartbeat failures, one per heartbeat while a member is down, at `error`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=warn,openraft::core::heartbeat=error")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ErrorClass {
    /// Waits for the spec to change.
    Permanent,
    /// Retried with backoff.
    Transient,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    class: ErrorClass,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    clusters: Family<PhaseLabels, Gauge>,
    stores: Mutex<Vec<Store<CoordinationCluster>>>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("ensemble_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let clusters = Family::<PhaseLabels, Gauge>::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error class",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        registry.register(
            "clusters",
            "CoordinationClusters by phase",
            clusters.clone(),
        );
        Arc::new(Self {
            registry,
            reconciles,
            errors,
            duration,
            clusters,
            stores: Mutex::new(Vec::new()),
        })
    }

    pub fn observe_reconcile(&self, took: Duration, error: Option<ErrorClass>) {
        self.duration.observe(took.as_secs_f64());
        let result = if error.is_some() { "error" } else { "ok" };
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        if let Some(class) = error {
            self.errors.get_or_create(&ErrorLabels { class }).inc();
        }
    }

    /// Counts clusters by phase from a controller's cache at every scrape, so deleted clusters
    /// drop out without bookkeeping.
    pub fn watch_clusters(&self, store: Store<CoordinationCluster>) {
        self.stores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(store);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        const PHASES: [Phase; 7] = [
            Phase::Creating,
            Phase::Running,
            Phase::Scaling,
            Phase::Updating,
            Phase::Degraded,
            Phase::Paused,
            Phase::Failed,
        ];
        let stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        for phase in PHASES {
            let count = stores
                .iter()
                .flat_map(|s| s.state())
                .filter(|cc| cc.status.as_ref().and_then(|s| s.phase) == Some(phase))
                .count();
            self.clusters
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str(),
                })
                .set(count as i64);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
