#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz; clang with AddressSanitizer and UndefinedBehavior-
# Sanitizer, in build-fuzz/) and runs each for SECONDS on its seed corpus (tests/fuzz/corpus/T);
# inputs that reach new code are kept in build-fuzz/corpus/T. A crash, a sanitizer report, an
# input taking over 10 s or more than 2 GB of memory is a finding: the input is saved in
# build-fuzz/findings/T/ and the script exits 1. Results: build-fuzz/fuzz-results.json.
#   scripts/fuzz.sh [SECONDS] [TARGET...]   default 10 s each, every target (docs/FUZZING.md)
#   SKIM_FUZZ_SEED=N ...                    libFuzzer's random seed (default 0: a new one each run)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-10}"
shift || true
build="$root/build-fuzz"
all=(fuzz_gguf fuzz_safetensors fuzz_hf_config fuzz_tokenizer_json fuzz_packed_model
     fuzz_checkpoint fuzz_calibration)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

"$root/scripts/apt_install.sh" clang libclang-rt-14-dev libomp-14-dev
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSKIM_BUILD_FUZZ=ON -DSKIM_BUILD_TESTS=OFF -DSKIM_BUILD_BENCH=OFF -DSKIM_WITH_CUDA=OFF \
  -DSKIM_WITH_MPI=OFF >/dev/null
if ! cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$build/build.log" 2>&1; then
  tail -n 40 "$build/build.log" >&2
  exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
results=()
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/findings/$t"
  log="$build/findings/$t/last-run.log"
  status=0
  # One thread per process: the readers are what is fuzzed, not OpenMP.
  OMP_NUM_THREADS=1 TMPDIR="$scratch" "$build/tests/fuzz/$t" -max_total_time="$seconds" \
    -seed="${SKIM_FUZZ_SEED:-0}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/findings/$t/" \
    "$build/corpus/$t" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  units="$(find "$build/corpus/$t" -type f | wc -l)"
  echo "fuzz: $t: ${runs:-0} runs in ${seconds} s, $units new inputs kept, exit $status"
  if [ "$status" -ne 0 ]; then
    failed=1
    grep -E 'ERROR|fuzz finding|SUMMARY|Test unit written|runtime error' "$log" | head -n 20 >&2 || true
  fi
  results+=("{\"target\": \"$t\", \"seconds\": $seconds, \"runs\": ${runs:-0}, \"kept\": $units, \"exit\": $status}")
done
{
  echo "{\"machine\": \"$(uname -m) $(nproc) cores\", \"commit\": \"$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)\","
  echo " \"targets\": ["
  (IFS=','; echo "  ${results[*]}")
  echo " ]}"
} >"$build/fuzz-results.json"
exit "$failed"
