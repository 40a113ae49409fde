#!/usr/bin/env bash
# Runs the same `ensemble bench` workloads against a 3-member ensemble (`ensemble local
# --members 3`) and a 3-member Apache ZooKeeper ensemble (Debian's package), side by
# side on this machine, and prints one markdown table with the ratio ensemble/ZooKeeper.
#
#   scripts/bench-ensemble.sh [--quick] [--duration 10] [--warmup 2] [--keys 1000]
#                             [--value-size 100] [--only ensemble|zookeeper] [--keep]
#
# --quick   a smoke run: 2 s per case after 0.5 s warmup, a shorter failover run.
# --only    run one system (the other's column shows n/a).
# --keep    leave the work directory (configs, logs, per-run JSON) in place.
# Durations are in seconds.
#
# Cases, with every session spread round-robin over the three members: write-only,
# read-only and 10 %-write at 8 sessions x 8 in flight; serial writes at 1 x 1, once
# against the leader and once against a follower (both systems run side by side, idle
# but for the case at hand, which runs on one and then on the other);
# failover: a write load during which the leader is killed with SIGKILL, reporting
# the longest interval with no completed operation; and the resident memory of each
# member after start-up and a short idle. Both systems keep their data on the same
# filesystem, ZooKeeper with forceSync=yes; the load generator shares the cores. Both
# systems' members run under SCHED_BATCH: `ensemble local` chooses it for its members
# (members on one machine hand work to each other), and it speeds ZooKeeper's up too.
set -euo pipefail

duration=10
warmup=2
keys=1000
value_size=100
only=""
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
  --only) only=$2; shift ;;
  -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
  *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $only in
"") systems=(ensemble zookeeper) ;;
ensemble | zookeeper) systems=("$only") ;;
*) echo "--only takes ensemble or zookeeper" >&2; exit 2 ;;
esac

# Throughput cases: name, mix, sessions x in-flight, and optionally the one member to load
# (by its role): a serial write costs a hop more through a follower, in both systems.
cases=("write-only create=50,set=50 8x8" "read-only get=100 8x8" "10%-write get=90,set=10 8x8"
  "serial-write-to-leader set=100 1x1 leader" "serial-write-to-follower set=100 1x1 follower")
idle=5           # seconds of idle before memory is read
failover_run=15  # measured seconds of the failover run
failover_kill=5  # seconds into the measured window when the leader dies
fsync_rounds=200
if $quick; then
  duration=2
  warmup=0.5
  idle=2
  failover_run=6
  failover_kill=2
  fsync_rounds=50
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

work=$(mktemp -d "${TMPDIR:-/tmp}/ensemble-bench-ensemble.XXXXXX")
mkdir -p "$work/results"
pids=()  # every process this script started, killed on exit
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    # Members of `ensemble local` are not our children: wait by polling.
    wait "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
  if $keep; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "$*" >&2
  exit 1
}

# The first of $1 consecutive free ports on 127.0.0.1.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(1000):
    base = random.randrange(20000, 60000 - n)
    held = []
    try:
        for port in range(base, base + n):
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            held.append(s)
    except OSError:
        continue
    finally:
        for s in held:
            s.close()
    print(base)
    break
else:
    sys.exit("no free port range")
EOF
}

# A four-letter command's answer from 127.0.0.1:$1.
four_letter() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf $2 >&3; cat <&3" 2>/dev/null || true
}

