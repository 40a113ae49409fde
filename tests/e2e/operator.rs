//! Installing the operator as a user would: with Helm (the default for the suite) or with
//! `kubectl apply -k deploy/`. Only one may be installed at a time (both watch every namespace),
//! so a test that wants one removes the other first.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::{Api, Client};

use super::bed::bed;
use super::wait;

pub const CRD: &str = "coordinationclusters.ensemble.dev";
pub const HELM_RELEASE: &str = "ensemble";
/// Where the suite installs the chart.
pub const HELM_NAMESPACE: &str = "e2e-operator";
/// Where `deploy/kustomization.yaml` puts the operator.
pub const KUSTOMIZE_NAMESPACE: &str = "ensemble-system";
pub const OPERATOR_NAMESPACES: [&str; 2] = [HELM_NAMESPACE, KUSTOMIZE_NAMESPACE];
/// The chart's and the manifests' default number of operator replicas.
pub const OPERATOR_REPLICAS: usize = 2;
const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=ensemble-operator";

/// The operator installed by `helm install` from `charts/ensemble-operator`, running; installs
/// it unless it already is. Returns its pods.
pub async fn ensure_helm(client: &Client) -> Vec<Pod> {
    let bed = bed();
    if !bed
        .helm(&["status", HELM_RELEASE, "-n", HELM_NAMESPACE])
        .ok()
    {
        remove_kustomize();
        bed.helm(&[
            "install",
            HELM_RELEASE,
            "charts/ensemble-operator",
            "--namespace",
            HELM_NAMESPACE,
            "--create-namespace",
            "--wait",
            "--timeout",
            "180s",
        ])
        .success();
    }
    wait_running(client, HELM_NAMESPACE).await
}

/// Uninstalls the chart and deletes the CRD it keeps, so that the cluster is as fresh as before.
pub fn remove_helm() {
    let bed = bed();
    if bed
        .helm(&["status", HELM_RELEASE, "-n", HELM_NAMESPACE])
        .ok()
    {
        bed.helm(&["uninstall", HELM_RELEASE, "-n", HELM_NAMESPACE, "--wait"])
            .success();
    }
    bed.kubectl(&["delete", "namespace", HELM_NAMESPACE, "--ignore-not-found"]);
    // The chart keeps the CRD on uninstall (helm.sh/resource-policy: keep), by design.
    bed.kubectl(&["delete", "crd", CRD, "--ignore-not-found"]);
}

/// Deletes what `kubectl apply -k deploy/` made, if anything.
pub fn remove_kustomize() {
    let bed = bed();
    if bed
        .kubectl_output(&["get", "namespace", KUSTOMIZE_NAMESPACE], None)
        .ok()
    {
        bed.kubectl(&["delete", "-k", "deploy/", "--ignore-not-found"]);
    }
}

/// Waits until the CRD is established and every operator replica in `namespace` runs and is
/// ready; returns the pods.
pub async fn wait_running(client: &Client, namespace: &str) -> Vec<Pod> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait::until(
        "the CRD is established",
        Duration::from_secs(60),
        || async {
            let crd = crds.get_opt(CRD).await.map_err(|e| e.to_string())?;
            let established = crd
                .as_ref()
                .and_then(|c| c.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                Ok(())
            } else {
                Err(format!("{:?}", crd.and_then(|c| c.status)))
            }
        },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    wait::until(
        &format!("{OPERATOR_REPLICAS} operator pods run and are ready in {namespace}"),
        wait::POD_READY,
        || async {
            let list = pods
                .list(&ListParams::default().labels(OPERATOR_SELECTOR))
                .await
                .map_err(|e| vec![e.to_string()])?;
            let states: Vec<String> = list.items.iter().map(pod_state).collect();
            let running = list
                .items
                .iter()
                .filter(|p| pod_phase(p) == "Running" && pod_ready(p))
                .count();
            if running == OPERATOR_REPLICAS && list.items.len() == OPERATOR_REPLICAS {
                Ok(list.items)
            } else {
                Err(states)
            }
        },
    )
    .await
}

pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `name phase ready=… restarts=… waiting=reason`: enough to see why a pod is not ready.
pub fn pod_state(pod: &Pod) -> String {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
    let waiting: Vec<String> = statuses
        .iter()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .collect();
    format!(
        "{} {} ready={} restarts={restarts} waiting={waiting:?}",
        pod.metadata.name.as_deref().unwrap_or("?"),
        pod_phase(pod),
        pod_ready(pod)
    )
}
