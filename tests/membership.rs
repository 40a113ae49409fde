//! The membership planner against a simulated ensemble, under random faults.
//!
//! The simulation is a small model of what the real members and the StatefulSet controller do
//! with each step: a learner catches up over a few rounds, a restarted pod comes back on the
//! current template, a wiped one comes back blank, a leader is elected among the voters that
//! hold data whenever a majority of them is up, a member that lost its log is sent it again by
//! the leader. Every round the planner sees only a [`View`]
//! built from the model, as the operator sees only what it observes; nothing carries over
//! between rounds, so every round is also an operator that just restarted.
//!
//! Checked after every step: at most two learners, a second only while the voters wait for a
//! pair; a step never breaks a quorum that was healthy (except restarting one of one or two
//! voters, which cannot be done otherwise); promoting learners or removing unwanted voters
//! leaves an even number of voters only when that is the spec (1 → 3 and 3 → 1 never pass
//! through two); the leader is never removed, nor restarted while another healthy voter could
//! lead; no member's pod is ever scaled away; a new ensemble is founded only where no data
//! exists. And once the faults stop and every pod is up again, the ensemble converges to the
//! spec: the wanted voters, no learner, every pod on the current template.

use std::collections::{BTreeMap, BTreeSet};

use ensemble::controller::names::quorum;
use ensemble::controller::plan::membership::{
    decide, LeaderView, Seat, SeatReport, Step, View, CAUGHT_UP_LAG,
};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Data {
    Blank,
    /// The log of this ensemble.
    Member,
    /// A log of a membership the pod is no longer part of.
    Stale,
}

#[derive(Clone, Debug)]
struct Pod {
    up: bool,
    terminating: bool,
    data: Data,
    revision: u32,
    lag: u64,
    /// Rounds since the operator took it out of the client Service (`None`: in it).
    drained_for: Option<u32>,
}

