//! A snapshot crossing the network in chunks; the receiving member's half.
//!
//! The leader sends a snapshot as a sequence of [`Chunk`]s, each one request of
//! its own on the connection that also carries appends and heartbeats, so those
//! never wait behind more than one chunk, however large the snapshot; each chunk
//! is answered before the next is sent, and has its own timeout, so a transfer
//! takes as long as it needs while it makes progress.
//!
//! Contract of [`Assembly::take`], which holds at most one snapshot in the making
//! (so a receiver holds at most one snapshot's bytes, whoever sends):
//! - A chunk at offset 0 starts a snapshot afresh, dropping any other in the making
//!   (a sender that retries starts at 0; a new leader's snapshot replaces its
//!   predecessor's).
//! - A later chunk is taken only if it continues the snapshot in the making: same
//!   sender, same snapshot id and length, and its offset is the count of bytes
//!   received. Anything else is refused with a reason and drops the snapshot in the
//!   making; the sender's transfer fails and is retried from offset 0.
//! - A chunk reaching past the length it declares is refused likewise.
//! - The chunk that completes the snapshot yields its bytes and leaves nothing in
//!   the making.

use super::MemberId;

/// The chunk size a leader sends snapshots in unless told otherwise
/// ([`super::Options::snapshot_chunk`]).
pub(crate) const DEFAULT_CHUNK: usize = 1 << 20;

/// One piece of a snapshot, as the receiver sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunk<'a> {
    pub(crate) from: MemberId,
    /// The log index the snapshot was taken at, which names it among the sender's.
    pub(crate) upto: u64,
    /// The snapshot's length in bytes.
    pub(crate) total: u64,
    pub(crate) offset: u64,
    pub(crate) data: &'a [u8],
}

/// What a taken chunk left.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// More chunks are due.
    Partial,
    /// The snapshot is whole: its bytes.
    Complete(Vec<u8>),
}

/// The snapshot in the making, if any.
#[derive(Default)]
pub(crate) struct Assembly {
    making: Option<Making>,
}

struct Making {
    from: MemberId,
    upto: u64,
    total: u64,
    bytes: Vec<u8>,
}

/// Memory reserved up front for a snapshot that announces its length; a larger one
/// grows as its chunks arrive.
const RESERVE_AT_MOST: u64 = 64 << 20;

impl Assembly {
    /// Takes `chunk`; see the module contract.
    pub(crate) fn take(&mut self, chunk: Chunk<'_>) -> Result<Taken, String> {
        let end = chunk.offset.checked_add(chunk.data.len() as u64);
        if end.is_none_or(|end| end > chunk.total) {
            self.making = None;
            return Err(format!(
                "a chunk of {} bytes at offset {} reaches past the snapshot's {} bytes",
                chunk.data.len(),
                chunk.offset,
                chunk.total
            ));
        }
        if chunk.offset == 0 {
            self.making = Some(Making {
                from: chunk.from,
                upto: chunk.upto,
                total: chunk.total,
                bytes: Vec::with_capacity(chunk.total.min(RESERVE_AT_MOST) as usize),
            });
        }
        let Some(making) = self.making.as_mut().filter(|m| {
            m.from == chunk.from
                && m.upto == chunk.upto
                && m.total == chunk.total
                && m.bytes.len() as u64 == chunk.offset
        }) else {
            let expected = match &self.making {
                Some(m) => format!(
                    "offset {} of the snapshot at index {} from member {}",
                    m.bytes.len(),
                    m.upto,
                    m.from
                ),
                None => "offset 0 of a new snapshot".to_owned(),
            };
            self.making = None;
            return Err(format!(
                "a chunk at offset {} of the snapshot at index {} from member {} does \
                 not follow: expected {expected}",
                chunk.offset, chunk.upto, chunk.from
            ));
        };
        making.bytes.extend_from_slice(chunk.data);
        if making.bytes.len() as u64 == making.total {
            let done = self.making.take().map(|m| m.bytes).unwrap_or_default();
            return Ok(Taken::Complete(done));
        }
        Ok(Taken::Partial)
    }

