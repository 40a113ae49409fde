//! The adapter from openraft's `RaftStateMachine` to the server's [`StateMachine`].
//!
//! Contract:
//! - `apply` calls [`StateMachine::apply`] once per entry in index order: the
//!   command's bytes for normal entries, `None` for blank and membership entries;
//!   it tracks the last applied log id and the last membership.
//! - Building a snapshot begins it with [`StateMachine::snapshot`] while openraft's
//!   state-machine worker waits, so it is taken at the last applied log id exactly;
//!   its job then runs on a blocking thread while the worker goes on applying, and
//!   each piece it hands over goes straight to the file, so the snapshot is never
//!   held whole in memory while it is built. The snapshot is stored as
//!   `snap-<index>.snap`, atomically (a temporary file, fsynced, renamed), and only
//!   the newest [`SNAPSHOTS_KEPT`] are kept. The file is [`FILE_MAGIC`], a fixed
//!   head (meta length `u32`, data length `u64`, CRC-32 of meta then data `u32`,
//!   little-endian; written last), the encoded meta and the data. Files of earlier
//!   releases (one framed record of meta and data) are still read.
//! - Installing a snapshot restores the machine, then stores the file.
//! - [`StateMachineStore::close`] (when the member stops) waits for a snapshot file being
//!   written, and no file is written after it: nothing touches the data directory once the
//!   member has let go of it. A temporary file that a crash cut short is removed at open.
//! - [`StateMachineStore::open`] restores the newest readable snapshot at startup;
//!   openraft then re-applies the log up to the persisted commit index inside
//!   `Raft::new`, before the member serves anything.
//! - Without a data directory snapshots stay in memory.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use super::types::{
    decode, encode, read_record, rename_durably, LogId, Snapshot, SnapshotMeta, StoredMembership, C,
};
use super::{SnapshotJob, StateMachine};

/// Snapshot files kept on disk.
pub(crate) const SNAPSHOTS_KEPT: usize = 3;

/// How a snapshot file begins; see the module contract.
const FILE_MAGIC: &[u8; 8] = b"ENSNAP2\n";
/// The fixed head behind the magic: meta length, data length, CRC-32.
const FILE_HEAD: usize = 4 + 8 + 4;

/// A snapshot file of earlier releases: one framed record of this.
#[derive(Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// A snapshot file is written back to disk whenever this much has been written since
/// the last time, so the disk never queues more than this of it ahead of the log's
/// fsyncs, and the final fsync has little left to do.
const WRITE_BACK_BYTES: u64 = 1 << 20;

/// The adapter; clones share one state.
#[derive(Clone)]
pub(crate) struct StateMachineStore {
    machine: Arc<dyn StateMachine>,
    dir: Option<PathBuf>,
    state: Arc<Mutex<Applied>>,
    /// Held while a snapshot file is written; `true` once closed.
    closed: Arc<Mutex<bool>>,
}

#[derive(Default)]
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// Meta and data of the newest snapshot (data kept in memory only without a dir).
    snapshot: Option<(SnapshotMeta, Option<Vec<u8>>)>,
}

