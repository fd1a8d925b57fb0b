#!/bin/sh
# Stands in for skim-dist in the requeue test: the job's first run (SLURM_RESTART_COUNT unset or
# 0) has every linear slowed by a fault-injected delay so that it outlasts Slurm's warning before
# the time limit; the requeued runs go at full speed. SKIM_REAL is the real binary.
if [ "${SLURM_RESTART_COUNT:-0}" -eq 0 ]; then
  export SKIM_FAULT_INJECT="rank=*,at=linear_task,delay=${SLOW_FIRST_RUN_DELAY:-3}"
fi
exec "$SKIM_REAL" "$@"
