#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test that needs no GPU and is not labelled slow.
#   scripts/test.sh             unit and mpi tests
#   SKIM_TEST_LABELS=slow ...   only the slow ones
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
export OMP_WAIT_POLICY=passive
cd "$root/${SKIM_BUILD_DIR:-build}"
if [ -n "${SKIM_TEST_LABELS:-}" ]; then
  ctest --output-on-failure -L "$SKIM_TEST_LABELS"
else
  ctest --output-on-failure -LE 'gpu|slow'
fi