impl StateMachineStore {
    /// The adapter over `machine`, restoring the newest snapshot under `dir`.
    pub(crate) fn open(
        machine: Arc<dyn StateMachine>,
        dir: Option<PathBuf>,
    ) -> Result<Self, String> {
        let store = StateMachineStore {
            machine,
            dir,
            state: Arc::new(Mutex::new(Applied::default())),
            closed: Arc::default(),
        };
        if let Some(dir) = &store.dir {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            remove_cut_short(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for (index, path) in snapshot_files(dir).into_iter().rev() {
                match read_snapshot(&path) {
                    Ok((meta, data)) => {
                        store
                            .machine
                            .restore(index, &data)
                            .map_err(|e| format!("{}: restore refused: {e}", path.display()))?;
                        let mut state = store.lock();
                        state.last_applied = meta.last_log_id;
                        state.membership = meta.last_membership.clone();
                        state.snapshot = Some((meta, None));
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "skipping an unreadable snapshot"),
                }
            }
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets go of the snapshot directory: waits for a file being written, and refuses
    /// to write any after.
    pub(crate) fn close(&self) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// Stores a snapshot whose data is at hand (one being installed).
    fn store_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let mut storing = self.begin_storing(meta)?;
        self.store_piece(&mut storing, data)?;
        self.finish_storing(meta, storing)
    }

    /// Begins storing a snapshot taken at `meta`: a file, or memory without a dir.
    fn begin_storing(&self, meta: &SnapshotMeta) -> io::Result<Storing> {
        let Some(dir) = &self.dir else {
            return Ok(Storing::Memory(Vec::new()));
        };
        let _closed = self.check_open()?;
        let index = meta.last_log_id.map_or(0, |id| id.index);
        let path = dir.join(format!("snap-{index:020}.snap"));
        SnapshotFileWriter::create(&path, meta, self.closed.clone()).map(Storing::File)
    }

    /// Adds the next piece of the snapshot's data.
    fn store_piece(&self, storing: &mut Storing, piece: &[u8]) -> io::Result<()> {
        match storing {
            Storing::Memory(data) => {
                data.extend_from_slice(piece);
                Ok(())
            }
            Storing::File(file) => {
                let _closed = self.check_open()?;
                file.write(piece)
            }
        }
    }

    /// Makes the snapshot stored the newest, and drops the files beyond
    /// [`SNAPSHOTS_KEPT`].
    fn finish_storing(&self, meta: &SnapshotMeta, storing: Storing) -> io::Result<()> {
        let mut file = match storing {
            Storing::Memory(data) => {
                self.lock().snapshot = Some((meta.clone(), Some(data)));
                return Ok(());
            }
            Storing::File(file) => file,
        };
        // Declared after `file`, so released before `file` is dropped: the writer's
        // drop takes the same lock.
        let _closed = self.check_open()?;
        file.finish()?;
        if let Some(dir) = &self.dir {
            let files = snapshot_files(dir);
            let excess = files.len().saturating_sub(SNAPSHOTS_KEPT);
            for (_, path) in files.into_iter().take(excess) {
                std::fs::remove_file(path)?;
            }
        }
        self.lock().snapshot = Some((meta.clone(), None));
        Ok(())
    }

    /// Holds off [`StateMachineStore::close`] while the guard lives; an error once
    /// closed.
    fn check_open(&self) -> io::Result<std::sync::MutexGuard<'_, bool>> {
        let closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return Err(io::Error::other(
                "the member has stopped; the snapshot is not stored",
            ));
        }
        Ok(closed)
    }
}

/// A snapshot being stored.
enum Storing {
    Memory(Vec<u8>),
    File(SnapshotFileWriter),
}

/// A snapshot file being written, under its temporary name until
/// [`SnapshotFileWriter::finish`]; dropped unfinished, it removes that file unless
/// the store was closed meanwhile (then the next open does).
struct SnapshotFileWriter {
    closed: Arc<Mutex<bool>>,
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    meta_len: u32,
    data_len: u64,
    crc: crc32fast::Hasher,
    /// Bytes written to the file, and how many of them were written back to disk.
    written: u64,
    written_back: u64,
    finished: bool,
}

impl SnapshotFileWriter {
    fn create(path: &Path, meta: &SnapshotMeta, closed: Arc<Mutex<bool>>) -> io::Result<Self> {
        let meta = encode(meta)?;
        let meta_len = u32::try_from(meta.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "snapshot meta too large"))?;
        let tmp = path.with_extension("tmp");
        let mut writer = SnapshotFileWriter {
            closed,
            file: File::create(&tmp)?,
            tmp,
            path: path.to_owned(),
            meta_len,
            data_len: 0,
            crc: crc32fast::Hasher::new(),
            written: 0,
            written_back: 0,
            finished: false,
        };
        writer.put(FILE_MAGIC)?;
        writer.put(&[0; FILE_HEAD])?;
        writer.put(&meta)?;
        writer.crc.update(&meta);
        Ok(writer)
    }

    fn write(&mut self, piece: &[u8]) -> io::Result<()> {
        self.put(piece)?;
        self.crc.update(piece);
        self.data_len += piece.len() as u64;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if self.written - self.written_back >= WRITE_BACK_BYTES {
            write_back(
                &self.file,
                self.written_back,
                self.written - self.written_back,
            );
            self.written_back = self.written;
        }
        Ok(())
    }

    /// Fills in the head, fsyncs the file and renames it to its name.
    fn finish(&mut self) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut head = [0u8; FILE_HEAD];
        head[..4].copy_from_slice(&self.meta_len.to_le_bytes());
        head[4..12].copy_from_slice(&self.data_len.to_le_bytes());
        head[12..].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        self.file.write_all_at(&head, FILE_MAGIC.len() as u64)?;
        self.file.sync_all()?;
        rename_durably(&self.tmp, &self.path)?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for SnapshotFileWriter {
    fn drop(&mut self) {
        let closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if !self.finished && !*closed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes the `len` bytes of `file` at `offset` to disk and waits for them, without
/// the cache flush of an fsync (which follows for the whole file). Only a help for
/// pacing, so failures are left to that fsync.
fn write_back(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: sync_file_range(2) on an open descriptor this function borrows.
        let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Removes the temporary files of snapshot writes that a crash cut short.
fn remove_cut_short(dir: &Path) -> io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.starts_with("snap-") && n.ends_with(".tmp")) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Snapshot files under `dir`, oldest first.
fn snapshot_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|item| {
            let name = item.file_name().to_string_lossy().into_owned();
            let index = name
                .strip_prefix("snap-")?
                .strip_suffix(".snap")?
                .parse()
                .ok()?;
            Some((index, item.path()))
        })
        .collect();
    files.sort();
    files
}

