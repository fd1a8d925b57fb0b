#pragma once
// Preemption and time limits: SIGTERM or SIGUSR1 (Slurm's warning before the limit, forwarded by
// srun and mpirun to every rank) asks this rank to stop. Nothing stops at the signal itself: the
// pipeline polls stop_requested() at its safe points, where all ranks agree (docs/SLURM.md).
//
// SIGTERM is also how launchers end the survivors when a rank dies (srun --kill-on-bad-exit): a
// stop can then never be agreed. So after SIGTERM the process exits (status 143, as SIGTERM's
// default would) unless it has stopped within SKIM_TERM_GRACE seconds; a second SIGTERM exits at
// once. SIGUSR1 waits for the safe point however long the phase.
namespace skim::launch {

inline constexpr unsigned kDefaultTermGraceSeconds = 10;

// Installs the handlers for SIGTERM, SIGUSR1 and SIGALRM (the grace). Idempotent.
void install_stop_handlers();

// The signal that asked for a stop, or 0 when none has arrived.
int stop_requested();

}  // namespace skim::launch
