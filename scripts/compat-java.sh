#!/usr/bin/env bash
# Runs the Java compatibility suite (tests/compat/java): the Apache ZooKeeper 3.9 Java client
# and Curator 5 recipes against `ensemble local`, and the differential test that runs the same
# random operation sequences against Apache ZooKeeper (embedded in the test JVM) and compares.
#
#   ENSEMBLE_BIN=target/release/ensemble scripts/compat-java.sh [extra mvn args]
#
# ENSEMBLE_BIN (required): the `ensemble` binary under test.
# ENSEMBLE_CACHE: cache root (default ~/.cache/ensemble); Maven's repository is $ENSEMBLE_CACHE/m2,
#   outside the repo, so a warm run downloads nothing. Every artifact version is pinned in the pom.
# COMPAT_TARGET=zookeeper: run the client tests against embedded Apache ZooKeeper instead of
#   ensemble (checks the tests themselves against the reference server).
# COMPAT_SEEDS=1,2,3 / COMPAT_OPS=400: the differential test's seeds and operations per seed.
# Extra arguments go to mvn, e.g. -Dtest=DifferentialTest or -Dtest='ZooKeeperWatchTest#persistent*'.
#
# Exit status is mvn's: non-zero when a test fails. Failure reports (with the server's stderr and
# the differential test's seed and history) are printed; full reports are in
# tests/compat/java/target/surefire-reports, server logs in tests/compat/java/target/compat-logs.
set -euo pipefail

log() { echo "compat-java: $*" >&2; }

if [[ -z "${ENSEMBLE_BIN:-}" ]]; then
  log "ENSEMBLE_BIN is not set: point it at the ensemble binary to test, e.g."
  log "  cargo build --release && ENSEMBLE_BIN=\$PWD/target/release/ensemble $0"
  exit 2
fi
# Resolve to an absolute path: Maven runs the tests from tests/compat/java.
if [[ "$ENSEMBLE_BIN" != */* ]]; then
  ENSEMBLE_BIN="$(command -v "$ENSEMBLE_BIN" || true)"
fi
if [[ ! -x "$ENSEMBLE_BIN" || -d "$ENSEMBLE_BIN" ]]; then
  log "ENSEMBLE_BIN=${ENSEMBLE_BIN:-<not on PATH>} is not an executable file"
  exit 2
fi
ENSEMBLE_BIN="$(cd "$(dirname "$ENSEMBLE_BIN")" && pwd)/$(basename "$ENSEMBLE_BIN")"
export ENSEMBLE_BIN

command -v mvn >/dev/null || { log "mvn is not on PATH (Maven 3.6.3+ and Java 17+ are needed)"; exit 2; }
command -v java >/dev/null || { log "java is not on PATH (Java 17+ is needed)"; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
project="$root/tests/compat/java"
m2="${ENSEMBLE_CACHE:-$HOME/.cache/ensemble}/m2"
mkdir -p "$m2"

args=(
  -B -q
  -f "$project/pom.xml"
  "-Dmaven.repo.local=$m2"
  -Dstyle.color=never
  "-Dcompat.target=${COMPAT_TARGET:-ensemble}"
  "-Dcompat.seeds=${COMPAT_SEEDS:-}"
  "-Dcompat.ops=${COMPAT_OPS:-}"
  # Downloads on a cold cache are the only network use; keep them from looking stuck.
  -Daether.connector.requestTimeout=120000
)

# Server logs of the previous run (one pair of files per test) would only pile up.
rm -rf "$project/target/compat-logs"

log "ensemble: $ENSEMBLE_BIN; maven repository: $m2"
start=$SECONDS
status=0
# Debian's Maven 3.8 prints stray colour resets even in batch mode; drop them.
mvn "${args[@]}" test "$@" 2>&1 | sed -u 's/\x1b\[0m//g' || status=$?
if [[ $status -eq 0 ]]; then
  log "passed in $((SECONDS - start))s"
else
  log "FAILED (mvn exit $status) after $((SECONDS - start))s; reports: $project/target/surefire-reports"
fi
exit $status
