#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh runs on a GPU machine that has the CUDA runtime but no Debian
# development packages and no network: every gpu-labelled test program, the two GPU benchmarks,
# skim-dist and make_tiny_model (for scripts/gpu_e2e.sh), built here for one architecture without MPI and NCCL (the device has neither), with
# each shared library they load that is neither CUDA's nor glibc's. docs/GPU.md says how to use it.
#   scripts/gpu_bundle.sh [BUNDLE]   default build-gpu/gpu-bundle.tar.xz (under 60 MiB)
#   SKIM_GPU_ARCH=90 ...             the CUDA architecture (90: H100 / H200)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-gpu"
bundle="${1:-$build/gpu-bundle.tar.xz}"
arch="${SKIM_GPU_ARCH:-90}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSKIM_WITH_CUDA=ON -DSKIM_WITH_MPI=OFF \
  -DSKIM_WITH_NCCL=OFF -DSKIM_CUDA_ARCHITECTURES="$arch" >/dev/null
# The gpu tests' programs: test targets named *gpu* (test_kernels_gpu_lut_device_layout, a CPU
# test of the layout conversion, comes along and runs there too).
mapfile -t tests < <(cmake --build "$build" --target help | sed -n 's/^\.\.\. \(test_[a-z_]*gpu[a-z_]*\).*/\1/p')
[ "${#tests[@]}" -gt 0 ] || { echo "gpu_bundle: no gpu test targets (is CUDA found?)" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" --target "${tests[@]}" bench_gpu_gemv bench_gpu_quant \
  skim-dist make_tiny_model

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/tests" "$stage/bin" "$stage/lib"
for t in "${tests[@]}"; do
  cp "$(find "$build/tests" -type f -name "$t" -perm -u+x | head -1)" "$stage/tests/"
done
cp "$build/bench/gpu_gemv/bench_gpu_gemv" "$build/bench/gpu_quant/bench_gpu_quant" \
  "$build/launch/skim-dist" "$build/tests/pipeline/make_tiny_model" "$stage/bin/"
# Libraries: all but glibc's, the loader and CUDA's (the device has its own CUDA 13).
for exe in "$stage"/tests/* "$stage"/bin/*; do
  ldd "$exe" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  case "$name" in
    libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | ld-linux* | libcud* | \
      libcublas* | libcusolver* | libcusparse* | libnvJitLink* | libnccl*) ;;
    *) cp -L "$path" "$stage/lib/$name" ;;
  esac
done
git -C "$root" rev-parse HEAD > "$stage/COMMIT" 2>/dev/null || echo unknown > "$stage/COMMIT"
git -C "$root" diff --quiet HEAD 2>/dev/null || echo "$(cat "$stage/COMMIT")+dirty" > "$stage/COMMIT"
mkdir -p "$(dirname "$bundle")"
tar -cJf "$bundle" -C "$stage" .
size=$(stat -c %s "$bundle")
echo "gpu_bundle: $bundle, $((size / 1024 / 1024)) MiB: ${#tests[@]} test programs, 2 benchmarks, skim-dist, $(ls "$stage/lib" | wc -l) libraries"
if [ "$size" -gt $((60 * 1024 * 1024)) ]; then
  echo "gpu_bundle: over 60 MiB: the device call carries at most 64 MiB" >&2
  exit 1
fi
