#!/usr/bin/env bash
# Compares two builds of ensemble side by side: starts a 3-member `ensemble local` of each,
# then alternates short `ensemble bench` runs between them and prints the medians, so that
# the drift of a shared machine falls on both alike.
#
#   scripts/bench-ab.sh BIN_A BIN_B [--rounds 8] [--mix set=100] [--sessions 1]
#                       [--in-flight 1] [--duration 2] [--via leader|follower]
#
# With one session the client talks to each ensemble's leader (found with `srvr`), or with
# `--via follower` to a follower, so where the leader happens to sit does not decide the
# result. Besides throughput and latency it prints the servers' CPU per operation: user and
# system time of the three member processes during a run, over the operations of the run
# (the warm-up of 0.5 s is counted at the run's rate), and the tail: p99.9, the slowest
# operation and the longest time in which no operation completed (medians, and the worst of
# all runs). Both ensembles keep their data under a temporary directory.
set -euo pipefail

if (($# < 2)) || [[ $1 == -h || $1 == --help ]]; then
  sed -n '2,15p' "$0"
  exit 2
fi

python3 - "$@" <<'EOF'
import argparse, os, socket, statistics, subprocess, sys, tempfile, time

parser = argparse.ArgumentParser()
parser.add_argument("a")
parser.add_argument("b")
parser.add_argument("--rounds", type=int, default=8)
parser.add_argument("--mix", default="set=100")
parser.add_argument("--sessions", type=int, default=1)
parser.add_argument("--in-flight", type=int, default=1)
parser.add_argument("--duration", type=float, default=2)
parser.add_argument("--via", choices=["leader", "follower"], default="leader")
args = parser.parse_args()
warmup = 0.5


def free_block(n):
    """The first of n consecutive loopback ports that were free a moment ago."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        if first + 2 * n + 1000 > 65535:
            continue
        try:
            for port in list(range(first, first + n)) + list(range(first + 1000, first + 1000 + n)):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            pass


def srvr_mode(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"srvr")
            out = b""
            while chunk := s.recv(4096):
                out += chunk
        return next((l.split(b":")[1].strip().decode() for l in out.splitlines() if l.startswith(b"Mode")), "")
    except OSError:
        return ""


def member_pids(local):
    """The `ensemble server` processes that `local` started."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == local.pid:
                pids.append(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


work = tempfile.mkdtemp(prefix="ensemble-bench-ab.")
systems = []
try:
    for name, binary in (("A", args.a), ("B", args.b)):
        port = free_block(3)
        log = open(os.path.join(work, f"{name}.log"), "w")
        local = subprocess.Popen(
            [binary, "local", "--members", "3", "--client-port", str(port),
             "--data-dir", os.path.join(work, name)],
            stdout=subprocess.PIPE, stderr=log, text=True)
        if not local.stdout.readline().strip():
            sys.exit(f"{binary} local did not start; see {log.name}")
        systems.append((name, binary, port, local))
    time.sleep(2)
    rows = {name: [] for name, *_ in systems}
    for _ in range(args.rounds):
        for name, binary, port, local in systems:
            ports = range(port, port + 3)
            if args.sessions == 1:
                ports = [p for p in ports if srvr_mode(p) == args.via][:1] or [port]
            pids = member_pids(local)
            before = cpu_seconds(pids)
            out = subprocess.run(
                [binary, "bench", "--connect", ",".join(f"127.0.0.1:{p}" for p in ports),
                 "--sessions", str(args.sessions), "--in-flight", str(args.in_flight),
                 "--mix", args.mix, "--value-size", "100",
                 "--duration", f"{int(args.duration * 1000)}ms", "--warmup", f"{int(warmup * 1000)}ms"],
                capture_output=True, text=True).stdout
            cpu = cpu_seconds(pids) - before
            total = next((l.split() for l in out.splitlines() if l.startswith("total")), None)
            if total is None:
                print(f"{name}: a run printed no total", file=sys.stderr)
                continue
            ops, rate, p50, p99 = int(total[1]), float(total[2]), float(total[3]), float(total[5])
            p999, most = float(total[6]), float(total[7])
            gap = next((float(l.split("operation")[1].split()[0]) for l in out.splitlines()
                        if "longest gap" in l), 0.0)
            ran = ops * (args.duration + warmup) / args.duration
            rows[name].append((rate, p50, p99, cpu / ran * 1e6 if ran else 0, p999, most, gap))
    print(f"{args.rounds} alternating runs of {args.duration:g} s, mix {args.mix}, "
          f"{args.sessions} x {args.in_flight}; medians:")
    for name, binary, *_ in systems:
        r = rows[name]
        if not r:
            continue
        med = [statistics.median(x[i] for x in r) for i in range(7)]
        print(f"{name} {binary}: {med[0]:.0f} ops/s, p50 {med[1]:.0f} us, p99 {med[2]:.0f} us, "
              f"servers' CPU per op {med[3]:.0f} us; p99.9 {med[4]:.0f} us, "
              f"max {med[5]:.0f} us, longest gap {med[6]:.1f} ms "
              f"(worst run: max {max(x[5] for x in r):.0f} us, gap {max(x[6] for x in r):.1f} ms)")
finally:
    for _, _, _, local in systems:
        local.terminate()
    for _, _, _, local in systems:
        try:
            local.wait(timeout=15)
        except subprocess.TimeoutExpired:
            local.kill()
    subprocess.run(["rm", "-rf", work])
EOF
