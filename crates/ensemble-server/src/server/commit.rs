//! The commit loop: makes proposed writes durable, applies them, and keeps
//! snapshots.
//!
//! Contract: one thread takes every proposal waiting in the state as one batch,
//! appends it to the transaction log and fsyncs once (group commit: writes proposed
//! while a sync runs share the next one), then, under the state lock, applies the
//! batch in zxid order, fills each proposer's reply slot and runs the requests that
//! were waiting behind it ([`super::handler::drain`]). Without a data directory the
//! loop only applies. Every `snapCount` transactions it rolls the log and hands a
//! copy of the tree to a background thread that writes the snapshot and purges
//! what is no longer needed. A log write or sync that fails is fatal: the loop
//! cancels `fatal` and stops, and nothing of that batch is applied or answered.
//! The loop returns once [`State::stop`] was called and nothing is left proposed.

use std::sync::{Arc, Condvar};
use std::thread::JoinHandle;

use tokio_util::sync::CancellationToken;

use crate::storage::{self, Storage};
use crate::tree::snapshot::snapshot;

use super::connection::lock;
use super::handler::drain;
use super::state::Proposal;
use super::Shared;

/// Starts the commit loop on its own thread.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    wake: Arc<Condvar>,
    storage: Option<Storage>,
    fatal: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("commit".into())
        .spawn(move || CommitLoop::new(shared, wake, storage, fatal).run())
}

struct CommitLoop {
    shared: Arc<Shared>,
    wake: Arc<Condvar>,
    storage: Option<Storage>,
    fatal: CancellationToken,
    since_snapshot: u64,
    snapshotter: Option<JoinHandle<()>>,
    encoded: Vec<u8>,
}

impl CommitLoop {
    fn new(
        shared: Arc<Shared>,
        wake: Arc<Condvar>,
        storage: Option<Storage>,
        fatal: CancellationToken,
    ) -> Self {
        Self {
            shared,
            wake,
            storage,
            fatal,
            since_snapshot: 0,
            snapshotter: None,
            encoded: Vec::new(),
        }
    }

    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            if let Err(e) = self.make_durable(&batch) {
                tracing::error!(error = %e, "writing the transaction log failed; stopping");
                self.fatal.cancel();
                return;
            }
            self.apply(batch);
            self.maybe_snapshot();
        }
        if let Some(snapshotter) = self.snapshotter.take() {
            let _ = snapshotter.join();
        }
    }

    /// Waits for proposals; `None` once stopping with nothing left.
    fn next_batch(&self) -> Option<Vec<Proposal>> {
        let mut state = lock(&self.shared.state);
        loop {
            if state.has_proposed() {
                return Some(state.take_proposed());
            }
            if state.stopping() {
                return None;
            }
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn make_durable(&mut self, batch: &[Proposal]) -> std::io::Result<()> {
        let Some(storage) = self.storage.as_mut() else {
            return Ok(());
        };
        self.encoded.clear();
        for proposal in batch {
            proposal.entry.encode(&mut self.encoded);
        }
        storage.append(&self.encoded)?;
        storage.sync()
    }

    fn apply(&mut self, batch: Vec<Proposal>) {
        self.since_snapshot += batch.len() as u64;
        let mut state = lock(&self.shared.state);
        for proposal in batch {
            let result = state.apply_committed(&proposal.entry);
            if let Some((conn, finish)) = proposal.reply {
                state.fill(conn, finish(proposal.entry.zxid, result));
                drain(&mut state, conn);
            }
        }
    }

    /// Every `snapCount` transactions: roll the log and write a snapshot in the
    /// background (skipped while the previous one is still being written).
    fn maybe_snapshot(&mut self) {
        let config = &self.shared.config;
        let Some(storage) = self.storage.as_mut() else {
            return;
        };
        if self.since_snapshot < config.snap_count
            || self.snapshotter.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        let (zxid, bytes) = {
            let state = lock(&self.shared.state);
            (state.tree.last_zxid(), snapshot(&state.tree))
        };
        // Proposals after `zxid` are not written yet: they go to the new file.
        if let Err(e) = storage.roll(zxid + 1) {
            tracing::error!(error = %e, "starting a new log file failed; stopping");
            self.fatal.cancel();
            return;
        }
        self.since_snapshot = 0;
        let dir = storage.dir().to_owned();
        let retain = config.snap_retain_count;
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let written = storage::write_snapshot(&dir, zxid, &bytes)
                    .and_then(|()| storage::purge(&dir, retain));
                match written {
                    Ok(()) => tracing::info!(zxid = %format!("0x{zxid:x}"), "snapshot written"),
                    // The log still holds everything; the next snapshot tries again.
                    Err(e) => tracing::warn!(error = %e, "writing a snapshot failed"),
                }
            });
        match spawned {
            Ok(handle) => self.snapshotter = Some(handle),
            Err(e) => tracing::warn!(error = %e, "cannot start the snapshot thread"),
        }
    }
}
