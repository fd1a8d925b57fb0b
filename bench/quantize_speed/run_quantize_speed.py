#!/usr/bin/env python3
"""Quantize speed and quality on SmolLM2: runs `skim-dist quantize` (skim, 3 bits, 2 ranks of
one thread, 32 x 512 calibration tokens of Emma) once per --scale-steps value, and records the
wall time, where it went (per phase of each layer, per linear shape, from report.json) and the
perplexity of the result on two held-out texts (Pride and Prejudice, close to the calibration
text; Genesis, far from it). Writes bench/results/quantize_speed-<host>.json.

    python3 bench/quantize_speed/run_quantize_speed.py --skim-dist build/launch/skim-dist \
        --steps 120 30 15
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
from bench_info import machine, write_result  # noqa: E402

TEXTS = {"prideprejudice": "data/text/prideprejudice.txt", "genesis": "data/text/kjv-genesis.txt"}


def evaluate(binary, model, text, windows, env):
    out = subprocess.run([binary, "eval", "--model", model, "--text", os.path.join(ROOT, text),
                          "--seq-len", "512", "--max-windows", str(windows), "--json"],
                         capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def profile(report):
    """Seconds per layer phase (rank 0's clock) and per linear phase, the latter also by shape."""
    layer = collections.Counter()
    linear = collections.Counter()
    by_shape = collections.defaultdict(collections.Counter)
    for entry in report["layers"]:
        layer.update(entry["seconds"])
        for lin in entry["linears"]:
            phases = {k: v for k, v in lin["seconds"].items() if k != "total"}
            linear.update(phases)
            by_shape[f"{lin['rows']}x{lin['cols']}"].update(phases)
    return {"layer_phases": dict(layer), "linear_phases": dict(linear),
            "linear_phases_by_shape": {k: dict(v) for k, v in by_shape.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skim-dist", required=True)
    ap.add_argument("--model", default="data/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--steps", type=int, nargs="+", default=[30])
    ap.add_argument("--bits", type=float, default=3.0)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--eval-windows", type=int, default=16)
    ap.add_argument("--keep", default=None, help="keep the quantized folders here (steps-N)")
    ap.add_argument("--out", default=None, help="default bench/results/quantize_speed-<host>.json")
    args = ap.parse_args()

    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    info = machine()
    runs = []
    work = tempfile.mkdtemp(prefix="skim-speed-")
    try:
        for steps in args.steps:
            out = os.path.join(work, f"steps-{steps}")
            cmd = ["mpirun", "-np", str(args.ranks), "--oversubscribe", "--allow-run-as-root",
                   "--bind-to", "none", args.skim_dist, "quantize", "--model",
                   os.path.join(ROOT, args.model), "--bits", str(args.bits), "--calib",
                   os.path.join(ROOT, "data/text/emma.txt"), "--calib-samples", "32",
                   "--calib-seq-len", "512", "--scale-steps", str(steps), "--out", out,
                   "--progress", "none", "--comm", "mpi"]
            load = os.getloadavg()[0]
            t0 = time.monotonic()
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            wall = time.monotonic() - t0
            report = json.load(open(os.path.join(out, "report.json")))
            run = {"scale_steps": steps, "wall_seconds": wall, "load_average_before": load,
                   "average_bits": report["average_bits"], "stored_bits": report["stored_bits"],
                   "perplexity": {name: evaluate(args.skim_dist, out, text, args.eval_windows,
                                                 env)["perplexity"]
                                  for name, text in TEXTS.items()}}
            run.update(profile(report))
            runs.append(run)
            print(json.dumps({k: run[k] for k in ("scale_steps", "wall_seconds", "perplexity")}),
                  file=sys.stderr, flush=True)
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                shutil.rmtree(os.path.join(args.keep, f"steps-{steps}"), ignore_errors=True)
                shutil.move(out, os.path.join(args.keep, f"steps-{steps}"))
            else:
                shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result("quantize_speed",
                 {"settings": {"model": args.model, "method": "skim", "bits": args.bits,
                               "ranks": args.ranks, "threads_per_rank": 1,
                               "calibration": "data/text/emma.txt, 32 x 512 tokens, seed 0",
                               "eval": f"{args.eval_windows} windows of 512 tokens per text",
                               "texts": TEXTS},
                  "runs": runs}, info, args.out)


if __name__ == "__main__":
    main()
