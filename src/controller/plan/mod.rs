//! `plan`: decides, from the checked spec and what `observe` read, which writes to make, the
//! status to report and the events to record. Pure and synchronous: no client, no clock (the
//! time is an input), so every rule here is tested without a cluster.
//!
//! Which member joins, leaves, leads or restarts next is decided by [`membership`], from the
//! same observation; the plan carries its one step, sizes the StatefulSet and the
//! PodDisruptionBudget from the membership, and reports the step's progress in the status.
//!
//! The plan never writes what is already there: a child is applied only when some field the
//! operator sets differs from the observed object, and the status only when it changed. A
//! reconcile of a converged cluster therefore plans no write at all.

pub mod membership;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff;
use serde::Serialize;
use serde_json::Value;

use super::build::{self, Children};
use super::names::{self, quorum};
use super::observe::{MemberReport, Observed};
use super::quantity::parse_quantity;
use super::validate::{ClusterConfig, InvalidSpec};
use crate::api::{CoordinationClusterStatus, MemberRole, MemberStatus, Phase};
use membership::{Decision, LeaderView, Seat, SeatReport, Step, View};

pub const CONDITION_AVAILABLE: &str = "Available";
pub const CONDITION_PROGRESSING: &str = "Progressing";
pub const CONDITION_DEGRADED: &str = "Degraded";
pub const CONDITION_QUORUM_HEALTHY: &str = "QuorumHealthy";
pub const CONDITION_EVEN_REPLICAS: &str = "EvenReplicas";

/// One write to the API, in the order the plan lists them.
// A plan holds a handful of writes once per reconcile; boxing the objects would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    ConfigMap(ConfigMap),
    /// The admin Secret is created once with a fresh random token and never rewritten.
    CreateAdminSecret,
    Service(Service),
    Pdb(PodDisruptionBudget),
    StatefulSet(StatefulSet),
    /// Grow an existing member's volume to the size the spec now asks for.
    ResizeClaim {
        name: String,
        size: String,
    },
    /// Put a pod in the client Service (`drained_at` is `None`) or take it out, noting when.
    PodClients {
        pod: String,
        drained_at: Option<Time>,
    },
}

