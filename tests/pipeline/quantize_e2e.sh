#!/usr/bin/env bash
# End-to-end tests of `skim-dist quantize` on a tiny random model (tests/pipeline/make_tiny_model).
#   quantize_e2e.sh SCENARIO SKIM_DIST MAKE_TINY_MODEL [MPIEXEC]
# Scenarios:
#   methods   every method writes a complete folder that eval reads; bits within budget;
#             inspect reads back the bits, histograms and errors the run reported; export
#             --format hf and gguf give models with the same perplexity, the GGUF checked by
#             the gguf package of PyPI; plot_report.py draws the report
#   calibration  --calib as a file, a folder or JSON Lines: one document gives the same model
#             in each form; many documents are reported; a bad line is an input error
#   ranks     1, 2, 3 and 4 ranks write byte-identical models (every method, layer and global
#             allocation, fp and quantized propagation), on a model wide enough to split linears
#   resume    a run killed at the second layer's checkpoint, resumed, writes the same bytes as an
#             uninterrupted run; a changed option refuses the checkpoint; a run killed at each
#             step of finishing is completed by --resume; a checkpoint is never wiped silently
#   failure   one failing rank ends a 2-rank job within 30 s, every rank non-zero; so do an error
#             inside an OpenMP parallel region and a rank killed with SIGKILL mid-layer
#   stop      SIGUSR1 / SIGTERM in the middle of a layer: exit 75 at the next safe point, the
#             finished linears saved, --resume writes the same bytes as an uninterrupted run
#   reshard   checkpoints resumed on another rank count (2 -> 3, 3 -> 2, 2 -> 1; a signal to one
#             rank of three stops all of them): the same bytes as an uninterrupted run
#   disk      the output on a small file system that fills during the run: a one-line error
#             naming the path, exit 3, the checkpoint intact; once space is freed, --resume
#             writes the same bytes as an uninterrupted run (root: mounts a tmpfs; else exit 77)
#   smollm2   the real SmolLM2-135M at 3 bits on 2 ranks (slow): bits within budget, perplexity
#             after quantization finite and within 3x of the full-precision perplexity
set -euo pipefail
scenario=$1 bin=$2 maker=$3 mpiexec=${4:-}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
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

# The skim-dist processes under process $1 (the ranks that mpirun started).
rank_pids() {
  local c
  for c in $(pgrep -P "$1"); do
    [ "$(ps -o comm= -p "$c")" = skim-dist ] && echo "$c"
    rank_pids "$c"
  done
  return 0
}

# Waits until every rank of the run logging to $work/err is up (rank 0 has logged the run), then
# 3 s more: into the first layers' linear tasks when each is slowed by 1 s.
wait_until_running() {
  local i
  for i in $(seq 1 120); do
    grep -q "quantize .* -> " "$work/err" 2>/dev/null && break
    sleep 0.5
  done
  sleep 3
}

# Starts "$@" in the background with every linear task slowed by 1 s, sends signal $1 to the
# process $2 ("self": the started process; "child": one of the MPI ranks under it) once the
# run is inside its first layers' linear tasks, and waits. Sets rc.
interrupted_run() {
  local sig=$1 target=$2; shift 2
  SKIM_FAULT_INJECT=rank=*,at=linear_task,delay=1 "$@" 2>"$work/err" &
  local pid=$!
  wait_until_running
  local victim=$pid
  if [ "$target" = child ]; then
    local ranks
    ranks=$(rank_pids "$pid")
    victim=${ranks%%$'\n'*}
  fi
  [ -n "$victim" ] || fail "no rank process under $pid"
  kill -s "$sig" "$victim"
  set +e
  wait "$pid"
  rc=$?
  set -e
}

# A stopped run: exit 75, a checkpoint, no final output, the message says how to go on.
check_stopped() {
  local out=$1
  [ "$rc" -eq 75 ] || fail "$out: exit $rc after the signal, expected 75: $(cat "$work/err")"
  [ ! -e "$out" ] || fail "$out: a stopped run left a final-looking output"
  [ -s "$out.partial/state.json" ] || fail "$out: no checkpoint state"
  grep -q "rerun with --resume" "$work/err" || fail "$out: message $(cat "$work/err")"
}

case "$scenario" in
  methods)
    # --version: the program and what the build has, exit 0.
    "$bin" --version > "$work/version" || fail "--version exited non-zero"
    for key in "skim-dist [0-9]" "^CUDA: " "^NCCL: " "^MPI: " "^BLAS: OpenBLAS"; do
      grep -q "$key" "$work/version" || fail "--version: no '$key' in $(cat "$work/version")"
    done
    for m in "skim 3" "skim 2.5" "skim 3.5 q8" "skim 5 d8" "kmeans 3 f16" "kmeans 3" "kmeans 3 q8" \
             "gptq 3" "rtn 4"; do
      set -- $m
      out="$work/out-$1-$2${3:+-$3}"
      "$bin" quantize "${common[@]}" --method "$1" --bits "$2" ${3:+--lut "$3"} --out "$out" \
        --comm none
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
    # global allocation (the default): one budget, every linear with its measured sensitivity
    assert r["options"]["allocation"] == "global" and r["options"]["global_weights"] == "kl"
    for layer in r["layers"]:
        for lin in layer["linears"]:
            s = lin["sensitivity"]
            assert s["kl"] > 0 and s["error"] > 0, lin
            assert abs(s["weight"] - s["kl"] / s["error"]) <= 1e-12 * s["weight"], lin
