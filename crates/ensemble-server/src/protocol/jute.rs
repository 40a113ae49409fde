//! Jute primitives: the big-endian binary encoding ZooKeeper uses for every record.
//!
//! Contract: [`Reader`] never panics and never allocates more than the bytes it was
//! given; every malformed input is a [`DecodeError`]. [`Writer`] is infallible.
//! Encodings (from Apache ZooKeeper's `BinaryInputArchive`/`BinaryOutputArchive`):
//! `int` 4 bytes, `long` 8 bytes, `boolean` 1 byte (any non-zero byte reads as true),
//! `buffer` and `ustring` an `int` length then the bytes (-1 = null), `vector` an
//! `int` count then the elements (-1 = null).

use thiserror::Error;

/// Why a byte sequence is not a valid jute record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated input: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("negative length {length} at offset {offset} (only -1, meaning null, is allowed)")]
    NegativeLength { offset: usize, length: i32 },
    #[error("length {length} at offset {offset} exceeds the {remaining} remaining bytes")]
    LengthBeyondInput {
        offset: usize,
        length: usize,
        remaining: usize,
    },
    #[error("length {length} at offset {offset} exceeds the limit of {limit} bytes")]
    LengthBeyondLimit {
        offset: usize,
        length: usize,
        limit: usize,
    },
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
    #[error("unknown opcode {0}")]
    UnknownOpCode(i32),
    #[error("opcode {0} is not allowed inside a multi")]
    InvalidMultiOp(i32),
    #[error("a multi mixes read and write operations")]
    MixedMulti,
    #[error("invalid multi result type {0}")]
    InvalidMultiResult(i32),
    /// A tag of one of our own binary forms (log records, transactions).
    #[error("unknown {kind} tag {tag}")]
    UnknownTag { kind: &'static str, tag: i32 },
}

/// Reads jute primitives from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limit: usize,
}

impl<'a> Reader<'a> {
    /// A reader whose buffers and strings may be as long as the input itself.
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_limit(buf, usize::MAX)
    }

    /// A reader that rejects any single buffer, string or vector longer than `limit`.
    pub fn with_limit(buf: &'a [u8], limit: usize) -> Self {
        Self { buf, pos: 0, limit }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// A bool that older peers leave out at the end of a record (the connect handshake's
    /// `readOnly`): `None` when the record ends here.
    pub fn read_trailing_bool(&mut self) -> Result<Option<bool>, DecodeError> {
        if self.is_empty() {
            Ok(None)
        } else {
            self.read_bool().map(Some)
        }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_be_bytes)
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_be_bytes)
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        self.array::<1>().map(|[b]| b != 0)
    }

    /// Reads a length prefix: `None` for -1 (null), otherwise checked against
    /// `max_count`, the number of elements the remaining input could possibly hold.
    fn read_length(&mut self, min_element_size: usize) -> Result<Option<usize>, DecodeError> {
        let offset = self.pos;
        let length = self.read_i32()?;
        if length == -1 {
            return Ok(None);
        }
        let Ok(n) = usize::try_from(length) else {
            return Err(DecodeError::NegativeLength { offset, length });
        };
        if n > self.limit {
            return Err(DecodeError::LengthBeyondLimit {
                offset,
                length: n,
                limit: self.limit,
            });
        }
        let remaining = self.remaining();
        if n.saturating_mul(min_element_size) > remaining {
            return Err(DecodeError::LengthBeyondInput {
                offset,
                length: n,
                remaining,
            });
        }
        Ok(Some(n))
    }

    /// A `buffer`; `None` is jute's null (length -1).
    pub fn read_buffer(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.read_length(1)? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n)?.to_vec())),
        }
    }

    /// A `buffer` where null and empty mean the same thing.
    pub fn read_bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        Ok(self.read_buffer()?.unwrap_or_default())
    }

    /// A `ustring`; `None` is null. Invalid UTF-8 is replaced by U+FFFD, as Java's
    /// `new String(bytes, UTF_8)` does, so such paths later fail path validation.
    pub fn read_ustring_opt(&mut self) -> Result<Option<String>, DecodeError> {
        match self.read_length(1)? {
            None => Ok(None),
            Some(n) => Ok(Some(String::from_utf8_lossy(self.take(n)?).into_owned())),
        }
    }

    /// A `ustring` where null reads as the empty string (every consumer rejects or
    /// ignores both alike).
    pub fn read_ustring(&mut self) -> Result<String, DecodeError> {
        Ok(self.read_ustring_opt()?.unwrap_or_default())
    }

    /// A `vector`; null reads as empty. `min_element_size` bounds the count by the
    /// remaining input so a forged count cannot make us allocate.
    pub fn read_vec<T>(
        &mut self,
        min_element_size: usize,
        mut element: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let Some(n) = self.read_length(min_element_size.max(1))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(element(self)?);
        }
        Ok(out)
    }

    pub fn read_string_vec(&mut self) -> Result<Vec<String>, DecodeError> {
        self.read_vec(4, Self::read_ustring)
    }
}

