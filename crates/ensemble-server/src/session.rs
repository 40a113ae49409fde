//! The session table: which sessions exist, their passwords, negotiated timeouts,
//! deadlines and authenticated ids.
//!
//! Contract, all pure (the clock and the secret are passed in):
//! - [`SessionTable::create`] allocates an id (ZooKeeper's layout: the server id in
//!   the top byte, a time-seeded counter below it), clamps the requested timeout to
//!   `[min, max]` and sets the deadline to `now + timeout`.
//! - A session's password is derived from its id and the member's secret
//!   ([`SessionTable::password`]), as ZooKeeper derives it from the id and a seed,
//!   so a session restored after a restart ([`SessionTable::restore`]) accepts the
//!   password its client already holds. Unlike ZooKeeper's fixed seed, the secret
//!   is random per data directory, so a password cannot be computed from an id.
//! - [`SessionTable::touch`] moves a live session's deadline forward; every request
//!   and ping does this.
//! - [`SessionTable::reconnect`] resumes a session given its id and password; an
//!   unknown or already expired id, or a wrong password, is refused and the caller
//!   answers with `timeOut = 0` and closes the connection.
//! - [`SessionTable::expire`] removes every session whose deadline has passed and
//!   returns one [`Txn::CloseSession`] for each, so their ephemeral nodes go through
//!   the same transaction path as every other write.
//! - Auth ids added with `addauth` are kept per session, without duplicates.

use std::collections::BTreeMap;

use thiserror::Error;

use sha1::{Digest, Sha1};

use crate::protocol::Id;
use crate::tree::Txn;

/// Length of a session password, as ZooKeeper generates it.
pub const PASSWORD_LEN: usize = 16;

/// ZooKeeper's defaults for tickTime 2000: `2 * tickTime` and `20 * tickTime`.
pub const DEFAULT_MIN_TIMEOUT_MS: i32 = 4_000;
pub const DEFAULT_MAX_TIMEOUT_MS: i32 = 40_000;

/// Why a reconnect was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReconnectError {
    #[error("session 0x{0:x} is unknown or has expired")]
    Unknown(i64),
    #[error("wrong password for session 0x{0:x}")]
    WrongPassword(i64),
}

/// One live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub password: [u8; PASSWORD_LEN],
    /// Negotiated timeout in milliseconds.
    pub timeout_ms: i32,
    /// Milliseconds on the caller's clock after which the session expires.
    pub deadline_ms: i64,
    /// Ids added by `addauth`, in the order they were added.
    pub auth: Vec<Id>,
}

/// See the module contract.
#[derive(Debug, Clone)]
pub struct SessionTable {
    secret: Vec<u8>,
    min_timeout_ms: i32,
    max_timeout_ms: i32,
    next_id: i64,
    sessions: BTreeMap<i64, Session>,
}

impl SessionTable {
    /// A table for server `server_id`, whose ids start from `seed_ms` (wall-clock
    /// milliseconds) so that ids differ across restarts, as ZooKeeper's
    /// `SessionTrackerImpl.initializeNextSessionId` arranges.
    pub fn new(
        server_id: u8,
        seed_ms: i64,
        secret: &[u8],
        min_timeout_ms: i32,
        max_timeout_ms: i32,
    ) -> Self {
        let low = ((seed_ms as u64) << 24) >> 8;
        let next_id = (low | (u64::from(server_id) << 56)) as i64;
        Self {
            secret: secret.to_vec(),
            min_timeout_ms,
            max_timeout_ms: max_timeout_ms.max(min_timeout_ms),
            next_id: next_id.max(1),
            sessions: BTreeMap::new(),
        }
    }

    /// The timeout a client asking for `requested_ms` gets.
    pub fn clamp_timeout(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(self.min_timeout_ms, self.max_timeout_ms)
    }

    /// The password of session `id`: the first bytes of `sha1(secret || id)`.
    pub fn password(&self, id: i64) -> [u8; PASSWORD_LEN] {
        let digest = Sha1::new()
            .chain_update(&self.secret)
            .chain_update(id.to_be_bytes())
            .finalize();
        let mut password = [0; PASSWORD_LEN];
        password.copy_from_slice(&digest[..PASSWORD_LEN]);
        password
    }

    /// Opens a new session; returns it.
    pub fn create(&mut self, requested_timeout_ms: i32, now_ms: i64) -> &Session {
        let mut id = self.next_id;
        while id == 0 || self.sessions.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        let timeout_ms = self.clamp_timeout(requested_timeout_ms);
        self.insert(id, timeout_ms, now_ms)
    }

    /// Brings back a session known from the data directory with a full timeout, as
    /// ZooKeeper does after a restart: its client may reconnect until it expires.
    pub fn restore(&mut self, id: i64, timeout_ms: i32, now_ms: i64) {
        self.insert(id, timeout_ms, now_ms);
    }

    fn insert(&mut self, id: i64, timeout_ms: i32, now_ms: i64) -> &Session {
        let password = self.password(id);
        self.sessions.entry(id).or_insert(Session {
            id,
            password,
            timeout_ms,
            deadline_ms: now_ms.saturating_add(i64::from(timeout_ms)),
            auth: Vec::new(),
        })
    }

