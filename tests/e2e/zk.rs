//! A real ZooKeeper client (the `zookeeper-client` crate) talking to an ensemble through its
//! client Service, from inside the test bed's network namespace (see `Bed::in_netns`).

use std::time::Duration;

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