impl Write {
    /// A reference to the object this write changes.
    pub fn reference(&self, cfg: &ClusterConfig) -> ObjectReference {
        let (api_version, kind, name) = match self {
            Write::ConfigMap(o) => ("v1", "ConfigMap", o.metadata.name.clone()),
            Write::CreateAdminSecret => ("v1", "Secret", Some(names::admin_secret(&cfg.name))),
            Write::Service(o) => ("v1", "Service", o.metadata.name.clone()),
            Write::Pdb(o) => ("policy/v1", "PodDisruptionBudget", o.metadata.name.clone()),
            Write::StatefulSet(o) => ("apps/v1", "StatefulSet", o.metadata.name.clone()),
            Write::ResizeClaim { name, .. } => ("v1", "PersistentVolumeClaim", Some(name.clone())),
            Write::PodClients { pod, .. } => ("v1", "Pod", Some(pod.clone())),
        };
        ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            name,
            namespace: Some(cfg.namespace.clone()),
            ..ObjectReference::default()
        }
    }

    /// `Kind/name`, for events and logs.
    pub fn describe(&self, cluster: &str) -> String {
        let name = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.name.clone().unwrap_or_default()
        };
        match self {
            Write::ConfigMap(o) => format!("ConfigMap {}", name(&o.metadata)),
            Write::CreateAdminSecret => format!("Secret {}", names::admin_secret(cluster)),
            Write::Service(o) => format!("Service {}", name(&o.metadata)),
            Write::Pdb(o) => format!("PodDisruptionBudget {}", name(&o.metadata)),
            Write::StatefulSet(o) => format!("StatefulSet {}", name(&o.metadata)),
            Write::ResizeClaim { name, size } => format!("PersistentVolumeClaim {name} to {size}"),
            Write::PodClients {
                pod,
                drained_at: None,
            } => format!("Pod {pod} into the client Service"),
            Write::PodClients { pod, .. } => format!("Pod {pod} out of the client Service"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// An event to record on the CoordinationCluster.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedEvent {
    pub kind: EventKind,
    /// PascalCase, machine-readable.
    pub reason: &'static str,
    /// What the operator did or saw, for a human.
    pub note: String,
    /// What the operator was doing, PascalCase.
    pub action: &'static str,
    /// The child object the event is about, if any.
    pub related: Option<ObjectReference>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub writes: Vec<Write>,
    /// The membership step to take after the writes, if one is due and safe.
    pub step: Option<Step>,
    /// The status to write; `None` when it equals the observed one.
    pub status: Option<CoordinationClusterStatus>,
    pub events: Vec<PlannedEvent>,
    /// When to look again if nothing happens before.
    pub requeue_after: Duration,
}

/// Requeue while members are still converging: pods becoming ready do not always change an
/// object the operator watches.
const REQUEUE_PROGRESSING: Duration = Duration::from_secs(5);
/// Requeue after a membership step, to take the next one soon.
const REQUEUE_STEP: Duration = Duration::from_secs(2);
/// Requeue after members were removed: the next reconcile shrinks the StatefulSet, so that the
/// removed members, which hold resources and refuse every session, go at once.
const REQUEUE_REMOVED: Duration = Duration::from_millis(100);
/// How long a pod the spec no longer wants is out of the client Service before its member leaves
/// the membership: the endpoint controllers and every node's kube-proxy (which applies changes
/// at most once a second by default) stop sending new connections to it meanwhile, while the
/// connections it has keep working.
pub const DRAIN_TIME: Duration = Duration::from_secs(3);
/// Requeue of a converged cluster, to refresh leader and lag in the status and catch drift.
const REQUEUE_CONVERGED: Duration = Duration::from_secs(60);

/// The plan for a valid spec.
pub fn plan(
    cfg: &ClusterConfig,
    observed: &Observed,
    previous: Option<&CoordinationClusterStatus>,
    now: &Time,
) -> Plan {
    let decision = membership::decide(&view(cfg, observed, previous, now));
    let writes = if cfg.paused {
        Vec::new()
    } else {
        plan_writes(cfg, observed, &decision, now)
    };
    let mut events: Vec<PlannedEvent> = writes
        .iter()
        .map(|w| write_event(w, cfg, observed))
        .collect();

    let facts = Facts::gather(cfg, observed);
    let phase = phase(cfg, observed, &facts, &decision, previous);
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let conditions = ConditionSet::new(previous_conditions, cfg.generation, now);
    let conditions = conditions_for(
        cfg,
        &facts,
        phase,
        &decision,
        !writes.is_empty(),
        conditions,
    );

    if cfg.replicas % 2 == 0
        && became_true(previous_conditions, &conditions, CONDITION_EVEN_REPLICAS)
    {
        events.push(PlannedEvent {
            kind: EventKind::Warning,
            reason: "EvenReplicas",
            note: even_replicas_message(cfg.replicas),
            action: "Validate",
            related: None,
        });
    }

    let status = CoordinationClusterStatus {
        observed_generation: cfg.generation,
        phase: Some(phase),
        replicas: facts.pods,
        ready_replicas: facts.ready,
        leader: facts.leader.clone(),
        members: facts.members.clone(),
        membership_version: facts.membership_version,
        client_endpoint: Some(cfg.client_endpoint()),
        selector: Some(names::selector_string(&cfg.name)),
        conditions,
    };
    // A member whose report could not be read (a pod just started, a call that timed
    // out) shows an unknown role: look again soon rather than in a minute.
    let reported = facts.members.iter().all(|m| m.role != MemberRole::Unknown);
    let converged = writes.is_empty() && phase == Phase::Running && reported;
    let draining = if decision.step.is_none() && !cfg.paused {
        drain_left(cfg, observed, now)
    } else {
        None
    };
    Plan {
        writes,
        step: decision.step,
        status: (previous != Some(&status)).then_some(status),
        events,
        requeue_after: if matches!(decision.step, Some(Step::Remove { .. })) {
            REQUEUE_REMOVED
        } else if let Some(left) = draining {
            left
        } else if decision.step.is_some() {
            REQUEUE_STEP
        } else if converged || cfg.paused {
            REQUEUE_CONVERGED
        } else {
            REQUEUE_PROGRESSING
        },
    }
}

/// The plan for a spec the operator cannot act on: touch nothing, say why.
pub fn plan_invalid(
    error: &InvalidSpec,
    generation: Option<i64>,
    previous: Option<&CoordinationClusterStatus>,
    now: &Time,
) -> Plan {
    plan_blocked("InvalidSpec", &error.to_string(), generation, previous, now)
}

/// The plan after the API server refused a child object built from this spec.
pub fn plan_rejected(
    message: &str,
    generation: Option<i64>,
    previous: Option<&CoordinationClusterStatus>,
    now: &Time,
) -> Plan {
    plan_blocked("ChildRejected", message, generation, previous, now)
}

/// Phase Failed with a Degraded condition saying why, and one Warning event per new reason.
fn plan_blocked(
    reason: &'static str,
    message: &str,
    generation: Option<i64>,
    previous: Option<&CoordinationClusterStatus>,
    now: &Time,
) -> Plan {
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut conditions = ConditionSet::new(previous_conditions, generation, now);
    let message = message.to_string();
    conditions.set(CONDITION_DEGRADED, true, reason, &message);
    conditions.set(
        CONDITION_PROGRESSING,
        false,
        reason,
        "waiting for the spec to be corrected",
    );
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.phase = Some(Phase::Failed);
    status.conditions = conditions.finish();
    let already_reported = previous_conditions
        .iter()
        .any(|c| c.type_ == CONDITION_DEGRADED && c.reason == reason && c.message == message);
    let events = if already_reported {
        Vec::new()
    } else {
        vec![PlannedEvent {
            kind: EventKind::Warning,
            reason,
            note: message,
            action: "Reconcile",
            related: None,
        }]
    };
    Plan {
        writes: Vec::new(),
        step: None,
        status: (previous != Some(&status)).then_some(status),
        events,
        requeue_after: REQUEUE_CONVERGED,
    }
}

fn plan_writes(
    cfg: &ClusterConfig,
    observed: &Observed,
    decision: &Decision,
    now: &Time,
) -> Vec<Write> {
    let Children {
        config_map,
        peers_service,
        client_service,
        mut pdb,
        mut statefulset,
    } = build::children(cfg);
    // The membership, not the spec, sizes both: pods leave only once they left the voters, and
    // a drain may take only what the current voters can spare.
    if let Some(spec) = statefulset.spec.as_mut() {
        spec.replicas = Some(decision.statefulset_replicas);
    }
    if let Some(spec) = pdb.spec.as_mut() {
        spec.max_unavailable = Some(IntOrString::Int(decision.max_unavailable));
    }
    // A StatefulSet's claim templates are immutable: keep the ones it was created with and grow
    // the existing claims instead.
    let observed_templates = observed
        .statefulset
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.volume_claim_templates.clone());
    if let (Some(templates), Some(spec)) = (observed_templates, statefulset.spec.as_mut()) {
        spec.volume_claim_templates = Some(templates);
    }

    // Pods first: the client Service selects on their label, which pods of an earlier release
    // lack, so they get it before the Service asks for it.
    let mut writes = pods_clients(cfg, observed, now);
    if differs(&config_map, observed.config_map.as_ref()) {
        writes.push(Write::ConfigMap(config_map));
    }
    if observed.admin_token.is_none() {
        writes.push(Write::CreateAdminSecret);
    }
    if differs(&peers_service, observed.peers_service.as_ref()) {
        writes.push(Write::Service(peers_service));
    }
    if differs(&client_service, observed.client_service.as_ref()) {
        writes.push(Write::Service(client_service));
    }
    if differs(&pdb, observed.pdb.as_ref()) {
        writes.push(Write::Pdb(pdb));
    }
    if differs(&statefulset, observed.statefulset.as_ref()) {
        writes.push(Write::StatefulSet(statefulset));
    }
    writes.extend(claims_to_grow(cfg, &observed.claims));
    writes
}

