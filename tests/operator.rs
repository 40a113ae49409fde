//! The operator process's parts that talk to the API: leader election on a Lease, and the
//! metrics it serves.

mod support;

use std::time::Duration;

use ensemble::operator::lease::LeaseLock;
use ensemble::telemetry::{ErrorClass, Metrics};
use support::fake_api::FakeApi;

/// Two operator replicas competing for the same Lease.
fn two_replicas(api: &std::sync::Arc<FakeApi>) -> (LeaseLock, LeaseLock) {
    let lock = |identity| {
        LeaseLock::new(
            api.client(),
            "ensemble-system",
            "ensemble-operator",
            identity,
        )
    };
    (lock("operator-a"), lock("operator-b"))
}

const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/ensemble-system/leases/ensemble-operator";

#[tokio::test]
async fn one_replica_holds_the_lease_until_it_hands_it_over() {
    let api = FakeApi::new();
    let (a, b) = two_replicas(&api);

    assert!(
        a.try_acquire_or_renew().await.expect("a asks"),
        "a free Lease is taken"
    );
    assert!(
        !b.try_acquire_or_renew().await.expect("b asks"),
        "a live holder keeps it"
    );
    assert!(
        a.try_acquire_or_renew().await.expect("a renews"),
        "the holder renews"
    );
    let lease = api.get(LEASE).expect("Lease stored");
    assert_eq!(lease["spec"]["holderIdentity"], "operator-a");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);

    a.release().await.expect("a releases");
    assert!(
        b.try_acquire_or_renew().await.expect("b asks again"),
        "a released Lease is taken at once"
    );
    let lease = api.get(LEASE).expect("Lease stored");
    assert_eq!(lease["spec"]["holderIdentity"], "operator-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert!(!a.try_acquire_or_renew().await.expect("a asks again"));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over() {
    let api = FakeApi::new();
    let (a, b) = two_replicas(&api);
    assert!(a.try_acquire_or_renew().await.expect("a asks"));
    // operator-a stops renewing: its last renewal is now older than the Lease's duration.
    api.update(LEASE, |lease| {
        lease["spec"]["renewTime"] = serde_json::json!("2020-01-01T00:00:00.000000Z");
    });
    assert!(b.try_acquire_or_renew().await.expect("b asks"));
    assert_eq!(
        api.get(LEASE).expect("Lease")["spec"]["holderIdentity"],
        "operator-b"
    );
}

#[test]
fn metrics_count_reconciles_by_result_and_errors_by_class() {
    let metrics = Metrics::new();
    metrics.observe_reconcile(Duration::from_millis(20), None);
    metrics.observe_reconcile(Duration::from_millis(30), None);
    metrics.observe_reconcile(Duration::from_millis(40), Some(ErrorClass::Transient));
    let text = metrics.render();
    for line in [
        "ensemble_operator_reconciles_total{result=\"ok\"} 2",
        "ensemble_operator_reconciles_total{result=\"error\"} 1",
        "ensemble_operator_reconcile_errors_total{class=\"Transient\"} 1",
        "ensemble_operator_reconcile_duration_seconds_count 3",
        "ensemble_operator_clusters{phase=\"Running\"} 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}
