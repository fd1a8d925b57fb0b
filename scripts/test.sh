#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test that needs no GPU and is not labelled slow:
# unit, mpi and slurm (a real Slurm cluster on 127.0.0.1; needs root, skipped otherwise), then
# every fuzz target for a few seconds on its seed corpus (scripts/fuzz.sh, docs/FUZZING.md).
#   scripts/test.sh             unit, mpi and slurm tests, fuzz targets
#   SKIM_FUZZ_SECONDS=0 ...     without the fuzz targets
#   SKIM_TEST_LABELS=slow ...   only the slow ones
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
export OMP_WAIT_POLICY=passive
cd "$root/${SKIM_BUILD_DIR:-build}"
if [ -n "${SKIM_TEST_LABELS:-}" ]; then
  exec ctest --output-on-failure -L "$SKIM_TEST_LABELS"
elif [ "$(id -u)" -eq 0 ]; then
  ctest --output-on-failure -LE 'gpu|slow'
else
  echo "test.sh: not root: the slurm tests (Slurm daemons as root) are left out" >&2
  ctest --output-on-failure -LE 'gpu|slow|slurm'
fi
fuzz_seconds="${SKIM_FUZZ_SECONDS:-5}"
# A fixed seed: the same inputs on every run, so a red CI is a change's doing, not chance's.
[ "$fuzz_seconds" -eq 0 ] || SKIM_FUZZ_SEED=1 "$root/scripts/fuzz.sh" "$fuzz_seconds"
