//! ensemble: a Kubernetes operator for ZooKeeper-compatible coordination ensembles.
//!
//! - [`api`]: the `CoordinationCluster` resource and its CRD.
//! - [`controller`]: the reconcile pipeline (validate → observe → plan → execute → status).
//! - [`operator`]: the `ensemble operator` process (HTTP endpoints, leader election).
//! - [`telemetry`]: logs and metrics.
//!
//! The coordination server every member runs is the `ensemble-server` crate of this workspace.

pub mod api;
pub mod controller;
pub mod operator;
pub mod telemetry;
