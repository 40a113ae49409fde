//! Durable storage of one member: a transaction log and snapshots of the data tree
//! in a data directory, and recovery from them.
//!
//! Contract:
//! - [`Storage::open`] locks the directory (a second process on the same directory
//!   is refused with [`StorageError::Locked`]), creates it if missing, and
//!   recovers: the newest snapshot that reads back intact, then every logged
//!   transaction after it, in zxid order. A log whose last record was cut short or
//!   fails its checksum was never acknowledged (the reply waits for the fsync), so
//!   the torn tail of the newest log file is truncated away; damage anywhere else
//!   is a [`StorageError::Corrupt`] naming the file and offset, and the member
//!   refuses to start rather than serve a tree with a hole in it.
//! - [`Storage::append`] writes encoded [`Entry`]s to the current log file and
//!   [`Storage::sync`] makes them durable (`fdatasync`). The caller replies to a
//!   client only after `sync` returned; many entries share one sync (group commit).
//! - [`Storage::roll`] starts a new log file at the next zxid; a snapshot taken at
//!   zxid Z is paired with a roll to Z+1, so each log file holds exactly the
//!   transactions between two snapshots. [`write_snapshot`] stores one atomically
//!   (temporary file, fsync, rename, directory fsync) and [`purge`] then keeps the
//!   newest `retain` snapshots and the logs still needed after the oldest of them.
//! - The directory also holds `secret`, 32 random bytes made on first start, from
//!   which session passwords are derived so that sessions survive a restart.
//!
//! Layout: `LOCK`, `secret`, `log.<first zxid, 16 hex digits>`,
//! `snapshot.<last zxid, 16 hex digits>`. Formats are in [`wal`] and [`snapfile`].

pub mod snapfile;
pub mod wal;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::tree::{DataTree, TreeOptions};

pub use wal::Entry;

/// Name of the lock file that keeps two processes off one directory.
const LOCK_FILE: &str = "LOCK";
const SECRET_FILE: &str = "secret";
pub const SECRET_LEN: usize = 32;

/// Why storage could not be opened or used.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("data directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("data directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error("{file}: corrupt at byte {offset}: {reason}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "{file}: expected zxid 0x{expected:x} next, found 0x{found:x}: a transaction is missing"
    )]
    Gap {
        file: PathBuf,
        expected: i64,
        found: i64,
    },
}

impl StorageError {
    fn io(dir: &Path, source: io::Error) -> Self {
        Self::Io {
            dir: dir.to_owned(),
            source,
        }
    }
}

/// What recovery found.
pub struct Recovered {
    pub tree: DataTree,
    pub secret: [u8; SECRET_LEN],
    /// Log entries replayed on top of the snapshot.
    pub replayed: u64,
    /// The zxid of the snapshot recovery started from (0 for none).
    pub snapshot_zxid: i64,
}

/// An open data directory; see the module contract.
pub struct Storage {
    dir: PathBuf,
    /// Held for the lifetime of the storage; the OS lock goes with the handle.
    _lock: File,
    log: wal::LogWriter,
}

impl Storage {
    /// Locks `dir` and recovers its contents; see the module contract.
    pub fn open(dir: &Path, options: TreeOptions) -> Result<(Self, Recovered), StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| StorageError::io(dir, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StorageError::Locked(dir.to_owned())),
            Err(fs::TryLockError::Error(e)) => return Err(StorageError::io(dir, e)),
        }
        let secret = load_secret(dir)?;

        let (mut tree, snapshot_zxid) =
            snapfile::load_newest(dir, options)?.unwrap_or_else(|| (DataTree::new(options), 0));
        let replayed = wal::replay(dir, &mut tree)?;
        let next_zxid = tree.last_zxid() + 1;
        let log = wal::LogWriter::create(dir, next_zxid).map_err(|e| StorageError::io(dir, e))?;
        Ok((
            Self {
                dir: dir.to_owned(),
                _lock: lock,
                log,
            },
            Recovered {
                tree,
                secret,
                replayed,
                snapshot_zxid,
            },
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes encoded entries (see [`Entry::encode`]) to the current log file.
    pub fn append(&mut self, encoded: &[u8]) -> io::Result<()> {
        self.log.append(encoded)
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.log.sync()
    }

    /// Starts a new log file whose first entry will be `next_zxid`.
    pub fn roll(&mut self, next_zxid: i64) -> io::Result<()> {
        self.log.sync()?;
        self.log = wal::LogWriter::create(&self.dir, next_zxid)?;
        Ok(())
    }
}

/// Stores a snapshot of the tree as of `zxid`; see the module contract.
pub fn write_snapshot(dir: &Path, zxid: i64, tree_bytes: &[u8]) -> io::Result<()> {
    snapfile::write(dir, zxid, tree_bytes)
}

/// Deletes all but the newest `retain` snapshots and the logs only they needed.
pub fn purge(dir: &Path, retain: usize) -> io::Result<()> {
    let mut snapshots = numbered_files(dir, snapfile::PREFIX)?;
    if snapshots.len() <= retain {
        return Ok(());
    }
    snapshots.sort_unstable();
    let keep_from = snapshots.len() - retain;
    let oldest_kept = snapshots[keep_from].0;
    for (_, path) in &snapshots[..keep_from] {
        fs::remove_file(path)?;
    }
    // A log file covers [its start, the next file's start); it is needed while that
    // range reaches past the oldest kept snapshot.
    let mut logs = numbered_files(dir, wal::PREFIX)?;
    logs.sort_unstable();
    for pair in logs.windows(2) {
        if pair[1].0 <= oldest_kept + 1 {
            fs::remove_file(&pair[0].1)?;
        }
    }
    Ok(())
}

/// Files named `<prefix>.<16 hex digits>` in `dir`, with their numbers, unsorted.
fn numbered_files(dir: &Path, prefix: &str) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hex) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
        else {
            continue;
        };
        if hex.len() == 16 {
            if let Ok(n) = u64::from_str_radix(hex, 16) {
                out.push((n as i64, entry.path()));
            }
        }
    }
    Ok(out)
}

fn numbered_name(prefix: &str, n: i64) -> String {
    format!("{prefix}.{:016x}", n as u64)
}

/// Flushes a directory's entries (a new or renamed file's name) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn load_secret(dir: &Path) -> Result<[u8; SECRET_LEN], StorageError> {
    let path = dir.join(SECRET_FILE);
    match fs::read(&path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|bytes: Vec<u8>| StorageError::Corrupt {
                file: path,
                offset: 0,
                reason: format!("expected {SECRET_LEN} bytes, found {}", bytes.len()),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let secret: [u8; SECRET_LEN] = rand::random();
            let tmp = dir.join("secret.tmp");
            let write = || -> io::Result<()> {
                let mut options = OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&tmp)?;
                io::Write::write_all(&mut file, &secret)?;
                file.sync_all()?;
                fs::rename(&tmp, &path)?;
                sync_dir(dir)
            };
            write().map_err(|e| StorageError::io(dir, e))?;
            Ok(secret)
        }
        Err(e) => Err(StorageError::io(dir, e)),
    }
}
