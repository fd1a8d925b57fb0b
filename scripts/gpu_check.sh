#!/usr/bin/env bash
# The device check in one call (docs/GPU.md): unpacks the bundle of scripts/gpu_bundle.sh and runs
# every gpu-labelled test program, quantize / eval / generate on both devices (scripts/gpu_e2e.sh),
# the LUT GEMV benchmark and the per-layer quantize benchmark at LLaMA-2-7B and 70B shapes, each
# under a time limit, all within 9 minutes (SKIM_GPU_CHECK_SECONDS, default 540). Needs the CUDA 13
# runtime and Python, nothing else. Every step runs whatever the others did; the summary says
# which passed.
#   scripts/gpu_check.sh [BUNDLE] [OUT]
# BUNDLE: default build-gpu/gpu-bundle.tar.xz. OUT: default $OUT, else gpu-check-out. Writes
# OUT/summary.json (device, commit, per step: exit status, seconds), OUT/<test>.json (gtest),
# OUT/e2e.json, OUT/gpu_gemv.json, OUT/gpu_quant.json and a log per step.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="${1:-$root/build-gpu/gpu-bundle.tar.xz}"
out="${2:-${OUT:-gpu-check-out}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xJf "$bundle" -C "$work" || { echo "gpu_check: cannot unpack $bundle" >&2; exit 2; }
# The bundle's libraries, then CUDA's where the toolkit keeps them (not always in ld.so.conf).
cuda_libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && cuda_libs="$cuda_libs:$d"
done
export LD_LIBRARY_PATH="$work/lib$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SKIM_GIT_COMMIT
SKIM_GIT_COMMIT="$(cat "$work/COMMIT")"
steps="$out/steps.jsonl"
: > "$steps"

# Every step ends by this deadline (9 minutes from here), whatever its own limit.
deadline=$(($(date +%s) + ${SKIM_GPU_CHECK_SECONDS:-540}))

# step NAME LIMIT_SECONDS COMMAND...: runs it, logs to OUT/NAME.log, records status and time.
step() {
  local name=$1 limit=$2
  shift 2
  local start end rc left
  left=$((deadline - $(date +%s)))
  [ "$left" -lt "$limit" ] && limit=$left
  [ "$limit" -lt 1 ] && limit=1
  start=$(date +%s.%N)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  printf '{"step": "%s", "rc": %d, "seconds": %.1f, "timed_out": %s}\n' "$name" "$rc" \
    "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$([ "$rc" -eq 124 ] && echo true || echo false)" >> "$steps"
  echo "gpu_check: $name: exit $rc"
}

# A library the bundle lacks shows here, before any step fails on it obscurely.
missing=$(for exe in "$work"/tests/* "$work"/bin/*; do ldd "$exe" | grep "not found"; done | sort -u)
for t in "$work"/tests/*; do
  step "$(basename "$t")" 180 "$t" --gtest_output="json:$out/$(basename "$t").json"
done
step e2e 300 "$root/scripts/gpu_e2e.sh" "$work/bin" "$out/e2e.json"
step gpu_gemv 150 "$work/bin/bench_gpu_gemv" --out "$out/gpu_gemv.json"
step gpu_quant 240 "$work/bin/bench_gpu_quant" --shapes 7b 70b --out "$out/gpu_quant.json"

device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
MISSING="$missing" DEVICE="${device:-none}" python3 - "$steps" "$out/summary.json" <<'PY'
import json, os, platform, sys
steps = [json.loads(line) for line in open(sys.argv[1])]
summary = {
    "check": "gpu_check",
    "device": os.environ["DEVICE"],
    "host": platform.node(),
    "commit": os.environ["SKIM_GIT_COMMIT"],
    "missing_libraries": [l.strip() for l in os.environ["MISSING"].splitlines() if l.strip()],
    "steps": steps,
    "all_passed": all(s["rc"] == 0 for s in steps),
}
json.dump(summary, open(sys.argv[2], "w"), indent=2)
print(json.dumps({k: summary[k] for k in ("device", "commit", "all_passed")}))
PY
rm -f "$steps"
python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["all_passed"] else 1)' \
  "$out/summary.json"
