#!/usr/bin/env bash
# Where a serial write's time goes: starts a 3-member `ensemble local --data-dir` of the given
# build, runs serial writes (1 session x 1 in flight) against its leader, records one second of
# system calls and scheduler events on every core with `perf`, and prints the median time,
# from the client's send, at which each step of a write happens in every member.
#
#   scripts/trace-serial.sh [BIN] [--seconds 1]
#
# BIN defaults to the release build in the cargo target directory. Needs root (or
# perf_event_paranoid <= -1) and perf. Rows name the thread: C the client, L the leader,
# F1/F2 the followers, M a member's main thread, W its log writer; `wake` is the moment
# another thread woke it, `in` the moment it got a core; sends and receives are the
# system calls (fd = the socket). A step counts when it happens in more than half of the
# writes; `#2` is its second time in one write. The trace itself adds to each write, so
# compare its steps with each other, not its total with `bench-ab.sh`.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,15p' "$0"
  exit 2
fi
binary=${CARGO_TARGET_DIR:-target}/release/ensemble
if [[ $# -gt 0 && $1 != --* ]]; then
  binary=$1
  shift
fi
seconds=1
if [[ ${1:-} == --seconds ]]; then
  seconds=$2
fi
command -v perf > /dev/null || { echo "perf is not installed" >&2; exit 1; }
[[ -x $binary ]] || { echo "no ensemble build at $binary" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill $local 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
port=$(( (port % 20000) + 30000 ))
"$binary" local --members 3 --client-port "$port" --data-dir "$work/data" > "$work/local.log" 2>&1 &
local=$!
sleep 3

mode() { (exec 3<>"/dev/tcp/127.0.0.1/$1"; printf srvr >&3; grep Mode <&3) || true; }
pid_of() { ss -ltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2; }
leader=
for p in "$port" $((port + 1)) $((port + 2)); do
  echo "port $p pid $(pid_of "$p")" >> "$work/pids"
  [[ $(mode "$p") == *leader* ]] && leader=$p
done
[[ -n $leader ]] || { echo "no leader after 3 s" >&2; exit 1; }
echo "leader $leader" >> "$work/pids"

"$binary" bench --connect "127.0.0.1:$leader" --sessions 1 --in-flight 1 --mix set=100 \
  --value-size 100 --duration "$((seconds + 4))s" --warmup 500ms > "$work/bench.txt" 2> /dev/null &
bench=$!
echo "bench $bench" >> "$work/pids"
sleep 2
events=syscalls:sys_enter_sendto,syscalls:sys_exit_recvfrom,syscalls:sys_enter_pwrite64
events+=,syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync,sched:sched_switch,sched:sched_wakeup
perf record -q -a -o "$work/perf.data" -e "$events" -- sleep "$seconds" 2> /dev/null
wait $bench
perf script -i "$work/perf.data" -F comm,pid,tid,time,event,trace 2> /dev/null > "$work/trace.txt"

python3 - "$work/trace.txt" "$work/pids" <<'EOF'
import collections, re, statistics, sys

trace, pids_file = sys.argv[1], sys.argv[2]
ports, leader, bench = {}, None, None
for line in open(pids_file):
    word = line.split()
    if word[0] == "port":
        ports[int(word[1])] = int(word[3])
    elif word[0] == "leader":
        leader = int(word[1])
    elif word[0] == "bench":
        bench = int(word[1])
role, followers = {bench: "C"}, 0
for port, pid in sorted(ports.items()):
    if port == leader:
        role[pid] = "L"
    else:
        followers += 1
        role[pid] = f"F{followers}"

line_re = re.compile(r"^\s*(.*?)\s+(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)$")
threads, events = {}, []  # tid -> "LM"/"LW"/...; (time, kind, tid, detail)
for line in open(trace):
    match = line_re.match(line)
    if not match:
        continue
    comm, pid, tid, time, event, rest = match.groups()
    pid, tid, time = int(pid), int(tid), float(time)
    event = event.split(":", 1)[1].replace("sys_", "").replace("sched_", "")
    if event == "switch":
        events.append((time, "in", int(re.search(r"next_pid=(\d+)", rest).group(1)), ""))
    elif event == "wakeup":
        events.append((time, "wake", int(re.search(r" pid=(\d+)", rest).group(1)), ""))
    elif pid in role:
        threads[tid] = role[pid] + ("W" if "writer" in comm else "M")
        fd = re.search(r"fd: 0x([0-9a-f]+)", rest)
        events.append((time, event, tid, str(int(fd.group(1), 16)) if fd else ""))

starts = [i for i, e in enumerate(events)
          if e[1] == "enter_sendto" and threads.get(e[2], "").startswith("C")]
steps, cycles = collections.defaultdict(list), []
for a, b in zip(starts, starts[1:]):
    t0 = events[a][0]
    cycles.append((events[b][0] - t0) * 1e6)
    seen = collections.Counter()
    for time, kind, tid, detail in events[a:b]:
        if tid not in threads:
            continue
        key = (threads[tid], kind, detail)
        seen[key] += 1
        steps[key + (seen[key],)].append((time - t0) * 1e6)
if not cycles:
    sys.exit("no serial writes were traced")
print(f"{len(cycles)} writes traced, a write every {statistics.median(cycles):.0f} us (median)")
print(f"{'us':>6}  thread  step")
rows = [(statistics.median(v), k) for k, v in steps.items() if len(v) > len(cycles) / 2]
for at, (thread, kind, detail, n) in sorted(rows):
    fd = f" fd {detail}" if detail else ""
    again = f" #{n}" if n > 1 else ""
    print(f"{at:6.0f}  {thread:6s}  {kind}{fd}{again}")
EOF
