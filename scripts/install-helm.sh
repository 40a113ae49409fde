#!/usr/bin/env bash
# Builds a pinned helm from the Go module proxy and caches it outside the repo, keyed by version.
#
#   HELM=$(scripts/install-helm.sh | tail -1)
#
# The last line of stdout is the binary's path; progress goes to stderr. Idempotent: a cached
# binary is reused as it is. Override the pin with HELM_VERSION, the cache root with ENSEMBLE_CACHE.
set -euo pipefail

# Newest v3 release whose go.mod asks for a Go this machine has (v3.22.0 needs go 1.26.0).
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_MODULE="helm.sh/helm/v3"

cache_root="${ENSEMBLE_CACHE:-$HOME/.cache/ensemble}"
install_dir="$cache_root/tools/helm-$HELM_VERSION"
helm_bin="$install_dir/helm"

log() { echo "install-helm: $*" >&2; }

if [[ -x "$helm_bin" ]]; then
  log "helm $HELM_VERSION already cached"
  echo "$helm_bin"
  exit 0
fi

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }

# Never let go fetch another toolchain: fail clearly if this Go is too old for the pin.
export GOTOOLCHAIN=local
export GOFLAGS=-mod=mod
export CGO_ENABLED=0

log "downloading $HELM_MODULE@$HELM_VERSION"
module_dir="$(go mod download -json "$HELM_MODULE@$HELM_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -n "$module_dir" && -f "$module_dir/go.mod" ]] || { log "could not download $HELM_MODULE@$HELM_VERSION"; exit 1; }

# helm's Makefile derives the Kubernetes version that `helm template` and `helm lint` assume
# (.Capabilities.KubeVersion) from its client-go; without it they assume v1.20, which would fail
# charts that declare a newer kubeVersion. client-go v0.N.x is Kubernetes 1.N.
client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$module_dir/go.mod")"
k8s_minor="$(echo "$client_go" | cut -d. -f2)"
[[ "$k8s_minor" =~ ^[0-9]+$ ]] || { log "cannot read the client-go version from helm's go.mod"; exit 1; }

ldflags=(
  -s -w
  "-X $HELM_MODULE/internal/version.version=$HELM_VERSION"
  "-X $HELM_MODULE/internal/version.gitTreeState=clean"
  "-X $HELM_MODULE/pkg/lint/rules.k8sVersionMajor=1"
  "-X $HELM_MODULE/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
  "-X $HELM_MODULE/pkg/chartutil.k8sVersionMajor=1"
  "-X $HELM_MODULE/pkg/chartutil.k8sVersionMinor=$k8s_minor"
)

# Build into a scratch directory and move into place only on success, so an interrupted build
# never leaves a binary that the idempotency check above would trust.
mkdir -p "$cache_root/tools"
scratch="$(mktemp -d "$cache_root/tools/.helm-$HELM_VERSION.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

log "building helm $HELM_VERSION (Kubernetes 1.$k8s_minor defaults); this takes several minutes"
start=$SECONDS
GOBIN="$scratch" go install -trimpath -ldflags "${ldflags[*]}" "$HELM_MODULE/cmd/helm@$HELM_VERSION"
log "built in $((SECONDS - start))s"

built_version="$("$scratch/helm" version --template '{{ .Version }}')"
[[ "$built_version" == "$HELM_VERSION" ]] || { log "built helm reports $built_version, want $HELM_VERSION"; exit 1; }

mkdir -p "$install_dir"
mv "$scratch/helm" "$helm_bin"
log "installed $helm_bin"
echo "$helm_bin"
