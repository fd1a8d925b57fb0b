#!/usr/bin/env python3
"""Eval benchmark: runs `skim-dist eval --json` on a fixed token count and records wall time,
tokens/s, peak RSS, the machine and the git commit in bench/results/eval-<host>.json.

    python3 bench/eval/run_eval_bench.py --skim-dist build/launch/skim-dist
"""
import argparse
import datetime
import json
import os
import resource
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
from bench_info import cpu_model, git_commit  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skim-dist", required=True, help="path to the skim-dist executable")
    ap.add_argument("--model", default=os.path.join(ROOT, "data/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--text", default=os.path.join(ROOT, "data/text/prideprejudice.txt"))
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    ap.add_argument("--out", default=None, help="default bench/results/eval-<host>.json")
    args = ap.parse_args()

    if not os.path.exists(args.model):
        sys.exit(f"model {args.model} is missing; run scripts/fetch_data.sh")
    cmd = [args.skim_dist, "eval", "--model", args.model, "--text", args.text,
           "--seq-len", str(args.seq_len), "--max-windows", str(args.windows), "--json"]
    if args.threads > 0:
        cmd += ["--threads", str(args.threads)]
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"skim-dist eval failed ({proc.returncode}): {proc.stderr.strip()}")
    ev = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss of the only child this process waited for, in KiB on Linux.
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    host = socket.gethostname()
    tokens = ev["windows"] * ev["seq_len"]
    result = {
        "benchmark": "eval",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {"host": host, "cpu": cpu_model(), "cores": os.cpu_count(),
                    "threads": ev.get("threads"),
                    # Other work on the machine skews the numbers: the 1-minute load average.
                    "load_average_before": load_before,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")},
        "command": " ".join(os.path.relpath(c, ROOT) if os.path.isabs(c) else c for c in cmd),
        "model": os.path.relpath(args.model, ROOT),
        "text": os.path.relpath(args.text, ROOT),
        "seq_len": ev["seq_len"],
        "windows": ev["windows"],
        "tokens_forwarded": tokens,
        "tokens_predicted": ev["tokens"],
        "perplexity": ev["perplexity"],
        "wall_seconds": wall,
        "eval_seconds": ev["seconds"],
        "layer_load_seconds": ev.get("layer_load_seconds"),
        "tokens_per_second": tokens / wall,
        "peak_rss_mib": peak_kib / 1024.0,
    }
    out = args.out or os.path.join(ROOT, "bench", "results", f"eval-{host}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
