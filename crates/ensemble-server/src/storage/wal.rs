//! The transaction log: files of checksummed, zxid-ordered entries.
//!
//! Contract: a log file is a header (`"ENSL"`, format version 1, the zxid of its
//! first entry) followed by records `length (u32) | crc32 of the payload (u32) |
//! payload`, the payload being an [`Entry`]. [`Entry::decode`] never panics.
//! [`replay`] applies every entry after the tree's last zxid, requiring zxids to
//! follow each other without a gap, and cuts a torn tail off (see the module
//! contract of [`super`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{numbered_files, numbered_name, sync_dir, StorageError};
use crate::protocol::{DecodeError, Reader, Writer};
use crate::tree::{DataTree, Origin, Txn};

pub const PREFIX: &str = "log";
const MAGIC: i32 = i32::from_be_bytes(*b"ENSL");
const FORMAT_VERSION: i32 = 1;
const HEADER_LEN: u64 = 4 + 4 + 8;
/// Length and checksum in front of every payload.
const RECORD_PREFIX: usize = 8;

/// One logged transaction: everything [`DataTree::apply`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub zxid: i64,
    pub time_ms: i64,
    pub origin: Origin,
    pub txn: Txn,
}

impl Entry {
    /// Appends this entry as one framed, checksummed record.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new();
        w.write_i64(self.zxid);
        w.write_i64(self.time_ms);
        self.origin.write(&mut w);
        self.txn.write(&mut w);
        let payload = w.into_bytes();
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        out.extend_from_slice(&payload);
    }

    /// Decodes one record's payload.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let entry = Self {
            zxid: r.read_i64()?,
            time_ms: r.read_i64()?,
            origin: Origin::read(&mut r)?,
            txn: Txn::read(&mut r)?,
        };
        r.finish()?;
        Ok(entry)
    }
}

/// Why reading records stopped before the end of a file.
#[derive(Debug)]
struct BadRecord {
    offset: u64,
    reason: String,
}

/// Splits a log file's bytes into entries. Returns the entries read and, if the
/// file does not end cleanly after the last of them, where and why it broke.
fn read_entries(bytes: &[u8]) -> (Vec<Entry>, Option<BadRecord>) {
    let mut entries = Vec::new();
    let mut pos = HEADER_LEN as usize;
    while pos < bytes.len() {
        let bad = |reason: String| {
            Some(BadRecord {
                offset: pos as u64,
                reason,
            })
        };
        let Some(prefix) = bytes.get(pos..pos + RECORD_PREFIX) else {
            return (entries, bad("record header cut short".into()));
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let crc = u32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
        let start = pos + RECORD_PREFIX;
        let Some(payload) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            return (entries, bad(format!("record of {len} bytes cut short")));
        };
        if len == 0 || crc32fast::hash(payload) != crc {
            return (entries, bad("checksum mismatch".into()));
        }
        match Entry::decode(payload) {
            Ok(entry) => entries.push(entry),
            Err(e) => return (entries, bad(format!("undecodable record: {e}"))),
        }
        pos = start + len;
    }
    (entries, None)
}

fn check_header(bytes: &[u8]) -> Result<(), String> {
    let mut r = Reader::new(bytes);
    let magic = r.read_i32().map_err(|e| e.to_string())?;
    let version = r.read_i32().map_err(|e| e.to_string())?;
    r.read_i64().map_err(|e| e.to_string())?;
    if magic != MAGIC {
        return Err("not a log file (bad magic)".into());
    }
    if version != FORMAT_VERSION {
        return Err(format!("unsupported log format version {version}"));
    }
    Ok(())
}

/// Applies the logged entries after `tree`'s last zxid; returns how many.
pub fn replay(dir: &Path, tree: &mut DataTree) -> Result<u64, StorageError> {
    let io_err = |e| StorageError::io(dir, e);
    let mut files = numbered_files(dir, PREFIX).map_err(io_err)?;
    files.sort_unstable();
    let mut replayed = 0;
    for (index, (_, path)) in files.iter().enumerate() {
        let bytes = fs::read(path).map_err(io_err)?;
        let later = &files[index + 1..];
        if (bytes.len() as u64) < HEADER_LEN {
            // Created but never written to: only the newest files can be like that.
            cut_tail(path, 0, later)?;
            continue;
        }
        check_header(&bytes).map_err(|reason| StorageError::Corrupt {
            file: path.clone(),
            offset: 0,
            reason,
        })?;
        let (entries, bad) = read_entries(&bytes);
        for entry in entries {
            if entry.zxid <= tree.last_zxid() {
                continue;
            }
            if entry.zxid != tree.last_zxid() + 1 {
                return Err(StorageError::Gap {
                    file: path.clone(),
                    expected: tree.last_zxid() + 1,
                    found: entry.zxid,
                });
            }
            tree.apply(entry.zxid, entry.time_ms, &entry.origin, &entry.txn);
            replayed += 1;
        }
        if let Some(bad) = bad {
            if later_files_have_records(later).map_err(io_err)? {
                return Err(StorageError::Corrupt {
                    file: path.clone(),
                    offset: bad.offset,
                    reason: bad.reason,
                });
            }
            tracing::warn!(
                file = %path.display(),
                offset = bad.offset,
                reason = %bad.reason,
                "cutting off the torn tail of the transaction log"
            );
            cut_tail(path, bad.offset, later)?;
            break;
        }
    }
    Ok(replayed)
}

