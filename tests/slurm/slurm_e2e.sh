#!/usr/bin/env bash
# slurm/quantize.sbatch under real Slurm daemons (slurm_cluster.sh), on a tiny random model:
#   slurm_e2e.sh SCENARIO SKIM_DIST MAKE_TINY_MODEL MPIEXEC
# Scenarios:
#   launchers  2 tasks through `srun --mpi=pmix` and through `mpirun` inside the allocation: both
#              outputs byte-identical to a direct `mpirun -np 2` run
#   requeue    a 2-minute time limit that the first run outlasts (every linear slowed by a fault-
#              injected delay, first_run_slow.sh): Slurm's USR1 before the limit, a stop at a safe
#              point, exit 75, a requeue, a resume (Slurm holds a requeued job about 2 minutes);
#              requeued at least once, output identical to an uninterrupted run
#   kill       one rank killed with SIGKILL in the middle of a layer (srun --kill-on-bad-exit):
#              the job ends within 30 s, non-zero, without a final output
set -euo pipefail
scenario=$1 bin=$2 maker=$3 mpiexec=$4
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
template="$here/../../slurm/quantize.sbatch"
[ "$(id -u)" -eq 0 ] || { echo "slurm_e2e: needs root (Slurm daemons as SlurmUser=root)" >&2; exit 1; }
# shellcheck source=slurm_cluster.sh
source "$here/slurm_cluster.sh"
work=$(mktemp -d)
trap 'slurm_down; rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=passive

fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/job-*.out; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 30 "$f" >&2; }; done
  [ -f "$work/slurm/slurmctld.log" ] && tail -n 20 "$work/slurm/slurmctld.log" >&2
  exit 1
}

layers=3
[ "$scenario" = requeue ] && layers=6
"$maker" "$work/model" "$layers"
for i in $(seq 1 300); do
  echo "Line $i: the quick brown fox jumps over the lazy dog, $((i * 7919 % 1000)) times."
done > "$work/calib.txt"
args="--calib-samples 8 --calib-seq-len 64 --progress none"

same_model() {
  local a=$1 b=$2 f
  (cd "$a" && find . -type f ! -name report.json | sort) > "$work/list_a"
  (cd "$b" && find . -type f ! -name report.json | sort) > "$work/list_b"
  cmp -s "$work/list_a" "$work/list_b" || fail "$a and $b hold different files"
  while read -r f; do cmp -s "$a/$f" "$b/$f" || fail "$a/$f and $b/$f differ"; done < "$work/list_a"
}

# The reference: a direct 2-rank run, no Slurm.
"$mpiexec" -np 2 --oversubscribe --allow-run-as-root --bind-to none "$bin" quantize \
  --model "$work/model" --calib "$work/calib.txt" --bits 3 $args --out "$work/direct" --comm mpi

slurm_up "$work/slurm" || fail "Slurm did not come up"

# submit NAME [sbatch options]: runs the template for OUT=$work/NAME, waits, sets rc.
submit() {
  local name=$1; shift
  set +e
  SKIM="${SKIM:-$bin}" MODEL="$work/model" CALIB="$work/calib.txt" OUT="$work/$name" BITS=3 \
    SKIM_ARGS="$args" OMP_WAIT_POLICY=passive \
    sbatch --wait --quiet --export=ALL --output="$work/job-$name.out" "$@" "$template"
  rc=$?
  set -e
}

case "$scenario" in
  launchers)
    for launcher in srun mpirun; do
      LAUNCHER=$launcher submit "$launcher" --ntasks=2 --job-name="skim-$launcher"
      [ "$rc" -eq 0 ] || fail "$launcher: the job failed (sbatch exit $rc)"
      grep -q "2 ranks on 1 node(s) via $launcher" "$work/job-$launcher.out" \
        || fail "$launcher: the job did not run 2 ranks"
      same_model "$work/direct" "$work/$launcher"
    done
    ;;
  requeue)
    # 6 layers x 4 rounds of 2 linears x 3 s: over 72 s of work in the slowed first run, more
    # than Slurm leaves before its warning (USR1@60 in a 2-minute job: sent 30-60 s in, since
    # slurmctld looks every 30 s and sends up to 30 s early).
    start=$(date +%s)
    SKIM="$here/first_run_slow.sh" SKIM_REAL="$bin" LAUNCHER=srun \
      submit requeued --ntasks=2 --time=2 --signal=B:USR1@60 --job-name=skim-requeue
    elapsed=$(( $(date +%s) - start ))
    [ "$rc" -eq 0 ] || fail "requeue: the last run of the job failed (sbatch exit $rc)"
    runs=$(grep -c "^quantize.sbatch: job .* (restart" "$work/job-requeued.out" || true)
    grep -q "stopped at a safe point on request" "$work/job-requeued.out" \
      || fail "requeue: no run stopped at a safe point"
    grep -q "requeueing" "$work/job-requeued.out" || fail "requeue: the script did not requeue"
    [ "$runs" -ge 2 ] || fail "requeue: the job was not requeued (runs: $runs)"
    grep -q "(restart 0)" "$work/job-requeued.out" && grep -q "(restart 1)" "$work/job-requeued.out" \
      || fail "requeue: no run after the requeue"
    [ ! -e "$work/requeued.partial" ] || fail "requeue: the work folder is left behind"
    same_model "$work/direct" "$work/requeued"
    echo "requeue: $runs runs, ${elapsed}s in all"
    ;;
  kill)
    jobid=$(SKIM="$bin" MODEL="$work/model" CALIB="$work/calib.txt" OUT="$work/killed" BITS=3 \
      SKIM_ARGS="$args" LAUNCHER=srun SKIM_FAULT_INJECT=rank=*,at=linear_task,delay=1 \
      sbatch --parsable --export=ALL --output="$work/job-killed.out" --ntasks=2 \
      --job-name=skim-kill "$template")
    victim=
    for _ in $(seq 1 60); do  # until both ranks run
      ranks=$(for p in $(pgrep -f -- "--out $work/killed"); do
                [ "$(ps -o comm= -p "$p")" = skim-dist ] && echo "$p"; done || true)
      [ "$(echo "$ranks" | grep -c .)" -ge 2 ] && { sleep 2; victim=${ranks%%$'\n'*}; break; }
      sleep 1
    done
    [ -n "$victim" ] || fail "kill: the ranks did not start"
    kill -9 "$victim"
    start=$(date +%s)
    # Poll the job's state (sbatch --wait polls with growing pauses and would blur the time).
    for _ in $(seq 1 240); do
      state=$(scontrol -o show job "$jobid" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
      case "$state" in PENDING | CONFIGURING | RUNNING | COMPLETING) sleep 0.5 ;; *) break ;; esac
    done
    elapsed=$(( $(date +%s) - start ))
    [ "$state" = FAILED ] || fail "kill: job state $state after a rank was killed, expected FAILED"
    [ "$elapsed" -le 30 ] || fail "kill: the job took ${elapsed}s to end after a rank was killed"
    [ ! -e "$work/killed" ] || fail "kill: a killed job left a final-looking output"
    echo "kill: SIGKILL to one rank, the job ended (FAILED) ${elapsed}s later"
    ;;
  *) fail "unknown scenario $scenario" ;;
esac
echo "PASS: slurm $scenario"
