//! ZooKeeper's view of the membership: the `/zookeeper/config` text and the
//! `reconfig` operation, on top of consensus's membership changes.
//!
//! Contract:
//! - A member's address in the membership is `host:peerPort`, optionally followed
//!   by `;clientHost:clientPort` (where clients reach it); [`parse_member_address`]
//!   checks one given from outside (the admin port's add-learner call).
//!   [`config_text`] prints the membership as ZooKeeper's dynamic configuration: one
//!   `server.<id>=<host>:<peer>:<peer+1>:participant|observer[;<client>]` line per
//!   member, then `version=<hex>`, the log index of the membership entry.
//!   ZooKeeper's second port is its election port; Raft needs none, but
//!   ZooKeeper's own parser (which Curator and the Java tools use) refuses a line
//!   whose two ports are equal, so the second is the peer port + 1, unused.
//! - [`plan`] turns a reconfig request into membership changes, or the error code
//!   ZooKeeper answers: `BadVersion` if `curConfigId` is neither -1 nor the
//!   current version, `BadArguments` for malformed lines, unknown leaving ids, a
//!   joining id that is already a member with the same role, or a result without
//!   voters. Incremental requests list joining server lines and leaving ids
//!   (comma-separated); a non-incremental one lists the whole new membership.
//! - [`execute`] runs the planned changes through consensus and is atomic, as
//!   ZooKeeper's reconfig is: members that join are first added as learners (which
//!   do not vote); then one change of the voters (joint consensus) promotes the
//!   joining participants, once caught up, and removes the leaving members
//!   together, so no set of voters in between ever decides. If any part fails, the
//!   learners it added are removed again and the membership is as it was. Refusals
//!   map to ZooKeeper's codes (a change in progress is `ReconfigInProgress`; a
//!   learner that does not catch up in time is `NewConfigNoQuorum`). It returns the
//!   membership after the change of the voters as the leader wrote it, which a member
//!   that the change removes answers with, since it never applies that change itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{ServerRole, ServerSpec};
use crate::consensus::{Consensus, ConsensusError, MemberId, Membership};
use crate::protocol::{ErrorCode, ReconfigRequest};

/// One membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Add {
        id: MemberId,
        address: String,
        voter: bool,
    },
    Remove(MemberId),
}

/// The membership address of a `server.<id>` line: `host:peer[;clientHost:clientPort]`.
pub(crate) fn member_address(spec: &ServerSpec) -> String {
    match &spec.client {
        Some((host, port)) => format!("{};{host}:{port}", spec.peer_address()),
        None => spec.peer_address(),
    }
}

/// Checks a membership address given from outside (see the module contract): the
/// address without surrounding blanks, or why it is not one.
pub(crate) fn parse_member_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    let (peer, client) = match text.split_once(';') {
        Some((peer, client)) => (peer, Some(client)),
        None => (text, None),
    };
    let check = |part: &str, what: &str| match part.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty()
                && !host.contains([' ', ';'])
                && port.parse::<u16>().is_ok_and(|p| p != 0) =>
        {
            Ok(())
        }
        _ => Err(format!("{what} {part:?} is not host:port")),
    };
    check(peer, "peer address")?;
    if let Some(client) = client {
        check(client, "client address")?;
    }
    Ok(text.to_owned())
}

/// The line (after `server.<id>=`) for a member at `address`.
fn line(address: &str, voter: bool) -> String {
    let (peer, client) = match address.split_once(';') {
        Some((peer, client)) => (peer, Some(client)),
        None => (address, None),
    };
    let (host, port) = peer.rsplit_once(':').unwrap_or((peer, ""));
    let election = port
        .parse::<u16>()
        .map_or_else(|_| port.to_owned(), |p| p.wrapping_add(1).to_string());
    let role = if voter { "participant" } else { "observer" };
    let mut text = format!("{host}:{port}:{election}:{role}");
    if let Some(client) = client {
        text.push(';');
        text.push_str(client);
    }
    text
}

/// `/zookeeper/config`'s data; see the module contract. `local` is this member's
/// id and bound client address, used when its membership address names none (it
/// came from a `server.<id>` line without one).
pub(crate) fn config_text(membership: &Membership, local: Option<(MemberId, &str)>) -> String {
    let with_client = |id: &MemberId, address: &String| match local {
        Some((me, client)) if me == *id && !address.contains(';') => format!("{address};{client}"),
        _ => address.clone(),
    };
    let mut members: BTreeMap<MemberId, String> = BTreeMap::new();
    for (id, address) in &membership.voters {
        members.insert(*id, line(&with_client(id, address), true));
    }
    for (id, address) in &membership.learners {
        members.insert(*id, line(&with_client(id, address), false));
    }
    let mut text = String::new();
    for (id, member) in members {
        text.push_str(&format!("server.{id}={member}\n"));
    }
    text.push_str(&format!("version={:x}", membership.version));
    text
}

