//! A real ZooKeeper client (the `zookeeper-client` crate) talking to an ensemble through its
//! client Service, from inside the test bed's network namespace (see `Bed::in_netns`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zookeeper_client as zk;

use super::bed::bed;
use super::wait;

const OPEN: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

/// A session with `address`, retrying while the Service has no ready endpoint yet. Call it
/// inside `Bed::in_netns`.
async fn session(address: &str) -> zk::Client {
    wait::until(
        &format!("a ZooKeeper session with {address}"),
        Duration::from_secs(60),
        || async {
            match tokio::time::timeout(
                Duration::from_secs(10),
                zk::Client::connector()
                    .with_session_timeout(Duration::from_secs(10))
                    .connect(address),
            )
            .await
            {
                Ok(Ok(client)) => Ok(client),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("connect timed out after 10s".to_string()),
            }
        },
    )
    .await
}

/// Creates `path` with `data` (or sets it if it exists).
pub fn write(address: &str, path: &str, data: &[u8]) {
    let (address, path, data) = (address.to_string(), path.to_string(), data.to_vec());
    bed().in_netns(move || async move {
        let client = session(&address).await;
        match client.create(&path, &data, &OPEN).await {
            Ok(_) => {}
            Err(zk::Error::NodeExists) => {
                client
                    .set_data(&path, &data, None)
                    .await
                    .unwrap_or_else(|e| panic!("set {path} on {address}: {e}"));
            }
            Err(e) => panic!("create {path} on {address}: {e}"),
        }
    })
}

/// The data of `path`, or None when it does not exist.
pub fn read(address: &str, path: &str) -> Option<Vec<u8>> {
    let (address, path) = (address.to_string(), path.to_string());
    bed().in_netns(move || async move {
        let client = session(&address).await;
        match client.get_data(&path).await {
            Ok((data, _stat)) => Some(data),
            Err(zk::Error::NoNode) => None,
            Err(e) => panic!("get {path} on {address}: {e}"),
        }
    })
}

/// A write that takes this long is listed in [`Written::events`].
const SLOW: Duration = Duration::from_millis(200);

/// A client writing `<prefix>/w-<n>` for n = 0, 1, 2 … about every 20 ms until stopped,
/// reconnecting whenever its session is lost, as an application would.
pub struct Writer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Written>,
}

/// What a [`Writer`] saw.
#[derive(Debug)]
pub struct Written {
    /// The writes the ensemble acknowledged, by n.
    pub acknowledged: Vec<u64>,
    pub failed: usize,
    /// The longest time without an acknowledged write.
    pub longest_gap: Duration,
    /// Each failed or slow write, and the first success after failures, with the time
    /// since the writer started: what the client went through during the operation.
    pub events: Vec<String>,
}

impl Writer {
    pub fn start(address: &str, prefix: &str) -> Writer {
        write(address, prefix, b"");
        let stop = Arc::new(AtomicBool::new(false));
        let (address, prefix, flag) = (address.to_string(), prefix.to_string(), stop.clone());
        let handle = bed().spawn_in_netns(move || async move {
            let mut written = Written {
                acknowledged: Vec::new(),
                failed: 0,
                longest_gap: Duration::ZERO,
                events: Vec::new(),
            };
            let started = Instant::now();
            let mut failing = false;
            let mut client = session(&address).await;
            let mut last_ok = Instant::now();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let path = format!("{prefix}/w-{n}");
                let sent = Instant::now();
                let attempt = tokio::time::timeout(
                    Duration::from_secs(5),
                    client.create(&path, n.to_string().as_bytes(), &OPEN),
                )
                .await;
                let at = started.elapsed().as_millis();
                match &attempt {
                    Ok(Ok(_)) if failing || sent.elapsed() >= SLOW => written.events.push(format!(
                        "{at} ms: w-{n} ok after {} ms",
                        sent.elapsed().as_millis()
                    )),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => written.events.push(format!("{at} ms: w-{n} failed: {e}")),
                    Err(_) => written.events.push(format!("{at} ms: w-{n} timed out")),
                }
                failing = !matches!(attempt, Ok(Ok(_)));
                match attempt {
                    Ok(Ok(_)) => {
                        written.acknowledged.push(n);
                        written.longest_gap = written.longest_gap.max(last_ok.elapsed());
                        last_ok = Instant::now();
                    }
                    Ok(Err(zk::Error::SessionExpired | zk::Error::ClientClosed)) => {
                        written.failed += 1;
                        client = session(&address).await;
                    }
                    _ => written.failed += 1,
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            written.longest_gap = written.longest_gap.max(last_ok.elapsed());
            written
        });
        Writer { stop, handle }
    }

    pub fn stop(self) -> Written {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// The children of `path`.
pub fn children(address: &str, path: &str) -> Vec<String> {
    let (address, path) = (address.to_string(), path.to_string());
    bed().in_netns(move || async move {
        let client = session(&address).await;
        // A member that just joined may lag: make it catch up before listing.
        client
            .sync(&path)
            .await
            .unwrap_or_else(|e| panic!("sync {path}: {e}"));
        client
            .list_children(&path)
            .await
            .unwrap_or_else(|e| panic!("list {path} on {address}: {e}"))
    })
}

/// The member ids in `/zookeeper/config`, read after a sync so that the member answering is as
/// current as the leader. A session lost on the way (its member left, or stopped) is opened
/// again, as an application would.
pub fn config_ids(address: &str) -> Vec<i64> {
    let address = address.to_string();
    let text = bed().in_netns(move || async move {
        wait::until(
            &format!("/zookeeper/config read through {address}"),
            Duration::from_secs(60),
            || async {
                let client = session(&address).await;
                client
                    .sync("/zookeeper/config")
                    .await
                    .map_err(|e| format!("sync: {e}"))?;
                let (data, _) = client
                    .get_data("/zookeeper/config")
                    .await
                    .map_err(|e| format!("get: {e}"))?;
                Ok::<_, String>(String::from_utf8_lossy(&data).into_owned())
            },
        )
        .await
    });
    text.lines()
        .filter_map(|line| {
            line.strip_prefix("server.")?
                .split_once('=')?
                .0
                .parse()
                .ok()
        })
        .collect()
}

/// Stops the writer, prints what the operation cost, and checks that every acknowledged write
/// is there.
pub fn check_writes(address: &str, prefix: &str, operation: &str, writer: Writer) {
    let written = writer.stop();
    println!(
        "{operation}: {} writes acknowledged, {} failed, longest time without a write {} ms",
        written.acknowledged.len(),
        written.failed,
        written.longest_gap.as_millis()
    );
    for event in &written.events {
        println!("  {event}");
    }
    assert!(
        !written.acknowledged.is_empty(),
        "{operation}: no write was acknowledged"
    );
    let present: std::collections::BTreeSet<String> =
        children(address, prefix).into_iter().collect();
    let lost: Vec<u64> = written
        .acknowledged
        .iter()
        .copied()
        .filter(|n| !present.contains(&format!("w-{n}")))
        .collect();
    assert!(
        lost.is_empty(),
        "{operation}: acknowledged writes lost: {lost:?}"
    );
}
