//! The server's side of consensus: the commands it replicates and the state
//! machine consensus drives.
//!
//! Contract: a [`Command`] is one transaction with everything
//! [`crate::tree::DataTree::apply`] needs besides its zxid (the log index): the
//! leader-independent time it was proposed, its origin, and the tag (member id,
//! sequence number) by which the proposing member recognises its own command when
//! it is applied. `decode(encode(c)) == c`, and `decode` rejects malformed bytes
//! without panicking. [`Machine`] applies entries to the shared [`super::state::State`]
//! under its lock, snapshots and restores the tree, and hands the liveness reports
//! members send to the leader to the session table. A snapshot is written a few
//! thousand nodes per hold of the lock, so applying and client requests go on while
//! it is taken.

use std::sync::Arc;

use crate::consensus::{MemberId, SnapshotJob, SnapshotSink, StateMachine};
use crate::protocol::{DecodeError, Reader, Writer};
use crate::tree::snapshot::Progress;
use crate::tree::{Origin, Txn};

use super::connection::lock;
use super::Shared;

/// Format version of an encoded command, first on the wire.
const COMMAND_VERSION: i32 = 1;

/// One replicated transaction; see the module contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub member: u64,
    pub seq: u64,
    pub time_ms: i64,
    pub origin: Origin,
    pub txn: Txn,
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.write_i32(COMMAND_VERSION);
        w.write_i64(self.member as i64);
        w.write_i64(self.seq as i64);
        w.write_i64(self.time_ms);
        self.origin.write(&mut w);
        self.txn.write(&mut w);
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.read_i32()?;
        if version != COMMAND_VERSION {
            return Err(DecodeError::UnknownTag {
                kind: "command version",
                tag: version,
            });
        }
        let command = Self {
            member: r.read_i64()? as u64,
            seq: r.read_i64()? as u64,
            time_ms: r.read_i64()?,
            origin: Origin::read(&mut r)?,
            txn: Txn::read(&mut r)?,
        };
        r.finish()?;
        Ok(command)
    }
}

/// What a member tells the leader ([`Consensus::send_to_leader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaderMessage {
    /// Sessions with a sign of life on the member.
    Alive(Vec<i64>),
    /// The member's newest logged tree digest, for the leader to compare with its own.
    Digest { zxid: i64, digest: i64 },
}

/// Marks a [`LeaderMessage::Digest`], whose 17 bytes no list of session ids (8 bytes
/// each, as members of earlier releases send them unmarked) can be.
const DIGEST_MARK: u8 = 0xd1;

impl LeaderMessage {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            LeaderMessage::Alive(ids) => ids.iter().flat_map(|id| id.to_be_bytes()).collect(),
            LeaderMessage::Digest { zxid, digest } => {
                let mut out = vec![DIGEST_MARK];
                out.extend_from_slice(&zxid.to_be_bytes());
                out.extend_from_slice(&digest.to_be_bytes());
                out
            }
        }
    }

    /// The message in `bytes`; `None` if they are neither form.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let number = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or_default());
        match bytes {
            [DIGEST_MARK, rest @ ..] if rest.len() == 16 => Some(LeaderMessage::Digest {
                zxid: number(&rest[..8]),
                digest: number(&rest[8..]),
            }),
            _ if bytes.len().is_multiple_of(8) => Some(LeaderMessage::Alive(
                bytes.chunks_exact(8).map(number).collect(),
            )),
            _ => None,
        }
    }
}

/// Nodes a snapshot writes per hold of the state's lock: about a millisecond's work.
const SNAPSHOT_STEP_NODES: usize = 2_000;

/// Writes the snapshot the state has begun, a step at a time, letting the state's
/// other users in between steps. Dropped unfinished, it drops the snapshot, which
/// would otherwise go on setting aside every node changed.
struct SnapshotWriter {
    shared: Arc<Shared>,
    finished: bool,
}

impl SnapshotWriter {
    /// Each step's piece goes to `sink` once the state's lock is let go.
    fn run(mut self, sink: SnapshotSink<'_>) -> Result<(), String> {
        loop {
            let progress = lock(&self.shared.state).continue_snapshot(SNAPSHOT_STEP_NODES);
            match progress {
                Progress::Pending(piece) => {
                    sink(&piece)?;
                    std::thread::yield_now();
                }
                Progress::Done(piece) => {
                    self.finished = true;
                    return sink(&piece);
                }
                Progress::Idle => return Err("the snapshot under way was dropped".into()),
            }
        }
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.finished {
            lock(&self.shared.state).cancel_snapshot();
        }
    }
}

