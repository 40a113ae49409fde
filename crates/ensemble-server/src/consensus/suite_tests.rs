//! openraft's storage conformance suite against the log store and the state
//! machine adapter, in memory and on disk; plus recovery tests of the log files.

use std::sync::{Arc, Mutex};

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

use super::log_store::LogStore;
use super::state_machine::StateMachineStore;
use super::types::C;
use super::{SnapshotJob, StateMachine};

/// Records what it applied; its snapshot is the list of applied indexes.
#[derive(Default)]
pub(super) struct Recorder {
    applied: Mutex<Vec<u64>>,
}

impl StateMachine for Recorder {
    fn apply(&self, index: u64, _command: Option<&[u8]>) {
        self.applied.lock().unwrap().push(index);
    }

    fn snapshot(&self) -> (u64, SnapshotJob) {
        let applied = self.applied.lock().unwrap();
        let last = applied.last().copied().unwrap_or(0);
        let bytes: Vec<u8> = applied.iter().flat_map(|i| i.to_le_bytes()).collect();
        (last, Box::new(move |sink| sink(&bytes)))
    }

    fn restore(&self, _index: u64, data: &[u8]) -> Result<(), String> {
        let mut applied = self.applied.lock().unwrap();
        *applied = data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        Ok(())
    }
}

struct InMemory;

impl StoreBuilder<C, LogStore, StateMachineStore, ()> for InMemory {
    async fn build(&self) -> Result<((), LogStore, StateMachineStore), StorageError<C>> {
        let sm = StateMachineStore::open(Arc::new(Recorder::default()), None).unwrap();
        Ok(((), LogStore::in_memory(), sm))
    }
}

struct OnDisk;

