#!/usr/bin/env bash
# Regenerates every committed file that code produces: the CRD in crds/, deploy/ and the chart.
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo run, not ./target/...: the target directory may live elsewhere (CARGO_TARGET_DIR).
cargo run --quiet --bin ensemble -- crd > crds/coordinationcluster.yaml
cp crds/coordinationcluster.yaml deploy/crd.yaml
cargo run --quiet --bin ensemble -- crd --chart > charts/ensemble-operator/templates/crd.yaml
echo "regenerated crds/coordinationcluster.yaml, deploy/crd.yaml, charts/ensemble-operator/templates/crd.yaml"