assert r["stored_bits"] == sum(l["stored_bits"] for layer in r["layers"] for l in layer["linears"])
assert 0 <= r["mean_relative_error"] < 1, r["mean_relative_error"]
assert all(m > 0 for m in r["peak_rss_mb"])
PY
      "$bin" eval --model "$out" --text "$work/eval.txt" --seq-len 64 --json --comm none \
        > "$work/eval.json" || fail "$m: eval of the packed folder"
      python3 -c "import json,math,sys; p=json.load(open(sys.argv[1]))['perplexity']; sys.exit(0 if math.isfinite(p) and p > 1 else 1)" \
        "$work/eval.json" || fail "$m: perplexity not finite"
      # inspect reads the folder back: the same bits, histograms and errors as the run reported.
      "$bin" inspect "$out" --json > "$work/inspect.json" || fail "$m: inspect"
      python3 - "$work/inspect.json" "$out/report.json" <<'PY' || fail "$m: inspect check"
import json, sys
d = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
assert d["format"] == "skim-dist" and d["method"] == r["options"]["method"]
assert abs(d["bits_per_weight"] - r["average_bits"]) < 1e-12, (d["bits_per_weight"], r["average_bits"])
assert d["bits_histogram"] == r["bits_histogram"], (d["bits_histogram"], r["bits_histogram"])
assert d["options"] == r["options"] and d["fingerprint"] == r["fingerprint"]
for dl, rl in zip(d["layers"], r["layers"], strict=True):
    for a, b in zip(dl["linears"], rl["linears"], strict=True):
        assert a["name"] == b["name"] and a["bits_histogram"] == b["bits_histogram"], (a, b)
        assert abs(a["relative_error"] - b["error"] / b["energy"]) < 1e-12, (a, b)
PY
    done
    # 8-bit LUT entries (the default, d8): at 3 bits a row stores 8 codes and a grid (64 + 32
    # bits) instead of 8 fp16 entries (128 bits, --lut f16), so kmeans saves exactly 32 bits per
    # row; every LUT layer of the file says d8 and has no fp16 codebook.
    python3 - "$work/out-kmeans-3-f16/report.json" "$work/out-kmeans-3" <<'PY' || fail "--lut d8"
import glob, json, struct, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2] + "/report.json"))
rows = sum(sum(l["bits_histogram"].values()) for layer in a["layers"] for l in layer["linears"])
assert a["stored_bits"] - b["stored_bits"] == 32 * rows, (a["stored_bits"], b["stored_bits"], rows)
assert b["options"]["lut"] == "d8" and a["options"]["lut"] == "f16"
for path in glob.glob(sys.argv[2] + "/layers/*.safetensors"):
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    layers = json.loads(header["__metadata__"]["skim.layers"])
    assert layers and all(l["entries"] == "d8" for l in layers.values()), path
    assert not any(k.endswith(".lut.codebook") for k in header), path
PY
    # q8 entries: the same bits as d8 (kmeans: the same rows and widths), every LUT layer says q8.
    python3 - "$work/out-kmeans-3" "$work/out-kmeans-3-q8" <<'PY' || fail "--lut q8"
import glob, json, struct, sys
d = json.load(open(sys.argv[1] + "/report.json")); q = json.load(open(sys.argv[2] + "/report.json"))
assert q["options"]["lut"] == "q8" and d["stored_bits"] == q["stored_bits"], (d["stored_bits"], q["stored_bits"])
for path in glob.glob(sys.argv[2] + "/layers/*.safetensors"):
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    layers = json.loads(header["__metadata__"]["skim.layers"])
    assert layers and all(l["entries"] == "q8" for l in layers.values()), path
PY
    "$bin" eval --model "$work/out-skim-5-d8" --text "$work/eval.txt" --seq-len 64 --json \
      --comm none > "$work/eval.json" || fail "--lut d8: eval of the packed folder"
    status=0
    "$bin" quantize "${common[@]}" --method gptq --bits 3 --lut q8 --out "$work/gptq-q8" \
      --comm none 2> "$work/q8.err" || status=$?
    [ "$status" -eq 2 ] && grep -q "lut q8" "$work/q8.err" \
      || fail "--lut q8 with gptq: exit $status, $(cat "$work/q8.err")"
    # Grid rows: at 5 bits on 64-column rows (a 5-bit LUT costs 4.6 bits per weight there) the
    # allocation makes grid rows, the budget holds, the folder evaluates and its report counts
    # them; a file's stored codes are only the LUT rows'. With gptq or --lut f16: exit 2.
    "$bin" quantize "${common[@]}" --bits 5 --b-max 8 --grid-rows yes --out "$work/grid" \
      --comm none || fail "--grid-rows: quantize"
    python3 - "$work/grid" <<'PY' || fail "--grid-rows: report and file check"