/// Whether a pod should take new client connections: only while the spec wants its member.
fn should_serve(cfg: &ClusterConfig, ordinal: i32) -> bool {
    ordinal < cfg.replicas
}

/// A pod's place in the client Service as observed: `None` while it serves, else when it was
/// taken out (`None` inside if the annotation is missing or unreadable).
fn drained_at(pod: &Pod) -> Option<Option<jiff::Timestamp>> {
    let meta = &pod.metadata;
    let label = meta.labels.as_ref()?.get(names::LABEL_CLIENTS);
    if label.map(String::as_str) == Some(names::CLIENTS_SERVE) {
        return None;
    }
    Some(
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(names::DRAINED_AT_ANNOTATION))
            .and_then(|t| t.parse().ok()),
    )
}

/// The pods of this cluster that are not shutting down, with their ordinals.
fn live_pods<'a>(
    cfg: &'a ClusterConfig,
    observed: &'a Observed,
) -> impl Iterator<Item = (i32, &'a Pod)> + 'a {
    observed.pods.iter().filter_map(|pod| {
        let ordinal = names::ordinal_of(&cfg.name, pod.metadata.name.as_deref()?)?;
        pod.metadata
            .deletion_timestamp
            .is_none()
            .then_some((ordinal, pod))
    })
}

/// Moves pods into or out of the client Service as the spec wants (see [`DRAIN_TIME`]).
fn pods_clients(cfg: &ClusterConfig, observed: &Observed, now: &Time) -> Vec<Write> {
    live_pods(cfg, observed)
        .filter_map(|(ordinal, pod)| {
            let pod_name = pod.metadata.name.clone()?;
            let drained = drained_at(pod);
            match (should_serve(cfg, ordinal), drained) {
                (true, None) | (false, Some(Some(_))) => None,
                (true, Some(_)) => Some(Write::PodClients {
                    pod: pod_name,
                    drained_at: None,
                }),
                (false, _) => Some(Write::PodClients {
                    pod: pod_name,
                    drained_at: Some(now.clone()),
                }),
            }
        })
        .collect()
}

/// How long until the last pod being drained has been out of the client Service for
/// [`DRAIN_TIME`], if one has not yet.
fn drain_left(cfg: &ClusterConfig, observed: &Observed, now: &Time) -> Option<Duration> {
    live_pods(cfg, observed)
        .filter(|(ordinal, _)| !should_serve(cfg, *ordinal))
        .map(|(_, pod)| DRAIN_TIME.saturating_sub(out_of_service_for(pod, now).unwrap_or_default()))
        .filter(|left| !left.is_zero())
        .max()
}

/// How long a pod has been out of the client Service (`None` while it serves; zero without a
/// readable time, or with one in the future: clocks of two operator pods may differ).
fn out_of_service_for(pod: &Pod, now: &Time) -> Option<Duration> {
    let at = drained_at(pod)?;
    let since = at.map(|at| Duration::try_from(now.0.duration_since(at)));
    Some(since.and_then(Result::ok).unwrap_or(Duration::ZERO))
}

fn claims_to_grow(cfg: &ClusterConfig, claims: &[PersistentVolumeClaim]) -> Vec<Write> {
    let Some(wanted) = parse_quantity(&cfg.storage_size) else {
        return Vec::new();
    };
    // The StatefulSet names each member's claim `data-<pod name>`.
    let prefix = format!("{}-", names::DATA_VOLUME);
    claims
        .iter()
        .filter_map(|claim| {
            let name = claim.metadata.name.as_ref()?;
            names::ordinal_of(&cfg.name, name.strip_prefix(&prefix)?)?;
            let requested = claim
                .spec
                .as_ref()?
                .resources
                .as_ref()?
                .requests
                .as_ref()?
                .get("storage")?;
            (parse_quantity(&requested.0)? < wanted).then(|| Write::ResizeClaim {
                name: name.clone(),
                size: cfg.storage_size.clone(),
            })
        })
        .collect()
}

fn write_event(write: &Write, cfg: &ClusterConfig, observed: &Observed) -> PlannedEvent {
    let existed = match write {
        Write::ConfigMap(_) => observed.config_map.is_some(),
        Write::CreateAdminSecret => false,
        Write::Service(s) if s.metadata.name.as_deref() == Some(cfg.name.as_str()) => {
            observed.client_service.is_some()
        }
        Write::Service(_) => observed.peers_service.is_some(),
        Write::Pdb(_) => observed.pdb.is_some(),
        Write::StatefulSet(_) => observed.statefulset.is_some(),
        Write::ResizeClaim { .. } | Write::PodClients { .. } => true,
    };
    let what = write.describe(&cfg.name);
    let (reason, note) = match write {
        Write::ResizeClaim { .. } => ("VolumeResized", format!("Resized {what}")),
        Write::PodClients {
            pod,
            drained_at: Some(_),
        } => (
            "MemberDraining",
            format!(
                "Took pod {pod} out of the client Service; its member leaves the membership in \
                 {} s",
                DRAIN_TIME.as_secs()
            ),
        ),
        Write::PodClients {
            pod,
            drained_at: None,
        } => (
            "MemberServing",
            format!("Put pod {pod} into the client Service"),
        ),
        _ if existed => ("Updated", format!("Updated {what} to match the spec")),
        _ => ("Created", format!("Created {what}")),
    };
    PlannedEvent {
        kind: EventKind::Normal,
        reason,
        note,
        action: "Reconcile",
        related: Some(write.reference(cfg)),
    }
}

/// Whether `desired` sets any field to a value other than the one `observed` has. Fields the
/// API server defaults or other managers own are ignored, and quantities compare by value.
pub fn differs<T: Serialize>(desired: &T, observed: Option<&T>) -> bool {
    let Some(observed) = observed else {
        return true;
    };
    match (
        serde_json::to_value(desired),
        serde_json::to_value(observed),
    ) {
        (Ok(desired), Ok(observed)) => !is_subset(&desired, &observed),
        _ => true,
    }
}

fn is_subset(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => d
            .iter()
            .all(|(k, dv)| o.get(k).is_some_and(|ov| is_subset(dv, ov))),
        (Value::Array(d), Value::Array(o)) => {
            d.len() == o.len() && d.iter().zip(o).all(|(dv, ov)| is_subset(dv, ov))
        }
        (Value::String(d), Value::String(o)) => {
            d == o || matches!((parse_quantity(d), parse_quantity(o)), (Some(a), Some(b)) if a == b)
        }
        _ => desired == observed,
    }
}

