#!/usr/bin/env bash
# Apache ZooKeeper (Debian's package, 3.8) behind the same command line as
# `ensemble local --members N`, so that the compatibility suite can run against the real
# thing as an oracle:
#
#   ENSEMBLE_BIN=tests/compat/python/apache-zookeeper-local.sh scripts/compat-python.sh
#   COMPAT_MEMBERS=3 ENSEMBLE_BIN=tests/compat/python/apache-zookeeper-local.sh scripts/compat-python.sh
#
# Only the arguments the suite passes are understood: `--members 1 --client-port 0` runs one
# standalone server; `--members N --client-port P --peer-port Q` runs a quorum of N servers
# with client ports P.. and quorum ports Q.. (election ports are any free ones); each
# `--set key=value` is added to every server's zoo.cfg, after the defaults it overrides. The first
# stdout line is the connection string; SIGTERM/SIGINT stop the servers. Settings mirror
# ensemble's defaults (tickTime 2000, session timeouts 4000..40000, the same four-letter
# words).
set -euo pipefail
members=1
port=0
peer_port=0
settings=""
while [[ $# -gt 0 ]]; do
  case $1 in
    local) ;;
    --members) members=$2; shift ;;
    --client-port) port=$2; shift ;;
    --peer-port) peer_port=$2; shift ;;
    --set) settings+="$2"$'\n'; shift ;;
    *) echo "unsupported argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ $members -gt 1 && ($port == 0 || $peer_port == 0) ]]; then
  echo "--members $members needs --client-port and --peer-port" >&2
  exit 2
fi
home=$("$(dirname "$0")/../../../scripts/install-zookeeper.sh" | tail -n 1)
classpath=$(. "$home/bin/zkEnv.sh" >/dev/null 2>&1; echo "$CLASSPATH")
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
if [[ $port == 0 ]]; then
  port=$(free_port)
fi
dir=$(mktemp -d)
servers=""
if [[ $members -gt 1 ]]; then
  for i in $(seq 1 "$members"); do
    servers+="server.$i=127.0.0.1:$((peer_port + i - 1)):$(free_port)"$'\n'
  done
fi
pids=()
stop() {
  kill "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  rm -rf "$dir"
  exit "${1:-0}"
}
trap stop TERM INT
addresses=()
for i in $(seq 1 "$members"); do
  client_port=$((port + i - 1))
  mkdir -p "$dir/$i/data"
  cat >"$dir/$i/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/$i/data
clientPort=$client_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,conf,isro
$settings$servers
CFG
  main=org.apache.zookeeper.server.ZooKeeperServerMain
  if [[ $members -gt 1 ]]; then
    echo "$i" >"$dir/$i/data/myid"
    main=org.apache.zookeeper.server.quorum.QuorumPeerMain
  fi
  java -Dzookeeper.jmx.log4j.disable=true -cp "$classpath" "$main" "$dir/$i/zoo.cfg" >&2 &
  pids+=($!)
  addresses+=("127.0.0.1:$client_port")
done
for address in "${addresses[@]}"; do
  for _ in $(seq 1 600); do
    if python3 - "${address#*:}" <<'PY' 2>/dev/null; then break; fi
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
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "ZooKeeper exited" >&2; stop 1; }
    done
    sleep 0.1
  done
done
(IFS=,; echo "${addresses[*]}")
wait "${pids[@]}"
