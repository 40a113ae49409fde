//! The durable Raft log (openraft's `RaftLogStorage`).
//!
//! Contract:
//! - Entries live in memory (between purges) and, with a data directory, in segment
//!   files `log-<seq>.seg` of framed records (`u32` length, CRC-32, body = the
//!   encoded entry: log id and payload, blank / command / membership).
//! - **Group commit.** Every write goes through one writer thread that drains its
//!   queue: all appends found in the queue are written, then one `fdatasync`, then
//!   every one of their `IOFlushed` callbacks is called. Appends that arrive while
//!   an fsync runs share the next one. Queue order is kept for truncation, purge,
//!   vote and commit index, so e.g. a commit index is never persisted ahead of the
//!   entries it covers.
//! - The vote (`vote`), the committed log id (`committed`) and the purge point
//!   (`purged`) are small files written atomically (temporary file, fsync, rename,
//!   directory fsync). `save_vote` returns only once the vote is durable. The
//!   committed log id is only a recovery hint (a restarted member learns the commit
//!   point again from a quorum), so it is written at most every [`COMMITTED_EVERY`]
//!   and when the writer stops, not with every batch: its three fsyncs would
//!   otherwise more than double the disk time of every serial write. Nor does every
//!   commit send the writer a message, which would wake its thread once per write on
//!   every member: the latest committed log id waits in a shared [`CommitHint`] with
//!   the count of appends sent before it, and the writer persists it only once it has
//!   flushed that many appends, so a commit index is never persisted ahead of its
//!   entries. The writer is woken only when a value arrives while none waits (while one
//!   waits, its wait for the next operation is bounded anyway), so at most once per
//!   write of the file.
//! - **Preallocation.** The active segment is allocated ahead of its records in steps
//!   of [`ALLOCATE_BYTES`], by writing zeros, so appending never changes the file's
//!   size and an `fdatasync` flushes the records' blocks only. Zeros are written rather
//!   than `fallocate`d: a write into `fallocate`'s unwritten extents also converts
//!   them, a metadata change the next `fdatasync` must write too. On the ext4 of the
//!   machine we measure on, a 4 KiB write and `fdatasync` took 0.20 ms into
//!   `fallocate`d space and 0.155 ms into written zeros (0.31 and 0.23 ms with three
//!   writers on one disk, as three members on one machine). Records only go into
//!   zeros an earlier fsync made durable (the next step's zeros are written with the
//!   batch before), so that a crash leaves zeros, not stale blocks of the disk,
//!   behind the last record, at no fsync of its own. A segment is trimmed to its
//!   records when the next one starts.
//! - A batch of records is written with one system call per segment it touches.
//! - Truncation cuts the segment file (allocating zeros again behind the cut, so cut
//!   records can never be read back) and deletes later segments, fsynced; purge
//!   persists the purge point first, then deletes segments wholly before it.
//! - Recovery: a segment's records end where only zeros follow. In the newest
//!   segment, a record cut short, failing its checksum or with a zero length is a
//!   torn tail (never acknowledged) if only zeros follow it, and is cut off; any
//!   other damage refuses to open with the file and offset.
//! - A `LOCK` file, locked exclusively, refuses a second process on the directory.
//! - With no data directory everything stays in memory and callbacks fire at once.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;

use super::types::{
    decode, encode, put_record, read_record, read_small_file, write_record_atomic, Entry, LogId,
    RecordError, Vote, C,
};

/// How often at most the committed log id is written; see the module contract.
const COMMITTED_EVERY: Duration = Duration::from_millis(100);

/// A segment is closed and a new one started beyond this size.
const SEGMENT_BYTES: u64 = 32 << 20;

/// The active segment is allocated ahead of its records in steps of this size: small
/// enough that writing its zeros adds little to the fsync of the batch that needs it.
const ALLOCATE_BYTES: u64 = 256 << 10;

/// The log store; clones share one log (openraft's reader is a clone).
#[derive(Clone)]
pub(crate) struct LogStore {
    shared: Arc<Shared>,
}

struct Shared {
    mem: Mutex<Mem>,
    /// Shared with the writer thread.
    hint: Arc<Mutex<CommitHint>>,
    /// `None` in memory mode, and after [`LogStore::close`].
    writer: Mutex<Option<mpsc::Sender<Op>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    lock: Mutex<Option<File>>,
}