/// What the status is computed from.
struct Facts {
    pods: i32,
    ready: i32,
    leader: Option<String>,
    members: Vec<MemberStatus>,
    membership_version: Option<i64>,
    /// Voters and learners, as the leader reports them.
    voters: Option<i32>,
    learners: i32,
    /// Members whose pod runs an older template than the StatefulSet's current revision.
    outdated: Vec<String>,
    not_ready: Vec<String>,
}

impl Facts {
    fn gather(cfg: &ClusterConfig, observed: &Observed) -> Self {
        let mut pods: Vec<(i32, &Pod)> = observed
            .pods
            .iter()
            .filter_map(|p| {
                Some((
                    names::ordinal_of(&cfg.name, p.metadata.name.as_deref()?)?,
                    p,
                ))
            })
            .collect();
        pods.sort_by_key(|(ordinal, _)| *ordinal);

        let leader_report = leader_report(observed);
        let leader_id = leader_report
            .map(|r| r.id)
            .or_else(|| observed.reports.values().find_map(|r| r.leader_id));
        let leader = leader_id
            .filter(|id| *id >= 1)
            .and_then(|id| i32::try_from(id - 1).ok())
            .map(|ordinal| names::member_pod(&cfg.name, ordinal));
        let voting = |voting: bool| {
            leader_report.map(|r| r.members.iter().filter(|m| m.voting == voting).count() as i32)
        };

        let mut facts = Facts {
            pods: pods.len() as i32,
            ready: 0,
            leader,
            members: Vec::new(),
            membership_version: leader_report.and_then(|r| r.membership_version),
            voters: voting(true),
            learners: voting(false).unwrap_or(0),
            outdated: Vec::new(),
            not_ready: Vec::new(),
        };
        for (ordinal, pod) in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let ready = pod_ready(pod);
            let report = observed.reports.get(&name);
            if ready {
                facts.ready += 1;
            } else {
                facts.not_ready.push(name.clone());
            }
            if outdated(observed, pod) {
                facts.outdated.push(name.clone());
            }
            facts.members.push(MemberStatus {
                name,
                id: names::member_id(ordinal),
                role: report.map_or(MemberRole::Unknown, role_of),
                ready,
                applied_index: report.map(|r| r.applied_index as i64),
                lag: report.zip(leader_report).map(|(r, l)| lag(r, l)),
            });
        }
        facts
    }
}

