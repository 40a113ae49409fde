//! `membership`: the next safe step towards the spec's members, decided from what is observed
//! now and nothing else. Pure and synchronous, like the rest of [`super`].
//!
//! # Contract
//! [`decide`] takes a [`View`] (desired count, the StatefulSet's replicas, each pod's state and
//! admin report, the leader's view of the membership) and returns a [`Decision`]: how many pods
//! the StatefulSet should have, how many members a disruption may take, and at most one
//! [`Step`] — or, when no step is safe or needed, why it waits. Calling it again after a step
//! (or after an operator restart) continues from the observed state: nothing is remembered
//! between calls except `ever_founded`, which the caller reads from the resource's status.
//!
//! Member ids are ordinal + 1. Pods are created blank and wait to be added (`joinExisting`), so
//! the StatefulSet may run pods that are not members; they do nothing until a step adds them.
//!
//! # Rules, in the order they are tried
//! 1. `paused`: no step.
//! 2. No leader: the only step is founding the ensemble on member 0 — and only when no pod holds
//!    data, every existing pod answered, and the resource never recorded a membership (an
//!    ensemble that lost every member's data is not silently refounded).
//! 3. A pod shutting down (a restart or removal in progress): wait.
//! 4. A pod with data that is not in the leader's membership (a stale claim of a member removed
//!    earlier, or of an earlier ensemble): wipe it so that it rejoins blank.
//! 5. A voter that reports no data (it lost its volume): remove it, then it rejoins as a
//!    learner. A blank voter could grant two votes in one term.
//! 6. Learners: one no longer wanted is removed; otherwise caught-up learners are promoted,
//!    two in one change when the voters are odd and at least two more are wanted. The voters
//!    go from one odd count to the next: an even count needs as many members up as the next
//!    odd one and survives no more failures (two voters are worse than one). Until a second
//!    learner is there, rules 7 to 9 may add it; otherwise the learners are waited for.
//! 7. Scale down: a leader that must leave first hands leadership to a healthy voter that stays
//!    (if there is none yet, rules 8 and 9 add one first); then the highest unwanted voter is
//!    removed, together with the next unwanted one when the voters are odd (3 → 1, 5 → 3).
//!    Voters are never removed below the spec's count: where wanted members are missing
//!    (one lost its data), they join first.
//! 8. A pod on an outdated template that is not a member yet: restarted at once (a member is
//!    not at stake, and with `OnDelete` nothing else would ever fix a broken template).
//! 9. Scale up: the lowest wanted blank pod is added as a learner.
//! 10. Rolling restart of outdated voters: unhealthy ones first, then followers from the
//!     highest ordinal down, the leader last after leadership moved to a healthy voter.
//!
//! # Guards
//! A member is healthy when it answers, follows the current leader in its term and is within
//! [`CAUGHT_UP_LAG`] entries of the leader's log. A change of the voters (promote, remove) is
//! started only when the voters that would remain healthy are a quorum of the new voters and
//! the healthy voters are a quorum now. A restart is started only when every other voter is
//! healthy, so one member is down at a time and the one that came back caught up before the
//! next goes; with one or two voters a restart cannot keep a quorum and is done anyway (there
//! is no other way to update them). The leader is restarted or removed only after leadership
//! moved, unless it is the only voter. A member the spec no longer wants leaves the membership
//! only once its pod is `drained` (out of the client Service for a while; see
//! [`super::DRAIN_TIME`]): a member that leaves closes its client connections, and the clients
//! that reconnect through the Service must not be sent back to it or to the other one leaving.

use std::collections::{BTreeMap, BTreeSet};

use crate::controller::names::{self, quorum};

/// How far behind the leader's log (in entries) a member may be and still count as caught up:
/// the server's own bound for promotion and readiness.
pub const CAUGHT_UP_LAG: u64 = 1_000;