/// Writes jute primitives into a growable buffer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer that reserves four bytes for a frame length, filled in by
    /// [`Writer::into_frame`].
    pub fn for_frame() -> Self {
        Self { buf: vec![0; 4] }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Fills in the length prefix reserved by [`Writer::for_frame`].
    pub fn into_frame(mut self) -> Vec<u8> {
        let body = self.buf.len().saturating_sub(4);
        let len = i32::try_from(body).unwrap_or(i32::MAX);
        if self.buf.len() >= 4 {
            self.buf[..4].copy_from_slice(&len.to_be_bytes());
        }
        self.buf
    }

    /// Appends bytes already encoded.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn write_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    fn write_len(&mut self, n: usize) {
        // Jute lengths are i32; nothing we send comes near 2 GiB (frames are capped far lower).
        self.write_i32(i32::try_from(n).unwrap_or(i32::MAX));
    }

    pub fn write_buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.write_i32(-1),
            Some(bytes) => {
                self.write_len(bytes.len());
                self.buf.extend_from_slice(bytes);
            }
        }
    }

    pub fn write_bytes(&mut self, v: &[u8]) {
        self.write_buffer(Some(v));
    }

    pub fn write_ustring(&mut self, v: &str) {
        self.write_bytes(v.as_bytes());
    }

    pub fn write_vec<T>(&mut self, items: &[T], mut element: impl FnMut(&mut Self, &T)) {
        self.write_len(items.len());
        for item in items {
            element(self, item);
        }
    }

    pub fn write_string_vec(&mut self, items: &[String]) {
        self.write_vec(items, |w, s| w.write_ustring(s));
    }
}

/// A jute record: a fixed sequence of fields.
pub trait Record: Sized {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    fn write(&self, w: &mut Writer);

    /// Decodes a record that must span all of `bytes`.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_big_endian() {
        let mut w = Writer::new();
        w.write_i32(1);
        w.write_i64(-2);
        w.write_bool(true);
        w.write_buffer(None);
        w.write_ustring("ab");
        assert_eq!(
            w.into_bytes(),
            [
                0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 1, 0xff, 0xff, 0xff,
                0xff, 0, 0, 0, 2, b'a', b'b'
            ]
        );
    }

    #[test]
    fn null_buffer_and_vector() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.read_buffer(), Ok(None));
        assert_eq!(r.read_string_vec(), Ok(vec![]));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            Reader::new(&[0, 0]).read_i32(),
            Err(DecodeError::Truncated {
                offset: 0,
                needed: 2
            })
        ));
        assert!(matches!(
            Reader::new(&[0xff, 0xff, 0xff, 0xfe]).read_buffer(),
            Err(DecodeError::NegativeLength { length: -2, .. })
        ));
        assert!(matches!(
            Reader::new(&[0, 0, 0, 5, 1]).read_buffer(),
            Err(DecodeError::LengthBeyondInput {
                length: 5,
                remaining: 1,
                ..
            })
        ));
        assert!(matches!(
            Reader::with_limit(&[0, 0, 0, 2, 1, 2], 1).read_buffer(),
            Err(DecodeError::LengthBeyondLimit {
                length: 2,
                limit: 1,
                ..
            })
        ));
        // A forged vector count cannot exceed what the input could hold.
        assert!(matches!(
            Reader::new(&[0x7f, 0xff, 0xff, 0xff]).read_string_vec(),
            Err(DecodeError::LengthBeyondInput { .. })
        ));
        assert_eq!(
            Reader::new(&[1]).finish(),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn any_nonzero_byte_is_true() {
        assert_eq!(Reader::new(&[7]).read_bool(), Ok(true));
        assert_eq!(Reader::new(&[0]).read_bool(), Ok(false));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut r = Reader::new(&[0, 0, 0, 1, 0xff]);
        assert_eq!(r.read_ustring().as_deref(), Ok("\u{fffd}"));
    }
}