#[derive(Default)]
struct Mem {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

/// The commit index on its way to disk; see the module contract.
#[derive(Default)]
struct CommitHint {
    /// Appends sent to the writer so far.
    appends_sent: u64,
    /// The latest committed log id not persisted yet, with `appends_sent` when it was
    /// set: it may be persisted once the writer has flushed that many appends.
    latest: Option<(Option<LogId>, u64)>,
}

type Reply = tokio::sync::oneshot::Sender<io::Result<()>>;

/// The records of one `append` call and its callback.
type PendingAppend = (Records, IOFlushed<C>);

/// Framed records, one after the other, and each one's log index and end.
#[derive(Default)]
struct Records {
    bytes: Vec<u8>,
    ends: Vec<(u64, usize)>,
}

impl Records {
    fn push(&mut self, entry: &Entry) -> io::Result<()> {
        put_record(&mut self.bytes, entry)?;
        self.ends.push((entry.log_id.index, self.bytes.len()));
        Ok(())
    }

    /// `(index, record)` in order.
    fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let mut start = 0;
        self.ends.iter().map(move |&(index, end)| {
            let record = &self.bytes[start..end];
            start = end;
            (index, record)
        })
    }
}

enum Op {
    Append(Records, IOFlushed<C>),
    /// Remove every entry from this index on.
    Truncate(u64, Reply),
    Purge(LogId, Reply),
    Vote(Vote, Reply),
    /// Only a wake-up: the value is in the [`CommitHint`].
    Committed,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl LogStore {
    /// A log kept in memory only.
    pub(crate) fn in_memory() -> Self {
        LogStore {
            shared: Arc::new(Shared {
                mem: Mutex::new(Mem::default()),
                hint: Arc::default(),
                writer: Mutex::new(None),
                thread: Mutex::new(None),
                lock: Mutex::new(None),
            }),
        }
    }

    /// Opens (or creates) the log under `dir`, recovering as the contract says.
    /// Errors are `(file, reason)`.
    pub(crate) fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let lock_path = dir.join("LOCK");
        let lock_file =
            File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
        lock_file
            .try_lock()
            .map_err(|e| format!("{} is in use by another process ({e})", lock_path.display()))?;

        let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
            let path = dir.join(name);
            read_small_file::<Vec<u8>>(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let mut mem = Mem::default();
        let damaged = |name: &str, e: io::Error| format!("{}: {e}", dir.join(name).display());
        if let Some(b) = read("vote")? {
            mem.vote = Some(decode(&b).map_err(|e| damaged("vote", e))?);
        }
        if let Some(b) = read("committed")? {
            mem.committed = decode(&b).map_err(|e| damaged("committed", e))?;
        }
        if let Some(b) = read("purged")? {
            mem.purged = decode(&b).map_err(|e| damaged("purged", e))?;
        }

        let disk = Disk::recover(dir, &mut mem)?;
        // A commit index is persisted only behind its entries; clamp all the same.
        let last = mem
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(mem.purged);
        if mem.committed > last {
            mem.committed = last;
        }

        let (tx, rx) = mpsc::channel();
        let hint: Arc<Mutex<CommitHint>> = Arc::default();
        let writer_hint = Arc::clone(&hint);
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || disk.run(rx, &writer_hint))
            .map_err(|e| format!("starting the log writer: {e}"))?;
        Ok(LogStore {
            shared: Arc::new(Shared {
                mem: Mutex::new(mem),
                hint,
                writer: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                lock: Mutex::new(Some(lock_file)),
            }),
        })
    }