/// Everything the decision is made from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// `spec.replicas`.
    pub desired: i32,
    /// The StatefulSet's `spec.replicas`, if it exists.
    pub statefulset_replicas: Option<i32>,
    /// One entry per existing pod.
    pub seats: Vec<Seat>,
    /// The leader's report, if a member leads.
    pub leader: Option<LeaderView>,
    /// The resource's status recorded a membership once: the ensemble was founded.
    pub ever_founded: bool,
    pub paused: bool,
}

/// One pod of the StatefulSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seat {
    pub ordinal: i32,
    /// Being deleted.
    pub terminating: bool,
    /// Runs an older pod template than the StatefulSet's current one.
    pub outdated: bool,
    /// Out of the client Service long enough that new connections no longer reach it.
    pub drained: bool,
    /// What its admin port said; `None` if it did not answer.
    pub report: Option<SeatReport>,
}

/// The parts of a member's `/status` the decision needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeatReport {
    /// Holds a log: it was part of some ensemble.
    pub initialized: bool,
    pub leader_id: Option<i64>,
    pub term: u64,
}

/// The membership as the leader reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeaderView {
    pub ordinal: i32,
    pub term: u64,
    /// Voters by ordinal, with how many entries each lags (`None`: unknown).
    pub voters: BTreeMap<i32, Option<u64>>,
    /// Learners by ordinal, likewise.
    pub learners: BTreeMap<i32, Option<u64>>,
}

/// One action on the ensemble. Ordinals, not ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Found a new ensemble of this member alone.
    Bootstrap {
        ordinal: i32,
    },
    AddLearner {
        ordinal: i32,
    },
    /// Make `ordinal`, and `with` if given, voters in one change of the voters.
    Promote {
        ordinal: i32,
        with: Option<i32>,
    },
    /// Take `ordinal`, and `with` if given, out of the membership in one change.
    Remove {
        ordinal: i32,
        with: Option<i32>,
    },
    TransferLeadership {
        from: i32,
        to: i32,
    },
    /// Delete the pod so that it comes back on the current template.
    Restart {
        ordinal: i32,
    },
    /// Delete the pod's claim and the pod so that it comes back blank.
    Wipe {
        ordinal: i32,
    },
}

