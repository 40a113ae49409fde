//! Leader election on a `coordination.k8s.io/v1` Lease, so that two operator replicas can run
//! with exactly one reconciling.
//!
//! The holder renews the Lease every [`RENEW_EVERY`]; a candidate takes it over once it has not
//! been renewed for its `leaseDurationSeconds`. Every write carries the observed
//! `resourceVersion`, so two candidates racing for an expired Lease cannot both win: the API
//! server refuses the second write with a conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Takes the Lease if it is free or expired, renews it if already ours. `Ok(false)` means
    /// another live holder has it, or another candidate won a race for it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.held_spec(now, now, 0)),
            };
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        if !ours && !expired(&spec, now) {
            return Ok(false);
        }
        let acquired = match (&spec.acquire_time, ours) {
            (Some(t), true) => t.0,
            _ => now,
        };
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let renewed = Lease {
            metadata: lease.metadata.clone(),
            spec: Some(self.held_spec(acquired, now, transitions)),
        };
        conflict_is_false(
            self.api
                .replace(&self.name, &PostParams::default(), &renewed)
                .await,
        )
    }

    /// Gives the Lease up at shutdown, so a standby takes over at once instead of waiting for
    /// it to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        conflict_is_false(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
        .map(|_| ())
    }

    fn held_spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

/// Whether a Lease's holder has failed to renew within its duration, or there is none.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let (Some(_), Some(renewed)) = (&spec.holder_identity, &spec.renew_time) else {
        return true;
    };
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    renewed
        .0
        .checked_add(duration)
        .map_or(true, |deadline| deadline <= now)
}

fn conflict_is_false<T>(result: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: i64) -> (LeaseSpec, Timestamp) {
        let now = Timestamp::from_second(1_000_000).expect("valid timestamp");
        let renewed = now
            .checked_sub(SignedDuration::from_secs(renewed_secs_ago))
            .expect("valid");
        let spec = LeaseSpec {
            holder_identity: holder.map(String::from),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        (spec, now)
    }

    #[test]
    fn a_lease_expires_only_after_its_duration_without_renewal() {
        let (live, now) = spec(Some("a"), 14);
        assert!(!expired(&live, now));
        let (stale, now) = spec(Some("a"), 15);
        assert!(expired(&stale, now));
        let (released, now) = spec(None, 1);
        assert!(expired(&released, now));
    }
}
