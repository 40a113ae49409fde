//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod fake_api;
pub mod processes;

use std::path::{Path, PathBuf};

use ensemble::api::CoordinationCluster;

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

/// A CoordinationCluster from a YAML file, with the metadata the API server would add.
pub fn cluster_from(relative: &str, namespace: &str) -> CoordinationCluster {
    let mut cc: CoordinationCluster =
        serde_yaml::from_str(&read(relative)).unwrap_or_else(|e| panic!("parsing {relative}: {e}"));
    cc.metadata.namespace = Some(namespace.into());
    cc.metadata.uid = Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into());
    cc.metadata.generation = Some(1);
    cc
}
