# Sourced by scripts/testbed: the smoke check that `up` runs last and `smoke` runs on its own.
# It uses the host's kubeconfig (through the loopback forwarder), as a user or a test would.

SMOKE_NS="testbed-smoke"

hk() { "$(K8S_BIN)/kubectl" --kubeconfig "$RUN/kubeconfig.yaml" "$@"; }

smoke_step() { log "smoke: $*"; }

# The cluster's own checks (run by `up`): a real /version, a StatefulSet whose PVC binds, pods that
# run, DNS names of a headless Service, a ClusterIP Service through kube-proxy, kubectl exec.
smoke_cluster() {
  local start=$SECONDS out
  [[ -f "$RUN/kubeconfig.yaml" ]] || die "the test bed is not up (scripts/testbed up)"
  build_probe   # sets PROBE_IMAGE

  smoke_step "kubectl get --raw /version"
  out="$(hk get --raw /version)"
  echo "$out" | jq -c '{gitVersion, goVersion, platform}' >&2
  [[ "$(echo "$out" | jq -r .gitVersion)" == "$K8S_VERSION" ]] || die "the API server reports $(echo "$out" | jq -r .gitVersion), want $K8S_VERSION"

  smoke_step "namespace $SMOKE_NS"
  if hk get namespace "$SMOKE_NS" >/dev/null 2>&1; then
    hk delete namespace "$SMOKE_NS" --wait=true --timeout=120s >&2
  fi
  hk create namespace "$SMOKE_NS" >&2

  smoke_step "a StatefulSet with a PVC and a headless Service; a pod resolves x-0.x-peers.$SMOKE_NS.svc.$CLUSTER_DOMAIN and reaches x through its ClusterIP"
  sed -e "s|@NS@|$SMOKE_NS|g" -e "s|@DOMAIN@|$CLUSTER_DOMAIN|g" -e "s|@PROBE_IMAGE@|$PROBE_IMAGE|g" \
    "$TB_SRC/manifests/smoke.yaml" | hk -n "$SMOKE_NS" apply -f - >&2
  hk -n "$SMOKE_NS" wait --for=jsonpath='{.status.phase}'=Bound pvc/data-x-0 --timeout=120s >&2
  hk -n "$SMOKE_NS" wait --for=condition=Ready pod/x-0 --timeout=120s >&2
  if ! hk -n "$SMOKE_NS" wait --for=jsonpath='{.status.phase}'=Succeeded pod/dns-check --timeout=180s >&2; then
    hk -n "$SMOKE_NS" get pods -o wide >&2
    hk -n "$SMOKE_NS" logs dns-check >&2 || true
    die "the DNS and Service check failed"
  fi
  hk -n "$SMOKE_NS" logs dns-check >&2
  smoke_step "kubectl exec x-0 -- /probe lookup kubernetes.default.svc.$CLUSTER_DOMAIN"
  hk -n "$SMOKE_NS" exec x-0 -- /probe lookup "kubernetes.default.svc.$CLUSTER_DOMAIN" >&2

  smoke_step "cleaning up (namespace deletion runs on in the background)"
  hk delete namespace "$SMOKE_NS" --wait=false >&2
  log "smoke: cluster checks passed ($((SECONDS - start))s)"
}

# The project's manifests against the real API server: the CRD is accepted and the examples pass
# server-side dry-run. Failures are counted, not fatal, so that every check runs.
smoke_project() {
  local failed=0 ns="$SMOKE_NS-project"
  smoke_step "kubectl apply -f crds/coordinationcluster.yaml"
  if ! hk apply -f "$REPO/crds/coordinationcluster.yaml" >&2; then
    log "smoke: FAILED: the API server rejects crds/coordinationcluster.yaml"
    failed=$((failed + 1))
    return "$failed"
  fi
  hk wait --for=condition=Established crd/coordinationclusters.ensemble.dev --timeout=60s >&2
  hk get namespace "$ns" >/dev/null 2>&1 || hk create namespace "$ns" >&2
  local f
  for f in "$REPO"/deploy/examples/*.yaml; do
    smoke_step "kubectl apply --dry-run=server -f ${f#"$REPO"/}"
    if ! hk -n "$ns" apply --dry-run=server -f "$f" >&2; then
      log "smoke: FAILED: ${f#"$REPO"/} is rejected"
      failed=$((failed + 1))
    fi
  done
  hk delete namespace "$ns" --wait=false >&2
  return "$failed"
}

cmd_smoke() {
  smoke_cluster
  local failed=0
  smoke_project || failed=$?
  ((failed == 0)) || die "smoke: $failed check(s) of the project's manifests failed"
  log "smoke: passed"
}