/// Parses `server.<id>=<spec>` lines separated by commas or newlines.
fn parse_servers(text: &str) -> Result<Vec<(MemberId, ServerSpec)>, ErrorCode> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("version="))
        .map(|l| {
            let (key, value) = l.split_once('=').ok_or(ErrorCode::BadArguments)?;
            let id = key
                .trim()
                .strip_prefix("server.")
                .and_then(|id| id.parse().ok())
                .filter(|id| *id > 0)
                .ok_or(ErrorCode::BadArguments)?;
            let spec = ServerSpec::parse(value).map_err(|_| ErrorCode::BadArguments)?;
            Ok((id, spec))
        })
        .collect()
}

/// The changes a reconfig request asks for; see the module contract.
pub(crate) fn plan(
    request: &ReconfigRequest,
    current: &Membership,
) -> Result<Vec<Change>, ErrorCode> {
    let version = i64::try_from(current.version).unwrap_or(i64::MAX);
    if request.cur_config_id != -1 && request.cur_config_id != version {
        return Err(ErrorCode::BadVersion);
    }
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    let non_empty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    if non_empty(&request.new_members) {
        let wanted = parse_servers(request.new_members.as_deref().unwrap_or_default())?;
        let wanted_ids: Vec<MemberId> = wanted.iter().map(|(id, _)| *id).collect();
        for (id, spec) in wanted {
            let voter = spec.role == ServerRole::Participant;
            let same = if voter {
                current.voters.contains_key(&id)
            } else {
                current.learners.contains_key(&id)
            };
            if !same {
                adds.push(Change::Add {
                    id,
                    address: member_address(&spec),
                    voter,
                });
            }
        }
        for id in current.voters.keys().chain(current.learners.keys()) {
            if !wanted_ids.contains(id) {
                removes.push(Change::Remove(*id));
            }
        }
    } else {
        for (id, spec) in parse_servers(request.joining_servers.as_deref().unwrap_or_default())? {
            let voter = spec.role == ServerRole::Participant;
            if (voter && current.voters.contains_key(&id))
                || (!voter && current.learners.contains_key(&id))
            {
                return Err(ErrorCode::BadArguments);
            }
            adds.push(Change::Add {
                id,
                address: member_address(&spec),
                voter,
            });
        }
        for id in request
            .leaving_servers
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let id: MemberId = id.parse().map_err(|_| ErrorCode::BadArguments)?;
            if !current.contains(id) {
                return Err(ErrorCode::BadArguments);
            }
            removes.push(Change::Remove(id));
        }
    }
    // A result without voters is refused before anything changes.
    let mut voters: Vec<MemberId> = current.voters.keys().copied().collect();
    for change in adds.iter().chain(&removes) {
        match change {
            Change::Add {
                id, voter: true, ..
            } => voters.push(*id),
            Change::Add {
                id, voter: false, ..
            }
            | Change::Remove(id) => voters.retain(|v| v != id),
        }
    }
    if voters.is_empty() {
        return Err(ErrorCode::BadArguments);
    }
    adds.extend(removes);
    Ok(adds)
}

fn code(error: &ConsensusError) -> ErrorCode {
    match error {
        ConsensusError::ChangeInProgress => ErrorCode::ReconfigInProgress,
        ConsensusError::NotCaughtUp { .. } | ConsensusError::Timeout => {
            ErrorCode::NewConfigNoQuorum
        }
        ConsensusError::UnknownMember(_)
        | ConsensusError::AlreadyMember(_)
        | ConsensusError::LastVoter(_) => ErrorCode::BadArguments,
        ConsensusError::NoLeader | ConsensusError::Stopped => ErrorCode::ConnectionLoss,
        ConsensusError::Storage { .. } | ConsensusError::Other(_) => ErrorCode::SystemError,
    }
}