/// The report of the member that leads in the highest term.
fn leader_report(observed: &Observed) -> Option<&MemberReport> {
    observed
        .reports
        .values()
        .filter(|r| r.role == "leader")
        .max_by_key(|r| r.term)
}

/// Whether the pod runs an older template than the StatefulSet's current revision.
fn outdated(observed: &Observed, pod: &Pod) -> bool {
    let want = observed
        .statefulset
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.update_revision.as_ref());
    let have = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("controller-revision-hash"));
    matches!((want, have), (Some(want), Some(have)) if want != have)
}

/// What [`membership::decide`] needs, from the observation.
fn view(
    cfg: &ClusterConfig,
    observed: &Observed,
    previous: Option<&CoordinationClusterStatus>,
    now: &Time,
) -> View {
    let ordinal_of_id = |id: i64| i32::try_from(id - 1).ok();
    let seats = observed
        .pods
        .iter()
        .filter_map(|pod| {
            let name = pod.metadata.name.as_deref()?;
            Some(Seat {
                ordinal: names::ordinal_of(&cfg.name, name)?,
                terminating: pod.metadata.deletion_timestamp.is_some(),
                outdated: outdated(observed, pod),
                drained: out_of_service_for(pod, now).is_some_and(|out| out >= DRAIN_TIME),
                report: observed.reports.get(name).map(|r| SeatReport {
                    initialized: r.initialized,
                    leader_id: r.leader_id,
                    term: r.term,
                }),
            })
        })
        .collect();
    let leader = leader_report(observed).and_then(|r| {
        let mut leader = LeaderView {
            ordinal: ordinal_of_id(r.id)?,
            term: r.term,
            ..LeaderView::default()
        };
        for member in &r.members {
            let Some(ordinal) = ordinal_of_id(member.id) else {
                continue;
            };
            let side = if member.voting {
                &mut leader.voters
            } else {
                &mut leader.learners
            };
            side.insert(ordinal, member.lag);
        }
        Some(leader)
    });
    View {
        desired: cfg.replicas,
        statefulset_replicas: observed
            .statefulset
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas),
        seats,
        leader,
        ever_founded: previous.is_some_and(|s| s.membership_version.is_some()),
        paused: cfg.paused,
    }
}

