#!/usr/bin/env bash
# Apache ZooKeeper (Debian's package, 3.8) behind the same command line as
# `ensemble local --members 1 --client-port 0`, so that the compatibility suite can run
# against the real thing as an oracle:
#
#   ENSEMBLE_BIN=tests/compat/python/apache-zookeeper-local.sh scripts/compat-python.sh
#
# Only the arguments the suite passes are understood; the first stdout line is the
# connection string; SIGTERM/SIGINT stop the server. Settings mirror ensemble's defaults
# (tickTime 2000, session timeouts 4000..40000, the same four-letter words).
set -euo pipefail
port=0
while [[ $# -gt 0 ]]; do
  case $1 in
    local) ;;
    --members) [[ $2 == 1 ]] || { echo "only --members 1" >&2; exit 2; }; shift ;;
    --client-port) port=$2; shift ;;
    *) echo "unsupported argument: $1" >&2; exit 2 ;;
  esac
  shift
done
home=$("$(dirname "$0")/../../../scripts/install-zookeeper.sh" | tail -n 1)
classpath=$(. "$home/bin/zkEnv.sh" >/dev/null 2>&1; echo "$CLASSPATH")
if [[ $port == 0 ]]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
dir=$(mktemp -d)
cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,conf,isro
CFG
java -Dzookeeper.jmx.log4j.disable=true -cp "$classpath" \
  org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" >&2 &
pid=$!
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"; exit 0; }
trap stop TERM INT
for _ in $(seq 1 200); do
  if python3 - "$port" <<'PY' 2>/dev/null; then break; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"srvr")
reply = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
assert b"Mode:" in reply  # "not currently serving requests" until fully started
PY
  kill -0 "$pid" 2>/dev/null || { echo "ZooKeeper exited" >&2; exit 1; }
  sleep 0.1
done
echo "127.0.0.1:$port"
wait "$pid"