/// Runs the planned changes; see the module contract. Joining participants have
/// `catch_up` (ZooKeeper's `initLimit` ticks) to catch up.
pub(crate) async fn execute(
    consensus: &Consensus,
    changes: Vec<Change>,
    catch_up: Duration,
) -> Result<Option<Arc<Membership>>, ErrorCode> {
    let before = consensus.status().membership;
    let mut promote = BTreeSet::new();
    let mut remove = BTreeSet::new();
    let mut joining = Vec::new();
    for change in changes {
        match change {
            // A voter that becomes an observer: consensus has no demotion of its own,
            // so ZooKeeper's answer for what it cannot do, before anything changes.
            Change::Add {
                id, voter: false, ..
            } if before.voters.contains_key(&id) => return Err(ErrorCode::BadArguments),
            Change::Add { id, address, voter } => {
                if !before.contains(id) {
                    joining.push((id, address));
                }
                if voter && !before.voters.contains_key(&id) {
                    promote.insert(id);
                }
            }
            Change::Remove(id) => {
                remove.insert(id);
            }
        }
    }
    let mut added = BTreeSet::new();
    let mut outcome = Ok(None);
    for (id, address) in joining {
        if let Err(e) = consensus.add_learner(id, address).await {
            outcome = Err(e);
            break;
        }
        added.insert(id);
    }
    if outcome.is_ok() && !(promote.is_empty() && remove.is_empty()) {
        let deadline = Instant::now() + catch_up;
        outcome = loop {
            match consensus
                .change_voters(promote.clone(), remove.clone())
                .await
            {
                Err(ConsensusError::NotCaughtUp { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                done => break done.map(Some),
            }
        };
    }
    match outcome {
        Ok(after) => Ok(after),
        Err(error) => {
            if !added.is_empty() {
                if let Err(undo) = consensus.change_voters(BTreeSet::new(), added).await {
                    tracing::warn!(%undo, "a failed reconfig could not remove the learners it added");
                }
            }
            Err(code(&error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership() -> Membership {
        Membership {
            version: 0x1a,
            voters: BTreeMap::from([
                (1, "a:2888;a:2181".to_owned()),
                (2, "b:2888;b:2181".to_owned()),
                (3, "c:2888".to_owned()),
            ]),
            learners: BTreeMap::from([(4, "d:2888;d:2181".to_owned())]),
            ..Membership::default()
        }
    }

    fn request(joining: &str, leaving: &str, new_members: &str, version: i64) -> ReconfigRequest {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ReconfigRequest {
            joining_servers: text(joining),
            leaving_servers: text(leaving),
            new_members: text(new_members),
            cur_config_id: version,
        }
    }

    #[test]
    fn config_text_is_zookeepers_dynamic_configuration() {
        assert_eq!(
            config_text(&membership(), Some((3, "c:2181"))),
            "server.1=a:2888:2889:participant;a:2181\n\
             server.2=b:2888:2889:participant;b:2181\n\
             server.3=c:2888:2889:participant;c:2181\n\
             server.4=d:2888:2889:observer;d:2181\n\
             version=1a"
        );
    }

    #[test]
    fn member_addresses_are_a_peer_and_an_optional_client_address() {
        for good in ["a:2888", " a.b:2888;a.b:2181 ", "[::1]:2888;[::1]:2181"] {
            assert_eq!(parse_member_address(good).as_deref(), Ok(good.trim()));
        }
        for (bad, reason) in [
            ("a", "peer address \"a\""),
            (":2888", "peer address"),
            ("a:0", "peer address"),
            ("a:x;a:2181", "peer address"),
            ("a:2888;", "client address \"\""),
            ("a:2888;2181", "client address \"2181\""),
            ("a:2888;a:2181;b:1", "client address"),
        ] {
            let error = parse_member_address(bad).expect_err(bad);
            assert!(error.starts_with(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn incremental_requests_add_before_they_remove() {
        let changes = plan(
            &request("server.5=e:2888:3888:participant;2181", "2", "", -1),
            &membership(),
        )
        .expect("valid");
        assert_eq!(
            changes,
            vec![
                Change::Add {
                    id: 5,
                    address: "e:2888;0.0.0.0:2181".into(),
                    voter: true
                },
                Change::Remove(2),
            ]
        );
    }

    #[test]
    fn a_learner_joining_as_participant_is_promoted() {
        let changes = plan(
            &request("server.4=d:2888:2888:participant", "", "", 0x1a),
            &membership(),
        )
        .expect("valid");
        assert_eq!(
            changes,
            vec![Change::Add {
                id: 4,
                address: "d:2888".into(),
                voter: true
            }]
        );
    }

    #[test]
    fn non_incremental_requests_are_diffed_against_the_membership() {
        let changes = plan(
            &request(
                "",
                "",
                "server.1=a:2888:2888:participant;a:2181,server.3=c:2888:2888:participant,server.6=f:2888:2888:participant",
                -1,
            ),
            &membership(),
        )
        .expect("valid");
        assert_eq!(
            changes,
            vec![
                Change::Add {
                    id: 6,
                    address: "f:2888".into(),
                    voter: true
                },
                Change::Remove(2),
                Change::Remove(4),
            ]
        );
    }

    #[test]
    fn refusals_carry_zookeepers_codes() {
        let m = membership();
        assert_eq!(
            plan(&request("", "2", "", 7), &m),
            Err(ErrorCode::BadVersion)
        );
        assert_eq!(
            plan(&request("", "9", "", -1), &m),
            Err(ErrorCode::BadArguments)
        );
        assert_eq!(
            plan(&request("", "x", "", -1), &m),
            Err(ErrorCode::BadArguments)
        );
        assert_eq!(
            plan(&request("server.2=b:2888:2888:participant", "", "", -1), &m),
            Err(ErrorCode::BadArguments),
            "already a voter"
        );
        assert_eq!(
            plan(&request("server.9=nonsense", "", "", -1), &m),
            Err(ErrorCode::BadArguments)
        );
        assert_eq!(
            plan(&request("", "1,2,3", "", -1), &m),
            Err(ErrorCode::BadArguments),
            "no voter left"
        );
    }
}
