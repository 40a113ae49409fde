//! Names, labels and ports shared by every child object, in one place.

use std::collections::BTreeMap;

/// The one field manager every server-side apply of the operator uses.
pub const FIELD_MANAGER: &str = "ensemble-operator";

pub const CLIENT_PORT: i32 = 2181;
pub const PEER_PORT: i32 = 2888;
pub const ADMIN_PORT: i32 = 8080;
pub const CLIENT_PORT_NAME: &str = "client";
pub const PEER_PORT_NAME: &str = "peer";
pub const ADMIN_PORT_NAME: &str = "admin";

/// Name of the PVC template, so each member's claim is `data-<name>-<ordinal>`.
pub const DATA_VOLUME: &str = "data";
pub const DATA_DIR: &str = "/var/lib/ensemble";
pub const CONFIG_DIR: &str = "/etc/ensemble";
pub const CONFIG_FILE: &str = "server.properties";
pub const ADMIN_TOKEN_KEY: &str = "token";
/// Where the admin Secret is mounted in a member pod, and the volume's name.
pub const ADMIN_TOKEN_DIR: &str = "/etc/ensemble-admin";
pub const ADMIN_TOKEN_VOLUME: &str = "admin-token";
pub const SERVER_CONTAINER: &str = "server";

/// UID and GID of the member process; the image's non-root user.
pub const RUN_AS_USER: i64 = 65532;

/// Pod-template annotation that changes whenever the server configuration does, so that a
/// settings change gives the StatefulSet a new revision.
pub const CONFIG_HASH_ANNOTATION: &str = "ensemble.dev/config-hash";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const APP_NAME: &str = "ensemble";
pub const COMPONENT_MEMBER: &str = "member";
pub const MANAGED_BY: &str = "ensemble-operator";

/// Pod label the client Service selects on. Pods start with [`CLIENTS_SERVE`] (the template
/// sets it); the operator turns it to [`CLIENTS_DRAIN`] on a pod the spec no longer wants, so
/// that new connections go elsewhere before the member leaves and closes the ones it has.
pub const LABEL_CLIENTS: &str = "ensemble.dev/clients";
pub const CLIENTS_SERVE: &str = "serve";
pub const CLIENTS_DRAIN: &str = "drain";
/// Pod annotation: when the operator took the pod out of the client Service (RFC 3339).
pub const DRAINED_AT_ANNOTATION: &str = "ensemble.dev/drained-at";

pub fn peers_service(cluster: &str) -> String {
    format!("{cluster}-peers")
}

pub fn config_map(cluster: &str) -> String {
    format!("{cluster}-config")
}

pub fn admin_secret(cluster: &str) -> String {
    format!("{cluster}-admin")
}

/// Pod name of the member with StatefulSet ordinal `ordinal`.
pub fn member_pod(cluster: &str, ordinal: i32) -> String {
    format!("{cluster}-{ordinal}")
}

/// The StatefulSet ordinal of a member pod, from its name.
pub fn ordinal_of(cluster: &str, pod_name: &str) -> Option<i32> {
    pod_name
        .strip_prefix(cluster)?
        .strip_prefix('-')?
        .parse()
        .ok()
        .filter(|o| *o >= 0)
}

/// Member id in the ensemble: ordinal + 1, as ZooKeeper ids start at 1.
pub fn member_id(ordinal: i32) -> i64 {
    i64::from(ordinal) + 1
}

/// Labels that select the members of one cluster; never overridable by users.
pub fn selector_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), APP_NAME.to_string()),
        (LABEL_INSTANCE.to_string(), cluster.to_string()),
        (LABEL_COMPONENT.to_string(), COMPONENT_MEMBER.to_string()),
    ])
}

/// Labels on every child object.
pub fn object_labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert(LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string());
    labels
}

/// The client Service's selector: the members that take new client connections.
pub fn client_selector_labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert(LABEL_CLIENTS.to_string(), CLIENTS_SERVE.to_string());
    labels
}

/// The selector as a string, for `status.selector` and list calls.
pub fn selector_string(cluster: &str) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Voters needed for a quorum among `voters` members.
pub fn quorum(voters: i32) -> i32 {
    voters / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_parses_only_this_clusters_pods() {
        assert_eq!(ordinal_of("zk", "zk-0"), Some(0));
        assert_eq!(ordinal_of("zk", "zk-12"), Some(12));
        assert_eq!(ordinal_of("zk", "zk-a-0"), None);
        assert_eq!(ordinal_of("zk", "zkx-0"), None);
        assert_eq!(ordinal_of("zk", "zk--1"), None);
        assert_eq!(member_id(0), 1);
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        let table = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (9, 5)];
        for (voters, q) in table {
            assert_eq!(quorum(voters), q, "quorum of {voters}");
        }
    }
}
