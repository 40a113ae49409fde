//! Helpers of the tests that run `ensemble` processes on loopback.

use std::net::TcpListener;
use std::path::PathBuf;

/// A fresh directory under the system's temporary directory, unique to this call.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ensemble-it-{name}-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `n` distinct loopback ports that were free a moment ago: held open together while they
/// are chosen, as ports taken one at a time and released may repeat.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("free port").port())
        .collect()
}

/// A loopback port that was free a moment ago (a member may need to come back on it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