# The first address of the connection string $1 whose member's `srvr` says `Mode: $2`.
address_of_role() {
  local address
  for address in ${1//,/ }; do
    if four_letter "${address##*:}" srvr | grep -q "^Mode: $2"; then
      echo "$address"
      return 0
    fi
  done
  fail "no member of $1 is a $2"
}

rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

secs_from() {
  python3 -c "import sys; print(float(sys.argv[1]) + float(sys.argv[2]))" "$1" "$2"
}

# --- machine facts ---------------------------------------------------------------------
python3 - "$work/fsync.probe" "$fsync_rounds" >"$work/results/fsync.txt" <<'EOF'
import os, sys, time
path, rounds = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
block = b"x" * 4096
os.pwrite(fd, block, 0)
os.fdatasync(fd)
started = time.perf_counter()
for i in range(rounds):
    os.pwrite(fd, block, 4096 * (i % 64))
    os.fdatasync(fd)
print(f"{(time.perf_counter() - started) / rounds * 1e3:.2f}")
os.close(fd)
os.unlink(path)
EOF

# --- Apache ZooKeeper: three QuorumPeerMain JVMs -----------------------------------------
zk_client=0
zk_pids=()
start_zookeeper() {
  zk_client=$(free_ports 3)
  local quorum election servers="" i
  quorum=$(free_ports 3)
  election=$(free_ports 3)
  for i in 1 2 3; do
    servers+="server.$i=127.0.0.1:$((quorum + i - 1)):$((election + i - 1))"$'\n'
  done
  for i in 1 2 3; do
    local dir=$work/zookeeper/member-$i
    mkdir -p "$dir/data"
    echo "$i" >"$dir/data/myid"
    cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$((zk_client + i - 1))
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
forceSync=yes
$servers
EOF
    # Under the scheduling policy `ensemble local` gives its members (chrt execs java,
    # so $! is the JVM's pid).
    chrt -b 0 java -Xmx512m -Dzookeeper.log.dir="$dir" -Dzookeeper.root.logger=INFO,CONSOLE \
      -cp "$zk_classpath" org.apache.zookeeper.server.quorum.QuorumPeerMain \
      "$dir/zoo.cfg" >"$dir/server.log" 2>&1 &
    zk_pids+=($!)
    pids+=($!)
  done
  # Ready when every member serves as leader or follower.
  for i in 1 2 3; do
    local port=$((zk_client + i - 1)) ready=false
    for _ in $(seq 1 300); do
      if four_letter "$port" srvr | grep -Eq '^Mode: (leader|follower)'; then
        ready=true
        break
      fi
      sleep 0.2
    done
    $ready || { tail -n 30 "$work/zookeeper/member-$i/server.log" >&2; fail "ZooKeeper member $i never served"; }
  done
  zk_connect="127.0.0.1:$zk_client,127.0.0.1:$((zk_client + 1)),127.0.0.1:$((zk_client + 2))"
  zk_version=$(four_letter "$zk_client" srvr | sed -n 's/^Zookeeper version: \([^-,]*\).*/\1/p')
}

zookeeper_leader_pid() {
  local i
  for i in 1 2 3; do
    if four_letter "$((zk_client + i - 1))" srvr | grep -q '^Mode: leader'; then
      echo "${zk_pids[i - 1]}"
      return 0
    fi
  done
  return 1
}

# --- ensemble: `ensemble local --members 3`, whose members are `ensemble server`s --------
ens_local=0
ens_member_pids=()
ens_admin_ports=()
start_ensemble() {
  local client peer dir=$work/ensemble
  client=$(free_ports 3)
  peer=$(free_ports 3)
  mkdir -p "$dir"
  "$bin" local --members 3 --client-port "$client" --peer-port "$peer" --data-dir "$dir" \
    >"$work/ensemble.out" 2>"$work/ensemble.log" &
  ens_local=$!
  pids+=($!)
  for _ in $(seq 1 300); do
    [[ -s $work/ensemble.out ]] && break
    kill -0 "$ens_local" 2>/dev/null || break
    sleep 0.2
  done
  if [[ ! -s $work/ensemble.out ]]; then
    tail -n 30 "$work/ensemble.log" >&2
    fail "ensemble local --members 3 did not print its connection string"
  fi
  ens_connect=$(head -n 1 "$work/ensemble.out")
  # The admin ports follow the connection string on stderr, one line per member.
  for _ in $(seq 1 50); do
    mapfile -t ens_admin_ports < <(sed -n 's|^admin: http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/ensemble.log")
    ((${#ens_admin_ports[@]} == 3)) && break
    sleep 0.1
  done
  ((${#ens_admin_ports[@]} == 3)) || fail "expected 3 admin ports in $work/ensemble.log"
  local i pid
  for i in 1 2 3; do
    pid=$(pgrep -P "$ens_local" -f -- "--config $dir/member-$i.properties" || true)
    [[ -n $pid ]] || fail "no ensemble server process for member $i"
    ens_member_pids+=("$pid")
    pids+=("$pid")
  done
  # Ready when every member knows a leader.
  for port in "${ens_admin_ports[@]}"; do
    local ready=false
    for _ in $(seq 1 150); do
      if curl -fsS "http://127.0.0.1:$port/status" 2>/dev/null |
        python3 -c 'import json, sys; sys.exit(json.load(sys.stdin).get("leaderId") is None)'; then
        ready=true
        break
      fi
      sleep 0.2
    done
    $ready || fail "the member with admin port $port never saw a leader"
  done
}

# The pid of the member whose /status says it leads: the `ensemble server` whose config
# names that member.
ensemble_leader_pid() {
  local port leader
  for port in "${ens_admin_ports[@]}"; do
    leader=$(curl -fsS "http://127.0.0.1:$port/status" 2>/dev/null |
      python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["id"] if s.get("role") == "leader" else "")' ||
      true)
    if [[ -n $leader ]]; then
      pgrep -P "$ens_local" -f -- "--config $work/ensemble/member-$leader.properties"
      return
    fi
  done
  return 1
}

# --- the runs -----------------------------------------------------------------------------
member_pids() {
  if [[ $1 == ensemble ]]; then echo "${ens_member_pids[@]}"; else echo "${zk_pids[@]}"; fi
}
connect_of() {
  if [[ $1 == ensemble ]]; then echo "$ens_connect"; else echo "$zk_connect"; fi
}

for system in "${systems[@]}"; do
  echo "== starting 3-member $system" >&2
  "start_$system"
done
sleep "$idle"
for system in "${systems[@]}"; do
  for pid in $(member_pids "$system"); do
    rss_kib "$pid"
  done >"$work/results/rss-$system.txt"
done

# Each case runs on one system right after the other, so that the machine's drift (its speed
# moves by the minute) falls on both alike rather than on whichever system ran later.
for c in "${cases[@]}"; do
  read -r name mix load role <<<"$c"
  for system in "${systems[@]}"; do
    connect=$(connect_of "$system")
    target=$connect
    [[ -z $role ]] || target=$(address_of_role "$connect" "$role")
    echo "== $name ($mix, $load) on $system, against $target" >&2
    "$bin" bench --connect "$target" --sessions "${load%x*}" --in-flight "${load#*x}" \
      --mix "$mix" --value-size "$value_size" --keys "$keys" \
      --duration "${duration}s" --warmup "${warmup}s" --json \
      >"$work/results/$name-$system.json" 2>>"$work/bench.log"
  done
done

for system in "${systems[@]}"; do
  connect=$(connect_of "$system")
  # Last, as it leaves the system with two members.
  echo "== failover on $system: the leader dies ${failover_kill}s into the measured window" >&2
  "$bin" bench --connect "$connect" --sessions 8 --in-flight 8 --mix set=100 \
    --value-size "$value_size" --keys "$keys" --duration "${failover_run}s" --warmup "${warmup}s" \
    --json >"$work/results/failover-$system.json" 2>>"$work/bench.log" &
  bench_pid=$!
  pids+=("$bench_pid")
  sleep "$(secs_from "$warmup" "$failover_kill")"
  leader=$("${system}_leader_pid") || fail "no leader found in $system"
  echo "   killing the leader, pid $leader" >&2
  kill -9 "$leader"
  wait "$bench_pid" || fail "the failover bench on $system failed; see $work/bench.log"
done

# --- the table ----------------------------------------------------------------------------
fs_type=$(df --output=fstype "$work" | tail -n 1)
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
python3 - "$work/results" <<EOF
import json, os, statistics, sys
results = sys.argv[1]
cases = [c.split() for c in """$(printf '%s\n' "${cases[@]}")""".splitlines()]

def load(name, system):
    path = f"{results}/{name}-{system}.json"
    return json.load(open(path)) if os.path.exists(path) else None

def rss(system):
    path = f"{results}/rss-{system}.txt"
    return [int(l) / 1024 for l in open(path)] if os.path.exists(path) else None

rows = []  # (measure, ensemble, zookeeper, format, lower is better)
for name, mix, load_, *_role in cases:
    e, z = load(name, "ensemble"), load(name, "zookeeper")
    t = lambda r, f: f(r["total"]) if r else None
    label = f"{name} ({mix}, {load_})"
    rows.append((f"{label} ops/s", t(e, lambda s: s["ops_per_sec"]), t(z, lambda s: s["ops_per_sec"]), "{:.0f}"))
    rows.append((f"{label} p50 ms", t(e, lambda s: s["latency_us"]["p50"] / 1e3), t(z, lambda s: s["latency_us"]["p50"] / 1e3), "{:.2f}"))
    rows.append((f"{label} p99 ms", t(e, lambda s: s["latency_us"]["p99"] / 1e3), t(z, lambda s: s["latency_us"]["p99"] / 1e3), "{:.2f}"))
    rows.append((f"{label} errors", e and e["errors"], z and z["errors"], "{}"))
e, z = load("failover", "ensemble"), load("failover", "zookeeper")
pick = lambda r, key: r[key] if r else None
rows.append(("failover: longest gap without a completed write, ms", pick(e, "longest_gap_ms"), pick(z, "longest_gap_ms"), "{:.0f}"))
rows.append(("failover: failed or in-doubt writes", pick(e, "errors"), pick(z, "errors"), "{}"))
rows.append(("failover: sessions reopened", pick(e, "reconnects"), pick(z, "reconnects"), "{}"))
rows.append(("failover: write ops/s over the whole run", e and e["total"]["ops_per_sec"], z and z["total"]["ops_per_sec"], "{:.0f}"))
re_, rz = rss("ensemble"), rss("zookeeper")
rows.append(("RSS per idle member, MiB (mean)", re_ and statistics.mean(re_), rz and statistics.mean(rz), "{:.0f}"))
rows.append(("RSS per idle member, MiB (each)", re_ and "/".join(f"{m:.0f}" for m in re_), rz and "/".join(f"{m:.0f}" for m in rz), "{}"))

fsync_ms = open(f"{results}/fsync.txt").read().strip()
print(f"3-member ensemble vs 3-member Apache ZooKeeper ${zk_version:-} (QuorumPeerMain, forceSync=yes, -Xmx512m), "
      f"the members of both under SCHED_BATCH, all members on one machine: $(nproc) cores ($cpu) shared with the load generator, "
      f"data on $fs_type, fdatasync of a 4 KiB write {fsync_ms} ms on average; "
      f"${value_size}-byte values, ${keys} keys, ${duration} s measured after ${warmup} s warmup per case; "
      f"sessions spread over the three members but for the serial writes. Failover: 8 x 8 set=100 for ${failover_run} s, "
      f"the leader killed with SIGKILL ${failover_kill} s in.")
print()
print("| measure | ensemble | ZooKeeper | ensemble/ZooKeeper |")
print("|---|---:|---:|---:|")
for measure, ev, zv, fmt in rows:
    show = lambda v: "n/a" if v is None else fmt.format(v)
    numeric = all(isinstance(v, (int, float)) for v in (ev, zv))
    ratio = f"{ev / zv:.2f}" if numeric and zv else "–"
    print(f"| {measure} | {show(ev)} | {show(zv)} | {ratio} |")
EOF