import json, os, struct, sys
r = json.load(open(os.path.join(sys.argv[1], "report.json")))
assert r["options"]["grid_rows"] is True and r["average_bits"] <= 5 + 1e-12, r["average_bits"]
grid = sum(lin["grid_rows"] for layer in r["layers"] for lin in layer["linears"])
assert grid > 0, grid
data = open(os.path.join(sys.argv[1], "layers", "layer-00000.safetensors"), "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
assert header["__metadata__"]["skim.format_version"] == "7"
name = "model.layers.0.self_attn.q_proj.lut."
a, b = header[name + "bits"]["data_offsets"]
widths = data[8 + n + a:8 + n + b]
in_file = sum(1 for w in widths if w & 0x80)
reported = next(lin for lin in r["layers"][0]["linears"] if lin["name"].endswith("q_proj"))
assert in_file == reported["grid_rows"], (in_file, reported["grid_rows"])
codes = sum(1 << (w & 0x7f) for w in widths if not w & 0x80)
assert header[name + "codes"]["shape"] == [codes], (header[name + "codes"]["shape"], codes)
PY
    "$bin" eval --model "$work/grid" --text "$work/eval.txt" --seq-len 64 --json --comm none \
      > "$work/eval.json" || fail "--grid-rows: eval of the packed folder"
    for bad in "--method gptq" "--lut f16"; do
      status=0
      # shellcheck disable=SC2086
      "$bin" quantize "${common[@]}" $bad --bits 3 --grid-rows yes --out "$work/grid-bad" \
        --comm none 2> "$work/g.err" || status=$?
      [ "$status" -eq 2 ] && grep -q "grid-rows" "$work/g.err" \
        || fail "--grid-rows with $bad: exit $status, $(cat "$work/g.err")"
    done
    # Reserved weights: round(0.02 cols) per row in every linear, their bits inside the budget;
    # the packed folder evaluates. With gptq --outliers is a usage error (exit 2).
    "$bin" quantize "${common[@]}" --bits 4 --outliers 0.02 --out "$work/outliers" --comm none
    python3 - "$work/outliers/report.json" <<'PY' || fail "--outliers: report check"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["options"]["outliers"] == 0.02 and r["average_bits"] <= 4 + 1e-12, r["average_bits"]
for layer in r["layers"]:
    for lin in layer["linears"]:
        assert lin["reserved_weights"] == lin["rows"] * round(0.02 * lin["cols"]), lin
        assert lin["reserved_weights"] > 0, lin
PY
    "$bin" eval --model "$work/outliers" --text "$work/eval.txt" --seq-len 64 --json --comm none \
      > "$work/eval.json" || fail "--outliers: eval of the packed folder"
    status=0
    "$bin" quantize "${common[@]}" --method gptq --bits 3 --outliers 0.01 --out "$work/gptq-o" \
      --comm none 2> "$work/o.err" || status=$?
    [ "$status" -eq 2 ] && grep -q "outliers" "$work/o.err" \
      || fail "--outliers with gptq: exit $status, $(cat "$work/o.err")"
    # Counts chosen by the allocation (global, the default): within the budget as stored, some
    # weights reserved, and the folder evaluates. Another word, or auto with claq: exit 2.
    "$bin" quantize "${common[@]}" --bits 3 --outliers auto --out "$work/outliers-auto" \
      --comm none
    python3 - "$work/outliers-auto/report.json" <<'PY' || fail "--outliers auto: report check"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["options"]["outliers"] == "auto" and r["average_bits"] <= 3 + 1e-12, r["average_bits"]
reserved = sum(lin["reserved_weights"] for layer in r["layers"] for lin in layer["linears"])
assert reserved > 0, "no weight reserved"
PY
    "$bin" eval --model "$work/outliers-auto" --text "$work/eval.txt" --seq-len 64 --json \
      --comm none > "$work/eval.json" || fail "--outliers auto: eval of the packed folder"
    for bad in "--outliers many" "--method claq --outliers auto"; do
      status=0
      # shellcheck disable=SC2086
      "$bin" quantize "${common[@]}" --bits 3 $bad --out "$work/bad-o" --comm none \
        2> "$work/o.err" || status=$?
      [ "$status" -eq 2 ] && grep -q "outliers" "$work/o.err" \
        || fail "$bad: exit $status, $(cat "$work/o.err")"
    done
    # slim: groups of 16 columns at 2, 3 and 4 bits, each linear's widths averaging exactly 3
    # (the codes' bits, counted from the histogram); the stored bits are gptq's with the same
    # groups plus 8 per group width; the folder evaluates. With --act-order: usage error (exit 2).
    "$bin" quantize "${common[@]}" --method slim --bits 3 --group-size 16 --out "$work/slim" \
      --comm none || fail "slim: quantize"
    "$bin" quantize "${common[@]}" --method gptq --bits 3 --group-size 16 --out "$work/gptq16" \
      --comm none || fail "gptq g16: quantize"
    python3 - "$work/slim/report.json" "$work/gptq16/report.json" <<'PY' || fail "slim: report check"
import json, sys
s = json.load(open(sys.argv[1])); g = json.load(open(sys.argv[2]))
assert s["options"]["method"] == "slim" and s["options"]["group_size"] == 16
moved = 0
for ls, lg in zip(s["layers"], g["layers"], strict=True):
    for a, b in zip(ls["linears"], lg["linears"], strict=True):
        h = {int(k): v for k, v in a["group_bits_histogram"].items()}
        groups = a["cols"] // 16
        assert sum(h.values()) == groups and set(h) <= {2, 3, 4}, a
        assert h.get(2, 0) == h.get(4, 0), a  # every linear's columns here are whole groups
        moved += h.get(4, 0)
        assert a["stored_bits"] == b["stored_bits"] + 8 * groups, (a, b)
assert moved > 0, "no linear moved a group"
PY
    "$bin" eval --model "$work/slim" --text "$work/eval.txt" --seq-len 64 --json --comm none \
      > "$work/eval.json" || fail "slim: eval of the packed folder"
    status=0
    "$bin" quantize "${common[@]}" --method slim --bits 3 --act-order --out "$work/slim-ao" \
      --comm none 2> "$work/ao.err" || status=$?
    [ "$status" -eq 2 ] && grep -q "act-order" "$work/ao.err" \
      || fail "slim with --act-order: exit $status, $(cat "$work/ao.err")"
    # QDEC: --save-residual writes one residual file per layer beside the same model (the same
    # bits, the same perplexity without --qdec); correcting every channel brings the perplexity
    # closer to full precision than none; generate runs with it; --qdec on a folder without
    # residuals is a usage error (exit 2).
    "$bin" quantize "${common[@]}" --method gptq --bits 3 --save-residual --out "$work/qdec" \
      --comm none || fail "--save-residual: quantize"
    for l in 0 1 2; do
      [ -s "$work/qdec/layers/residual-0000$l.safetensors" ] || fail "--save-residual: layer $l"
    done
    ppl() { "$bin" eval --model "$1" --text "$work/eval.txt" --seq-len 64 --json --comm none \
              "${@:2}" | python3 -c "import json,sys; print(json.load(sys.stdin)['perplexity'])"; }
    fp=$(ppl "$work/model") plain=$(ppl "$work/out-gptq-3") none=$(ppl "$work/qdec")
    all=$(ppl "$work/qdec" --qdec 100000) some=$(ppl "$work/qdec" --qdec 8)
    python3 - "$fp" "$plain" "$none" "$all" "$some" "$work/qdec/report.json" \
      "$work/out-gptq-3/report.json" <<'PY' || fail "qdec: fp $fp plain $plain none $none all $all some $some"
import json, sys
fp, plain, none, full, some = map(float, sys.argv[1:6])
a, b = json.load(open(sys.argv[6])), json.load(open(sys.argv[7]))
assert a["options"]["save_residual"] and not b["options"]["save_residual"]
assert a["average_bits"] == b["average_bits"] and none == plain
assert abs(full - fp) < 0.5 * abs(none - fp), (fp, none, full)
assert some != none
PY
    "$bin" generate --model "$work/qdec" --prompt "Line 1:" --tokens 4 --qdec 8 --comm none \
      > /dev/null || fail "generate --qdec"
    status=0
    "$bin" eval --model "$work/out-gptq-3" --text "$work/eval.txt" --seq-len 64 --qdec 8 \
      --comm none 2> "$work/q.err" > /dev/null || status=$?
    [ "$status" -eq 2 ] && grep -q "save-residual" "$work/q.err" \
      || fail "--qdec without residuals: exit $status, $(cat "$work/q.err")"
    # --device: eval and generate --device cpu say so; where a GPU is visible --device cuda gives
    # the CPU's perplexity within 0.1%, a generated text, and skim / gptq folders within the
    # budget whose perplexity is within 2% of the CPU-quantized folder's; elsewhere each is a
    # usage error (exit 2) saying why; so is eval --qdec 8 --device cuda, whose perplexity on a GPU
    # is within 0.1% of the CPU's.
    dev=$("$bin" eval --model "$work/out-skim-3" --text "$work/eval.txt" --seq-len 64 --json \
            --comm none --device cpu | python3 -c "import json,sys; print(json.load(sys.stdin)['device'])")
    [ "$dev" = cpu ] || fail "eval --device cpu ran on '$dev'"
    dev=$("$bin" generate --model "$work/out-skim-3" --prompt Line --tokens 2 --json --comm none \
            --device cpu | python3 -c "import json,sys; print(json.load(sys.stdin)['device'])")
    [ "$dev" = cpu ] || fail "generate --device cpu ran on '$dev'"
    status=0
    "$bin" eval --model "$work/out-skim-3" --text "$work/eval.txt" --seq-len 64 --json \
      --comm none --device cuda 2> "$work/d.err" > "$work/d.json" || status=$?
    gstatus=0
    "$bin" generate --model "$work/out-skim-3" --prompt Line --tokens 2 --json --comm none \
      --device cuda 2> "$work/g.err" > "$work/g.json" || gstatus=$?
    qstatus=0
    "$bin" quantize "${common[@]}" --bits 3 --out "$work/dev-skim" --device cuda --comm none \
      2> "$work/q.err" || qstatus=$?
    if nvidia-smi -L 2> /dev/null | grep -q GPU; then
      "$bin" quantize "${common[@]}" --method gptq --bits 3 --out "$work/dev-gptq" --device cuda \
        --comm none || fail "quantize --method gptq --device cuda"
      for m in skim gptq; do
        python3 - "$work/dev-$m/report.json" "$work/out-$m-3/report.json" \
          "$(ppl "$work/dev-$m")" "$(ppl "$work/out-$m-3")" <<'PY' \
          || fail "quantize --device cuda --method $m: exit $qstatus, $(cat "$work/q.err")"
import json, sys
g, c = (json.load(open(f)) for f in sys.argv[1:3]); gpu, cpu = map(float, sys.argv[3:5])
assert g["options"]["device"] == "cuda" and c["options"]["device"] == "cpu"
assert g["average_bits"] <= c["average_bits"] + 1e-9, (g["average_bits"], c["average_bits"])
assert abs(gpu - cpu) <= 0.02 * cpu, (gpu, cpu)
PY
      done
      cpu_ppl=$(ppl "$work/out-skim-3" --device cpu)
      python3 -c "import json,sys; g=json.load(open(sys.argv[1])); c=float(sys.argv[2]);
assert g['device'] == 'cuda' and abs(g['perplexity'] - c) <= 1e-3 * c, (g, c)" \
        "$work/d.json" "$cpu_ppl" || fail "eval --device cuda: exit $status, $(cat "$work/d.err")"
      python3 -c "import json,sys; g=json.load(open(sys.argv[1]));
assert g['device'] == 'cuda' and g['new_tokens'] == 2, g" "$work/g.json" \
        || fail "generate --device cuda: exit $gstatus, $(cat "$work/g.err")"
    else
      for f in d g q; do
        s=$status; [ $f = g ] && s=$gstatus; [ $f = q ] && s=$qstatus
        [ "$s" -eq 2 ] && grep -q -e "--device cuda: .*\(no GPU\|without CUDA\)" "$work/$f.err" \
          || fail "--device cuda without a GPU: exit $s, $(cat "$work/$f.err")"
      done
    fi
    status=0
    "$bin" eval --model "$work/qdec" --text "$work/eval.txt" --seq-len 64 --qdec 8 --json \
      --device cuda --comm none 2> "$work/d.err" > "$work/dq.json" || status=$?
    if nvidia-smi -L 2> /dev/null | grep -q GPU; then
      python3 -c "import json,sys; g=json.load(open(sys.argv[1])); c=float(sys.argv[2]);
assert g['device'] == 'cuda' and abs(g['perplexity'] - c) <= 1e-3 * c, (g, c)" \
        "$work/dq.json" "$(ppl "$work/qdec" --qdec 8 --device cpu)" \
        || fail "eval --qdec 8 --device cuda: exit $status, $(cat "$work/d.err")"
      "$bin" generate --model "$work/qdec" --prompt "Line 1:" --tokens 4 --qdec 8 --device cuda \
        --comm none > /dev/null || fail "generate --qdec 8 --device cuda"
    else
      [ "$status" -eq 2 ] && grep -q -e "--device cuda: .*\(no GPU\|without CUDA\)" "$work/d.err" \
        || fail "eval --qdec --device cuda without a GPU: exit $status, $(cat "$work/d.err")"
    fi
    [ ! -e "$work/dev-skim" ] && [ ! -e "$work/dev-skim.partial" ] || [ "$qstatus" -eq 0 ] \
      || fail "a refused quantize --device cuda left output"
    # claq: floor(0.25 cols) columns of each linear at 4 bits, the rest at 3; 2% of the weights
    # reserved; the folder evaluates and inspect reads back the report's bits.
    "$bin" quantize "${common[@]}" --method claq --bits 3.25 --outliers 0.02 --out "$work/claq" \
      --comm none || fail "claq: quantize"
    "$bin" inspect "$work/claq" --json > "$work/claq-inspect.json" || fail "claq: inspect"
    python3 - "$work/claq/report.json" "$work/claq-inspect.json" <<'PY' || fail "claq: report check"
import json, sys
r = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))
assert r["options"]["method"] == "claq" and d["method"] == "claq"
assert abs(d["bits_per_weight"] - r["average_bits"]) < 1e-12
for layer in r["layers"]:
    for lin in layer["linears"]:
        h = {int(k): v for k, v in lin["column_bits_histogram"].items()}
        assert h == {4: lin["cols"] // 4, 3: lin["cols"] - lin["cols"] // 4}, lin
        assert lin["bits_histogram"] == {} and lin["reserved_weights"] > 0, lin
PY
    "$bin" eval --model "$work/claq" --text "$work/eval.txt" --seq-len 64 --json --comm none \
      > "$work/eval.json" || fail "claq: eval of the packed folder"
    # --scale-steps 0 trains nothing: the same layer bytes as --no-scale; a negative count is
    # a usage error (exit 2).
    "$bin" quantize "${common[@]}" --bits 3 --scale-steps 0 --out "$work/steps0" --comm none \
      || fail "--scale-steps 0"
    "$bin" quantize "${common[@]}" --bits 3 --no-scale --out "$work/noscale" --comm none \
      || fail "--no-scale"
    for f in "$work"/noscale/layers/*.safetensors; do
      cmp -s "$f" "$work/steps0/layers/$(basename "$f")" || fail "--scale-steps 0: $f differs"
    done
    status=0
    "$bin" quantize "${common[@]}" --bits 3 --scale-steps -1 --out "$work/steps-1" --comm none \
      2> "$work/steps.err" || status=$?
    [ "$status" -eq 2 ] && grep -q "scale-steps" "$work/steps.err" \
      || fail "--scale-steps -1: exit $status, $(cat "$work/steps.err")"
    # export --format hf: a Hugging Face folder that eval reads, with about the same perplexity
    # as the packed folder (weights dequantized, rounded to f16).
    "$bin" export "$work/out-skim-3" --out "$work/hf" --dtype f16 || fail "export"
    "$bin" eval --model "$work/out-skim-3" --text "$work/eval.txt" --seq-len 64 --json \
      --comm none > "$work/eval-packed.json"
    "$bin" eval --model "$work/hf" --text "$work/eval.txt" --seq-len 64 --json --comm none \
      > "$work/eval-hf.json" || fail "eval of the exported folder"
    python3 - "$work/eval-packed.json" "$work/eval-hf.json" <<'PY' || fail "exported perplexity"
import json, sys
a, b = (json.load(open(f))["perplexity"] for f in sys.argv[1:3])
assert abs(a - b) <= 0.005 * a, (a, b)
PY
    # export --format gguf: read by the gguf package of PyPI (llama.cpp's own reader, an
    # independent one), the tensors equal the Hugging Face export's, Q and K rows in llama.cpp's
    # order (its converter's permute, written out here in numpy); eval of the GGUF agrees.
    "$bin" export "$work/out-skim-3" --format gguf --out "$work/model.gguf" || fail "export gguf"
    python3 -m pip install --quiet --target "$work/py" --no-deps --break-system-packages \
      gguf==0.19.0 2>/dev/null || fail "pip install gguf"
    PYTHONPATH="$work/py" python3 - "$work/model.gguf" "$work/hf" <<'PY' || fail "gguf check"
import json, struct, sys
import numpy as np
from gguf import GGUFReader
gg = GGUFReader(sys.argv[1])
def field(name):
    f = gg.fields[name]
    return f.parts[f.data[0]]
heads = int(field("llama.attention.head_count")[0]); kv = int(field("llama.attention.head_count_kv")[0])
assert bytes(field("tokenizer.ggml.model")).decode() == "gpt2"
# The Hugging Face export (f16), parsed by hand: 8-byte header length, JSON header, data.
raw = open(sys.argv[2] + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
def hf(name):
    t = header[name]; b, e = t["data_offsets"]
    assert t["dtype"] == "F16"
    return np.frombuffer(raw[8 + n + b:8 + n + e], dtype=np.float16).reshape(t["shape"])
def permute(w, n_head):  # llama.cpp convert_hf_to_gguf.py
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
tensors = {t.name: np.array(t.data) for t in gg.tensors}
pairs = {"token_embd.weight": hf("model.embed_tokens.weight"),
         "blk.1.ffn_down.weight": hf("model.layers.1.mlp.down_proj.weight"),
         "blk.2.attn_q.weight": permute(hf("model.layers.2.self_attn.q_proj.weight"), heads),
         "blk.0.attn_k.weight": permute(hf("model.layers.0.self_attn.k_proj.weight"), kv)}
for name, ref in pairs.items():
    got = tensors[name].reshape(ref.shape)
    assert got.dtype == np.float16 and np.array_equal(got, ref), name
PY
    "$bin" eval --model "$work/model.gguf" --text "$work/eval.txt" --seq-len 64 --json \
      --comm none > "$work/eval-gguf.json" || fail "eval of the GGUF export"
    python3 - "$work/eval-packed.json" "$work/eval-gguf.json" <<'PY' || fail "GGUF perplexity"
import json, sys
a, b = (json.load(open(f))["perplexity"] for f in sys.argv[1:3])
assert abs(a - b) <= 0.005 * a, (a, b)
PY
    # plot_report.py draws the report (and the quality benchmark): four PNG files.
    python3 "$root/scripts/plot_report.py" "$work/out-skim-3" --out "$work/plots" \
      --bench "$root/bench/results/smollm2-vm.json" > /dev/null || fail "plot_report"
    python3 - "$work/plots" <<'PY' || fail "plot_report pictures"
import struct, sys
from pathlib import Path
for name in ["bits.png", "error.png", "histogram.png", "quality.png"]:
    data = (Path(sys.argv[1]) / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", name
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 200 and len(data) > 5000, (name, width, height, len(data))
PY
    # inspect of the Hugging Face folder: parameters as the config's shapes give them.
    "$bin" inspect "$work/model" --json > "$work/inspect.json" || fail "inspect of the model"
    python3 - "$work/inspect.json" "$work/model/config.json" <<'PY' || fail "inspect of the model"
import json, sys
d = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2]))
h, f, v, n = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
kv = h // c["num_attention_heads"] * c["num_key_value_heads"]
layer = 2 * h * h + 2 * h * kv + 3 * h * f + 2 * h
head = 0 if c.get("tie_word_embeddings") else v * h
assert d["format"] == "huggingface" and d["config"]["num_layers"] == n
assert d["parameters"] == v * h + n * layer + h + head, (d["parameters"], v * h + n * layer + h + head)
PY
    "$bin" inspect "$work/model" | grep -q "layers, hidden $(python3 -c "import json;print(json.load(open('$work/model/config.json'))['hidden_size'])")" \
      || fail "inspect text"
    # An existing output folder is refused without --overwrite (exit 2).
    set +e
    "$bin" quantize "${common[@]}" --bits 3 --out "$work/out-skim-3" --comm none 2>"$work/err"
    rc=$?
    set -e
    [ "$rc" -eq 2 ] || fail "existing output: exit $rc, expected 2"
    grep -q "exists" "$work/err" || fail "existing output: message $(cat "$work/err")"
    ;;
  calibration)
    # One document as a plain file, in a folder, and as one JSON line: the same windows, the
    # same model bytes.
    mkdir -p "$work/one" "$work/many"
    cp "$work/calib.txt" "$work/one/doc.txt"
    python3 -c 'import json,sys; print(json.dumps({"text": open(sys.argv[1]).read()}))' \
      "$work/calib.txt" > "$work/one.jsonl"
    opts=(--model "$work/model" --calib-samples 8 --calib-seq-len 64 --progress none --bits 3
          --comm none)
    "$bin" quantize "${opts[@]}" --calib "$work/calib.txt" --out "$work/c-plain"
    "$bin" quantize "${opts[@]}" --calib "$work/one" --out "$work/c-folder"
    "$bin" quantize "${opts[@]}" --calib "$work/one.jsonl" --out "$work/c-jsonl"
    same_model "$work/c-plain" "$work/c-folder"
    same_model "$work/c-plain" "$work/c-jsonl"
    # Many documents: 40 short lines (joined) and two long texts; the report names the
    # documents the windows came from.
    head -c 20000 "$work/calib.txt" > "$work/many/a-long.txt"
    head -c 15000 "$work/eval.txt" > "$work/many/b-long.txt"
    for i in $(seq 1 40); do echo "Short note $i." > "$work/many/note-$i.txt"; done
    "$bin" quantize "${opts[@]}" --calib "$work/many" --out "$work/c-many"
    python3 - "$work/c-many/report.json" <<'PY' || fail "calibration report"
import json, sys
c = json.load(open(sys.argv[1]))["calibration"]
assert c["format"] == "folder" and c["documents"] == 42, c
assert c["windows"] == 8 and c["window_tokens"] == 8 * 64, c
assert sum(d["windows"] for d in c["windows_by_document"]) == 8, c
assert all(d["document"].split("/")[-1].endswith(".txt") for d in c["windows_by_document"]), c
assert 2 <= c["segments"] <= 42, c
PY
    printf '{"text": "fine"}\nnot json\n' > "$work/bad.jsonl"
    set +e
    "$bin" quantize "${opts[@]}" --calib "$work/bad.jsonl" --out "$work/c-bad" 2>"$work/err"
    rc=$?
    set -e
    [ "$rc" -eq 2 ] || fail "bad JSON Lines: exit $rc, expected 2"
    grep -q "bad.jsonl:2" "$work/err" || fail "bad JSON Lines: message $(cat "$work/err")"
    ;;
  ranks)
    # A wider model, so that most linears span several row units of 96 and really split: at
    # hidden 192 and ffn 320, gate/up have four units (the last short), q/o/down two, k/v one.
    "$maker" "$work/wide" 2 192 320
    wide=(--model "$work/wide" --calib "$work/calib.txt" --calib-samples 6 --calib-seq-len 64
          --progress none)
    same_for_ranks() {  # NAME RANKS... -- OPTIONS: every rank count writes the 1-rank bytes
      local name=$1; shift
      local counts=()
      while [ "$1" != -- ]; do counts+=("$1"); shift; done
      shift
      "$bin" quantize "${wide[@]}" "$@" --out "$work/$name-np1" --comm none
      local np
      for np in "${counts[@]}"; do
        mpi "$np" "$bin" quantize "${wide[@]}" "$@" --out "$work/$name-np$np" --comm mpi
        same_model "$work/$name-np1" "$work/$name-np$np"
      done
      echo "$name: ranks 1 ${counts[*]} byte-identical"
    }
    same_for_ranks skim-layer 2 3 4 -- --bits 2.5 --allocation layer
    same_for_ranks skim-global 2 3 4 -- --bits 2.5 --allocation global
    same_for_ranks skim-grid 3 -- --bits 4.5 --b-max 6 --grid-rows yes
    same_for_ranks skim-grid-layer 2 -- --bits 4.5 --b-max 6 --grid-rows yes --allocation layer
    same_for_ranks skim-quantized 3 -- --bits 3 --propagation quantized
    same_for_ranks kmeans 3 -- --method kmeans --bits 3
    same_for_ranks gptq 3 -- --method gptq --bits 3 --group-size 32 --act-order
    same_for_ranks gptq-quantized 2 -- --method gptq --bits 4 --propagation quantized
    same_for_ranks rtn 3 -- --method rtn --bits 4 --group-size 32
    same_for_ranks slim 3 -- --method slim --bits 3 --group-size 16
    same_for_ranks claq 2 -- --method claq --bits 2.5 --outliers 0.01
    # Bounded memory: with a micro-batch smaller than a rank's calibration tokens the forward
    # holds one sample at a time (two passes); the bytes stay the same.
    "$bin" quantize "${wide[@]}" --bits 2.5 --allocation layer --micro-batch 64 \
      --out "$work/micro-np1" --comm none
    same_model "$work/skim-layer-np1" "$work/micro-np1"
    mpi 2 "$bin" quantize "${wide[@]}" --bits 2.5 --allocation layer --micro-batch 200 \
      --out "$work/micro-np2" --comm mpi
    same_model "$work/skim-layer-np1" "$work/micro-np2"
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
    # Killed at each step of finishing: never a final-looking output, always resumable.
    for stage in write_output finish_cleanup finish_rename; do
      out="$work/fin-$stage"
      set +e
      SKIM_FAULT_INJECT=rank=0,at=$stage "$bin" quantize "${common[@]}" --bits 3 --out "$out" \
        --comm none 2>"$work/err"
      rc=$?
      set -e
      [ "$rc" -ne 0 ] || fail "$stage: the injected fault did not stop the run"
      [ ! -e "$out" ] || fail "$stage: a killed run left a final-looking output"
      : > "$out.partial/.stray.tmp.1.0"  # what a killed writer leaves behind
      "$bin" quantize "${common[@]}" --bits 3 --out "$out" --resume --comm none
      same_model "$work/full-global" "$out"  # the default allocation
      [ ! -e "$out.partial" ] || fail "$stage: the work folder is left behind"
    done
    # A checkpoint is not wiped by a run without --resume: refused unless --overwrite.
    set +e
    SKIM_FAULT_INJECT=rank=0,at=checkpoint,hit=2 "$bin" quantize "${common[@]}" --bits 3 \
      --out "$work/kept" --comm none 2>/dev/null
    "$bin" quantize "${common[@]}" --bits 3 --out "$work/kept" --comm none 2>"$work/err"
    rc=$?
    set -e
    [ "$rc" -eq 2 ] || fail "a run without --resume over a checkpoint: exit $rc, expected 2"
    grep -q "checkpoint of an earlier run" "$work/err" || fail "message $(cat "$work/err")"
    [ -s "$work/kept.partial/state.json" ] || fail "the checkpoint was touched"
    "$bin" quantize "${common[@]}" --bits 3 --out "$work/kept" --overwrite --comm none
    same_model "$work/full-global" "$work/kept"
    ;;
  stop)
    for alloc in layer global; do
      "$bin" quantize "${common[@]}" --bits 3 --allocation "$alloc" --out "$work/full-$alloc" \
        --comm none
    done
    interrupted_run USR1 self "$bin" quantize "${common[@]}" --bits 3 --allocation layer \
      --out "$work/layer" --comm none
    check_stopped "$work/layer"
    ls "$work/layer.partial"/linear-00000-*.bin >/dev/null 2>&1 \
      || fail "layer: the linears finished before the stop were not saved"
    "$bin" quantize "${common[@]}" --bits 3 --allocation layer --out "$work/layer" --resume \
      --comm none
    same_model "$work/full-layer" "$work/layer"
    interrupted_run TERM self "$bin" quantize "${common[@]}" --bits 3 --allocation global \
      --out "$work/global" --comm none
    check_stopped "$work/global"
    ls "$work/global.partial"/etable-00000-*.bin >/dev/null 2>&1 \
      || fail "global: the error tables finished before the stop were not saved"
    "$bin" quantize "${common[@]}" --bits 3 --allocation global --out "$work/global" --resume \
      --comm none
    same_model "$work/full-global" "$work/global"
    ;;
  reshard)
    for alloc in layer global; do
      "$bin" quantize "${common[@]}" --bits 3 --allocation "$alloc" --out "$work/full-$alloc" \
        --comm none
      # Killed by a fault after the second layer's checkpoint on 2 ranks, resumed on 3.
      set +e
      SKIM_FAULT_INJECT=rank=0,at=checkpoint,hit=2 mpi 2 "$bin" quantize "${common[@]}" \
        --bits 3 --allocation "$alloc" --out "$work/cut-$alloc" --comm mpi 2>"$work/err"
      rc=$?
      set -e
      [ "$rc" -ne 0 ] || fail "$alloc: the injected fault did not stop the run"
      mpi 3 "$bin" quantize "${common[@]}" --bits 3 --allocation "$alloc" \
        --out "$work/cut-$alloc" --resume --comm mpi
      same_model "$work/full-$alloc" "$work/cut-$alloc"
      # A signal to one rank of three stops all three in the middle of a layer; resumed on 2.
      interrupted_run USR1 child mpi 3 "$bin" quantize "${common[@]}" --bits 3 \
        --allocation "$alloc" --out "$work/sig-$alloc" --comm mpi
      check_stopped "$work/sig-$alloc"
      mpi 2 "$bin" quantize "${common[@]}" --bits 3 --allocation "$alloc" \
        --out "$work/sig-$alloc" --resume --comm mpi
      same_model "$work/full-$alloc" "$work/sig-$alloc"
    done
    # 2 -> 1: the hidden states of two ranks merged into one.
    set +e
    SKIM_FAULT_INJECT=rank=1,at=checkpoint,hit=2 mpi 2 "$bin" quantize "${common[@]}" --bits 3 \
      --propagation quantized --out "$work/q" --comm mpi 2>"$work/err"
    set -e
    "$bin" quantize "${common[@]}" --bits 3 --propagation quantized --out "$work/full-q" \
      --comm none
    "$bin" quantize "${common[@]}" --bits 3 --propagation quantized --out "$work/q" --resume \
      --comm none
    same_model "$work/full-q" "$work/q"
    ;;
  failure)
    # Rank 1 fails at a stage (with more environment after it): the 2-rank job ends within 30 s,
    # non-zero, with rank 1's message and no final output.
    failing_rank() {
      local stage=$1 start rc elapsed
      shift
      start=$(date +%s)
      set +e
      env SKIM_FAULT_INJECT="rank=1,at=$stage" "$@" timeout 60 \
        "$mpiexec" -np 2 --oversubscribe --allow-run-as-root --bind-to none \
        "$bin" quantize "${common[@]}" --bits 3 --out "$work/failed-$stage" --comm mpi \
        2>"$work/err"
      rc=$?
      set -e
      elapsed=$(( $(date +%s) - start ))
      [ "$rc" -ne 0 ] || fail "$stage: the job succeeded despite a failing rank"
      [ "$rc" -ne 124 ] || fail "$stage: the job hung (killed by timeout)"
      [ "$elapsed" -le 30 ] || fail "$stage: the job took ${elapsed}s to stop"
      grep -q ":1: error: injected fault at stage '$stage'" "$work/err" \
        || fail "$stage: message $(cat "$work/err")"
      ! grep -q "terminate called" "$work/err" || fail "$stage: std::terminate was called"
      [ ! -e "$work/failed-$stage" ] || fail "$stage: a failed job left a final-looking output"
    }
    failing_rank quantize_rows
    # Inside an OpenMP parallel region (one row's K-means, 2 threads per rank): the error still
    # reaches the catch site, nothing calls std::terminate.
    failing_rank row_kmeans OMP_NUM_THREADS=2

    # A rank killed by SIGKILL in the middle of a layer (an out-of-memory kill, a lost node): no
    # handler runs, mpirun must notice and end the job.
    SKIM_FAULT_INJECT=rank=*,at=linear_task,delay=1 timeout 60 \
      "$mpiexec" -np 2 --oversubscribe --allow-run-as-root --bind-to none \
      "$bin" quantize "${common[@]}" --bits 3 --out "$work/killed" --comm mpi 2>"$work/err" &
    pid=$!
    wait_until_running
    ranks=$(rank_pids "$pid")
    [ -n "$ranks" ] || fail "no rank process to kill"
    kill -9 "${ranks##*$'\n'}"
    start=$(date +%s)
    set +e
    wait "$pid"
    rc=$?
    set -e
    elapsed=$(( $(date +%s) - start ))
    [ "$rc" -ne 0 ] || fail "the job succeeded despite a killed rank"
    [ "$rc" -ne 124 ] || fail "the job hung after a rank was killed (killed by timeout)"
    [ "$elapsed" -le 30 ] || fail "the job took ${elapsed}s to stop after a rank was killed"
    [ ! -e "$work/killed" ] || fail "a killed job left a final-looking output"
    echo "SIGKILL to one rank: the job ended ${elapsed}s later, exit $rc"
    ;;
  disk)
    [ "$(id -u)" -eq 0 ] || { echo "SKIP: disk needs root to mount a small tmpfs"; exit 77; }
    "$bin" quantize "${common[@]}" --bits 3 --out "$work/full" --comm none
    mnt="$work/small"
    mkdir -p "$mnt"
    mount -t tmpfs -o size=2m tmpfs "$mnt"
    trap 'umount "$mnt"; rm -rf "$work"' EXIT
    # Room for one layer's checkpoint and not two (a layer's hidden states are 128 KiB here).
    dd if=/dev/zero of="$mnt/filler" bs=1k count=$((2048 - 200)) status=none
    set +e
    "$bin" quantize "${common[@]}" --bits 3 --out "$mnt/out" --comm none 2>"$work/err"
    rc=$?
    set -e
    [ "$rc" -eq 3 ] || fail "full disk: exit $rc, expected 3: $(cat "$work/err")"
    grep -q "error: $mnt/out.partial/.*No space left on device" "$work/err" \
      || fail "full disk: the message does not name the path and the cause: $(cat "$work/err")"
    [ "$(grep -c "error:" "$work/err")" -eq 1 ] || fail "full disk: not one error line"
    [ ! -e "$mnt/out" ] || fail "full disk: a final-looking output"
    python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$mnt/out.partial/state.json" \
      || fail "full disk: the checkpoint state is damaged"
    rm "$mnt/filler"
    "$bin" quantize "${common[@]}" --bits 3 --out "$mnt/out" --resume --comm none
    same_model "$work/full" "$mnt/out"
    ;;
  smollm2)
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