    /// Stops the writer (after it has finished its queue) and releases the lock.
    pub(crate) fn close(&self) {
        let sender = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(sender);
        let thread = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        self.shared
            .lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    fn send(&self, op: Op) -> io::Result<()> {
        let writer = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        match writer.as_ref() {
            Some(tx) => tx
                .send(op)
                .map_err(|_| io::Error::other("the log writer has stopped")),
            None => Err(io::Error::other("the log is closed")),
        }
    }

    fn is_durable(&self) -> bool {
        self.shared
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    async fn request(&self, make: impl FnOnce(Reply) -> Op) -> io::Result<()> {
        if !self.is_durable() {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(make(tx))?;
        rx.await
            .map_err(|_| io::Error::other("the log writer has stopped"))?
    }
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let mem = lock(&self.shared.mem);
        Ok(mem.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(lock(&self.shared.mem).vote)
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let mem = lock(&self.shared.mem);
        let last = mem
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(mem.purged);
        Ok(LogState {
            last_purged_log_id: mem.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let vote = *vote;
        self.request(|tx| Op::Vote(vote, tx)).await?;
        lock(&self.shared.mem).vote = Some(vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        lock(&self.shared.mem).committed = committed;
        if self.is_durable() {
            // A writer with no value waiting may be blocked without a deadline.
            let wake = {
                let mut hint = lock(&self.shared.hint);
                let none_waiting = hint.latest.is_none();
                hint.latest = Some((committed, hint.appends_sent));
                none_waiting
            };
            if wake {
                self.send(Op::Committed)?;
            }
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(lock(&self.shared.mem).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let durable = self.is_durable();
        let mut records = Records::default();
        {
            let mut mem = lock(&self.shared.mem);
            for entry in entries {
                if durable {
                    records.push(&entry)?;
                }
                mem.entries.insert(entry.log_id.index, entry);
            }
        }
        if durable {
            lock(&self.shared.hint).appends_sent += 1;
            self.send(Op::Append(records, callback))?;
        } else {
            callback.io_completed(Ok(()));
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        {
            let mut mem = lock(&self.shared.mem);
            let _removed = mem.entries.split_off(&from);
        }
        self.request(|tx| Op::Truncate(from, tx)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.request(|tx| Op::Purge(log_id, tx)).await?;
        let mut mem = lock(&self.shared.mem);
        let kept = mem.entries.split_off(&(log_id.index + 1));
        mem.entries = kept;
        if mem.purged < Some(log_id) {
            mem.purged = Some(log_id);
        }
        Ok(())
    }
}

/// The writer thread's view of the files.
struct Disk {
    dir: PathBuf,
    /// Segment sequence number → its first and last index (`None` when empty).
    segments: BTreeMap<u64, Option<(u64, u64)>>,
    /// Index → (segment, offset) of every entry on disk.
    offsets: BTreeMap<u64, (u64, u64)>,
    active: File,
    active_seq: u64,
    /// Where the active segment's records end.
    active_len: u64,
    /// The active segment's length on disk, zeros beyond `active_len`.
    allocated: u64,
    /// Up to where those zeros are known to be on disk (fsynced): records are only
    /// written below it.
    durable: u64,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("log-{seq:010}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens (or creates) the segment at `path` for positioned writes.
fn open_segment(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
}

/// Writes zeros over `file` from `from` up to `to` bytes (growing it if needed).
fn allocate(file: &File, from: u64, to: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The end of the zeros written behind a cut at `offset` in a file of `len` bytes:
/// the cut records are gone, and at most one allocation step is written again.
fn refill_end(offset: u64, len: u64) -> u64 {
    len.min(offset.next_multiple_of(ALLOCATE_BYTES))
}

/// Whether `bytes` are all zeros: space allocated ahead that no record reached.
fn unwritten(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

impl Disk {
    fn recover(dir: &Path, mem: &mut Mem) -> Result<Disk, String> {
        let mut seqs = Vec::new();
        let listing = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for item in listing {
            let item = item.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name
                .strip_prefix("log-")
                .and_then(|s| s.strip_suffix(".seg"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let purged_index = mem.purged.map(|id| id.index);
        let mut segments = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        let mut previous: Option<u64> = None;
        let mut active_len = 0;
        for (n, &seq) in seqs.iter().enumerate() {
            let newest = n + 1 == seqs.len();
            let path = segment_path(dir, seq);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut offset = 0usize;
            let mut range: Option<(u64, u64)> = None;
            while offset < bytes.len() {
                let rest = &bytes[offset..];
                // No record has a zero length; a zero header starts the unwritten end.
                let zero_length = rest.len() < 4 || rest[..4] == [0; 4];
                if zero_length && unwritten(rest) {
                    break;
                }
                let record = if zero_length {
                    Err(RecordError::Checksum)
                } else {
                    read_record(rest)
                };
                let damage = match record {
                    Ok((body, len)) => match decode::<Entry>(body) {
                        Ok(entry) => {
                            let index = entry.log_id.index;
                            if previous.is_some_and(|p| index != p + 1) {
                                return Err(format!(
                                    "{}: entry {index} at offset {offset} does not follow entry {}",
                                    path.display(),
                                    previous.unwrap_or(0)
                                ));
                            }
                            previous = Some(index);
                            range = Some((range.map_or(index, |r| r.0), index));
                            offsets.insert(index, (seq, offset as u64));
                            if purged_index.is_none_or(|p| index > p) {
                                mem.entries.insert(index, entry);
                            }
                            offset += len;
                            continue;
                        }
                        Err(e) => format!("undecodable entry ({e})"),
                    },
                    Err(RecordError::Short) if newest => {
                        Self::cut_tail(&path, offset)?;
                        break;
                    }
                    Err(RecordError::Checksum) if newest && Self::is_tail(rest) => {
                        Self::cut_tail(&path, offset)?;
                        break;
                    }
                    Err(e) => format!("damaged record ({e:?})"),
                };
                return Err(format!("{}: {damage} at offset {offset}", path.display()));
            }
            segments.insert(seq, range);
            if newest {
                active_len = offset as u64;
            }
        }
        let active_seq = seqs.last().copied().unwrap_or(1);
        let path = segment_path(dir, active_seq);
        let failed = |e: io::Error| format!("{}: {e}", path.display());
        let active = open_segment(&path).map_err(failed)?;
        let allocated = active.metadata().map_err(failed)?.len();
        // What recovery read may still be only in the page cache.
        active.sync_data().map_err(failed)?;
        if seqs.is_empty() {
            sync_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            segments.insert(active_seq, None);
        }
        Ok(Disk {
            dir: dir.to_path_buf(),
            segments,
            offsets,
            active,
            active_seq,
            active_len,
            allocated,
            durable: allocated,
        })
    }

    /// A record failing its checksum is a torn tail only if nothing but zeros
    /// follows the length its header gives.
    fn is_tail(bytes: &[u8]) -> bool {
        if bytes.len() < 8 {
            return true;
        }
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        bytes.get(8 + len..).is_none_or(unwritten)
    }

    fn cut_tail(path: &Path, offset: usize) -> Result<(), String> {
        tracing::warn!(file = %path.display(), offset, "cutting off a torn log tail");
        let cut = || -> io::Result<()> {
            let file = OpenOptions::new().write(true).open(path)?;
            let len = file.metadata()?.len();
            file.set_len(offset as u64)?;
            allocate(&file, offset as u64, refill_end(offset as u64, len))?;
            file.sync_all()
        };
        cut().map_err(|e| {
            format!(
                "{}: cutting the torn tail at offset {offset}: {e}",
                path.display()
            )
        })
    }

    fn run(mut self, rx: mpsc::Receiver<Op>, hint: &Mutex<CommitHint>) {
        // Appends flushed so far, and when a commit index was last written.
        let mut flushed = 0;
        let mut committed_written = Instant::now();
        loop {
            // A commit index waiting to be written bounds the wait for the next operation.
            let first = if lock(hint).latest.is_some() {
                let wait = COMMITTED_EVERY.saturating_sub(committed_written.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(op) => Some(op),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(op) => Some(op),
                    Err(_) => break,
                }
            };
            let mut appends: Vec<PendingAppend> = Vec::new();
            for op in first.into_iter().chain(rx.try_iter()) {
                match op {
                    Op::Append(records, callback) => appends.push((records, callback)),
                    Op::Committed => {}
                    other => {
                        flushed += self.flush(&mut appends);
                        self.write_committed(hint, flushed);
                        committed_written = Instant::now();
                        match other {
                            Op::Truncate(from, reply) => {
                                let _ = reply.send(self.truncate(from));
                            }
                            Op::Purge(id, reply) => {
                                let _ = reply.send(self.purge(id));
                            }
                            Op::Vote(vote, reply) => {
                                let result =
                                    encode(&vote).and_then(|b| self.write_file("vote", &b));
                                let _ = reply.send(result);
                            }
                            Op::Append(..) | Op::Committed => {}
                        }
                    }
                }
            }
            flushed += self.flush(&mut appends);
            if committed_written.elapsed() >= COMMITTED_EVERY {
                self.write_committed(hint, flushed);
                committed_written = Instant::now();
            }
        }
        self.write_committed(hint, flushed);
    }

    fn write_file(&self, name: &str, body: &[u8]) -> io::Result<()> {
        write_record_atomic(&self.dir.join(name), &[&encode(&body.to_vec())?])
    }

    /// Persists the latest commit index if the appends sent before it are flushed.
    fn write_committed(&mut self, hint: &Mutex<CommitHint>, flushed: u64) {
        let committed = {
            let mut hint = lock(hint);
            match hint.latest {
                Some((committed, after)) if after <= flushed => {
                    hint.latest = None;
                    committed
                }
                _ => return,
            }
        };
        if let Err(e) = encode(&committed).and_then(|b| self.write_file("committed", &b)) {
            tracing::error!(error = %e, "persisting the commit index failed");
        }
    }

    /// Writes every pending append, fsyncs once, then acknowledges them all; returns
    /// how many were made durable.
    fn flush(&mut self, appends: &mut Vec<PendingAppend>) -> u64 {
        if appends.is_empty() {
            return 0;
        }
        let records = appends.iter().flat_map(|(records, _)| records.iter());
        let result = self
            .write_records(records)
            .and_then(|_| self.active.sync_data());
        if result.is_ok() {
            self.durable = self.allocated;
        }
        let count = appends.len() as u64;
        for (_, callback) in appends.drain(..) {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            callback.io_completed(outcome);
        }
        if result.is_ok() {
            count
        } else {
            0
        }
    }

    /// Writes `(index, record)`s after the last record, starting a new segment
    /// whenever the active one is full; one write per segment touched.
    fn write_records<'a>(
        &mut self,
        records: impl Iterator<Item = (u64, &'a [u8])>,
    ) -> io::Result<()> {
        let mut batch = Vec::new();
        let mut start = self.active_len;
        for (index, record) in records {
            if self.active_len >= SEGMENT_BYTES {
                self.write_at(&batch, start)?;
                batch.clear();
                self.next_segment()?;
                start = 0;
            }
            batch.extend_from_slice(record);
            self.offsets
                .insert(index, (self.active_seq, self.active_len));
            self.active_len += record.len() as u64;
            let range = self.segments.entry(self.active_seq).or_insert(None);
            *range = Some((range.map_or(index, |r| r.0), index));
        }
        self.write_at(&batch, start)
    }

    /// Writes `bytes` at `offset` of the active segment, into zeros already on disk,
    /// and allocates the next step when less than one is left: its zeros reach the
    /// disk with this batch's fsync, before any record goes into them. (Only a batch
    /// that outruns them, or the first of a segment, fsyncs zeros of its own.)
    fn write_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if bytes.is_empty() {
            return Ok(());
        }
        let end = offset + bytes.len() as u64;
        if end > self.durable {
            let to = end.next_multiple_of(ALLOCATE_BYTES).max(self.allocated);
            allocate(&self.active, self.allocated, to)?;
            self.active.sync_data()?;
            self.allocated = to;
            self.durable = to;
        }
        self.active.write_all_at(bytes, offset)?;
        if self.allocated - end < ALLOCATE_BYTES {
            let to = self.allocated + ALLOCATE_BYTES;
            allocate(&self.active, self.allocated, to)?;
            self.allocated = to;
        }
        Ok(())
    }

    /// Trims the full active segment to its records and starts the next one.
    fn next_segment(&mut self) -> io::Result<()> {
        self.active.set_len(self.active_len)?;
        self.active.sync_data()?;
        self.active_seq += 1;
        self.active = open_segment(&segment_path(&self.dir, self.active_seq))?;
        sync_dir(&self.dir)?;
        self.active_len = 0;
        self.allocated = 0;
        self.durable = 0;
        self.segments.insert(self.active_seq, None);
        Ok(())
    }

    fn truncate(&mut self, from: u64) -> io::Result<()> {
        let Some(&(seq, offset)) = self.offsets.range(from..).next().map(|(_, v)| v) else {
            return Ok(());
        };
        let later: Vec<u64> = self.segments.range(seq + 1..).map(|(s, _)| *s).collect();
        for s in later {
            std::fs::remove_file(segment_path(&self.dir, s))?;
            self.segments.remove(&s);
        }
        let path = segment_path(&self.dir, seq);
        let file = open_segment(&path)?;
        let len = file.metadata()?.len();
        file.set_len(offset)?;
        allocate(&file, offset, refill_end(offset, len))?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        self.allocated = file.metadata()?.len();
        self.durable = self.allocated;
        self.active = file;
        self.active_seq = seq;
        self.active_len = offset;
        let _removed = self.offsets.split_off(&from);
        let first = self
            .offsets
            .range(..from)
            .rev()
            .find(|(_, (s, _))| *s == seq);
        let range = first.map(|_| {
            let start = self
                .offsets
                .iter()
                .find(|(_, (s, _))| *s == seq)
                .map_or(from, |(i, _)| *i);
            (start, from - 1)
        });
        self.segments.insert(seq, range);
        Ok(())
    }

    fn purge(&mut self, upto: LogId) -> io::Result<()> {
        self.write_file("purged", &encode(&Some(upto))?)?;
        let whole: Vec<u64> = self
            .segments
            .iter()
            .filter(|(s, r)| **s != self.active_seq && r.is_none_or(|(_, last)| last <= upto.index))
            .map(|(s, _)| *s)
            .collect();
        for s in &whole {
            std::fs::remove_file(segment_path(&self.dir, *s))?;
            self.segments.remove(s);
        }
        if !whole.is_empty() {
            sync_dir(&self.dir)?;
        }
        let kept = self.offsets.split_off(&(upto.index + 1));
        self.offsets = kept;
        Ok(())
    }
}

/// Appends `entries` and waits until they are durable; for tests.
#[cfg(test)]
pub(crate) async fn append_flushed(log: &mut LogStore, entries: impl IntoIterator<Item = Entry>) {
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    let entries: Vec<Entry> = entries.into_iter().collect();
    log.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

#[cfg(test)]
mod tests {
    use openraft::testing::{blank_ent, log_id};

    use super::*;

    fn committed_on_disk(dir: &Path) -> Option<Option<LogId>> {
        read_small_file::<Vec<u8>>(&dir.join("committed"))
            .unwrap()
            .map(|b| decode(&b).unwrap())
    }

    #[test]
    fn a_commit_index_waits_for_the_appends_sent_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut mem = Mem::default();
        let mut disk = Disk::recover(dir.path(), &mut mem).unwrap();
        let committed = Some(log_id::<C>(1, 1, 5));
        let hint = Mutex::new(CommitHint {
            appends_sent: 2,
            latest: Some((committed, 2)),
        });

        disk.write_committed(&hint, 1);
        assert_eq!(
            committed_on_disk(dir.path()),
            None,
            "one append not flushed yet"
        );
        assert!(lock(&hint).latest.is_some(), "still waiting");

        disk.write_committed(&hint, 2);
        assert_eq!(committed_on_disk(dir.path()), Some(committed));
        assert!(lock(&hint).latest.is_none());
    }

    #[tokio::test]
    async fn an_idle_writer_persists_each_new_commit_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        append_flushed(&mut log, (1..=2).map(|i| blank_ent::<C>(1, 1, i))).await;
        tokio::time::sleep(COMMITTED_EVERY + Duration::from_millis(50)).await;
        // The first is written at once; the second comes right after, while the writer
        // waits for operations with nothing due, and must not wait for the next one.
        for i in 1..=2 {
            log.save_committed(Some(log_id::<C>(1, 1, i)))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(COMMITTED_EVERY * 4).await;
        assert_eq!(
            committed_on_disk(dir.path()),
            Some(Some(log_id::<C>(1, 1, 2)))
        );
        log.close();
    }

    #[tokio::test]
    async fn the_last_commit_index_is_written_when_the_writer_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        append_flushed(&mut log, (1..=3).map(|i| blank_ent::<C>(1, 1, i))).await;
        for i in 1..=3 {
            log.save_committed(Some(log_id::<C>(1, 1, i)))
                .await
                .unwrap();
        }
        log.close();
        assert_eq!(
            committed_on_disk(dir.path()),
            Some(Some(log_id::<C>(1, 1, 3)))
        );
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            log.read_committed().await.unwrap(),
            Some(log_id::<C>(1, 1, 3))
        );
        log.close();
    }
}
