#!/usr/bin/env bash
# Runs the Python compatibility suite (kazoo and zkCli) in tests/compat/python against the
# server binary named by ENSEMBLE_BIN. Installs what it needs on first use, outside the
# repository: a venv with the pinned packages of tests/compat/python/requirements.txt under
# ${ENSEMBLE_CACHE:-$HOME/.cache/ensemble} (keyed by a hash of that file, so editing it makes
# a new one), and Debian's zookeeper package for zkCli. Idempotent; warm runs install nothing.
#
#   ENSEMBLE_BIN=target/debug/ensemble scripts/compat-python.sh [pytest args...]
#
# ENSEMBLE_BIN may also be tests/compat/python/apache-zookeeper-local.sh, which runs the same
# suite against Apache ZooKeeper as the oracle.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
suite=$root/tests/compat/python
req=$suite/requirements.txt

if [[ -z ${ENSEMBLE_BIN:-} ]]; then
  echo "compat-python: set ENSEMBLE_BIN to the ensemble binary to test (e.g. target/debug/ensemble)" >&2
  exit 2
fi
if [[ $ENSEMBLE_BIN != /* ]]; then
  ENSEMBLE_BIN=$PWD/$ENSEMBLE_BIN
fi
if [[ ! -f $ENSEMBLE_BIN || ! -x $ENSEMBLE_BIN ]]; then
  echo "compat-python: ENSEMBLE_BIN=$ENSEMBLE_BIN is not an executable file" >&2
  exit 2
fi
export ENSEMBLE_BIN

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
  echo "compat-python: need python3 >= 3.9 (found: $("$python" --version 2>&1 || echo none))" >&2
  exit 2
fi

cache=${ENSEMBLE_CACHE:-$HOME/.cache/ensemble}
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
hash=$( (cat "$req"; echo "python $pyver") | sha256sum | cut -c1-16)
venv=$cache/venv-compat-$hash
make_venv() {
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian's own python3 ships venv separately.
    if command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
      echo "compat-python: installing python3-venv" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv"
  fi
  PIP_CACHE_DIR=$cache/pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$req"
  touch "$venv/.complete"
}
if [[ ! -f $venv/.complete ]]; then
  mkdir -p "$cache"
  # One installer at a time; a second concurrent run waits, then finds the venv ready.
  exec 9>"$cache/.venv-compat.lock"
  flock 9
  if [[ ! -f $venv/.complete ]]; then
    echo "compat-python: creating $venv" >&2
    make_venv
  fi
  flock -u 9
  exec 9>&-
fi

ZOOKEEPER_HOME=$("$root/scripts/install-zookeeper.sh" | tail -n 1)
export ZOOKEEPER_HOME
if [[ ! -x $ZOOKEEPER_HOME/bin/zkCli.sh ]]; then
  echo "compat-python: no zkCli.sh under $ZOOKEEPER_HOME" >&2
  exit 2
fi

cd "$root"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the work tree
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/compat/python "$@"
