#pragma once
// Preemption and time limits: SIGTERM or SIGUSR1 (Slurm's warning before the limit, forwarded by
// srun and mpirun to every rank) asks this rank to stop. Nothing stops at the signal itself: the
// pipeline polls stop_requested() at its safe points, where all ranks agree (docs/SLURM.md).
namespace skim::launch {

// Installs the handlers for SIGTERM and SIGUSR1. Idempotent.
void install_stop_handlers();

// The signal that asked for a stop, or 0 when none has arrived.
int stop_requested();

}  // namespace skim::launch