/// The pod a step acts on or asks: the target of a bootstrap, a restart or a wipe, else the
/// leader (any member would forward a membership call to it; asking it saves the hop).
pub fn step_pod(step: Step, cfg: &ClusterConfig, observed: &Observed) -> Option<String> {
    match step {
        Step::Bootstrap { ordinal } | Step::Restart { ordinal } | Step::Wipe { ordinal } => {
            Some(names::member_pod(&cfg.name, ordinal))
        }
        Step::AddLearner { .. }
        | Step::Promote { .. }
        | Step::Remove { .. }
        | Step::TransferLeadership { .. } => {
            let leader = leader_report(observed)?;
            Some(names::member_pod(
                &cfg.name,
                i32::try_from(leader.id - 1).ok()?,
            ))
        }
    }
}

/// The event recorded once a step was taken.
pub fn step_event(step: Step, cfg: &ClusterConfig) -> PlannedEvent {
    let note = step.describe(&cfg.name);
    let note = note[..1].to_uppercase() + &note[1..];
    PlannedEvent {
        kind: EventKind::Normal,
        reason: step.reason(),
        note,
        action: "ChangeMembership",
        related: None,
    }
}

/// The event recorded when a step could not be taken.
pub fn step_failed_event(step: Step, cfg: &ClusterConfig, reason: &str) -> PlannedEvent {
    PlannedEvent {
        kind: EventKind::Warning,
        reason: "StepFailed",
        note: format!("{} failed: {reason}", step.describe(&cfg.name)),
        action: "ChangeMembership",
        related: None,
    }
}

