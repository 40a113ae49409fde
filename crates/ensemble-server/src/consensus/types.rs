//! The openraft type configuration of ensemble, and the small helpers that convert
//! between openraft's types and the module's public ones.
//!
//! Contract: this file and its siblings are the only place that names openraft. A
//! command is opaque bytes ([`Command`]); responses carry nothing, because a
//! proposer learns of its commands' outcome by seeing them applied.

use std::fmt;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{MemberId, Membership};

/// One command of the server: opaque bytes (as one slice: see [`encode`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Command(#[serde(with = "serde_bytes")] pub(crate) Vec<u8>);

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({} bytes)", self.0.len())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command of {} bytes", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// ensemble's Raft: commands in, nothing out, members addressed by `host:port`.
    pub(crate) TypeConfig:
        D = Command,
        R = (),
        NodeId = MemberId,
        Node = openraft::BasicNode,
);

pub(crate) type C = TypeConfig;
pub(crate) type Entry = openraft::type_config::alias::EntryOf<C>;
pub(crate) type LogId = openraft::type_config::alias::LogIdOf<C>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<C>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<C>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<C>;
pub(crate) type Snapshot = openraft::type_config::alias::SnapshotOf<C, Vec<u8>>;
pub(crate) type Raft = openraft::Raft<C, super::state_machine::StateMachineStore>;

/// The public view of a stored membership.
pub(crate) fn membership_view(stored: &StoredMembership) -> Membership {
    let inner = stored.membership();
    let voter_ids: std::collections::BTreeSet<MemberId> = inner.voter_ids().collect();
    let mut membership = Membership {
        version: stored.log_id().as_ref().map_or(0, |id| id.index),
        ..Membership::default()
    };
    if let [.., last] = inner.get_joint_config().as_slice() {
        membership.leaving = voter_ids.difference(last).copied().collect();
    }
    for (id, node) in inner.nodes() {
        if voter_ids.contains(id) {
            membership.voters.insert(*id, node.addr.clone());
        } else {
            membership.learners.insert(*id, node.addr.clone());
        }
    }
    membership
}

/// Encodes a value with the crate's compact binary codec.
///
/// Byte payloads that may be large (commands, snapshots) are marked `serde_bytes`: postcard
/// writes them exactly as a plain `Vec<u8>` (a length, then the bytes), but copies them as
/// one slice instead of byte by byte, which in a debug build made a 1 MiB node take longer
/// to cross between members than the replication call's time limit.
pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(&mut out, value)?;
    Ok(out)
}

/// [`encode`], appending to `out` (left as it was if encoding fails): a frame or record
/// is encoded in place, behind its header, into a buffer that is reused.
pub(crate) fn encode_into<T: Serialize>(out: &mut Vec<u8>, value: &T) -> io::Result<()> {
    let start = out.len();
    postcard::serialize_with_flavor(value, AppendTo(out)).map_err(|e| {
        out.truncate(start);
        io::Error::new(io::ErrorKind::InvalidData, e)
    })
}

/// postcard output that appends to a `Vec`, slices as one copy.
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes a value encoded by [`encode`].
pub(crate) fn decode<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes the concatenation of `parts` to `path` as one framed record ([`put_record`]'s
/// layout), atomically: a temporary file, fsynced, then [`rename_durably`] over `path`.
pub(crate) fn write_record_atomic(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    use std::io::Write;
    let len: usize = parts.iter().map(|part| part.len()).sum();
    let len = u32::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "record too large"))?;
    let mut crc = crc32fast::Hasher::new();
    for part in parts {
        crc.update(part);
    }
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc.finalize().to_le_bytes());

    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&header)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()?;
    }
    rename_durably(&tmp, path)
}

/// Renames the fsynced file `tmp` over `path`, then fsyncs the directory so that the
/// rename itself is durable.
pub(crate) fn rename_durably(tmp: &Path, path: &Path) -> io::Result<()> {
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Appends `value`, encoded, to `out` as a record (length, CRC-32 of the body, body),
/// without an intermediate copy of its body; `out` is left as it was on failure.
pub(crate) fn put_record<T: Serialize>(out: &mut Vec<u8>, value: &T) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    encode_into(out, value)
        .and_then(|()| seal_record(out, start))
        .inspect_err(|_| out.truncate(start))
}

