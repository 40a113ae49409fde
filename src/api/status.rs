//! `status`: what the operator observed and decided, written only by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CoordinationClusterStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Member pods that exist.
    #[serde(default)]
    pub replicas: i32,

    /// Member pods that are ready to serve clients.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Pod name of the current leader, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,

    /// Version of the membership configuration in the ensemble's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_version: Option<i64>,

    /// Connection string for ZooKeeper clients, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_endpoint: Option<String>,

    /// Label selector of the member pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Members are being created for the first time.
    Creating,
    /// Every member is up and the ensemble matches the spec.
    Running,
    /// Members are being added or removed.
    Scaling,
    /// Members are being restarted one at a time to apply a change.
    Updating,
    /// Fewer members are healthy than the spec asks for.
    Degraded,
    /// `spec.paused` is set; nothing is changed.
    Paused,
    /// The spec cannot be acted on; the Degraded condition says why.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "Creating",
            Self::Running => "Running",
            Self::Scaling => "Scaling",
            Self::Updating => "Updating",
            Self::Degraded => "Degraded",
            Self::Paused => "Paused",
            Self::Failed => "Failed",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod name.
    pub name: String,
    /// Member id in the ensemble (StatefulSet ordinal + 1).
    pub id: i64,
    pub role: MemberRole,
    pub ready: bool,
    /// Last log index the member applied to its data tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<i64>,
    /// How many committed entries the member is behind the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Leader,
    Follower,
    Learner,
    /// The member did not answer on its admin port.
    Unknown,
}
