#!/usr/bin/env bash
# The failure test: fault_test.sh MPIRUN PROGRAM NP FAIL_RANK
# 1. Without a fault the job exits 0.
# 2. With rank FAIL_RANK failing at stage "hessian" while the others wait in an all-reduce, the
#    job exits non-zero within 30 s, no rank is left running, and the error names host, rank
#    and stage.
set -u
mpirun=$1 program=$2 np=$3 fail_rank=$4
host=$(hostname)
launch=("$mpirun" -np "$np" --oversubscribe --allow-run-as-root)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if ! timeout -k 5 60 "${launch[@]}" "$program" >"$log" 2>&1; then
  cat "$log"
  echo "FAIL: the job without a fault did not exit 0"
  exit 1
fi

start=$(date +%s%N)
timeout -k 5 60 "${launch[@]}" -x "SKIM_FAULT_INJECT=rank=$fail_rank,at=hessian" "$program" \
  >"$log" 2>&1
status=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
cat "$log"
echo "exit status $status after ${elapsed_ms} ms"

failed=0
if [ "$status" -eq 0 ]; then
  echo "FAIL: the job exited 0 although rank $fail_rank failed"
  failed=1
fi
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ] || [ "$elapsed_ms" -ge 30000 ]; then
  echo "FAIL: the job did not end within 30 s"
  failed=1
fi
expected="$host:$fail_rank: error: injected fault at stage 'hessian'"
if ! grep -qF "$expected" "$log"; then
  echo "FAIL: no line '$expected'"
  failed=1
fi
# Ranks that exited may linger as zombies until reaped; only live ones count.
live=$(ps -C "$(basename "$program")" -o stat= | grep -vc '^Z')
if [ "$live" -gt 0 ]; then
  echo "FAIL: $live ranks of $program are still running"
  failed=1
fi
exit $failed
