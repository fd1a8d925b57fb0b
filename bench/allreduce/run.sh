#!/usr/bin/env bash
# All-reduce bandwidth at 1, 2 and 4 ranks, 1 MiB to 1 GiB, into
# bench/results/allreduce-<host>.json (with the machine and the git commit).
#   bench/allreduce/run.sh [BUILD_DIR] [MAX_BYTES]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build}"
max_bytes="${2:-1073741824}"
bench="$build/bench/allreduce/bench_allreduce"
host="$(hostname)"
out="$root/bench/results/allreduce-$host.json"
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT

for np in 1 2 4; do
  mpirun -np "$np" --oversubscribe --allow-run-as-root "$bench" "$max_bytes" >>"$runs"
done

python3 - "$runs" "$out" "$root" <<'PY'
import json, os, platform, subprocess, sys
runs_path, out_path, root = sys.argv[1:4]
def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=root).stdout.strip()
    except OSError:
        return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
mem_kb = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
result = {
    "benchmark": "allreduce",
    "machine": {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
                "memory_GiB": round(mem_kb / 2**20, 1),
                "load_average_at_end": os.getloadavg()[0],
                "mpi": run(["mpirun", "--version"]).splitlines()[0] if run(["mpirun", "--version"]) else ""},
    "git_commit": run(["git", "rev-parse", "HEAD"]),
    "git_dirty": bool(run(["git", "status", "--porcelain"])),
    "runs": [json.loads(line) for line in open(runs_path) if line.strip()],
}
with open(out_path, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
print(out_path)
PY