fn role_of(report: &MemberReport) -> MemberRole {
    match report.role.as_str() {
        "leader" => MemberRole::Leader,
        "follower" => MemberRole::Follower,
        "learner" => MemberRole::Learner,
        // Candidates, members not added yet and stopped ones.
        _ => MemberRole::Unknown,
    }
}

fn lag(member: &MemberReport, leader: &MemberReport) -> i64 {
    leader.commit_index.saturating_sub(member.applied_index) as i64
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(
    cfg: &ClusterConfig,
    observed: &Observed,
    facts: &Facts,
    decision: &Decision,
    previous: Option<&CoordinationClusterStatus>,
) -> Phase {
    let desired = cfg.replicas;
    let sts_replicas = observed
        .statefulset
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);
    let was_creating = matches!(previous.and_then(|s| s.phase), None | Some(Phase::Creating));
    let members_match = facts.voters == Some(desired) && facts.learners == 0;
    let step_scales = matches!(
        decision.step,
        Some(Step::AddLearner { .. } | Step::Promote { .. } | Step::Remove { .. })
    );
    if cfg.paused {
        Phase::Paused
    } else if observed.statefulset.is_none()
        || (was_creating && (facts.ready < desired || !members_match))
    {
        Phase::Creating
    } else if step_scales
        || !members_match
        || sts_replicas != Some(desired)
        || facts.pods != desired
    {
        Phase::Scaling
    } else if !facts.outdated.is_empty() {
        Phase::Updating
    } else if facts.ready < desired {
        Phase::Degraded
    } else {
        Phase::Running
    }
}

fn even_replicas_message(replicas: i32) -> String {
    let tolerated = replicas - quorum(replicas);
    format!(
        "{replicas} members survive {tolerated} failure(s), no more than {} would; an odd count gives the same safety with one member fewer to replicate to, or survives one more failure with one more",
        replicas - 1
    )
}

