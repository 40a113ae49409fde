//! Frame splitting: every ZooKeeper packet is a 4-byte big-endian length, then that
//! many bytes.
//!
//! Contract: [`split_frame`] looks at the front of a receive buffer and says whether
//! a whole frame is there, without copying or consuming anything; it never panics.
//! A negative or oversized length is reported, and the caller closes that
//! connection (ZooKeeper does the same: `NIOServerCnxn.readLength` throws
//! "Len error" for `len < 0 || len > jute.maxbuffer`).
//!
//! Limits, from Apache ZooKeeper: `jute.maxbuffer` defaults to `0xfffff`
//! (1048575 bytes) and bounds a client frame on the server; inside a record,
//! a single buffer or string may be up to `jute.maxbuffer` plus
//! `zookeeper.jute.maxbuffer.extrasize` (which defaults to `jute.maxbuffer`, and is
//! never below 1024). We default to an even 1 MiB frame.

/// Default largest frame body we accept: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// ZooKeeper's own default `jute.maxbuffer` (0xfffff), for reference and tests.
pub const ZOOKEEPER_JUTE_MAXBUFFER: usize = 0xfffff;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// What the front of a receive buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// Not enough bytes yet; `needed` more are required before trying again
    /// (at least the prefix, then the whole body).
    Incomplete { needed: usize },
    /// A whole frame: its body is `buf[LENGTH_PREFIX..LENGTH_PREFIX + body_len]` and
    /// the caller should consume `LENGTH_PREFIX + body_len` bytes.
    Frame { body_len: usize },
    /// The announced length exceeds the limit.
    TooLarge { len: usize, max: usize },
    /// The announced length is negative.
    Negative { len: i32 },
}

impl FrameStatus {
    /// Bytes a whole frame occupies in the buffer, if there is one.
    pub fn frame_len(&self) -> Option<usize> {
        match self {
            FrameStatus::Frame { body_len } => Some(LENGTH_PREFIX + body_len),
            _ => None,
        }
    }
}

/// Frame splitter with a configurable size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    pub max_frame: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl FrameCodec {
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    pub fn split<'a>(&self, buf: &'a [u8]) -> (FrameStatus, Option<&'a [u8]>) {
        let status = split_frame(buf, self.max_frame);
        let body = match status {
            FrameStatus::Frame { body_len } => buf.get(LENGTH_PREFIX..LENGTH_PREFIX + body_len),
            _ => None,
        };
        (status, body)
    }
}

/// Inspects the front of `buf` for a frame of at most `max_frame` body bytes.
pub fn split_frame(buf: &[u8], max_frame: usize) -> FrameStatus {
    let Some(prefix) = buf.get(..LENGTH_PREFIX) else {
        return FrameStatus::Incomplete {
            needed: LENGTH_PREFIX - buf.len(),
        };
    };
    let mut raw = [0u8; LENGTH_PREFIX];
    raw.copy_from_slice(prefix);
    let len = i32::from_be_bytes(raw);
    let Ok(body_len) = usize::try_from(len) else {
        return FrameStatus::Negative { len };
    };
    if body_len > max_frame {
        return FrameStatus::TooLarge {
            len: body_len,
            max: max_frame,
        };
    }
    let have = buf.len() - LENGTH_PREFIX;
    if have < body_len {
        return FrameStatus::Incomplete {
            needed: body_len - have,
        };
    }
    FrameStatus::Frame { body_len }
}

/// Prefixes `body` with its length.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LENGTH_PREFIX + body.len());
    let len = i32::try_from(body.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(split_frame(&[], 10), FrameStatus::Incomplete { needed: 4 });
        assert_eq!(
            split_frame(&[0, 0], 10),
            FrameStatus::Incomplete { needed: 2 }
        );
        assert_eq!(
            split_frame(&[0, 0, 0, 3, 1], 10),
            FrameStatus::Incomplete { needed: 2 }
        );
        assert_eq!(
            split_frame(&[0, 0, 0, 2, 1, 2, 9], 10),
            FrameStatus::Frame { body_len: 2 }
        );
        assert_eq!(
            split_frame(&[0, 0, 0, 0], 10),
            FrameStatus::Frame { body_len: 0 }
        );
        assert_eq!(
            split_frame(&[0, 0, 0, 11], 10),
            FrameStatus::TooLarge { len: 11, max: 10 }
        );
        assert_eq!(
            split_frame(&[0xff, 0xff, 0xff, 0xff], 10),
            FrameStatus::Negative { len: -1 }
        );
    }

    #[test]
    fn default_limit_is_one_mebibyte() {
        let codec = FrameCodec::default();
        assert_eq!(codec.max_frame, 1_048_576);
        assert_eq!(ZOOKEEPER_JUTE_MAXBUFFER, 1_048_575);
        let exact = (1_048_576i32).to_be_bytes();
        assert_eq!(
            codec.split(&exact).0,
            FrameStatus::Incomplete { needed: 1_048_576 }
        );
        let over = (1_048_577i32).to_be_bytes();
        assert!(matches!(codec.split(&over).0, FrameStatus::TooLarge { .. }));
    }

    #[test]
    fn encode_then_split() {
        let framed = encode_frame(b"hello");
        let (status, body) = FrameCodec::default().split(&framed);
        assert_eq!(status.frame_len(), Some(9));
        assert_eq!(body, Some(&b"hello"[..]));
    }
}