fn later_files_have_records(later: &[(i64, PathBuf)]) -> io::Result<bool> {
    for (_, path) in later {
        if fs::metadata(path)?.len() > HEADER_LEN {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Truncates `path` at `offset` (removing it if nothing valid is left) and removes
/// the files after it, which hold no records.
fn cut_tail(path: &Path, offset: u64, later: &[(i64, PathBuf)]) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let io_err = |e| StorageError::io(dir, e);
    if later_files_have_records(later).map_err(io_err)? {
        return Err(StorageError::Corrupt {
            file: path.to_owned(),
            offset,
            reason: "file is cut short but later log files have records".into(),
        });
    }
    if offset < HEADER_LEN {
        fs::remove_file(path).map_err(io_err)?;
    } else {
        let file = OpenOptions::new().write(true).open(path).map_err(io_err)?;
        file.set_len(offset).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
    }
    for (_, later) in later {
        fs::remove_file(later).map_err(io_err)?;
    }
    sync_dir(dir).map_err(io_err)
}

/// The log file being appended to.
pub struct LogWriter {
    file: File,
}

impl LogWriter {
    /// Creates (or replaces an empty) `log.<first_zxid>` and makes its name durable.
    pub fn create(dir: &Path, first_zxid: i64) -> io::Result<Self> {
        let path = dir.join(numbered_name(PREFIX, first_zxid));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let mut header = Writer::new();
        header.write_i32(MAGIC);
        header.write_i32(FORMAT_VERSION);
        header.write_i64(first_zxid);
        file.write_all(&header.into_bytes())?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(Self { file })
    }

    pub fn append(&mut self, encoded: &[u8]) -> io::Result<()> {
        self.file.write_all(encoded)
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::Acl;
    use crate::tree::{CreateKind, TreeOptions};

    fn entry(zxid: i64, path: &str) -> Entry {
        Entry {
            zxid,
            time_ms: 1_700_000_000_000 + zxid,
            origin: Origin::system(),
            txn: Txn::Create {
                path: path.into(),
                data: Some(b"v".to_vec()),
                acl: Acl::open_unsafe(),
                flags: 0,
                kind: CreateKind::Regular,
                ttl: None,
            },
        }
    }

    fn file_with(entries: &[Entry]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut header = Writer::new();
        header.write_i32(MAGIC);
        header.write_i32(FORMAT_VERSION);
        header.write_i64(entries.first().map_or(1, |e| e.zxid));
        bytes.extend(header.into_bytes());
        for e in entries {
            e.encode(&mut bytes);
        }
        bytes
    }

    #[test]
    fn entries_round_trip_through_a_file() {
        let entries = vec![entry(1, "/a"), entry(2, "/b")];
        let (read, bad) = read_entries(&file_with(&entries));
        assert_eq!(read, entries);
        assert!(bad.is_none());
    }

    #[test]
    fn a_cut_or_damaged_record_stops_reading_at_its_offset() {
        let entries = vec![entry(1, "/a"), entry(2, "/b")];
        let bytes = file_with(&entries);
        let second = file_with(&entries[..1]).len();
        for cut in second + 1..bytes.len() {
            let (read, bad) = read_entries(&bytes[..cut]);
            assert_eq!(read, entries[..1], "cut at {cut}");
            assert_eq!(bad.map(|b| b.offset), Some(second as u64), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        *flipped.last_mut().expect("non-empty") ^= 1;
        let (read, bad) = read_entries(&flipped);
        assert_eq!(read.len(), 1);
        assert_eq!(bad.map(|b| b.reason), Some("checksum mismatch".into()));
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0u32..2_000 {
            let bytes: Vec<u8> = (0..(seed % 97))
                .map(|i| (seed.wrapping_mul(2_654_435_761).rotate_left(i) & 0xff) as u8)
                .collect();
            let _ = read_entries(&bytes);
            let _ = Entry::decode(&bytes);
        }
    }

    #[test]
    fn replay_refuses_a_gap() {
        let dir = tempdir("gap");
        fs::write(
            dir.join(numbered_name(PREFIX, 1)),
            file_with(&[entry(1, "/a")]),
        )
        .unwrap();
        fs::write(
            dir.join(numbered_name(PREFIX, 3)),
            file_with(&[entry(3, "/c")]),
        )
        .unwrap();
        let mut tree = DataTree::new(TreeOptions::default());
        let err = replay(&dir, &mut tree).expect_err("zxid 2 is missing");
        assert!(
            matches!(
                err,
                StorageError::Gap {
                    expected: 2,
                    found: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn damage_before_the_end_of_the_log_is_refused() {
        let dir = tempdir("middle");
        let mut first = file_with(&[entry(1, "/a"), entry(2, "/b")]);
        let last = first.len() - 1;
        first[last] ^= 1;
        fs::write(dir.join(numbered_name(PREFIX, 1)), first).unwrap();
        fs::write(
            dir.join(numbered_name(PREFIX, 3)),
            file_with(&[entry(3, "/c")]),
        )
        .unwrap();
        let mut tree = DataTree::new(TreeOptions::default());
        let err = replay(&dir, &mut tree).expect_err("a hole in the middle");
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_rest_recovered() {
        let dir = tempdir("tail");
        let path = dir.join(numbered_name(PREFIX, 1));
        let bytes = file_with(&[entry(1, "/a"), entry(2, "/b")]);
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let mut tree = DataTree::new(TreeOptions::default());
        assert_eq!(replay(&dir, &mut tree).expect("tail is cut"), 1);
        assert!(tree.node("/a").is_some());
        assert!(tree.node("/b").is_none());
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            file_with(&[entry(1, "/a")]).len() as u64
        );
    }

    pub(crate) fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ensemble-wal-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
