//! Generated files are committed and must match their generator. Regenerate with
//! `scripts/generate.sh`.

mod support;

fn assert_matches(path: &str, generated: &str) {
    let committed = support::read(path);
    assert!(
        committed == generated,
        "{path} differs from what `ensemble crd` generates; run scripts/generate.sh and commit the result"
    );
}

#[test]
fn committed_crds_match_the_api_types() {
    let crd = ensemble::api::crd_yaml();
    assert_matches("crds/coordinationcluster.yaml", &crd);
    assert_matches("deploy/crd.yaml", &crd);
    assert_matches(
        "charts/ensemble-operator/templates/crd.yaml",
        &ensemble::api::chart_crd_yaml(),
    );
}
