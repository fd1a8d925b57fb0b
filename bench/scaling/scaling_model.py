#!/usr/bin/env python3
"""Scaling model: predicted per-layer quantize time and parallel efficiency of skim on LLaMA-2-7B
and 70B shapes at 8, 64 and 512 ranks, from the per-row and per-token costs measured by
run_scaling.py and the bytes each collective moves over the links assumed below.

  bench/scaling/scaling_model.py bench/results/scaling-<host>.json [--plot docs/img/scaling.png]

Writes bench/results/scaling-model-<host>.json (the inputs, the fitted costs, every prediction).

What a rank does per decoder layer (docs/ARCHITECTURE.md): its share of the calibration samples
through the layer (forward) and their x^T x (Hessian), an int64 all-reduce of the four Hessians,
then for each of the seven linears in turn its block of rows (whole units of 96 rows) through
skim: error tables (gathered), K-means, 120 Adam steps whose column gradient is summed over the
ranks in fixed order (a chain through the ranks, then a broadcast), the LUT refinement, and the
packed rows gathered to rank 0.
"""
import argparse
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROW_UNIT = 96
ADAM_STEPS = 120
ORDERED_SUMS_PER_LINEAR = 4  # the errors that choose between candidates (one value per row)
CALIB_SAMPLES, CALIB_SEQ = 128, 2048  # the calibration people publish with (GPTQ, AWQ)

# Links, per GPU and direction. NVLink 4 (H100 SXM): 900 GB/s per GPU in both directions
# together (NVIDIA H100 datasheet, nvidia.com/en-us/data-center/h100); NCCL's all-reduce bus
# bandwidth within an 8-GPU node is about 360-450 GB/s: 400 GB/s assumed. Between nodes: one
# 400 Gb/s InfiniBand NDR adapter per GPU (NVIDIA DGX H100 datasheet: 8x ConnectX-7), 50 GB/s.
# Latency per message: 3 us within a node, 6 us across nodes (nccl-tests small-message times).
GPUS_PER_NODE = 8
NVLINK = {"bandwidth": 400e9, "latency": 3e-6}
INFINIBAND = {"bandwidth": 50e9, "latency": 6e-6}

SHAPES = {
    "llama-2-7b": {"hidden": 4096, "intermediate": 11008, "kv": 4096, "layers": 32},
    "llama-2-70b": {"hidden": 8192, "intermediate": 28672, "kv": 1024, "layers": 80},
}


def linears(s):
    h, f, kv = s["hidden"], s["intermediate"], s["kv"]
    return [("q", h, h), ("k", kv, h), ("v", kv, h), ("o", h, h), ("gate", f, h), ("up", f, h),
            ("down", h, f)]


def fit_row_cost(runs):
    """Seconds per row of a linear as a * cols^2 + b * cols (least squares on the measured
    1-rank linears, relative error: every shape counts alike)."""
    pts = [(x["cols"], x["seconds"] / x["rows"]) for r in runs for x in r["linears"]]
    # Normal equations of min sum ((a c^2 + b c) / y - 1)^2.
    s11 = s12 = s22 = t1 = t2 = 0.0
    for c, y in pts:
        u, v = c * c / y, c / y
        s11 += u * u
        s12 += u * v
        s22 += v * v
        t1 += u
        t2 += v
    det = s11 * s22 - s12 * s12
    a = (t1 * s22 - t2 * s12) / det
    b = (s11 * t2 - s12 * t1) / det
    worst = max(abs((a * c * c + b * c) / y - 1) for c, y in pts)
    return a, b, worst, len(pts)


def layer_params(hidden, intermediate, kv):
    return 2 * hidden * hidden + 2 * kv * hidden + 3 * hidden * intermediate


def hessian_widths(hidden, intermediate):
    return [hidden, hidden, hidden, intermediate]  # q/k/v input, o input, gate/up input, down input


