#!/usr/bin/env bash
# Runs the same `ensemble bench` workloads against ensemble and against Apache ZooKeeper
# (standalone, Debian's package), side by side on this machine, and prints a markdown
# table with the ratio ensemble/ZooKeeper.
#
#   scripts/bench-compare.sh [--quick] [--duration 10s] [--warmup 2s] [--keys 1000]
#                            [--value-size 1024] [--keep]
#
# --quick   a smoke run: 2 s per case after 0.5 s warmup, one concurrency setting.
# --keep    leave the work directory (configs, logs, per-run JSON) in place.
#
# Both servers get a data directory under one temporary directory, so on the same
# filesystem; ZooKeeper runs with its default forceSync=yes. The load generator shares
# the machine's cores with the server it loads, the same for both.
set -euo pipefail

duration=10s
warmup=2s
keys=1000
value_size=1024
quick=false
keep=false
while (($# > 0)); do
  case $1 in
  --quick) quick=true ;;
  --keep) keep=true ;;
  --duration) duration=$2; shift ;;
  --warmup) warmup=$2; shift ;;
  --keys) keys=$2; shift ;;
  --value-size) value_size=$2; shift ;;
  -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
  *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Workloads: name, mix. Concurrency: sessions x in-flight per session.
workloads=("read-heavy get=90,set=10" "write-heavy create=50,set=50")
concurrency=("1x1" "4x8" "16x16")
if $quick; then
  duration=2s
  warmup=500ms
  concurrency=("4x8")
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
echo "building ensemble (release)" >&2
cargo build --release --quiet -p ensemble
bin=${CARGO_TARGET_DIR:-$repo/target}/release/ensemble
zk_home=$(scripts/install-zookeeper.sh | tail -n 1)
zk_classpath=$(
  # shellcheck disable=SC1091
  . "$zk_home/bin/zkEnv.sh" >/dev/null 2>&1 || true
  echo "${CLASSPATH:-/usr/share/java/zookeeper.jar}"
)

work=$(mktemp -d "${TMPDIR:-/tmp}/ensemble-bench-compare.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if $keep; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until the server on $1 answers ZooKeeper's `ruok` with `imok`.
wait_ready() {
  local port=$1 name=$2 reply
  for _ in $(seq 1 150); do
    if reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; printf ruok >&3; cat <&3" 2>/dev/null) &&
      [[ $reply == imok ]]; then
      return 0
    fi
    sleep 0.2
  done
  echo "$name did not become ready on port $port; its log:" >&2
  tail -n 30 "$work/$name.log" >&2
  exit 1
}

zk_port=$(free_port)
ens_port=$(free_port)
while [[ $ens_port == "$zk_port" ]]; do ens_port=$(free_port); done
mkdir -p "$work/zookeeper-data" "$work/ensemble-data" "$work/results"

cat >"$work/zoo.cfg" <<EOF
tickTime=2000
dataDir=$work/zookeeper-data
clientPort=$zk_port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
forceSync=yes
EOF
java -cp "$zk_classpath" org.apache.zookeeper.server.ZooKeeperServerMain "$work/zoo.cfg" \
  >"$work/zookeeper.log" 2>&1 &
pids+=($!)
"$bin" local --members 1 --client-port "$ens_port" --data-dir "$work/ensemble-data" \
  >"$work/ensemble.log" 2>&1 &
pids+=($!)
wait_ready "$zk_port" zookeeper
wait_ready "$ens_port" ensemble

for workload in "${workloads[@]}"; do
  read -r name mix <<<"$workload"
  for c in "${concurrency[@]}"; do
    sessions=${c%x*}
    in_flight=${c#*x}
    for server in ensemble zookeeper; do
      port=$ens_port
      [[ $server == zookeeper ]] && port=$zk_port
      echo "== $name $c on $server" >&2
      "$bin" bench --connect "127.0.0.1:$port" --sessions "$sessions" --in-flight "$in_flight" \
        --mix "$mix" --value-size "$value_size" --keys "$keys" \
        --duration "$duration" --warmup "$warmup" --json \
        >"$work/results/$name-$c-$server.json" 2>>"$work/bench.log"
    done
  done
done

# Asked last: right after start-up, `srvr` may answer "not currently serving requests".
zk_version=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$zk_port; printf srvr >&3; cat <&3" |
  sed -n 's/^Zookeeper version: \([^-,]*\).*/\1/p' || true)
ens_note=""
if grep -q -- "--data-dir is not used yet" "$work/ensemble.log"; then
  ens_note=" This ensemble build keeps data in memory only (no log, no fsync): writes are not comparable yet."
fi
fs_type=$(df --output=fstype "$work" | tail -n 1)
python3 - "$work/results" <<EOF
import json, sys
results = sys.argv[1]
workloads = """${workloads[*]}""".split()
names, mixes = workloads[0::2], workloads[1::2]
concurrency = "${concurrency[*]}".split()
print("ensemble vs Apache ZooKeeper ${zk_version:-(version unknown)} standalone (forceSync=yes), both on $fs_type, "
      "$(nproc) cores shared with the load generator; ${value_size}-byte values, ${keys} keys, "
      "${duration} measured after ${warmup} warmup per case.$ens_note")
print()
print("| workload | mix | sessions x in-flight | ensemble ops/s | ZooKeeper ops/s | ops/s ratio "
      "| ensemble p50 ms | ZooKeeper p50 ms | ensemble p99 ms | ZooKeeper p99 ms | errors (ens/zk) |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for name, mix in zip(names, mixes):
    for c in concurrency:
        run = {}
        for server in ("ensemble", "zookeeper"):
            with open(f"{results}/{name}-{c}-{server}.json") as f:
                run[server] = json.load(f)["total"]
        e, z = run["ensemble"], run["zookeeper"]
        ratio = e["ops_per_sec"] / z["ops_per_sec"] if z["ops_per_sec"] else float("nan")
        ms = lambda summary, q: f'{summary["latency_us"][q] / 1000:.2f}'
        errors = lambda summary: sum(summary["errors"].values())
        print(f'| {name} | {mix} | {c} | {e["ops_per_sec"]:.0f} | {z["ops_per_sec"]:.0f} | {ratio:.2f} '
              f'| {ms(e, "p50")} | {ms(z, "p50")} | {ms(e, "p99")} | {ms(z, "p99")} '
              f'| {errors(e)}/{errors(z)} |')
EOF
