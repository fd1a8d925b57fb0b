#!/usr/bin/env bash
# Builds llama.cpp's llama-bench, llama-quantize and llama-imatrix (CPU, this machine's
# instruction set) from the source vendored in the PyPI sdist of llama-cpp-python, into
# build-llama.cpp/, for the side-by-side benchmarks (bench/decode). Prints the bin folder.
#   scripts/build_llama_cpp.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version=0.3.36
dest="$root/build-llama.cpp"
bin="$dest/src/build/bin"
if [ -x "$bin/llama-bench" ] && [ -x "$bin/llama-quantize" ] && [ -x "$bin/llama-imatrix" ]; then
  echo "$bin"
  exit 0
fi
"$root/scripts/apt_install.sh" cmake ninja-build g++ python3-pip >&2
mkdir -p "$dest"
if [ ! -f "$dest/src/CMakeLists.txt" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" \
    -d "$tmp" >&2
  tar -xzf "$tmp/llama_cpp_python-$version.tar.gz" -C "$tmp"
  rm -rf "$dest/src"
  mv "$tmp/llama_cpp_python-$version/vendor/llama.cpp" "$dest/src"
fi
cmake -S "$dest/src" -B "$dest/src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >&2
cmake --build "$dest/src/build" -j"$(nproc)" --target llama-bench llama-quantize llama-imatrix >&2
echo "$bin"
