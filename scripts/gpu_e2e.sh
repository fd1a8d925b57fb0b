#!/usr/bin/env bash
# The end-to-end part of the device check (scripts/gpu_check.sh): on a random model with
# SmolLM2's linear shapes (12 of its 30 layers, hidden 576, ffn 1536; 256 byte tokens) written by
# make_tiny_model, quantize with skim and gptq on the CPU and on the GPU, evaluate every folder
# on both devices, generate on the GPU, and compare: the GPU-quantized folder's perplexity within
# 0.5% of the CPU-quantized one's, GPU eval within 0.1% of CPU eval, bits within the budget.
#   scripts/gpu_e2e.sh BIN_DIR OUT_JSON      BIN_DIR holds skim-dist and make_tiny_model
#   SKIM_E2E_DEVICE=cpu ...                  the device under test (default cuda; cpu: a dry run
#                                            of the script itself on a machine without a GPU)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin=$1/skim-dist maker=$1/make_tiny_model out=$2
device=${SKIM_E2E_DEVICE:-cuda}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$maker" "$work/model" 12 576 1536
# Calibration and evaluation texts: different documents of this repository.
cat "$root"/docs/ARCHITECTURE.md "$root"/docs/FORMAT.md > "$work/calib.txt"
cp "$root"/docs/RESULTS.md "$work/eval.txt"
common=(--model "$work/model" --calib "$work/calib.txt" --calib-samples 16 --calib-seq-len 256
        --allocation layer --progress none --comm none)
results="$work/results.jsonl"
: > "$results"
# Roles: ref on the CPU, test on $device; each folder evaluated in both roles.
dev() { if [ "$1" = ref ]; then echo cpu; else echo "$device"; fi; }
for method in skim gptq; do
  for q in ref test; do
    start=$(date +%s.%N)
    "$bin" quantize "${common[@]}" --method "$method" --bits 3 --device "$(dev $q)" \
      --out "$work/$method-$q"
    end=$(date +%s.%N)
    for e in ref test; do
      "$bin" eval --model "$work/$method-$q" --text "$work/eval.txt" --seq-len 256 \
        --max-windows 8 --json --comm none --device "$(dev $e)" > "$work/eval.json"
      python3 - "$work/$method-$q/report.json" "$work/eval.json" "$method" "$q" "$e" "$start" \
        "$end" >> "$results" <<'PY'
import json, sys
report, ev = (json.load(open(f)) for f in sys.argv[1:3])
method, q, e, start, end = sys.argv[3:8]
print(json.dumps({"method": method, "quantized": q, "evaluated": e,
                  "quantize_device": report["options"]["device"], "eval_device": ev["device"],
                  "quantize_seconds": float(end) - float(start), "bits": report["average_bits"],
                  "perplexity": ev["perplexity"], "eval_seconds": ev["seconds"]}))
PY
    done
  done
done
"$bin" generate --model "$work/skim-test" --prompt "The" --tokens 16 --json --comm none \
  --device "$device" > "$work/generate.json"
python3 - "$results" "$work/generate.json" "$out" "$device" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
gen, device = json.load(open(sys.argv[2])), sys.argv[4]
def run(m, q, e):
    return next(r for r in runs if (r["method"], r["quantized"], r["evaluated"]) == (m, q, e))
checks = {}
for m in ("skim", "gptq"):
    a, b = run(m, "ref", "ref")["perplexity"], run(m, "test", "ref")["perplexity"]
    checks[f"{m}: perplexity of the {device}-quantized folder within 0.5% of the CPU's"] = \
        abs(b - a) <= 0.005 * a
    for q in ("ref", "test"):
        a, b = run(m, q, "ref")["perplexity"], run(m, q, "test")["perplexity"]
        checks[f"{m} ({q} folder): {device} eval within 0.1% of CPU eval"] = abs(b - a) <= 0.001 * a
    checks[f"{m}: devices as asked"] = (run(m, "test", "test")["quantize_device"] == device and
                                        run(m, "test", "test")["eval_device"] == device)
checks["skim: bits within the budget"] = all(
    run("skim", q, "ref")["bits"] <= 3.0 for q in ("ref", "test"))
checks["gptq: the same bits"] = run("gptq", "ref", "ref")["bits"] == run("gptq", "test", "ref")["bits"]
checks[f"generate on {device}: 16 tokens"] = gen["device"] == device and gen["new_tokens"] == 16
result = {"model": "random, SmolLM2's linear shapes (12 layers of 576 / 1536, vocab 256)",
          "device_under_test": device, "runs": runs,
          "generate": {k: gen[k] for k in ("device", "new_tokens", "decode_tokens_per_second")},
          "checks": checks, "all_passed": all(checks.values())}
json.dump(result, open(sys.argv[3], "w"), indent=1)
for k, v in checks.items():
    print(("ok   " if v else "FAIL ") + k)
sys.exit(0 if result["all_passed"] else 1)
PY