    /// Resumes `id` if `password` matches; returns its timeout.
    pub fn reconnect(
        &mut self,
        id: i64,
        password: &[u8],
        now_ms: i64,
    ) -> Result<i32, ReconnectError> {
        let session = self
            .sessions
            .get_mut(&id)
            .filter(|s| s.deadline_ms >= now_ms)
            .ok_or(ReconnectError::Unknown(id))?;
        if session.password.as_slice() != password {
            return Err(ReconnectError::WrongPassword(id));
        }
        session.deadline_ms = now_ms.saturating_add(i64::from(session.timeout_ms));
        Ok(session.timeout_ms)
    }

    /// Moves the deadline of a live session; false if there is no such session.
    pub fn touch(&mut self, id: i64, now_ms: i64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) if s.deadline_ms >= now_ms => {
                s.deadline_ms = now_ms.saturating_add(i64::from(s.timeout_ms));
                true
            }
            _ => false,
        }
    }

    /// Removes sessions whose deadline is before `now_ms`; one close per session.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Txn> {
        let expired: Vec<i64> = self
            .sessions
            .values()
            .filter(|s| s.deadline_ms < now_ms)
            .map(|s| s.id)
            .collect();
        expired
            .into_iter()
            .map(|session_id| {
                self.sessions.remove(&session_id);
                Txn::CloseSession { session_id }
            })
            .collect()
    }

    /// Ends a session at the client's request; false if it did not exist.
    pub fn close(&mut self, id: i64) -> bool {
        self.sessions.remove(&id).is_some()
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// Adds authenticated ids to a session, skipping ones it already has.
    pub fn add_auth(&mut self, id: i64, ids: impl IntoIterator<Item = Id>) {
        if let Some(session) = self.sessions.get_mut(&id) {
            for new in ids {
                if !session.auth.contains(&new) {
                    session.auth.push(new);
                }
            }
        }
    }

    /// Replaces the secret passwords derive from (the ensemble's, once it is
    /// replicated) and recomputes the passwords of the sessions held.
    pub fn set_secret(&mut self, secret: &[u8]) {
        if self.secret == secret {
            return;
        }
        self.secret = secret.to_vec();
        let ids: Vec<i64> = self.sessions.keys().copied().collect();
        for id in ids {
            let password = self.password(id);
            if let Some(session) = self.sessions.get_mut(&id) {
                session.password = password;
            }
        }
    }

    /// Gives every session a full timeout from `now_ms`: on members that do not
    /// lead (only the leader expires sessions, from the liveness members report),
    /// and once on a new leader, as ZooKeeper's leader does after an election.
    pub fn refresh_all(&mut self, now_ms: i64) {
        for session in self.sessions.values_mut() {
            session.deadline_ms = now_ms.saturating_add(i64::from(session.timeout_ms));
        }
    }

    /// All live sessions, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Ids of all live sessions.
    pub fn ids(&self) -> Vec<i64> {
        self.sessions.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SessionTable {
        SessionTable::new(1, 1_700_000_000_000, b"secret", 4_000, 40_000)
    }

    #[test]
    fn ids_carry_the_server_id_and_are_unique() {
        let mut t = table();
        let a = t.create(10_000, 0).id;
        let b = t.create(10_000, 0).id;
        assert_ne!(a, b);
        assert_eq!((a as u64) >> 56, 1);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn timeouts_are_clamped() {
        let mut t = table();
        assert_eq!(t.create(1, 0).timeout_ms, 4_000);
        assert_eq!(t.create(100_000, 0).timeout_ms, 40_000);
        assert_eq!(t.create(10_000, 0).timeout_ms, 10_000);
    }

    #[test]
    fn touch_postpones_expiry() {
        let mut t = table();
        let id = t.create(5_000, 0).id;
        assert!(t.touch(id, 4_000));
        assert!(t.expire(8_000).is_empty());
        assert_eq!(t.expire(9_001), vec![Txn::CloseSession { session_id: id }]);
        assert!(!t.touch(id, 9_002));
        assert!(t.is_empty());
    }

    #[test]
    fn reconnect_checks_password_and_liveness() {
        let mut t = table();
        let id = t.create(5_000, 0).id;
        let pw = t.password(id);
        assert_eq!(t.reconnect(id, &pw, 1_000), Ok(5_000));
        assert_eq!(
            t.reconnect(id, &[0; PASSWORD_LEN], 1_000),
            Err(ReconnectError::WrongPassword(id))
        );
        assert_eq!(
            t.reconnect(42, &pw, 1_000),
            Err(ReconnectError::Unknown(42))
        );
        // Past the deadline but before the next expiry pass: still refused.
        assert_eq!(
            t.reconnect(id, &pw, 7_000),
            Err(ReconnectError::Unknown(id))
        );
    }

    #[test]
    fn passwords_depend_on_the_secret_and_survive_a_restore() {
        let mut t = table();
        let id = t.create(5_000, 0).id;
        let pw = t.password(id);
        let mut restarted = table();
        restarted.restore(id, 5_000, 100);
        assert_eq!(restarted.reconnect(id, &pw, 200), Ok(5_000));
        let other = SessionTable::new(1, 1_700_000_000_000, b"other", 4_000, 40_000);
        assert_ne!(other.password(id), pw);
        assert_ne!(t.password(id + 1), pw);
    }

    #[test]
    fn close_and_auth() {
        let mut t = table();
        let id = t.create(5_000, 0).id;
        let digest = Id::new("digest", "u:x");
        t.add_auth(id, [digest.clone(), digest.clone()]);
        assert_eq!(t.get(id).map(|s| s.auth.clone()), Some(vec![digest]));
        assert!(t.close(id));
        assert!(!t.close(id));
        assert!(t.expire(i64::MAX).is_empty());
    }
}
