#!/usr/bin/env bash
# End-to-end tests of `skim-dist quantize` on a tiny random model (tests/pipeline/make_tiny_model).
#   quantize_e2e.sh SCENARIO SKIM_DIST MAKE_TINY_MODEL [MPIEXEC]
# Scenarios:
#   methods   every method writes a complete folder that eval reads; bits within budget
#   ranks     1, 2 and 4 ranks write byte-identical models (layer and global allocation)
#   resume    a run killed at the second layer's checkpoint, resumed, writes the same bytes as an
#             uninterrupted run; a changed option refuses the checkpoint
#   failure   one failing rank ends a 2-rank job within 30 s, every rank non-zero
#   smollm2   the real SmolLM2-135M at 3 bits on 2 ranks (slow): bits within budget, perplexity
#             after quantization finite and within 3x of the full-precision perplexity
set -euo pipefail
scenario=$1 bin=$2 maker=$3 mpiexec=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=passive

fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "$scenario" != smollm2 ]; then "$maker" "$work/model" 3; fi
for i in $(seq 1 300); do
  echo "Line $i: the quick brown fox jumps over the lazy dog, $((i * 7919 % 1000)) times."
done > "$work/calib.txt"
for i in $(seq 1 200); do
  echo "Another text $i, with other words: $((i * 104729 % 997)) pears and apples."
done > "$work/eval.txt"

common=(--model "$work/model" --calib "$work/calib.txt" --calib-samples 8 --calib-seq-len 64
        --progress none)

# Byte comparison of two output folders: every model file (report.json holds times and differs).
same_model() {
  local a=$1 b=$2
  (cd "$a" && find . -type f ! -name report.json | sort) > "$work/list_a"
  (cd "$b" && find . -type f ! -name report.json | sort) > "$work/list_b"
  cmp -s "$work/list_a" "$work/list_b" || fail "$a and $b hold different files"
  while read -r f; do
    cmp -s "$a/$f" "$b/$f" || fail "$a/$f and $b/$f differ"
  done < "$work/list_a"
}

mpi() {
  local np=$1; shift
  "$mpiexec" -np "$np" --oversubscribe --allow-run-as-root --bind-to none "$@"
}

case "$scenario" in
  methods)
    for m in "skim 3" "skim 2.5" "kmeans 3" "gptq 3" "rtn 4"; do
      set -- $m
      out="$work/out-$1-$2"
      "$bin" quantize "${common[@]}" --method "$1" --bits "$2" --out "$out" --comm none
      for f in skim.json config.json tokenizer.json model-dense.safetensors report.json \
               layers/layer-00000.safetensors layers/layer-00002.safetensors; do
        [ -s "$out/$f" ] || fail "$m: $out/$f missing"
      done
      [ ! -e "$out.partial" ] || fail "$m: work folder left behind"
      python3 - "$out/report.json" "$1" "$2" <<'PY' || fail "$m: report check"
import json, sys
r = json.load(open(sys.argv[1])); method, bits = sys.argv[2], float(sys.argv[3])
assert r["options"]["method"] == method
assert len(r["layers"]) == 3
if method == "skim":
    # every stored bit counted, the budget never exceeded
    assert r["average_bits"] <= bits + 1e-12, r["average_bits"]
    assert r["average_bits"] > bits - 0.25, r["average_bits"]
    for layer in r["layers"]:
        for lin in layer["linears"]:
            assert lin["average_bits"] <= bits + 1e-12, lin
