//! Waiting for the cluster to reach a state, with a deadline and a message that says what was
//! awaited and what was last seen.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a member pod may take from creation to ready on the test bed.
pub const POD_READY: Duration = Duration::from_secs(180);
/// How long the garbage collector and the API server may take to act on a deletion.
pub const DELETION: Duration = Duration::from_secs(120);

/// Polls `check` every half second until it returns `Ok(value)`, and returns the value.
/// `Err(seen)` means "not yet", with what was seen; after `timeout` the test fails with
/// `what` and the last thing seen.
pub async fn until<T, E, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if start.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting until {what}; last seen: {seen:#?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Checks that `check` keeps returning `Ok` for `period` (a state that must last, such as a
/// retained claim), failing with what was seen the first time it does not.
pub async fn stays<E, F, Fut>(what: &str, period: Duration, mut check: F)
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let start = Instant::now();
    while start.elapsed() < period {
        if let Err(seen) = check().await {
            panic!(
                "expected {what} for {period:?}, but after {:?}: {seen:#?}",
                start.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
