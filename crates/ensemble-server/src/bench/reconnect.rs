//! Finding a server again when one goes away, so that a bench survives a member of an
//! ensemble dying and measures how long the service was unavailable.
//!
//! Contract: a [`Rotation`] walks the `--connect` addresses round-robin, starting from
//! a given one. [`reconnect`] opens a new session on the next address that accepts
//! one, trying each in turn and pausing briefly after every full round of refusals,
//! until a deadline or a stop; a handshake that hangs counts as a refusal after
//! [`RECONNECT_TIMEOUT`]. [`connect_any`] is the same for setup and teardown: one
//! round, the first session opened wins, else the last error.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::session::{Session, SessionError};

/// How long a reconnect waits for one server's handshake before trying the next.
/// Short, so that a member without a leader does not hide the one that has one.
pub const RECONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The pause after every address refused a session, so that a down ensemble is not
/// hammered with connects.
const ROUND_PAUSE: Duration = Duration::from_millis(20);

/// The `--connect` addresses, visited round-robin.
#[derive(Debug, Clone)]
pub struct Rotation {
    addrs: Arc<[String]>,
    next: usize,
}

impl Rotation {
    /// A rotation whose first pick is `addrs[first % len]`; `addrs` is not empty.
    pub fn starting_at(addrs: Arc<[String]>, first: usize) -> Self {
        let next = first % addrs.len().max(1);
        Self { addrs, next }
    }

    /// The next address to try.
    pub fn pick(&mut self) -> &str {
        let addr = &self.addrs[self.next];
        self.next = (self.next + 1) % self.addrs.len();
        addr
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

/// A new session on the next address that opens one, before `until` and `stop`.
pub async fn reconnect(
    rotation: &mut Rotation,
    session_timeout: Duration,
    until: Instant,
    stop: &CancellationToken,
) -> Option<Session> {
    loop {
        for _ in 0..rotation.len() {
            let addr = rotation.pick().to_owned();
            let attempt = Session::connect_within(&addr, session_timeout, RECONNECT_TIMEOUT);
            let left = until.saturating_duration_since(Instant::now());
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(left) => return None,
                connected = attempt => match connected {
                    Ok(session) => {
                        tracing::info!(%addr, "bench session reconnected");
                        return Some(session);
                    }
                    Err(e) => tracing::debug!(error = %e, "reconnect attempt failed"),
                },
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep_until(until) => return None,
            () = tokio::time::sleep(ROUND_PAUSE) => {}
        }
    }
}

/// A session on the first of `addrs` that opens one, else the last failure.
pub async fn connect_any(
    addrs: &[String],
    session_timeout: Duration,
) -> Result<Session, SessionError> {
    let mut failure = None;
    for addr in addrs {
        match Session::connect(addr, session_timeout).await {
            Ok(session) => return Ok(session),
            Err(e) => {
                tracing::warn!(error = %e, "trying the next server");
                failure = Some(e);
            }
        }
    }
    Err(failure.unwrap_or_else(|| SessionError::Connect {
        addr: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no server given"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Arc<[String]> {
        (1..=n).map(|i| format!("127.0.0.1:{i}")).collect()
    }

    #[test]
    fn a_rotation_visits_every_address_in_turn_from_its_own() {
        let mut rotation = Rotation::starting_at(addrs(3), 1);
        let picks: Vec<String> = (0..5).map(|_| rotation.pick().to_owned()).collect();
        assert_eq!(
            picks,
            [
                "127.0.0.1:2",
                "127.0.0.1:3",
                "127.0.0.1:1",
                "127.0.0.1:2",
                "127.0.0.1:3"
            ]
        );
    }

    #[test]
    fn sessions_beyond_the_address_count_wrap_around() {
        let mut rotation = Rotation::starting_at(addrs(3), 7);
        assert_eq!(rotation.pick(), "127.0.0.1:2");
        let mut single = Rotation::starting_at(addrs(1), 4);
        assert_eq!(single.pick(), "127.0.0.1:1");
        assert_eq!(single.pick(), "127.0.0.1:1");
    }

    #[tokio::test]
    async fn reconnect_gives_up_at_the_deadline_when_no_server_answers() {
        // Port 1 on loopback refuses at once.
        let mut rotation = Rotation::starting_at(Arc::from(vec!["127.0.0.1:1".to_owned()]), 0);
        let started = Instant::now();
        let until = started + Duration::from_millis(200);
        let session = reconnect(
            &mut rotation,
            Duration::from_secs(10),
            until,
            &CancellationToken::new(),
        )
        .await;
        assert!(session.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
