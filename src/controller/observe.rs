//! `observe`: reads everything the plan needs, and writes nothing.
//!
//! Children are read by name (one GET each), pods and claims by the cluster's selector, and each
//! running member's admin `/status` over HTTP with a short timeout. A member that does not answer
//! is reported as such; that is an observation for the plan, not an error of the reconcile.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Deserialize;

use super::{admin, names};

/// What one member says about itself on `GET /status` of its admin port.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberReport {
    pub id: i64,
    /// `leader`, `follower`, `learner`, `candidate` or `outside` (not a member).
    pub role: String,
    pub leader_id: Option<i64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    #[serde(default)]
    pub membership_version: Option<i64>,
    /// Whether the member holds a log (it belongs, or belonged, to an ensemble). A server that
    /// does not say is taken to hold one: the operator never founds or wipes on a guess.
    #[serde(default = "holds_data")]
    pub initialized: bool,
    /// The membership as this member knows it; complete with lags on the leader.
    #[serde(default)]
    pub members: Vec<ReportedMember>,
}

fn holds_data() -> bool {
    true
}

/// One entry of a report's `members`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReportedMember {
    pub id: i64,
    pub voting: bool,
    /// Entries behind the leader's log, as the leader sees it.
    #[serde(default)]
    pub lag: Option<u64>,
}

/// The bearer token of the members' admin API. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// The cluster's world as read at the start of one reconcile.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub statefulset: Option<StatefulSet>,
    pub peers_service: Option<Service>,
    pub client_service: Option<Service>,
    pub pdb: Option<PodDisruptionBudget>,
    pub config_map: Option<ConfigMap>,
    /// The admin Secret's token, if the Secret exists with one.
    pub admin_token: Option<AdminToken>,
    pub pods: Vec<Pod>,
    pub claims: Vec<PersistentVolumeClaim>,
    /// Admin reports of the members that answered, by pod name.
    pub reports: BTreeMap<String, MemberReport>,
}

pub async fn observe(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<Observed, kube::Error> {
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let by_selector = ListParams::default().labels(&names::selector_string(cluster));
    let (peers_name, config_name, secret_name) = (
        names::peers_service(cluster),
        names::config_map(cluster),
        names::admin_secret(cluster),
    );

    let (statefulset, peers_service, client_service, pdb, config_map, secret, pods, claims) = tokio::try_join!(
        statefulsets.get_opt(cluster),
        services.get_opt(&peers_name),
        services.get_opt(cluster),
        pdbs.get_opt(cluster),
        config_maps.get_opt(&config_name),
        secrets.get_opt(&secret_name),
        pods.list(&by_selector),
        claims.list(&by_selector),
    )?;
    let admin_token = secret
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(names::ADMIN_TOKEN_KEY))
        .and_then(|t| String::from_utf8(t.0).ok())
        .map(AdminToken);
    let mut pods = pods.items;
    pods.retain(|p| {
        p.metadata
            .name
            .as_deref()
            .and_then(|n| names::ordinal_of(cluster, n))
            .is_some()
    });
    let reports = member_reports(&pods).await;
    Ok(Observed {
        statefulset,
        peers_service,
        client_service,
        pdb,
        config_map,
        admin_token,
        pods,
        claims: claims.items,
        reports,
    })
}

async fn member_reports(pods: &[Pod]) -> BTreeMap<String, MemberReport> {
    let asks = pods.iter().filter_map(|pod| {
        let name = pod.metadata.name.clone()?;
        let ip = pod.status.as_ref()?.pod_ip.clone()?;
        Some(async move {
            match fetch_report(&ip).await {
                Ok(report) => Some((name, report)),
                Err(err) => {
                    tracing::debug!(pod = %name, error = %err, "member did not report its status");
                    None
                }
            }
        })
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn fetch_report(ip: &str) -> Result<MemberReport, String> {
    let (code, body) = admin::call(ip, "GET", "/status", None, None).await?;
    if code != 200 {
        return Err(format!(
            "answered {code}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::MemberReport;

    #[test]
    fn a_report_without_the_newer_fields_is_taken_to_hold_data() {
        let report: MemberReport = serde_json::from_str(
            r#"{"id":2,"role":"leader","leaderId":2,"term":3,"commitIndex":10,"appliedIndex":9}"#,
        )
        .expect("valid report");
        assert_eq!((report.id, report.applied_index), (2, 9));
        assert!(report.initialized);
        assert!(report.members.is_empty());
    }
}
