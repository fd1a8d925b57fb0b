#!/usr/bin/env bash
# The main job on the bundled default: set up, then quantize SmolLM2-135M to 3 bits on 2 ranks
# (calibrated on Emma) and print the perplexity on Pride and Prejudice before and after.
#   SKIM_DEMO_RANKS=1 scripts/demo.sh     one process, no MPI
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
export OMP_WAIT_POLICY=passive  # idle OpenMP threads must not spin against BLAS threads
bin="$root/${SKIM_BUILD_DIR:-build}/launch/skim-dist"
model="$root/data/SmolLM2-135M-Instruct.Q4_1.gguf"
out="$root/out/smollm2-skim-3bit"
ranks="${SKIM_DEMO_RANKS:-2}"

launcher=("$bin")
comm=none
if [ "$ranks" -gt 1 ] && command -v mpirun >/dev/null; then
  launcher=(mpirun -np "$ranks" --oversubscribe --bind-to none)
  [ "$(id -u)" -eq 0 ] && launcher+=(--allow-run-as-root)
  launcher+=("$bin")
  comm=mpi
fi

"${launcher[@]}" quantize --model "$model" --bits 3 --calib "$root/data/text/emma.txt" \
  --calib-samples 32 --calib-seq-len 512 --out "$out" --overwrite --comm "$comm"

evaluate() {
  "$bin" eval --model "$1" --text "$root/data/text/prideprejudice.txt" --seq-len 512 \
    --max-windows 16 --comm none
}
echo "== before: full precision"
evaluate "$model"
echo "== after: skim, 3 bits (report: $out/report.json)"
evaluate "$out"