/// Reads the snapshot file at `path`: its meta and data.
fn read_snapshot(path: &Path) -> io::Result<(SnapshotMeta, Vec<u8>)> {
    let damaged = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: damaged snapshot ({what})", path.display()),
        )
    };
    let mut bytes = std::fs::read(path)?;
    let Some(rest) = bytes.strip_prefix(FILE_MAGIC) else {
        let (body, _) = read_record(&bytes).map_err(|e| damaged(format!("{e:?} at offset 0")))?;
        let record: SnapshotRecord = decode(body)?;
        return Ok((record.meta, record.data));
    };
    let Some((head, rest)) = rest.split_first_chunk::<FILE_HEAD>() else {
        return Err(damaged("cut short in its head".into()));
    };
    let meta_len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let data_len = u64::from_le_bytes(head[4..12].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    if (rest.len() as u64) != (meta_len as u64).saturating_add(data_len) {
        return Err(damaged(format!(
            "{} bytes after its head, not {meta_len} of meta and {data_len} of data",
            rest.len()
        )));
    }
    if crc32fast::hash(rest) != crc {
        return Err(damaged("checksum".into()));
    }
    let meta = decode(&rest[..meta_len])?;
    let start = FILE_MAGIC.len() + FILE_HEAD + meta_len;
    bytes.drain(..start);
    Ok((meta, bytes))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("blocking task failed: {e}")))
}

/// A snapshot begun, written and stored when openraft asks.
pub(crate) struct SnapshotBuilder {
    store: StateMachineStore,
    meta: SnapshotMeta,
    job: Option<SnapshotJob>,
}

impl RaftSnapshotBuilder<C> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    /// Runs the job into the file. Its data is not returned: openraft keeps only the
    /// meta of a snapshot it built, and asks `get_current_snapshot` for the data when
    /// a member needs it.
    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let store = self.store.clone();
        let meta = self.meta.clone();
        let job = self.job.take();
        blocking(move || {
            let mut storing = store.begin_storing(&meta)?;
            if let Some(job) = job {
                let mut failed = None;
                let outcome = job(&mut |piece: &[u8]| {
                    store.store_piece(&mut storing, piece).map_err(|e| {
                        let message = e.to_string();
                        failed = Some(e);
                        message
                    })
                });
                if let Err(message) = outcome {
                    return Err(failed.unwrap_or_else(|| io::Error::other(message)));
                }
            }
            store.finish_storing(&meta, storing)?;
            Ok(Snapshot {
                meta,
                snapshot: Vec::new(),
            })
        })
        .await?
    }
}

