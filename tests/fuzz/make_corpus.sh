#!/usr/bin/env bash
# Makes the seed corpora of the fuzz targets (tests/fuzz/corpus/TARGET/) from real files: a GGUF
# cut from SmolLM2 (gguf_seeds.py), the folders skim-dist writes when it quantizes that model with
# every method, the work folders of runs stopped or failed mid-way (state.json, hidden states,
# finished linears, error tables), and calibration JSON Lines. Needs a main build (scripts/setup.sh). The corpora are
# committed; rerun this when a format changes.
#   tests/fuzz/make_corpus.sh [BUILD_DIR]
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(cd "${1:-$src/build}" && pwd)"
skim="$build/launch/skim-dist"
corpus="$src/tests/fuzz/corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 "$src/tests/fuzz/gguf_seeds.py" "$src/data/SmolLM2-135M-Instruct.Q4_1.gguf" "$work/gguf"
calib=(--calib "$src/data/text/emma.txt" --calib-samples 4 --calib-seq-len 32 --progress none)
quantize() {  # quantize OUT ARGS...: the cut SmolLM2 at 3 bits
  local out="$1"
  shift
  "$skim" quantize --model "$work/gguf/smollm2-cut.gguf" "${calib[@]}" --bits 3 --out "$out" "$@"
}
quantize "$work/skim"
quantize "$work/skim-outliers" --outliers 0.01
quantize "$work/skim-grid" --grid-rows yes --b-max 6
quantize "$work/skim-d8" --lut d8 --grid-rows yes --b-max 6
quantize "$work/kmeans" --method kmeans
quantize "$work/rtn" --method rtn --group-size 32
quantize "$work/gptq" --method gptq --act-order
quantize "$work/slim" --method slim --group-size 16 --save-residual

# Work folders: a run stopped (SIGUSR1) while its first layer's linears run, in both allocation
# modes, keeps the finished linears (layer) or error tables (global); a 2-layer model failed at
# its second checkpoint keeps the hidden states entering layer 1.
for alloc in layer global; do
  SKIM_FAULT_INJECT=rank=0,at=linear_task,hit=2,delay=3 "$skim" quantize \
    --model "$work/gguf/smollm2-cut.gguf" "${calib[@]}" --bits 3 --out "$work/stop-$alloc" \
    --allocation "$alloc" &
  pid=$!
  sleep 2
  kill -USR1 "$pid"
  status=0
  wait "$pid" || status=$?
  [ "$status" -eq 75 ] || { echo "make_corpus: stopped run exited $status, not 75" >&2; exit 1; }
done
"$build/tests/pipeline/make_tiny_model" "$work/tiny" 2
SKIM_FAULT_INJECT=rank=0,at=checkpoint,hit=2 "$skim" quantize --model "$work/tiny" \
  --calib "$src/data/text/emma.txt" --calib-samples 2 --calib-seq-len 16 --bits 3 \
  --out "$work/failed" --progress none 2>/dev/null && { echo "make_corpus: no failure" >&2; exit 1; }

# Regression inputs (regression-*, added by hand after a fuzzer found them) are kept.
mkdir -p "$work/keep"
find "$corpus" -name 'regression-*' -exec cp --parents {} "$work/keep" \; 2>/dev/null || true
rm -rf "$corpus"
mkdir -p "$corpus"/{fuzz_gguf,fuzz_safetensors,fuzz_hf_config,fuzz_tokenizer_json,fuzz_packed_model,fuzz_checkpoint,fuzz_calibration}
cp "$work/gguf/smollm2-cut.gguf" "$work/gguf/types.gguf" "$corpus/fuzz_gguf/"
cp "$work/skim/model-dense.safetensors" "$corpus/fuzz_safetensors/dense.safetensors"
cp "$work/skim/config.json" "$corpus/fuzz_hf_config/smollm2-cut.json"
cp "$work/tiny/config.json" "$corpus/fuzz_hf_config/tiny.json"
cp "$work/skim/tokenizer.json" "$corpus/fuzz_tokenizer_json/smollm2-cut.json"
cp "$work/tiny/tokenizer.json" "$corpus/fuzz_tokenizer_json/bytes.json"
if [ -d "$work/keep$corpus" ]; then cp -r "$work/keep$corpus/." "$corpus/"; fi
for m in skim skim-outliers skim-grid skim-d8 kmeans rtn gptq slim; do
  cp "$work/$m/layers/layer-00000.safetensors" "$corpus/fuzz_packed_model/$m.safetensors"
  cp "$work/$m/layers/layer-00000.safetensors" "$corpus/fuzz_safetensors/$m.safetensors"
done
cp "$work/slim/layers/residual-00000.safetensors" "$corpus/fuzz_packed_model/residual.safetensors"
# fuzz_checkpoint: the first byte picks the reader (fuzz_checkpoint.cpp).
seed() {  # seed KIND FILE NAME
  { printf "\\x$1"; cat "$2"; } > "$corpus/fuzz_checkpoint/$3"
}
seed 00 "$work/failed.partial/state.json" state.json
seed 01 "$work/failed.partial/hidden-rank-0-layer-00001.bin" hidden.bin
seed 02 "$work/stop-layer.partial/linear-00000-0.bin" linear-0.bin
seed 02 "$work/stop-layer.partial/linear-00000-1.bin" linear-1.bin
seed 03 "$work/stop-global.partial/etable-00000-0.bin" etable-0.bin
seed 03 "$work/stop-global.partial/etable-00000-1.bin" etable-1.bin
# fuzz_calibration: JSON Lines as people write them (a blank line, escapes, other fields).
python3 - "$corpus/fuzz_calibration" <<'PY'
import json, sys
texts = ["It is a truth universally acknowledged, that a single man in possession of a good "
         "fortune, must be in want of a wife.",
         "Emma Woodhouse, handsome, clever, and rich,\nwith a comfortable home and happy disposition.",
         "caf\u00e9 \u2014 na\u00efve \U0001F600"]
lines = [json.dumps({"text": t}) for t in texts]
lines.insert(1, "")
open(sys.argv[1] + "/austen.jsonl", "w").write("\n".join(lines) + "\n")
record = {"id": 7, "text": "short", "meta": {"source": "x", "tags": [1, 2.5, None, True]}}
open(sys.argv[1] + "/fields.jsonl", "w").write(json.dumps(record) + "\n")
PY
du -sh "$corpus"/*
