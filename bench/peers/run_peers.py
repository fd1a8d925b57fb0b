#!/usr/bin/env python3
"""skim against llama.cpp and GPTQ on one model, one calibration document, one evaluator.

llama.cpp (built from the llama-cpp-python sdist by scripts/build_llama_cpp.sh): an F32 GGUF of
the model, an importance matrix from the calibration document, every K-quant recipe with and
without it (embedding and head kept F32, as skim keeps them), bits counted exactly per
decoder-linear weight from the tensor types. This tool: gptq w3/w4 with groups of 128 and skim at
each bit count the llama.cpp files and gptq land on, plus the LUT storage variants at 3, 4 and
4.25 bits. Every file and folder is evaluated by `skim-dist eval` on two held-out texts: one
close to the calibration text, one far from it.

Runs already in the result file are kept (rerun to add or refresh: --redo NAME,...); writes
bench/results/peers-<host>.json, the table and plot in docs/RESULTS.md ("Against llama.cpp and
GPTQ") and docs/img/peers.png.

  bench/peers/run_peers.py [--ranks 2] [--redo "skim q8 b6 @4.63",...] [--only llama|tool]
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
from bench_info import git_commit, machine  # noqa: E402
from smollm2_args import add_smollm2_arguments  # noqa: E402

RECIPES = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_K_S", "Q4_K_M", "Q5_K_M"]
GPTQ = {"gptq-w3-g128": 3, "gptq-w4-g128": 4}
# The tool's other methods, run last: name -> (method, bits, options).
OTHERS = {
    "rtn-w3-g128": ("rtn", 3, ["--group-size", "128"]),
    "rtn-w4-g128": ("rtn", 4, ["--group-size", "128"]),
    "kmeans-3": ("kmeans", 3, []),
    "kmeans-4": ("kmeans", 4, []),
    # SliM-LLM: gptq with groups of 128 at b-1, b and b+1 bits (the split chosen per layer).
    "slim-w3-g128": ("slim", 3, ["--group-size", "128"]),
    "slim-w4-g128": ("slim", 4, ["--group-size", "128"]),
    # CLAQ: a K-means LUT per column inside GPTQ; --bits is the columns' average code width (the
    # LUTs and reserved weights come on top: the table's bits count them).
    "claq-3": ("claq", 3, []),
    "claq-3 out0.005": ("claq", 3, ["--outliers", "0.005"]),
    "claq-4": ("claq", 4, []),
}
# The decoder linears: what every method here quantizes and what the bits are averaged over.
LINEARS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
TEXTS = {"close": "prideprejudice.txt", "far": "kjv-genesis.txt"}
# skim variants: name -> (bit points, options). "peers": every bit count a peer landed on (two
# decimals, rounded down so skim never gets more).
SKIM = {
    "skim f16 b4": ("3,4,4.25", ["--lut", "f16", "--b-max", "4"]),
    "skim q8 b4": ("3,4,4.25", ["--lut", "q8", "--b-max", "4"]),
    "skim q8 b6": ("peers,3,4", ["--lut", "q8", "--b-max", "6"]),
    # Robustness on the far text, where llama.cpp with imatrix is ahead from 4.5 bits: stronger
    # damping, no LUT refinement, no scale training.
    "skim q8 b6 damp0.1": ("4.5", ["--lut", "q8", "--b-max", "6", "--damp", "0.1"]),
    "skim q8 b6 norefine": ("4.5", ["--lut", "q8", "--b-max", "6", "--no-refine"]),
    "skim q8 b6 noscale": ("4.5", ["--lut", "q8", "--b-max", "6", "--no-scale"]),
    # One budget over the whole model: each linear's errors divided by tr(W H W^T) (energy), or
    # times its measured KL per unit of error (kl).
    "skim q8 b4 global energy": ("3", ["--lut", "q8", "--b-max", "4", "--allocation", "global",
                                       "--global-weights", "energy"]),
    "skim q8 b4 global kl": ("3,4", ["--lut", "q8", "--b-max", "4", "--allocation", "global",
                                     "--global-weights", "kl"]),
    # d8 at the default widths: the same bits as q8, a finer grid whenever a row's widest gap is
    # narrower than its span.
    "skim d8 b4 global kl": ("3,3.5,4", ["--lut", "d8", "--b-max", "4", "--allocation", "global",
                                     "--global-weights", "kl"]),
    "skim q8 b6 global kl": ("4.23,4.5,4.63,4.93,5.27,5.53,6.03",
                             ["--lut", "q8", "--b-max", "6", "--allocation", "global",
                              "--global-weights", "kl"]),
    "skim d8 b6 global kl": ("5.27", ["--lut", "d8", "--b-max", "6", "--allocation", "global",
                                      "--global-weights", "kl"]),
    # Rows up to 8 bits where llama.cpp's best recipe keeps Q6_K and Q8_0 tensors.
    "skim q8 b8 global kl": ("6.03", ["--lut", "q8", "--b-max", "8", "--allocation", "global",
                                      "--global-weights", "kl"]),
    # grid rows: a row may store its q8 grid as its LUT (lo and step only).
    "skim q8 b8 global kl grid": ("3,4.23,5.27,6.03",
                                  ["--lut", "q8", "--b-max", "8", "--allocation", "global",
                                   "--global-weights", "kl", "--grid-rows", "yes"]),
    # d8: sorted LUT entries as 8-bit increments on a finer grid (wide rows keep their entries).
    "skim d8 b8 global kl grid": ("5.27,6.03",
                                  ["--lut", "d8", "--b-max", "8", "--allocation", "global",
                                   "--global-weights", "kl", "--grid-rows", "yes"]),
    # Reserved weights (fp16 corrections, 32 bits each + 32 per row, out of the budget).
    "skim q8 b4 out0.002": ("3", ["--lut", "q8", "--b-max", "4", "--outliers", "0.002"]),
    "skim q8 b4 out0.005": ("3", ["--lut", "q8", "--b-max", "4", "--outliers", "0.005"]),
    # Each row's count of reserved weights chosen by the allocation (none, ~1/512, 1/128, 1/32).
    "skim d8 b4 global kl out-auto": ("3,4", ["--lut", "d8", "--b-max", "4", "--allocation",
                                              "global", "--global-weights", "kl", "--outliers",
                                              "auto"]),
    "skim q8 b4 global kl t256": ("3", ["--lut", "q8", "--b-max", "4", "--allocation", "global",
                                        "--global-weights", "kl", "--sensitivity-tokens", "256"]),
}


def run(cmd, **kw):
    print("+", " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def rel(path):
    full = os.path.abspath(path)
    return os.path.relpath(full, ROOT) if full.startswith(ROOT + os.sep) else os.path.basename(full)


def gguf_linear_bits(path):
    """Exact stored bits per decoder-linear weight and the tensor types used, from the GGUF."""
    sys.path.insert(0, os.path.join(ROOT, "build-llama.cpp", "src", "gguf-py"))
    from gguf import GGUFReader  # the reader vendored with the llama.cpp source

    bits = weights = 0
    types = {}
    for t in GGUFReader(path).tensors:
        parts = t.name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and parts[2] in LINEARS:
            bits += 8 * int(t.n_bytes)
            weights += int(t.n_elements)
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return bits / weights, types


class Bench:
    def __init__(self, args):
        self.a = args
        self.work = os.path.abspath(args.work)
        os.makedirs(self.work, exist_ok=True)
        self.env = dict(os.environ, OMP_WAIT_POLICY="passive")
        self.path = os.path.join(ROOT, "bench", "results", f"peers-{machine()['host']}.json")
        self.result = {"runs": []}
        if os.path.exists(self.path):
            self.result = json.load(open(self.path))
        self.redo = set(filter(None, args.redo.split(",")))
        # The tree the run was started from: later commits while it runs do not change its binary.
        self.commit = git_commit()

    def done(self, name):
        return name not in self.redo and any(r["name"] == name for r in self.result["runs"])

    def reload(self):
        if os.path.exists(self.path):
            self.result = json.load(open(self.path))

    def save(self, run_entry):
        self.reload()  # the llama and tool halves may run at once: keep each other's runs
        run_entry = dict(run_entry, commit=self.commit)
        runs = [r for r in self.result["runs"] if r["name"] != run_entry["name"]] + [run_entry]
        self.result.update({
            "benchmark": "peers", "commit": self.commit, "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "settings": {"model": rel(self.a.model), "calib": rel(self.a.calib),
                         "calib_samples": self.a.calib_samples, "seq_len": self.a.seq_len,
                         "eval_windows": self.a.eval_windows, "texts": TEXTS,
                         "ranks": self.a.ranks},
            "runs": runs})
        with open(self.path, "w") as f:
            json.dump(self.result, f, indent=1)
            f.write("\n")

    def evaluate(self, model):
        out = {}
        for key, name in TEXTS.items():
            text = os.path.join(self.a.text_dir, name)
            r = run([self.a.bin, "eval", "--model", model, "--text", text, "--seq-len",
                     self.a.seq_len, "--max-windows", self.a.eval_windows, "--json", "--comm",
                     "none"], capture_output=True, text=True, env=self.env)
            out[key] = json.loads(r.stdout)["perplexity"]
        return out

    def llama(self):
        bin_dir = subprocess.check_output([os.path.join(ROOT, "scripts", "build_llama_cpp.sh")],
                                          text=True).strip()
        env = dict(self.env, LD_LIBRARY_PATH=bin_dir)
        f32 = os.path.join(self.work, "model-f32.gguf")
        if not os.path.exists(f32):
            run([os.path.join(bin_dir, "llama-quantize"), "--allow-requantize", self.a.model,
                 f32 + ".tmp", "F32"], env=env, capture_output=True)
            os.replace(f32 + ".tmp", f32)
        if not self.done("full precision"):
            self.save({"name": "full precision", "tool": "-", "bits": 32.0,
                       "perplexity": self.evaluate(f32)})
        imatrix = os.path.join(self.work, "imatrix.gguf")
        if not os.path.exists(imatrix):
            # The calibration document and token count of the skim runs (llama-imatrix takes
            # consecutive windows from the start where skim draws them at random).
            run([os.path.join(bin_dir, "llama-imatrix"), "-m", f32, "-f", self.a.calib, "-c",
                 self.a.seq_len, "--chunks", self.a.calib_samples, "-t", os.cpu_count(), "-o",
                 imatrix + ".tmp.gguf", "--no-ppl"], env=env, capture_output=True)
            os.replace(imatrix + ".tmp.gguf", imatrix)
        for recipe in RECIPES:
            for with_imatrix in (False, True):
                name = f"llama.cpp {recipe}" + (" imatrix" if with_imatrix else "")
                if self.done(name):
                    continue
                out = os.path.join(self.work, recipe + ("-imatrix" if with_imatrix else "") +
                                   ".gguf")
                cmd = [os.path.join(bin_dir, "llama-quantize"), "--token-embedding-type", "f32",
                       "--output-tensor-type", "f32"]
                cmd += ["--imatrix", imatrix] if with_imatrix else []
                t0 = time.time()
                run(cmd + [f32, out, recipe, os.cpu_count()], env=env, capture_output=True)
                seconds = time.time() - t0
                bits, types = gguf_linear_bits(out)
                self.save({"name": name, "tool": "llama.cpp", "method": recipe,
                           "imatrix": with_imatrix, "bits": bits, "tensor_types": types,
                           "quantize_seconds": seconds, "perplexity": self.evaluate(out)})
                os.remove(out)

    def quantize(self, name, method, bits, extra):
        if self.done(name):
            return
        out = os.path.join(self.work, name)
        cmd = [self.a.bin, "quantize", "--model", self.a.model, "--method", method, "--bits",
               bits, "--calib", self.a.calib, "--calib-samples", self.a.calib_samples,
               "--calib-seq-len", self.a.seq_len, "--out", out, "--progress", "none",
               "--overwrite"] + extra
        if self.a.ranks > 1:
            cmd = ["mpirun", "-np", self.a.ranks, "--oversubscribe", "--allow-run-as-root",
                   "--bind-to", "none"] + cmd + ["--comm", "mpi"]
        t0 = time.time()
        run(cmd, env=self.env)
        seconds = time.time() - t0
        report = json.load(open(os.path.join(out, "report.json")))
        linears = [lin for layer in report["layers"] for lin in layer["linears"]]
        phases = {k: sum(lin["seconds"][k] for lin in linears)
                  for k in ("error_table", "allocation", "kmeans", "scale")}
        self.save({"name": name, "tool": "skim-dist", "method": method, "options": extra,
                   "bits_option": bits, "bits": report["average_bits"],
                   "quantize_seconds": seconds, "perplexity": self.evaluate(out),
                   "bits_histogram": report.get("bits_histogram"),
                   "grid_rows": sum(lin.get("grid_rows", 0) for lin in linears),
                   "linear_seconds": phases})
        shutil.rmtree(out)

    def tool(self):
        for name, b in GPTQ.items():
            self.quantize(name, "gptq", b, ["--group-size", "128"])
        for variant in filter(None, self.a.skim.split(",")):
            spec, options = SKIM[variant]
            self.reload()  # a llama half running beside this one may have added runs
            peers = []  # peers' bit counts; one run for counts within 0.05 of each other
            for b in sorted({int(r["bits"] * 100 + 1e-6) / 100 for r in self.result["runs"]
                             if r["tool"] == "llama.cpp" or r["name"] in GPTQ}):
                if not peers or b - peers[-1] > 0.05:
                    peers.append(b)
            points = set()
            for p in spec.split(","):
                points.update(peers if p == "peers" else [float(p)])
            for b in sorted(points):
                self.quantize(f"{variant} @{b:g}", "skim", b, options)
        for name, (method, b, options) in OTHERS.items() if self.a.others else ():
            self.quantize(name, method, b, options)


def gap(run, fp, text):
    return run["perplexity"][text] - fp[text]


def write_report(result, doc, plot):
    """The tables and the plot of docs/RESULTS.md "Against llama.cpp and GPTQ", between markers
    (the rest of the page is left as it is)."""
    runs = result["runs"]
    fp = next(r for r in runs if r["name"] == "full precision")["perplexity"]
    st = result["settings"]
    lines = [
        "<!-- peers:begin (bench/peers/run_peers.py writes this section) -->",
        "## Against llama.cpp and GPTQ",
        "",
        f"`bench/peers/run_peers.py`, `bench/results/{os.path.basename(result['path'])}`: "
        f"{st['model']}, calibrated on {st['calib_samples']} x {st['seq_len']} tokens of "
        f"`{st['calib']}` (llama-imatrix: the first {st['calib_samples']} windows of "
        f"{st['seq_len']}; skim-dist: {st['calib_samples']} windows drawn at random, seed 0), "
        f"evaluated by `skim-dist eval` on the first {st['eval_windows']} windows of "
        f"{st['seq_len']} tokens of a close text ({st['texts']['close']}, another novel of the "
        f"period) and a far one ({st['texts']['far']}). Bits: stored bits per weight of the "
        "decoder linears, everything counted (llama.cpp: block scales and mins from the tensor "
        "types; skim: labels, LUTs, row widths, scales; gptq/rtn: codes, fp16 scale and zero "
        "per group of 128; slim: the same with each group's codes at its width, plus 8 bits per "
        "group width). Embedding and head stay F32 in every file. gap = perplexity - full "
        f"precision; latest run at commit `{result['commit'][:12]}` (each run's commit is in "
        f"the result file; runs without one are from `3bb6a6bf2788` or earlier), "
        f"{result['machine']['cpu']}, {result['date'][:10]}.",
        "",
        "| run | bits | close | gap | far | gap | tensor types |",
        "|---|---|---|---|---|---|---|",
        f"| full precision | 32 | {fp['close']:.3f} | - | {fp['far']:.3f} | - | F32 |",
    ]
    for r in sorted((r for r in runs if r["name"] != "full precision"),
                    key=lambda r: (r["bits"], r["name"])):
        types = ", ".join(f"{k} {v}" for k, v in sorted(r.get("tensor_types", {}).items()))
        lines.append(f"| {r['name']} | {r['bits']:.3f} | {r['perplexity']['close']:.3f} | "
                     f"{gap(r, fp, 'close'):.3f} | {r['perplexity']['far']:.3f} | "
                     f"{gap(r, fp, 'far'):.3f} | {types} |")
    # skim (best variant at that point) against llama.cpp with its importance matrix.
    lines += ["", "Gap ratio skim / peer at the peer's bits (target: at most 0.5 against "
              "llama.cpp with imatrix, 0.25 against gptq w3 g128):", "",
              "| peer | bits | skim run | close ratio | far ratio |", "|---|---|---|---|---|"]
    for peer in sorted((r for r in runs if (r["tool"] == "llama.cpp" and r.get("imatrix"))
                        or r["name"] in GPTQ), key=lambda r: r["bits"]):
        point = int(peer["bits"] * 100 + 1e-6) / 100
        mine = [r for r in runs if r["tool"] == "skim-dist" and r["method"] == "skim"
                and point - 0.05 <= r["bits_option"] <= point + 1e-9]
        if not mine:
            continue
        best = min(mine, key=lambda r: gap(r, fp, "close") + gap(r, fp, "far"))
        lines.append(f"| {peer['name']} | {peer['bits']:.3f} | {best['name']} | "
                     f"{gap(best, fp, 'close') / gap(peer, fp, 'close'):.2f} | "
                     f"{gap(best, fp, 'far') / gap(peer, fp, 'far'):.2f} |")
    lines += ["", f"![perplexity against bits]({os.path.relpath(plot, os.path.dirname(doc))})",
              "", "<!-- peers:end -->"]
    text = open(doc).read()
    begin, end = text.find("<!-- peers:begin"), text.find("<!-- peers:end -->")
    section = "\n".join(lines)
    if begin >= 0 and end > begin:
        text = text[:begin] + section + text[end + len("<!-- peers:end -->"):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(doc, "w") as f:
        f.write(text)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    groups = {
        "llama.cpp": lambda r: r["tool"] == "llama.cpp" and not r.get("imatrix"),
        "llama.cpp + imatrix": lambda r: r["tool"] == "llama.cpp" and r.get("imatrix"),
        "gptq / rtn g128": lambda r: r.get("method") in ("gptq", "rtn"),
        "kmeans": lambda r: r.get("method") == "kmeans",
    }
    for variant in SKIM:
        groups[variant] = lambda r, v=variant: r["name"].startswith(v + " @")
    for ax, text_key in zip(axes, ("close", "far")):
        for label, pick in groups.items():
            pts = sorted((r["bits"], r["perplexity"][text_key]) for r in runs if pick(r))
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label, linestyle="-" if "skim" in label
                        else "none")
        ax.axhline(fp[text_key], color="gray", linestyle="--", label="full precision")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("stored bits per weight (decoder linears, all overhead)")
        ax.set_ylabel("perplexity")
        ax.set_title(f"{text_key}: {st['texts'][text_key]}")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(plot, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_smollm2_arguments(p)
    p.add_argument("--calib-samples", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--eval-windows", type=int, default=16)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--skim", default=",".join(SKIM), help="skim variants to run")
    p.add_argument("--others", action=argparse.BooleanOptionalAction, default=True,
                   help="also the tool's rtn and kmeans baselines")
    p.add_argument("--redo", default="", help="comma-separated run names to run again")
    p.add_argument("--only", choices=["llama", "tool"], help="one half of the comparison")
    p.add_argument("--work", default=os.path.join(ROOT, "build-peers"))
    p.add_argument("--report-only", action="store_true",
                   help="only rewrite docs/RESULTS.md and the plot from the result file")
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "RESULTS.md"))
    p.add_argument("--plot", default=os.path.join(ROOT, "docs", "img", "peers.png"))
    args = p.parse_args()
    bench = Bench(args)
    if args.report_only:
        bench.result["path"] = bench.path
        write_report(bench.result, args.doc, args.plot)
        return 0
    if args.only != "tool":
        bench.llama()
    if args.only != "llama":
        bench.tool()
    bench.reload()
    bench.result["path"] = bench.path
    write_report(bench.result, args.doc, args.plot)
    print(bench.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
