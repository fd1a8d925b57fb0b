#!/usr/bin/env python3
"""Pictures of a quantized folder's report.json, and of the quality benchmark.

  scripts/plot_report.py DIR [--out FOLDER] [--bench bench/results/smollm2-vm.json]

Writes into FOLDER (default DIR/plots):
  bits.png       the bit-width of every row of every linear: layers x rows, one panel per linear
  error.png      relative error tr(dW H dW^T) / tr(W H W^T) of every linear, by layer
  histogram.png  rows by bit-width over the whole model
  quality.png    (with --bench) perplexity against average bits, one line per method
Needs matplotlib (Debian: python3-matplotlib, installed by scripts/setup.sh).
"""
import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

KINDS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def linear_table(report, field):
    """[layer][kind] of a per-linear field, in the report's layer order."""
    table = []
    for layer in report["layers"]:
        by_kind = {lin["name"].rsplit(".", 1)[-1]: lin for lin in layer["linears"]}
        table.append([by_kind[k][field] for k in KINDS])
    return table


def safetensors_u8(path, names):
    """The U8 tensors `names` of a safetensors file (8-byte header length, JSON header, data)."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name in names:
        if name in header:
            begin, end = header[name]["data_offsets"]
            out[name] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype=np.uint8)
    return out


def row_bits(folder, report):
    """bits[kind] = [layers, rows] array of each row's bit-width, from the packed layer files
    (docs/FORMAT.md: tensor NAME.lut.bits of a LUT layer; a uniform layer's rows share its bits)."""
    bits = {k: [] for k in KINDS}
    for layer in report["layers"]:
        i = layer["layer"]
        names = {lin["name"].rsplit(".", 1)[-1]: lin for lin in layer["linears"]}
        stored = safetensors_u8(Path(folder) / "layers" / f"layer-{i:05d}.safetensors",
                                [names[k]["name"] + ".lut.bits" for k in KINDS])
        for k in KINDS:
            lin = names[k]
            b = stored.get(lin["name"] + ".lut.bits")
            if b is None:  # uniform: one width for all rows
                (width,) = [int(w) for w in lin["bits_histogram"]]
                b = np.full(lin["rows"], width, dtype=np.uint8)
            bits[k].append(b)
    return {k: np.stack(v) for k, v in bits.items()}


def plot_bits(folder, report, path):
    bits = row_bits(folder, report)
    lo = min(int(b.min()) for b in bits.values())
    hi = max(int(b.max()) for b in bits.values())
    widths = [bits[k].shape[1] for k in KINDS]
    fig, axes = plt.subplots(1, len(KINDS), figsize=(12, 4.5), sharey=True,
                             gridspec_kw={"width_ratios": widths})
    cmap = plt.get_cmap("viridis", hi - lo + 1)
    for ax, k in zip(axes, KINDS):
        image = ax.imshow(bits[k], aspect="auto", cmap=cmap, vmin=lo - 0.5, vmax=hi + 0.5,
                          interpolation="nearest")
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("row", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("layer")
    fig.suptitle(f"bits of every row ({report['options']['method']}, "
                 f"{report['average_bits']:.3f} bits per weight on average, all overhead counted)")
    fig.colorbar(image, ax=axes, ticks=range(lo, hi + 1), label="bits of the row")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_error(report, path):
    errors = linear_table(report, "relative_error")
    fig, ax = plt.subplots(figsize=(7, 4))
    layers = range(len(errors))
    for k, kind in enumerate(KINDS):
        ax.plot(layers, [row[k] for row in errors], marker=".", label=kind)
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("tr(dW H dW^T) / tr(W H W^T)")
    ax.set_title("relative error of each linear")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_histogram(report, path):
    hist = {int(b): n for b, n in report["bits_histogram"].items()}
    total = sum(hist.values())
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(list(hist), [100.0 * n / total for n in hist.values()])
    ax.set_xticks(sorted(hist))
    ax.set_xlabel("bits of a row")
    ax.set_ylabel("% of rows")
    ax.set_title(f"rows by bit-width ({total} rows)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_quality(bench, path):
    by_method = {}
    for run in bench["runs"]:
        name = run["method"] + (" " + " ".join(run["options"]) if run["options"] else "")
        by_method.setdefault(name, []).append((run["average_bits"], run["perplexity"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in sorted(by_method.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.axhline(bench["fp_perplexity"], color="gray", linestyle="--", label="full precision")
    ax.set_yscale("log")
    ax.set_xlabel("average stored bits per weight (all overhead counted)")
    ax.set_ylabel("perplexity (held-out text)")
    ax.set_title("perplexity against bits")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a folder written by skim-dist quantize")
    parser.add_argument("--out", help="where the PNGs go (default FOLDER/plots)")
    parser.add_argument("--bench", help="a bench/results JSON with runs of several methods")
    args = parser.parse_args()
    report_path = Path(args.folder) / "report.json"
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"plot_report: {report_path}: {e}")
    out = Path(args.out) if args.out else Path(args.folder) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    plot_bits(args.folder, report, out / "bits.png")
    plot_error(report, out / "error.png")
    plot_histogram(report, out / "histogram.png")
    written = ["bits.png", "error.png", "histogram.png"]
    if args.bench:
        plot_quality(json.loads(Path(args.bench).read_text()), out / "quality.png")
        written.append("quality.png")
    print(f"plot_report: wrote {', '.join(written)} in {out}")


if __name__ == "__main__":
    main()