/// Fills in the header of the record that starts at `start` of `out`, an 8-byte
/// placeholder followed by the body up to the end of `out`.
fn seal_record(out: &mut [u8], start: usize) -> io::Result<()> {
    let body = start + 8;
    let len = u32::try_from(out.len() - body)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "record too large"))?;
    let crc = crc32fast::hash(&out[body..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..body].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Why a record could not be read at some offset.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// The bytes end inside the record.
    Short,
    /// The checksum does not match.
    Checksum,
}

/// Reads the record starting at `bytes[0]`: its body and total length.
pub(crate) fn read_record(bytes: &[u8]) -> Result<(&[u8], usize), RecordError> {
    if bytes.len() < 8 {
        return Err(RecordError::Short);
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let end = 8usize.checked_add(len).ok_or(RecordError::Short)?;
    if bytes.len() < end {
        return Err(RecordError::Short);
    }
    let body = &bytes[8..end];
    if crc32fast::hash(body) != crc {
        return Err(RecordError::Checksum);
    }
    Ok((body, end))
}

/// Reads a file written by [`write_record_atomic`]; `None` if absent.
pub(crate) fn read_small_file<T: for<'a> Deserialize<'a>>(path: &Path) -> io::Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (body, _) = read_record(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: damaged record ({e:?}) at offset 0", path.display()),
        )
    })?;
    decode(body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logs and snapshots written before commands were marked `serde_bytes` still read.
    #[test]
    fn a_command_encodes_as_a_plain_byte_vector_did() {
        #[derive(Serialize, Deserialize)]
        struct Plain(Vec<u8>);
        let bytes: Vec<u8> = (0..=255).collect();
        let old = encode(&Plain(bytes.clone())).unwrap();
        assert_eq!(encode(&Command(bytes.clone())).unwrap(), old);
        assert_eq!(decode::<Command>(&old).unwrap(), Command(bytes));
    }

    /// Records encoded in place are the bytes recovery reads, behind what was there,
    /// and a record written to a file in parts is the same record.
    #[test]
    fn a_record_put_in_place_is_a_framed_encoding() {
        let value = (7u64, Command(vec![1, 2, 3]), "x".to_string());
        let mut out = b"earlier".to_vec();
        put_record(&mut out, &value).unwrap();
        assert_eq!(out[..7], *b"earlier");
        let (body, len) = read_record(&out[7..]).unwrap();
        assert_eq!(len, out.len() - 7);
        assert_eq!(decode::<(u64, Command, String)>(body).unwrap(), value);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record");
        let encoded = encode(&value).unwrap();
        let (head, tail) = encoded.split_at(3);
        write_record_atomic(&path, &[head, &[], tail]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), out[7..]);
        assert_eq!(read_small_file(&path).unwrap(), Some(value));
    }

    fn view(configs: Vec<Vec<MemberId>>, learners: &[MemberId]) -> Membership {
        let configs: Vec<std::collections::BTreeSet<MemberId>> = configs
            .into_iter()
            .map(|c| c.into_iter().collect())
            .collect();
        let nodes: std::collections::BTreeMap<MemberId, openraft::BasicNode> = configs
            .iter()
            .flatten()
            .chain(learners)
            .map(|id| (*id, openraft::BasicNode::new(format!("m{id}:2888"))))
            .collect();
        let inner = openraft::Membership::new(configs, nodes).unwrap();
        membership_view(&StoredMembership::new(None, inner))
    }

    #[test]
    fn the_voters_a_change_in_progress_removes_are_leaving() {
        let settled = view(vec![vec![1, 2, 3]], &[4]);
        assert_eq!(
            settled.voters.keys().copied().collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(settled.learners.keys().copied().collect::<Vec<_>>(), [4]);
        assert!(settled.leaving.is_empty());

        let removing = view(vec![vec![1, 2, 3], vec![1, 2]], &[]);
        assert_eq!(
            removing.voters.keys().copied().collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(removing.leaving.into_iter().collect::<Vec<_>>(), [3]);

        let adding = view(vec![vec![1, 2], vec![1, 2, 3]], &[]);
        assert!(adding.leaving.is_empty());
    }
}
