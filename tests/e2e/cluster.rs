//! A CoordinationCluster under test: created with `kubectl apply` from YAML, read back with the
//! kube client, and waited on. Multi-member tests (leader election, scaling, healing) are meant
//! to be a few lines on top of these: `TestCluster::apply`, `wait_available(n)`, `delete_pod`,
//! `zk::write` / `zk::read`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ensemble::api::{CoordinationCluster, CoordinationClusterStatus, MemberRole, Phase};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};

use super::bed::bed;
use super::operator::{pod_ready, pod_state};
use super::{wait, zk};

pub struct TestCluster {
    pub name: String,
    pub namespace: String,
    pub api: Api<CoordinationCluster>,
    client: Client,
}

impl TestCluster {
    /// `kubectl apply` of a CoordinationCluster named `name` with the given `spec` (YAML, one
    /// level indented under `spec:`).
    pub fn apply(client: &Client, namespace: &str, name: &str, spec_yaml: &str) -> Self {
        let yaml = format!(
            "apiVersion: ensemble.dev/v1alpha1\nkind: CoordinationCluster\nmetadata:\n  name: {name}\nspec:\n{spec_yaml}"
        );
        bed()
            .kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], &yaml)
            .success();
        Self {
            name: name.into(),
            namespace: namespace.into(),
            api: Api::namespaced(client.clone(), namespace),
            client: client.clone(),
        }
    }

    pub async fn get(&self) -> CoordinationCluster {
        self.api
            .get(&self.name)
            .await
            .unwrap_or_else(|e| panic!("reading cc/{}: {e}", self.name))
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Waits until the operator reports the cluster Available and Running with `replicas` ready
    /// members, for the current generation; returns that status.
    pub async fn wait_available(&self, replicas: i32) -> CoordinationClusterStatus {
        wait::until(
            &format!(
                "cc/{} in {} is Running and Available with {replicas} ready members of known roles",
                self.name, self.namespace
            ),
            wait::POD_READY,
            || async {
                let cc = self.api.get(&self.name).await.map_err(|e| e.to_string())?;
                let status = cc.status.clone().unwrap_or_default();
                let current = status.observed_generation == cc.metadata.generation;
                if current
                    && status.phase == Some(Phase::Running)
                    && status.ready_replicas == replicas
                    && condition(&status, "Available").is_some_and(|c| c.status == "True")
                    && status.members.iter().all(|m| m.role != MemberRole::Unknown)
                {
                    Ok(status)
                } else {
                    let pods = self
                        .pods()
                        .list(&self.member_selector())
                        .await
                        .map(|l| l.items.iter().map(pod_state).collect::<Vec<_>>())
                        .unwrap_or_default();
                    Err(format!("status {status:#?}\npods {pods:#?}"))
                }
            },
        )
        .await
    }

    /// The pods among the client Service's ready endpoints: where new connections go.
    pub async fn serving_pods(&self) -> BTreeSet<String> {
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.namespace);
        let by_service =
            ListParams::default().labels(&format!("kubernetes.io/service-name={}", self.name));
        let slices = slices
            .list(&by_service)
            .await
            .unwrap_or_else(|e| panic!("listing the endpoints of Service {}: {e}", self.name));
        slices
            .items
            .iter()
            .flat_map(|slice| &slice.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .filter_map(|e| e.target_ref.as_ref()?.name.clone())
            .collect()
    }

    /// Follows members leaving the ensemble (by ordinal) until `/zookeeper/config`, read through
    /// `address`, lists none of them; returns how long each was seen still in the
    /// configuration while new client connections were no longer sent to its pod.
    pub async fn follow_leaving(&self, address: &str, leaving: &[i32]) -> BTreeMap<i32, Duration> {
        let mut kept_away: BTreeMap<i32, Duration> =
            leaving.iter().map(|o| (*o, Duration::ZERO)).collect();
        let deadline = Instant::now() + wait::POD_READY;
        let mut last = Instant::now();
        loop {
            let ids = zk::config_ids(address);
            let serving = self.serving_pods().await;
            let since_last = last.elapsed();
            last = Instant::now();
            let members: Vec<i32> = leaving
                .iter()
                .copied()
                .filter(|o| ids.contains(&(i64::from(*o) + 1)))
                .collect();
            if members.is_empty() {
                return kept_away;
            }
            assert!(
                Instant::now() < deadline,
                "members {members:?} still in the configuration {ids:?} after {:?}",
                wait::POD_READY
            );
            for o in members {
                if !serving.contains(&format!("{}-{o}", self.name)) {
                    *kept_away.entry(o).or_default() += since_last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn member_selector(&self) -> ListParams {
        ListParams::default().labels(&format!(
            "app.kubernetes.io/name=ensemble,app.kubernetes.io/instance={}",
            self.name
        ))
    }

    /// Deletes a member pod and waits until its replacement (a new uid) is ready.
    pub async fn delete_pod_and_wait_replacement(&self, pod: &str) -> Pod {
        let pods = self.pods();
        let old_uid = pods
            .get(pod)
            .await
            .unwrap_or_else(|e| panic!("reading pod {pod}: {e}"))
            .metadata
            .uid;
        pods.delete(pod, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("deleting pod {pod}: {e}"));
        wait::until(
            &format!("pod {pod} is replaced and ready"),
            wait::POD_READY,
            || async {
                let now = pods.get_opt(pod).await.map_err(|e| e.to_string())?;
                match now {
                    Some(p) if p.metadata.uid != old_uid && pod_ready(&p) => Ok(p),
                    Some(p) => Err(pod_state(&p)),
                    None => Err("no pod yet".into()),
                }
            },
        )
        .await
    }

    /// `kubectl scale cc/<name> --replicas <replicas>`, as a user would.
    pub fn scale(&self, replicas: i32) {
        let replicas = replicas.to_string();
        bed().kubectl(&[
            "scale",
            &format!("cc/{}", self.name),
            "-n",
            &self.namespace,
            "--replicas",
            &replicas,
        ]);
    }

    /// `kubectl patch cc/<name> --type merge -p <spec>`: `spec` is the JSON of the spec fields.
    pub fn patch_spec(&self, spec: &str) {
        bed().kubectl(&[
            "patch",
            &format!("cc/{}", self.name),
            "-n",
            &self.namespace,
            "--type",
            "merge",
            "-p",
            &format!(r#"{{"spec":{spec}}}"#),
        ]);
    }

    /// The StatefulSet's update revision: the one new and restarted pods get.
    pub async fn revision(&self) -> Option<String> {
        let statefulsets: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
        statefulsets
            .get(&self.name)
            .await
            .ok()
            .and_then(|s| s.status?.update_revision)
    }

    /// Waits until the update revision is no longer `before`: the operator applied a template
    /// change.
    pub async fn wait_new_revision(&self, before: Option<String>) {
        wait::until(
            "the StatefulSet to get a new revision",
            Duration::from_secs(60),
            || async {
                match self.revision().await {
                    Some(now) if Some(&now) != before.as_ref() => Ok(()),
                    now => Err(format!("still {now:?}")),
                }
            },
        )
        .await;
    }

    /// Waits until every member pod runs the StatefulSet's current revision.
    pub async fn wait_rolled(&self) {
        let statefulsets: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
        wait::until(
            "every member to run the current revision",
            wait::POD_READY * 2,
            || async {
                let current = statefulsets
                    .get(&self.name)
                    .await
                    .map_err(|e| e.to_string())?
                    .status
                    .and_then(|s| s.update_revision);
                let pods = self
                    .pods()
                    .list(&self.member_selector())
                    .await
                    .map_err(|e| e.to_string())?;
                let old: Vec<String> = pods
                    .items
                    .iter()
                    .filter(|p| {
                        p.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("controller-revision-hash"))
                            != current.as_ref()
                    })
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                if old.is_empty() {
                    Ok(())
                } else {
                    Err(format!("not restarted yet: {old:?} (current {current:?})"))
                }
            },
        )
        .await;
    }

    /// The client Service's ClusterIP and port, `ip:2181`.
    pub async fn client_address(&self) -> String {
        let svc: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let ip = svc
            .get(&self.name)
            .await
            .unwrap_or_else(|e| panic!("reading service {}: {e}", self.name))
            .spec
            .and_then(|s| s.cluster_ip)
            .unwrap_or_else(|| panic!("service {} has no ClusterIP", self.name));
        format!("{ip}:2181")
    }
}

pub fn condition<'a>(status: &'a CoordinationClusterStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Asserts that a condition is there with the given status, showing all conditions otherwise.
pub fn assert_condition(status: &CoordinationClusterStatus, type_: &str, expected: &str) {
    let found = condition(status, type_);
    assert!(
        found.is_some_and(|c| c.status == expected),
        "condition {type_} should be {expected}; conditions: {:#?}",
        status.conditions
    );
}

/// Waits until the object at `kind/name` is gone (kubectl's view: NotFound).
pub async fn wait_gone(namespace: &str, kind_name: &str, timeout: Duration) {
    wait::until(
        &format!("{kind_name} in {namespace} is gone"),
        timeout,
        || async {
            let ran =
                bed().kubectl_output(&["get", kind_name, "-n", namespace, "-o", "name"], None);
            if !ran.ok() && ran.stderr().contains("NotFound") {
                Ok(())
            } else {
                Err(format!("{}{}", ran.stdout(), ran.stderr()))
            }
        },
    )
    .await
}
