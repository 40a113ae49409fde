#!/usr/bin/env bash
# Fuzzes the server's decoders for a bounded time and fails on any crash.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Targets (fuzz/fuzz_targets/): decode_request (client byte streams: frames, the
# handshake, every request) and snapshot_restore (snapshot bytes, with a round-trip
# property on what restores). Default: 30 s each, every target.
#
# Needs the nightly toolchain. Installs cargo-fuzz at a pinned version on first use.
# Nothing is written inside the repository: the tool, the build and the corpora live
# under ${ENSEMBLE_CACHE:-$HOME/.cache/ensemble}; the small committed seeds in
# fuzz/seeds/ are read, never written. A crashing input is kept under
# $cache/fuzz-artifacts/<target>/ and its path printed; reproduce it with
#   cargo +nightly fuzz run --fuzz-dir fuzz <target> <file>
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
seconds=${1:-30}
shift || true
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${ENSEMBLE_CACHE:-$HOME/.cache/ensemble}
tool_root=$cache/tools/cargo-fuzz-$CARGO_FUZZ_VERSION
export CARGO_TARGET_DIR=$cache/fuzz-target

if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
  echo "usage: $0 [seconds-per-target] [target...]" >&2
  exit 2
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi

if [[ ! -x $tool_root/bin/cargo-fuzz ]]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $tool_root" >&2
  cargo install --locked --quiet --root "$tool_root" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export PATH=$tool_root/bin:$PATH

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "$repo/fuzz")
fi

cd "$repo"
failed=()
for target in "${targets[@]}"; do
  corpus=$cache/fuzz-corpus/$target
  artifacts=$cache/fuzz-artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  seeds=()
  [[ -d fuzz/seeds/$target ]] && seeds=("fuzz/seeds/$target")
  echo "== $target: ${seconds}s (corpus $corpus)" >&2
  # libFuzzer writes new inputs to the first corpus directory only.
  if ! cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$seconds" -artifact_prefix="$artifacts/" -print_final_stats=1; then
    failed+=("$target")
  fi
done

if ((${#failed[@]} > 0)); then
  echo "fuzzing found crashes in: ${failed[*]} (inputs under $cache/fuzz-artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${targets[*]}: no crash in ${seconds}s each" >&2
