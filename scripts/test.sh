#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test that needs no GPU and is not labelled slow:
# unit, mpi and slurm (a real Slurm cluster on 127.0.0.1; needs root, skipped otherwise).
#   scripts/test.sh             unit, mpi and slurm tests
#   SKIM_TEST_LABELS=slow ...   only the slow ones
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
export OMP_WAIT_POLICY=passive
cd "$root/${SKIM_BUILD_DIR:-build}"
if [ -n "${SKIM_TEST_LABELS:-}" ]; then
  ctest --output-on-failure -L "$SKIM_TEST_LABELS"
elif [ "$(id -u)" -eq 0 ]; then
  ctest --output-on-failure -LE 'gpu|slow'
else
  echo "test.sh: not root: the slurm tests (Slurm daemons as root) are left out" >&2
  ctest --output-on-failure -LE 'gpu|slow|slurm'
fi
