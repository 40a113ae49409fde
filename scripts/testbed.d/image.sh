# Sourced by scripts/testbed: packs a directory as a one-layer OCI image archive, by hand, for
# `ctr images import` (there is no registry and no image builder on this machine).
#
#   [OCI_USER=UID:GID] oci_archive NAME:TAG ROOTFS_DIR OUT.tar ENTRYPOINT...
#
# The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) whose index names
# the image both ways containerd reads: io.containerd.image.name (the full reference) and
# org.opencontainers.image.ref.name. It is deterministic: the same rootfs gives the same digest.

_json_str_array() { # ["a","b"] from the arguments (no quoting of " or \ needed for our paths)
  local out="" a
  for a in "$@"; do out+="${out:+,}\"$a\""; done
  echo "[$out]"
}

_blob() { # _blob DIR FILE: moves FILE into DIR/blobs/sha256/<digest> and prints the digest
  local d; d="$(sha256sum "$2" | cut -d' ' -f1)"
  mv "$2" "$1/blobs/sha256/$d"
  echo "$d"
}

oci_archive() {
  local ref="$1" rootfs="$2" out="$3"; shift 3
  local tmp; tmp="$(mktemp -d)"
  mkdir -p "$tmp/layout/blobs/sha256"

  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$tmp/layer.tar" .
  local diff_id; diff_id="$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)"
  gzip -n -9 "$tmp/layer.tar"
  local layer_size; layer_size="$(stat -c %s "$tmp/layer.tar.gz")"
  local layer; layer="$(_blob "$tmp/layout" "$tmp/layer.tar.gz")"

  printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Entrypoint":%s,"Env":["PATH=/usr/local/bin:/usr/bin:/bin:/"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/testbed oci_archive"}]}' \
    "${OCI_USER:-0:0}" "$(_json_str_array "$@")" "$diff_id" >"$tmp/config.json"
  local config_size; config_size="$(stat -c %s "$tmp/config.json")"
  local config; config="$(_blob "$tmp/layout" "$tmp/config.json")"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" >"$tmp/manifest.json"
  local manifest_size; manifest_size="$(stat -c %s "$tmp/manifest.json")"
  local manifest; manifest="$(_blob "$tmp/layout" "$tmp/manifest.json")"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$manifest_size" "$ref" "${ref##*:}" >"$tmp/layout/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$tmp/layout/oci-layout"

  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$tmp/layout" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
}

# image_from_binaries NAME:TAG OUT.tar ENTRYPOINT -- SRC:DEST...: a rootfs of static binaries with
# the directories a container runtime expects (/etc for hosts and resolv.conf, /tmp, /dev, /proc).
image_from_binaries() {
  local ref="$1" out="$2"; shift 2
  local entry=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do entry+=("$1"); shift; done
  shift
  local root; root="$(mktemp -d)"
  mkdir -p "$root"/{etc,tmp,dev,proc,sys,run}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/:/nonexistent\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
  local pair
  for pair in "$@"; do
    mkdir -p "$root/$(dirname "${pair#*:}")"
    cp "${pair%%:*}" "$root/${pair#*:}"
  done
  oci_archive "$ref" "$root" "$out" "${entry[@]}"
  rm -rf "$root"
}

# --- the project's image ---------------------------------------------------------------------------
# What the Dockerfile makes (the `ensemble` binary on a distroless glibc base, user 65532), made
# without an image builder: the binary, the shared libraries it links (read with ldd) and a passwd
# with the nonroot user. Named as the chart's default image (ensemble:<appVersion>), which
# containerd stores as docker.io/library/ensemble:<version>.
# The binary comes from cargo's CARGO_TARGET_DIR (default: one of the test bed's own) in the
# profile TESTBED_IMAGE_PROFILE: `release` (the default, as the Dockerfile builds it) or `dev`,
# which scripts/e2e uses so that the image reuses what `cargo test` has already compiled.
build_project_image() {
  local version target bin profile="${TESTBED_IMAGE_PROFILE:-release}"
  version="$(awk -F'"' '/^version *=/ { print $2; exit }' "$REPO/Cargo.toml")"
  [[ -n "$version" ]] || die "cannot read the version from Cargo.toml"
  PROJECT_IMAGE="docker.io/library/ensemble:$version"
  target="${CARGO_TARGET_DIR:-$TB_CACHE/cargo-target}"
  log "project image: cargo build --profile $profile --bin ensemble (nice ${TESTBED_BUILD_NICE:-19}, target $target)"
  (cd "$REPO" && CARGO_TARGET_DIR="$target" nice -n "${TESTBED_BUILD_NICE:-19}" \
     cargo build --profile "$profile" --locked --bin ensemble ${TESTBED_BUILD_JOBS:+-j "$TESTBED_BUILD_JOBS"} >&2) \
    || die "cargo build failed"
  case "$profile" in dev) bin="$target/debug/ensemble" ;; *) bin="$target/$profile/ensemble" ;; esac
  local h; h="$(sha256sum <"$bin" | cut -c1-12)"
  PROJECT_ARCHIVE="$TB_CACHE/images/ensemble-$version-$h.tar"
  [[ -f "$PROJECT_ARCHIVE" ]] && return 0
  mkdir -p "$TB_CACHE/images"
  local root; root="$(mktemp -d)"
  mkdir -p "$root"/{etc,tmp,dev,proc,sys,run,usr/local/bin,home/nonroot}
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  # Without debug symbols: a dev binary is several times larger with them, and slower to pack.
  strip -o "$root/usr/local/bin/ensemble" "$bin"
  local lib
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  OCI_USER=65532:65532 oci_archive "$PROJECT_IMAGE" "$root" "$PROJECT_ARCHIVE" /usr/local/bin/ensemble
  rm -rf "$root"
  log "project image: $PROJECT_IMAGE in $PROJECT_ARCHIVE"
}

cmd_image() {
  build_project_image
  if daemon_pid containerd >/dev/null 2>&1; then
    log "project image: importing $PROJECT_IMAGE into the node"
    ctr_ images import "$PROJECT_ARCHIVE" >&2 || die "importing $PROJECT_ARCHIVE failed"
    # The same image under a second tag: the e2e suite rolls an image change to it.
    ctr_ images tag --force "$PROJECT_IMAGE" "$PROJECT_IMAGE-next" >&2 \
      || die "tagging $PROJECT_IMAGE-next failed"
  else
    log "project image: the test bed is not up; \`up\` imports it"
  fi
  echo "$PROJECT_ARCHIVE"
}