impl Pod {
    fn fresh(revision: u32) -> Self {
        Pod {
            up: true,
            terminating: false,
            data: Data::Blank,
            revision,
            lag: 0,
            drained_for: None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill(i32),
    Revive(i32),
    Slow(i32),
    LoseData(i32),
    StaleClaim(i32),
    Elect(i32),
    Resize(i32),
    NewTemplate,
    Pause(bool),
}

#[derive(Debug)]
struct Sim {
    desired: i32,
    paused: bool,
    statefulset: Option<i32>,
    pods: BTreeMap<i32, Pod>,
    voters: BTreeSet<i32>,
    learners: BTreeSet<i32>,
    leader: Option<i32>,
    term: u64,
    revision: u32,
    ever_founded: bool,
    /// A majority of voters lost their data at some point: no way back without a human.
    unrecoverable: bool,
    log: Vec<String>,
}

impl Sim {
    fn new(desired: i32) -> Self {
        Sim {
            desired,
            paused: false,
            statefulset: None,
            pods: BTreeMap::new(),
            voters: BTreeSet::new(),
            learners: BTreeSet::new(),
            leader: None,
            term: 0,
            revision: 1,
            ever_founded: false,
            unrecoverable: false,
            log: Vec::new(),
        }
    }

    fn is_member(&self, o: i32) -> bool {
        self.voters.contains(&o) || self.learners.contains(&o)
    }

    /// Up, holding this ensemble's log, following the leader closely.
    fn healthy(&self, o: i32) -> bool {
        self.leader.is_some()
            && self.is_member(o)
            && self.pods.get(&o).is_some_and(|p| {
                p.up && !p.terminating && p.data == Data::Member && p.lag <= CAUGHT_UP_LAG
            })
    }

    fn healthy_voters(&self) -> i32 {
        self.voters.iter().filter(|o| self.healthy(**o)).count() as i32
    }

    /// Raft, coarsely: the leader stays while it is up with its data; else a voter that is up
    /// with data wins once a majority of the voters is up with data.
    fn elect(&mut self) {
        let alive = |o: &i32| {
            self.pods
                .get(o)
                .is_some_and(|p| p.up && !p.terminating && p.data == Data::Member)
        };
        if self
            .leader
            .is_some_and(|l| alive(&l) && self.voters.contains(&l))
        {
            return;
        }
        let candidates: Vec<i32> = self.voters.iter().copied().filter(alive).collect();
        let lost_data = self
            .voters
            .iter()
            .filter(|o| self.pods.get(o).is_some_and(|p| p.data != Data::Member))
            .count() as i32;
        if !self.voters.is_empty()
            && self.voters.len() as i32 - lost_data < quorum(self.voters.len() as i32)
        {
            self.unrecoverable = true;
        }
        self.leader = None;
        if candidates.len() as i32 >= quorum(self.voters.len() as i32) {
            self.lead(candidates[0]);
        }
    }

    /// `o` leads in a new term; the leader is never behind itself.
    fn lead(&mut self, o: i32) {
        self.leader = Some(o);
        self.term += 1;
        if let Some(pod) = self.pods.get_mut(&o) {
            pod.lag = 0;
        }
    }

    fn view(&self) -> View {
        let leader = self.leader.map(|l| {
            let lag = |o: &i32| (*o, self.pods.get(o).filter(|p| p.up).map(|p| p.lag));
            LeaderView {
                ordinal: l,
                term: self.term,
                voters: self.voters.iter().map(lag).collect(),
                learners: self.learners.iter().map(lag).collect(),
            }
        });
        let seats = self
            .pods
            .iter()
            .map(|(&ordinal, pod)| Seat {
                ordinal,
                terminating: pod.terminating,
                outdated: pod.revision != self.revision,
                drained: pod.drained_for.is_some_and(|rounds| rounds >= 1),
                report: (pod.up && !pod.terminating).then(|| SeatReport {
                    initialized: pod.data != Data::Blank,
                    leader_id: self
                        .leader
                        .filter(|_| self.is_member(ordinal) && pod.data == Data::Member)
                        .map(|l| i64::from(l) + 1),
                    term: self.term,
                }),
            })
            .collect();
        View {
            desired: self.desired,
            statefulset_replicas: self.statefulset,
            seats,
            leader,
            ever_founded: self.ever_founded,
            paused: self.paused,
        }
    }

    /// One reconcile: decide, check, apply; then the world moves on by one round.
    fn round(&mut self) {
        if !self.paused {
            // The plan's pod writes: out of the client Service exactly when unwanted.
            let desired = self.desired;
            for (o, pod) in &mut self.pods {
                if *o < desired {
                    pod.drained_for = None;
                } else if pod.drained_for.is_none() && !pod.terminating {
                    pod.drained_for = Some(0);
                }
            }
        }
        let decision = decide(&self.view());
        if let Some(step) = decision.step {
            assert!(!self.paused, "a step while paused: {step:?}");
            self.log.push(format!("{step:?}"));
            self.check_and_apply(step);
        }
        self.scale_to(decision.statefulset_replicas);
        assert!(self.learners.len() <= 2, "three learners: {self:?}");
        self.tick();
    }

    fn check_and_apply(&mut self, step: Step) {
        let voters_before = self.voters.len() as i32;
        let quorum_before = self.healthy_voters() >= quorum(voters_before);
        let other_healthy =
            |sim: &Sim, o: i32| sim.voters.iter().any(|v| *v != o && sim.healthy(*v));
        match step {
            Step::Bootstrap { ordinal } => {
                assert!(!self.ever_founded, "founded twice: {self:?}");
                assert!(
                    self.pods.values().all(|p| p.data == Data::Blank),
                    "founded over data: {self:?}"
                );
                let pod = self
                    .pods
                    .get_mut(&ordinal)
                    .expect("bootstrap of a missing pod");
                pod.data = Data::Member;
                self.voters.insert(ordinal);
                self.ever_founded = true;
                self.lead(ordinal);
            }
            Step::AddLearner { ordinal } => {
                assert!(
                    self.learners.is_empty()
                        || (self.learners.len() == 1 && voters_before % 2 == 1),
                    "a second learner while no pair is wanted: {self:?}"
                );
                assert!(!self.is_member(ordinal));
                let pod = self.pods.get_mut(&ordinal).expect("adding a missing pod");
                assert_eq!(pod.data, Data::Blank, "added a pod with data");
                pod.data = Data::Member;
                pod.lag = 5_000;
                self.learners.insert(ordinal);
            }
            Step::Promote { ordinal, with } => {
                for o in [Some(ordinal), with].into_iter().flatten() {
                    assert!(self.healthy(o), "promoted a learner that is behind or down");
                    assert!(self.learners.remove(&o), "promoted a non-learner");
                    self.voters.insert(o);
                }
                self.assert_odd_unless_wanted(step, voters_before);
            }
            Step::Remove { ordinal, with } => {
                // Not a voter that lost its data: that one leaves at once, as a repair.
                let scaling_down = ordinal >= self.desired
                    && self.voters.contains(&ordinal)
                    && self
                        .pods
                        .get(&ordinal)
                        .is_none_or(|p| p.data != Data::Blank);
                for o in [Some(ordinal), with].into_iter().flatten() {
                    assert_ne!(self.leader, Some(o), "removed the leader: {self:?}");
                    let serving = self.pods.get(&o).is_some_and(|p| {
                        p.data != Data::Blank && p.drained_for.is_none_or(|rounds| rounds < 1)
                    });
                    assert!(
                        o < self.desired || !serving,
                        "removed member {o} while clients could still be sent to it: {self:?}"
                    );
                    assert!(self.voters.remove(&o) || self.learners.remove(&o));
                    if let Some(pod) = self.pods.get_mut(&o) {
                        if pod.data == Data::Member {
                            pod.data = Data::Stale;
                        }
                    }
                }
                if scaling_down {
                    self.assert_odd_unless_wanted(step, voters_before);
                }
            }
            Step::TransferLeadership { from, to } => {
                assert_eq!(self.leader, Some(from));
                assert!(
                    self.voters.contains(&to) && self.healthy(to),
                    "moved to an unhealthy voter"
                );
                self.lead(to);
            }
            Step::Restart { ordinal } => {
                if self.leader == Some(ordinal) {
                    assert!(
                        !other_healthy(self, ordinal),
                        "restarted the leader while another voter could lead: {self:?}"
                    );
                }
                let pod = self
                    .pods
                    .get_mut(&ordinal)
                    .expect("restart of a missing pod");
                pod.terminating = true;
            }
            Step::Wipe { ordinal } => {
                assert!(!self.is_member(ordinal), "wiped a member: {self:?}");
                let pod = self.pods.get_mut(&ordinal).expect("wipe of a missing pod");
                pod.terminating = true;
                pod.data = Data::Blank;
            }
        }
        let voters_after = self.voters.len() as i32;
        let small_restart = matches!(step, Step::Restart { .. }) && voters_before <= 2;
        if quorum_before && !small_restart {
            assert!(
                self.healthy_voters() >= quorum(voters_after),
                "{step:?} broke a healthy quorum: {self:?}"
            );
        }
        self.elect();
    }

    /// After a step that moves the voters towards the spec: an even count only if wanted,
    /// or, while a wanted learner that lost its data rejoins, above the spec (3 → 4 → 3 → 1
    /// when member 0 must come back and members 1 to 3 go).
    fn assert_odd_unless_wanted(&self, step: Step, voters_before: i32) {
        let voters = self.voters.len() as i32;
        let replacing = matches!(step, Step::Promote { .. }) && voters_before >= self.desired;
        assert!(
            voters % 2 == 1 || voters == self.desired || replacing,
            "{step:?} left {voters} voters on the way to {}: {self:?}",
            self.desired
        );
    }

    fn scale_to(&mut self, replicas: i32) {
        self.statefulset = Some(replicas);
        let gone: Vec<i32> = self.pods.range(replicas..).map(|(o, _)| *o).collect();
        for o in gone {
            assert!(!self.is_member(o), "scaled away member {o}: {self:?}");
            self.pods.remove(&o);
        }
        for o in 0..replicas {
            self.pods
                .entry(o)
                .or_insert_with(|| Pod::fresh(self.revision));
        }
    }

    fn tick(&mut self) {
        let members: BTreeSet<i32> = self.voters.union(&self.learners).copied().collect();
        let leading = self.leader.is_some();
        for (o, pod) in &mut self.pods {
            // The leader sends a member that lost its log everything again, as to a new one.
            if leading && members.contains(o) && pod.up && pod.data == Data::Blank {
                pod.data = Data::Member;
                pod.lag = 5_000;
            }
            if let Some(rounds) = pod.drained_for.as_mut() {
                *rounds += 1;
            }
            if pod.terminating {
                // Back from the template, which puts it in the client Service.
                pod.drained_for = None;
                pod.terminating = false;
                pod.up = true;
                pod.revision = self.revision;
                if pod.data == Data::Member {
                    pod.lag = 2_000;
                }
            } else if pod.up {
                pod.lag = pod.lag.saturating_sub(3_000);
            }
        }
        self.elect();
    }

    fn inject(&mut self, fault: Fault) {
        self.log.push(format!("fault {fault:?}"));
        match fault {
            Fault::Kill(o) => self.pods.get_mut(&o).into_iter().for_each(|p| p.up = false),
            Fault::Revive(o) => self.pods.get_mut(&o).into_iter().for_each(|p| p.up = true),
            Fault::Slow(o) if self.leader != Some(o) => self
                .pods
                .get_mut(&o)
                .into_iter()
                .for_each(|p| p.lag = 50_000),
            Fault::Slow(_) => {}
            Fault::LoseData(o) => self
                .pods
                .get_mut(&o)
                .into_iter()
                .for_each(|p| p.data = Data::Blank),
            Fault::StaleClaim(o) => {
                if !self.is_member(o) {
                    self.pods
                        .get_mut(&o)
                        .into_iter()
                        .for_each(|p| p.data = Data::Stale);
                }
            }
            Fault::Elect(o) => {
                if self.voters.contains(&o) && self.healthy(o) {
                    self.lead(o);
                }
            }
            Fault::Resize(n) => self.desired = n,
            Fault::NewTemplate => self.revision += 1,
            Fault::Pause(paused) => self.paused = paused,
        }
        self.elect();
    }

    fn converged(&self) -> bool {
        self.voters == (0..self.desired).collect()
            && self.learners.is_empty()
            && self.statefulset == Some(self.desired)
            && self.pods.len() as i32 == self.desired
            && self
                .pods
                .values()
                .all(|p| p.revision == self.revision && p.up)
    }
}

fn fault() -> impl Strategy<Value = Fault> {
    let ordinal = 0..6i32;
    prop_oneof![
        3 => ordinal.clone().prop_map(Fault::Kill),
        3 => ordinal.clone().prop_map(Fault::Revive),
        2 => ordinal.clone().prop_map(Fault::Slow),
        1 => ordinal.clone().prop_map(Fault::LoseData),
        1 => ordinal.clone().prop_map(Fault::StaleClaim),
        2 => ordinal.prop_map(Fault::Elect),
        3 => (1..=5i32).prop_map(Fault::Resize),
        2 => Just(Fault::NewTemplate),
        1 => any::<bool>().prop_map(Fault::Pause),
    ]
}

/// Runs the faults, a few rounds after each, then heals and checks convergence.
fn run(desired: i32, faults: &[(Fault, u8)]) -> Sim {
    let mut sim = Sim::new(desired);
    for _ in 0..3 {
        sim.round();
    }
    for (fault, rounds) in faults {
        sim.inject(*fault);
        for _ in 0..*rounds {
            sim.round();
        }
    }
    sim.paused = false;
    for pod in sim.pods.values_mut() {
        pod.up = true;
    }
    sim.elect();
    for _ in 0..120 {
        if sim.converged() {
            break;
        }
        sim.round();
    }
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn steps_are_safe_and_converge(
        desired in 1..=5i32,
        faults in prop::collection::vec((fault(), 0..4u8), 0..25),
    ) {
        let sim = run(desired, &faults);
        if !sim.unrecoverable {
            prop_assert!(sim.converged(), "did not converge: {sim:#?}");
        }
    }
}

#[test]
fn creation_founds_one_member_and_promotes_the_others_together() {
    let sim = run(3, &[]);
    assert!(sim.converged(), "{sim:#?}");
    assert_eq!(
        sim.log,
        [
            "Bootstrap { ordinal: 0 }",
            "AddLearner { ordinal: 1 }",
            "AddLearner { ordinal: 2 }",
            "Promote { ordinal: 1, with: Some(2) }",
        ]
    );
}

/// The voters go from odd count to odd count; an even spec takes its last member alone.
#[test]
fn voters_grow_and_shrink_two_at_a_time() {
    let changes = |from: i32, to: i32| {
        let mut sim = run(from, &[]);
        assert!(sim.converged(), "{sim:#?}");
        sim.log.clear();
        sim.desired = to;
        for _ in 0..40 {
            sim.round();
        }
        assert!(sim.converged(), "{sim:#?}");
        sim.log
            .iter()
            .filter(|s| s.starts_with("Promote") || s.starts_with("Remove"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        changes(1, 5),
        [
            "Promote { ordinal: 1, with: Some(2) }",
            "Promote { ordinal: 3, with: Some(4) }",
        ]
    );
    assert_eq!(
        changes(5, 1),
        [
            "Remove { ordinal: 4, with: Some(3) }",
            "Remove { ordinal: 2, with: Some(1) }",
        ]
    );
    assert_eq!(
        changes(1, 4),
        [
            "Promote { ordinal: 1, with: Some(2) }",
            "Promote { ordinal: 3, with: None }",
        ]
    );
    assert_eq!(
        changes(4, 1),
        [
            "Remove { ordinal: 3, with: None }",
            "Remove { ordinal: 2, with: Some(1) }",
        ]
    );
    assert_eq!(changes(1, 2), ["Promote { ordinal: 1, with: None }"]);
}

#[test]
fn scaling_down_the_leader_moves_leadership_first() {
    let mut sim = run(3, &[]);
    sim.inject(Fault::Elect(2));
    assert_eq!(sim.leader, Some(2));
    sim.log.clear();
    sim.desired = 1;
    for _ in 0..20 {
        sim.round();
    }
    assert!(sim.converged(), "{sim:#?}");
    assert_eq!(
        sim.log,
        [
            "TransferLeadership { from: 2, to: 0 }",
            "Remove { ordinal: 2, with: Some(1) }",
        ]
    );
}

#[test]
fn a_rolling_restart_takes_followers_first_and_the_leader_last() {
    let mut sim = run(3, &[]);
    sim.inject(Fault::Elect(1));
    sim.log.clear();
    sim.revision += 1;
    for _ in 0..30 {
        sim.round();
    }
    assert!(sim.converged(), "{sim:#?}");
    assert_eq!(
        sim.log,
        [
            "Restart { ordinal: 2 }",
            "Restart { ordinal: 0 }",
            "TransferLeadership { from: 1, to: 0 }",
            "Restart { ordinal: 1 }",
        ]
    );
}

#[test]
fn nothing_is_founded_again_after_every_volume_was_lost() {
    let mut sim = run(3, &[]);
    for o in 0..3 {
        sim.inject(Fault::LoseData(o));
    }
    sim.log.clear();
    for _ in 0..10 {
        sim.round();
    }
    assert!(sim.log.is_empty(), "{:?}", sim.log);
    let decision = decide(&sim.view());
    assert!(
        decision
            .waiting
            .as_deref()
            .is_some_and(|w| w.contains("every volume was lost")),
        "{decision:?}"
    );
}

#[test]
fn a_stale_claim_is_wiped_before_its_pod_joins() {
    let mut sim = run(1, &[]);
    sim.desired = 2;
    sim.round(); // the StatefulSet grows
    sim.inject(Fault::StaleClaim(1));
    sim.log.clear();
    for _ in 0..10 {
        sim.round();
    }
    assert!(sim.converged(), "{sim:#?}");
    assert_eq!(
        sim.log[..3],
        [
            "Wipe { ordinal: 1 }",
            "AddLearner { ordinal: 1 }",
            "Promote { ordinal: 1, with: None }"
        ]
    );
}
