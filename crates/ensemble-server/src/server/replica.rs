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
//! members send to the leader to the session table.

use std::sync::Arc;

use crate::consensus::{MemberId, StateMachine};
use crate::protocol::{DecodeError, Reader, Writer};
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

/// Encodes the session ids a member reports alive to the leader.
pub(crate) fn encode_alive(ids: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * 8);
    for id in ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out
}

fn decode_alive(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_be_bytes(c.try_into().unwrap_or_default()))
        .collect()
}

/// The state machine consensus drives; see the module contract.
pub(crate) struct Machine {
    pub shared: Arc<Shared>,
}

impl StateMachine for Machine {
    fn apply(&self, index: u64, command: Option<&[u8]>) {
        lock(&self.shared.state).apply_entry(index, command);
    }

    fn snapshot(&self) -> (u64, Vec<u8>) {
        lock(&self.shared.state).snapshot()
    }

    fn restore(&self, index: u64, data: &[u8]) -> Result<(), String> {
        let mut state = lock(&self.shared.state);
        state.restore(data).map_err(|e| e.to_string())?;
        state.tree.advance(i64::try_from(index).unwrap_or(i64::MAX));
        Ok(())
    }

    fn leader_message(&self, _from: MemberId, message: &[u8]) {
        lock(&self.shared.state).touch_sessions(&decode_alive(message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Id;
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
    fn alive_reports_round_trip() {
        let ids = [1, -5, i64::MAX];
        assert_eq!(decode_alive(&encode_alive(&ids)), ids);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Command::decode(&bytes);
        }
    }
}
