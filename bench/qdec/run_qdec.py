#!/usr/bin/env python3
"""QDEC on SmolLM2-135M: perplexity gained and decode time lost at 3 and 4 bits.

Quantizes with --save-residual (skim at its defaults, gptq w3/w4 with groups of 128; calibrated
on 32 x 512 tokens of Emma, 2 ranks), evaluates each folder with `eval --qdec K` for every K on a
close and a far held-out text (the peers benchmark's protocol), and times `generate --qdec K`
(64 new tokens; K values interleaved, repeated, medians). Writes bench/results/qdec-<host>.json
and the "QDEC" section of docs/RESULTS.md (between the qdec markers). --decode-only times
decoding alone for the chosen configurations (bench/results/qdec-decode-<host>.json, a second
table), for a quiet machine or a newer build without redoing the perplexities.

  bench/qdec/run_qdec.py [--ks 0,8,32,128] [--reps 5] [--configs NAME,...] [--decode-only]
                         [--report-only]
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
from bench_info import git_commit, machine  # noqa: E402
from smollm2_args import add_smollm2_arguments  # noqa: E402

CONFIGS = {  # name -> (method, bits, options)
    "skim @3": ("skim", 3, []),
    "gptq-w3-g128": ("gptq", 3, ["--group-size", "128"]),
    "skim @4": ("skim", 4, []),
    "gptq-w4-g128": ("gptq", 4, ["--group-size", "128"]),
}
TEXTS = {"close": "prideprejudice.txt", "far": "kjv-genesis.txt"}
PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good"


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def evaluate(a, env, model, k):
    out = {}
    for key, name in TEXTS.items():
        r = run([a.bin, "eval", "--model", model, "--text", os.path.join(a.text_dir, name),
                 "--seq-len", 512, "--max-windows", 16, "--json", "--comm", "none", "--qdec", k],
                capture_output=True, text=True, env=env)
        out[key] = json.loads(r.stdout)["perplexity"]
    return out


def decode_rates(a, env, model, ks):
    rates = {k: [] for k in ks}
    for _ in range(a.reps):
        for k in ks:  # interleaved: a change in machine load hits every K alike
            r = run([a.bin, "generate", "--model", model, "--prompt", PROMPT, "--tokens", 64,
                     "--json", "--comm", "none", "--qdec", k], capture_output=True, text=True,
                    env=env)
            rates[k].append(json.loads(r.stdout)["decode_tokens_per_second"])
    return {k: {"median": statistics.median(v), "all": v} for k, v in rates.items()}


def write_report(result, doc):
    ks = result["ks"]
    lines = [
        "<!-- qdec:begin (bench/qdec/run_qdec.py writes this section) -->",
        "## QDEC",
        "",
        f"`bench/qdec/run_qdec.py`, `bench/results/{os.path.basename(result['path'])}`: the "
        "peers protocol (SmolLM2-135M-Instruct, 32 x 512 calibration tokens of Emma, the first "
        "16 windows of 512 tokens of a close and a far held-out text), each folder quantized "
        "with `--save-residual` and evaluated with `--qdec K` (the residual of the K input "
        "channels of largest |x| added at every token, in every linear). Bits: the model's; the "
        "residual (4.03 bits per weight more) stays beside it in host memory, as in the paper. "
        "Decode: `generate --tokens 64` tokens/s, median of "
        f"{result['reps']} runs interleaved over K, {result['machine']['cores']} threads. Commit "
        f"`{result['commit'][:12]}`, {result['machine']['cpu']}, {result['date'][:10]}.",
        "",
        "| run | bits | K | close | far | decode tokens/s | decode time vs K = 0 |",
        "|---|---|---|---|---|---|---|",
    ]
    for run_ in result["runs"]:
        base = run_["decode"][str(ks[0])]["median"]
        for k in ks:
            p = run_["perplexity"][str(k)]
            rate = run_["decode"][str(k)]["median"]
            lines.append(f"| {run_['name']} | {run_['bits']:.3f} | {k} | {p['close']:.3f} | "
                         f"{p['far']:.3f} | {rate:.1f} | {base / rate:.3f} |")
    decode = result.get("decode_only")
    if decode:
        lines += [
            "",
            f"Decode alone (`--decode-only`), commit `{decode['commit'][:12]}`, "
            f"{decode['date'][:10]}, load average at the start "
            f"{decode['machine']['load_average'][0]:.2f}, median of {decode['reps']} runs:",
            "",
            "| run | bits | K | decode tokens/s | decode time vs K = 0 |",
            "|---|---|---|---|---|",
        ]
        for run_ in decode["runs"]:
            base = run_["decode"][str(decode["ks"][0])]["median"]
            for k in decode["ks"]:
                rate = run_["decode"][str(k)]["median"]
                lines.append(f"| {run_['name']} | {run_['bits']:.3f} | {k} | {rate:.1f} | "
                             f"{base / rate:.3f} |")
    lines += ["", "<!-- qdec:end -->"]
    text = open(doc).read()
    begin, end = text.find("<!-- qdec:begin"), text.find("<!-- qdec:end -->")
    section = "\n".join(lines)
    if begin >= 0 and end >= 0:
        text = text[:begin] + section + text[end + len("<!-- qdec:end -->"):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(doc, "w").write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_smollm2_arguments(p)
    p.add_argument("--ks", default="0,8,32,128")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--work", default=os.path.join(ROOT, "build-peers"))
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "RESULTS.md"))
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--decode-only", action="store_true")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args()
    path = os.path.join(ROOT, "bench", "results", f"qdec-{machine()['host']}.json")
    decode_path = os.path.join(ROOT, "bench", "results", f"qdec-decode-{machine()['host']}.json")

    def report():
        result = json.load(open(path))
        result["path"] = path
        if os.path.exists(decode_path):
            result["decode_only"] = json.load(open(decode_path))
        write_report(result, a.doc)

    if a.report_only:
        report()
        return 0
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    ks = [int(k) for k in a.ks.split(",")]
    result = {"benchmark": "qdec", "commit": git_commit(), "machine": machine(), "ks": ks,
              "reps": a.reps, "runs": [],
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    for name in a.configs.split(","):
        method, bits, options = CONFIGS[name]
        out = os.path.join(a.work, "qdec-" + name.replace(" ", "").replace("@", "b"))
        cmd = [a.bin, "quantize", "--model", a.model, "--method", method, "--bits", bits,
               "--calib", a.calib, "--calib-samples", 32, "--calib-seq-len", 512, "--out", out,
               "--progress", "none", "--overwrite", "--save-residual"] + options
        if a.ranks > 1:
            cmd = ["mpirun", "-np", a.ranks, "--oversubscribe", "--allow-run-as-root",
                   "--bind-to", "none"] + cmd + ["--comm", "mpi"]
        run(cmd, env=env)
        quantize_report = json.load(open(os.path.join(out, "report.json")))
        entry = {"name": name, "method": method, "options": options,
                 "bits": quantize_report["average_bits"]}
        if not a.decode_only:
            entry["perplexity"] = {str(k): evaluate(a, env, out, k) for k in ks}
        entry["decode"] = {str(k): v for k, v in decode_rates(a, env, out, ks).items()}
        result["runs"].append(entry)
        shutil.rmtree(out)
        with open(decode_path if a.decode_only else path, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    report()
    print(decode_path if a.decode_only else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
