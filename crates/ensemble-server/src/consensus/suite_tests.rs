//! openraft's storage conformance suite against the log store and the state
//! machine adapter, in memory and on disk; plus recovery tests of the log files.

use std::sync::{Arc, Mutex};

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

use super::log_store::LogStore;
use super::state_machine::StateMachineStore;
use super::types::C;
use super::StateMachine;

/// Records what it applied; its snapshot is the list of applied indexes.
#[derive(Default)]
struct Recorder {
    applied: Mutex<Vec<u64>>,
}

impl StateMachine for Recorder {
    fn apply(&self, index: u64, _command: Option<&[u8]>) {
        self.applied.lock().unwrap().push(index);
    }

    fn snapshot(&self) -> (u64, Vec<u8>) {
        let applied = self.applied.lock().unwrap();
        let last = applied.last().copied().unwrap_or(0);
        (last, applied.iter().flat_map(|i| i.to_le_bytes()).collect())
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