impl Step {
    /// The event reason of the step, PascalCase, also the Progressing condition's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Step::Bootstrap { .. } => "MemberBootstrapped",
            Step::AddLearner { .. } => "MemberAdded",
            Step::Promote { .. } => "MemberPromoted",
            Step::Remove { .. } => "MemberRemoved",
            Step::TransferLeadership { .. } => "LeaderTransferred",
            Step::Restart { .. } => "MemberRestarted",
            Step::Wipe { .. } => "MemberWiped",
        }
    }

    /// What the step does, for a human.
    pub fn describe(self, cluster: &str) -> String {
        let pod = |o: i32| names::member_pod(cluster, o);
        match self {
            Step::Bootstrap { ordinal } => format!("founding the ensemble on {}", pod(ordinal)),
            Step::AddLearner { ordinal } => format!("adding {} as a learner", pod(ordinal)),
            Step::Promote {
                ordinal,
                with: None,
            } => format!("promoting {}, caught up, to voter", pod(ordinal)),
            Step::Promote {
                ordinal,
                with: Some(with),
            } => format!(
                "promoting {} and {}, caught up, to voters together",
                pod(ordinal),
                pod(with)
            ),
            Step::Remove {
                ordinal,
                with: None,
            } => format!("removing {} from the membership", pod(ordinal)),
            Step::Remove {
                ordinal,
                with: Some(with),
            } => format!(
                "removing {} and {} from the membership together",
                pod(ordinal),
                pod(with)
            ),
            Step::TransferLeadership { from, to } => {
                format!("moving leadership from {} to {}", pod(from), pod(to))
            }
            Step::Restart { ordinal } => {
                format!("restarting {} on the current pod template", pod(ordinal))
            }
            Step::Wipe { ordinal } => format!(
                "wiping {}: its volume holds data of a membership it is not part of",
                pod(ordinal)
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub statefulset_replicas: i32,
    /// For the PodDisruptionBudget: voters − quorum(voters).
    pub max_unavailable: i32,
    pub step: Option<Step>,
    /// Why no step is taken although the members do not match the spec yet.
    pub waiting: Option<String>,
}

impl Decision {
    fn wait(mut self, why: impl Into<String>) -> Self {
        self.waiting = Some(why.into());
        self
    }

    fn take(mut self, step: Step) -> Self {
        self.step = Some(step);
        self
    }
}

/// The next step; see the module contract.
pub fn decide(view: &View) -> Decision {
    let observed_sts = view.statefulset_replicas.unwrap_or(0);
    let decision = |statefulset_replicas: i32, voters: i32| Decision {
        statefulset_replicas,
        max_unavailable: voters - quorum(voters),
        step: None,
        waiting: None,
    };
    let Some(leader) = &view.leader else {
        // Without a leader the membership is unknown: never shrink, growing adds blank pods only.
        let d = decision(view.desired.max(observed_sts), view.desired);
        return if view.paused { d } else { leaderless(view, d) };
    };
    let members: BTreeSet<i32> = leader
        .voters
        .keys()
        .chain(leader.learners.keys())
        .copied()
        .collect();
    let highest_member = members.iter().next_back().copied().unwrap_or(0);
    let d = decision(
        view.desired.max(highest_member + 1),
        leader.voters.len() as i32,
    );
    if view.paused {
        return d;
    }
    Ensemble::new(view, leader).next(d)
}

fn leaderless(view: &View, d: Decision) -> Decision {
    if view
        .seats
        .iter()
        .any(|s| s.report.as_ref().is_some_and(|r| r.initialized))
    {
        return d.wait("no member leads; waiting for an election");
    }
    if view.ever_founded {
        return d.wait(
            "no member holds data although the ensemble was founded: every volume was lost; \
             refusing to found a new, empty ensemble in its place",
        );
    }
    let expected = d.statefulset_replicas;
    let answered = view.seats.iter().filter(|s| s.report.is_some()).count() as i32;
    let first = view.seats.iter().find(|s| s.ordinal == 0);
    match first {
        Some(seat)
            if seat.report.is_some()
                && !seat.terminating
                && answered == view.seats.len() as i32 =>
        {
            d.take(Step::Bootstrap { ordinal: 0 })
        }
        _ => d.wait(format!(
            "waiting for the members to start: {answered} of {expected} answered"
        )),
    }
}

/// The decision with a leader known.
struct Ensemble<'a> {
    view: &'a View,
    leader: &'a LeaderView,
    seats: BTreeMap<i32, &'a Seat>,
}

impl<'a> Ensemble<'a> {
    fn new(view: &'a View, leader: &'a LeaderView) -> Self {
        Self {
            view,
            leader,
            seats: view.seats.iter().map(|s| (s.ordinal, s)).collect(),
        }
    }

    fn is_member(&self, ordinal: i32) -> bool {
        self.leader.voters.contains_key(&ordinal) || self.leader.learners.contains_key(&ordinal)
    }

    fn lag(&self, ordinal: i32) -> Option<u64> {
        if ordinal == self.leader.ordinal {
            return Some(0);
        }
        self.leader
            .voters
            .get(&ordinal)
            .or_else(|| self.leader.learners.get(&ordinal))
            .copied()
            .flatten()
    }

    fn healthy(&self, ordinal: i32) -> bool {
        if ordinal == self.leader.ordinal {
            return true;
        }
        let Some(seat) = self.seats.get(&ordinal) else {
            return false;
        };
        let follows = seat.report.as_ref().is_some_and(|r| {
            r.initialized
                && r.term == self.leader.term
                && r.leader_id == Some(i64::from(self.leader.ordinal) + 1)
        });
        follows && !seat.terminating && self.lag(ordinal).is_some_and(|l| l <= CAUGHT_UP_LAG)
    }

    /// Healthy voters, but for those in `except`.
    fn healthy_voters(&self, except: &[i32]) -> i32 {
        self.leader
            .voters
            .keys()
            .filter(|o| !except.contains(o) && self.healthy(**o))
            .count() as i32
    }

    fn voters(&self) -> i32 {
        self.leader.voters.len() as i32
    }

    /// The voter leadership should move to: healthy, wanted, on the current template if one is,
    /// least behind, lowest ordinal.
    fn successor(&self) -> Option<i32> {
        self.leader
            .voters
            .keys()
            .copied()
            .filter(|o| *o != self.leader.ordinal && *o < self.view.desired && self.healthy(*o))
            .min_by_key(|o| {
                let outdated = self.seats.get(o).is_some_and(|s| s.outdated);
                (outdated, self.lag(*o).unwrap_or(u64::MAX), *o)
            })
    }

    fn next(&self, d: Decision) -> Decision {
        let desired = self.view.desired;
        let name = |o: i32| format!("member {o}");

        // 3. Something is shutting down: let it finish first.
        if let Some(seat) = self.view.seats.iter().find(|s| s.terminating) {
            return d.wait(format!("{} is shutting down", name(seat.ordinal)));
        }

        // 4. Data that does not belong to this ensemble's membership.
        let stale = self.view.seats.iter().find(|s| {
            s.ordinal < d.statefulset_replicas
                && !self.is_member(s.ordinal)
                && s.report.as_ref().is_some_and(|r| r.initialized)
        });
        if let Some(seat) = stale {
            return d.take(Step::Wipe {
                ordinal: seat.ordinal,
            });
        }

        let voters = self.voters();
        let healthy = self.healthy_voters(&[]);
        let quorum_now = healthy >= quorum(voters);

        // 5. A voter that lost its data.
        let blank_voter = self.leader.voters.keys().copied().find(|o| {
            *o != self.leader.ordinal
                && self
                    .seats
                    .get(o)
                    .and_then(|s| s.report.as_ref())
                    .is_some_and(|r| !r.initialized)
        });
        if let Some(o) = blank_voter {
            return if quorum_now && self.healthy_voters(&[o]) >= quorum(voters - 1) {
                d.take(Step::Remove {
                    ordinal: o,
                    with: None,
                })
            } else {
                d.wait(format!(
                    "{} lost its data and must leave the voters, but too few voters are healthy",
                    name(o)
                ))
            };
        }

        // 6. Learners. Voters go from one odd count to the next: from an odd count with
        // two more wanted, two caught-up learners are promoted in one change, as an even
        // count would need as many members up as the next odd one and survive no more
        // failures. Until the second learner is there, rules 7 to 9 may add it.
        let mut learners_wait = None;
        if let Some((&o, &lag)) = self.leader.learners.iter().next() {
            if !quorum_now {
                return d.wait(format!(
                    "only {healthy} of {voters} voters are healthy; {} waits",
                    name(o)
                ));
            }
            if let Some(&unwanted) = self.leader.learners.keys().find(|l| **l >= desired) {
                return self.remove_unwanted(d, unwanted, None);
            }
            let together = if voters % 2 == 1 && desired >= voters + 2 {
                2
            } else {
                1
            };
            let caught_up: Vec<i32> = self
                .leader
                .learners
                .keys()
                .copied()
                .filter(|l| self.healthy(*l))
                .take(together)
                .collect();
            if caught_up.len() == together
                && healthy + together as i32 >= quorum(voters + together as i32)
            {
                return d.take(Step::Promote {
                    ordinal: caught_up[0],
                    with: caught_up.get(1).copied(),
                });
            }
            let why = format!(
                "{} is catching up as a learner ({} entries behind)",
                name(o),
                lag.map_or("unknown".to_string(), |l| l.to_string())
            );
            if self.leader.learners.len() >= together {
                return d.wait(why);
            }
            learners_wait = Some(why);
        }

        // 7. Scale down, highest ordinal first, two voters at once from an odd count. A
        // leader that must leave hands leadership over first; with no successor yet, it
        // waits for the wanted members to be added (rules 8 and 9).
        let mut leader_stuck = None;
        let unwanted: Vec<i32> = self
            .leader
            .voters
            .keys()
            .rev()
            .copied()
            .filter(|o| *o >= desired)
            .collect();
        if unwanted.contains(&self.leader.ordinal) {
            let from = self.leader.ordinal;
            match self.successor() {
                Some(to) => return d.take(Step::TransferLeadership { from, to }),
                None => {
                    leader_stuck = Some(format!(
                        "{} leads and must leave, but no voter that stays is healthy to take over",
                        name(from)
                    ))
                }
            }
        } else if let Some(&o) = unwanted.first().filter(|_| voters > desired) {
            let with = unwanted
                .get(1)
                .copied()
                .filter(|_| voters % 2 == 1 && voters - 2 >= desired);
            let leaving: Vec<i32> = unwanted
                .iter()
                .copied()
                .take(1 + usize::from(with.is_some()))
                .collect();
            let after = voters - leaving.len() as i32;
            return if quorum_now && self.healthy_voters(&leaving) >= quorum(after) {
                self.remove_unwanted(d, o, with)
            } else {
                d.wait(format!(
                    "removing {} would leave too few healthy voters ({healthy} of {voters} healthy)",
                    name(o)
                ))
            };
        }

        // 8. A pod on an old template that holds no membership.
        if let Some(seat) = self
            .view
            .seats
            .iter()
            .find(|s| s.outdated && !self.is_member(s.ordinal))
        {
            return d.take(Step::Restart {
                ordinal: seat.ordinal,
            });
        }

        // 9. Scale up, lowest ordinal first.
        if let Some(o) = (0..desired).find(|o| !self.is_member(*o)) {
            let waiting_to_join = self
                .seats
                .get(&o)
                .and_then(|s| s.report.as_ref())
                .is_some_and(|r| !r.initialized);
            return if !waiting_to_join {
                d.wait(format!("waiting for {} to start and answer", name(o)))
            } else if !quorum_now {
                d.wait(format!(
                    "only {healthy} of {voters} voters are healthy; adding {} waits",
                    name(o)
                ))
            } else {
                d.take(Step::AddLearner { ordinal: o })
            };
        }

        if let Some(why) = leader_stuck.or(learners_wait) {
            return d.wait(why);
        }

        // 10. Rolling restart.
        self.roll(d)
    }

    /// Removes members the spec no longer wants once their pods are drained.
    fn remove_unwanted(&self, d: Decision, ordinal: i32, with: Option<i32>) -> Decision {
        // A pod that is gone takes no connections.
        let draining = [Some(ordinal), with]
            .into_iter()
            .flatten()
            .find(|o| self.seats.get(o).is_some_and(|s| !s.drained));
        match draining {
            Some(o) => d.wait(format!(
                "member {o} leaves the client Service before it leaves the membership"
            )),
            None => d.take(Step::Remove { ordinal, with }),
        }
    }

    fn roll(&self, d: Decision) -> Decision {
        let outdated: Vec<i32> = self
            .leader
            .voters
            .keys()
            .copied()
            .filter(|o| self.seats.get(o).is_some_and(|s| s.outdated))
            .collect();
        if outdated.is_empty() {
            return d;
        }
        let voters = self.voters();
        let others_healthy = |o: i32| self.healthy_voters(&[o]) == voters - 1;
        // Unhealthy ones first: restarting them takes nothing that works away.
        let target = outdated
            .iter()
            .copied()
            .filter(|o| !self.healthy(*o))
            .max()
            .or_else(|| {
                outdated
                    .iter()
                    .copied()
                    .filter(|o| *o != self.leader.ordinal)
                    .max()
            });
        match target {
            Some(o) if others_healthy(o) => d.take(Step::Restart { ordinal: o }),
            Some(o) => d.wait(format!(
                "member {o} waits for a restart until every other voter is healthy"
            )),
            None => {
                // Only the leader is left to restart.
                let o = self.leader.ordinal;
                if voters == 1 {
                    d.take(Step::Restart { ordinal: o })
                } else if !others_healthy(o) {
                    d.wait("the leader waits for a restart until every other voter is healthy")
                } else {
                    match self.successor() {
                        Some(to) => d.take(Step::TransferLeadership { from: o, to }),
                        None => d.wait("no healthy voter can take over from the leader"),
                    }
                }
            }
        }
    }
}
