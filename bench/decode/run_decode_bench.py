#!/usr/bin/env python3
"""Decode benchmark: skim-dist generate on packed folders against llama.cpp's llama-bench (tg)
on GGUF files, same machine, same thread count, one run; plus the machine's memory bandwidth
(bench_stream triad) so that tokens/s can be read as GB/s of weights. Writes
bench/results/decode-<host>.json.

    python3 bench/decode/run_decode_bench.py --skim-dist build/launch/skim-dist \
        --stream build/bench/decode/bench_stream --packed out/smollm2-skim-3bit ... \
        --llama-bin "$(scripts/build_llama_cpp.sh)" --gguf q4_0.gguf ...
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
from bench_info import machine, write_result  # noqa: E402

PROMPT = "The history of the city begins"


def rel(path):
    """A path inside the repository relative to it; outside it, the name alone (no machine
    paths in results)."""
    full = os.path.abspath(path)
    inside = full.startswith(ROOT + os.sep)
    return os.path.relpath(full, ROOT) if inside else os.path.basename(full)


def packed_weight_bytes(folder):
    """Bytes one decode step reads: the packed linears (stored bits, all overhead) plus the
    fp32 embedding-sized head that stays dense (tied head: the embedding table)."""
    with open(os.path.join(folder, "report.json")) as f:
        report = json.load(f)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    head = 4 * config["vocab_size"] * config["hidden_size"]
    return report["stored_bits"] / 8 + head, report["stored_bits"] / report["quantized_weights"]


def skim_decode(binary, folder, tokens, threads, reps):
    runs = []
    for _ in range(reps):
        out = subprocess.run([binary, "generate", "--model", folder, "--prompt", PROMPT,
                              "--tokens", str(tokens), "--threads", str(threads), "--json"],
                             capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1])["decode_tokens_per_second"])
    weight_bytes, bits = packed_weight_bytes(folder)
    tps = statistics.median(runs)
    return {"tool": "skim-dist", "model": rel(folder), "bits_per_weight": bits,
            "decode_tokens_per_second": tps, "runs": runs,
            "weight_bytes_per_token": weight_bytes,
            "weight_gb_per_second": weight_bytes * tps / 1e9}


def llama_decode(bin_dir, gguf, tokens, threads, reps):
    env = dict(os.environ, LD_LIBRARY_PATH=bin_dir)
    out = subprocess.run([os.path.join(bin_dir, "llama-bench"), "-m", gguf, "-p", "0", "-n",
                          str(tokens), "-t", str(threads), "-r", str(reps), "-o", "json"],
                         capture_output=True, text=True, check=True, env=env).stdout
    r = json.loads(out)[0]
    tps = r["avg_ts"]
    return {"tool": "llama.cpp", "model": rel(gguf), "model_type": r.get("model_type"),
            # The whole file (fp32 embedding included) per parameter; the decoder linears' bits
            # follow from the type (Q4_0: 4.5).
            "file_bits_per_parameter": 8 * r["model_size"] / r["model_n_params"],
            "decode_tokens_per_second": tps, "runs": r.get("samples_ts"),
            "weight_bytes_per_token": r["model_size"],
            "weight_gb_per_second": r["model_size"] * tps / 1e9,
            "build_commit": r.get("build_commit")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skim-dist", required=True)
    ap.add_argument("--stream", required=True, help="the bench_stream executable")
    ap.add_argument("--packed", nargs="*", default=[], help="skim-dist quantized folders")
    ap.add_argument("--llama-bin", help="folder with llama-bench (scripts/build_llama_cpp.sh)")
    ap.add_argument("--gguf", nargs="*", default=[], help="GGUF files for llama-bench")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None, help="default bench/results/decode-<host>.json")
    args = ap.parse_args()

    info = machine()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    stream = json.loads(subprocess.run([args.stream], capture_output=True, text=True, check=True,
                                       env=env).stdout)
    results = []
    # Interleaved, so that a change of load on the machine hits both tools alike.
    for i in range(max(len(args.packed), len(args.gguf))):
        if i < len(args.packed):
            results.append(skim_decode(args.skim_dist, args.packed[i], args.tokens, args.threads,
                                       args.reps))
            print(json.dumps(results[-1]), file=sys.stderr)
        if i < len(args.gguf):
            results.append(llama_decode(args.llama_bin, args.gguf[i], args.tokens, args.threads,
                                        args.reps))
            print(json.dumps(results[-1]), file=sys.stderr)
    for r in results:
        r["fraction_of_triad_bandwidth"] = r["weight_gb_per_second"] / stream["triad_gb_per_s"]
    write_result("decode", {"load_average_after": os.getloadavg(),
                            "settings": {"tokens": args.tokens, "threads": args.threads,
                                         "reps": args.reps, "prompt": PROMPT},
                            "stream": stream, "results": results}, info, args.out)


if __name__ == "__main__":
    main()