impl StoreBuilder<C, LogStore, StateMachineStore, tempfile::TempDir> for OnDisk {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<C>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let sm = StateMachineStore::open(
            Arc::new(Recorder::default()),
            Some(dir.path().join("snapshots")),
        )
        .unwrap();
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_in_memory() {
    Suite::test_all(InMemory).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_disk() {
    Suite::test_all(OnDisk).await.unwrap();
}

mod recovery {
    use openraft::storage::{RaftLogReader, RaftLogStorage};
    use openraft::testing::{blank_ent, log_id};
    use openraft::EntryPayload;

    use super::super::log_store::{append_flushed, LogStore};
    use super::super::types::{Command, Entry, C};

    async fn write_three(dir: &std::path::Path) {
        let mut log = LogStore::open(dir).unwrap();
        append_flushed(&mut log, (1..=3).map(|i| blank_ent::<C>(1, 1, i))).await;
        log.close();
    }

    fn segment(dir: &std::path::Path) -> std::path::PathBuf {
        dir.join("log-0000000001.seg")
    }

    /// Where the records of `segment` end: the offset after its last whole record.
    fn records_end(segment: &std::path::Path) -> usize {
        let bytes = std::fs::read(segment).unwrap();
        let mut end = 0;
        while let Ok((_, len)) = super::super::types::read_record(&bytes[end..]) {
            if len == 8 {
                break; // a zero header: the space allocated ahead
            }
            end += len;
        }
        end
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        write_three(dir.path()).await;
        let end = records_end(&segment(dir.path()));
        let mut bytes = std::fs::read(segment(dir.path())).unwrap();
        let torn = [40, 0, 0, 0, 1, 2];
        bytes.splice(end..end + torn.len(), torn);
        std::fs::write(segment(dir.path()), &bytes).unwrap();

        let mut log = LogStore::open(dir.path()).unwrap();
        let entries = log.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(entries.len(), 3);
        log.close();
        let bytes = std::fs::read(segment(dir.path())).unwrap();
        assert_eq!(records_end(&segment(dir.path())), end);
        assert!(
            bytes[end..].iter().all(|&b| b == 0),
            "the torn bytes are gone"
        );
    }

    #[tokio::test]
    async fn records_fill_the_space_allocated_ahead_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        write_three(dir.path()).await;
        let end = records_end(&segment(dir.path()));
        let len = std::fs::metadata(segment(dir.path())).unwrap().len();
        assert!(
            len > end as u64,
            "allocated ahead: {len} bytes for {end} of records"
        );

        let mut log = LogStore::open(dir.path()).unwrap();
        append_flushed(&mut log, (4..=5).map(|i| blank_ent::<C>(1, 1, i))).await;
        log.close();
        assert_eq!(
            std::fs::metadata(segment(dir.path())).unwrap().len(),
            len,
            "appending does not change the file's length"
        );

        let mut log = LogStore::open(dir.path()).unwrap();
        let indexes: Vec<u64> = log
            .try_get_log_entries(0..10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect();
        assert_eq!(indexes, [1, 2, 3, 4, 5]);
        log.close();
    }

    #[tokio::test]
    async fn garbage_after_the_unwritten_space_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        write_three(dir.path()).await;
        let end = records_end(&segment(dir.path()));
        let mut bytes = std::fs::read(segment(dir.path())).unwrap();
        bytes.extend_from_slice(&[7; 16]);
        std::fs::write(segment(dir.path()), &bytes).unwrap();
        let Err(reason) = LogStore::open(dir.path()) else {
            panic!("a log with data after its end opened");
        };
        assert!(reason.contains(&format!("offset {end}")), "{reason}");
    }

    #[tokio::test]
    async fn damage_before_the_tail_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        write_three(dir.path()).await;
        let mut bytes = std::fs::read(segment(dir.path())).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(segment(dir.path()), &bytes).unwrap();
        let Err(reason) = LogStore::open(dir.path()) else {
            panic!("a damaged log opened");
        };
        assert!(
            reason.contains("log-0000000001.seg") && reason.contains("offset 0"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_second_opener_is_refused_and_truncation_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        write_three(dir.path()).await;
        let mut log = LogStore::open(dir.path()).unwrap();
        let Err(reason) = LogStore::open(dir.path()) else {
            panic!("opened twice");
        };
        assert!(reason.contains("in use by another process"), "{reason}");
        log.truncate_after(Some(openraft::testing::log_id::<C>(1, 1, 1)))
            .await
            .unwrap();
        log.close();
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.try_get_log_entries(0..10).await.unwrap().len(), 1);
        log.close();
    }

    /// An entry of `term` at `index` whose command has a length that varies with both,
    /// from none to a few 4 KiB blocks.
    fn sized(term: u64, index: u64) -> Entry {
        let len = ((index * 977 + term * 131) % 9000) as usize;
        Entry {
            log_id: log_id::<C>(term, 1, index),
            payload: EntryPayload::Normal(Command(vec![(index % 251) as u8; len])),
        }
    }

    /// Whatever the mix of single appends, batches, truncations and restarts, a
    /// reopened log holds exactly the entries appended and not cut.
    #[tokio::test]
    async fn appends_truncations_and_restarts_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected: Vec<Entry> = Vec::new();
        for term in 1..=3 {
            let mut log = LogStore::open(dir.path()).unwrap();
            if term > 1 {
                // The last five are cut, as a new leader's log overrides them.
                let keep = expected.len() - 5;
                log.truncate_after(Some(expected[keep - 1].log_id))
                    .await
                    .unwrap();
                expected.truncate(keep);
            }
            let mut next = expected.len() as u64 + 1;
            for batch in [1, 1, 3, 1, 7, 2, 1, 1, 12, 1] {
                let entries: Vec<Entry> = (next..next + batch).map(|i| sized(term, i)).collect();
                append_flushed(&mut log, entries.clone()).await;
                expected.extend(entries);
                next += batch;
            }
            log.close();
            let mut log = LogStore::open(dir.path()).unwrap();
            let read = log.try_get_log_entries(0..u64::MAX).await.unwrap();
            log.close();
            assert_eq!(read, expected, "after term {term}");
        }
    }
}