fn conditions_for(
    cfg: &ClusterConfig,
    facts: &Facts,
    phase: Phase,
    decision: &Decision,
    writing: bool,
    mut set: ConditionSet,
) -> Vec<Condition> {
    let desired = cfg.replicas;
    let needed = quorum(desired);
    let ready_text = format!(
        "{} of {desired} members ready, {needed} needed for a quorum",
        facts.ready
    );

    if facts.ready >= needed {
        set.set(
            CONDITION_AVAILABLE,
            true,
            "QuorumReady",
            &format!("clients are served: {ready_text}"),
        );
    } else {
        set.set(CONDITION_AVAILABLE, false, "QuorumNotReady", &ready_text);
    }

    match (&facts.leader, facts.ready >= needed) {
        (Some(leader), true) => set.set(
            CONDITION_QUORUM_HEALTHY,
            true,
            "LeaderElected",
            &format!("{leader} leads; {ready_text}"),
        ),
        (None, true) => set.set(
            CONDITION_QUORUM_HEALTHY,
            false,
            "LeaderUnknown",
            &format!("{ready_text}, but no member reports a leader on its admin port"),
        ),
        (_, false) => set.set(
            CONDITION_QUORUM_HEALTHY,
            false,
            "TooFewMembersReady",
            &ready_text,
        ),
    }

    let (progressing, reason, message) = if cfg.paused {
        (
            false,
            "Paused",
            "spec.paused is true: no changes are made until it is cleared".to_string(),
        )
    } else if writing {
        (
            true,
            "Reconciling",
            "applying child objects to match the spec".to_string(),
        )
    } else if let Some(step) = decision.step {
        (true, step.reason(), step.describe(&cfg.name))
    } else if let Some(waiting) = &decision.waiting {
        (
            true,
            "WaitingForMembers",
            format!("{waiting}; {ready_text}"),
        )
    } else if facts.pods != desired || facts.ready < desired {
        (true, "WaitingForMembers", ready_text.clone())
    } else if !facts.outdated.is_empty() {
        (
            true,
            "RestartPending",
            format!(
                "{} run an older pod template and wait for a rolling restart",
                facts.outdated.join(", ")
            ),
        )
    } else {
        (
            false,
            "Converged",
            "the ensemble matches the spec".to_string(),
        )
    };
    set.set(CONDITION_PROGRESSING, progressing, reason, &message);

    if phase == Phase::Creating || facts.not_ready.is_empty() {
        set.set(CONDITION_DEGRADED, false, "AllMembersReady", &ready_text);
    } else {
        set.set(
            CONDITION_DEGRADED,
            true,
            "MembersNotReady",
            &format!("{} not ready; {ready_text}", facts.not_ready.join(", ")),
        );
    }

    if desired % 2 == 0 {
        set.set(
            CONDITION_EVEN_REPLICAS,
            true,
            "EvenReplicaCount",
            &even_replicas_message(desired),
        );
    } else {
        set.set(
            CONDITION_EVEN_REPLICAS,
            false,
            "OddReplicaCount",
            &format!("{desired} members survive {} failure(s)", desired - needed),
        );
    }
    set.finish()
}

fn became_true(previous: &[Condition], now: &[Condition], type_: &str) -> bool {
    let is_true = |cs: &[Condition]| cs.iter().any(|c| c.type_ == type_ && c.status == "True");
    is_true(now) && !is_true(previous)
}

/// Builds the condition list, keeping `lastTransitionTime` of every condition whose status did
/// not change, so an unchanged cluster yields an identical status.
struct ConditionSet<'a> {
    previous: &'a [Condition],
    generation: Option<i64>,
    now: &'a Time,
    conditions: Vec<Condition>,
}

impl<'a> ConditionSet<'a> {
    fn new(previous: &'a [Condition], generation: Option<i64>, now: &'a Time) -> Self {
        Self {
            previous,
            generation,
            now,
            conditions: Vec::new(),
        }
    }

    fn set(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let status = if status { "True" } else { "False" };
        let last_transition_time = self
            .previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| self.now.clone(), |c| c.last_transition_time.clone());
        self.conditions.retain(|c| c.type_ != type_);
        self.conditions.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: self.generation,
            last_transition_time,
        });
    }

    /// The conditions set, plus any earlier ones this plan did not touch.
    fn finish(self) -> Vec<Condition> {
        let mut out: Vec<Condition> = self
            .previous
            .iter()
            .filter(|p| !self.conditions.iter().any(|c| c.type_ == p.type_))
            .cloned()
            .collect();
        out.extend(self.conditions);
        out.sort_by(|a, b| a.type_.cmp(&b.type_));
        out
    }
}