assert r["stored_bits"] == sum(l["stored_bits"] for layer in r["layers"] for l in layer["linears"])
assert 0 <= r["mean_relative_error"] < 1, r["mean_relative_error"]
assert all(m > 0 for m in r["peak_rss_mb"])
PY
      "$bin" eval --model "$out" --text "$work/eval.txt" --seq-len 64 --json --comm none \
        > "$work/eval.json" || fail "$m: eval of the packed folder"
      python3 -c "import json,math,sys; p=json.load(open(sys.argv[1]))['perplexity']; sys.exit(0 if math.isfinite(p) and p > 1 else 1)" \
        "$work/eval.json" || fail "$m: perplexity not finite"
    done
    # An existing output folder is refused without --overwrite (exit 2).
    set +e
    "$bin" quantize "${common[@]}" --bits 3 --out "$work/out-skim-3" --comm none 2>"$work/err"
    rc=$?
    set -e
    [ "$rc" -eq 2 ] || fail "existing output: exit $rc, expected 2"
    grep -q "exists" "$work/err" || fail "existing output: message $(cat "$work/err")"
    ;;
  ranks)
    for alloc in layer global; do
      "$bin" quantize "${common[@]}" --bits 2.5 --allocation "$alloc" --out "$work/np1-$alloc" \
        --comm none
      mpi 2 "$bin" quantize "${common[@]}" --bits 2.5 --allocation "$alloc" \
        --out "$work/np2-$alloc" --comm mpi
      mpi 4 "$bin" quantize "${common[@]}" --bits 2.5 --allocation "$alloc" \
        --out "$work/np4-$alloc" --comm mpi
      same_model "$work/np1-$alloc" "$work/np2-$alloc"
      same_model "$work/np1-$alloc" "$work/np4-$alloc"
    done
    mpi 2 "$bin" quantize "${common[@]}" --bits 3 --propagation quantized --out "$work/np2-q" \
      --comm mpi
    "$bin" quantize "${common[@]}" --bits 3 --propagation quantized --out "$work/np1-q" --comm none
    same_model "$work/np1-q" "$work/np2-q"
    ;;
  resume)
    for alloc in layer global; do
      "$bin" quantize "${common[@]}" --bits 3 --allocation "$alloc" --out "$work/full-$alloc" \
        --comm none
      set +e
      SKIM_FAULT_INJECT=rank=0,at=checkpoint,hit=2 "$bin" quantize "${common[@]}" --bits 3 \
        --allocation "$alloc" --out "$work/cut-$alloc" --comm none 2>"$work/err"
      rc=$?
      set -e
      [ "$rc" -ne 0 ] || fail "$alloc: the injected fault did not stop the run"
      [ ! -e "$work/cut-$alloc" ] || fail "$alloc: a killed run left a final-looking output"
      [ -d "$work/cut-$alloc.partial" ] || fail "$alloc: no checkpoint left"
      # A changed option refuses the checkpoint, naming it.
      set +e
      "$bin" quantize "${common[@]}" --bits 3 --seed 5 --allocation "$alloc" \
        --out "$work/cut-$alloc" --resume --comm none 2>"$work/err"
      rc=$?
      set -e
      [ "$rc" -eq 2 ] || fail "$alloc: changed option resumed (exit $rc)"
      grep -q "fingerprint" "$work/err" || fail "$alloc: message $(cat "$work/err")"
      "$bin" quantize "${common[@]}" --bits 3 --allocation "$alloc" --out "$work/cut-$alloc" \
        --resume --comm none
      same_model "$work/full-$alloc" "$work/cut-$alloc"
      python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['resumed']" \
        "$work/cut-$alloc/report.json" || fail "$alloc: report does not say resumed"
    done
    ;;
  failure)
    start=$(date +%s)
    set +e
    SKIM_FAULT_INJECT=rank=1,at=quantize_rows timeout 60 \
      "$mpiexec" -np 2 --oversubscribe --allow-run-as-root --bind-to none \
      "$bin" quantize "${common[@]}" --bits 3 --out "$work/failed" --comm mpi 2>"$work/err"
    rc=$?
    set -e
    elapsed=$(( $(date +%s) - start ))
    [ "$rc" -ne 0 ] || fail "the job succeeded despite a failing rank"
    [ "$rc" -ne 124 ] || fail "the job hung (killed by timeout)"
    [ "$elapsed" -le 30 ] || fail "the job took ${elapsed}s to stop"
    grep -q ":1: error: injected fault at stage 'quantize_rows'" "$work/err" \
      || fail "message: $(cat "$work/err")"
    [ ! -e "$work/failed" ] || fail "a failed job left a final-looking output"
    ;;
  smollm2)
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    model="$root/data/SmolLM2-135M-Instruct.Q4_1.gguf"
    [ -s "$model" ] || fail "$model missing: run scripts/fetch_data.sh"
    launcher=("$bin")
    comm=none
    if [ -n "$mpiexec" ]; then
      launcher=("$mpiexec" -np 2 --oversubscribe --allow-run-as-root --bind-to none "$bin")
      comm=mpi
    fi
    "${launcher[@]}" quantize --model "$model" --bits 3 --calib "$root/data/text/emma.txt" \
      --calib-samples 8 --calib-seq-len 256 --out "$work/smol3" --progress none --comm "$comm"
    evaluate() {
      "$bin" eval --model "$1" --text "$root/data/text/prideprejudice.txt" --seq-len 256 \
        --max-windows 4 --json --comm none
    }
    evaluate "$model" > "$work/fp.json"
    evaluate "$work/smol3" > "$work/q.json"
    python3 - "$work/fp.json" "$work/q.json" "$work/smol3/report.json" <<'PY' || fail "smollm2 check"
import json, math, sys
fp = json.load(open(sys.argv[1]))["perplexity"]
q = json.load(open(sys.argv[2]))["perplexity"]
r = json.load(open(sys.argv[3]))
print(f"SmolLM2: full precision {fp:.3f}, skim 3 bits {q:.3f}, {r['average_bits']:.4f} bits")
assert r["average_bits"] <= 3.0 + 1e-12
assert math.isfinite(q) and fp < q < 3 * fp
PY
    ;;
  *) fail "unknown scenario $scenario" ;;
esac
echo "PASS: $scenario"