def row_starts(rows, ranks):
    """quant::row_block: rank r starts at the 96-row boundary nearest r * rows / ranks."""
    starts = [min(rows, (2 * r * rows + ranks * ROW_UNIT - 1) // (2 * ranks * ROW_UNIT) * ROW_UNIT)
              for r in range(ranks)]
    return starts + [rows]


def busiest_rows(rows, ranks):
    s = row_starts(rows, ranks)
    return max(s[r + 1] - s[r] for r in range(ranks))


def link(ranks):
    return NVLINK if ranks <= GPUS_PER_NODE else INFINIBAND


def predict(shape, ranks, costs, speed):
    """Per-layer seconds by part at `ranks`, compute divided by `speed` (1: this machine's core)."""
    lk = link(ranks)
    a, b = costs["row_a"], costs["row_b"]
    h, f, kv = shape["hidden"], shape["intermediate"], shape["kv"]
    samples_per_rank = math.ceil(CALIB_SAMPLES / ranks)
    tokens = samples_per_rank * CALIB_SEQ
    forward = tokens * layer_params(h, f, kv) * costs["forward_per_param_token"] / speed
    hessian = tokens * sum(w * w for w in hessian_widths(h, f)) * costs["hessian_per_entry_token"]
    hessian /= speed
    # Ring all-reduce of int64 Hessians: 2 (P-1)/P of the bytes over the slowest link.
    hbytes = 8 * sum(w * w for w in hessian_widths(h, f))
    allreduce = 0.0 if ranks == 1 else (2 * (ranks - 1) / ranks * hbytes / lk["bandwidth"] +
                                        2 * (ranks - 1) * lk["latency"])
    quantize = comm = ideal = 0.0
    for _, rows, cols in linears(shape):
        per_row = (a * cols * cols + b * cols) / speed
        busiest = busiest_rows(rows, ranks)
        quantize += busiest * per_row
        ideal += rows * per_row / ranks
        if ranks > 1:
            hop = lambda nbytes: lk["latency"] + nbytes / lk["bandwidth"]
            chain = (ranks - 1) * hop(8 * (cols + 1)) + math.ceil(math.log2(ranks)) * hop(
                8 * (cols + 1))
            comm += ADAM_STEPS * chain
            comm += ORDERED_SUMS_PER_LINEAR * (ranks - 1 + math.ceil(math.log2(ranks))) * hop(8)
            comm += (rows * 4 * 8) / lk["bandwidth"] + ranks * lk["latency"]  # error tables
            comm += rows * cols * 3 / 8 / lk["bandwidth"]  # packed rows into rank 0
    total = forward + hessian + allreduce + quantize + comm
    serial = (CALIB_SAMPLES * CALIB_SEQ * (layer_params(h, f, kv) *
                                            costs["forward_per_param_token"] +
                                            sum(w * w for w in hessian_widths(h, f)) *
                                            costs["hessian_per_entry_token"]) / speed +
              sum(rows * (a * cols * cols + b * cols) / speed for _, rows, cols in linears(shape)))
    return {"ranks": ranks, "seconds_per_layer": total,
            "parts": {"forward": forward, "hessian": hessian, "hessian_allreduce": allreduce,
                      "quantize_busiest_rank": quantize, "quantize_collectives": comm},
            "quantize_balance": ideal / quantize if quantize > 0 else 1.0,
            "efficiency": serial / (ranks * total),
            "hours_whole_model": total * shape["layers"] / 3600}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("measured", help="bench/results/scaling-<host>.json")
    ap.add_argument("--plot", default=None, help="write the efficiency plot (PNG) here")
    ap.add_argument("--gpu-speed", type=float, default=300.0,
                    help="compute speed of a GPU rank relative to one core here (assumption)")
    args = ap.parse_args()
    with open(args.measured) as f:
        m = json.load(f)
    one_rank = [r for mod in m["models"].values() for r in mod["runs"] if r["ranks"] == 1]
    if not one_rank:
        sys.exit("no 1-rank run in the measurements")
    a, b, worst, n = fit_row_cost(one_rank)
    # Forward and Hessian costs per token, from the 1-rank runs (their mean over the models).
    fwd, hes = [], []
    for name, mod in m["models"].items():
        r = next(x for x in mod["runs"] if x["ranks"] == 1)
        s = mod["shape"]
        kv = s.get("kv", s["hidden"] // 2)
        tok_layers = mod["calib_samples"] * mod["calib_seq_len"] * s["layers"]
        fwd.append(r["phase_seconds"]["forward"] /
                   (tok_layers * layer_params(s["hidden"], s["intermediate"], kv)))
        hes.append(r["phase_seconds"]["hessian"] /
                   (tok_layers * sum(w * w for w in hessian_widths(s["hidden"],
                                                                  s["intermediate"]))))
    costs = {"row_a": a, "row_b": b, "row_fit_worst_relative_error": worst, "row_fit_points": n,
             "forward_per_param_token": sum(fwd) / len(fwd),
             "hessian_per_entry_token": sum(hes) / len(hes)}
    predictions = {}
    for speed_name, speed in (("cpu_core_here", 1.0), ("gpu", args.gpu_speed)):
        for model, shape in SHAPES.items():
            predictions.setdefault(speed_name, {})[model] = [
                predict(shape, p, costs, speed) for p in (1, 8, 64, 512)]
    out = {"measured": os.path.relpath(os.path.abspath(args.measured), ROOT),
           "commit": m.get("commit"), "machine": m.get("machine"),
           "assumptions": {"row_unit": ROW_UNIT, "adam_steps": ADAM_STEPS,
                           "calibration": f"{CALIB_SAMPLES} x {CALIB_SEQ} tokens",
                           "gpus_per_node": GPUS_PER_NODE, "nvlink": NVLINK,
                           "infiniband": INFINIBAND, "gpu_speed": args.gpu_speed},
           "costs": costs, "predictions": predictions}
    host = (m.get("machine") or {}).get("host", "host")
    path = os.path.join(ROOT, "bench", "results", f"scaling-model-{host}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for speed_name, per_model in predictions.items():
        for model, rows in per_model.items():
            for p in rows:
                print(f"{speed_name:14s} {model:12s} {p['ranks']:4d} ranks: "
                      f"{p['seconds_per_layer']:10.1f} s/layer, efficiency {p['efficiency']:.2f}, "
                      f"balance {p['quantize_balance']:.2f}")
    print(f"wrote {path}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for speed_name, style in (("cpu_core_here", "-"), ("gpu", "--")):
            for model, color in (("llama-2-7b", "tab:blue"), ("llama-2-70b", "tab:red")):
                rows = predictions[speed_name][model][1:]
                ax.plot([p["ranks"] for p in rows], [p["efficiency"] for p in rows], style,
                        color=color, marker="o",
                        label=f"{model}, {'CPU core' if speed_name == 'cpu_core_here' else 'GPU'}")
        ax.set_xscale("log", base=2)
        ax.set_xticks([8, 64, 512])
        ax.set_xticklabels(["8", "64", "512"])
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("ranks")
        ax.set_ylabel("parallel efficiency")
        ax.set_title("skim quantize, predicted (row units of 96, linears in turn)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
