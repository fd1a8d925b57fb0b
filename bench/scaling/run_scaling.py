#!/usr/bin/env python3
"""Scaling benchmark: `skim-dist quantize` (skim, 3 bits) at 1 and 2 ranks of one thread each, on
SmolLM2-135M and on a synthetic model with LLaMA-like aspect ratios (hidden 1024, intermediate
2816). Records the time of each phase (calibration forward, Hessian reduction, quantization),
the seconds and rows of every linear (the per-row costs the scaling model uses), the peak RSS of
every rank, the machine, the commit and the load, in bench/results/scaling-<host>.json.

  bench/scaling/run_scaling.py --build build [--models smollm2,synthetic] [--ranks 1,2]

Then bench/scaling/scaling_model.py predicts larger runs from that file.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
from bench_info import git_commit, machine  # noqa: E402


def phases(report):
    """Seconds per phase summed over layers, and every linear's (rows, cols, seconds)."""
    total = {}
    linears = []
    for layer in report["layers"]:
        for k, v in layer["seconds"].items():
            total[k] = total.get(k, 0.0) + v
        for x in layer["linears"]:
            linears.append({"name": x["name"], "rows": x["rows"], "cols": x["cols"],
                            "seconds": x["seconds"]["total"]})
    return total, linears


def shown(arg, bin_path, work):
    """An argument as the result records it: no path of this machine."""
    if arg == bin_path:
        return "skim-dist"
    if arg.startswith(work):
        return "$WORK" + arg[len(work):]
    if os.path.isabs(arg) and arg.startswith(ROOT + os.sep):
        return os.path.relpath(arg, ROOT)
    return arg


def quantize(bin_path, model, calib, samples, seq, ranks, out, work):
    cmd = [bin_path, "quantize", "--model", model, "--calib", calib, "--bits", "3",
           "--calib-samples", str(samples), "--calib-seq-len", str(seq), "--out", out,
           "--progress", "none", "--overwrite"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
    if ranks == 1:
        cmd += ["--comm", "none"]
    else:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--allow-run-as-root",
               "--bind-to", "core"] + cmd + ["--comm", "mpi"]
    load = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"quantize failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    total, linears = phases(report)
    return {"ranks": ranks, "wall_seconds": wall, "load_average_before": load,
            "report_seconds": report["seconds"], "phase_seconds": total,
            "peak_rss_mb": report["peak_rss_mb"], "average_bits": report["average_bits"],
            "linears": linears, "command": " ".join(shown(c, bin_path, work) for c in cmd)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--models", default="smollm2,synthetic")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--out", default=None, help="default bench/results/scaling-<host>.json")
    args = ap.parse_args()
    bin_path = os.path.join(args.build, "launch", "skim-dist")
    maker = os.path.join(args.build, "tests", "pipeline", "make_tiny_model")
    calib = os.path.join(ROOT, "data", "text", "emma.txt")
    work = tempfile.mkdtemp(prefix="skim-scaling-")
    try:
        models = {}
        for name in args.models.split(","):
            if name == "smollm2":
                model = os.path.join(ROOT, "data", "SmolLM2-135M-Instruct.Q4_1.gguf")
                shape = {"hidden": 576, "intermediate": 1536, "layers": 30}
                samples, seq = 32, 512
            elif name == "synthetic":
                model = os.path.join(work, "synthetic")
                subprocess.run([maker, model, "2", "1024", "2816"], check=True)
                shape = {"hidden": 1024, "intermediate": 2816, "layers": 2}
                samples, seq = 16, 256
            else:
                sys.exit(f"unknown model {name}")
            runs = []
            for ranks in [int(r) for r in args.ranks.split(",")]:
                print(f"{name}: {ranks} rank(s) ...", flush=True)
                runs.append(quantize(bin_path, model, calib, samples, seq, ranks,
                                     os.path.join(work, f"{name}-np{ranks}"), work))
                print(f"  {runs[-1]['wall_seconds']:.1f} s, phases {runs[-1]['phase_seconds']}",
                      flush=True)
            base = runs[0]["phase_seconds"].get("quantize", 0.0)
            for r in runs:
                q = r["phase_seconds"].get("quantize", 0.0)
                r["quantize_speedup"] = base / q if q > 0 else None
                r["wall_speedup"] = runs[0]["wall_seconds"] / r["wall_seconds"]
            models[name] = {"shape": shape, "calib_samples": samples, "calib_seq_len": seq,
                            "runs": runs}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"benchmark": "scaling",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": git_commit(), "machine": machine(), "method": "skim 3 bits",
              "models": models}
    out = args.out or os.path.join(ROOT, "bench", "results",
                                   f"scaling-{platform.node()}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
