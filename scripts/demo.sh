#!/usr/bin/env bash
# The main job on the bundled default: set up, then evaluate SmolLM2-135M on Pride and Prejudice.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
bin="$root/${SKIM_BUILD_DIR:-build}/launch/skim-dist"
"$bin" eval --model "$root/data/SmolLM2-135M-Instruct.Q4_1.gguf" \
  --text "$root/data/text/prideprejudice.txt" --seq-len 512 --max-windows 16
