//! The adapter from openraft's `RaftStateMachine` to the server's [`StateMachine`].
//!
//! Contract:
//! - `apply` calls [`StateMachine::apply`] once per entry in index order: the
//!   command's bytes for normal entries, `None` for blank and membership entries;
//!   it tracks the last applied log id and the last membership.
//! - Building a snapshot begins it with [`StateMachine::snapshot`] while openraft's
//!   state-machine worker waits, so it is taken at the last applied log id exactly;
//!   its job then runs on a blocking thread while the worker goes on applying. The
//!   snapshot is stored as `snap-<index>.snap` (one framed record: encoded meta and
//!   data), atomically, and only the newest [`SNAPSHOTS_KEPT`] are kept.
//! - Installing a snapshot restores the machine, then stores the file.
//! - [`StateMachineStore::close`] (when the member stops) waits for a snapshot file being
//!   written, and no file is written after it: nothing touches the data directory once the
//!   member has let go of it. A temporary file that a crash cut short is removed at open.
//! - [`StateMachineStore::open`] restores the newest readable snapshot at startup;
//!   openraft then re-applies the log up to the persisted commit index inside
//!   `Raft::new`, before the member serves anything.
//! - Without a data directory snapshots stay in memory.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use super::types::{
    decode, encode, read_record, write_record_atomic, LogId, Snapshot, SnapshotMeta,
    StoredMembership, C,
};
use super::{SnapshotJob, StateMachine};

/// Snapshot files kept on disk.
pub(crate) const SNAPSHOTS_KEPT: usize = 3;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

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
                    Ok(file) => {
                        store
                            .machine
                            .restore(index, &file.data)
                            .map_err(|e| format!("{}: restore refused: {e}", path.display()))?;
                        let mut state = store.lock();
                        state.last_applied = file.meta.last_log_id;
                        state.membership = file.meta.last_membership.clone();
                        state.snapshot = Some((file.meta, None));
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

    fn store_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let Some(dir) = &self.dir else {
            self.lock().snapshot = Some((meta.clone(), Some(data.to_vec())));
            return Ok(());
        };
        let closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return Err(io::Error::other(
                "the member has stopped; the snapshot is not stored",
            ));
        }
        let index = meta.last_log_id.map_or(0, |id| id.index);
        write_record_atomic(
            &dir.join(format!("snap-{index:020}.snap")),
            &[&snapshot_file_head(meta, data.len())?, data],
        )?;
        let files = snapshot_files(dir);
        let excess = files.len().saturating_sub(SNAPSHOTS_KEPT);
        for (_, path) in files.into_iter().take(excess) {
            std::fs::remove_file(path)?;
        }
        self.lock().snapshot = Some((meta.clone(), None));
        Ok(())
    }
}

/// What precedes the data in an encoded [`SnapshotFile`]: its meta and the data's
/// length, so that the data is written where it is instead of being copied behind.
fn snapshot_file_head(meta: &SnapshotMeta, data_len: usize) -> io::Result<Vec<u8>> {
    let mut head = encode(meta)?;
    head.extend(encode(&(data_len as u64))?);
    Ok(head)
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

fn read_snapshot(path: &Path) -> io::Result<SnapshotFile> {
    let bytes = std::fs::read(path)?;
    let (body, _) = read_record(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: damaged snapshot ({e:?}) at offset 0", path.display()),
        )
    })?;
    decode(body)
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

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let store = self.store.clone();
        let meta = self.meta.clone();
        let job = self.job.take();
        blocking(move || {
            let data = match job {
                Some(job) => job().map_err(io::Error::other)?,
                None => Vec::new(),
            };
            store.store_snapshot(&meta, &data)?;
            Ok(Snapshot {
                meta,
                snapshot: data,
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
                let file = blocking(move || read_snapshot(&path)).await??;
                Ok(Some(Snapshot {
                    meta: file.meta,
                    snapshot: file.data,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot file written as its head and then its data is the encoded
    /// `SnapshotFile` that recovery reads.
    #[test]
    fn a_snapshot_file_is_its_head_then_its_data() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let meta = SnapshotMeta::default();
            let whole = encode(&SnapshotFile {
                meta: meta.clone(),
                data: data.clone(),
            })
            .unwrap();
            let mut parts = snapshot_file_head(&meta, data.len()).unwrap();
            parts.extend_from_slice(&data);
            assert_eq!(parts, whole, "{len} bytes of data");
        }
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

        let meta = |index| SnapshotMeta {
            last_log_id: Some(openraft::testing::log_id::<C>(1, 1, index)),
            ..SnapshotMeta::default()
        };
        store.store_snapshot(&meta(8), b"eight").unwrap();
        assert_eq!(names(&snapshots), ["snap-00000000000000000008.snap"]);
        store.close();
        let refused = store.store_snapshot(&meta(9), b"nine");
        assert!(refused.is_err(), "a snapshot stored after close");
        assert_eq!(names(&snapshots), ["snap-00000000000000000008.snap"]);
    }
}