/// The state machine consensus drives; see the module contract.
pub(crate) struct Machine {
    pub shared: Arc<Shared>,
}

impl StateMachine for Machine {
    fn apply(&self, index: u64, command: Option<&[u8]>) {
        lock(&self.shared.state).apply_entry(index, command);
    }

    fn snapshot(&self) -> (u64, SnapshotJob) {
        let mut state = lock(&self.shared.state);
        match state.begin_snapshot() {
            Some(index) => {
                let writer = SnapshotWriter {
                    shared: self.shared.clone(),
                    finished: false,
                };
                (index, Box::new(move |sink| writer.run(sink)))
            }
            None => {
                // openraft builds one snapshot at a time; should it ever ask for a
                // second, that one is taken whole, holding the state still.
                let (index, bytes) = state.snapshot();
                (index, Box::new(move |sink| sink(&bytes)))
            }
        }
    }

    fn restore(&self, index: u64, data: &[u8]) -> Result<(), String> {
        let mut state = lock(&self.shared.state);
        state.restore(data).map_err(|e| e.to_string())?;
        state.tree.advance(i64::try_from(index).unwrap_or(i64::MAX));
        Ok(())
    }

    fn leader_message(&self, from: MemberId, message: &[u8]) {
        let mut state = lock(&self.shared.state);
        match LeaderMessage::decode(message) {
            Some(LeaderMessage::Alive(ids)) => state.touch_sessions(&ids),
            Some(LeaderMessage::Digest { zxid, digest }) => {
                state.compare_digest(from, zxid, digest)
            }
            None => tracing::warn!(
                from,
                len = message.len(),
                "unreadable message from a member"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::protocol::Id;
    use crate::server::state::State;
    use crate::server::stats::ServerStats;
    use crate::tree::DataTree;
    use proptest::prelude::*;

    #[test]
    fn commands_round_trip() {
        let command = Command {
            member: 3,
            seq: u64::MAX - 1,
            time_ms: 1_700_000_000_000,
            origin: Origin::session(0x0100_0000_0000_0001, vec![Id::new("ip", "127.0.0.1")]),
            txn: Txn::SetData {
                path: "/a".into(),
                data: Some(b"x".to_vec()),
                version: -1,
            },
        };
        assert_eq!(Command::decode(&command.encode()), Ok(command));
    }

    #[test]
    fn leader_messages_round_trip_and_read_as_earlier_releases_wrote_them() {
        for message in [
            LeaderMessage::Alive(vec![1, -5, i64::MAX]),
            LeaderMessage::Alive(vec![DIGEST_MARK as i64, 2]),
            LeaderMessage::Alive(Vec::new()),
            LeaderMessage::Digest {
                zxid: 0x180,
                digest: -1,
            },
        ] {
            assert_eq!(LeaderMessage::decode(&message.encode()), Some(message));
        }
        // Earlier releases sent the session ids alone, 8 bytes each, big-endian.
        let earlier: Vec<u8> = [7i64, 9].iter().flat_map(|id| id.to_be_bytes()).collect();
        assert_eq!(
            LeaderMessage::decode(&earlier),
            Some(LeaderMessage::Alive(vec![7, 9]))
        );
        assert_eq!(LeaderMessage::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn the_leader_counts_a_digest_that_differs_from_its_own() {
        let mut state = State::new(&crate::config::ServerConfig::default(), DataTree::default());
        state.apply_entry(128, None);
        let (zxid, ours) = state.digest_log().last().expect("logged at 128");
        assert_eq!(state.digest_to_report(), Some((zxid, ours)));
        assert_eq!(state.digest_to_report(), None, "reported once");
        state.compare_digest(2, zxid, ours);
        // A zxid the leader has not logged is not compared.
        state.compare_digest(2, zxid + 128, ours + 1);
        assert_eq!(state.digest_mismatches, 0);
        state.compare_digest(2, zxid, ours + 1);
        assert_eq!(state.digest_mismatches, 1);
    }

    fn machine() -> Machine {
        let config = crate::config::ServerConfig::default();
        let state = State::new(&config, DataTree::default());
        Machine {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(state),
                stats: ServerStats::new(),
            }),
        }
    }

    fn create(machine: &Machine, index: u64, path: &str) {
        let command = Command {
            member: 1,
            seq: index,
            time_ms: 0,
            origin: Origin::system(),
            txn: Txn::Create {
                path: path.into(),
                data: Some(vec![7; 100]),
                acl: crate::protocol::Acl::open_unsafe(),
                flags: 0,
                kind: crate::tree::CreateKind::Regular,
                ttl: None,
            },
        };
        machine.apply(index, Some(&command.encode()));
    }

    fn whole(machine: &Machine) -> Vec<u8> {
        crate::tree::snapshot::snapshot(&lock(&machine.shared.state).tree)
    }

    /// Runs `job`, returning the pieces it handed over.
    fn pieces(job: SnapshotJob) -> Result<Vec<Vec<u8>>, String> {
        let mut pieces = Vec::new();
        job(&mut |piece: &[u8]| {
            pieces.push(piece.to_vec());
            Ok(())
        })?;
        Ok(pieces)
    }

    /// Runs `job`, returning the bytes it wrote.
    fn bytes(job: SnapshotJob) -> Result<Vec<u8>, String> {
        pieces(job).map(|pieces| pieces.concat())
    }

    /// Many steps' worth of nodes, then a snapshot job that runs on another thread
    /// while more are created: it writes the tree as it began, a step's nodes at a
    /// time, never the whole at once.
    #[test]
    fn a_snapshot_job_writes_the_state_it_began_with() {
        let machine = machine();
        let nodes = 3 * SNAPSHOT_STEP_NODES as u64;
        for index in 1..=nodes {
            create(&machine, index, &format!("/n{index}"));
        }
        let expected = whole(&machine);
        let (index, job) = machine.snapshot();
        assert_eq!(index, nodes);
        let writer = std::thread::spawn(move || pieces(job));
        for index in nodes + 1..=2 * nodes {
            create(&machine, index, &format!("/n{index}"));
        }
        let pieces = writer.join().unwrap().unwrap();
        assert_eq!(pieces.concat(), expected);
        let largest = pieces.iter().map(Vec::len).max().unwrap_or(0);
        assert!(pieces.len() > 3, "{} pieces", pieces.len());
        assert!(largest < expected.len() / 2, "a piece of {largest} bytes");
        assert!(!lock(&machine.shared.state).tree.snapshot_under_way());
    }

    /// A sink that fails ends the job with its error and the snapshot under way.
    #[test]
    fn a_failing_sink_ends_the_snapshot() {
        let machine = machine();
        for index in 1..=2 * SNAPSHOT_STEP_NODES as u64 {
            create(&machine, index, &format!("/n{index}"));
        }
        let (_, job) = machine.snapshot();
        let outcome = job(&mut |_: &[u8]| Err("disk full".to_owned()));
        assert_eq!(outcome, Err("disk full".to_owned()));
        assert!(!lock(&machine.shared.state).tree.snapshot_under_way());
    }

    /// A restore while a job is pending completes the job's snapshot from the tree
    /// it replaces; a second snapshot asked for meanwhile is taken whole.
    #[test]
    fn a_restore_completes_the_snapshot_under_way() {
        let machine = machine();
        create(&machine, 1, "/before");
        let expected = whole(&machine);
        let (index, job) = machine.snapshot();
        assert_eq!(index, 1);
        let (second_index, second) = machine.snapshot();
        assert_eq!((second_index, bytes(second)), (1, Ok(expected.clone())));

        let mut other = DataTree::default();
        other.advance(9);
        let replacement = crate::tree::snapshot::snapshot(&other);
        machine.restore(9, &replacement).unwrap();
        assert_eq!(whole(&machine), replacement);
        assert_eq!(bytes(job), Ok(expected));
    }

    /// A job dropped without running stops the tree setting nodes aside.
    #[test]
    fn a_dropped_snapshot_job_ends_the_snapshot() {
        let machine = machine();
        let (_, job) = machine.snapshot();
        assert!(lock(&machine.shared.state).tree.snapshot_under_way());
        drop(job);
        assert!(!lock(&machine.shared.state).tree.snapshot_under_way());
        let (index, job) = machine.snapshot();
        assert_eq!((index, bytes(job)), (0, Ok(whole(&machine))));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Command::decode(&bytes);
        }
    }
}