impl RaftStateMachine<C> for StateMachineStore {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let index = entry.log_id.index;
            match &entry.payload {
                EntryPayload::Normal(command) => self.machine.apply(index, Some(&command.0)),
                EntryPayload::Blank => self.machine.apply(index, None),
                EntryPayload::Membership(membership) => {
                    self.machine.apply(index, None);
                    self.lock().membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                }
            }
            self.lock().last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responder.send(());
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<SnapshotBuilder> {
        let (last_applied, membership) = {
            let state = self.lock();
            (state.last_applied, state.membership.clone())
        };
        let machine = self.machine.clone();
        let (index, job) = match blocking(move || machine.snapshot()).await {
            Ok(begun) => begun,
            Err(e) => {
                tracing::error!(error = %e, "taking a snapshot failed");
                return None;
            }
        };
        if index != last_applied.map_or(0, |id| id.index) {
            tracing::error!(
                index,
                applied = ?last_applied,
                "the state machine's snapshot is not at the last applied index; skipped"
            );
            return None;
        }
        Some(SnapshotBuilder {
            store: self.clone(),
            meta: SnapshotMeta {
                last_log_id: last_applied,
                last_membership: membership,
            },
            job: Some(job),
        })
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // openraft calls `try_create_snapshot_builder`; this is only a fallback.
        let state = self.lock();
        SnapshotBuilder {
            store: self.clone(),
            meta: SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
            },
            job: None,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let index = meta.last_log_id.map_or(0, |id| id.index);
        let store = self.clone();
        let meta_owned = meta.clone();
        blocking(move || {
            store
                .machine
                .restore(index, &snapshot)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            store.store_snapshot(&meta_owned, &snapshot)
        })
        .await??;
        let mut state = self.lock();
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let current = self.lock().snapshot.clone();
        match current {
            None => Ok(None),
            Some((meta, Some(data))) => Ok(Some(Snapshot {
                meta,
                snapshot: data,
            })),
            Some((meta, None)) => {
                let Some(dir) = self.dir.clone() else {
                    return Ok(None);
                };
                let index = meta.last_log_id.map_or(0, |id| id.index);
                let path = dir.join(format!("snap-{index:020}.snap"));
                let (meta, data) = blocking(move || read_snapshot(&path)).await??;
                Ok(Some(Snapshot {
                    meta,
                    snapshot: data,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::testing::log_id::<C>(1, 1, index)),
            ..SnapshotMeta::default()
        }
    }

    fn store_in(dir: &Path) -> StateMachineStore {
        StateMachineStore::open(
            Arc::new(super::super::suite_tests::Recorder::default()),
            Some(dir.to_owned()),
        )
        .unwrap()
    }

    /// A snapshot stored in pieces reads back whole; any byte changed or cut off
    /// afterwards is refused, naming the file.
    #[test]
    fn a_snapshot_file_reads_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let data: Vec<u8> = (0..3 * WRITE_BACK_BYTES as usize + 5)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut storing = store.begin_storing(&meta(8)).unwrap();
        for piece in data.chunks(100_000) {
            store.store_piece(&mut storing, piece).unwrap();
        }
        store.finish_storing(&meta(8), storing).unwrap();
        let path = dir.path().join("snap-00000000000000000008.snap");
        assert_eq!(read_snapshot(&path).unwrap(), (meta(8), data.clone()));

        let good = std::fs::read(&path).unwrap();
        let meta_at = FILE_MAGIC.len() + FILE_HEAD;
        for at in [0, 9, meta_at + 1, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            let refused = read_snapshot(&path).map(|_| ()).unwrap_err().to_string();
            assert!(
                refused.contains("snap-00000000000000000008.snap"),
                "{at}: {refused}"
            );
        }
        for len in [4, meta_at - 1, good.len() - 1] {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(read_snapshot(&path).is_err(), "cut to {len} bytes");
        }
    }

    /// A file of an earlier release, one framed record, is still read and restored.
    #[tokio::test]
    async fn a_snapshot_file_of_an_earlier_release_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let applied: Vec<u8> = [1u64, 2, 3].iter().flat_map(|i| i.to_le_bytes()).collect();
        let record = encode(&SnapshotRecord {
            meta: meta(3),
            data: applied.clone(),
        })
        .unwrap();
        super::super::types::write_record_atomic(
            &dir.path().join("snap-00000000000000000003.snap"),
            &[&record],
        )
        .unwrap();
        let mut store = store_in(dir.path());
        let current = store.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!((current.meta, current.snapshot), (meta(3), applied));
        let (applied_at, _) = store.applied_state().await.unwrap();
        assert_eq!(applied_at.map(|id| id.index), Some(3));
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn no_snapshot_is_written_once_closed_and_a_cut_short_one_is_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = dir.path().join("snapshots");
        std::fs::create_dir_all(&snapshots).unwrap();
        std::fs::write(
            snapshots.join("snap-00000000000000000007.tmp"),
            b"cut short",
        )
        .unwrap();
        let store = StateMachineStore::open(
            Arc::new(super::super::suite_tests::Recorder::default()),
            Some(snapshots.clone()),
        )
        .unwrap();
        assert!(names(&snapshots).is_empty(), "{:?}", names(&snapshots));

        store.store_snapshot(&meta(8), b"eight").unwrap();
        assert_eq!(names(&snapshots), ["snap-00000000000000000008.snap"]);
        store.close();
        let refused = store.store_snapshot(&meta(9), b"nine");
        assert!(refused.is_err(), "a snapshot stored after close");
        assert_eq!(names(&snapshots), ["snap-00000000000000000008.snap"]);
    }
}
