//! `observe`: reads everything the plan needs, and writes nothing.
//!
//! Children are read by name (one GET each), pods and claims by the cluster's selector, and each
//! running member's admin `/status` over HTTP with a short timeout. A member that does not answer
//! is reported as such; that is an observation for the plan, not an error of the reconcile.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::names;

/// What one member says about itself on `GET /status` of its admin port.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberReport {
    pub id: i64,
    /// `leader`, `follower` or `learner`.
    pub role: String,
    pub leader_id: Option<i64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    #[serde(default)]
    pub membership_version: Option<i64>,
}

/// The cluster's world as read at the start of one reconcile.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub statefulset: Option<StatefulSet>,
    pub peers_service: Option<Service>,
    pub client_service: Option<Service>,
    pub pdb: Option<PodDisruptionBudget>,
    pub config_map: Option<ConfigMap>,
    /// Whether the admin Secret exists with a token; its value is never kept.
    pub admin_secret_present: bool,
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
    let admin_secret_present = secret
        .and_then(|s| s.data)
        .is_some_and(|d| d.contains_key(names::ADMIN_TOKEN_KEY));
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
        admin_secret_present,
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

/// `GET /status` on a member's admin port: a plain HTTP/1.0 exchange, so observing members needs
/// no HTTP client stack of its own.
async fn fetch_report(ip: &str) -> Result<MemberReport, String> {
    let exchange = async {
        let mut stream = TcpStream::connect((ip, names::ADMIN_PORT as u16))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request =
            format!("GET /status HTTP/1.0\r\nHost: {ip}\r\nAccept: application/json\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut response = Vec::new();
        stream
            .take(1 << 20)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_status_response(&response)
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .map_err(|_| "timed out after 2s".to_string())?
}

fn parse_status_response(response: &[u8]) -> Result<MemberReport, String> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("response has no header end")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status_line:?}"));
    }
    serde_json::from_slice(&response[split + 4..]).map_err(|e| format!("body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse_status_response;

    #[test]
    fn parses_a_status_answer_and_rejects_errors() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"id\":2,\"role\":\"leader\",\"leaderId\":2,\"term\":3,\"commitIndex\":10,\"appliedIndex\":9}";
        let report = parse_status_response(ok).expect("valid answer");
        assert_eq!(report.id, 2);
        assert_eq!(report.role, "leader");
        assert_eq!(report.applied_index, 9);
        assert!(parse_status_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n{}").is_err());
        assert!(parse_status_response(b"garbage").is_err());
    }
}
