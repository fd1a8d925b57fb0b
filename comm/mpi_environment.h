#pragma once
// The MPI process environment, for launch/: initialisation, finalisation, where this rank sits.
// Kept here so that nothing outside comm/*.cpp includes mpi.h.
#include <string>

namespace skim::comm {

struct MpiPlacement {
  int rank = 0;
  int size = 1;
  int local_rank = 0;  // rank within this node (MPI_COMM_TYPE_SHARED split)
  int local_size = 1;
};

// MPI_Init_thread (funneled) unless already initialised; throws kUsage without MPI in the build
// and kComm if MPI fails.
void mpi_initialize();
bool mpi_is_initialized();
// MPI_Finalize if initialised and not yet finalised; never throws.
void mpi_finalize();
// Requires mpi_initialize().
MpiPlacement mpi_placement();
// Minimum of `value` over all ranks of MPI_COMM_WORLD (used before any communicator exists).
int mpi_all_min(int value);
// Size of MPI_COMM_WORLD; 1 when MPI is not initialised.
int mpi_world_size();
// MPI_Abort(MPI_COMM_WORLD): for errors before any communicator exists. Without MPI, _Exit.
[[noreturn]] void mpi_abort(int status);

}  // namespace skim::comm