    /// Drops the snapshot `from` was sending, if any (its connection closed).
    pub(crate) fn forget(&mut self, from: MemberId) {
        if self.making.as_ref().is_some_and(|m| m.from == from) {
            self.making = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(from: MemberId, upto: u64, total: u64, offset: u64, data: &[u8]) -> Chunk<'_> {
        Chunk {
            from,
            upto,
            total,
            offset,
            data,
        }
    }

    /// Sends `bytes` in chunks of `size` and returns what the last one yielded.
    fn send(
        assembly: &mut Assembly,
        from: MemberId,
        upto: u64,
        bytes: &[u8],
        size: usize,
    ) -> Taken {
        let total = bytes.len() as u64;
        let mut offset = 0;
        loop {
            let end = (offset + size).min(bytes.len());
            let taken = assembly
                .take(chunk(from, upto, total, offset as u64, &bytes[offset..end]))
                .unwrap();
            if end == bytes.len() {
                return taken;
            }
            assert_eq!(taken, Taken::Partial);
            offset = end;
        }
    }

    #[test]
    fn chunks_in_order_make_the_snapshot() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        for size in [1, 333, 4096, 10_000, 50_000] {
            let mut assembly = Assembly::default();
            assert_eq!(
                send(&mut assembly, 2, 10, &bytes, size),
                Taken::Complete(bytes.clone())
            );
            assert!(assembly.making.is_none());
        }
    }

    #[test]
    fn an_empty_snapshot_is_one_empty_chunk() {
        let mut assembly = Assembly::default();
        assert_eq!(
            assembly.take(chunk(1, 12, 0, 0, &[])),
            Ok(Taken::Complete(Vec::new()))
        );
    }

    #[test]
    fn a_chunk_that_does_not_follow_is_refused_and_the_sender_starts_again() {
        let mut assembly = Assembly::default();
        assert_eq!(assembly.take(chunk(1, 10, 6, 0, b"ab")), Ok(Taken::Partial));
        // A gap, an overlap, another snapshot, another sender, another length.
        for wrong in [
            chunk(1, 10, 6, 4, b"ef"),
            chunk(1, 10, 6, 1, b"bc"),
            chunk(1, 11, 6, 2, b"cd"),
            chunk(3, 10, 6, 2, b"cd"),
            chunk(1, 10, 7, 2, b"cd"),
        ] {
            let refused = assembly.take(wrong).unwrap_err();
            assert!(refused.contains("does not follow"), "{refused}");
            // The refusal dropped the snapshot: not even the right chunk goes on.
            assert!(assembly.take(chunk(1, 10, 6, 2, b"cd")).is_err());
            assert_eq!(assembly.take(chunk(1, 10, 6, 0, b"ab")), Ok(Taken::Partial));
        }
        assert_eq!(assembly.take(chunk(1, 10, 6, 2, b"cd")), Ok(Taken::Partial));
        assert_eq!(
            assembly.take(chunk(1, 10, 6, 4, b"ef")),
            Ok(Taken::Complete(b"abcdef".to_vec()))
        );
        // Nothing is in the making after a snapshot completes.
        assert!(assembly.take(chunk(1, 10, 6, 6, b"")).is_err());
    }

    #[test]
    fn a_new_snapshot_at_offset_zero_replaces_the_one_in_the_making() {
        let mut assembly = Assembly::default();
        assert_eq!(assembly.take(chunk(1, 20, 4, 0, b"xx")), Ok(Taken::Partial));
        assert_eq!(assembly.take(chunk(2, 21, 4, 0, b"ab")), Ok(Taken::Partial));
        assert!(assembly.take(chunk(1, 20, 4, 2, b"xx")).is_err());
        assert_eq!(assembly.take(chunk(2, 21, 4, 0, b"ab")), Ok(Taken::Partial));
        assert_eq!(
            assembly.take(chunk(2, 21, 4, 2, b"cd")),
            Ok(Taken::Complete(b"abcd".to_vec()))
        );
    }

    #[test]
    fn a_chunk_past_the_declared_length_is_refused() {
        let mut assembly = Assembly::default();
        let refused = assembly.take(chunk(1, 10, 3, 0, b"abcd")).unwrap_err();
        assert!(refused.contains("reaches past"), "{refused}");
        assert!(assembly.take(chunk(1, 10, 3, u64::MAX, b"a")).is_err());
        assert!(assembly.making.is_none());
    }

    #[test]
    fn forgetting_a_sender_drops_only_its_snapshot() {
        let mut assembly = Assembly::default();
        assert_eq!(assembly.take(chunk(1, 10, 4, 0, b"ab")), Ok(Taken::Partial));
        assembly.forget(2);
        assert_eq!(
            assembly.take(chunk(1, 10, 4, 2, b"cd")),
            Ok(Taken::Complete(b"abcd".to_vec()))
        );
        assert_eq!(assembly.take(chunk(1, 10, 4, 0, b"ab")), Ok(Taken::Partial));
        assembly.forget(1);
        assert!(assembly.take(chunk(1, 10, 4, 2, b"cd")).is_err());
    }
}
